"""The compact record columns (issue 17.4, sync/record_columns.py): a batch goes smaller and the
hub stores exactly the rows it stored before (same ids, same payloads, same content digests that
make a resend idempotent); anything the compact forms cannot carry exactly goes as before."""
from __future__ import annotations

import hashlib
import json
import random

import pytest
from hypothesis import given, settings, strategies as st

from edge.core import config as config_mod, devices
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.reading import Reading
from sync import protocol, record_codec
from sync.client import state
from sync.client.controller import Cycle
from sync_fixtures import Hub, add_records, enroll, sync_env


def canonical(payload) -> str:
    return protocol.canonical(payload).decode()


def same_records(a: list[dict], b: list[dict]) -> bool:
    """The same records (a batch holds them by kind: compared in one order)."""
    return sorted((r["kind"], r["id"], r["version"], canonical(r["payload"])) for r in a) == \
        sorted((r["kind"], r["id"], r["version"], canonical(r["payload"])) for r in b)


def clinic_day(node, n: int, seed: int = 3, *, without_value: bool = True) -> None:
    """Readings as stations send them: several codes per message, decimals of each unit, a device
    whose clock is wrong (effective_time then is not device_time), a reading without a value."""
    from datetime import timedelta

    rng = random.Random(seed)
    for dev, kind in (("bp-1", "bp"), ("glu-1", "glucose"), ("scale-1", "scale")):
        devices.add(node.store, dev, kind=kind, name=dev, now=node.clock.now(), actor="test")
    for i in range(n):
        dev = rng.choice(["bp-1", "glu-1", "scale-1"])
        at = node.clock.now() - timedelta(seconds=rng.randint(2, 40), milliseconds=rng.randint(0, 999))
        if dev == "bp-1":
            batch = [Reading(dev, code, float(rng.randint(60, 180)), unit, "mqtt", device_time=at, source_key=f"{i}-{code}")
                     for code, unit in (("8480-6", "mm[Hg]"), ("8462-4", "mm[Hg]"), ("8867-4", "/min"))]
        elif dev == "glu-1":
            batch = [Reading(dev, "2339-0", round(rng.uniform(3, 16), 1), "mmol/L", "ble", device_time=at,
                             source_key=f"g{i}")]
        else:
            batch = [Reading(dev, "29463-7", round(rng.uniform(40, 95), 2), "kg", "serial", device_time=at,
                             source_key=f"s{i}")]
        if i % 7 == 0 and without_value:
            batch.append(Reading(dev, "8480-6", None, "mm[Hg]", "mqtt", source_key=f"none{i}",
                                 no_value_reason="SFLOAT NaN"))          # and no device time
        ingest(node.store, batch)


def spread_over_a_month(node) -> None:
    """The readings' receive_times as a month of messages gives them: minutes to hours apart, the
    readings of one message sharing theirs (clinic_day's are seconds apart)."""
    from sync.record_columns import _from_ms

    rng, ms = random.Random(5), 1790813304817
    with node.store.atomic() as conn:
        rows = list(conn.execute("SELECT seq, payload FROM outbox WHERE kind = 'reading' ORDER BY seq"))
        for i, (seq, text) in enumerate(rows):
            if i % 2 == 0:
                ms += rng.randint(200_000, 2_300_000)
            payload = json.loads(text)
            payload["receive_time"] = _from_ms(ms)
            conn.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (json.dumps(payload), seq))


def outbox_records(node) -> list[dict]:
    rows = node.store.query("SELECT kind, record_id, version, payload FROM outbox ORDER BY seq")
    return [{"kind": r["kind"], "id": r["record_id"], "version": r["version"], "payload": json.loads(r["payload"])}
            for r in rows]


def test_a_batch_of_a_clinic_day_goes_compact_and_decodes_to_exactly_its_records(node):
    clinic_day(node, 300)
    add_records(node, 40, start=1000)               # residents, follow-ups, referrals beside the readings
    records = outbox_records(node)
    before = record_codec.encode_records(records, compact=False)
    now = record_codec.encode_records(records)
    assert same_records(record_codec.decode_records(before), records)
    assert same_records(record_codec.decode_records(now), records)
    readings = [r for r in records if r["kind"] == "reading"]
    now, before = record_codec.encode_records(readings), record_codec.encode_records(readings, compact=False)
    assert len(now) <= len(before) - 1.5 * len(readings), (len(now), len(before), len(readings))


def test_a_batch_round_trips_to_the_very_rows_the_hub_stored_before(env, tmp_path):
    """The same outbox through a hub by the compact form and, as a node before issue 17.4 sent
    it, through a second hub: both hold identical rows (id, version, payload text, digest)."""
    node = Node(config_mod.load(env=env))
    clinic_day(node, 400, without_value=False)      # every value then goes packed by its code
    add_records(node, 20, start=500)
    spread_over_a_month(node)          # the receive_times then go as packed bits (sync.record_packing)
    records = outbox_records(node)
    node.close()
    forms = {c["t"] for c in _columns(record_codec.encode_records(records))}
    assert {"pk", "of", "pg"} <= forms, forms
    hubs = []
    for name in ("compact", "before"):
        d = tmp_path / name
        d.mkdir()
        hubs.append(Hub(env, d, f"sqlite:///{d / 'hub.db'}", tls=False).start())
    try:
        enroll(env, hubs[0])
        n = Node(config_mod.load(env=sync_env(env, hub_url=hubs[0].url)))
        try:
            assert Cycle(n, state.identity(n), sleep=lambda s: None).run().ok
        finally:
            n.close()
        old = hubs[1].store()
        from datetime import datetime, timedelta, timezone

        from sync import signing
        from sync.hub.service import Hub as HubService

        key = signing.new_key()
        old.add_node("clinic-a", "OLDCODE", now=datetime.now(timezone.utc), ttl=timedelta(hours=1))
        old.redeem("OLDCODE", signing.public_text(key), now=datetime.now(timezone.utc))
        header = {"node": "clinic-a", "batch": "old-form", "from": 1, "to": len(records), "n": len(records),
                  "at": "2026-12-04T08:00:00.000Z"}
        legacy = _sealed_before(key, header, records)
        HubService(old, signing.new_key()).accept_batch(legacy, via="bundle", now=datetime.now(timezone.utc))

        def rows(hub):
            with hub.store().engine.connect() as c:
                return sorted(tuple(r) for r in c.exec_driver_sql(
                    "SELECT kind, record_id, version, payload, digest FROM hub_records"))
        compact, before = rows(hubs[0]), rows(hubs[1])
    finally:
        for h in hubs:
            h.stop()
    assert len(compact) == len(records) and compact == before
    for kind, rid, version, payload, digest in compact:
        assert digest == hashlib.sha256(payload.encode()).hexdigest()


def _sealed_before(key, header, records) -> bytes:
    """An envelope as a node before issue 17.4 sealed it (the records' forms of before)."""
    import struct

    hbytes = protocol.canonical({**header, "v": protocol.VERSION})
    payload = record_codec.encode_records(records, compact=False)
    head = protocol.MAGIC + struct.pack(">H", len(hbytes)) + hbytes
    return head + protocol.sign(key, head + payload) + payload


def test_the_monotonic_seconds_of_rows_from_before_still_go_exactly():
    """Readings stored before monotonic was kept to the millisecond carry all its digits: the
    compact forms do not fit them and they travel as they are."""
    from sync.record_columns import _from_ms

    rows = [{"kind": "reading", "id": f"r-{1790813304817 + i * 1000:012x}{i:020x}", "version": 1,
             "payload": {"device_time": _from_ms(1790813304817 + i * 1000),
                         "monotonic": 1537.8176965914754 + i * 0.7131, "value": 118.0 + i}}
            for i in range(50)]
    assert same_records(record_codec.decode_records(record_codec.encode_records(rows)), rows)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6),
                    st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.sampled_from([0.0, -0.0, 118.0, 5.3, 72.25, 1e-7, 1537.818, 2.5e15]),
                    st.sampled_from(["2026-10-01T00:08:24.817Z", "2026-10-01T00:08:57.000Z", "mm[Hg]", "8480-6"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["device_time", "receive_time", "value", "monotonic", "unit",
                                                 "code", "effective_time", "x"]), scalars, max_size=8),
                min_size=1, max_size=30))
def test_any_payloads_come_back_exactly(payloads):
    rows = [{"kind": "reading", "id": f"r-{i:032x}", "version": 1, "payload": p} for i, p in enumerate(payloads)]
    assert same_records(record_codec.decode_records(record_codec.encode_records(rows)), rows)


def _columns(payload: bytes) -> list[dict]:
    """The columns of each kind of an encoded batch, as the node wrote them."""
    import bz2
    import zlib

    if payload[:3] == record_codec.BZ2_MAGIC:
        text = bz2.BZ2Decompressor().decompress(payload)
    else:
        d = zlib.decompressobj(zdict=record_codec.DICTIONARIES[int.from_bytes(payload[2:6], "big")])
        text = d.decompress(payload)
    return [c for g in json.loads(text) for c in g["c"]]


def test_the_times_of_a_month_of_messages_go_as_packed_bits_and_come_back_exactly(node):
    """A clinic's messages are minutes to hours apart: their receive_times go as bits (sync.record_packing),
    smaller than the digits, and the batch decodes to exactly its records."""
    clinic_day(node, 700)
    spread_over_a_month(node)
    readings = outbox_records(node)
    encoded = record_codec.encode_records(readings)
    assert any(c["t"] == "pk" for c in _columns(encoded))
    assert same_records(record_codec.decode_records(encoded), readings)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2 ** 40, 2 ** 40), min_size=2, max_size=60), st.sampled_from(["ts", "tr", "fx"]),
       st.integers(0, 5))
def test_any_packed_integers_come_back_exactly(values, kind, zeros):
    from sync.record_columns import decode_column
    from sync.record_packing import packed_forms, unpacked

    values = [0 if i % (zeros + 1) == 1 else v for i, v in enumerate(values)]
    key = "x" if kind == "fx" else "d"
    col = {"t": kind, key: values, **({"p": 0} if kind == "fx" else {}), **({"r": 0} if kind == "tr" else {})}
    for packed in packed_forms(col):
        assert packed["t"] == "pk" and unpacked(json.loads(json.dumps(packed)), len(values)) == col


@pytest.mark.parametrize("change, reason", [
    (lambda c: {**c, "b": c["b"][:-4]}, "cut short"),
    (lambda c: {**c, "b": c["b"] + "AAAA"}, "more bits"),
    (lambda c: {**c, "w": 99}, "width"),
    (lambda c: {**c, "b": "not base64!"}, "not base64"),
    (lambda c: {**c, "c": {"t": "dict", "s": [1]}}, "names no list"),
])
def test_a_malformed_packed_column_is_refused_with_the_reason(change, reason):
    from sync import protocol
    from sync.record_packing import packed_forms, unpacked

    col = packed_forms({"t": "ts", "d": [1790813304817, *range(300_000, 300_040)]})[0]
    assert unpacked(col, 41)["d"][1:] == list(range(300_000, 300_040))
    with pytest.raises(protocol.ProtocolError, match=reason):
        unpacked(change(col), 41)


def test_device_and_code_go_as_one_dictionary_of_pairs_and_come_back_exactly(node):
    """A station's codes follow from the device: device_id and code go as one index list
    (sync.record_pairs), and the batch decodes to exactly its records."""
    clinic_day(node, 500)
    readings = outbox_records(node)
    encoded = record_codec.encode_records(readings)
    cols = _columns(encoded)
    of = [c for c in cols if c["t"] == "of"]
    assert of and cols[of[0]["k"]]["t"] == "dict" and len(cols[of[0]["k"]]["s"]) > len({r["payload"]["device_id"] for r in readings})
    assert same_records(record_codec.decode_records(encoded), readings)


@pytest.mark.parametrize("change", [
    lambda c: {**c, "k": 99}, lambda c: {**c, "k": 0}, lambda c: {**c, "s": c["s"][:-1]}, lambda c: {**c, "k": True}])
def test_a_paired_column_naming_no_dictionary_is_refused_with_the_reason(node, change):
    import zlib

    from sync import protocol

    clinic_day(node, 60)
    readings = [r for r in outbox_records(node) if r["payload"].get("device_time")]
    group = record_codec._encode_group("reading", readings, compact=True)
    j = next(i for i, c in enumerate(group["c"]) if c["t"] == "of")
    group["c"][j] = change(group["c"][j])
    group.pop("j", None), group.pop("jt", None), group.pop("jd", None)
    group["i"] = [r["id"] for r in readings]
    with pytest.raises(protocol.ProtocolError, match="paired column"):
        record_codec.decode_records(zlib.compress(json.dumps([group]).encode()))


def readings_by_code(n: int, seed: int = 9) -> list[dict]:
    """Readings as a month of a clinic's stations gives them: each code's values in its range and
    to its places (systolic 95-185 mm[Hg], glucose 3.5-16 mmol/L to 0.1, weight to 0.1 kg)."""
    from sync.record_columns import _from_ms

    ranges = {"8480-6": (95, 185, 0), "8462-4": (55, 110, 0), "8867-4": (50, 110, 0), "2708-6": (88, 100, 0),
              "2339-0": (3.5, 16.0, 1), "29463-7": (40, 95, 1)}
    rng, ms, out = random.Random(seed), 1790813304817, []
    for i in range(n):
        ms += rng.randint(200_000, 2_300_000)
        code = rng.choice(sorted(ranges))
        lo, hi, places = ranges[code]
        out.append({"kind": "reading", "id": f"r-{ms:012x}{i:020x}", "version": 1,
                    "payload": {"code": code, "device_time": _from_ms(ms), "value": round(rng.uniform(lo, hi), places) * 1.0}})
    return out


def test_values_go_packed_by_their_code_and_come_back_exactly():
    """Each code's values cluster: written in bits per code (sync.record_packing, "pg"), smaller
    than the digits, and decoded exactly."""
    readings = readings_by_code(1000)
    encoded = record_codec.encode_records(readings)
    assert [c for c in _columns(encoded) if c["t"] == "pg"]
    assert same_records(record_codec.decode_records(encoded), readings)
    plain = record_codec.encode_records([{**r, "payload": {**r["payload"], "value": None}} for r in readings])
    assert len(encoded) - len(plain) < 1.0 * len(readings)       # 4-10 bits a value


@pytest.mark.parametrize("change, reason", [
    (lambda c: {**c, "b": c["b"][:-8]}, "cut short"),
    (lambda c: {**c, "b": c["b"] + "AAAA"}, "more bits"),
    (lambda c: {**c, "g": c["g"][:-1]}, "for each group"),
    (lambda c: {**c, "g": [[9, 0, 1]] * len(c["g"])}, "for each group"),
    (lambda c: {**c, "k": 99}, "not before it"),
])
def test_a_malformed_column_packed_by_group_is_refused_with_the_reason(change, reason):
    import zlib

    from sync import protocol

    readings = readings_by_code(300)
    group = record_codec._encode_group("reading", readings, compact=True)
    j = next(i for i, c in enumerate(group["c"]) if c["t"] == "pg")
    group["c"][j] = change(group["c"][j])
    group.pop("j", None), group.pop("jt", None), group.pop("jd", None)
    group["i"] = [r["id"] for r in readings]
    with pytest.raises(protocol.ProtocolError, match=reason):
        record_codec.decode_records(zlib.compress(json.dumps([group]).encode()))


def test_packed_bits_far_beyond_their_values_are_refused_before_they_are_read():
    """A few kilobytes of bzip2 can carry megabytes of bits: refused (by their count, before a value is read)."""
    import base64
    import bz2

    from sync import protocol

    readings = readings_by_code(300)
    group = record_codec._encode_group("reading", readings, compact=True)
    j = next(i for i, c in enumerate(group["c"]) if c["t"] in ("pg", "pk"))
    group["c"][j]["b"] = base64.b64encode(b"\xff" * (4 << 20)).decode()
    group.pop("j", None), group.pop("jt", None), group.pop("jd", None)
    group["i"] = [r["id"] for r in readings]
    with pytest.raises(protocol.ProtocolError, match="more bits than its values"):
        record_codec.decode_records(bz2.compress(json.dumps([group]).encode()))
