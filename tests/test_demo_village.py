"""`clinic-edge demo` seeds a small village once: residents with valid ID numbers, managed
patients with a year of follow-ups written through the real APIs (outbox + audit), a bound
wearable; a second start adds nothing; the monthly report and the worklist have something to show."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from edge.core import audit, config as config_mod, idnumber
from edge.core.node import Node
from edge import demo, demo_village
from edge.reports import source
from edge.reports.population import month


def start(env):
    """What `clinic-edge demo` does before spawning its parts, on the same data directory."""
    node = Node(config_mod.load(env=env))
    creds = demo.register_demo_devices(node)
    return node, creds, demo_village.seed(node)


def counts(store):
    return {t: store.scalar(f"SELECT count(*) FROM {t}") for t in
            ("residents", "followups", "readings", "chronic_management", "devices", "outbox", "audit")}


def test_seeded_once_with_a_report_and_a_worklist(env):
    node, creds, first = start(env)
    before = counts(node.store)
    node.close()
    node, creds, second = start(env)
    try:
        store = node.store
        assert first == {"residents": 12, "followups": 40} and second == {"residents": 0, "followups": 0}
        assert counts(store) == before                                       # a second start duplicates nothing
        numbers = [r["id_number"] for r in store.query("SELECT id_number FROM residents")]
        assert all(idnumber.is_valid(n) and n.startswith("110105") for n in numbers)   # region from [node]
        # enrolment = the resident form's ticks, one source: flags equal active management rows
        assert store.scalar("SELECT count(*) FROM residents WHERE htn = 1") == store.scalar(
            "SELECT count(*) FROM chronic_management WHERE disease = 'hypertension' AND ended_on IS NULL") == 7
        # through the real APIs: every follow-up and reading is in the outbox and the audit chain holds
        assert store.scalar("SELECT count(*) FROM outbox WHERE kind = 'followup'") == 40
        assert store.scalar("SELECT count(*) FROM outbox WHERE kind = 'referral_alert'") == 1
        assert store.scalar("SELECT count(*) FROM readings WHERE resident_id IS NULL") == 0
        assert store.scalar("SELECT count(*) FROM readings WHERE code = '8302-2'") == 9    # a height for each
        assert audit.verify(store.conn).ok
        # 张秀英's wristband: bound to her, and in the simulator's credentials
        band = store.one("SELECT d.kind, r.name FROM devices d JOIN residents r ON r.id = d.resident_id"
                         " WHERE d.id = 'demo-band'")
        assert band == {"kind": "wearable", "name": "张秀英"}
        assert store.scalar("SELECT count(*) FROM readings WHERE device_id = 'demo-band' AND resident_id IS NOT NULL") == 14
        today = datetime.now(ZoneInfo(node.config["node"]["timezone"])).date()
        recent = today - timedelta(days=4)           # 陈玉梅's urgent visit: the month always has one
        report = source.report(store, month(recent.year, recent.month), node.config["node"]["timezone"])
        assert len(report["managed_total"].numerator) == 9
        assert report["control_hypertension"].numerator and report["followups_hypertension"].numerator
        names = {r["id"]: r["name"] for r in store.query("SELECT id, name FROM residents")}
        wl = source.build_worklist(store, today)
        assert [names[i.resident_id] for i in wl.urgent] == ["陈玉梅"]
        assert [names[i.resident_id] for i in wl.overdue] == ["刘长春"]
        assert len(wl.due) + len(wl.overdue) + len(wl.urgent) >= 2
    finally:
        node.close()
