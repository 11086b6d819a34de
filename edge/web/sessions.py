"""Web sessions that can be ended (docs/security.md).

Flask keeps the session in a signed cookie, so clearing it at logout does not stop a copy. Three
things do: the session carries the account's session generation (`WebUser.get_id` is
"id:generation", checked by the user loader on every request; logout, a new password, disabling
and "log out everywhere" bump it); the session dies after `[web] idle_minutes` without a request
and after `[web] session_hours` since the login, whatever the activity; and it is bound to the
client address it was made from (REMOTE_ADDR: the socket's peer, or what a configured
`[web] trusted_proxy` says).
"""
from __future__ import annotations

from datetime import datetime

from flask import request, session

from edge.core.accounts import N_


def client_address() -> str:
    return request.remote_addr or ""


def user_token(user_id: int, generation: int) -> str:
    return f"{user_id}:{generation}"


def parse_token(token: str) -> tuple[int, int] | None:
    user_id, _, generation = (token or "").partition(":")
    if not (user_id.isdigit() and generation.isdigit()):
        return None        # also every cookie made before generations existed
    return int(user_id), int(generation)


def begin(*, now: datetime) -> None:
    """Stamp a fresh session at login."""
    session["login_at"] = session["seen"] = now.timestamp()
    session["addr"] = client_address()
    session.permanent = True


def why_ended(web: dict, *, now: datetime) -> tuple[str, dict] | None:
    """(message, parameters) when this session must end, else None."""
    t = now.timestamp()
    if session.get("addr") != client_address():
        return N_("This session was opened on another computer. Please log in."), {}
    if not 0 <= t - session.get("login_at", -1e18) <= web["session_hours"] * 3600:
        return N_("You were logged out %(n)d hours after logging in. Please log in again."), \
            {"n": web["session_hours"]}
    if t - session.get("seen", t) > web["idle_minutes"] * 60:
        return N_("You were logged out after %(n)d idle minutes."), {"n": web["idle_minutes"]}
    return None


def touch(*, now: datetime) -> None:
    session["seen"] = now.timestamp()
    session.permanent = True
