"""Every KPI on a small constructed population; the right answers are worked out by hand below.

Population (2026, report periods 2026-Q1, 2026-03 and 2026-01):

  HTN  A  born 1960-05-01 (65 all Q1)  visits Jan 10 clinic 150/85 (device), Mar 5 home 145/88 (typed)
       B  born 1962-03-20 (63)         Feb 1 clinic 130/80 (device), Mar 15 clinic 145/85 (device)
       C  born 1950-01-01              Feb 10 phone, no BP
       D  managed from 2026-02-15      Mar 1 clinic 139/89 (typed)
       E  managed from 2026-04-01      (not managed in Q1)
       F  managed 2018                 only Dec 20 2025 clinic 120/80
       G  born 1961-03-11 (64 on Mar 10) Mar 10 clinic 145/85 (device)
  DM   A  since 2022                   Feb 2 clinic FBG 7.0, Mar 20 clinic FBG 6.9
       J  since 2021                   Jan 5 clinic FBG 5.0, Mar 1 clinic FBG 16.7
       K  since 2025                   Feb 8 phone FBG 6.0

Q1 (window Jan 1 - Mar 31, 3 months: 1 face-to-face visit required):
  HTN managed A B C D F G = 6; standard A B D G = 4 (C phone only, F none);
      D's window starts in Feb (2 months: ceil(8/12) = 1 visit) so one visit is enough;
      controlled: A (145/88 < 150/90 at 65), D (139/89) = 2. B 145 at 63 no; G 145 at 64 no;
      C no BP, F no 2026 visit: lost = not controlled.
  DM  managed A J K = 3; standard A J = 2 (K phone only); controlled A (6.9), K (6.0) = 2; J 16.7 no.
  Distinct managed A B C D F G J K = 8.
  Follow-ups in Q1: HTN 7 (6 face to face, 1 phone); DM 5 (4 + 1 phone).
  BP from a device: visits with a BP in Q1 = A1 A2 B1 B2 D1 G1 = 6, from a device A1 B1 B2 G1 = 4.
2026-03: same window as Q1, so the same rates; HTN follow-ups in March: A2 B2 D1 G1 = 4.
2026-01: window Jan only (1 visit required): HTN managed A B C F G = 5 (D from Feb);
  standard A = 1; controlled none (A's Jan 10 150/85 at 65 is not < 150).
"""
from datetime import date

import pytest

from edge.reports import kpi
from edge.reports.population import Patient, Visit, month, quarter, year, parse_period

HTN, DM = "hypertension", "diabetes"
d = date


def P(rid, born=None, htn=None, dm=None):
    managed = {k: v for k, v in ((HTN, htn), (DM, dm)) if v}
    return Patient(rid, rid, born, managed)


PATIENTS = [
    P("A", d(1960, 5, 1), htn=d(2020, 1, 1), dm=d(2022, 1, 1)),
    P("B", d(1962, 3, 20), htn=d(2019, 1, 1)),
    P("C", d(1950, 1, 1), htn=d(2019, 1, 1)),
    P("D", d(1980, 1, 1), htn=d(2026, 2, 15)),
    P("E", d(1970, 1, 1), htn=d(2026, 4, 1)),
    P("F", d(1955, 1, 1), htn=d(2018, 1, 1)),
    P("G", d(1961, 3, 11), htn=d(2018, 1, 1)),
    P("J", d(1958, 1, 1), dm=d(2021, 1, 1)),
    P("K", d(1966, 1, 1), dm=d(2025, 1, 1)),
    P("Z", d(1990, 1, 1)),                       # a resident with no chronic disease
]
VISITS = [
    Visit("A", HTN, d(2026, 1, 10), "1", 150, 85, bp_source="device", id="A1"),
    Visit("A", HTN, d(2026, 3, 5), "2", 145, 88, bp_source="typed", id="A2"),
    Visit("B", HTN, d(2026, 2, 1), "1", 130, 80, bp_source="device", id="B1"),
    Visit("B", HTN, d(2026, 3, 15), "1", 145, 85, bp_source="device", id="B2"),
    Visit("C", HTN, d(2026, 2, 10), "3", id="C1"),
    Visit("D", HTN, d(2026, 3, 1), "1", 139, 89, bp_source="typed", id="D1"),
    Visit("F", HTN, d(2025, 12, 20), "1", 120, 80, bp_source="device", id="F1"),
    Visit("G", HTN, d(2026, 3, 10), "1", 145, 85, bp_source="device", id="G1"),
    Visit("A", DM, d(2026, 2, 2), "1", fbg=7.0, id="A3"),
    Visit("A", DM, d(2026, 3, 20), "1", fbg=6.9, id="A4"),
    Visit("J", DM, d(2026, 1, 5), "1", fbg=5.0, id="J1"),
    Visit("J", DM, d(2026, 3, 1), "1", fbg=16.7, id="J2"),
    Visit("K", DM, d(2026, 2, 8), "3", fbg=6.0, id="K1"),
]


def ids(ind):
    return set(ind.numerator), (set(ind.denominator) if ind.denominator is not None else None)


def test_quarter_report_every_kpi():
    r = kpi.compute(PATIENTS, VISITS, quarter(2026, 1))
    assert ids(r["managed_hypertension"]) == ({"A", "B", "C", "D", "F", "G"}, None)
    assert ids(r["managed_diabetes"]) == ({"A", "J", "K"}, None)
    assert len(r["managed_total"].numerator) == 8
    assert ids(r["standard_hypertension"]) == ({"A", "B", "D", "G"}, {"A", "B", "C", "D", "F", "G"})
    assert r["standard_hypertension"].percent == "66.7%"
    assert ids(r["control_hypertension"]) == ({"A", "D"}, {"A", "B", "C", "D", "F", "G"})
    assert r["control_hypertension"].percent == "33.3%"
    assert ids(r["standard_diabetes"]) == ({"A", "J"}, {"A", "J", "K"})
    assert ids(r["control_diabetes"]) == ({"A", "K"}, {"A", "J", "K"})
    assert r.followups[HTN] == {"total": 7, "face_to_face": 6, "phone": 1}
    assert r.followups[DM] == {"total": 5, "face_to_face": 4, "phone": 1}
    assert ids(r["device_bp"]) == ({"A1", "B1", "B2", "G1"}, {"A1", "A2", "B1", "B2", "D1", "G1"})


def test_month_uses_year_to_date_window_for_rates_and_the_month_for_counts():
    r = kpi.compute(PATIENTS, VISITS, month(2026, 3))
    q = kpi.compute(PATIENTS, VISITS, quarter(2026, 1))
    for key in kpi.RATES:
        assert r[key] == q[key]
    assert r.followups[HTN] == {"total": 4, "face_to_face": 4, "phone": 0}
    assert set(r["followups_hypertension"].numerator) == {"A", "B", "D", "G"}


def test_january_report():
    r = kpi.compute(PATIENTS, VISITS, month(2026, 1))
    assert ids(r["standard_hypertension"]) == ({"A"}, {"A", "B", "C", "F", "G"})
    assert ids(r["control_hypertension"]) == (set(), {"A", "B", "C", "F", "G"})
    assert r["control_hypertension"].percent == "0.0%"
    assert ids(r["control_diabetes"]) == ({"J"}, {"A", "J", "K"})   # J's Jan FBG 5.0


def test_annual_standard_needs_four_face_to_face():
    pats = [P("A", d(1970, 1, 1), htn=d(2020, 1, 1)), P("H", d(1970, 1, 1), htn=d(2020, 1, 1)),
            P("N", d(1970, 1, 1), htn=d(2025, 10, 1))]
    four = [Visit("A", HTN, d(2025, m, 5), "1", 120, 80, id=f"a{m}") for m in (2, 5, 8, 11)]
    three_and_phone = [Visit("H", HTN, d(2025, m, 5), "1" if m != 11 else "3", 120, 80, id=f"h{m}")
                       for m in (2, 5, 8, 11)]
    new = [Visit("N", HTN, d(2025, 11, 5), "1", 120, 80, id="n1")]   # Oct-Dec: ceil(4*3/12) = 1
    r = kpi.compute(pats, four + three_and_phone + new, year(2025))
    assert ids(r["standard_hypertension"]) == ({"A", "N"}, {"A", "H", "N"})
    assert kpi.required_visits(d(2025, 1, 1), d(2025, 12, 31)) == 4
    assert kpi.required_visits(d(2025, 1, 1), d(2025, 4, 30)) == 2


def test_control_judged_on_the_last_followup_with_a_measurement():
    pats = [P("A", d(1970, 1, 1), htn=d(2020, 1, 1))]
    visits = [Visit("A", HTN, d(2026, 1, 5), "1", 150, 95, id="1"),
              Visit("A", HTN, d(2026, 2, 5), "1", 120, 80, id="2"),
              Visit("A", HTN, d(2026, 3, 5), "3", id="3")]            # later phone visit, no BP
    assert ids(kpi.compute(pats, visits, quarter(2026, 1))["control_hypertension"])[0] == {"A"}
    visits.append(Visit("A", HTN, d(2026, 3, 20), "1", 140, 80, id="4"))
    assert ids(kpi.compute(pats, visits, quarter(2026, 1))["control_hypertension"])[0] == set()


def test_empty_population_has_no_rate():
    r = kpi.compute([], [], quarter(2026, 1))
    assert r["control_hypertension"].rate is None and r["control_hypertension"].percent == ""


def test_parse_period():
    assert parse_period("2026-03") == month(2026, 3)
    assert parse_period("2026-q2") == quarter(2026, 2)
    assert quarter(2026, 2).end == d(2026, 6, 30) and month(2024, 2).end == d(2024, 2, 29)
    assert parse_period("2025") == year(2025)
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period("2026-13")
