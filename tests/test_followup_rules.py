"""The follow-up rules at their boundaries (docs/domain.md §1.2; 国家基本公共卫生服务规范 第三版)."""
from datetime import date

import pytest

from edge.core.followup import rules
from edge.core.followup.fields import FORM_DIABETES as DM, FORM_HYPERTENSION as HTN

VISIT = date(2026, 3, 10)


@pytest.mark.parametrize("sbp,dbp,age,controlled", [
    (139, 89, 64, True),     # just below 140/90
    (140, 89, 64, False),    # SBP at the limit is not controlled
    (139, 90, 64, False),    # DBP at the limit is not controlled
    (140, 90, 64, False),
    (149, 89, 65, True),     # 65 and over: below 150/90
    (150, 89, 65, False),
    (149, 90, 65, False),    # DBP target stays 90 at 65
    (145, 85, 64, False),    # the same reading one year younger is uncontrolled
    (145, 85, 65, True),
    (139, 89, None, True),   # unknown age: the stricter general target
    (145, 85, None, False),
])
def test_bp_control_targets(sbp, dbp, age, controlled):
    assert rules.bp_controlled(sbp, dbp, age) is controlled
    expected = "1" if controlled else "2"
    assert rules.suggest_classification(HTN, {"sbp": sbp, "dbp": dbp}, age) == expected


def test_age_turns_65_on_the_birthday():
    assert rules.age_on(date(1961, 3, 11), VISIT) == 64
    assert rules.age_on(date(1961, 3, 10), VISIT) == 65
    assert rules.bp_target(rules.age_on(date(1961, 3, 11), VISIT)) == (140, 90)
    assert rules.bp_target(rules.age_on(date(1961, 3, 10), VISIT)) == (150, 90)


@pytest.mark.parametrize("fbg,expected", [(6.9, "1"), (7.0, "2"), (7.1, "2"), (4.0, "1"), (3.9, "2"), (3.5, "2")])
def test_glucose_control_below_7_and_above_hypoglycaemia(fbg, expected):
    assert rules.suggest_classification(DM, {"fbg": fbg}, 50) == expected


def test_no_glucose_that_calls_for_urgent_referral_is_classified_controlled():
    for tenth in range(5, 500):
        fbg = tenth / 10
        urgent = any(a.code.startswith("glucose") for a in rules.urgent_alerts(DM, {"fbg": fbg}))
        assert not (urgent and rules.suggest_classification(DM, {"fbg": fbg}, 50) == "1"), fbg


def test_no_measurement_no_suggestion_and_adverse_reaction_wins():
    assert rules.suggest_classification(HTN, {}, 50) is None
    assert rules.suggest_classification(DM, {"sbp": 120, "dbp": 80}, 50) is None  # DM judged on FBG
    assert rules.suggest_classification(HTN, {"sbp": 120, "dbp": 80, "adverse_reaction": "2"}, 50) == "3"


@pytest.mark.parametrize("sbp,dbp,urgent", [
    (179, 109, False), (180, 100, True), (170, 110, True), (180, 110, True), (179, 90, False)])
def test_urgent_bp_both_forms(sbp, dbp, urgent):
    for form in (HTN, DM):
        codes = [a.code for a in rules.urgent_alerts(form, {"sbp": sbp, "dbp": dbp})]
        assert ("bp" in codes) is urgent


@pytest.mark.parametrize("fbg,code", [
    (16.6, None), (16.7, "glucose_high"), (20.0, "glucose_high"),
    (4.0, None), (3.9, "glucose_low"), (2.5, "glucose_low"), (7.0, None)])
def test_urgent_glucose_boundaries(fbg, code):
    codes = [a.code for a in rules.urgent_alerts(DM, {"fbg": fbg})]
    assert codes == ([code] if code else [])


def test_glucose_rules_do_not_apply_to_the_hypertension_form():
    assert rules.urgent_alerts(HTN, {"fbg": 20.0}) == []


def test_diabetes_heart_rate_temperature_and_danger_signs():
    assert [a.code for a in rules.urgent_alerts(DM, {"heart_rate": 100, "temperature": 39.0})] == []
    got = [a.code for a in rules.urgent_alerts(DM, {"heart_rate": 101, "temperature": 39.1})]
    assert got == ["heart_rate", "temperature"]
    got = rules.urgent_alerts(HTN, {"sbp": 130, "dbp": 80, "danger_signs": ["orthopnoea", "pregnancy"]})
    assert [a.code for a in got] == ["sign:orthopnoea", "sign:pregnancy"]
    assert "喘憋不能平卧" in got[0].text("zh") and "lie flat" in got[0].text("en")
    assert [a.code for a in rules.urgent_alerts(DM, {"danger_signs": ["acetone"]})] == ["sign:acetone"]


def test_next_visit_routine_two_weeks_referral_urgent():
    n = rules.propose_next(VISIT, "1", None, False)
    assert (n.step, n.date, n.refer) == ("1", date(2026, 6, 10), False)
    n = rules.propose_next(VISIT, "2", "1", False)            # first uncontrolled
    assert (n.step, n.date, n.refer) == ("2", date(2026, 3, 24), False)
    n = rules.propose_next(VISIT, "2", None, False)           # first visit ever, uncontrolled
    assert (n.step, n.refer) == ("2", False)
    n = rules.propose_next(VISIT, "2", "2", False)            # two in a row
    assert (n.step, n.date, n.refer) == ("3", date(2026, 3, 24), True)
    n = rules.propose_next(VISIT, "3", "2", False)            # adverse reaction after uncontrolled
    assert (n.step, n.refer) == ("3", True)
    n = rules.propose_next(VISIT, "4", None, False)           # complication: refer
    assert (n.step, n.refer) == ("3", True)
    n = rules.propose_next(VISIT, "1", "2", True)             # urgent always wins
    assert (n.step, n.date, n.refer) == ("4", date(2026, 3, 24), True)


def test_routine_next_visit_clamps_to_month_end():
    assert rules.propose_next(date(2026, 11, 30), "1", None, False).date == date(2027, 2, 28)


def test_bmi_from_recorded_height():
    assert rules.bmi(70, 175) == 22.9
    assert rules.bmi(70, None) is None
    s = rules.suggestions(HTN, {"sbp": 128, "dbp": 82, "weight": 80, "height": 160}, age=70,
                          previous="1", visit_date=VISIT)
    assert s["bmi"] == 31.2 and s["classification"] == "1" and s["next_step"] == "1"
    assert s["next_visit_date"] == "2026-06-10" and s["alerts"] == []
