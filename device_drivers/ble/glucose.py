"""Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34), notified.

Measurement (GLS 1.0): flags | sequence uint16 | base Date Time | [time offset sint16 min] |
[concentration SFLOAT + type/location uint8] | [sensor status annunciation uint16].
Flags: bit0 time offset, bit1 concentration+type/location, bit2 unit (0 kg/L, 1 mol/L),
bit3 annunciation, bit4 context follows.

Stored once: the reading's source_key is the meter's sequence number with the record's base time
(a meter whose memory was reset restarts at 0; the time keeps those records apart), so a record
fetched again through RACP is recognised and not stored twice.

Control solution (type 10 or location 4) is a quality-control test of the meter, not a patient
reading. It is stored - the clinic's QC log needs it and its sequence number must be kept - but
with no value and the reason, so ingest() records it as rejected and it never reaches a form or
a report as a glucose value (the measured value is in meta["control_solution_value"]).
Annunciations that make the value meaningless (sensor malfunction, insufficient sample, strip
errors, read interrupted, general fault) are treated the same way; others are kept in meta.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

from edge.core.reading import Reading

from .errors import GlucoseFrameError
from .fields import Cursor, bits, shifted

GLUCOSE_MEASUREMENT = "2a18"
GLUCOSE_CONTEXT = "2a34"
GLUCOSE, HBA1C = "2339-0", "4548-4"
TYPES = {1: "capillary_whole_blood", 2: "capillary_plasma", 3: "venous_whole_blood", 4: "venous_plasma",
         5: "arterial_whole_blood", 6: "arterial_plasma", 7: "undetermined_whole_blood",
         8: "undetermined_plasma", 9: "interstitial_fluid", 10: "control_solution"}
LOCATIONS = {1: "finger", 2: "alternate_site_test", 3: "earlobe", 4: "control_solution", 15: "not_available"}
ANNUNCIATION = {0: "battery_low", 1: "sensor_malfunction", 2: "sample_size_insufficient",
                3: "strip_insertion_error", 4: "strip_type_incorrect", 5: "result_higher_than_device_can_process",
                6: "result_lower_than_device_can_process", 7: "temperature_too_high", 8: "temperature_too_low",
                9: "read_interrupted", 10: "general_device_fault", 11: "time_fault"}
UNUSABLE = {"sensor_malfunction", "sample_size_insufficient", "strip_insertion_error", "strip_type_incorrect",
            "read_interrupted", "general_device_fault", "result_higher_than_device_can_process",
            "result_lower_than_device_can_process"}
CONTROL_SOLUTION_REASON = "control solution test (meter quality control), not a patient reading"


def sequence_key(sequence: int, base_time_text: str) -> str:
    return f"gls-seq:{sequence}|{base_time_text}"


def parse(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
          received: datetime | None = None) -> list[Reading]:
    """Glucose Measurement -> one glucose reading (or none when no concentration was sent)."""
    c = Cursor(data, GlucoseFrameError, "Glucose Measurement")
    flags = c.u8("flags")
    sequence = c.u16("sequence number")
    base = c.date_time("base time", tz)
    meta: dict = {"characteristic": GLUCOSE_MEASUREMENT, "flags": flags, "sequence": sequence,
                  "device_time_as_sent": base.text, "context_follows": bool(flags & 0x10)}
    t = base
    if flags & 0x01:
        meta["time_offset_min"] = c.s16("time offset")
        t = shifted(base, meta["time_offset_min"], GlucoseFrameError, "Glucose Measurement")
    number = None
    if flags & 0x02:
        number = c.sfloat("glucose concentration")
        type_location = c.u8("type and sample location")
        meta["sample_type"] = TYPES.get(type_location & 0x0F, f"reserved:{type_location & 0x0F}")
        meta["sample_location"] = LOCATIONS.get(type_location >> 4, f"reserved:{type_location >> 4}")
    if flags & 0x08:
        status = c.u16("sensor status annunciation")
        meta["annunciation"] = status
        meta["annunciation_flags"] = bits(status, ANNUNCIATION)
    if number is None:   # a record without a result (allowed by the spec): nothing to store
        return []
    # kg/L -> mg/dL is x10^5; mol/L -> mmol/L is x10^3: exact in the decimal exponent.
    value, unit = ((number.times_ten_to(3), "mmol/L") if flags & 0x04 else (number.times_ten_to(5), "mg/dL"))
    reason = number.reason
    if meta["sample_type"] == "control_solution" or meta["sample_location"] == "control_solution":
        meta["control_solution_value"] = value
        value, reason = None, CONTROL_SOLUTION_REASON
    else:
        unusable = sorted(UNUSABLE & set(meta.get("annunciation_flags", ())))
        if unusable and value is not None:
            meta["value_as_measured"] = value
            value, reason = None, "meter reported " + ", ".join(unusable).replace("_", " ")
    return [Reading(device_id=device_id, code=GLUCOSE, value=value, unit=unit, transport="ble",
                    device_time=t.when, raw=c.data.hex(), no_value_reason=reason, meta=meta,
                    source_key=sequence_key(sequence, base.text))]


def unreadable(data: bytes, device_id: str, error: GlucoseFrameError) -> list[Reading]:
    """A stored record the meter sent but that cannot be read (e.g. base time 9999-12-31 plus a
    time offset): kept as a reading with no value and the reason (ingest stores it rejected), so
    the download moves past its sequence number instead of asking for it at every connection.
    [] when the frame is too short to hold even the sequence number."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 3:
        return []
    sequence = int.from_bytes(data[1:3], "little")
    return [Reading(device_id=device_id, code=GLUCOSE, value=None, unit="mmol/L", transport="ble",
                    raw=bytes(data).hex(), no_value_reason=f"the meter's record {sequence} cannot be read: {error}",
                    meta={"characteristic": GLUCOSE_MEASUREMENT, "sequence": sequence, "unreadable": True},
                    source_key=sequence_key(sequence, "unreadable:" + bytes(data).hex()))]


# -- context -------------------------------------------------------------------------------------
CARBOHYDRATES = {1: "breakfast", 2: "lunch", 3: "dinner", 4: "snack", 5: "drink", 6: "supper", 7: "brunch"}
MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
HEALTH = {1: "minor_health_issues", 2: "major_health_issues", 3: "during_menses", 4: "under_stress",
          5: "no_health_issues", 15: "not_available"}
MEDICATIONS = {1: "rapid_acting_insulin", 2: "short_acting_insulin", 3: "intermediate_acting_insulin",
               4: "long_acting_insulin", 5: "pre_mixed_insulin"}


@dataclass
class GlucoseContext:
    sequence: int
    fields: dict = field(default_factory=dict)
    hba1c: object = None             # ieee11073.Number or None
    raw: bytes = b""


def parse_context_fields(data: bytes) -> GlucoseContext:
    c = Cursor(data, GlucoseFrameError, "Glucose Measurement Context")
    flags = c.u8("flags")
    ctx = GlucoseContext(sequence=c.u16("sequence number"), raw=c.data)
    f = ctx.fields
    if flags & 0x80:
        f["extended_flags"] = c.u8("extended flags")
    if flags & 0x01:
        carb_id = c.u8("carbohydrate id")
        f["carbohydrate"] = CARBOHYDRATES.get(carb_id, f"reserved:{carb_id}")
        f["carbohydrate_kg"] = c.sfloat("carbohydrate amount").value
    if flags & 0x02:
        meal = c.u8("meal")
        f["meal"] = MEALS.get(meal, f"reserved:{meal}")
    if flags & 0x04:
        th = c.u8("tester and health")
        f["tester"] = TESTERS.get(th & 0x0F, f"reserved:{th & 0x0F}")
        f["health"] = HEALTH.get(th >> 4, f"reserved:{th >> 4}")
    if flags & 0x08:
        f["exercise_s"] = c.u16("exercise duration")
        f["exercise_intensity_pct"] = c.u8("exercise intensity")
    if flags & 0x10:
        med = c.u8("medication id")
        f["medication"] = MEDICATIONS.get(med, f"reserved:{med}")
        amount = c.sfloat("medication amount").value
        f["medication_l" if flags & 0x20 else "medication_kg"] = amount
    if flags & 0x40:
        ctx.hba1c = c.sfloat("HbA1c")
        f["hba1c_pct"] = ctx.hba1c.value
    return ctx


def parse_context(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
                  received: datetime | None = None) -> list[Reading]:
    """Glucose Measurement Context -> an HbA1c reading when one is sent, else none.

    The other context fields (meal, tester, exercise, medication...) belong to the measurement
    with the same sequence number: `session.GlucoseDownload` merges them into its meta.
    """
    ctx = parse_context_fields(data)
    if ctx.hba1c is None:
        return []
    return [Reading(device_id=device_id, code=HBA1C, value=ctx.hba1c.value, unit="%", transport="ble",
                    raw=ctx.raw.hex(), no_value_reason=ctx.hba1c.reason,
                    meta={"characteristic": GLUCOSE_CONTEXT, "sequence": ctx.sequence, **ctx.fields},
                    source_key=f"gls-ctx-hba1c:{ctx.sequence}")]
