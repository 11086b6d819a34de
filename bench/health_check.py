"""Benchmark (issue 20's figure): actions and minutes for one elder's full 健康体检表 on a check day
with the clinic's devices and the township's analyser, beside the same record typed in full.

The record is built through the real code on a real SQLite store: the check day's readings (BP on
each arm in its measuring session, scale, thermometer, urine strip reader, the analyser's results
matched by ID number, the ECG conclusion) are ingested, `prefill.build` opens the form, the
doctor's answers are added, `validate` and `records.save` keep it, and it must count as complete
(records.is_complete: what the KPI's share of complete records counts). What the devices filled
and what the doctor answered are then counted, and timed with the Keystroke-Level Model (Card,
Moran and Newell, "The keystroke-level model for user performance time with interactive systems",
CACM 23(7), 1980; operator times as in Kieras, "Using the Keystroke-Level Model to Estimate
Execution Times", 2001): K a keystroke, P pointing with the mouse, B a button press or release,
H moving a hand between mouse and keyboard, M a mental act of choosing. K is given for a trained
typist (0.28 s) and for someone who types little (1.2 s); a Chinese character costs 4 keystrokes
(its pinyin and a pick), an assumption.

The "typed in full" column is the same record with every value typed by hand from the devices'
printouts and the lab's slips, on the same form: the machine's share of the work, not the 20-30
minutes reported for today's platforms (which include finding the slips and a slower site).

    .venv/bin/python bench/health_check.py
"""
from __future__ import annotations

import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.core import devices, measuring  # noqa: E402
from edge.core.clock import Anchor  # noqa: E402
from edge.core.followup import records as followups  # noqa: E402
from edge.core.healthcheck import carry, prefill, records, rows  # noqa: E402
from edge.core.healthcheck.fields import BY_NAME  # noqa: E402
from edge.core.healthcheck.validation import validate  # noqa: E402
from edge.core.ingest import ingest  # noqa: E402
from edge.core.reading import Reading  # noqa: E402
from edge.core.store import Store  # noqa: E402

TZ = "Asia/Shanghai"
ID_NUMBER = "11010519491231002X"
KLM = {"P": 1.1, "B": 0.1, "H": 0.4, "M": 1.35}
TYPISTS = {"trained typist (K 0.28 s)": 0.28, "types little (K 1.2 s)": 1.2}
CHAR_KEYS = 4            # keystrokes per Chinese character through a pinyin input method (assumed)

# what the check day's devices send for the elder (value, unit); BP per arm in its own session
STATIONS = [("station-bp", "left", [("8480-6", 138, "mm[Hg]"), ("8462-4", 84, "mm[Hg]"), ("8867-4", 72, "/min")]),
            ("station-bp", "right", [("8480-6", 134, "mm[Hg]"), ("8462-4", 82, "mm[Hg]"), ("8867-4", 71, "/min")]),
            ("station-scale", None, [("29463-7", 61.5, "kg"), ("8302-2", 162.0, "cm"), ("8280-0", 84.0, "cm")]),
            ("station-thermo", None, [("8310-5", 36.5, "Cel")]),
            ("urine-reader", None, [("20454-5", 0, "{grade}"), ("25428-4", 0, "{grade}"), ("2514-8", 0, "{grade}"),
                                    ("5794-3", 0, "{grade}")])]
LABS = [("718-7", 13.2, "g/dL"), ("6690-2", 5.5, "10*3/uL"), ("777-3", 210, "10*3/uL"), ("2339-0", 5.6, "mmol/L"),
        ("1742-6", 22, "U/L"), ("1920-8", 25, "U/L"), ("1751-7", 42, "g/L"), ("1975-2", 12.0, "umol/L"),
        ("1968-7", 3.5, "umol/L"), ("2160-0", 80, "umol/L"), ("3094-0", 14, "mg/dL"), ("2823-3", 4.1, "mmol/L"),
        ("2951-2", 140, "mmol/L"), ("2093-3", 5.1, "mmol/L"), ("2571-8", 1.4, "mmol/L"), ("13457-7", 3.0, "mmol/L"),
        ("2085-9", 1.3, "mmol/L"), ("4548-4", 5.9, "%"), ("8601-7", 1, "{code}")]

# what the doctor answers for a man of 77 with nothing abnormal, who walks most days, never smoked or drank
# (a choice is one click; a number or text is typed)
DOCTOR = {"symptoms": ["1"], "respiration": 18, "health_self": "2", "selfcare_self": "1", "cognition": "1",
          "mood": "1", "exercise_freq": "2", "exercise_minutes": 30, "exercise_years": 10, "exercise_way": "散步",
          "diet": ["1"], "smoking_status": "1", "drinking_freq": "1", "occupational": "1", "lips": "1",
          "dentition": ["2"], "pharynx": "1", "vision_left": 4.8, "vision_right": 4.9, "hearing": "1", "motor": "1",
          "fundus": "1", "skin": "1", "sclera": "1", "lymph_nodes": "1", "barrel_chest": "1", "breath_sounds": "1",
          "rales": "1", "heart_rate": 72, "heart_rhythm": "1", "murmur": "1", "abdomen_tenderness": "1",
          "abdomen_mass": "1", "hepatomegaly": "1", "splenomegaly": "1", "shifting_dullness": "1",
          "leg_oedema": "1", "dorsalis_pedis": "2", "dre": "1", "breast": ["1"], "urine_malb": None,
          "fobt": "1", "hbsag": "1", "chest_xray": "1", "us_abdomen": "1", "problem_cerebrovascular": ["1"],
          "problem_kidney": ["1"], "problem_heart": ["1"], "problem_vascular": ["1"], "problem_eye": ["1"],
          "problem_neuro": "1", "problem_other": "1", "evaluation": "1", "guidance": ["2"], "risk_factors": ["4"]}
SELFCARE = ("meal", "grooming", "dressing", "toilet", "activity")          # five clicks (the first level of each, 0 points)
# two drugs of his last hypertension follow-up (name, times a day, mg a dose): the new check proposes
# them as 主要用药情况 rows (edge.core.healthcheck.carry); the doctor confirms each and types the route
# (用法) and how long it has been taken (用药时间), which no record holds
MEDICATIONS = [("硝苯地平缓释片", 1, 30.0), ("二甲双胍片", 2, 500.0)]
ROUTE, TAKEN_FOR = "口服", "5年"
STATION_ACTIONS = {"registration (ID number search, pick)": 2, "BP, each arm chosen": 3, "scale": 2,
                   "urine strip": 2, "doctor calls the resident": 1, "save": 1}


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def now(self):
        return self.at

    def monotonic(self):
        return 1.0

    def boot_id(self):
        return "bench"

    def anchor(self):
        return Anchor(self.at, "bench", 1.0)


def keys(value) -> int:
    """Keystrokes to type a value: a digit or letter is one, a Chinese character CHAR_KEYS."""
    return sum(CHAR_KEYS if ord(c) > 0x2e80 else 1 for c in str(value))


def typed(value, k: float) -> float:
    """Point at the field, click, hand to the keyboard, type, hand back: M P B B H n*K H."""
    return KLM["M"] + KLM["P"] + 2 * KLM["B"] + 2 * KLM["H"] + keys(value) * k


def clicked() -> float:
    """Choose and click a choice: M P B B."""
    return KLM["M"] + KLM["P"] + 2 * KLM["B"]


def build(store: Store, today: date, at: datetime) -> tuple[dict, dict, set]:
    """The check day's readings, the opened form, the doctor's answers; the saved record's values."""
    with store.atomic() as conn:
        conn.execute("INSERT INTO residents (id, name, birth_date, sex, id_number, created_at, updated_at)"
                     " VALUES ('R1', '王老汉', '1949-12-31', '1', ?, ?, ?)", (ID_NUMBER, at.isoformat(), at.isoformat()))
    for device, arm, values in STATIONS:
        if devices.get(store, device) is None:
            devices.add(store, device, kind="bp", transport="mqtt", now=at)
        measuring.start(store, "R1", now=at, actor="station", switch=True, arm=arm)
        ingest(store, [Reading(device, c, v, u, "mqtt", device_time=at) for c, v, u in values], clock=Clock(at))
    devices.add(store, "township-lab", kind="analyser", transport="astm", now=at)
    devices.add(store, "ecg-cart", kind="analyser", transport="hl7", now=at)
    lab_time = at - timedelta(days=2)
    ingest(store, [Reading("township-lab", c, v, u, "astm", device_time=lab_time, meta={"patient_id": ID_NUMBER})
                   for c, v, u in LABS if c != "8601-7"], clock=Clock(lab_time))
    ingest(store, [Reading("ecg-cart", "8601-7", 1, "{code}", "hl7", device_time=at, meta={"patient_id": ID_NUMBER})],
           clock=Clock(at))
    visit = at - timedelta(days=30)
    followups.save(store, resident_id="R1", form="hypertension", actor="doc", at=visit, values={
        "visit_date": visit.date().isoformat(), "visit_mode": "1", "med_adherence": "1",
        "medications": [{"name": n, "times_per_day": t, "dose_mg": mg} for n, t, mg in MEDICATIONS]})
    pre = prefill.build(store, resident_id="R1", today=today, tz=TZ)
    raw: dict = {k: str(v) for k, v in pre.values.items()}
    for name, value in DOCTOR.items():
        if value is None:
            continue
        raw[name] = [str(x) for x in value] if isinstance(value, list) else str(value)
    raw.update({f"selfcare_{item}": "1" for item in SELFCARE})     # the first level of each: 0 points
    for i, row in enumerate(carry.proposed(store, "R1"), start=1):       # confirmed: no longer proposed
        row = {**{k: v for k, v in row.items() if k != rows.PROPOSED}, "usage": ROUTE, "duration": TAKEN_FOR}
        raw.update({rows.cell("medications", i, k): str(v) for k, v in row.items()})
    v = validate(raw, today=today, age=pre.age)
    if not v.ok:
        raise SystemExit(f"the bench's record does not validate: {v.errors}")
    saved = records.save(store, resident_id="R1", values=v.values, sources=pre.sources, actor="doc", at=at)
    if not saved.complete:
        raise SystemExit("the bench's record is not complete: the figure would not be for a full check")
    if len(v.values["medications"]) != len(MEDICATIONS):
        raise SystemExit(f"the proposed medication rows were not saved: {v.values['medications']}")
    return v.values, saved.sources, set(pre.computed)


def main() -> None:
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    today = at.astimezone(timezone(timedelta(hours=8))).date()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "edge.db")
        try:
            values, sources, computed = build(store, today, at)
        finally:
            store.close()
    filled = {n: values[n] for n in sources}
    answered = {n: v for n, v in DOCTOR.items() if v is not None}
    meds = values["medications"]
    extra = [c for r in meds for c in (r["usage"], r["duration"])]          # typed either way
    carried = [c for r in meds for c in (r["name"], r["dose"])]             # typed only by hand
    print(f"one elder's full 健康体检表 (complete by the KPI's rule), {len(filled)} values from devices and the analyser, "
          f"{len(computed)} computed ({', '.join(sorted(computed))}), {len(answered)} answers and 5 self-care items "
          f"by the doctor, {len(meds)} medication rows proposed from his follow-up and confirmed")
    clicks = sum(1 for n in answered if BY_NAME[n].kind in ("code", "codes")) + len(SELFCARE)
    adding = len(meds) - 1                  # 添加一行 for each drug after the first, typed by hand
    numbers = [v for n, v in answered.items() if BY_NAME[n].kind not in ("code", "codes")]
    station = sum(STATION_ACTIONS.values())
    print(f"{'':34} {'with the devices':>18} {'typed in full':>15}")
    common = clicks + len(numbers) + len(extra)
    by_hand_only = 3 + len(filled) + len(computed) + len(carried) + len(meds) + adding   # +adherence clicks
    print(f"{'actions':34} {station + common + len(meds):18d} {by_hand_only + common:15d}")
    for label, k in TYPISTS.items():
        both = clicks * clicked() + sum(typed(v, k) for v in numbers + extra)
        boxed = both + (station + len(meds)) * clicked()                    # + one 确认 per drug
        by_hand = (both + (3 + len(meds) + adding) * clicked() + sum(typed(v, k) for v in filled.values())
                   + sum(typed(values[n], k) for n in computed) + sum(typed(c, k) for c in carried))
        print(f"{'minutes, ' + label:34} {boxed / 60:18.1f} {by_hand / 60:15.1f}")
    print(f"stations' actions: {', '.join(f'{k} {v}' for k, v in STATION_ACTIONS.items())}")
    print("the measurements themselves aside; today's platforms: 20-30 minutes of typing for a full record "
          "(issue 20)")


if __name__ == "__main__":
    main()
