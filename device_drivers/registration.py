"""The one device a serial or MLLP driver instance speaks for.

Choice: the driver registers its device on first start. The `[drivers.NAME]` section that county
IT writes is itself the act of installing the analyser or monitor at this clinic, so asking for a
second `clinic-edge device add` would only add a way to get it wrong. A device someone *removed*
is not brought back silently: the driver refuses to start and says how to fix it.
"""
from __future__ import annotations

from edge.core import devices
from edge.core.errors import CoreError

from .errors import DriverError


def ensure_device(store, device_id: str, *, kind: str, transport: str, name: str, now, driver: str) -> bool:
    """Register `device_id` unless it is registered; True when it was registered now."""
    row = devices.get(store, device_id, removed=True)
    if row is not None and row["removed_at"] is None:
        return False
    if row is not None:
        raise DriverError(f"config: drivers.{driver}.device_id = {device_id!r} names a device that was removed "
                          f"at {row['removed_at']}; re-add it (clinic-edge device add {device_id} --kind {kind} "
                          f"--transport {transport}) or choose another device_id")
    try:
        devices.add(store, device_id, kind=kind, transport=transport, name=name, now=now,
                    actor=f"driver:{driver}")
    except CoreError as e:
        raise DriverError(f"cannot register device {device_id} for [drivers.{driver}]: {e}") from e
    return True
