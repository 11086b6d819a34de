"""Exception tree of the BLE driver: one FrameError subclass per parser, link errors apart."""
from __future__ import annotations

from ..errors import DriverError, FrameError


class BleFrameError(FrameError):
    """Bytes from a BLE characteristic that cannot be turned into readings."""


class BloodPressureFrameError(BleFrameError):
    """A Blood Pressure Measurement (0x2A35) or Intermediate Cuff Pressure (0x2A36) value."""


class TemperatureFrameError(BleFrameError):
    """A Temperature Measurement (0x2A1C / 0x2A1E) value."""


class HeartRateFrameError(BleFrameError):
    """A Heart Rate Measurement (0x2A37) value."""


class GlucoseFrameError(BleFrameError):
    """A Glucose Measurement (0x2A18) or Glucose Measurement Context (0x2A34) value."""


class WeightFrameError(BleFrameError):
    """A Weight Measurement (0x2A9D) value."""


class PlxFrameError(BleFrameError):
    """A PLX Spot-check (0x2A5E) or Continuous (0x2A5F) Measurement value."""


class RacpFrameError(BleFrameError):
    """A Record Access Control Point (0x2A52) indication."""


class BleLinkError(DriverError):
    """The radio link failed; `reason` is the short text kept as the device's last error."""


class NoRadio(BleLinkError):
    """No Bluetooth adapter (or no BlueZ) on this machine."""


class DeviceNotFound(BleLinkError):
    """The device is not advertising / not in range."""


class LinkLost(BleLinkError):
    """The device disconnected (or went out of range) during a session."""


class BondLost(BleLinkError):
    """The device refused us: its bond (pairing keys) with this box is gone; re-pair it."""


class GattRefused(BleLinkError):
    """The device answered a GATT request with an ATT error (e.g. 0x80 for Current Time)."""


class StepTimeout(BleLinkError):
    """One step of a session (connect, subscribe, write, wait) took longer than allowed."""


class RacpError(BleLinkError):
    """The meter answered a Record Access request with an error response code."""
