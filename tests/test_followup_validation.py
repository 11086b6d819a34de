"""Server-side validation of the follow-up forms: typed values and a message per field."""
from datetime import date

from edge.core.followup import fields
from edge.core.followup.validation import validate

TODAY = date(2026, 3, 10)
ROUTINE = {"visit_date": "2026-03-10", "visit_mode": "1", "sbp": "132", "dbp": "84",
           "classification": "1", "next_visit_date": "2026-06-10"}


def test_routine_hypertension_visit_is_valid_and_typed():
    v = validate("hypertension", ROUTINE, today=TODAY)
    assert v.ok, v.errors
    assert v.values["sbp"] == 132 and v.values["dbp"] == 84 and v.values["visit_mode"] == "1"
    assert v.values["medications"] == [] and v.values["symptoms"] == []


def test_required_fields_named_in_chinese_and_english():
    v = validate("hypertension", {"visit_mode": "1"}, today=TODAY)
    assert v.errors["visit_date"] == "请填写随访日期"
    assert v.errors["sbp"] == "请填写收缩压"
    assert set(v.errors) == {"visit_date", "sbp", "dbp", "classification", "next_visit_date"}
    en = validate("hypertension", {"visit_mode": "1"}, today=TODAY, lang="en")
    assert en.errors["sbp"] == "Systolic BP is required"


def test_phone_visit_needs_no_measurement():
    v = validate("hypertension", {**ROUTINE, "visit_mode": "3", "sbp": "", "dbp": ""}, today=TODAY)
    assert v.ok, v.errors


def test_diabetes_face_to_face_needs_fasting_glucose():
    v = validate("diabetes", {**ROUTINE, "sbp": "", "dbp": ""}, today=TODAY)
    assert v.errors == {"fbg": "请填写空腹血糖值"}


def test_out_of_range_bad_number_bad_code_bad_date():
    v = validate("hypertension", {**ROUTINE, "sbp": "400", "dbp": "8x", "visit_mode": "5",
                                  "next_visit_date": "2026-13-01"}, today=TODAY, lang="en")
    assert v.errors["sbp"] == "Systolic BP must be between 40 and 300 mmHg"
    assert v.errors["dbp"] == "Diastolic BP must be a whole number"
    assert v.errors["visit_mode"] == "Visit mode: not one of the allowed options"
    assert v.errors["next_visit_date"] == "Next visit date must be a date (YYYY-MM-DD)"


def test_cross_field_checks():
    v = validate("hypertension", {**ROUTINE, "sbp": "80", "dbp": "90", "visit_date": "2026-03-11",
                                  "next_visit_date": "2026-03-11"}, today=TODAY)
    assert v.errors["dbp"] == "舒张压应低于收缩压"
    assert v.errors["visit_date"] == "随访日期不能晚于今天"
    assert v.errors["next_visit_date"] == "下次随访日期应晚于随访日期"
    v = validate("hypertension", {**ROUTINE, "classification": "3"}, today=TODAY)
    assert "adverse_reaction" in v.errors
    v = validate("hypertension", {**ROUTINE, "adverse_reaction": "2"}, today=TODAY)
    assert "adverse_reaction_text" in v.errors


def test_symptom_none_is_exclusive_and_codes_kept_in_form_order():
    v = validate("hypertension", {**ROUTINE, "symptoms": ["1", "2"]}, today=TODAY)
    assert "symptoms" in v.errors
    v = validate("hypertension", {**ROUTINE, "symptoms": "6,2"}, today=TODAY)
    assert v.values["symptoms"] == ["2", "6"] and v.ok


def test_diabetes_specific_checks():
    base = {**ROUTINE, "fbg": "6.2"}
    v = validate("diabetes", {**base, "dorsalis_pedis": "2", "hba1c": "7.1"}, today=TODAY)
    assert set(v.errors) == {"dorsalis_pedis_side", "hba1c_date"}
    v = validate("diabetes", {**base, "dorsalis_pedis": "3", "dorsalis_pedis_side": "2", "hba1c": "7.1",
                              "hba1c_date": "2026-03-01", "hypoglycaemia": "2", "staple_food": "250"},
                 today=TODAY)
    assert v.ok, v.errors
    assert v.values["fbg"] == 6.2 and v.values["staple_food"] == 250
    assert "salt" not in v.values and "heart_rate" not in v.values   # not on the diabetes form


def test_medications_need_name_times_and_dose():
    v = validate("hypertension", {**ROUTINE, "med_1_name": "氨氯地平", "med_1_times": "1", "med_1_dose": "5",
                                  "med_2_name": "", "med_2_times": "2", "med_3_name": "二甲双胍"},
                 today=TODAY)
    assert v.values["medications"] == [{"name": "氨氯地平", "times_per_day": 1, "dose_mg": 5.0}]
    assert v.errors["med_2_name"] == "请填写药物2的名称"
    assert v.errors["med_3_times"] == "请填写药物3的每日次数和每次剂量"


def test_every_code_list_field_has_choices_on_its_forms():
    for form in fields.FORMS:
        for f in fields.fields_for(form):
            if f.kind in ("code", "codes"):
                assert f.choices_for(form), (form, f.name)
    names = {f.name for f in fields.fields_for("diabetes")}
    assert {"fbg", "hba1c", "hba1c_date", "dorsalis_pedis", "staple_food", "insulin_type",
            "hypoglycaemia"} <= names
    names = {f.name for f in fields.fields_for("hypertension")}
    assert {"heart_rate", "salt", "aux_tests"} <= names and "fbg" not in names
