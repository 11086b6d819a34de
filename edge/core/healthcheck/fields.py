"""The fields and code lists of the 健康体检表 (annual health check), pure data.

Source: the 健康体检表 and its 填表说明 of 国家基本公共卫生服务规范（第三版）, as rendered in public
implementations (docs/health-check.md lists them and what stays unverified). The fields reuse
the follow-up forms' `Field` (edge.core.followup.fields), so one validation reads both forms.
Ranges are plausibility limits (a value outside is a typing or device error), not clinical norms;
where the form gives none they are this project's choice, marked in docs/health-check.md.
"""
from __future__ import annotations

from ..followup.fields import Choice, Field

FORM = "health_check"
TITLE = ("健康体检表", "Health check record")
_F = (FORM,)


def _f(name: str, zh: str, en: str, kind: str, group: str, **kw) -> Field:
    return Field(name, zh, en, kind, forms=_F, group=group, **kw)


def _codes(*labels: tuple[str, str]) -> tuple[Choice, ...]:
    return tuple((str(n), zh, en) for n, (zh, en) in enumerate(labels, start=1))


NORMAL_ABNORMAL = _codes(("正常", "normal"), ("异常", "abnormal"))
NONE_SOME = _codes(("无", "no"), ("有", "yes"))
NEG_POS = _codes(("阴性", "negative"), ("阳性", "positive"))
SCREEN = _codes(("粗筛阴性", "screen negative"), ("粗筛阳性", "screen positive"))
NOT_SEEN_ABNORMAL = _codes(("未见异常", "nothing abnormal"), ("异常", "abnormal"))

SYMPTOMS = _codes(
    ("无症状", "no symptoms"), ("头痛", "headache"), ("头晕", "dizziness"), ("心悸", "palpitations"),
    ("胸闷", "chest tightness"), ("胸痛", "chest pain"), ("慢性咳嗽", "chronic cough"), ("咳痰", "sputum"),
    ("呼吸困难", "dyspnoea"), ("多饮", "polydipsia"), ("多尿", "polyuria"), ("体重下降", "weight loss"),
    ("乏力", "fatigue"), ("关节肿痛", "joint swelling, pain"), ("视力模糊", "blurred vision"),
    ("手脚麻木", "numb hands and feet"), ("尿急", "urinary urgency"), ("尿痛", "dysuria"),
    ("便秘", "constipation"), ("腹泻", "diarrhoea"), ("恶心呕吐", "nausea, vomiting"), ("眼花", "dim sight"),
    ("耳鸣", "tinnitus"), ("乳房胀痛", "breast tenderness"), ("其他", "other"))
HEALTH_SELF = _codes(("满意", "satisfied"), ("基本满意", "mostly satisfied"), ("说不清楚", "cannot say"),
                     ("不太满意", "rather dissatisfied"), ("不满意", "dissatisfied"))
SELFCARE_SELF = _codes(("可自理(0～3分)", "independent (0-3)"), ("轻度依赖(4～8分)", "mildly dependent (4-8)"),
                       ("中度依赖(9～18分)", "moderately dependent (9-18)"),
                       ("不能自理(≥19分)", "dependent (19 and over)"))
EXERCISE_FREQ = _codes(("每天", "daily"), ("每周一次以上", "more than once a week"), ("偶尔", "occasionally"),
                       ("不锻炼", "never"))
DIET = _codes(("荤素均衡", "balanced"), ("荤食为主", "mostly meat"), ("素食为主", "mostly vegetables"),
              ("嗜盐", "salty"), ("嗜油", "oily"), ("嗜糖", "sweet"))
SMOKING_STATUS = _codes(("从不吸烟", "never smoked"), ("已戒烟", "quit"), ("吸烟", "smokes"))
DRINKING_FREQ = _codes(("从不", "never"), ("偶尔", "occasionally"), ("经常", "often"), ("每天", "daily"))
DRINKING_QUIT = _codes(("未戒酒", "still drinks"), ("已戒酒", "quit"))
YES_NO = _codes(("是", "yes"), ("否", "no"))
DRINK_KINDS = _codes(("白酒", "liquor"), ("啤酒", "beer"), ("红酒", "wine"), ("黄酒", "huangjiu"), ("其他", "other"))
LIPS = _codes(("红润", "rosy"), ("苍白", "pale"), ("发绀", "cyanotic"), ("皲裂", "chapped"), ("疱疹", "herpes"))
DENTITION = _codes(("正常", "normal"), ("缺齿", "missing teeth"), ("龋齿", "caries"), ("义齿(假牙)", "dentures"))
PHARYNX = _codes(("无充血", "not congested"), ("充血", "congested"), ("淋巴滤泡增生", "lymphoid hyperplasia"))
HEARING = _codes(("听见", "hears"), ("听不清或无法听见", "hears poorly or not at all"))
MOTOR = _codes(("可顺利完成", "completes all"), ("无法独立完成任何一个动作", "cannot complete any alone"))
SKIN = _codes(("正常", "normal"), ("潮红", "flushed"), ("苍白", "pale"), ("发绀", "cyanotic"), ("黄染", "jaundiced"),
              ("色素沉着", "pigmented"), ("其他", "other"))
SCLERA = _codes(("正常", "normal"), ("黄染", "icteric"), ("充血", "injected"), ("其他", "other"))
LYMPH = _codes(("未触及", "not palpable"), ("锁骨上", "supraclavicular"), ("腋窝", "axillary"), ("其他", "other"))
NO_YES = _codes(("否", "no"), ("是", "yes"))
RALES = _codes(("无", "none"), ("干罗音", "dry rales"), ("湿罗音", "moist rales"), ("其他", "other"))
RHYTHM = _codes(("齐", "regular"), ("不齐", "irregular"), ("绝对不齐", "absolutely irregular"))
OEDEMA = _codes(("无", "none"), ("单侧", "one side"), ("双侧不对称", "both, asymmetric"), ("双侧对称", "both, symmetric"))
DORSALIS_PEDIS = _codes(("未触及", "not palpable"), ("触及双侧对称", "both, symmetric"),
                        ("触及左侧弱或消失", "left weak or absent"), ("触及右侧弱或消失", "right weak or absent"))
DRE = _codes(("未及异常", "nothing abnormal"), ("触痛", "tender"), ("包块", "mass"), ("前列腺异常", "prostate abnormal"),
             ("其他", "other"))
BREAST = _codes(("未见异常", "nothing abnormal"), ("乳房切除", "mastectomy"), ("异常泌乳", "abnormal discharge"),
                ("乳腺包块", "lump"), ("其他", "other"))
# 尿常规: "阴性填'－'，阳性填'＋'…'＋＋＋＋'" (填表说明 7); '±' (trace) is printed by every dipstick
# analyser, so it is accepted too (docs/health-check.md).
URINE_GRADES: tuple[Choice, ...] = (("-", "－", "negative"), ("+-", "±", "trace"), ("1+", "＋", "1+"),
                                    ("2+", "＋＋", "2+"), ("3+", "＋＋＋", "3+"), ("4+", "＋＋＋＋", "4+"))
# a urine analyser's grade as stored (edge.core.codes: 0 negative, 0.5 trace, 1-4) -> the form's code
GRADE_CODES = {0.0: "-", 0.5: "+-", 1.0: "1+", 2.0: "2+", 3.0: "3+", 4.0: "4+"}
CEREBROVASCULAR = _codes(("未发现", "none found"), ("缺血性卒中", "ischaemic stroke"), ("脑出血", "cerebral haemorrhage"),
                         ("蛛网膜下腔出血", "subarachnoid haemorrhage"), ("短暂性脑缺血发作", "TIA"), ("其他", "other"))
KIDNEY = _codes(("未发现", "none found"), ("糖尿病肾病", "diabetic nephropathy"), ("肾功能衰竭", "renal failure"),
                ("急性肾炎", "acute nephritis"), ("慢性肾炎", "chronic nephritis"), ("其他", "other"))
HEART = _codes(("未发现", "none found"), ("心肌梗死", "myocardial infarction"), ("心绞痛", "angina"),
               ("冠状动脉血运重建", "coronary revascularisation"), ("充血性心力衰竭", "congestive heart failure"),
               ("心前区疼痛", "precordial pain"), ("其他", "other"))
VASCULAR = _codes(("未发现", "none found"), ("夹层动脉瘤", "dissecting aneurysm"),
                  ("动脉闭塞性疾病", "arterial occlusive disease"), ("其他", "other"))
EYE = _codes(("未发现", "none found"), ("视网膜出血或渗出", "retinal haemorrhage or exudate"),
             ("视乳头水肿", "papilloedema"), ("白内障", "cataract"), ("其他", "other"))
NOT_FOUND_SOME = _codes(("未发现", "none found"), ("有", "yes"))
EVALUATION = _codes(("体检无异常", "nothing abnormal"), ("有异常", "abnormal"))
GUIDANCE = _codes(("纳入慢性病患者健康管理", "enrol in chronic-disease management"), ("建议复查", "re-check"),
                  ("建议转诊", "refer"))
RISK_FACTORS = _codes(("戒烟", "stop smoking"), ("健康饮酒", "drink sensibly"), ("饮食", "diet"), ("锻炼", "exercise"),
                      ("减体重", "lose weight"), ("建议接种疫苗", "vaccination advised"), ("其他", "other"))
# "none" codes that cannot be ticked together with another (无症状, 未发现 ...)
EXCLUSIVE_FIRST = ("symptoms", "problem_cerebrovascular", "problem_kidney", "problem_heart", "problem_vascular",
                   "problem_eye")


def _num(name, zh, en, group, low, high, unit, decimals=0, **kw) -> Field:
    return _f(name, zh, en, "decimal" if decimals else "int", group, low=low, high=high, unit=unit,
              decimals=decimals, **kw)


def _code(name, zh, en, group, choices, **kw) -> Field:
    return _f(name, zh, en, "code", group, choices=choices, **kw)


def _text(name, zh, en, group, max_length=200) -> Field:
    return _f(name, zh, en, "text", group, max_length=max_length)


FIELDS: tuple[Field, ...] = (
    _f("check_date", "体检日期", "Check date", "date", "header"),
    _text("doctor", "责任医生", "Responsible doctor", "header", 50),
    _f("symptoms", "症状", "Symptoms", "codes", "symptoms", choices=SYMPTOMS),
    _text("symptoms_other", "其他症状", "Other symptoms", "symptoms"),
    # 一般状况
    _num("temperature", "体温", "Temperature", "general", 34, 43, "℃", 1),
    _num("pulse", "脉率", "Pulse", "general", 20, 300, "次/分钟"),
    _num("respiration", "呼吸频率", "Respiratory rate", "general", 4, 80, "次/分钟"),
    _num("bp_left_sbp", "血压 左侧 收缩压", "BP left arm, systolic", "general", 40, 300, "mmHg"),
    _num("bp_left_dbp", "血压 左侧 舒张压", "BP left arm, diastolic", "general", 30, 200, "mmHg"),
    _num("bp_right_sbp", "血压 右侧 收缩压", "BP right arm, systolic", "general", 40, 300, "mmHg"),
    _num("bp_right_dbp", "血压 右侧 舒张压", "BP right arm, diastolic", "general", 30, 200, "mmHg"),
    _num("height", "身高", "Height", "general", 30, 250, "cm", 1),
    _num("weight", "体重", "Weight", "general", 0.5, 350, "kg", 1),
    _num("waist", "腰围", "Waist", "general", 30, 250, "cm", 1),
    _num("bmi", "体质指数", "BMI", "general", 5, 100, "kg/m²", 1),
    _code("health_self", "老年人健康状态自我评估", "Self-rated health", "general", HEALTH_SELF),
    _code("selfcare_self", "老年人生活自理能力自我评估", "Self-care ability", "general", SELFCARE_SELF),
    _code("cognition", "老年人认知功能", "Cognition screen", "general", SCREEN),
    _num("mmse_score", "简易智力状态检查 总分", "MMSE total", "general", 0, 30, "分"),
    _code("mood", "老年人情感状态", "Mood screen", "general", SCREEN),
    _num("gds_score", "老年人抑郁评分检查 总分", "Geriatric depression scale total", "general", 0, 30, "分"),
    # 生活方式
    _code("exercise_freq", "锻炼频率", "Exercise frequency", "lifestyle", EXERCISE_FREQ),
    _num("exercise_minutes", "每次锻炼时间", "Minutes per session", "lifestyle", 0, 600, "分钟"),
    _num("exercise_years", "坚持锻炼时间", "Years exercising", "lifestyle", 0, 100, "年"),
    _text("exercise_way", "锻炼方式", "Kind of exercise", "lifestyle", 100),
    _f("diet", "饮食习惯", "Diet", "codes", "lifestyle", choices=DIET),
    _code("smoking_status", "吸烟状况", "Smoking", "lifestyle", SMOKING_STATUS),
    _num("smoking_daily", "日吸烟量", "Cigarettes a day", "lifestyle", 0, 200, "支"),
    _num("smoking_start_age", "开始吸烟年龄", "Age started smoking", "lifestyle", 3, 120, "岁"),
    _num("smoking_quit_age", "戒烟年龄", "Age quit smoking", "lifestyle", 3, 120, "岁"),
    _code("drinking_freq", "饮酒频率", "Drinking", "lifestyle", DRINKING_FREQ),
    _num("drinking_daily", "日饮酒量", "Alcohol a day", "lifestyle", 0, 50, "两", 1),
    _code("drinking_quit", "是否戒酒", "Quit drinking", "lifestyle", DRINKING_QUIT),
    _num("drinking_quit_age", "戒酒年龄", "Age quit drinking", "lifestyle", 3, 120, "岁"),
    _num("drinking_start_age", "开始饮酒年龄", "Age started drinking", "lifestyle", 3, 120, "岁"),
    _code("drunk_last_year", "近一年内是否曾醉酒", "Drunk in the last year", "lifestyle", YES_NO),
    _f("drink_kinds", "饮酒种类", "Kinds of drink", "codes", "lifestyle", choices=DRINK_KINDS),
    _code("occupational", "职业病危害因素接触史", "Occupational hazard exposure", "lifestyle", NONE_SOME),
    _text("occupational_detail", "工种、从业时间、毒物种类及防护措施", "Job, years, hazards and protection",
          "lifestyle", 500),
    # 脏器功能
    _code("lips", "口唇", "Lips", "organs", LIPS),
    _f("dentition", "齿列", "Dentition", "codes", "organs", choices=DENTITION),
    _code("pharynx", "咽部", "Pharynx", "organs", PHARYNX),
    _num("vision_left", "视力 左眼", "Vision, left eye", "organs", 3, 5.3, "", 1),
    _num("vision_right", "视力 右眼", "Vision, right eye", "organs", 3, 5.3, "", 1),
    _num("vision_left_corrected", "矫正视力 左眼", "Corrected vision, left", "organs", 3, 5.3, "", 1),
    _num("vision_right_corrected", "矫正视力 右眼", "Corrected vision, right", "organs", 3, 5.3, "", 1),
    _code("hearing", "听力", "Hearing", "organs", HEARING),
    _code("motor", "运动功能", "Motor function", "organs", MOTOR),
    # 查体
    _code("fundus", "眼底", "Fundus", "exam", NORMAL_ABNORMAL),
    _code("skin", "皮肤", "Skin", "exam", SKIN),
    _code("sclera", "巩膜", "Sclera", "exam", SCLERA),
    _code("lymph_nodes", "淋巴结", "Lymph nodes", "exam", LYMPH),
    _code("barrel_chest", "桶状胸", "Barrel chest", "exam", NO_YES),
    _code("breath_sounds", "呼吸音", "Breath sounds", "exam", NORMAL_ABNORMAL),
    _code("rales", "罗音", "Rales", "exam", RALES),
    _num("heart_rate", "心率", "Heart rate", "exam", 20, 300, "次/分钟"),
    _code("heart_rhythm", "心律", "Heart rhythm", "exam", RHYTHM),
    _code("murmur", "杂音", "Murmur", "exam", NONE_SOME),
    _code("abdomen_tenderness", "压痛", "Abdominal tenderness", "exam", NONE_SOME),
    _code("abdomen_mass", "包块", "Abdominal mass", "exam", NONE_SOME),
    _code("hepatomegaly", "肝大", "Enlarged liver", "exam", NONE_SOME),
    _code("splenomegaly", "脾大", "Enlarged spleen", "exam", NONE_SOME),
    _code("shifting_dullness", "移动性浊音", "Shifting dullness", "exam", NONE_SOME),
    _code("leg_oedema", "下肢水肿", "Leg oedema", "exam", OEDEMA),
    _code("dorsalis_pedis", "足背动脉搏动", "Dorsalis pedis pulse", "exam", DORSALIS_PEDIS),
    _code("dre", "肛门指诊", "Digital rectal exam", "exam", DRE),
    _f("breast", "乳腺", "Breast", "codes", "exam", choices=BREAST),
    *(_code(f"gyn_{k}", zh, en, "exam", NOT_SEEN_ABNORMAL) for k, zh, en in (
        ("vulva", "外阴", "Vulva"), ("vagina", "阴道", "Vagina"), ("cervix", "宫颈", "Cervix"),
        ("uterus", "宫体", "Uterus"), ("adnexa", "附件", "Adnexa"))),
    _text("exam_abnormal", "查体异常描述", "Examination findings", "exam", 500),
    # 辅助检查
    _num("hb", "血红蛋白", "Haemoglobin", "tests", 20, 250, "g/L"),
    _num("wbc", "白细胞", "White cells", "tests", 0.1, 200, "×10⁹/L", 1),
    _num("plt", "血小板", "Platelets", "tests", 1, 2000, "×10⁹/L"),
    _text("blood_other", "血常规 其他", "Blood count, other", "tests"),
    _code("urine_protein", "尿蛋白", "Urine protein", "tests", URINE_GRADES),
    _code("urine_glucose", "尿糖", "Urine glucose", "tests", URINE_GRADES),
    _code("urine_ketone", "尿酮体", "Urine ketones", "tests", URINE_GRADES),
    _code("urine_blood", "尿潜血", "Urine blood", "tests", URINE_GRADES),
    _text("urine_other", "尿常规 其他", "Urinalysis, other", "tests"),
    _num("fbg", "空腹血糖", "Fasting glucose", "tests", 0.5, 50, "mmol/L", 1),
    _code("ecg", "心电图", "ECG", "tests", NORMAL_ABNORMAL),
    _text("ecg_detail", "心电图异常", "ECG findings", "tests"),
    _num("urine_malb", "尿微量白蛋白", "Urine microalbumin", "tests", 0, 1000, "mg/dL", 1),
    _code("fobt", "大便潜血", "Faecal occult blood", "tests", NEG_POS),
    _num("hba1c", "糖化血红蛋白", "HbA1c", "tests", 2, 25, "%", 1),
    _code("hbsag", "乙型肝炎表面抗原", "HBsAg", "tests", NEG_POS),
    _num("alt", "血清谷丙转氨酶", "ALT", "tests", 0, 5000, "U/L"),
    _num("ast", "血清谷草转氨酶", "AST", "tests", 0, 5000, "U/L"),
    _num("albumin", "白蛋白", "Albumin", "tests", 5, 80, "g/L", 1),
    _num("tbil", "总胆红素", "Total bilirubin", "tests", 0, 1000, "μmol/L", 1),
    _num("dbil", "结合胆红素", "Conjugated bilirubin", "tests", 0, 1000, "μmol/L", 1),
    _num("creatinine", "血清肌酐", "Creatinine", "tests", 5, 3000, "μmol/L"),
    _num("urea", "血尿素", "Urea", "tests", 0.5, 100, "mmol/L", 1),
    _num("potassium", "血钾浓度", "Potassium", "tests", 1, 10, "mmol/L", 1),
    _num("sodium", "血钠浓度", "Sodium", "tests", 100, 200, "mmol/L"),
    _num("tc", "总胆固醇", "Total cholesterol", "tests", 0.5, 30, "mmol/L", 2),
    _num("tg", "甘油三酯", "Triglycerides", "tests", 0.1, 50, "mmol/L", 2),
    _num("ldl", "血清低密度脂蛋白胆固醇", "LDL cholesterol", "tests", 0.1, 20, "mmol/L", 2),
    _num("hdl", "血清高密度脂蛋白胆固醇", "HDL cholesterol", "tests", 0.1, 10, "mmol/L", 2),
    _code("chest_xray", "胸部X线片", "Chest X-ray", "tests", NORMAL_ABNORMAL),
    _code("us_abdomen", "腹部B超", "Abdominal ultrasound", "tests", NORMAL_ABNORMAL),
    _code("us_other", "其他B超", "Other ultrasound", "tests", NORMAL_ABNORMAL),
    _code("cervical_smear", "宫颈涂片", "Cervical smear", "tests", NORMAL_ABNORMAL),
    _text("tests_abnormal", "辅助检查异常描述及其他", "Test findings and other tests", "tests", 500),
    # 现存主要健康问题
    _f("problem_cerebrovascular", "脑血管疾病", "Cerebrovascular disease", "codes", "problems", choices=CEREBROVASCULAR),
    _f("problem_kidney", "肾脏疾病", "Kidney disease", "codes", "problems", choices=KIDNEY),
    _f("problem_heart", "心脏疾病", "Heart disease", "codes", "problems", choices=HEART),
    _f("problem_vascular", "血管疾病", "Vascular disease", "codes", "problems", choices=VASCULAR),
    _f("problem_eye", "眼部疾病", "Eye disease", "codes", "problems", choices=EYE),
    _code("problem_neuro", "神经系统疾病", "Nervous-system disease", "problems", NOT_FOUND_SOME),
    _code("problem_other", "其他系统疾病", "Other disease", "problems", NOT_FOUND_SOME),
    _text("problems_detail", "健康问题说明", "Health problems, details", "problems", 500),
    # 住院治疗情况, 主要用药情况, 非免疫规划预防接种史: tables of rows, their columns in rows.TABLES
    _f("hospital_stays", "住院史", "Hospital stays", "rows", "history"),
    _f("home_beds", "家庭病床史", "Home-bed care", "rows", "history"),
    _f("medications", "主要用药情况", "Main medications", "rows", "history"),
    _f("vaccinations", "非免疫规划预防接种史", "Non-programme vaccinations", "rows", "history"),
    # 健康评价, 健康指导
    _code("evaluation", "健康评价", "Health evaluation", "evaluation", EVALUATION),
    *(_text(f"abnormal_{n}", f"异常{n}", f"Abnormality {n}", "evaluation") for n in range(1, 5)),
    _f("guidance", "健康指导", "Health guidance", "codes", "evaluation", choices=GUIDANCE),
    _f("risk_factors", "危险因素控制", "Risk-factor control", "codes", "evaluation", choices=RISK_FACTORS),
    _num("weight_goal", "减体重目标", "Weight-loss target", "evaluation", 0.5, 350, "kg", 1),
    _text("vaccine_advice", "建议接种疫苗", "Vaccines advised", "evaluation"),
    _text("risk_other", "其他危险因素控制", "Other risk-factor control", "evaluation"),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
GROUPS = (("header", "体检", "Check"), ("symptoms", "症状", "Symptoms"), ("general", "一般状况", "General condition"),
          ("lifestyle", "生活方式", "Lifestyle"), ("organs", "脏器功能", "Organ function"), ("exam", "查体", "Examination"),
          ("tests", "辅助检查", "Auxiliary examinations"), ("problems", "现存主要健康问题", "Existing health problems"),
          ("history", "住院、用药及接种", "Hospital, medication, vaccination"),
          ("evaluation", "健康评价与指导", "Evaluation and guidance"))
