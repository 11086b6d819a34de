"""How a surname is read, where its characters have several readings (docs/residents.md, "Pinyin
initials"). A dictionary lists a polyphonic character's everyday reading first (单 dān, 解 jiě,
曾 céng), but as a surname it is read otherwise (单 Shàn, 解 Xiè, 曾 Zēng), so the initials a
village doctor types for 单长乐 are "scl". Only the first letter matters for initials, so only the
characters whose surname reading starts with another letter than their first dictionary reading
are listed; the other readings are kept after it (search finds a resident by any of them).

Readings: the surname entries of 《现代汉语词典》 (第7版, 商务印书馆, 2016) and 《新华字典》 as
collected in the lists of commonly misread surnames cited in docs/residents.md.
"""
from __future__ import annotations

# compound surnames whose characters are read otherwise in them: their initials
COMPOUND = {
    "尉迟": "yc",   # Yùchí (尉 alone: Wèi)
    "长孙": "zs",   # Zhǎngsūn
    "万俟": "mq",   # Mòqí
    "单于": "cy",   # Chányú
    "澹台": "tt",   # Tántái
    "乐正": "yz",   # Yuèzhèng
}

# single surnames: the surname reading's first letter
SINGLE = {
    "单": "s",      # Shàn
    "解": "x",      # Xiè
    "曾": "z",      # Zēng
    "查": "z",      # Zhā
    "仇": "q",      # Qiú
    "区": "o",      # Ōu
    "召": "s",      # Shào
    "折": "s",      # Shé
    "繁": "p",      # Pó
    "种": "c",      # Chóng
    "翟": "z",      # Zhái
    "覃": "q",      # Qín (also Tán: kept after it)
    "秘": "b",      # Bì
    "隗": "w",      # Wěi
    "句": "g",      # Gōu
    "祭": "z",      # Zhài
    "乜": "n",      # Niè
    "长": "c",      # Cháng
}

# characters a given name reads otherwise than their first dictionary reading (长 zhǎng: 长乐,
# 长春 and 长生 are Cháng-)
GIVEN = {"长": "c"}


def name_letters(name: str) -> list[str | None]:
    """For each character of a name written in Chinese characters, the first letter of how it is
    read in a name where that differs from its first dictionary reading, else None: the surname
    the name starts with, then the given name's characters."""
    if name[:2] in COMPOUND:
        surname = list(COMPOUND[name[:2]])
    else:
        surname = [SINGLE[name[:1]]] if name[:1] in SINGLE else []
    return surname + [GIVEN.get(ch) for ch in name[len(surname):]]
