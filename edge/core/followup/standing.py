"""Per-patient summaries kept up to date in the same transaction as every save, correction or void,
so the worklist and the current period's report read one small row per patient instead of
grouping three years of follow-ups (5,000 residents: ~60,000 rows) on every page view.

- followup_standing (resident, form): the last follow-up (id, date, mode, next step, next date)
  and the date of the last face-to-face one.
- followup_year (resident, form, year): face-to-face count, and the last BP and last fasting
  glucose of that year as 'date|id|value(s)' text (ISO dates sort as text).

These are derived data: rebuilt from followups for one patient and form at a time (`refresh`),
or for everyone (`rebuild`, used by the migration that creates them). Voided follow-ups do not count.
"""
from __future__ import annotations

import sqlite3

FACE_TO_FACE = ("1", "2")


def refresh(conn: sqlite3.Connection, resident_id: str, form: str) -> None:
    """Recompute both summaries of one patient's form (call inside the change's transaction)."""
    rows = conn.execute("SELECT id, visit_date, visit_mode, next_step, next_visit_date, sbp, dbp, fbg"
                        " FROM followups WHERE resident_id = ? AND form = ? AND voided_at IS NULL"
                        " ORDER BY visit_date, id", (resident_id, form)).fetchall()
    conn.execute("DELETE FROM followup_standing WHERE resident_id = ? AND form = ?", (resident_id, form))
    conn.execute("DELETE FROM followup_year WHERE resident_id = ? AND form = ?", (resident_id, form))
    if not rows:
        return
    last = rows[-1]
    f2f = [r for r in rows if r[2] in FACE_TO_FACE]
    conn.execute("INSERT INTO followup_standing (resident_id, form, last_id, last_date, last_mode, next_step,"
                 " next_visit_date, last_f2f_date) VALUES (?,?,?,?,?,?,?,?)",
                 (resident_id, form, last[0], last[1], last[2], last[3], last[4], f2f[-1][1] if f2f else None))
    years: dict[int, list] = {}
    for r in rows:
        years.setdefault(int(r[1][:4]), []).append(r)
    for year, rs in years.items():
        bp = [r for r in rs if r[5] is not None and r[6] is not None]
        fbg = [r for r in rs if r[7] is not None]
        conn.execute("INSERT INTO followup_year (year, resident_id, form, face_to_face, last_bp, last_fbg)"
                     " VALUES (?,?,?,?,?,?)",
                     (year, resident_id, form, sum(r[2] in FACE_TO_FACE for r in rs),
                      f"{bp[-1][1]}|{bp[-1][0]}|{bp[-1][5]}|{bp[-1][6]}" if bp else None,
                      f"{fbg[-1][1]}|{fbg[-1][0]}|{fbg[-1][7]}" if fbg else None))


def rebuild(conn: sqlite3.Connection) -> None:
    for resident_id, form in conn.execute("SELECT DISTINCT resident_id, form FROM followups").fetchall():
        refresh(conn, resident_id, form)
