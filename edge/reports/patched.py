"""A report's and the worklist's parts kept per resident, so that after a save only the residents
it changed are read again (issue 17.3; docs/domain.md §2.1).

Every change to a follow-up, a management or a resident appends, in its own transaction, the
resident it was about and the new token (report_changes, schema_followup 550). A kept result
remembers the (seq, token) it was read at. Next time it reads the residents logged after that row,
drops their parts, reads their rows again (the same queries as a full computation, limited to them)
and assembles the result from every resident's parts with the same code a full computation uses
(kpi.from_flags, worklist.ordered). Rereading a resident is idempotent, so a change that commits
while parts are read is read again next time. The result is computed from scratch when the row it
was read at is gone (more than KEEP_CHANGES changes since, or another database restored) or when
more than MAX_CHANGED residents changed.
"""
from __future__ import annotations

import threading
from datetime import date
from typing import Sequence

from . import kpi, source, worklist
from .population import DISEASES, Period

MAX_CHANGED = 500


def position(store) -> tuple[int, bytes]:
    """The last change's seq and the token now, read together."""
    row = store.conn.execute("SELECT (SELECT max(seq) FROM report_changes), token FROM report_inputs"
                             " WHERE id = 1").fetchone()
    return row[0], row[1]


def changed_since(store, seq: int, token: bytes) -> list[str] | None:
    """The residents changed after (seq, token); None when that history is no longer here."""
    if store.scalar("SELECT token FROM report_changes WHERE seq = ?", (seq,)) != token:
        return None
    rows = store.conn.execute("SELECT DISTINCT resident_id FROM report_changes WHERE seq > ?"
                              " AND resident_id IS NOT NULL LIMIT ?", (seq, MAX_CHANGED + 1)).fetchall()
    return None if len(rows) > MAX_CHANGED else sorted(r[0] for r in rows)


class Kept:
    """One result and the per-resident parts it is assembled from."""

    def __init__(self):
        self.lock = threading.Lock()
        self.at: tuple[int, bytes] | None = None
        self.value = None

    def current(self, store) -> tuple[object, str]:
        """The result now, and how it was had: kept, patched or parts computed (from scratch)."""
        with self.lock:
            at = position(store)
            if at == self.at:
                return self.value, "kept"
            changed = None if self.at is None else changed_since(store, *self.at)
            if changed is None:
                self.parts = {}
                self.read(store, None)
                how = "parts computed"
            else:
                for rid in changed:
                    self.parts.pop(rid, None)
                if changed:
                    self.read(store, changed)
                how = "patched"
            self.at, self.value = at, self.assemble()
            return self.value, how

    def read(self, store, residents: Sequence[str] | None) -> None:
        raise NotImplementedError

    def assemble(self):
        raise NotImplementedError


class ReportParts(Kept):
    """The period's follow-up report (no readings) from each resident's flags and follow-ups done;
    only for a period with nothing in its year after its end (source.followup_report's first path)."""

    def __init__(self, period: Period):
        super().__init__()
        self.period = period

    def read(self, store, residents):
        for disease, judged in kpi.flags(source.managed_year_to_date(store, self.period, residents),
                                         self.period).items():
            for f in judged:
                self.parts.setdefault(f[0], ([], []))[0].append((disease, f))
        for row in source.done_in(store, self.period, residents):
            self.parts.setdefault(row[0], ([], []))[1].append(row)

    def assemble(self) -> kpi.Report:
        judged: dict[str, list[kpi.Flags]] = {d: [] for d in DISEASES}
        done = []
        for flags, rows in self.parts.values():
            for disease, f in flags:
                judged.setdefault(disease, []).append(f)
            done += rows
        return kpi.from_flags(judged, done, self.period)


class WorklistParts(Kept):
    """Today's worklist from each resident's placed items; only while no follow-up is dated after
    today (source.build_worklist's first path)."""

    def __init__(self, today: date):
        super().__init__()
        self.today = today

    def read(self, store, residents):
        for row in source.managed_standings(store, self.today, residents):
            self.parts[row[0]] = worklist.placed([row], self.today)

    def assemble(self) -> worklist.Worklist:
        wl = worklist.Worklist(self.today)
        for rid in sorted(self.parts):
            p = self.parts[rid]
            wl.urgent += p.urgent
            wl.overdue += p.overdue
            wl.due += p.due
            wl.not_seen += p.not_seen
        return worklist.ordered(wl)
