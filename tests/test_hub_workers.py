"""Several hub workers on one PostgreSQL database (issue 17 item 5): two `hub serve` processes, no
state shared but the database, many nodes uploading overlapping batches to both at once. Every
record is stored exactly once and every receipt is signed, says what was stored, and accepts
every record. No timing is asserted (bench/hub_scale.py measures the speed)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sync_fixtures import Hub  # noqa: F401

NODES = 8
BATCHES = 4          # batch b holds records b*STEP .. b*STEP + SIZE - 1: each overlaps the next by half
SIZE, STEP = 40, 20


def batch(key, node: str, b: int, now: datetime) -> bytes:
    from sync import protocol

    recs = [{"kind": "reading", "id": f"{node}-r{i}", "version": 1,
             "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": 100.0 + i,
                         "effective_time": "2026-12-01T08:00:00.000Z"}} for i in range(b * STEP, b * STEP + SIZE)]
    header = {"node": node, "batch": f"{node}-b{b}", "from": b * STEP + 1, "to": b * STEP + SIZE, "n": SIZE,
              "at": protocol.utc_now_iso(now)}
    return protocol.seal(key, header, recs)


def test_two_workers_on_one_database_store_overlapping_batches_from_many_nodes_exactly_once(postgres, env,  # noqa: F811
                                                                                            tmp_path):
    from sync import protocol, signing
    from sync.client.transport import HubClient

    url = postgres.new_database()
    data = tmp_path / "hub"
    data.mkdir()
    # every upload at once, none turned away (admission control, tests/test_hub_admission.py): the
    # overlap of many writers on one database is what this test is for
    first = Hub(env, data, url, uploads_in_service="0").start()    # makes the hub key and county CA the second reads
    second = Hub(env, data, url, uploads_in_service="0").start()
    workers = [first, second]
    try:
        now = datetime.now(timezone.utc)
        store = first.store()
        keys = {f"clinic-{i}": signing.new_key() for i in range(NODES)}
        for name, key in keys.items():
            store.add_node(name, f"code-{name}", now=now, ttl=timedelta(hours=1))
            store.redeem(f"code-{name}", signing.public_text(key), now=now)
        hub_pub = signing.public_text(signing.load_key(data / "hub" / "hub.key"))
        # every batch goes to both workers at the same moment, and every node's batches overlap
        sends = [(name, b, w) for name in keys for b in range(BATCHES) for w in workers]
        start = threading.Barrier(len(sends))
        receipts: dict[tuple[str, int, int], dict] = {}
        errors: list[str] = []

        def send(name: str, b: int, worker: Hub) -> None:
            env_bytes = batch(keys[name], name, b, now)
            client = HubClient(worker.url, node=name, key=keys[name], hub_pubkey=hub_pub, timeout=60,
                               context=worker.ssl_context())
            start.wait()
            try:
                ans = client.call("PUT", f"/v1/uploads/{name}-b{b}?offset=0&total={len(env_bytes)}", env_bytes)
                receipts[(name, b, workers.index(worker))] = ans.doc["receipt"]
            except Exception as e:  # noqa: BLE001 - recorded and asserted empty below
                errors.append(f"{name} batch {b} to worker {workers.index(worker)}: {e}")
            finally:
                client.close()

        threads = [threading.Thread(target=send, args=s) for s in sends]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert len(receipts) == len(sends)

        held = [(r["node"], r["kind"], r["record_id"], r["version"]) for r in store.export()]
        want = {(name, "reading", f"{name}-r{i}", 1) for name in keys for i in range(STEP * (BATCHES - 1) + SIZE)}
        assert sorted(held) == sorted(want)                      # every record, each exactly once
        pub = signing.public_from_text(hub_pub)
        for name in keys:
            for b in range(BATCHES):
                one, other = receipts[(name, b, 0)], receipts[(name, b, 1)]
                assert one == other                                # the same stored receipt from both workers
                protocol.verify_document(pub, one)
                assert (one["records"], one["accepted"], one["rejected"]) == (SIZE, SIZE, [])
            # what the receipts say they stored adds up to what is held: nothing counted twice
            assert sum(receipts[(name, b, 0)]["stored"] for b in range(BATCHES)) == STEP * (BATCHES - 1) + SIZE
    finally:
        for w in workers:
            w.stop()
