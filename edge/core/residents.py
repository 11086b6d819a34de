"""Residents (居民健康档案, the essentials of 个人基本信息表): create, edit, void.

Every field is checked before anything is written; all problems are reported together
(`FormInvalid.errors`, field -> message) and nothing is saved half. The ID number (GB 11643) gives
the birth date and sex, which are cross-checked against what was typed. The 17-digit
health-record number is the village's 12-digit division code + a 5-digit serial.
"""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any

from . import audit, field_seal, idnumber, management, outbox
from .clock import local_date
from .errors import NotFound, ValidationError
from .field_migration import write_index
from .reading import utc_iso
from .resident_search import reverse, write_keys

SEXES = {"0": "unknown", "1": "male", "2": "female", "9": "unstated"}   # GB/T 2261.1
FIELDS = ("name", "id_number", "sex", "birth_date", "phone", "address", "htn", "htn_diagnosed_on",
          "t2dm", "t2dm_diagnosed_on", "contract_signed")
PHONE = re.compile(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}", re.ASCII)


def N_(message: str) -> str:
    return message


class FormInvalid(ValidationError):
    """One message per field that needs fixing; `duplicate_of` names an existing resident."""

    def __init__(self, errors: dict[str, str], duplicate_of: str | None = None):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()), field=next(iter(errors), None))
        self.errors = errors
        self.duplicate_of = duplicate_of


def _flag(value: Any) -> int:
    return 1 if str(value).lower() in ("1", "true", "on", "yes", "y") else 0


def _date(value: Any, field: str, errors: dict[str, str]) -> date | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = N_("Enter a date as YYYY-MM-DD.")
        return None


def clean(data: dict[str, Any], *, today: date) -> dict[str, Any]:
    """Checked and normalised resident fields, or FormInvalid with every problem."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    name = re.sub(r"\s+", " ", str(data.get("name") or "")).strip()
    if not name:
        errors["name"] = N_("Enter the resident's name.")
    elif len(name) > 50:
        errors["name"] = N_("A name can have at most 50 characters.")
    out["name"] = name
    ident = None
    raw_id = idnumber.normalise(str(data.get("id_number") or ""))
    if raw_id:
        try:
            ident = idnumber.parse(raw_id, today=today)
        except ValidationError as e:
            errors["id_number"] = str(e)
    out["id_number"] = ident.number if ident else (raw_id or None)
    born = _date(data.get("birth_date"), "birth_date", errors)
    sex = str(data.get("sex") or "").strip()
    if sex and sex not in SEXES:
        errors["sex"] = N_("Choose a sex from the list.")
    if ident:
        if born and born != ident.birth_date:
            errors["birth_date"] = N_("This date of birth does not match the ID number.")
        if sex in ("1", "2") and sex != ident.sex:
            errors["sex"] = N_("This sex does not match the ID number.")
        born, sex = born or ident.birth_date, sex or ident.sex
    elif not raw_id:
        if not born and "birth_date" not in errors:
            errors["birth_date"] = N_("Enter the date of birth (or the ID number).")
        if not sex:
            errors["sex"] = N_("Choose a sex (or enter the ID number).")
    if born and (born > today or born.year < 1880) and "birth_date" not in errors:
        errors["birth_date"] = N_("This date of birth is not possible.")
    out["birth_date"] = born.isoformat() if born else None
    out["sex"] = sex or None
    phone = re.sub(r"[\s()]", "", str(data.get("phone") or ""))
    if phone and not PHONE.fullmatch(phone):
        errors["phone"] = N_("Enter an 11-digit mobile number or a landline like 0571-12345678.")
    out["phone"] = phone or None
    address = str(data.get("address") or "").strip()
    if len(address) > 200:
        errors["address"] = N_("An address can have at most 200 characters.")
    out["address"] = address or None
    for flag, when in (("htn", "htn_diagnosed_on"), ("t2dm", "t2dm_diagnosed_on")):
        out[flag] = _flag(data.get(flag))
        diagnosed = _date(data.get(when), when, errors)
        if diagnosed and (diagnosed > today or (born and diagnosed < born)):
            errors[when] = N_("The diagnosis date must lie between birth and today.")
        # the tick alone enrols (edge.core.management): a diagnosis date stays after management ended
        out[when] = diagnosed.isoformat() if diagnosed else None
    out["contract_signed"] = _flag(data.get("contract_signed"))
    if errors:
        raise FormInvalid(errors)
    return out


def _check_duplicate(conn, id_number: str | None, resident_id: str | None) -> None:
    if not id_number:
        return
    seal = field_seal.of(conn)
    if seal:   # sealed values differ each time: the keyed hash of the number finds it
        row = conn.execute("SELECT resident_id FROM resident_field_index WHERE kind = 'id' AND mac = ?"
                           " AND resident_id IS NOT ?", (seal.index("id", id_number), resident_id)).fetchone()
    else:
        row = conn.execute("SELECT id FROM residents WHERE id_number = ? AND id IS NOT ?",
                           (id_number, resident_id)).fetchone()
    if row:
        raise FormInvalid({"id_number": N_("A resident with this ID number is already registered.")},
                          duplicate_of=row[0])


def by_id_number(conn, id_number: str, *, live: bool = True) -> str | None:
    """The resident registered with this ID number (typed any way: spaces, lower-case x), or None;
    sealed ID numbers are found by their keyed hash (docs/field-encryption.md)."""
    number = idnumber.normalise(id_number)
    seal = field_seal.of(conn)
    where = " AND voided_at IS NULL" if live else ""
    if seal:
        row = conn.execute("SELECT id FROM residents WHERE id IN (SELECT resident_id FROM resident_field_index"
                           f" WHERE kind = 'id' AND mac = ?){where}", (seal.index("id", number),)).fetchone()
    else:
        row = conn.execute(f"SELECT id FROM residents WHERE id_number = ?{where}", (number,)).fetchone()
    return row[0] if row else None


def next_record_number(conn, division_code: str) -> str:
    """The village's next 17-digit health-record number: division code (12) + serial (5)."""
    if not re.fullmatch(r"\d{12}", division_code or ""):
        raise ValidationError(f"the division code {division_code!r} must have 12 digits", field="division_code")
    last = conn.execute("SELECT max(health_record_no) FROM residents WHERE health_record_no >= ?"
                        " AND health_record_no <= ?", (division_code + "00000", division_code + "99999")
                        ).fetchone()[0]
    serial = int(last[12:]) + 1 if last else 1
    if serial > 99999:
        raise ValidationError("this village has used all 99999 health-record serial numbers")
    return f"{division_code}{serial:05d}"


def create(store, data: dict[str, Any], *, division_code: str, now: datetime, actor: str,
           today: date | None = None) -> str:
    """`today` is the clinic's date (Node.today()); default: `now` in the default clinic time zone."""
    today = today or local_date(now)
    fields = clean(data, today=today)
    rid = str(uuid.uuid4())
    at = utc_iso(now)
    with store.atomic() as conn:
        _check_duplicate(conn, fields["id_number"], None)
        row = {**fields, "id": rid, "health_record_no": next_record_number(conn, division_code),
               "created_at": at, "updated_at": at, "created_by": actor, "updated_by": actor,
               **_stored_numbers(conn, fields)}
        row["name_initials"] = ""
        conn.execute(f"INSERT INTO residents ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
        _index_numbers(conn, rid, fields)
        initials = write_keys(conn, rid, fields["name"])
        conn.execute("UPDATE residents SET name_initials = ? WHERE id = ?", (initials, rid))
        management.follow_form(conn, rid, fields, None, actor=actor, at=now, today=today)
        record = _record(conn, rid)
        outbox.add(conn, kind="resident", record_id=rid, payload=record, at=now, version=1)
        audit.append(conn, actor=actor, action="resident.create", entity="resident", entity_id=rid, at=now,
                     after=record)
    return rid


def update(store, resident_id: str, data: dict[str, Any], *, now: datetime, actor: str,
           version: int | None = None, today: date | None = None) -> None:
    today = today or local_date(now)
    fields = clean(data, today=today)
    with store.atomic() as conn:
        before = _record(conn, resident_id)
        if before is None or before["voided_at"]:
            raise NotFound(f"resident {resident_id} does not exist or was voided")
        if version is not None and int(version) != before["version"]:
            raise FormInvalid({"name": N_("Someone else changed this record meanwhile; "
                                          "reload the page and enter your changes again.")})
        _check_duplicate(conn, fields["id_number"], resident_id)
        sets = {**fields, "updated_at": utc_iso(now), "updated_by": actor,
                **_stored_numbers(conn, fields),
                "name_initials": write_keys(conn, resident_id, fields["name"])}
        _index_numbers(conn, resident_id, fields)
        conn.execute(f"UPDATE residents SET {', '.join(k + ' = :' + k for k in sets)}, version = version + 1"
                     " WHERE id = :id", {**sets, "id": resident_id})
        management.follow_form(conn, resident_id, fields, before, actor=actor, at=now, today=today)
        after = _record(conn, resident_id)
        plain_before, plain_after = field_seal.open_record(conn, before), field_seal.open_record(conn, after)
        changed = [k for k in FIELDS if plain_before[k] != plain_after[k]]
        changed_before = {k: before[k] for k in changed}    # as stored: sealed ID number and phone
        changed_after = {k: after[k] for k in changed}
        if not changed_after:
            return
        outbox.add(conn, kind="resident", record_id=resident_id, payload=after, at=now, version=after["version"])
        audit.append(conn, actor=actor, action="resident.update", entity="resident", entity_id=resident_id,
                     at=now, before=changed_before, after=changed_after)


def void(store, resident_id: str, reason: str, *, now: datetime, actor: str) -> None:
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise FormInvalid({"reason": N_("Say why this record is voided.")})
    with store.atomic() as conn:
        before = _record(conn, resident_id)
        if before is None or before["voided_at"]:
            raise NotFound(f"resident {resident_id} does not exist or was already voided")
        conn.execute("UPDATE residents SET voided_at = ?, void_reason = ?, version = version + 1,"
                     " updated_at = ?, updated_by = ? WHERE id = ?",
                     (utc_iso(now), reason, utc_iso(now), actor, resident_id))
        after = _record(conn, resident_id)
        outbox.add(conn, kind="resident", record_id=resident_id, payload=after, at=now, version=after["version"])
        audit.append(conn, actor=actor, action="resident.void", entity="resident", entity_id=resident_id, at=now,
                     before={"voided_at": None}, after={"voided_at": after["voided_at"], "void_reason": reason})


RECORD_COLUMNS = ("id, name, id_number, sex, birth_date, phone, address, health_record_no, htn, htn_diagnosed_on,"
                  " t2dm, t2dm_diagnosed_on, contract_signed, created_at, updated_at, created_by, updated_by,"
                  " version, voided_at, void_reason")


def _stored_numbers(conn, fields: dict[str, Any]) -> dict[str, Any]:
    """The ID number and phone as the row keeps them: sealed (docs/field-encryption.md) or in clear
    with their reversed copies for "last digits" searches."""
    seal = field_seal.of(conn)
    if seal:
        return {"id_number": seal.seal("id_number", fields["id_number"]), "phone": seal.seal("phone", fields["phone"]),
                "id_number_rev": None, "phone_rev": None}
    return {"id_number_rev": reverse(fields["id_number"]), "phone_rev": reverse(fields["phone"])}


def _index_numbers(conn, resident_id: str, fields: dict[str, Any]) -> None:
    seal = field_seal.of(conn)
    if seal:
        write_index(conn, seal, resident_id, fields["id_number"], fields["phone"])


def _record(conn, resident_id: str) -> dict[str, Any] | None:
    """The row as stored (ID number and phone sealed when the node encrypts them): what the outbox
    and the audit log keep."""
    row = conn.execute(f"SELECT {RECORD_COLUMNS} FROM residents WHERE id = ?", (resident_id,)).fetchone()
    return dict(row) if row else None


def get(store, resident_id: str) -> dict[str, Any] | None:
    return field_seal.open_record(store.conn, store.one(f"SELECT {RECORD_COLUMNS} FROM residents WHERE id = ?",
                                                        (resident_id,)))


def age(birth_date: str | None, today: date) -> int | None:
    if not birth_date:
        return None
    b = date.fromisoformat(birth_date)
    return today.year - b.year - ((today.month, today.day) < (b.month, b.day))
