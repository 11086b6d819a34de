"""Units and codes: every value is stored in one canonical unit per code."""
from __future__ import annotations

import pytest

from edge.core import codes
from edge.core.ingest import normalise
from edge.core.reading import Reading


def reading(code, value, unit):
    return Reading(device_id="d", code=code, value=value, unit=unit, transport="manual")


@pytest.mark.parametrize("code,value,unit,expected", [
    ("8480-6", 18.7, "kPa", 140),          # 18.7 kPa = 140.26 mmHg
    ("8480-6", 16000, "Pa", 120),
    ("8480-6", 120, "mmHg", 120),
    ("8310-5", 98.6, "[degF]", 37.0),
    ("29463-7", 154.3, "[lb_av]", 70.0),    # 154.3 lb = 69.99 kg
    ("2339-0", 126, "mg/dL", 7.0),          # 126 mg/dL: the diabetes threshold 7.0 mmol/L
    ("2339-0", 0.95, "kg/m3", 5.3),         # SenML: 0.95 kg/m3 = 95 mg/dL
    ("8302-2", 1.72, "m", 172.0),
    ("8867-4", 72, "beat/min", 72),
])
def test_values_are_converted_to_the_canonical_unit(code, value, unit, expected):
    v, u, status, reason = normalise(reading(code, value, unit))
    assert (v, u, status, reason) == (expected, codes.lookup(code).unit, "valid", None)


@pytest.mark.parametrize("code,value,unit", [("8480-6", 400, "mm[Hg]"), ("2708-6", 140, "%"),
                                             ("8310-5", 50, "Cel"), ("29463-7", -1, "kg")])
def test_impossible_values_are_rejected_with_the_reason(code, value, unit):
    v, _, status, reason = normalise(reading(code, value, unit))
    assert status == "rejected" and "outside the possible range" in reason and v == value


def test_a_wrong_unit_is_rejected_not_guessed():
    _, _, status, reason = normalise(reading("8310-5", 36.6, "mmol/L"))
    assert status == "rejected" and "mmol/L" in reason and "Cel" in reason


def test_glucose_stays_convertible_back_to_mg_dl():
    assert codes.glucose_mg_dl(7.0) == 126


def test_unknown_codes_are_kept_raw():
    v, u, status, _ = normalise(reading("MDC:99999", 3, "x"))
    assert (v, u, status) == (3, "x", "unmapped")


def test_short_names_and_loinc_codes_find_the_same_code():
    assert codes.lookup("sbp") is codes.lookup("8480-6") is codes.lookup("MDC_PRESS_BLD_NONINV_SYS")
    assert codes.lookup("nonsense") is None


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 10 ** 400, True])
def test_a_value_that_is_not_a_finite_number_is_never_a_value(value):
    # the net under every driver (issue 12): ASTM 1e999 was stored as inf and broke readings --json
    for code in ("8480-6", "vendor-x"):
        v, _, status, reason = normalise(reading(code, value, "mm[Hg]"))
        assert v is None and status in ("rejected", "unmapped") and reason


def test_whatever_a_driver_hands_ingest_is_stored_as_strict_json(tmp_path):
    import json
    from datetime import datetime, timedelta, timezone

    from edge.core import devices
    from edge.core.clock import SystemClock
    from edge.core.ingest import ingest, latest
    from edge.core.store import Store

    store = Store(tmp_path / "node.db")
    devices.add(store, "d", kind="other", transport="manual", now=SystemClock().now())
    west = timezone(timedelta(hours=-5))
    bad = [Reading(device_id="d", code="8480-6", value=float("inf"), unit="mm[Hg]", transport="manual",
                   source_key="inf"),
           Reading(device_id="d", code="8480-6", value=120, unit="mm[Hg]", transport="manual", source_key="late",
                   device_time=datetime(9999, 12, 31, 23, 0, tzinfo=west), meta={"x": float("nan")}),
           Reading(device_id="d", code="vendor-x", value=10 ** 400, unit="1", transport="manual", source_key="big")]
    outcomes = ingest(store, bad)
    assert [o.status for o in outcomes] == ["rejected", "rejected", "unmapped"]
    rows = latest(store)
    json.dumps(rows, allow_nan=False)
    assert {r["id"]: r["value"] for r in rows} == {outcomes[0].id: None, outcomes[1].id: 120, outcomes[2].id: None}
    late = store.one("SELECT device_time, meta, reason FROM readings WHERE id = ?", (outcomes[1].id,))
    assert late["device_time"] is None and "out of range" in late["reason"]
    assert json.loads(late["meta"]) == {"x": None, "device_time_as_sent": "9999-12-31 23:00:00-05:00"}
    store.close()
