"""The check-day slip's QR code (docs/health-check.md, "The slip"), drawn by segno as inline SVG.

The code carries exactly what the registration and station fields accept: the resident id. A USB
scanner types it like a keyboard, followed by Enter, so scanning submits the field.
"""
from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(payload: str) -> Markup:
    """An inline <svg> of `payload` as a QR code (error correction M, 4-module quiet zone)."""
    qr = segno.make(payload, error="m", micro=False)
    return Markup(qr.svg_inline(scale=4, border=4, title=payload))
