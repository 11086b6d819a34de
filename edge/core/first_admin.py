"""The first admin account of a freshly provisioned box, and its one-time setup code.

First boot (edge/appliance/firstboot.py) calls `create_first_admin`: an `admin` account with a
random password nobody is told, and a separate one-time setup code kept in the data directory
(secrets/setup-code, 0600). The code is shown only where county IT has physical access: the
journal, the local console (HDMI/serial) and a file on the boot partition - never on the web page
(docs/security.md). At /setup the person at the box types the code and the admin's own password
(`finish_setup`): the code expires (`[appliance] setup_code_hours`), wrong codes are throttled,
and once used it is deleted. `clinic-edge setup-code` (console or SSH) issues a new one.
"""
from __future__ import annotations

import hmac
import json
import secrets
from datetime import datetime, timedelta

from . import accounts, durable
from .errors import ValidationError
from .reading import parse_iso, utc_iso

ADMIN = "admin"
SETUP_CODE_FILE = ("secrets", "setup-code")
MAX_FAILURES = 5                    # wrong codes within THROTTLE before /setup stops listening
THROTTLE = timedelta(minutes=15)


def create_first_admin(node, *, hours: int) -> str | None:
    """Create `admin` (random unknown password) and a one-time setup code; None if an admin exists."""
    if accounts.by_username(node.store, ADMIN):
        return None
    accounts.add(node.store, ADMIN, secrets.token_urlsafe(32), role="admin", display_name="管理员",
                 now=node.clock.now(), actor="firstboot")
    return issue_code(node, hours=hours)


def issue_code(node, *, hours: int) -> str:
    """A new one-time setup code valid for `hours`, replacing any earlier one."""
    code = accounts.new_password()
    expires = node.clock.now() + timedelta(hours=hours)
    _write(node, {"code": code, "expires_at": utc_iso(expires), "failures": []})
    return code


def pending(node) -> bool:
    """Whether a setup code is waiting to be used (then /setup shows its form)."""
    return _read(node) is not None


def finish_setup(node, code: str, new_password: str, *, now: datetime) -> None:
    """The person at the box typed the code and chose the admin's password: the code is gone."""
    doc = _read(node)
    if doc is None:
        raise ValidationError("There is no setup code waiting: setup is finished.", field="code", code="used")
    failures = [t for t in doc.get("failures", []) if parse_iso(t) > now - THROTTLE]
    if len(failures) >= MAX_FAILURES:
        raise ValidationError("Too many wrong setup codes: wait 15 minutes, then try again.", field="code",
                              code="throttled")
    if now >= parse_iso(doc["expires_at"]):
        raise ValidationError("The setup code has expired: county IT makes a new one with `clinic-edge "
                              "setup-code` on the box's console or over SSH.", field="code", code="expired")
    if not hmac.compare_digest(doc["code"].encode(), (code or "").strip().lower().encode()):
        _write(node, {**doc, "failures": [*failures, utc_iso(now)]})
        raise ValidationError("The setup code is wrong.", field="code", code="wrong")
    accounts.set_password(node.store, ADMIN, new_password, now=now, actor="setup")
    durable.remove_file(node.data_dir.joinpath(*SETUP_CODE_FILE))


def _read(node) -> dict | None:
    try:
        doc = json.loads(node.data_dir.joinpath(*SETUP_CODE_FILE).read_text())
    except OSError:
        return None
    except ValueError:   # a plain code from before expiry existed: treated as expired
        return {"code": "", "expires_at": "1970-01-01T00:00:00Z", "failures": []}
    return doc if isinstance(doc, dict) and "code" in doc and "expires_at" in doc else None


def _write(node, doc: dict) -> None:
    durable.write_file(node.path(*SETUP_CODE_FILE), json.dumps(doc))
