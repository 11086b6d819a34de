"""Server-side validation of the 健康体检表: every field's range edge, code lists, the self-care
assessment and the form's cross-checks, with messages in Chinese and English."""
import pytest

from edge.core.healthcheck import fields
from edge.core.healthcheck.validation import validate

from checkday_support import CHECK_DAY as TODAY

BASE = {"check_date": "2026-12-03"}
SELFCARE = {"selfcare_meal": "1", "selfcare_grooming": "2", "selfcare_dressing": "1", "selfcare_toilet": "1",
            "selfcare_activity": "1"}
NUMBERS = [f for f in fields.FIELDS if f.kind in ("int", "decimal")]
STEP = {0: 1, 1: 0.1, 2: 0.01}


@pytest.mark.parametrize("f", NUMBERS, ids=lambda f: f.name)
def test_every_number_accepts_its_edges_and_refuses_one_step_beyond(f):
    base = {**BASE, "risk_factors": ["5"]}         # a weight target goes with 减体重
    for ok in (f.low, f.high):
        v = validate({**base, f.name: f"{ok:g}"}, today=TODAY)
        assert f.name not in v.errors, (ok, v.errors)
        assert v.values[f.name] == ok
    step = STEP[f.decimals]
    for bad in (f.low - step, f.high + step):
        v = validate({**base, f.name: f"{round(bad, f.decimals):g}"}, today=TODAY)
        assert f.name in v.errors, bad
        assert "应在" in v.errors[f.name]


def test_range_message_names_field_range_and_unit():
    v = validate({**BASE, "temperature": "43.1"}, today=TODAY)
    assert v.errors == {"temperature": "体温应在34–43℃之间"}
    en = validate({**BASE, "temperature": "43.1"}, today=TODAY, lang="en")
    assert en.errors == {"temperature": "Temperature must be between 34 and 43 ℃"}


def test_whole_numbers_and_numbers():
    v = validate({**BASE, "pulse": "72.5", "weight": "abc"}, today=TODAY)
    assert v.errors == {"pulse": "脉率应为整数", "weight": "体重应为数字"}


@pytest.mark.parametrize("f", [f for f in fields.FIELDS if f.kind == "code"], ids=lambda f: f.name)
def test_every_code_list_accepts_its_codes_and_nothing_else(f):
    for code, _, _ in f.choices:
        assert f.name not in validate({**BASE, f.name: code}, today=TODAY).errors
    assert validate({**BASE, f.name: "9"}, today=TODAY).errors[f.name] == f"{f.zh}的选项无效"


def test_urine_grades_as_the_form_writes_them():
    v = validate({**BASE, "urine_protein": "-", "urine_glucose": "+-", "urine_ketone": "4+", "urine_blood": "2+"},
                 today=TODAY)
    assert v.ok, v.errors
    assert "urine_protein" in validate({**BASE, "urine_protein": "5+"}, today=TODAY).errors


def test_check_date_required_and_not_in_the_future():
    assert validate({}, today=TODAY).errors == {"check_date": "请填写体检日期"}
    assert validate({"check_date": "2026-12-04"}, today=TODAY).errors == {"check_date": "体检日期不能晚于今天"}
    assert validate({"check_date": "2026-13-01"}, today=TODAY).errors == {"check_date": "体检日期应为日期(年-月-日)"}


def test_diastolic_below_systolic_on_each_arm():
    v = validate({**BASE, "bp_left_sbp": "120", "bp_left_dbp": "120", "bp_right_sbp": "130",
                  "bp_right_dbp": "80"}, today=TODAY)
    assert v.errors == {"bp_left_dbp": "舒张压应低于收缩压"}


@pytest.mark.parametrize("name", fields.EXCLUSIVE_FIRST)
def test_none_cannot_be_ticked_with_another(name):
    v = validate({**BASE, name: ["1", "2"]}, today=TODAY)
    assert name in v.errors
    assert validate({**BASE, name: ["2", "3"]}, today=TODAY).values[name] == ["2", "3"]


def test_positive_screens_need_their_score():
    v = validate({**BASE, "cognition": "2", "mood": "2"}, today=TODAY)
    assert v.errors == {"mmse_score": "粗筛阳性时请填写简易智力状态检查 总分",
                        "gds_score": "粗筛阳性时请填写老年人抑郁评分检查 总分"}
    assert validate({**BASE, "cognition": "2", "mmse_score": "24", "mood": "1"}, today=TODAY).ok


def test_abnormal_answers_need_their_description():
    v = validate({**BASE, "evaluation": "2", "ecg": "2", "occupational": "2"}, today=TODAY)
    assert set(v.errors) == {"abnormal_1", "ecg_detail", "occupational_detail"}
    assert v.errors["abnormal_1"] == "选择“有异常”时请填写异常1"


def test_weight_goal_needs_lose_weight_and_ages_in_order():
    v = validate({**BASE, "weight_goal": "5", "smoking_start_age": "20", "smoking_quit_age": "19",
                  "tbil": "10", "dbil": "11"}, today=TODAY)
    assert set(v.errors) == {"weight_goal", "smoking_quit_age", "dbil"}
    assert validate({**BASE, "weight_goal": "5", "risk_factors": ["5"]}, today=TODAY).ok


def test_selfcare_computed_and_saved_with_the_band():
    v = validate({**BASE, **SELFCARE}, today=TODAY, age=70)
    assert v.ok, v.errors
    assert (v.values["selfcare_total"], v.values["selfcare_self"]) == (1, "1")


def test_selfcare_needed_from_65_and_must_agree_with_the_band():
    assert validate(BASE, today=TODAY, age=64).ok
    assert validate(BASE, today=TODAY, age=65).errors == {"selfcare_meal": "65岁及以上老年人需填写生活自理能力评估"}
    v = validate({**BASE, **SELFCARE, "selfcare_self": "3"}, today=TODAY, age=70)
    assert v.errors == {"selfcare_self": "与自理能力评估表的结果(可自理)不一致"}


def test_selfcare_level_the_item_lacks():
    v = validate({**BASE, **SELFCARE, "selfcare_dressing": "2"}, today=TODAY, lang="en")
    assert v.errors == {"selfcare_dressing": "Dressing has no such level on the form"}
