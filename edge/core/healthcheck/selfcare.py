"""老年人生活自理能力评估表 (self-care assessment of the elderly), pure functions.

Five items, each judged at one of four levels; each level has the score printed on the form; the
total gives the band: 0-3 可自理, 4-8 轻度依赖, 9-18 中度依赖, >=19 不能自理 (填表说明 of the form;
docs/health-check.md). 进餐 and 穿衣 have no 轻度依赖 level on the form ("—"), so that level is
refused for them. The band's code is the 健康体检表's 生活自理能力自我评估 code (1-4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

LEVELS = (("1", "可自理", "independent"), ("2", "轻度依赖", "mildly dependent"),
          ("3", "中度依赖", "moderately dependent"), ("4", "不能自理", "dependent"))


@dataclass(frozen=True)
class Item:
    name: str
    zh: str
    en: str
    scores: dict[str, int]          # level code -> score; a level missing is "—" on the form


ITEMS: tuple[Item, ...] = (
    Item("meal", "进餐", "Eating", {"1": 0, "3": 3, "4": 5}),
    Item("grooming", "梳洗", "Grooming and bathing", {"1": 0, "2": 1, "3": 3, "4": 7}),
    Item("dressing", "穿衣", "Dressing", {"1": 0, "3": 3, "4": 5}),
    Item("toilet", "如厕", "Toileting and continence", {"1": 0, "2": 1, "3": 5, "4": 10}),
    Item("activity", "活动", "Moving about", {"1": 0, "2": 1, "3": 5, "4": 10}),
)
BY_NAME = {i.name: i for i in ITEMS}
# (lowest total, band code): the band is the last whose lowest total is <= the total
BANDS = ((0, "1"), (4, "2"), (9, "3"), (19, "4"))
MAX_TOTAL = sum(max(i.scores.values()) for i in ITEMS)     # 37


def field_name(item: Item) -> str:
    return f"selfcare_{item.name}"


def band(total: int) -> str:
    if not 0 <= total <= MAX_TOTAL:
        raise ValueError(f"a self-care total is 0-{MAX_TOTAL}, not {total}")
    return [code for low, code in BANDS if total >= low][-1]


def band_label(code: str | None, lang: str = "zh") -> str:
    for c, zh, en in LEVELS:
        if c == code:
            return zh if lang == "zh" else en
    return ""


@dataclass(frozen=True)
class Assessment:
    levels: dict[str, str]          # item -> level code
    scores: dict[str, int]
    total: int
    band: str


def assess(levels: Mapping[str, str]) -> Assessment:
    """Score a complete set of levels (every item judged, each level allowed for its item)."""
    scores = {i.name: i.scores[levels[i.name]] for i in ITEMS}
    total = sum(scores.values())
    return Assessment(dict(levels), scores, total, band(total))


def read(raw: Mapping[str, Any]) -> tuple[Assessment | None, dict[str, str], dict[str, str]]:
    """The levels submitted as selfcare_<item>: (assessment or None, levels read, errors by field).
    None when no item was answered; every item is needed once one is."""
    levels, errors = {}, {}
    for item in ITEMS:
        v = str(raw.get(field_name(item)) or "").strip()
        if v:
            levels[item.name] = v
    if not levels:
        return None, {}, {}
    for item in ITEMS:
        v = levels.get(item.name)
        if v is None:
            errors[field_name(item)] = "missing"
        elif v not in item.scores:
            errors[field_name(item)] = "level"
    if errors:
        return None, levels, errors
    return assess(levels), levels, {}
