"""HL7 v2 ORU^R01 from monitors (IHE PCD-01 style) -> Readings; ACK messages.

Each numeric OBX becomes a Reading: OBX-3 in IEEE 11073 MDC terms mapped to LOINC (MDC_TO_LOINC,
sources in docs/devices.md); any other code (MDC or vendor, e.g. 108^MNDRY_ECG_PAUSE_RATE^99MNDRY) is kept raw as
`id^text^system`, which ingest stores as 'unmapped'. OBX-6 MDC units become UCUM. OBX-14 is the
observation time (else OBR-7, else MSH-7); a time without offset is the clinic's local time.
PID-3 goes to meta["patient_id"] for matching a resident. OBX-11 decides whether the value is a
result (F, P, R, S, C, U, A, B or empty); W, X, D, I, N, O give a reading with no value and the
reason (stored rejected); C, W, D, A and B also replace the device's earlier result (SUPERSEDING, applied by
the driver through edge.core.corrections). One text OBX is read too: the ECG machine's conclusion
(8601-7 EKG impression), as a reading of 1 (normal) or 2 (abnormal) with its text in meta.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Mapping

from edge.core.reading import Reading, finite_number, storable_time

from ..errors import FrameError

# IEEE 11073-10101 context-free codes (partition x 65536 + term) -> LOINC; each one's source is
# in docs/devices.md, "HL7 ORU: MDC codes". A code not here is kept raw and stored 'unmapped'.
MDC_TO_LOINC = {
    "150021": "8480-6", "150022": "8462-4", "150023": "8478-0",    # MDC_PRESS_BLD_NONINV_SYS/_DIA/_MEAN
    "150301": "8480-6", "150302": "8462-4", "150303": "8478-0",    # MDC_PRESS_CUFF_SYS/_DIA/_MEAN
    "150456": "2708-6",                                            # MDC_PULS_OXIM_SAT_O2
    "149530": "8867-4", "149546": "8867-4", "149514": "8867-4",    # MDC_PULS_OXIM_PULS_RATE, _PULS_RATE_NON_INV, _PULS_RATE
    "149522": "8867-4",                                            # MDC_BLD_PULS_RATE_INV
    "147842": "8867-4",                                            # MDC_ECG_HEART_RATE
    "150364": "8310-5", "150344": "8310-5",                        # MDC_TEMP_BODY, MDC_TEMP (monitor's probe)
    "151562": "9279-1", "151578": "9279-1",                        # MDC_RESP_RATE, MDC_TTHOR_RESP_RATE
}
# OBX-11 observation result status (HL7 v2 table 0085). A value is a result only with one of
# RESULT_STATUSES; C, W and D replace the device's earlier result for the same observation.
# A and B (added in v2.8: amended for demographics, appended report) re-send a final result.
RESULT_STATUSES = {"", "F", "P", "R", "S", "C", "U", "A", "B"}
SUPERSEDING = {"C": "corrected by the device (OBX-11 C)", "W": "the device marked it wrong (OBX-11 W)",
               "D": "deleted by the device (OBX-11 D)", "A": "amended by the device (OBX-11 A)",
               "B": "sent again by the device with an appended report (OBX-11 B)"}
NOT_A_RESULT = {"W": "the device marked this result wrong (OBX-11 W)",
                "X": "the device says this result cannot be obtained (OBX-11 X)",
                "D": "the device deleted this result (OBX-11 D)",
                "I": "the result is not yet available (OBX-11 I: specimen in lab)",
                "N": "not asked for (OBX-11 N)", "O": "an order detail, not a result (OBX-11 O)"}
MDC_UNITS = {"266016": "mm[Hg]", "MDC_DIM_MMHG": "mm[Hg]", "262688": "%", "MDC_DIM_PERCENT": "%",
             "264864": "/min", "MDC_DIM_BEAT_PER_MIN": "/min", "268192": "Cel", "MDC_DIM_DEGC": "Cel",
             "MDC_DIM_FAHR": "[degF]", "MDC_DIM_KILO_PASCAL": "kPa", "MDC_DIM_RESP_PER_MIN": "/min"}
# The ECG machine's conclusion: OBX-3 8601-7^EKG IMPRESSION^LN, sent as text (ST, TX, FT) or coded (CE, CWE),
# as in the ECG report example of HL7 v2 chapter 7 (docs/health-check.md, "ECG conclusion"). It becomes a
# reading of ECG_CODE: 1 normal, 2 abnormal (the 健康体检表's codes), the conclusion in meta["ecg_conclusion"].
ECG_IMPRESSION = {"8601-7"}
ECG_CODE = "8601-7"
TEXT_TYPES = {"ST", "TX", "FT", "CE", "CWE"}
# OBX-3 coded in LOINC (HL7 table 0396 "LN"): the laboratory results of the township's analysers
LOINC_SYSTEMS = {"LN", "LOINC"}
NORMAL_FLAGS = {"N"}
NORMAL_WORDS = ("正常心电图", "NORMAL ECG", "NORMAL EKG")
ABNORMAL_WORDS = ("异常", "ABNORMAL", "BORDERLINE", "大致正常", "临界")
NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")
HL7_TIME = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?(?:([+-])(\d{2})(\d{2}))?")
MAX_SEGMENTS = 5000


class Hl7FrameError(FrameError):
    """Bytes that are not a usable HL7 v2 ORU^R01 message; the text goes back in the AE."""


@dataclass(frozen=True)
class Header:
    field: str
    component: str
    repeat: str
    escape: str
    sub: str
    fields: tuple[str, ...]        # fields[n] is MSH-n (MSH-1 is the field separator)

    def get(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    @property
    def control_id(self) -> str:
        return self.get(10)


def segments(message: bytes) -> list[str]:
    text = message.decode("utf-8", errors="replace")
    segs = [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]
    if len(segs) > MAX_SEGMENTS:
        raise Hl7FrameError(f"more than {MAX_SEGMENTS} segments")
    return segs


def parse_header(segment: str) -> Header:
    if not segment.startswith("MSH") or len(segment) < 8:
        raise Hl7FrameError("the message does not start with an MSH segment")
    sep = segment[3]
    enc, _, _ = segment[4:].partition(sep)
    if sep.isalnum() or len(enc) < 2 or len(set(enc + sep)) != len(enc) + 1 or any(c.isalnum() for c in enc):
        raise Hl7FrameError("MSH-1/MSH-2 do not declare usable separators (expected |^~\\&)")
    enc = (enc + "\\&")[:4] if len(enc) < 4 else enc[:4]
    fields = ("MSH", sep, *segment[4:].split(sep))
    return Header(sep, enc[0], enc[1], enc[2], enc[3], tuple(fields))


def parse_oru(message: bytes, *, device_id: str, tz: tzinfo,
              codes: Mapping[str, str] | None = None) -> tuple[Header, list[Reading]]:
    """The header and one Reading per numeric OBX; raises Hl7FrameError saying what is wrong.
    `codes` maps an analyser's own OBX-3 test codes (`WBC`, `HGB`) to LOINC (`[drivers.mllp.codes]`)."""
    segs = segments(message)
    if not segs:
        raise Hl7FrameError("the message is empty")
    h = parse_header(segs[0])
    kind = h.get(9).split(h.component)
    if kind[:2] != ["ORU", "R01"]:
        raise Hl7FrameError(f"message type {h.get(9)!r} is not supported; send ORU^R01")
    if not h.control_id:
        raise Hl7FrameError("MSH-10 (message control id) is empty")
    readings, patient, obr_time = [], "", ""
    for seg in segs[1:]:
        f = _fields(seg, h)
        if f[0] == "PID":
            patient = _comp(f, 3, h).strip()
        elif f[0] == "OBR":
            obr_time = _get(f, 7)
        elif f[0] == "OBX":
            r = _observation(f, h, seg, device_id, patient, obr_time, tz, codes or {})
            if r is not None:
                readings.append(r)
    return h, readings


def _fields(seg: str, h: Header) -> list[str]:
    if len(seg) < 3 or not seg[:3].isalnum() or (len(seg) > 3 and seg[3] != h.field):
        raise Hl7FrameError(f"segment {seg[:8]!r} is not NAME|fields")
    return seg.split(h.field)


def _get(f: list[str], n: int) -> str:
    return f[n] if n < len(f) else ""


def _comp(f: list[str], n: int, h: Header, k: int = 0) -> str:
    parts = _get(f, n).split(h.repeat)[0].split(h.component)
    return unescape(parts[k], h) if k < len(parts) else ""


def _observation(f, h: Header, seg: str, device_id, patient, obr_time, tz, codes) -> Reading | None:
    value_type, sent = _get(f, 2).strip(), _get(f, 5).split(h.repeat)[0].strip()
    if not sent:
        return None                 # a container (device, channel) with no value of its own
    if value_type in TEXT_TYPES and _comp(f, 3, h).strip() in ECG_IMPRESSION:
        return _ecg_impression(f, h, seg, device_id, patient, obr_time, tz)
    if value_type not in ("NM", ""):
        return None                 # time sync, text and coded entries are not observations
    set_id = _get(f, 1)
    code_id, code_text, system = (_comp(f, 3, h, k).strip() for k in (0, 1, 2))
    if not code_id:
        raise Hl7FrameError(f"OBX {set_id or '?'} has no observation identifier (OBX-3)")
    status = _get(f, 11).strip().upper()
    if status in RESULT_STATUSES and not NUMBER.fullmatch(sent):
        raise Hl7FrameError(f"OBX {set_id or '?'} ({code_id}): value {sent[:30]!r} is not a number")
    value, why = _result_value(sent, status)
    loinc = codes.get(code_id) or (code_id if system in LOINC_SYSTEMS else
                                   MDC_TO_LOINC.get(code_id) if system in ("MDC", "") else None)
    raw_code = _get(f, 3).split(h.repeat)[0]
    unit_id, unit_text = _comp(f, 6, h, 0).strip(), _comp(f, 6, h, 1).strip()
    unit = MDC_UNITS.get(unit_id) or MDC_UNITS.get(unit_text) or unit_id or unit_text
    when = _get(f, 14).strip() or obr_time.strip() or h.get(7).strip()
    meta = {k: v for k, v in {"patient_id": patient, "message_control_id": h.control_id,
                              "obx_sub_id": _get(f, 4), "abnormal_flags": _get(f, 8), "result_status": _get(f, 11),
                              "sending_application": _comp(list(h.fields), 3, h), "mdc_code": code_id,
                              "mdc_name": code_text, "unit_as_sent": _get(f, 6)}.items() if v}
    key = json.dumps(["hl7", h.control_id, set_id, code_id, _get(f, 4), when, sent], separators=(",", ":"))
    if value is None:
        meta["value_as_text"] = sent[:40]
    return Reading(device_id=device_id, code=loinc or unescape(raw_code, h), value=value, unit=unit,
                   transport="hl7", device_time=parse_time(when, tz), raw=seg, source_key=key, meta=meta,
                   no_value_reason=why)


def ecg_value(conclusion: str, flags: str) -> int:
    """1 (normal) only when OBX-8 says N, or, with no flag, the conclusion reads 正常心电图 / normal ECG and
    nothing abnormal; anything else is 2 (abnormal), so the doctor reads the conclusion."""
    text = conclusion.upper()
    if flags:
        return 1 if flags.upper() in NORMAL_FLAGS else 2
    return 1 if any(w in text for w in NORMAL_WORDS) and not any(w in text for w in ABNORMAL_WORDS) else 2


def _ecg_impression(f, h: Header, seg: str, device_id, patient, obr_time, tz) -> Reading:
    """The ECG machine's conclusion: value 1/2 from OBX-8 or the text, the text itself in meta."""
    parts = []
    for rep in _get(f, 5).split(h.repeat):
        comps = [unescape(c, h).strip() for c in rep.split(h.component)]
        text = comps[1] if _get(f, 2).strip() in ("CE", "CWE") and len(comps) > 1 and comps[1] else comps[0]
        parts.append(re.sub(rf"{re.escape(h.escape)}\.br{re.escape(h.escape)}", "；", text))
    conclusion = "；".join(p for p in parts if p)[:500]
    status = _get(f, 11).strip().upper()
    flags = _get(f, 8).split(h.repeat)[0].strip()
    value, why = (ecg_value(conclusion, flags), None) if status in RESULT_STATUSES else \
        (None, NOT_A_RESULT.get(status, f"unknown result status {status[:5]!r} (OBX-11)"))
    when = _get(f, 14).strip() or obr_time.strip() or h.get(7).strip()
    meta = {k: v for k, v in {"patient_id": patient, "message_control_id": h.control_id, "abnormal_flags": flags,
                              "result_status": _get(f, 11), "ecg_conclusion": conclusion,
                              "sending_application": _comp(list(h.fields), 3, h)}.items() if v}
    key = json.dumps(["hl7", h.control_id, _get(f, 1), ECG_CODE, _get(f, 4), when, conclusion[:100]],
                     separators=(",", ":"), ensure_ascii=False)
    return Reading(device_id=device_id, code=ECG_CODE, value=value, unit="{code}", transport="hl7",
                   device_time=parse_time(when, tz), raw=seg, source_key=key, meta=meta, no_value_reason=why)


def _result_value(sent: str, status: str) -> tuple[float | None, str | None]:
    """(value, None), or (None, why) when OBX-11 says this is not a usable result or the number is
    beyond any float (400 digits)."""
    if status not in RESULT_STATUSES:
        return None, NOT_A_RESULT.get(status, f"unknown result status {status[:5]!r} (OBX-11)")
    value = finite_number(float(sent))
    if value is None:
        return None, f"the device sent {sent[:30]}, beyond any possible value"
    return value, None


def unescape(text: str, h: Header) -> str:
    e = h.escape
    if e not in text:
        return text
    for code, char in (("F", h.field), ("S", h.component), ("R", h.repeat), ("T", h.sub), ("E", e)):
        text = text.replace(f"{e}{code}{e}", char)
    return text


def parse_time(text: str, tz: tzinfo) -> datetime | None:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]); local time when it carries no offset."""
    m = HL7_TIME.fullmatch(text or "")
    if not m or m.group(4) is None:
        return None
    y, mo, d, hh, mi, ss, frac, sign, oh, om = m.groups()
    try:
        zone = tz
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om))
            zone = timezone(offset if sign == "+" else -offset)
        micro = int((frac or "0").ljust(6, "0")[:6])
        when = datetime(int(y), int(mo), int(d), int(hh), int(mi or 0), int(ss or 0), micro, tzinfo=zone)
    except (ValueError, OverflowError):
        return None
    return when if storable_time(when) else None


def ack(header: Header | None, code: str, *, now: datetime, ack_id: str, text: str = "") -> bytes:
    """An ACK for `header`'s message: AA (stored), AE (malformed: `text` says why), AR (not supported)."""
    h = header or Header("|", "^", "~", "\\", "&", ("MSH", "|", "^~\\&"))
    sep = h.field

    def esc(s: str) -> str:
        s = s.replace(h.escape, f"{h.escape}E{h.escape}")
        for code_, char in (("F", h.field), ("S", h.component), ("R", h.repeat), ("T", h.sub)):
            s = s.replace(char, f"{h.escape}{code_}{h.escape}")
        return s.replace("\r", " ").replace("\n", " ")

    msh = sep.join(["MSH", h.component + h.repeat + h.escape + h.sub, "CLINIC-EDGE", "", h.get(3), h.get(4),
                    now.strftime("%Y%m%d%H%M%S%z"), "", f"ACK{h.component}R01{h.component}ACK", ack_id,
                    h.get(11) or "P", h.get(12) or "2.6"])
    msa = sep.join(["MSA", code, h.control_id] + ([esc(text)[:200]] if text else []))
    segs = [msh, msa]
    if code != "AA" and text:
        segs.append(sep.join(["ERR", "", "", "", "E", "", "", "", esc(text)[:200]]))
    return ("\r".join(segs) + "\r").encode("utf-8")
