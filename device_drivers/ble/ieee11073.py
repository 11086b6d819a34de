"""IEEE 11073-20601 numbers as the Bluetooth health services send them (little-endian on air).

SFLOAT: 16 bits, 4-bit two's-complement exponent, 12-bit two's-complement mantissa.
FLOAT:  32 bits, 8-bit two's-complement exponent, 24-bit two's-complement mantissa.
Special mantissas (NaN, NRes, +INF, -INF, reserved) are "no value" with their reason, never a
number; they are tested on the mantissa before sign extension, whatever the exponent (as
signove/antidote `bytelib.c` does). Values are rounded to the precision the exponent carries, so
`BD F0` is 18.9, not 18.900000000000002.
"""
from __future__ import annotations

from dataclasses import dataclass

SFLOAT_SPECIAL = {0x07FF: "NaN", 0x0800: "NRes", 0x07FE: "+INF", 0x0802: "-INF", 0x0801: "reserved"}
FLOAT_SPECIAL = {0x007FFFFF: "NaN", 0x00800000: "NRes", 0x007FFFFE: "+INF", 0x00800002: "-INF",
                 0x00800001: "reserved"}
REASONS = {"NaN": "the device sent NaN (not a number: no valid measurement)",
           "NRes": "the device sent NRes (not at this resolution: value out of its range)",
           "+INF": "the device sent +INF (above what it can measure)",
           "-INF": "the device sent -INF (below what it can measure)",
           "reserved": "the device sent a reserved special value"}


@dataclass(frozen=True)
class Number:
    """mantissa x 10^exponent, or a special value (`special` names it, `value` is None)."""
    mantissa: int
    exponent: int
    special: str | None = None

    @property
    def value(self) -> float | None:
        return None if self.special else scaled(self.mantissa, self.exponent)

    @property
    def reason(self) -> str | None:
        return REASONS[self.special] if self.special else None

    def times_ten_to(self, power: int) -> float | None:
        """The value multiplied by 10^power, exactly (e.g. glucose kg/L -> mg/dL is power 5)."""
        return None if self.special else scaled(self.mantissa, self.exponent + power)


def scaled(mantissa: int, exponent: int) -> float:
    if exponent >= 0:
        return float(mantissa * 10 ** exponent)
    return round(mantissa / 10 ** -exponent, -exponent)


def _decode(raw: int, bits: int, mantissa_bits: int, specials: dict, name: str) -> Number:
    """Split `raw` into a signed mantissa (low bits) and a signed exponent (high bits)."""
    if not 0 <= raw < 1 << bits:
        raise ValueError(f"{name} is {bits} bits, got {raw:#x}")
    mantissa, exponent = raw & ((1 << mantissa_bits) - 1), raw >> mantissa_bits
    if mantissa in specials:  # tested before sign extension, as Antidote does
        return Number(0, 0, specials[mantissa])
    exponent_bits = bits - mantissa_bits
    if mantissa >= 1 << (mantissa_bits - 1):
        mantissa -= 1 << mantissa_bits
    if exponent >= 1 << (exponent_bits - 1):
        exponent -= 1 << exponent_bits
    return Number(mantissa, exponent)


def sfloat(raw: int) -> Number:
    """Decode a 16-bit SFLOAT given as an unsigned int (4-bit exponent, 12-bit mantissa)."""
    return _decode(raw, 16, 12, SFLOAT_SPECIAL, "SFLOAT")


def float32(raw: int) -> Number:
    """Decode a 32-bit FLOAT given as an unsigned int (8-bit exponent, 24-bit mantissa)."""
    return _decode(raw, 32, 24, FLOAT_SPECIAL, "FLOAT")


def encode_sfloat(mantissa: int, exponent: int) -> bytes:
    """The two bytes of an SFLOAT (for building test vectors and fakes)."""
    if not -2048 <= mantissa <= 2047 or not -8 <= exponent <= 7:
        raise ValueError("SFLOAT mantissa is 12 bits and exponent 4 bits")
    return (((exponent & 0xF) << 12) | (mantissa & 0x0FFF)).to_bytes(2, "little")


def encode_float(mantissa: int, exponent: int) -> bytes:
    if not -(1 << 23) <= mantissa < (1 << 23) or not -128 <= exponent <= 127:
        raise ValueError("FLOAT mantissa is 24 bits and exponent 8 bits")
    return (((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)).to_bytes(4, "little")
