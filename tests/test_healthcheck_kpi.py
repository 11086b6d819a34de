"""老年人健康管理率 and the worklist against a hand-computed population for 2026, including
residents who turn 65 during the year, one with no birth date, and checks of other years."""
from datetime import date

from edge.reports.elderly import Check, Resident, compute

RESIDENTS = [
    Resident("A", "甲", date(1940, 3, 1)),     # 86
    Resident("B", "乙", date(1961, 12, 31)),   # turns 65 on 31 Dec 2026: in
    Resident("C", "丙", date(1961, 1, 1)),     # turns 65 on 1 Jan 2026: in
    Resident("D", "丁", date(1962, 1, 1)),     # turns 65 in 2027: out
    Resident("E", "戊", date(1955, 6, 15)),    # 71
    Resident("F", "己", None),                 # no birth date: cannot be placed
    Resident("G", "庚", date(1958, 7, 1)),     # 68, checked only in 2025
]
CHECKS = [
    Check("A", date(2026, 4, 2), True),
    Check("B", date(2026, 5, 10), False),      # checked at 64, in the year he turns 65: counts
    Check("D", date(2026, 5, 10), True),       # not 65+ this year: not in the KPI
    Check("G", date(2025, 11, 1), True),       # last year
    Check("A", date(2026, 10, 1), True),       # a second check of A: one resident managed
]


def test_rate_numerator_denominator_and_worklist_by_hand():
    e = compute(RESIDENTS, CHECKS, 2026)
    assert e.population == ("A", "B", "C", "E", "G")          # 5 residents 65+ by 31 Dec 2026
    assert e.managed == ("A", "B")                            # 2 checked in 2026
    assert e.rate == 2 / 5
    assert (e.checks, e.complete, e.complete_share) == (3, 2, 2 / 3)
    assert [r.id for r in e.not_checked] == ["E", "G", "C"]   # oldest first
    assert e.no_birth_date == 1


def test_the_year_before_the_population_is_smaller():
    e = compute(RESIDENTS, CHECKS, 2025)
    assert e.population == ("A", "E", "G") and e.managed == ("G",)
    assert e.rate == 1 / 3


def test_empty_population_has_no_rate():
    e = compute([], [], 2026)
    assert e.rate is None and e.complete_share is None


def test_a_months_report_counts_the_checks_of_the_year_to_its_end():
    e = compute(RESIDENTS, CHECKS, 2026, until=date(2026, 4, 30))
    assert e.managed == ("A",) and e.checks == 1
