"""Finding a resident with one search box: name, pinyin initials (张三 from "zs"), the last digits
of the ID number, or the phone number. Every branch is an indexed range query: the initials live
in their own table (one row per reading of a polyphonic name), the ID and phone numbers are also
kept reversed so "last digits" becomes a prefix."""
from __future__ import annotations

import itertools
import os
import re
import sqlite3
import unicodedata

from .field_seal import ID_TAILS, PHONE_TAILS
from .surnames import name_letters


def N_(message: str) -> str:
    """Marks a message for translation; the web layer translates it when shown."""
    return message

MAX_READINGS = 32          # pinyin combinations kept for one name (曾 zeng/ceng, 单 shan/dan...)
COMBINATIONS = 4096        # ... chosen, the likeliest first, among at most this many
COLUMNS = ("id, name, sex, birth_date, id_number, phone, address, health_record_no, htn, t2dm,"
           " contract_signed")


def initials(name: str) -> list[str]:
    """Every pinyin-initials reading of a name, the likeliest first: 曾小明 -> ['zxm', 'cxm'].

    Each character is looked up on its own in pypinyin's single-character table, with all its
    readings (heteronyms: 长 zhǎng and cháng), so a doctor finds 单长乐 by "scl" and by "dcl"; a
    surname is read as a surname (edge/core/surnames.py: 单 Shàn, 尉迟 Yùchí). pypinyin's phrase
    tables, which pick one reading from the words around a character (about 40 MB in a process,
    docs/operations.md "Memory"), are not loaded: a name is not a phrase. pypinyin is imported
    here, when a name is written, not when a search runs: searching reads the initials kept in
    resident_initials."""
    parts = _letters(name or "")
    combos = itertools.islice(itertools.product(*[list(enumerate(p)) for p in parts]), COMBINATIONS)
    likeliest = sorted(combos, key=lambda combo: sum(rank for rank, _ in combo)) if parts else []
    return list(dict.fromkeys("".join(c for _, c in combo) for combo in likeliest))[:MAX_READINGS]


def _letters(name: str) -> list[list[str]]:
    """For each character (Latin word: its first letter), its readings' first letters, likeliest first."""
    first_letters = _pinyin_table()
    parts: list[list[str]] = []
    for run in re.findall(r"[\u3400-\u9fff]+|[A-Za-z]+", name):
        if run.isascii():
            parts.append([run[0].lower()])
            continue
        parts.extend(letters for letters in map(first_letters, run) if letters)
    if re.fullmatch(r"[\u3400-\u9fff]+", name.strip()):   # a name in characters: surname, given name
        for i, letter in enumerate(name_letters(name.strip())):
            if letter is not None and i < len(parts):
                parts[i] = [letter] + [other for other in parts[i] if other != letter]
    return parts


def _pinyin_table():
    """A character's readings' first letters (['c', 'z'] for 长), from pypinyin without its phrase
    tables: PYPINYIN_NO_PHRASES and PYPINYIN_NO_DICT_COPY are read by pypinyin when it is first
    imported (pypinyin/constants.py); each character is looked up alone, so the result is the
    same in a process that loaded the phrases anyway."""
    os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")
    os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "1")
    from pypinyin import Style, pinyin

    def first_letters(ch: str) -> list[str]:
        [options] = pinyin(ch, style=Style.FIRST_LETTER, heteronym=True)
        return list(dict.fromkeys(o[0].lower() for o in options if o and o[0].isascii() and o[0].isalpha()))
    return first_letters


def reverse(text: str | None) -> str | None:
    return text[::-1] if text else None


def write_keys(conn: sqlite3.Connection, resident_id: str, name: str) -> str:
    """Replace the resident's initials rows; returns the primary reading for the residents row."""
    keys = initials(name)
    conn.execute("DELETE FROM resident_initials WHERE resident_id = ?", (resident_id,))
    conn.executemany("INSERT OR IGNORE INTO resident_initials (initials, resident_id) VALUES (?, ?)",
                     [(k, resident_id) for k in keys])
    return keys[0] if keys else ""


def _prefix(column: str) -> str:
    return f"({column} >= ? AND {column} < ?)"


def _range(q: str) -> tuple[str, str]:
    return q, q + "\U0010ffff"


def search(store, q: str, *, limit: int = 20, include_voided: bool = False) -> list[dict]:
    """Residents matching q, best matches first. An empty q gives no rows. A number may be typed
    with spaces between its groups, full-width digits or a lower-case x."""
    q = (q or "").strip()
    if re.fullmatch(r"[0-9]+[Xx]?", normalise_number(q)):
        q = normalise_number(q)
    rows = _search(store, q, limit=limit, include_voided=include_voided)
    return [store.fields.open_record(r) for r in rows] if store.fields else rows


def _search(store, q: str, *, limit: int, include_voided: bool) -> list[dict]:
    if not q:
        return []
    live = "" if include_voided else " AND r.voided_at IS NULL"
    if re.fullmatch(r"[A-Za-z]+", q):
        sql = (f"SELECT DISTINCT {_cols('r')} FROM resident_initials i JOIN residents r ON r.id = i.resident_id"
               f" WHERE {_prefix('i.initials')}{live} ORDER BY length(i.initials), r.name LIMIT ?")
        return store.query(sql, (*_range(q.lower()), limit))
    if re.fullmatch(r"[0-9]+[Xx]?", q) and store.fields:
        return _sealed_numbers(store, q.upper(), live, limit)
    if re.fullmatch(r"[0-9]+[Xx]?", q):
        digits = q.upper()
        rev = digits[::-1]
        sql = (f"SELECT {_cols('r')} FROM residents r WHERE ({_prefix('r.id_number_rev')} OR"
               f" {_prefix('r.phone')} OR {_prefix('r.phone_rev')} OR r.health_record_no = ?){live}"
               " ORDER BY r.name LIMIT ?")
        return store.query(sql, (*_range(rev), *_range(digits), *_range(rev), digits, limit))
    sql = f"SELECT {_cols('r')} FROM residents r WHERE {_prefix('r.name')}{live} ORDER BY r.name LIMIT ?"
    return store.query(sql, (*_range(q), limit))


def number_kinds(digits: str) -> list[str]:
    """Which keyed hashes a typed number is looked up in, when ID numbers and phones are sealed:
    the whole ID (18), its last 4 or 6, a whole phone (7-12 digits), its last 4."""
    kinds = [f"id{n}" for n in ID_TAILS if len(digits) == n] + [f"phone{n}" for n in PHONE_TAILS if len(digits) == n]
    if len(digits) == 18:
        kinds.append("id")
    if digits.isdigit() and 7 <= len(digits) <= 12:
        kinds.append("phone")
    return kinds


def hint(store, q: str) -> str | None:
    """What the search box says when a typed number cannot be looked up as it is (sealed numbers are
    found by their whole value or by the tails listed in ID_TAILS and PHONE_TAILS only)."""
    q = normalise_number(q)
    if not store.fields or not re.fullmatch(r"[0-9]+[Xx]?", q) or len(q) in _searchable():
        return None
    return NUMBER_HINT


NUMBER_HINT = N_("Type the whole ID number, or its last 4 or 6 characters, or the whole phone number or its "
                 "last 4 digits.")
RECORD_NO_LENGTH = 17        # the health-record number, never sealed


def _searchable() -> set[int]:
    return {n for n in range(1, 19) if number_kinds("1" * n)} | {RECORD_NO_LENGTH}


def searchable_lengths() -> str:
    """The typed-number lengths a sealed search can answer, for the search box's script."""
    return ",".join(str(n) for n in sorted(_searchable()))


def normalise_number(q: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", q or "")).upper()


def _sealed_numbers(store, digits: str, live: str, limit: int) -> list[dict]:
    seal = store.fields
    pairs = [(k, seal.index(k, digits[-int(k[-1]):] if k[-1].isdigit() else digits)) for k in number_kinds(digits)]
    match = " OR ".join("(x.kind = ? AND x.mac = ?)" for _ in pairs) or "0"
    sql = (f"SELECT {_cols('r')} FROM residents r WHERE (r.id IN (SELECT x.resident_id FROM resident_field_index x"
           f" WHERE {match}) OR r.health_record_no = ?){live} ORDER BY r.name LIMIT ?")
    return store.query(sql, (*[v for p in pairs for v in p], digits, limit))


def _cols(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in COLUMNS.split(","))
