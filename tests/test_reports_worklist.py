"""The worklist on a constructed population, today = 2026-03-25 (2026-Q1); answers worked by hand:

  A  HTN last Mar 5 (next Jun 5), DM last Mar 20 (next Jun 20)      -> nothing
  B  HTN last Mar 15 first uncontrolled, next Mar 29 (inside Q1)     -> due (Mar 29)
  C  HTN last Feb 10 by phone, next Mar 10                           -> overdue 15 days
  F  HTN last 2025-12-20, next 2026-03-01                            -> overdue 24 days; not seen this year
  G  HTN last Mar 10 uncontrolled, next Mar 24                       -> overdue 1 day
  J  DM last Mar 1 urgent referral                                   -> urgent, follow up by Mar 15 (10 days late)
  K  DM only a phone visit this quarter, next May 1                  -> due (no face-to-face in Q1)
  L  HTN managed since 2025-06-01, never seen                       -> overdue since Jan 1 (83 days); not seen
  E  managed from 2026-04-01                                         -> not on the list
"""
from datetime import date

from edge.reports import worklist
from edge.reports.population import Patient, Visit

HTN, DM = "hypertension", "diabetes"
d = date


def P(rid, htn=None, dm=None):
    return Patient(rid, "name " + rid, d(1960, 1, 1), {k: v for k, v in ((HTN, htn), (DM, dm)) if v})


def V(rid, form, day, mode="1", step="1", nxt=None):
    return Visit(rid, form, day, mode, next_step=step, next_visit_date=nxt, id=rid + day.isoformat())


PATIENTS = [P("A", htn=d(2020, 1, 1), dm=d(2020, 1, 1)), P("B", htn=d(2020, 1, 1)), P("C", htn=d(2020, 1, 1)),
            P("E", htn=d(2026, 4, 1)), P("F", htn=d(2018, 1, 1)), P("G", htn=d(2018, 1, 1)),
            P("J", dm=d(2021, 1, 1)), P("K", dm=d(2025, 1, 1)), P("L", htn=d(2025, 6, 1))]
VISITS = [
    V("A", HTN, d(2026, 3, 5), "2", nxt=d(2026, 6, 5)), V("A", DM, d(2026, 3, 20), nxt=d(2026, 6, 20)),
    V("B", HTN, d(2026, 1, 15), nxt=d(2026, 4, 15)), V("B", HTN, d(2026, 3, 15), step="2", nxt=d(2026, 3, 29)),
    V("C", HTN, d(2026, 2, 10), "3", nxt=d(2026, 3, 10)),
    V("F", HTN, d(2025, 12, 20), nxt=d(2026, 3, 1)),
    V("G", HTN, d(2026, 3, 10), step="2", nxt=d(2026, 3, 24)),
    V("J", DM, d(2026, 3, 1), step="4", nxt=d(2026, 3, 15)),
    V("K", DM, d(2026, 2, 8), "3", nxt=d(2026, 5, 1)),
]


def test_worklist_sections():
    wl = worklist.build(PATIENTS, VISITS, d(2026, 3, 25))
    assert [(i.resident_id, i.due, i.days_overdue) for i in wl.urgent] == [("J", d(2026, 3, 15), 10)]
    assert [(i.resident_id, i.days_overdue) for i in wl.overdue] == [("L", 83), ("F", 24), ("C", 15), ("G", 1)]
    assert [(i.resident_id, i.disease, i.due) for i in wl.due] == [("B", HTN, d(2026, 3, 29)),
                                                                  ("K", DM, d(2026, 5, 1))]
    assert [(i.resident_id, i.last_visit) for i in wl.not_seen] == [("F", d(2025, 12, 20)), ("L", None)]


def test_a_new_followup_clears_the_entry():
    visits = VISITS + [V("J", DM, d(2026, 3, 12), nxt=d(2026, 6, 12)), V("C", HTN, d(2026, 3, 25), nxt=d(2026, 6, 25))]
    wl = worklist.build(PATIENTS, visits, d(2026, 3, 25))
    assert wl.urgent == []
    assert "C" not in {i.resident_id for i in wl.overdue + wl.due}


def test_next_quarter_everyone_is_due_again():
    wl = worklist.build(PATIENTS, VISITS, d(2026, 4, 2))
    due = {i.resident_id for i in wl.due}
    assert {"A", "E"} <= due       # A seen in Q1 only; E's management began Apr 1, never seen
