"""After a save, the pages recompute only the residents it changed (edge/reports/patched.py), and
the report and the worklist they show stay exactly what a computation from scratch over every
record gives (kpi.compute, worklist.build), over random sequences of the changes a clinic makes:
new, corrected and voided follow-ups (urgent referrals among them), ended and new managements,
corrected birth dates and names, voided residents, and a follow-up dated after today."""
from __future__ import annotations

import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from edge.core import management
from edge.core.errors import CoreError
from edge.core.followup import records
from edge.core.store import Store
from edge.reports import cached
from test_reports_cached import PERIODS, TODAY, scratch, shown
from test_reports_fast import NOW, village

ACTIONS = ("save", "save", "save", "correct", "void", "end", "enrol", "birth", "name", "void resident", "later")


def rid_of(n: int) -> str:
    return f"R{n % 30:02d}"


def change(store: Store, action: str, n: int, k: int) -> None:
    rid, disease = rid_of(n), ("hypertension", "diabetes")[k % 2]
    day = date(2026, 1, 1) + timedelta(days=k % 87)          # 1 January .. today (28 March)
    values = {"visit_date": day.isoformat(), "visit_mode": "1123"[k % 4], "classification": "1",
              "next_step": "1124"[k % 4], "next_visit_date": (day + timedelta(days=(14, 90)[k % 2])).isoformat(),
              "sbp": 110 + k % 60, "dbp": 60 + k % 40}
    if disease == "diabetes":
        values["fbg"] = round(4 + (k % 80) / 10, 1)
    last = store.scalar("SELECT id FROM followups WHERE resident_id = ? AND form = ? AND voided_at IS NULL"
                        " ORDER BY visit_date DESC, id DESC", (rid, disease))
    try:
        if action == "save":
            records.save(store, resident_id=rid, form=disease, values=values, actor="doc", at=NOW)
        elif action == "correct" and last:
            records.save(store, resident_id=rid, form=disease, values=values, actor="doc", at=NOW,
                         followup_id=last, reason="录错")
        elif action == "void" and last:
            records.void(store, last, reason="录错病人", actor="doc", at=NOW)
        elif action == "end":
            management.end(store, resident_id=rid, disease=disease, on=day, reason="moved", actor="doc", at=NOW)
        elif action == "enrol":
            records.enrol(store, resident_id=rid, disease=disease, since=day - timedelta(days=k), actor="doc", at=NOW)
        elif action == "later":       # dated after today: the pages take the full path from here
            records.save(store, resident_id=rid, form=disease, actor="doc", at=NOW,
                         values={**values, "visit_date": "2026-04-02", "next_visit_date": "2026-07-02"})
        else:
            column, value = {"birth": ("birth_date", f"19{40 + k % 50}-0{1 + k % 9}-15"),
                             "name": ("name", f"改名{k}"), "void resident": ("voided_at", "2026-03-01T00:00:00Z")}.get(
                action, ("name", f"居民{n % 30}"))
            with store.atomic() as conn:
                conn.execute(f"UPDATE residents SET {column} = ? WHERE id = ?", (value, rid))
    except CoreError:
        pass      # refused (not managed, already ended...): changes nothing, the pages must agree


SEEDED: dict[str, Path] = {}


def fresh_village(tmp: Path) -> Store:
    """A copy of one seeded village (seeding it again for every example would take seconds)."""
    if "db" not in SEEDED:
        path = Path(tempfile.mkdtemp(prefix="village-")) / "edge.db"
        s = Store(path)
        village(s, 4)
        s.close()
        SEEDED["db"] = path
    for suffix in ("", "-wal", "-shm"):
        if SEEDED["db"].with_name("edge.db" + suffix).exists():
            shutil.copy(SEEDED["db"].with_name("edge.db" + suffix), tmp / ("edge.db" + suffix))
    return Store(tmp / "edge.db")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 29), st.integers(0, 400)), min_size=1,
                max_size=8))
def test_patched_pages_equal_a_full_recompute_after_any_saves(steps):
    keep = cached.KEEP
    cached.KEEP = len(PERIODS) + 1
    cached.forget()
    with tempfile.TemporaryDirectory() as tmp:
        store = fresh_village(Path(tmp))
        try:
            assert shown(store) == scratch(store)
            computed = cached.counts["parts computed"]
            for action, n, k in steps:
                change(store, action, n, k)
                assert shown(store) == scratch(store), (action, n, k)
            if not any(a == "later" for a, _n, _k in steps):
                # the current month, quarter and today's worklist were patched, never computed again
                assert cached.counts["parts computed"] == computed
        finally:
            store.close()
            cached.KEEP = keep
            cached.forget()


def test_a_result_older_than_the_kept_changes_is_computed_again(tmp_path, monkeypatch):
    cached.forget()
    store = fresh_village(tmp_path)
    try:
        first = shown(store)
        from edge.core import schema_followup
        with store.atomic() as conn:      # more changes than report_changes keeps
            for i in range(schema_followup.KEEP_CHANGES + 5):
                conn.execute("UPDATE residents SET name = ? WHERE id = 'R01'", (f"名{i % 3}",))
        computed = cached.counts["parts computed"]
        assert shown(store) == scratch(store) != first
        assert cached.counts["parts computed"] > computed
    finally:
        store.close()
        cached.forget()


def test_another_database_is_never_patched_from_this_ones_parts(tmp_path):
    cached.forget()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = fresh_village(tmp_path / "a"), fresh_village(tmp_path / "b")     # the same history so far
    try:
        shown(a)
        change(b, "save", 3, 5)         # b goes its own way: one save, as a has not seen
        change(a, "void resident", 7, 0)
        change(a, "save", 3, 5)         # a: as many changes, so its seq passes b's
        assert shown(b) == scratch(b)
        assert shown(a) == scratch(a)
    finally:
        a.close()
        b.close()
        cached.forget()
