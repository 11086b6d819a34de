"""Identifiers the documents carry: OIDs under 2.16.156.10011, WS 363 data elements, WS 364
value codes, and the LOINC/UCUM codes of the FHIR Observations (sources in docs/interop.md;
entries marked [U] there are not confirmed against the standard's own text)."""
from __future__ import annotations

from dataclasses import dataclass

# OIDs (docs/interop.md §2)
DOC_SERIAL = "2.16.156.10011.1.1"           # 文档流水号
RECORD_NO = "2.16.156.10011.1.2"            # 城乡居民健康档案编号
ID_CARD = "2.16.156.10011.1.3"              # 居民身份证号 (GB 11643)
DOC_TYPES = "2.16.156.10011.2.4"            # 卫生信息共享文档规范编码体系
DE_CATALOG = "2.16.156.10011.2.2.1"         # 卫生信息数据元目录 (WS 363)
SEX_CODES = "2.16.156.10011.2.3.3.4"        # GB/T 2261.1 性别代码
LOCAL_ROOT = "2.16.156.10011.0"             # [U] our own local identifiers (clinic, doctor, record id)
CDA_TYPE_ID = "2.16.840.1.113883.1.3"       # HL7 CDA R2 typeId root
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

HSDB04_01 = "HSDB04.01"                     # 高血压患者随访服务
HSDB04_02 = "HSDB04.02"                     # 2型糖尿病患者随访服务
HSDA00_01 = "HSDA00.01"                     # 个人基本健康信息
HSDC00_01 = "HSDC00.01"                     # 成人健康体检 (the 健康体检表; docs/interop.md §3a)
DOCUMENT_TITLES = {HSDB04_01: "高血压患者随访服务记录", HSDB04_02: "2型糖尿病患者随访服务记录",
                   HSDA00_01: "个人基本健康信息", HSDC00_01: "成人健康体检"}
FORM_DOCUMENT = {"hypertension": HSDB04_01, "diabetes": HSDB04_02}


@dataclass(frozen=True)
class Element:
    field: str            # the follow-up form's field name (edge/core/followup/fields.py)
    de: str               # WS 363 data-element identifier
    zh: str
    ucum: str = ""        # a measured quantity's UCUM unit; "" for a coded value
    loinc: str = ""       # the FHIR Observation's LOINC code; "" if not sent as an Observation
    loinc_display: str = ""
    verified: bool = True  # False: the identifier is [U] in docs/interop.md


MEASURED = (
    Element("sbp", "DE04.10.174.00", "收缩压", "mm[Hg]", "8480-6", "Systolic blood pressure"),
    Element("dbp", "DE04.10.176.00", "舒张压", "mm[Hg]", "8462-4", "Diastolic blood pressure"),
    Element("height", "DE04.10.167.00", "身高", "cm", "8302-2", "Body height"),
    Element("weight", "DE04.10.188.00", "体重", "kg", "29463-7", "Body weight"),
    Element("bmi", "DE05.10.075.00", "体质指数", "kg/m2", "39156-5", "Body mass index (BMI) [Ratio]",
            verified=False),
    Element("heart_rate", "DE04.10.206.00", "心率", "/min", "8867-4", "Heart rate"),
    Element("fbg", "DE04.50.102.00", "空腹血糖值", "mmol/L", "14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma", verified=False),
    Element("hba1c", "DE04.50.128.00", "糖化血红蛋白值", "%", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood",
            verified=False),
)
CODED = (
    Element("visit_mode", "DE06.00.108.00", "随访方式"),
    Element("classification", "DE05.10.066.00", "此次随访分类", verified=False),
)
# the UCUM units of the form's own units (edge/core/followup/fields.py); a value's unit not here is refused
UNIT_CHECK = {"mmHg": "mm[Hg]", "cm": "cm", "kg": "kg", "kg/m²": "kg/m2", "次/分": "/min", "mmol/L": "mmol/L",
              "%": "%"}
# the coded elements' code systems: (OID or "" where it is [U], name)
CODE_SYSTEMS = {"visit_mode": ("2.16.156.10011.2.3.1.183", "随访方式代码表"),
                "classification": ("", "随访评价结果代码表")}
# WS 364 / the 第三版 form's code lists the coded elements draw from (docs/interop.md §3)
VALUE_SETS = {
    "visit_mode": {"1": "门诊", "2": "家庭", "3": "电话"},
    "classification": {"1": "控制满意", "2": "控制不满意", "3": "不良反应", "4": "并发症"},
}
SEX_NAMES = {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}
FHIR_GENDER = {"0": "unknown", "1": "male", "2": "female", "9": "unknown"}
