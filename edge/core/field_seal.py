"""ID numbers and phone numbers encrypted at rest in the node database (docs/field-encryption.md).

With `[crypto] encrypt_fields` on, the residents table holds `ef1:` + base64(nonce | ciphertext |
tag) in `id_number` and `phone`, sealed by the node's crypto suite (SM4-GCM for `sm`, AES-256-GCM for
`ed25519`) under a key kept outside the database file, in `<data>/keys/fields.key` (0600). Search
and the duplicate check use `resident_field_index`: one row per (kind, keyed hash of the normalised
value) with the suite's MAC (HMAC-SM3 / HMAC-SHA-256) under a second key of the same file.

The database records, in node_state `fields.key`, the suite, the key file's path and a MAC of a
fixed text under the key: a store opened on that file finds its key itself, and a missing, empty or
different key file stops it with a message saying what to restore. It is never made again over an
encrypted database (that would make every sealed value unreadable).
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import durable, idnumber
from .errors import StoreError
from .suites import SuiteError, suite as suite_named

PREFIX = "ef1:"
BYTES_PREFIX = b"EF1B"
STATE_KEY = "fields.key"
KEY_HEADER = "clinic-edge fields key v1"
CHECK_TEXT = b"clinic-edge fields key check v1"
SEALED_FIELDS = ("id_number", "phone")
ID_TAILS = (4, 6)        # the ID tails a doctor types; other lengths are answered with a hint
PHONE_TAILS = (4,)


class FieldKeyError(StoreError):
    """The field key is missing, damaged or not this database's: nothing was read or written."""


@dataclass(frozen=True)
class FieldSetup:
    """What the node's config asks for: the suite, the key file, and whether to encrypt."""
    suite: str
    key_path: Path
    encrypt: bool


class FieldConnection(sqlite3.Connection):
    """A connection that knows the field key of its database (None: fields are kept in clear) and
    the node's crypto suite (what the audit chain hashes new entries with; None: the default)."""
    fields: "FieldSeal | None" = None
    suite: str | None = None


class FieldSeal:
    def __init__(self, suite_name: str, enc_key: bytes, mac_key: bytes):
        self.suite = suite_named(suite_name)
        self._enc, self._mac = enc_key, mac_key

    def check(self) -> str:
        return self.suite.mac(self._mac, CHECK_TEXT).hex()

    def seal(self, field: str, value: str | None) -> str | None:
        if value is None or value == "" or is_sealed(value):
            return value
        nonce = secrets.token_bytes(12)
        ct = self.suite.seal(self._enc, nonce, value.encode(), aad=_aad(field))
        return PREFIX + base64.b64encode(nonce + ct).decode()

    def open(self, field: str, value: str | None) -> str | None:
        if not is_sealed(value):
            return value
        raw = base64.b64decode(value[len(PREFIX):])
        try:
            return self.suite.open(self._enc, raw[:12], raw[12:], aad=_aad(field)).decode()
        except SuiteError as e:
            raise FieldKeyError(f"a sealed {field} does not open with this node's field key: {e}") from e

    def seal_bytes(self, purpose: str, data: bytes) -> bytes:
        """`data` sealed whole (a signed sync batch waiting to be sent): BYTES_PREFIX | nonce | sealed."""
        nonce = secrets.token_bytes(12)
        return BYTES_PREFIX + nonce + self.suite.seal(self._enc, nonce, data, aad=_aad(purpose))

    def open_bytes(self, purpose: str, data: bytes) -> bytes:
        if not data.startswith(BYTES_PREFIX):
            return data
        raw = data[len(BYTES_PREFIX):]
        try:
            return self.suite.open(self._enc, raw[:12], raw[12:], aad=_aad(purpose))
        except SuiteError as e:
            raise FieldKeyError(f"a sealed {purpose} does not open with this node's field key: {e}") from e

    def index(self, kind: str, value: str) -> str:
        return self.suite.mac(self._mac, f"{kind}\n{value}".encode()).hex()

    def keys_for(self, id_number: str | None, phone: str | None) -> list[tuple[str, str]]:
        """(kind, keyed hash) rows for a resident: the whole ID, its tails, the phone and its tail."""
        out = []
        ident = normal_id(id_number)
        if ident:
            out.append(("id", self.index("id", ident)))
            out += [(f"id{n}", self.index(f"id{n}", ident[-n:])) for n in ID_TAILS if len(ident) > n]
        tel = normal_phone(phone)
        if tel:
            out.append(("phone", self.index("phone", tel)))
            out += [(f"phone{n}", self.index(f"phone{n}", tel[-n:])) for n in PHONE_TAILS if len(tel) > n]
        return out

    def open_record(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        if not record:
            return record
        return {k: (self.open(k, v) if k in SEALED_FIELDS else v) for k, v in record.items()}

    def seal_record(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: (self.seal(k, v) if k in SEALED_FIELDS and isinstance(v, str) else v) for k, v in record.items()}


def _aad(field: str) -> bytes:
    return b"clinic-edge field " + field.encode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def normal_id(text: str | None) -> str:
    return idnumber.normalise(text or "")


def normal_phone(text: str | None) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text or ""))


def of(conn: sqlite3.Connection) -> FieldSeal | None:
    """The field key of the database behind `conn` (None: its fields are in clear)."""
    return getattr(conn, "fields", None)


def open_record(conn, record):
    seal = of(conn)
    return seal.open_record(record) if seal else record


# --- the key file ----------------------------------------------------------------------------------

def _key_text(suite_name: str, enc: bytes, mac: bytes) -> str:
    return f"{KEY_HEADER}\nsuite={suite_name}\nenc={enc.hex()}\nmac={mac.hex()}\n"


def read_key(path: Path) -> FieldSeal:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise FieldKeyError(f"the field key {path} is missing: the ID numbers and phones in this database "
                            "cannot be read without it; restore it from the node's key backup (it is never "
                            "made again over an encrypted database)") from None
    except OSError as e:
        raise FieldKeyError(f"the field key {path} cannot be read ({e.strerror}): it must belong to the "
                            "service user with mode 0600") from None
    lines = text.split("\n")
    values = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    try:
        if lines[0] != KEY_HEADER:
            raise ValueError("no header line")
        return FieldSeal(values["suite"], bytes.fromhex(values["enc"]), bytes.fromhex(values["mac"]))
    except (KeyError, ValueError, SuiteError) as e:
        raise FieldKeyError(f"the field key {path} is damaged ({e}); restore it from the node's key backup") from None


def attach(conn: FieldConnection, setup: FieldSetup | None) -> None:
    """Give `conn` its database's field key; make the key and encrypt the fields when the config
    asks for it the first time. Raise FieldKeyError, changing nothing, when the key is wrong."""
    try:
        row = conn.execute("SELECT value FROM node_state WHERE key = ?", (STATE_KEY,)).fetchone()
    except sqlite3.OperationalError:   # a file whose tables are not made yet (opened without migrating)
        return
    if row:
        state = json.loads(row[0])
        seal = read_key(Path(setup.key_path if setup else state["path"]))
        if seal.check() != state["check"] or seal.suite.name != state["suite"]:
            raise FieldKeyError(f"the field key {setup.key_path if setup else state['path']} is not the one this "
                                "database was encrypted with; restore the right key file")
        conn.fields = seal
        return
    if not setup or not setup.encrypt:
        return
    seal = _make_key(setup)
    from .field_migration import encrypt_existing
    encrypt_existing(conn, seal, setup.key_path)
    conn.fields = seal


def _make_key(setup: FieldSetup) -> FieldSeal:
    path = Path(setup.key_path)
    if path.exists() and path.stat().st_size:
        seal = read_key(path)
        if seal.suite.name != setup.suite:
            raise FieldKeyError(f"the field key {path} is for the {seal.suite.name} suite, the config asks for "
                                f"{setup.suite}: move the old key away or set [crypto] suite = {seal.suite.name!r}")
        return seal
    s = suite_named(setup.suite)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    durable.create_file(path, _key_text(s.name, secrets.token_bytes(s.key_bytes), secrets.token_bytes(32)), 0o600)
    os.chmod(path, 0o600)
    return read_key(path)   # another process may have won the race: use the file that exists
