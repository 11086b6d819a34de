"""The first admin account of a freshly provisioned box, and its one-time setup code.

First boot (edge/appliance/firstboot.py) calls `create_first_admin`: an `admin` account whose
password is a random one-time setup code, kept in the data directory (mode 0600) and shown on the
local web UI's /setup page (edge/web/setup.py) - never a fixed default. `finish_setup` sets the
admin's own password and deletes the code, after which /setup shows nothing secret any more.
"""
from __future__ import annotations

import hmac

from . import accounts, durable
from .errors import ValidationError

ADMIN = "admin"
SETUP_CODE_FILE = ("secrets", "setup-code")


def create_first_admin(node) -> str | None:
    """Create `admin` with a random one-time setup code; None if an admin account exists."""
    if accounts.by_username(node.store, ADMIN):
        return None
    code = accounts.new_password()
    accounts.add(node.store, ADMIN, code, role="admin", display_name="管理员", now=node.clock.now(),
                 actor="firstboot")
    durable.write_file(node.path(*SETUP_CODE_FILE), code)
    return code


def setup_code(node) -> str | None:
    """The pending one-time setup code, or None when setup is finished (or never started)."""
    try:
        return node.data_dir.joinpath(*SETUP_CODE_FILE).read_text().strip() or None
    except OSError:
        return None


def finish_setup(node, code: str, new_password: str) -> None:
    """The admin chose a password: the one-time code stops working everywhere."""
    expected = setup_code(node)
    if not expected or not hmac.compare_digest(expected.encode(), (code or "").strip().encode()):
        raise ValidationError("The setup code is wrong or was already used.", field="code")
    accounts.set_password(node.store, ADMIN, new_password, now=node.clock.now(), actor="setup")
    durable.remove_file(node.data_dir.joinpath(*SETUP_CODE_FILE))


