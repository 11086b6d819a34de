"""Checking a `[drivers.NAME]` config table: known keys, typed values, one-line errors naming the key.

Values may arrive as text (environment overrides such as CLINIC_EDGE_DRIVERS_ASTM_BAUDRATE=9600),
so integers and booleans are converted here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import DriverError


@dataclass(frozen=True)
class Option:
    kind: type
    default: Any
    allowed: str
    check: Callable[[Any], bool] = lambda v: True
    required: bool = False


def read_section(name: str, table: dict[str, Any], options: dict[str, Option]) -> dict[str, Any]:
    """The validated table; raises DriverError naming the first bad key."""
    known = {**options, "enabled": Option(bool, True, "true or false")}
    for key in table:
        if key not in known:
            raise DriverError(f"config: unknown key drivers.{name}.{key}; allowed: {', '.join(sorted(known))}")
    out = {}
    for key, opt in known.items():
        if key not in table:
            if opt.required:
                raise DriverError(f"config: drivers.{name}.{key} is required ({opt.allowed})")
            out[key] = opt.default
            continue
        value = _convert(table[key], opt.kind)
        ok = isinstance(value, opt.kind) and not (opt.kind is int and isinstance(value, bool))
        if not ok or not opt.check(value):
            raise DriverError(f"config: drivers.{name}.{key} = {table[key]!r} is not allowed; expected {opt.allowed}")
        out[key] = value
    return out


def _convert(value: Any, kind: type) -> Any:
    if not isinstance(value, str) or kind is str:
        return value
    text = value.strip()
    if kind is int:
        try:
            return int(text)
        except ValueError:
            return value
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    return value


BAUDRATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


def device_id_ok(v: str) -> bool:
    from edge.core.devices import DEVICE_ID

    return bool(DEVICE_ID.fullmatch(v))
