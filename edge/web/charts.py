"""Trend charts drawn on the server as SVG: no script, no library, works offline and on old
browsers. Markup is built with markupsafe so nothing from the data can break out of it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from edge.core.reading import parse_iso

W, H = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 10, 22


@dataclass
class Line:
    label: str
    points: list[tuple[str, float]]
    css: str                       # class of the polyline (colour lives in the stylesheet)


def svg(title: str, lines: list[Line], *, unit: str, limits: tuple[float, ...] = (),
        start: datetime, end: datetime, empty: str = "") -> Markup:
    values = [v for line in lines for _, v in line.points]
    if not values:
        return Markup('<p class="chart-empty">{}</p>').format(empty)
    lo, hi = min(values + list(limits)), max(values + list(limits))
    pad = (hi - lo) * 0.1 or 1
    lo, hi = lo - pad, hi + pad
    t0, t1 = start.timestamp(), max(end.timestamp(), start.timestamp() + 1)

    def x(t: str) -> float:
        return LEFT + (parse_iso(t).timestamp() - t0) / (t1 - t0) * (W - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM)

    parts = [Markup('<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{t}">'
                    '<title>{t}</title>').format(w=W, h=H, t=title)]
    for v in (lo + pad, (lo + hi) / 2, hi - pad):
        parts.append(Markup('<text class="axis" x="{x}" y="{y:.1f}" text-anchor="end">{v:.0f}</text>')
                     .format(x=LEFT - 4, y=y(v) + 4, v=v))
    for limit in limits:
        parts.append(Markup('<line class="limit" x1="{a}" x2="{b}" y1="{y:.1f}" y2="{y:.1f}"/>')
                     .format(a=LEFT, b=W - RIGHT, y=y(limit)))
    parts.append(Markup('<text class="axis" x="{x}" y="{y}">{d}</text>').format(x=LEFT, y=H - 6, d=start.date()))
    parts.append(Markup('<text class="axis" x="{x}" y="{y}" text-anchor="end">{d}</text>')
                 .format(x=W - RIGHT, y=H - 6, d=end.date()))
    for line in lines:
        if not line.points:
            continue
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line.points)
        parts.append(Markup('<polyline class="{c}" points="{p}"><title>{l}</title></polyline>')
                     .format(c=line.css, p=coords, l=line.label))
        t, v = line.points[-1]
        parts.append(Markup('<circle class="{c}" cx="{x:.1f}" cy="{y:.1f}" r="3"/>').format(c=line.css, x=x(t), y=y(v)))
    parts.append(Markup('<text class="unit" x="{x}" y="{y}">{u}</text>').format(x=LEFT + 4, y=TOP + 10, u=unit))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


__all__ = ["Line", "svg", "escape"]
