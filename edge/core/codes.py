"""Observation codes (LOINC), their canonical units (UCUM) and conversions.

One table says, per code: its short names, the canonical unit every value is stored in,
the units a device may send (UCUM and SenML spellings) with the conversion to canonical,
and the physiologically possible range. Nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

MMHG_PER_PA = 1 / 133.322387415
GLUCOSE_MG_DL_PER_MMOL_L = 18.016  # glucose molar mass 180.16 g/mol (docs/devices.md, BLE glucose)


class UnitError(ValueError):
    """A unit that this code cannot be converted from."""


@dataclass(frozen=True)
class Code:
    loinc: str
    names: tuple[str, ...]          # short names accepted on the wire (SenML `n`)
    display_zh: str
    display_en: str
    unit: str                       # canonical UCUM unit
    conversions: dict[str, Callable[[float], float]] = field(default_factory=dict)
    low: float = float("-inf")      # physiologically possible range, inclusive
    high: float = float("inf")
    decimals: int = 1

    def to_canonical(self, value: float, unit: str) -> float:
        try:
            convert = self.conversions[unit]
        except KeyError:
            allowed = ", ".join(sorted(self.conversions))
            raise UnitError(f"unit {unit!r} is not valid for {self.loinc} ({self.display_en}); "
                            f"allowed: {allowed}") from None
        return round(convert(value), self.decimals)

    def implausible(self, value: float) -> str | None:
        if not (self.low <= value <= self.high):
            return (f"{self.display_en} {value:g} {self.unit} is outside the possible range "
                    f"{self.low:g}-{self.high:g}")
        return None


def _same(v: float) -> float:
    return v


_PRESSURE = {"mm[Hg]": _same, "mmHg": _same, "kPa": lambda v: v * 1000 * MMHG_PER_PA,
             "Pa": lambda v: v * MMHG_PER_PA, "hPa": lambda v: v * 100 * MMHG_PER_PA}
_RATE = {"/min": _same, "beat/min": _same, "beats/min": _same, "1/min": _same, "{beats}/min": _same,
         "bpm": _same}
_PERCENT = {"%": _same}
_TEMPERATURE = {"Cel": _same, "[degF]": lambda v: (v - 32) * 5 / 9, "degF": lambda v: (v - 32) * 5 / 9,
                "K": lambda v: v - 273.15}
_MASS = {"kg": _same, "g": lambda v: v / 1000, "[lb_av]": lambda v: v * 0.45359237,
         "lb": lambda v: v * 0.45359237}
_LENGTH = {"cm": _same, "m": lambda v: v * 100, "mm": lambda v: v / 10, "[in_i]": lambda v: v * 2.54}
_GLUCOSE = {"mmol/L": _same, "mmol/l": _same, "mg/dL": lambda v: v / GLUCOSE_MG_DL_PER_MMOL_L,
            "mg/dl": lambda v: v / GLUCOSE_MG_DL_PER_MMOL_L,
            "kg/m3": lambda v: v * 100 / GLUCOSE_MG_DL_PER_MMOL_L,  # 1 kg/m3 = 100 mg/dL
            "g/l": lambda v: v * 100 / GLUCOSE_MG_DL_PER_MMOL_L,
            "mol/L": lambda v: v * 1000}

_GRADE = {"{grade}": _same}
# Laboratory units (docs/health-check.md, "Laboratory results"): the 健康体检表 prints g/L, 10^9/L, U/L,
# umol/L, mmol/L and %; analysers also send the US units, converted here by molar mass.
_HBA1C = {"%": _same, "mmol/mol": lambda v: 0.09148 * v + 2.152}     # IFCC -> NGSP (master equation)
_G_PER_L = {"g/L": _same, "g/l": _same, "g/dL": lambda v: v * 10, "g/dl": lambda v: v * 10}
_PER_NL = {u: _same for u in ("10*9/L", "10^9/L", "x10^9/L", "×10⁹/L", "10*3/uL", "10^3/uL", "K/uL", "/nL")}
_ENZYME = {"U/L": _same, "IU/L": _same, "[IU]/L": _same, "U/l": _same, "ukat/L": lambda v: v * 60}
_UMOL = {"umol/L": _same, "µmol/L": _same, "μmol/L": _same, "umol/l": _same}


def _umol(mg_dl_factor: float) -> dict:
    return {**_UMOL, "mg/dL": lambda v: v * mg_dl_factor, "mg/dl": lambda v: v * mg_dl_factor}


def _mmol(mg_dl_per_mmol: float | None = None) -> dict:
    out = {"mmol/L": _same, "mmol/l": _same, "mEq/L": _same}
    if mg_dl_per_mmol:
        out.update({"mg/dL": lambda v: v / mg_dl_per_mmol, "mg/dl": lambda v: v / mg_dl_per_mmol})
    return out


BILIRUBIN_UMOL_PER_MG_DL = 17.104     # molar mass 584.66 g/mol
CREATININE_UMOL_PER_MG_DL = 88.40     # 113.12 g/mol
UREA_MG_DL_PER_MMOL = 6.006           # urea (not urea nitrogen) 60.06 g/mol
# Urea nitrogen (BUN): two nitrogen atoms per urea molecule, 2 × 14.007 g/mol, so 1 mmol/L of urea is
# 2.8014 mg/dL of urea nitrogen, and urea mmol/L = BUN mg/dL × 0.357 (docs/health-check.md, "BUN")
BUN_MG_DL_PER_MMOL_UREA = 2.8014
CHOLESTEROL_MG_DL_PER_MMOL = 38.67    # 386.65 g/mol
TRIGLYCERIDE_MG_DL_PER_MMOL = 88.57   # as triolein, 885.7 g/mol

CODES: tuple[Code, ...] = (
    Code("8480-6", ("systolic", "sbp", "MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_CUFF_SYS"), "收缩压", "Systolic BP",
         "mm[Hg]", _PRESSURE, 40, 300, 0),
    Code("8462-4", ("diastolic", "dbp", "MDC_PRESS_BLD_NONINV_DIA", "MDC_PRESS_CUFF_DIA"), "舒张压", "Diastolic BP",
         "mm[Hg]", _PRESSURE, 20, 200, 0),
    Code("8478-0", ("mean_bp", "map", "MDC_PRESS_BLD_NONINV_MEAN", "MDC_PRESS_CUFF_MEAN"), "平均动脉压",
         "Mean blood pressure", "mm[Hg]", _PRESSURE, 20, 250, 0),
    Code("8867-4", ("heart_rate", "pulse", "hr", "MDC_PULS_RATE_NON_INV", "MDC_PULS_OXIM_PULS_RATE",
                    "MDC_ECG_HEART_RATE"), "心率", "Heart rate", "/min", _RATE, 20, 300, 0),
    Code("2708-6", ("spo2", "MDC_PULS_OXIM_SAT_O2"), "血氧饱和度", "SpO2", "%", _PERCENT, 50, 100, 0),
    Code("8310-5", ("temperature", "body_temperature", "temp", "MDC_TEMP_BODY"), "体温",
         "Body temperature", "Cel", _TEMPERATURE, 30, 45, 1),
    Code("29463-7", ("weight", "body_weight", "MDC_MASS_BODY_ACTUAL"), "体重", "Body weight", "kg",
         _MASS, 0.5, 350, 1),
    Code("8302-2", ("height", "body_height", "MDC_LEN_BODY_ACTUAL"), "身高", "Body height", "cm",
         _LENGTH, 30, 250, 1),
    Code("2339-0", ("glucose", "blood_glucose", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"), "血糖",
         "Blood glucose", "mmol/L", _GLUCOSE, 0.5, 50, 1),
    Code("4548-4", ("hba1c",), "糖化血红蛋白", "HbA1c", "%", _HBA1C, 2, 25, 1),
    Code("9279-1", ("respiratory_rate", "rr", "MDC_RESP_RATE"), "呼吸频率", "Respiratory rate", "/min", _RATE, 2, 80, 0),
    Code("8280-0", ("waist", "waist_circumference"), "腰围", "Waist circumference", "cm", _LENGTH, 30, 250, 1),
    # Dipstick urinalysis as an ordinal grade: 0 negative, 0.5 trace (±), 1-4 for + to ++++ (docs/health-check.md)
    Code("20454-5", ("urine_protein",), "尿蛋白", "Urine protein (test strip)", "{grade}", _GRADE, 0, 4, 1),
    Code("25428-4", ("urine_glucose",), "尿糖", "Urine glucose (test strip)", "{grade}", _GRADE, 0, 4, 1),
    Code("2514-8", ("urine_ketones",), "尿酮体", "Urine ketones (test strip)", "{grade}", _GRADE, 0, 4, 1),
    Code("5794-3", ("urine_blood",), "尿潜血", "Urine blood (test strip)", "{grade}", _GRADE, 0, 4, 1),
    # The ECG machine's conclusion as the 健康体检表 codes it: 1 normal, 2 abnormal (docs/health-check.md)
    Code("8601-7", ("ecg_impression",), "心电图结论", "ECG impression", "{code}", {"{code}": _same}, 1, 2, 0),
    Code("39156-5", ("bmi",), "体质指数", "BMI", "kg/m2", {"kg/m2": _same}, 5, 100, 1),
    # The township's analysers (docs/health-check.md, "Laboratory results" lists the LOINC codes and sources)
    Code("1558-6", ("fasting_glucose",), "空腹血糖", "Fasting glucose (serum/plasma)", "mmol/L", _GLUCOSE, 0.5, 50, 1),
    Code("718-7", ("hb", "hemoglobin"), "血红蛋白", "Haemoglobin", "g/L", _G_PER_L, 20, 250, 0),
    Code("6690-2", ("wbc",), "白细胞", "White blood cells", "10*9/L", _PER_NL, 0.1, 200, 2),
    Code("777-3", ("plt", "platelets"), "血小板", "Platelets", "10*9/L", _PER_NL, 1, 2000, 0),
    Code("1742-6", ("alt",), "血清谷丙转氨酶", "ALT", "U/L", _ENZYME, 0, 5000, 0),
    Code("1920-8", ("ast",), "血清谷草转氨酶", "AST", "U/L", _ENZYME, 0, 5000, 0),
    Code("1751-7", ("albumin",), "白蛋白", "Albumin", "g/L", _G_PER_L, 5, 80, 1),
    Code("1975-2", ("tbil",), "总胆红素", "Total bilirubin", "umol/L", _umol(BILIRUBIN_UMOL_PER_MG_DL), 0, 1000, 1),
    Code("1968-7", ("dbil",), "结合胆红素", "Direct bilirubin", "umol/L", _umol(BILIRUBIN_UMOL_PER_MG_DL), 0, 1000, 1),
    Code("2160-0", ("creatinine",), "血清肌酐", "Creatinine", "umol/L", _umol(CREATININE_UMOL_PER_MG_DL), 5, 3000, 0),
    Code("22664-7", ("urea",), "血尿素", "Urea", "mmol/L", _mmol(UREA_MG_DL_PER_MMOL), 0.5, 100, 2),
    # stored as the analyser sent it (mg/dL of nitrogen); the form's 血尿素 converts (healthcheck/records.py)
    Code("3094-0", ("bun", "urea_nitrogen"), "尿素氮", "Urea nitrogen", "mg/dL",
         {"mg/dL": _same, "mg/dl": _same, "mmol/L": lambda v: v * BUN_MG_DL_PER_MMOL_UREA,
          "mmol/l": lambda v: v * BUN_MG_DL_PER_MMOL_UREA}, 1, 280, 1),
    Code("2823-3", ("potassium",), "血钾", "Potassium", "mmol/L", _mmol(), 1, 10, 2),
    Code("2951-2", ("sodium",), "血钠", "Sodium", "mmol/L", _mmol(), 100, 200, 0),
    Code("2093-3", ("tc", "cholesterol"), "总胆固醇", "Total cholesterol", "mmol/L",
         _mmol(CHOLESTEROL_MG_DL_PER_MMOL), 0.5, 30, 2),
    Code("2571-8", ("tg", "triglycerides"), "甘油三酯", "Triglycerides", "mmol/L",
         _mmol(TRIGLYCERIDE_MG_DL_PER_MMOL), 0.1, 50, 2),
    Code("13457-7", ("ldl",), "低密度脂蛋白胆固醇", "LDL cholesterol (calculated)", "mmol/L",
         _mmol(CHOLESTEROL_MG_DL_PER_MMOL), 0.1, 20, 2),
    Code("2089-1", ("ldl_measured",), "低密度脂蛋白胆固醇", "LDL cholesterol", "mmol/L",
         _mmol(CHOLESTEROL_MG_DL_PER_MMOL), 0.1, 20, 2),
    Code("2085-9", ("hdl",), "高密度脂蛋白胆固醇", "HDL cholesterol", "mmol/L",
         _mmol(CHOLESTEROL_MG_DL_PER_MMOL), 0.1, 10, 2),
)

_BY_KEY: dict[str, Code] = {}
for _c in CODES:
    _BY_KEY[_c.loinc] = _c
    for _n in _c.names:
        _BY_KEY[_n.lower()] = _c


def lookup(name: str) -> Code | None:
    """The code for a LOINC code or one of its documented short names, else None."""
    return _BY_KEY.get(name) or _BY_KEY.get(name.lower())


def known_names() -> list[str]:
    return sorted({c.loinc for c in CODES} | {n for c in CODES for n in c.names})


def glucose_mg_dl(mmol_l: float) -> float:
    """Glucose is stored in mmol/L; this gives the mg/dL figure some doctors read."""
    return round(mmol_l * GLUCOSE_MG_DL_PER_MMOL_L)


# When a glucose sample was taken, as the device marks it (docs/followup.md, "Glucose and meals"):
# the meal values of the BLE Glucose Measurement Context, also used by MQTT ("meal" in the SenML
# record) and line devices (profile `meal` / `meal_group`). Only "fasting" fills 空腹血糖值.
GLUCOSE_MEALS = ("fasting", "preprandial", "postprandial", "casual", "bedtime")
_MEAL_ALIASES = {"random": "casual", "fbg": "fasting", "fpg": "fasting", "ac": "preprandial",
                 "pc": "postprandial", "2hpg": "postprandial"}


def meal_mark(text) -> str | None:
    """A meal mark from a device, normalised (None when it is not one of GLUCOSE_MEALS or an alias)."""
    if not isinstance(text, str):
        return None
    t = text.strip().lower()
    t = _MEAL_ALIASES.get(t, t)
    return t if t in GLUCOSE_MEALS else None
