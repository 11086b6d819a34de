"""On PostgreSQL a batch's records go straight into one INSERT ... ON CONFLICT DO NOTHING, with no
look-up of the stored ones first; what the insert says was already there decides the receipt: a
record stored before with the same content is not stored or counted again, one stored with other
content under the same version is rejected and left as it was (docs/hub.md, "Many nodes at once")."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


NOW = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)


def reading(rid: str, value: float) -> dict:
    return {"kind": "reading", "id": rid, "version": 1,
            "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": value, "effective_time": "2026-12-01T08:00:00.000Z"}}


def sealed(key, batch: str, first: int, recs: list[dict]) -> bytes:
    from sync import protocol

    header = {"node": "clinic-1", "batch": batch, "from": first, "to": first + len(recs) - 1, "n": len(recs),
              "at": protocol.utc_now_iso(NOW)}
    return protocol.seal(key, header, recs)


def test_a_record_sent_again_is_stored_once_and_one_changed_under_its_version_is_rejected(postgres):  # noqa: F811
    from sync import signing
    from sync.hub.service import Hub
    from sync.hub.storage import HubStore

    store = HubStore(postgres.new_database(), pool_size=2)
    try:
        hub = Hub(store, signing.new_key())
        key = signing.new_key()
        store.add_node("clinic-1", "code-1", now=NOW, ttl=timedelta(hours=1))
        store.redeem("code-1", signing.public_text(key), now=NOW)
        first = hub.accept_batch(sealed(key, "b1", 1, [reading("r1", 120.0), reading("r2", 130.0)]),
                                 via="upload", now=NOW, sender="clinic-1", sender_key=signing.public_text(key),
                                 unstored=True, whole=True)
        assert (first["stored"], first["accepted"], first["rejected"]) == (2, 2, [])
        # r1 again as it was, r2 with another value under the same version, r3 new and twice in the batch
        again = hub.accept_batch(sealed(key, "b2", 3, [reading("r1", 120.0), reading("r2", 999.0),
                                                       reading("r3", 140.0), reading("r3", 140.0)]),
                                 via="upload", now=NOW, sender="clinic-1", sender_key=signing.public_text(key),
                                 unstored=True, whole=True)
        assert (again["records"], again["stored"], again["accepted"]) == (4, 1, 3)
        assert [(r["id"], r["version"]) for r in again["rejected"]] == [("r2", 1)]
        assert "already stored with different content" in again["rejected"][0]["reason"]
        held = {r["record_id"]: r["payload"] for r in store.export()}
        assert sorted(held) == ["r1", "r2", "r3"] and '"value":130.0' in held["r2"].replace(" ", "")
    finally:
        store.engine.dispose()


def test_the_downlink_head_every_answer_carries_is_the_newest_row_for_the_node_or_every_node(postgres):  # noqa: F811
    from sync.hub.storage import HubStore

    store = HubStore(postgres.new_database(), pool_size=2)
    try:
        assert store.downlink_head("clinic-1") == 0
        mine = store.put_downlink("clinic-1", "resident", "p1", 1, "{}", now=NOW)
        assert store.downlink_head("clinic-1") == mine
        everyone = store.put_downlink("*", "code_table", "c1", 1, "{}", now=NOW)
        store.put_downlink("clinic-2", "resident", "p2", 1, "{}", now=NOW)
        assert (store.downlink_head("clinic-1"), store.downlink_head("clinic-3")) == (everyone, everyone)
    finally:
        store.engine.dispose()
