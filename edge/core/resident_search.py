"""Finding a resident with one search box: name, pinyin initials (张三 from "zs"), the last digits
of the ID number, or the phone number. Every branch is an indexed range query: the initials live
in their own table (one row per reading of a polyphonic name), the ID and phone numbers are also
kept reversed so "last digits" becomes a prefix."""
from __future__ import annotations

import itertools
import re
import sqlite3

MAX_READINGS = 32          # pinyin combinations kept for one name (曾 zeng/ceng, 单 shan/dan...)
COLUMNS = ("id, name, sex, birth_date, id_number, phone, address, health_record_no, htn, t2dm,"
           " contract_signed")


def initials(name: str) -> list[str]:
    """Every pinyin-initials reading of a name, the most likely first: 曾小明 -> ['cxm', 'zxm'].

    pypinyin is imported here, when a name is written, not when a search runs: its phrase tables
    hold about 55 MB in a process (docs/operations.md, memory), and searching reads the initials
    kept in resident_initials."""
    from pypinyin import Style, pinyin

    parts: list[list[str]] = []
    for run in re.findall(r"[\u3400-\u9fff]+|[A-Za-z]+", name or ""):
        if run.isascii():
            parts.append([run[0].lower()])  # a Latin word: its first letter
            continue
        for options in pinyin(run, style=Style.FIRST_LETTER, heteronym=True):
            letters = [o[0].lower() for o in options if o and o[0].isascii() and o[0].isalpha()]
            if letters:
                parts.append(list(dict.fromkeys(letters)))
    out = ["".join(c) for c in itertools.islice(itertools.product(*parts), MAX_READINGS)] if parts else []
    return list(dict.fromkeys(out))


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
    """Residents matching q, best matches first. An empty q gives no rows."""
    q = (q or "").strip()
    if not q:
        return []
    live = "" if include_voided else " AND r.voided_at IS NULL"
    if re.fullmatch(r"[A-Za-z]+", q):
        sql = (f"SELECT DISTINCT {_cols('r')} FROM resident_initials i JOIN residents r ON r.id = i.resident_id"
               f" WHERE {_prefix('i.initials')}{live} ORDER BY length(i.initials), r.name LIMIT ?")
        return store.query(sql, (*_range(q.lower()), limit))
    if re.fullmatch(r"[0-9]+[Xx]?", q):
        digits = q.upper()
        rev = digits[::-1]
        sql = (f"SELECT {_cols('r')} FROM residents r WHERE ({_prefix('r.id_number_rev')} OR"
               f" {_prefix('r.phone')} OR {_prefix('r.phone_rev')} OR r.health_record_no = ?){live}"
               " ORDER BY r.name LIMIT ?")
        return store.query(sql, (*_range(rev), *_range(digits), *_range(rev), digits, limit))
    sql = f"SELECT {_cols('r')} FROM residents r WHERE {_prefix('r.name')}{live} ORDER BY r.name LIMIT ?"
    return store.query(sql, (*_range(q), limit))


def _cols(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in COLUMNS.split(","))
