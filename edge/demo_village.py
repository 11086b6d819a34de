"""A small, realistic village for `clinic-edge demo`, seeded once on first start.

Twelve residents with valid GB 11643 ID numbers (region = the clinic's division code), eight of
them under hypertension and/or type 2 diabetes management with diagnosis dates, a height on
record, and a year of follow-ups: most controlled, one not (李桂兰), one overdue (刘长春), one with
an open urgent referral (陈玉梅). 张秀英 wears a wristband bound to her record, with a week of
morning SpO2/pulse readings.

Everything goes through the real core APIs (residents.create, ingest, validation + records.save,
devices.add/bind), so the outbox and the audit chain are written as in real use. Seeding is
idempotent: a villager whose ID number is already registered is skipped, with her history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from edge.core import devices, idnumber, residents
from edge.core.errors import ValidationError
from edge.core.followup import records, rules, validation
from edge.core.ingest import ingest
from edge.core.reading import Reading

ACTOR = "doctor"
WEARABLE = ("demo-band", "智能手环（张秀英）")
HTN, DM = "hypertension", "diabetes"


@dataclass(frozen=True)
class Visit:
    days_ago: int
    form: str
    sbp: int | None = None
    dbp: int | None = None
    fbg: float | None = None
    weight: float | None = None
    mode: str = "1"                      # 1 门诊, 2 家庭, 3 电话


@dataclass(frozen=True)
class Villager:
    name: str
    birth: date
    sex: str                             # "1" male, "2" female (GB/T 2261.1)
    seq: int                             # 顺序码 (odd: male, even: female)
    group: int                           # 村民小组
    phone: str | None = None
    htn_since: date | None = None
    t2dm_since: date | None = None
    height: float | None = None
    visits: tuple[Visit, ...] = field(default_factory=tuple)
    drugs: tuple[tuple[str, int, float], ...] = ()
    new_patient: bool = False            # hypertension found a few weeks ago


def _v(days, form, *a, **kw) -> Visit:
    return Visit(days, form, *a, **kw)


VILLAGE: tuple[Villager, ...] = (
    Villager("张秀英", date(1951, 3, 12), "2", 22, 1, "13905710321", htn_since=date(2016, 5, 10), height=156,
             visits=(_v(330, HTN, 142, 84, weight=58.5), _v(240, HTN, 138, 82, weight=58.0),
                     _v(150, HTN, 146, 86, weight=57.6), _v(62, HTN, 136, 80, weight=57.9)),
             drugs=(("氨氯地平片", 1, 5),)),
    Villager("王建国", date(1956, 8, 3), "1", 31, 1, "13857120456", htn_since=date(2012, 9, 1),
             t2dm_since=date(2018, 4, 16), height=171,
             visits=(_v(300, HTN, 132, 80, weight=76.2), _v(300, DM, fbg=6.4), _v(200, HTN, 134, 82, weight=75.8),
                     _v(200, DM, fbg=6.8), _v(110, HTN, 130, 78, weight=75.1), _v(110, DM, fbg=6.2),
                     _v(20, HTN, 128, 80, weight=74.6), _v(20, DM, fbg=6.6)),
             drugs=(("二甲双胍片", 2, 500), ("缬沙坦胶囊", 1, 80))),
    Villager("李桂兰", date(1962, 11, 25), "2", 44, 2, "13757193378", t2dm_since=date(2020, 3, 1), height=158,
             visits=(_v(270, DM, fbg=6.9, weight=66.0), _v(180, DM, fbg=7.3, weight=66.8),
                     _v(166, DM, fbg=6.7, weight=66.2), _v(75, DM, fbg=6.8, weight=65.9),
                     _v(9, DM, fbg=8.4, weight=67.1)),
             drugs=(("二甲双胍片", 2, 500),)),
    Villager("刘长春", date(1953, 6, 18), "1", 13, 2, "13605812267", htn_since=date(2015, 7, 20), height=168,
             visits=(_v(340, HTN, 148, 88, weight=70.3), _v(250, HTN, 162, 98, weight=71.0),
                     _v(236, HTN, 146, 88, weight=70.6), _v(130, HTN, 144, 86, weight=70.2)),
             drugs=(("硝苯地平缓释片", 2, 10),)),
    Villager("陈玉梅", date(1948, 2, 8), "2", 28, 3, "13588760419", htn_since=date(2010, 11, 5), height=152,
             visits=(_v(280, HTN, 148, 86, weight=54.2), _v(190, HTN, 156, 92, weight=54.0),
                     _v(176, HTN, 146, 84, weight=53.8), _v(85, HTN, 144, 88, weight=53.5),
                     _v(4, HTN, 186, 112, weight=53.1)),
             drugs=(("苯磺酸氨氯地平片", 1, 5), ("氢氯噻嗪片", 1, 12.5))),
    Villager("赵志强", date(1966, 9, 30), "1", 17, 3, "13989021756", htn_since=date(2021, 6, 2), height=174,
             visits=(_v(300, HTN, 132, 84, weight=80.5), _v(210, HTN, 128, 82, weight=79.9),
                     _v(120, HTN, 126, 80, weight=79.0), _v(30, HTN, 128, 78, weight=78.6)),
             drugs=(("厄贝沙坦片", 1, 150),)),
    Villager("孙淑珍", date(1959, 4, 22), "2", 36, 4, "13757104482", t2dm_since=date(2019, 8, 8), height=160,
             visits=(_v(290, DM, fbg=6.3, weight=61.0), _v(200, DM, fbg=6.9, weight=60.6),
                     _v(110, DM, fbg=6.1, weight=60.1), _v(25, DM, fbg=6.5, weight=59.8)),
             drugs=(("阿卡波糖片", 3, 50),)),
    Villager("周海涛", date(1975, 12, 5), "1", 51, 4, "13867455930", new_patient=True, height=176,
             visits=(_v(75, HTN, 152, 96, weight=86.0), _v(61, HTN, 138, 86, weight=85.2)),
             drugs=(("缬沙坦胶囊", 1, 80),)),
    Villager("曾国平", date(1957, 1, 28), "1", 19, 5, "13516823307", htn_since=date(2017, 3, 14), height=165,
             visits=(_v(280, HTN, 136, 84, weight=68.0), _v(190, HTN, 134, 82, weight=67.5),
                     _v(100, HTN, 132, 80, weight=67.8), _v(10, HTN, mode="3")),
             drugs=(("氯沙坦钾片", 1, 50),)),
    Villager("吴春花", date(1982, 7, 14), "2", 62, 1, "15068112734"),
    Villager("郑小明", date(2016, 10, 2), "1", 75, 2),
    Villager("黄丽娟", date(1991, 5, 19), "2", 88, 5, "18857106621"),
)
NEW_PATIENT_DAYS = 80      # 周海涛 was diagnosed (and taken into management) 80 days ago


def id_number(region: str, v: Villager) -> str:
    first17 = f"{region}{v.birth:%Y%m%d}{v.seq:03d}"
    return first17 + idnumber.check_char(first17)


def _region(division_code: str, today: date) -> str:
    """The county part of the clinic's division code, if an ID number can carry it."""
    region = division_code[:6]
    try:
        idnumber.parse(id_number(region, VILLAGE[0]), today=today)
        return region
    except ValidationError:
        return "110105"


def seed(node) -> dict[str, int]:
    """Seed the village (first start only); returns how many residents / follow-ups were added."""
    store, now = node.store, node.clock.now()
    zone = ZoneInfo(node.config["node"]["timezone"])
    today = now.astimezone(zone).date()
    region = _region(node.config["node"]["division_code"], today)
    village = node.config["node"]["clinic_name"].removesuffix("卫生室") or "本村"
    added = {"residents": 0, "followups": 0}
    created_at = now - timedelta(days=400)
    for i, v in enumerate(VILLAGE):
        number = id_number(region, v)
        if residents.by_id_number(store.conn, number, live=False):
            continue
        rid = _register(node, v, number, village, today, created_at + timedelta(minutes=7 * i))
        added["residents"] += 1
        added["followups"] += _history(node, rid, v, number, today, zone)
    _wearable(node, region, now, zone)
    return added


def _register(node, v: Villager, number: str, village: str, today: date, at: datetime) -> str:
    htn_since = v.htn_since
    if v.new_patient:               # diagnosed (and taken into management) a few weeks ago
        htn_since = today - timedelta(days=NEW_PATIENT_DAYS)
        at = datetime.combine(htn_since, time(9), at.tzinfo)
    data = {"name": v.name, "id_number": number, "sex": v.sex, "phone": v.phone or "",
            "address": f"{village}{v.group}组{(v.seq * 7) % 60 + 1}号", "contract_signed": "1" if v.visits else "",
            "htn": "1" if htn_since else "", "htn_diagnosed_on": htn_since.isoformat() if htn_since else "",
            "t2dm": "1" if v.t2dm_since else "", "t2dm_diagnosed_on": v.t2dm_since.isoformat() if v.t2dm_since else ""}
    return residents.create(node.store, data, division_code=node.config["node"]["division_code"], now=at,
                            actor=ACTOR)


def _reading(node, device: str, code: str, value, unit: str, number: str, at: datetime) -> str | None:
    r = Reading(device, code, value, unit, "mqtt", device_time=at, receive_time=at + timedelta(seconds=2),
                source_key=f"village:{number}:{code}:{at.isoformat()}", meta={"patient_id": number})
    [out] = ingest(node.store, [r])
    return out.id if out.status == "valid" else None


def _history(node, rid: str, v: Villager, number: str, today: date, zone: ZoneInfo) -> int:
    previous: dict[str, str | None] = {HTN: None, DM: None}
    saved = 0
    for k, visit in enumerate(sorted(v.visits, key=lambda x: (-x.days_ago, x.form))):
        day = today - timedelta(days=visit.days_ago)
        at = datetime.combine(day, time(8, 30 + 3 * k % 25), zone)
        sources = {}
        if visit.mode != "3":
            if v.height and k == 0:
                _reading(node, "demo-scale", "8302-2", v.height, "cm", number, at)
            if visit.weight:
                sources["weight"] = _reading(node, "demo-scale", "29463-7", visit.weight, "kg", number, at)
            if visit.sbp:
                sources["sbp"] = _reading(node, "demo-bp", "8480-6", visit.sbp, "mm[Hg]", number, at)
                sources["dbp"] = _reading(node, "demo-bp", "8462-4", visit.dbp, "mm[Hg]", number, at)
            if visit.fbg:
                sources["fbg"] = _reading(node, "demo-glucose", "2339-0", visit.fbg, "mmol/L", number, at)
        raw = _form(v, visit, day)
        measured = {"sbp": visit.sbp, "dbp": visit.dbp, "fbg": visit.fbg, "weight": visit.weight, "height": v.height}
        sugg = rules.suggestions(visit.form, measured, age=rules.age_on(v.birth, day),
                                 previous=previous[visit.form], visit_date=day)
        raw.update(classification=sugg["classification"] or "1", next_step=sugg["next_step"],
                   next_visit_date=sugg["next_visit_date"])
        if sugg["alerts"]:
            raw.update(referral_reason="血压≥180/110 mmHg，紧急转诊", referral_facility="县人民医院 心血管内科")
        checked = validation.validate(visit.form, raw, today=day)
        if checked.errors:
            raise ValidationError(f"demo village: {v.name} {day}: {checked.errors}")
        records.save(node.store, resident_id=rid, form=visit.form, values=checked.values, actor=ACTOR,
                     at=at + timedelta(minutes=4), sources={k: s for k, s in sources.items() if s},
                     suggestions={k: sugg[k] for k in ("classification", "next_step", "next_visit_date")})
        previous[visit.form] = raw["classification"]
        saved += 1
    return saved


def _form(v: Villager, visit: Visit, day: date) -> dict:
    raw = {"visit_date": day.isoformat(), "visit_mode": visit.mode, "symptoms": ["1"],
           "smoking": "0", "drinking": "0", "exercise_times": "5", "exercise_minutes": "30",
           "psych": "1", "compliance": "1", "med_adherence": "1", "adverse_reaction": "1"}
    if visit.form == HTN:
        raw.update(sbp=visit.sbp, dbp=visit.dbp, salt="1", heart_rate=72 if visit.sbp else None)
        if visit.sbp and visit.sbp >= 180:
            raw["symptoms"] = ["2"]           # 头痛头晕
    else:
        raw.update(fbg=visit.fbg, staple_food="250", hypoglycaemia="1", dorsalis_pedis="1")
    if visit.weight:
        raw["weight"] = visit.weight
        if v.height:
            raw["height"] = v.height
    for n, (drug, times, dose) in enumerate(v.drugs, start=1):
        raw.update({f"med_{n}_name": drug, f"med_{n}_times": str(times), f"med_{n}_dose": str(dose)})
    return {k: val if isinstance(val, list) else "" if val is None else str(val) for k, val in raw.items()}


def _wearable(node, region: str, now: datetime, zone: ZoneInfo) -> None:
    """张秀英's wristband: registered as a wearable and bound to her, with a week of morning
    SpO2/pulse readings that attached to her record by themselves (the bound-device path)."""
    device_id, name = WEARABLE
    if devices.get(node.store, device_id):
        return
    devices.add(node.store, device_id, kind="wearable", transport="demo", name=name, now=now, actor=ACTOR)
    rid = residents.by_id_number(node.store.conn, id_number(region, VILLAGE[0]), live=False)
    if rid is None:
        return
    devices.bind(node.store, device_id, rid, now=now, actor=ACTOR)
    today = now.astimezone(zone).date()
    for n, (spo2, pulse) in enumerate(((97, 68), (96, 71), (98, 66), (97, 70), (95, 74), (97, 69), (96, 72))):
        at = datetime.combine(today - timedelta(days=7 - n), time(6, 40 + n), zone)
        ingest(node.store, [Reading(device_id, code, value, unit, "demo", device_time=at,
                                    receive_time=at + timedelta(seconds=5), source_key=f"band:{at.isoformat()}:{code}")
                            for code, value, unit in (("2708-6", spo2, "%"), ("8867-4", pulse, "/min"))])


def banner(seeded: dict[str, int]) -> list[str]:
    """The demo banner's lines about the village and what to try first."""
    if seeded["residents"]:
        done = f"{seeded['residents']} residents and {seeded['followups']} follow-ups of the past year added"
    else:
        done = f"{len(VILLAGE)} residents, seeded on an earlier start"
    return [f"  village: {done}",
            "  try:    search “zxy” → 张秀英 and press 开始测量 (Measuring now): the BP monitor's next reading",
            "          lands on her record; then 高血压随访 opens pre-filled. 随访工作表 lists who is due."]
