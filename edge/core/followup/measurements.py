"""What a visit's measuring session offers the follow-up form (pure functions, no I/O).

- Blood pressure: each BP measurement (SYS+DIA+pulse from one device at one time). The national
  guideline measures twice, one minute apart, and records the mean; when the two differ by more
  than 5 mmHg a third is taken and the three are averaged (docs/followup.md, "Blood pressure from
  the devices"). The default is therefore the mean of the last two, or of the last three when the
  last two differ by more than 5 mmHg and a third exists; the doctor may tick any one to three.
- Glucose: only a value the device marks as fasting fills 空腹血糖值 by itself. A value without a
  meal mark is offered and the doctor confirms it; a postprandial, preprandial, bedtime or random
  (casual) value never fills the fasting field (docs/followup.md, "Glucose and meals").
- Other codes (weight, height, HbA1c): the latest of the session.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

from .. import codes

SYS, DIA, PULSE, GLUCOSE = "8480-6", "8462-4", "8867-4", "2339-0"
BP_CODES_SET = frozenset((SYS, DIA, PULSE))
MAX_AVERAGED = 3
REMEASURE_MMHG = 5
FASTING = "fasting"


def half_up(x: float) -> int:
    """Rounded as a person (and the page's Math.round) rounds: 128.5 -> 129."""
    return int(math.floor(x + 0.5))


def bp_measurements(groups: Iterable[dict]) -> list[dict]:
    """The session's BP measurements, oldest first: {key, device_id, time, sbp, dbp, pulse, ids}."""
    out = []
    for g in groups:
        by_code = {r["code"]: r for r in g["readings"]}
        if SYS not in by_code or DIA not in by_code:
            continue
        pulse = by_code.get(PULSE)
        out.append({"key": ",".join(r["id"] for r in g["readings"] if r["code"] in (SYS, DIA, PULSE)),
                    "device_id": g["device_id"], "time": g["effective_time"],
                    "sbp": by_code[SYS]["value"], "dbp": by_code[DIA]["value"],
                    "pulse": pulse["value"] if pulse else None,
                    "ids": {"sbp": by_code[SYS]["id"], "dbp": by_code[DIA]["id"],
                            "heart_rate": pulse["id"] if pulse else None}})
    return out


def default_bp(bps: list[dict]) -> list[dict]:
    """The measurements averaged by default (see the module doc)."""
    if len(bps) < 3:
        return bps[-2:]
    a, b = bps[-2], bps[-1]
    if abs(a["sbp"] - b["sbp"]) > REMEASURE_MMHG or abs(a["dbp"] - b["dbp"]) > REMEASURE_MMHG:
        return bps[-3:]
    return bps[-2:]


def bp_values(chosen: list[dict]) -> tuple[dict[str, int], dict[str, Any]]:
    """(values, sources) for sbp/dbp/heart_rate from the chosen measurements: one measurement gives
    its values and reading ids, two or three their mean and the list of ids."""
    values, sources = {}, {}
    for name, key in (("sbp", "sbp"), ("dbp", "dbp"), ("heart_rate", "pulse")):
        used = [m for m in chosen if m[key] is not None]
        if not used:
            continue
        values[name] = half_up(sum(m[key] for m in used) / len(used))
        ids = [m["ids"][name] for m in used]
        sources[name] = ids[0] if len(ids) == 1 else ids
    return values, sources


def meal(reading: dict) -> str | None:
    """The meal mark the device sent with a glucose reading, if any."""
    meta = reading.get("meta") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = {}
    # BLE: the Glucose Measurement Context merged into meta.context; MQTT and line devices: meta.meal
    return codes.meal_mark((meta.get("context") or {}).get("meal") or meta.get("meal"))


def fasting_glucose_use(reading: dict) -> str:
    """'fills' (a fasting value), 'confirm' (no meal mark: the doctor decides) or 'never'."""
    mark = meal(reading)
    if mark == FASTING:
        return "fills"
    return "confirm" if mark is None else "never"


def mean_matches(values: list[float], value: float, *, whole: bool) -> bool:
    """Is `value` what the form shows for these readings (their mean, rounded for whole numbers)?"""
    if not values:
        return False
    m = sum(values) / len(values)
    return abs(m - value) <= (0.5 + 1e-9 if whole else 0.051)
