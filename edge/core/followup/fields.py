"""The fields and code lists of the two national follow-up forms (pure data, no I/O).

Sources (docs/domain.md §1.1, checked there against several independent implementations):
高血压患者随访服务记录表 and 2型糖尿病患者随访服务记录表 of 国家基本公共卫生服务规范（第三版）.
Fields marked `national=False` are seen in deployed systems but not confirmed as national
第三版 fields (docs/domain.md marks them [U]); they are kept because the workflow needs them
(the danger-sign screening before the visit, the next-step decision) and are labelled as such.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FORM_HYPERTENSION = "hypertension"
FORM_DIABETES = "diabetes"
FORMS = (FORM_HYPERTENSION, FORM_DIABETES)
BOTH = FORMS

FORM_TITLES = {
    FORM_HYPERTENSION: ("高血压患者随访服务记录表", "Hypertension follow-up record"),
    FORM_DIABETES: ("2型糖尿病患者随访服务记录表", "Type 2 diabetes follow-up record"),
}

# (code, Chinese, English)
Choice = tuple[str, str, str]

VISIT_MODES: tuple[Choice, ...] = (("1", "门诊", "clinic"), ("2", "家庭", "home"), ("3", "电话", "phone"))
FACE_TO_FACE_MODES = ("1", "2")

SYMPTOMS_HYPERTENSION: tuple[Choice, ...] = (
    ("1", "无症状", "no symptoms"), ("2", "头痛头晕", "headache, dizziness"),
    ("3", "恶心呕吐", "nausea, vomiting"), ("4", "眼花耳鸣", "blurred vision, tinnitus"),
    ("5", "呼吸困难", "dyspnoea"), ("6", "心悸胸闷", "palpitations, chest tightness"),
    ("7", "鼻衄出血不止", "nosebleed that does not stop"), ("8", "四肢发麻", "numb limbs"),
    ("9", "下肢水肿", "leg oedema"),
)
SYMPTOMS_DIABETES: tuple[Choice, ...] = (
    ("1", "无症状", "no symptoms"), ("2", "多饮", "polydipsia"), ("3", "多食", "polyphagia"),
    ("4", "多尿", "polyuria"), ("5", "视力模糊", "blurred vision"), ("6", "感染", "infection"),
    ("7", "手脚麻木", "numb hands and feet"), ("8", "下肢浮肿", "leg oedema"),
    ("9", "体重明显下降", "marked weight loss"),
)
DORSALIS_PEDIS: tuple[Choice, ...] = (("1", "触及正常", "normal"), ("2", "减弱", "weakened"),
                                      ("3", "消失", "absent"))
SIDES: tuple[Choice, ...] = (("1", "双侧", "both"), ("2", "左侧", "left"), ("3", "右侧", "right"))
SALT: tuple[Choice, ...] = (("1", "轻", "light"), ("2", "中", "medium"), ("3", "重", "heavy"))
GOOD_FAIR_POOR: tuple[Choice, ...] = (("1", "良好", "good"), ("2", "一般", "fair"), ("3", "差", "poor"))
MED_ADHERENCE: tuple[Choice, ...] = (("1", "规律", "as prescribed"), ("2", "间断", "intermittent"),
                                     ("3", "不服药", "not taking"))
NO_YES: tuple[Choice, ...] = (("1", "无", "none"), ("2", "有", "yes"))
HYPOGLYCAEMIA: tuple[Choice, ...] = (("1", "无", "none"), ("2", "偶尔", "occasional"),
                                     ("3", "频繁", "frequent"))
CLASSIFICATIONS: tuple[Choice, ...] = (
    ("1", "控制满意", "controlled"), ("2", "控制不满意", "not controlled"),
    ("3", "不良反应", "adverse reaction"), ("4", "并发症", "complication"),
)
CLASS_CONTROLLED, CLASS_UNCONTROLLED, CLASS_ADVERSE, CLASS_COMPLICATION = "1", "2", "3", "4"
# 下一步管理措施: seen in deployed systems, not confirmed as a national 第三版 field [U].
NEXT_STEPS: tuple[Choice, ...] = (
    ("1", "常规随访", "routine follow-up"),
    ("2", "第1次控制不满意2周随访", "first uncontrolled: re-visit within 2 weeks"),
    ("3", "两次控制不满意转诊随访", "twice uncontrolled: referral"),
    ("4", "紧急转诊", "urgent referral"),
)
STEP_ROUTINE, STEP_TWO_WEEKS, STEP_REFERRAL, STEP_URGENT = "1", "2", "3", "4"
# Did the patient reach the facility of the last visit's urgent referral? Asked at the next contact
# (the standard: follow an urgent referral up within 2 weeks); not a national form field [U].
REFERRAL_OUTCOMES: tuple[Choice, ...] = (("1", "到位", "arrived"), ("2", "未到位", "did not arrive"))

# Danger signs the standard lists for urgent referral, other than the measured values
# (docs/domain.md §1.2). Asked before the visit; not printed as such on the paper form.
DANGER_SIGNS_HYPERTENSION: tuple[Choice, ...] = (
    ("consciousness", "意识改变", "altered consciousness"),
    ("headache", "剧烈头痛或头晕", "severe headache or dizziness"),
    ("vomiting", "恶心呕吐", "nausea or vomiting"),
    ("vision", "视力模糊、眼痛", "blurred vision, eye pain"),
    ("palpitation", "心悸、胸闷", "palpitations, chest tightness"),
    ("orthopnoea", "喘憋不能平卧", "breathless, cannot lie flat"),
    ("pregnancy", "处于妊娠期或哺乳期同时血压高于正常", "pregnant or breastfeeding with raised BP"),
    ("other", "存在不能处理的其他疾病", "another condition the clinic cannot handle"),
)
DANGER_SIGNS_DIABETES: tuple[Choice, ...] = (
    ("consciousness", "意识或行为改变", "altered consciousness or behaviour"),
    ("acetone", "呼气有烂苹果样丙酮味", "acetone (rotten-apple) breath"),
    ("sweating", "心悸、出汗", "palpitations, sweating"),
    ("appetite", "食欲减退、恶心、呕吐", "poor appetite, nausea, vomiting"),
    ("polyuria", "多饮、多尿", "polydipsia, polyuria"),
    ("abdominal", "腹痛", "abdominal pain"),
    ("breathing", "深大呼吸", "deep (Kussmaul) breathing"),
    ("flushed", "皮肤潮红", "flushed skin"),
    ("tachycardia", "持续性心动过速(心率超过100次/分钟)", "sustained heart rate over 100/min"),
    ("fever", "体温超过39摄氏度", "temperature over 39 °C"),
    ("vision", "视力骤降", "sudden loss of vision"),
    ("pregnancy", "妊娠期及哺乳期血糖高于正常", "pregnant or breastfeeding with raised glucose"),
    ("other", "存在不能处理的其他疾病", "another condition the clinic cannot handle"),
)

MEDICATION_SLOTS = 3        # 药物名称1-3 on the paper form; 其他药物 as free text


@dataclass(frozen=True)
class Field:
    name: str
    zh: str
    en: str
    kind: str                            # int, decimal, code, codes, date, text
    forms: tuple[str, ...] = BOTH
    choices: dict[str, tuple[Choice, ...]] | tuple[Choice, ...] = ()
    low: float | None = None
    high: float | None = None
    unit: str = ""
    decimals: int = 0
    max_length: int = 200
    national: bool = True
    lifestyle: bool = False             # carried forward from the last visit
    group: str = ""

    def choices_for(self, form: str) -> tuple[Choice, ...]:
        if isinstance(self.choices, dict):
            return self.choices.get(form, ())
        return self.choices

    def label(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en

    def unit_label(self, lang: str = "zh") -> str:
        """The unit as the page shows it: the paper form's Chinese units, in English when asked."""
        return self.unit if lang == "zh" else UNITS_EN.get(self.unit, self.unit)


# The paper form's Chinese units in English (1 两 = 50 g; alcohol is counted in 两 of liquor).
UNITS_EN = {"支": "cigarettes", "两": "liang (50 g)", "次/周": "times/week", "分钟/次": "min/session",
            "克/天": "g/day", "次/分": "/min", "次/分钟": "/min", "分": "points", "分钟": "min", "年": "years",
            "岁": "years old"}


def _f(*args, **kw) -> Field:
    return Field(*args, **kw)


HTN, DM = (FORM_HYPERTENSION,), (FORM_DIABETES,)

FIELDS: tuple[Field, ...] = (
    _f("visit_date", "随访日期", "Visit date", "date", group="visit"),
    _f("visit_mode", "随访方式", "Visit mode", "code", choices=VISIT_MODES, group="visit"),
    _f("danger_signs", "紧急转诊危险征象", "Danger signs (urgent referral)", "codes",
       choices={FORM_HYPERTENSION: DANGER_SIGNS_HYPERTENSION, FORM_DIABETES: DANGER_SIGNS_DIABETES},
       national=False, group="visit"),
    _f("symptoms", "症状", "Symptoms", "codes",
       choices={FORM_HYPERTENSION: SYMPTOMS_HYPERTENSION, FORM_DIABETES: SYMPTOMS_DIABETES},
       group="symptoms"),
    _f("symptoms_other", "其他症状", "Other symptoms", "text", group="symptoms"),
    _f("sbp", "收缩压", "Systolic BP", "int", low=40, high=300, unit="mmHg", group="signs"),
    _f("dbp", "舒张压", "Diastolic BP", "int", low=30, high=200, unit="mmHg", group="signs"),   # 20: an artefact
    _f("height", "身高", "Height", "decimal", low=30, high=250, unit="cm", decimals=1,
       national=False, group="signs"),
    _f("weight", "体重", "Weight", "decimal", low=0.5, high=350, unit="kg", decimals=1, group="signs"),
    _f("weight_target", "目标体重", "Target weight", "decimal", low=0.5, high=350, unit="kg",
       decimals=1, lifestyle=True, group="signs"),
    _f("bmi", "体质指数", "BMI", "decimal", low=5, high=100, unit="kg/m²", decimals=1, group="signs"),
    _f("bmi_target", "目标体质指数", "Target BMI", "decimal", low=5, high=100, unit="kg/m²",
       decimals=1, lifestyle=True, group="signs"),
    _f("heart_rate", "心率", "Heart rate", "int", forms=HTN, low=20, high=300, unit="次/分",
       group="signs"),
    _f("dorsalis_pedis", "足背动脉搏动", "Dorsalis pedis pulse", "code", forms=DM,
       choices=DORSALIS_PEDIS, group="signs"),
    _f("dorsalis_pedis_side", "足背动脉搏动(侧)", "Dorsalis pedis side", "code", forms=DM,
       choices=SIDES, group="signs"),
    _f("signs_other", "其他体征", "Other signs", "text", group="signs"),
    _f("smoking", "日吸烟量", "Cigarettes a day", "int", low=0, high=200, unit="支", lifestyle=True,
       group="lifestyle"),
    _f("smoking_target", "日吸烟量(目标)", "Cigarettes a day (target)", "int", low=0, high=200,
       unit="支", lifestyle=True, group="lifestyle"),
    _f("drinking", "日饮酒量", "Alcohol a day", "decimal", low=0, high=50, unit="两", decimals=1,
       lifestyle=True, group="lifestyle"),
    _f("drinking_target", "日饮酒量(目标)", "Alcohol a day (target)", "decimal", low=0, high=50,
       unit="两", decimals=1, lifestyle=True, group="lifestyle"),
    _f("exercise_times", "运动次数", "Exercise sessions a week", "int", low=0, high=50, unit="次/周",
       lifestyle=True, group="lifestyle"),
    _f("exercise_minutes", "每次运动时间", "Minutes per session", "int", low=0, high=600,
       unit="分钟/次", lifestyle=True, group="lifestyle"),
    _f("exercise_times_target", "运动次数(目标)", "Exercise sessions a week (target)", "int", low=0,
       high=50, unit="次/周", lifestyle=True, group="lifestyle"),
    _f("exercise_minutes_target", "每次运动时间(目标)", "Minutes per session (target)", "int", low=0,
       high=600, unit="分钟/次", lifestyle=True, group="lifestyle"),
    _f("salt", "摄盐情况", "Salt intake", "code", forms=HTN, choices=SALT, lifestyle=True,
       group="lifestyle"),
    _f("salt_target", "摄盐情况(目标)", "Salt intake (target)", "code", forms=HTN, choices=SALT,
       lifestyle=True, group="lifestyle"),
    _f("staple_food", "主食", "Staple food", "int", forms=DM, low=0, high=2000, unit="克/天",
       lifestyle=True, group="lifestyle"),
    _f("staple_food_target", "主食(目标)", "Staple food (target)", "int", forms=DM, low=0, high=2000,
       unit="克/天", lifestyle=True, group="lifestyle"),
    _f("psych", "心理调整", "Psychological adjustment", "code", choices=GOOD_FAIR_POOR, lifestyle=True,
       group="lifestyle"),
    _f("compliance", "遵医行为", "Adherence to advice", "code", choices=GOOD_FAIR_POOR, lifestyle=True,
       group="lifestyle"),
    _f("aux_tests", "辅助检查", "Auxiliary tests", "text", forms=HTN, max_length=500, group="tests"),
    _f("fbg", "空腹血糖值", "Fasting glucose", "decimal", forms=DM, low=0.5, high=50, unit="mmol/L",
       decimals=1, group="tests"),
    _f("hba1c", "糖化血红蛋白", "HbA1c", "decimal", forms=DM, low=2, high=25, unit="%", decimals=1,
       group="tests"),
    _f("hba1c_date", "检查日期", "HbA1c test date", "date", forms=DM, group="tests"),
    _f("tests_other", "其他检查", "Other tests", "text", forms=DM, max_length=500, group="tests"),
    _f("med_adherence", "服药依从性", "Medication adherence", "code", choices=MED_ADHERENCE,
       lifestyle=True, group="treatment"),
    _f("adverse_reaction", "药物不良反应", "Adverse drug reaction", "code", choices=NO_YES,
       group="treatment"),
    _f("adverse_reaction_text", "不良反应描述", "Adverse reaction details", "text", group="treatment"),
    _f("hypoglycaemia", "低血糖反应", "Hypoglycaemia", "code", forms=DM, choices=HYPOGLYCAEMIA,
       group="treatment"),
    _f("classification", "此次随访分类", "Classification of this visit", "code",
       choices=CLASSIFICATIONS, group="treatment"),
    _f("medications", "用药情况", "Medications", "medications", lifestyle=True, group="medication"),
    _f("medications_other", "其他药物", "Other drugs", "text", lifestyle=True, group="medication"),
    _f("insulin_type", "胰岛素种类", "Insulin type", "text", forms=DM, lifestyle=True,
       group="medication"),
    _f("insulin_usage", "胰岛素用法和用量", "Insulin usage and dose", "text", forms=DM, lifestyle=True,
       group="medication"),
    _f("referral_reason", "转诊原因", "Referral reason", "text", group="referral"),
    _f("referral_facility", "转诊机构及科别", "Referral facility and department", "text",
       group="referral"),
    _f("referral_outcome", "上次紧急转诊是否到位", "Last urgent referral: did the patient arrive",
       "code", choices=REFERRAL_OUTCOMES, national=False, group="referral"),
    _f("next_step", "下一步管理措施", "Next step", "code", choices=NEXT_STEPS, national=False,
       group="next"),
    _f("next_visit_date", "下次随访日期", "Next visit date", "date", group="next"),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def fields_for(form: str) -> tuple[Field, ...]:
    if form not in FORMS:
        raise ValueError(f"unknown follow-up form {form!r}; allowed: {', '.join(FORMS)}")
    return tuple(f for f in FIELDS if form in f.forms)


def choice_label(form: str, name: str, code: str | None, lang: str = "zh") -> str:
    if code in (None, ""):
        return ""
    for c, zh, en in BY_NAME[name].choices_for(form):
        if c == code:
            return zh if lang == "zh" else en
    return str(code)


def lifestyle_fields(form: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields_for(form) if f.lifestyle)
