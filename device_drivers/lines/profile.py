"""Line-device profiles (TOML) and the pure line parser they drive.

    [profile]
    name = "..."            # what the device is
    kind = "scale"          # a device kind (edge.core.devices.KINDS)
    encoding = "ascii"
    [serial]                # pyserial settings: baudrate, bytesize, parity, stopbits, xonxoff, rtscts
    baudrate = 9600
    [[line]]
    pattern = '^SYS[:=]\\s*(?P<sys>\\d+)...'     # a Python regex with named groups
    values.sys = { code = "8480-6", unit = "mm[Hg]" }   # a code edge/core/codes.py knows, a unit of it
    values.w = { code = "29463-7", unit_group = "u" }   # the unit is in another group
    values.t = { code = "8310-5", unit = "Cel", scale = 0.1 }   # optional: the number times scale
    values.p = { code = "20454-5", unit = "{grade}", grades = { "-" = 0, "1+" = 1 } }   # a printed grade -> number
    patient_group = "id"                        # optional: a group holding the patient id
    time_group = "t"                            # optional: a group holding the device time
    time_format = "%Y-%m-%d %H:%M"              #   parsed with this strptime format
    meal = "fasting"                            # optional, glucose: every value of this line is fasting
    meal_group = "m"                            #   or a group with the meter's mark (fasting, AC, PC, random)
    [[ignore]]
    pattern = '^-+$'                            # lines that are expected and carry no reading
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from edge.core import codes
from edge.core.reading import Reading, storable_time, utc_iso

from ..errors import DriverError, FrameError

PROFILES_DIR = Path(__file__).with_name("profiles")
MAX_LINE = 4096
GLUCOSE = "2339-0"
SERIAL_KEYS = {"baudrate": int, "bytesize": int, "parity": str, "stopbits": (int, float), "xonxoff": bool,
               "rtscts": bool}


class LineFrameError(FrameError):
    """A line that no pattern of the profile reads."""


class ProfileError(DriverError):
    """A profile file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Value:
    group: str
    code: str
    unit: str = ""
    unit_group: str = ""
    scale: float = 1.0
    grades: tuple[tuple[str, float], ...] = ()     # printed grade -> value (dipstick analysers)


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern
    values: tuple[Value, ...]
    patient_group: str = ""
    time_group: str = ""
    time_format: str = ""
    meal: str = ""              # every glucose of this line was taken so (a meter kept in fasting mode)
    meal_group: str = ""        # or the group holding the meter's own mark (fasting, AC, PC, random...)


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str
    encoding: str
    serial: dict
    patterns: tuple[Pattern, ...]
    ignore: tuple[re.Pattern, ...]
    source: str


def available() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load(name: str) -> Profile:
    """A shipped profile by name (file stem in profiles/) or a profile file by path."""
    path = Path(name) if ("/" in name or name.endswith(".toml")) else PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        raise ProfileError(f"line profile {name!r} not found; shipped profiles: {', '.join(available())}, "
                           "or give the path of a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"line profile {path}: not valid TOML: {e}") from None
    return from_dict(data, str(path))


def from_dict(data: dict, source: str = "<profile>") -> Profile:
    def fail(key: str, why: str):
        raise ProfileError(f"line profile {source}: {key} {why}")

    head = data.get("profile", {})
    from edge.core.devices import KINDS
    kind = head.get("kind", "other")
    if kind not in KINDS:
        fail("profile.kind", f"must be one of {', '.join(KINDS)}")
    encoding = head.get("encoding", "ascii")
    try:
        "".encode(encoding)
    except LookupError:
        fail("profile.encoding", f"{encoding!r} is not a known encoding")
    serial = dict(data.get("serial", {}))
    for key, value in serial.items():
        if key not in SERIAL_KEYS or not isinstance(value, SERIAL_KEYS[key]):
            fail(f"serial.{key}", f"is not one of {', '.join(SERIAL_KEYS)} with the right type")
    lines = data.get("line", [])
    if not lines:
        fail("[[line]]", "is missing: a profile needs at least one line pattern")
    patterns = tuple(_pattern(i, spec, fail) for i, spec in enumerate(lines))
    ignore = tuple(_regex(f"ignore[{i}].pattern", s.get("pattern"), fail) for i, s in enumerate(data.get("ignore", [])))
    return Profile(head.get("name", Path(source).stem), kind, encoding, serial, patterns, ignore, source)


def _regex(key: str, text, fail) -> re.Pattern:
    if not isinstance(text, str) or not text:
        fail(key, "must be a regular expression")
    try:
        return re.compile(text)
    except re.error as e:
        fail(key, f"is not a valid regular expression: {e}")


def _pattern(i: int, spec: dict, fail) -> Pattern:
    regex = _regex(f"line[{i}].pattern", spec.get("pattern"), fail)
    values = []
    for group, v in (spec.get("values") or {}).items():
        key = f"line[{i}].values.{group}"
        if group not in regex.groupindex:
            fail(key, "names a group the pattern does not have")
        if not isinstance(v, dict) or not isinstance(v.get("code"), str):
            fail(key, "must be a table with code = \"LOINC\" and unit or unit_group")
        if not v.get("unit") and v.get("unit_group") not in regex.groupindex:
            fail(key, "needs unit = \"UCUM\" or unit_group = a group of the pattern")
        _check_code(key, v, fail)
        grades = v.get("grades") or {}
        if not isinstance(grades, dict) or not all(isinstance(x, (int, float)) for x in grades.values()):
            fail(f"{key}.grades", "must be a table of printed grade = number")
        values.append(Value(group, v["code"], v.get("unit", ""), v.get("unit_group", ""), float(v.get("scale", 1.0)),
                            tuple((str(k), float(x)) for k, x in grades.items())))
    if not values:
        fail(f"line[{i}].values", "is missing: say which groups are readings")
    for opt in ("patient_group", "time_group"):
        if spec.get(opt) and spec[opt] not in regex.groupindex:
            fail(f"line[{i}].{opt}", "names a group the pattern does not have")
    if spec.get("time_group") and not spec.get("time_format"):
        fail(f"line[{i}].time_format", "is needed with time_group (a strptime format)")
    if spec.get("meal") and codes.meal_mark(spec["meal"]) is None:
        fail(f"line[{i}].meal", f"must be one of {', '.join(codes.GLUCOSE_MEALS)}")
    if spec.get("meal_group") and spec["meal_group"] not in regex.groupindex:
        fail(f"line[{i}].meal_group", "names a group the pattern does not have")
    return Pattern(regex, tuple(values), spec.get("patient_group", ""), spec.get("time_group", ""),
                   spec.get("time_format", ""), codes.meal_mark(spec.get("meal")) or "", spec.get("meal_group", ""))


def _check_code(key: str, v: dict, fail) -> None:
    """The code and a fixed unit must be ones ingest can normalise: an unknown code would store
    every reading as "unmapped", a wrong unit would reject each one, long after the profile loaded."""
    code = codes.lookup(v["code"])
    if code is None:
        fail(f"{key}.code", f"{v['code']!r} is not a code clinic-edge knows (edge/core/codes.py): "
                            f"one of {', '.join(c.loinc for c in codes.CODES)}")
    if v.get("unit") and v["unit"] not in code.conversions:
        fail(f"{key}.unit", f"{v['unit']!r} is not a unit of {code.loinc} ({code.display_en}); "
                            f"one of {', '.join(sorted(code.conversions))}")


def parse_line(profile: Profile, line: bytes, *, device_id: str, received: datetime, tz: tzinfo) -> list[Reading]:
    """The readings in one line ([] for an expected line without any); raises LineFrameError."""
    if len(line) > MAX_LINE:
        raise LineFrameError(f"line longer than {MAX_LINE} bytes")
    text = line.decode(profile.encoding, errors="replace").strip("\r\n\x00 ")
    if not text or any(rx.search(text) for rx in profile.ignore):
        return []
    for p in profile.patterns:
        m = p.regex.search(text)
        if m:
            return _readings(p, m, text, device_id, received, tz)
    raise LineFrameError(f"no pattern of profile {profile.name!r} reads the line {text[:60]!r}")


def _value(v: Value, sent: str) -> float:
    if v.grades:
        grades = dict(v.grades)
        if sent not in grades:
            raise LineFrameError(f"{v.group} = {sent[:20]!r} is not one of the grades {', '.join(grades)}")
        return grades[sent]
    try:
        return float(sent) * v.scale
    except ValueError:
        raise LineFrameError(f"{v.group} = {sent[:20]!r} is not a number") from None


def _readings(p: Pattern, m: re.Match, text: str, device_id: str, received: datetime, tz: tzinfo) -> list[Reading]:
    device_time = None
    if p.time_group and m.group(p.time_group):
        try:
            device_time = datetime.strptime(m.group(p.time_group).strip(), p.time_format).replace(tzinfo=tz)
        except ValueError as e:
            raise LineFrameError(f"time {m.group(p.time_group)!r} does not match {p.time_format!r}") from e
        if not storable_time(device_time):   # e.g. 0001-01-01 00:00 in UTC+8 is before year 1 in UTC
            raise LineFrameError(f"time {m.group(p.time_group)!r} is out of range")
    patient = (m.group(p.patient_group) or "").strip() if p.patient_group else ""
    out = []
    for v in p.values:
        sent = (m.group(v.group) or "").replace(" ", "")
        value = _value(v, sent)
        if value != value or value in (float("inf"), float("-inf")):
            raise LineFrameError(f"{v.group} = {sent[:20]!r} is not a finite number")
        unit = (m.group(v.unit_group) or "").strip() if v.unit_group else v.unit
        key = json.dumps(["line", utc_iso(received), text, v.group], separators=(",", ":"), ensure_ascii=False)
        meta = {"patient_id": patient} if patient else {}
        meal = codes.meal_mark(m.group(p.meal_group) if p.meal_group else None) or p.meal
        if meal and v.code == GLUCOSE:
            meta["meal"] = meal
        out.append(Reading(device_id=device_id, code=v.code, value=value, unit=unit, transport="lines",
                           device_time=device_time, raw=text, source_key=key, meta=meta))
    return out


class LineSplitter:
    """Bytes -> complete lines (CR, LF or CRLF). The partial line is dropped when the port is lost."""

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        parts = re.split(rb"\r\n|\r|\n", bytes(self._buf))
        self._buf = bytearray(parts.pop())
        if len(self._buf) > self.max_line:
            self.overlong += 1
            self._buf.clear()
        return [p for p in parts if p.strip()]

    def drop_partial(self) -> bool:
        had = bool(self._buf)
        self._buf.clear()
        return had
