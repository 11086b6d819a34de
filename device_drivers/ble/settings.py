"""`[drivers.ble]` keys, validated here (config.py leaves driver tables open).

    [drivers.ble]
    adapter = "hci0"          # the BlueZ adapter
    scan_seconds = 8          # each scan
    pause_seconds = 5         # between rounds
    connect_timeout = 20      # each step has its own timeout: bleak has no overall one on Linux
    step_timeout = 10         # subscribe, write, wait for a RACP answer
    measurement_wait = 60     # after connecting, how long to wait for a first measurement
    idle_seconds = 5          # a session ends after this long without data
    session_timeout = 180     # hard cap on one device session
    backoff_base = 2          # reconnect delay: full jitter in [0, min(cap, base * 2^attempt)]
    backoff_cap = 300
    write_time = true         # write Current Time (0x2A2B) to devices that accept it
    continuous_every = 60     # store at most one reading per this many seconds from a stream
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import DriverError


@dataclass(frozen=True)
class BleSettings:
    adapter: str = "hci0"
    scan_seconds: float = 8.0
    pause_seconds: float = 5.0
    connect_timeout: float = 20.0
    step_timeout: float = 10.0
    measurement_wait: float = 60.0
    idle_seconds: float = 5.0
    session_timeout: float = 180.0
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    write_time: bool = True
    continuous_every: float = 60.0

    @classmethod
    def from_table(cls, table: dict) -> "BleSettings":
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, raw in table.items():
            if key == "enabled":
                continue
            if key not in known:
                raise DriverError(f"config: unknown key drivers.ble.{key}; allowed: enabled, {', '.join(known)}")
            values[key] = _convert(key, raw, type(getattr(cls, key)))
        s = cls(**values)
        for key in known:
            v = getattr(s, key)
            if isinstance(v, float) and not 0 < v <= 3600:
                raise DriverError(f"config: drivers.ble.{key} = {v!r} is not allowed; expected seconds, 0-3600")
        if s.backoff_cap < s.backoff_base:
            raise DriverError("config: drivers.ble.backoff_cap must be at least backoff_base")
        return s


def _convert(key: str, raw, kind: type):
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        low = str(raw).strip().lower()   # env overrides arrive as text
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    elif kind is float:
        try:
            if not isinstance(raw, bool):
                return float(raw)
        except ValueError:
            pass
    elif kind is str and isinstance(raw, str) and raw:
        return raw
    expected = {bool: "true or false", float: "a number of seconds", str: "a name such as hci0"}[kind]
    raise DriverError(f"config: drivers.ble.{key} = {raw!r} is not allowed; expected {expected}")
