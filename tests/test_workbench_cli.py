"""`clinic-edge user add|passwd|disable` through the real command line."""
from datetime import datetime, timezone

import pytest

from edge.core import accounts
from tests.conftest import clinic_edge


def can_log_in(node, user, password) -> bool:
    try:
        accounts.authenticate(node.store, user, password, now=datetime.now(timezone.utc))
    except accounts.LoginRefused:
        return False
    return True


def test_user_add_passwd_disable(env, node):
    out = clinic_edge(env, "user", "add", "li", "--name", "李医生", "--generate")
    password = out.stdout.split("password: ")[1].strip()
    assert can_log_in(node, "li", password)
    clinic_edge(env, "user", "passwd", "li", "--password-stdin", input="new-secret-1\n")
    assert not can_log_in(node, "li", password) and can_log_in(node, "li", "new-secret-1")
    clinic_edge(env, "user", "disable", "li")
    assert not can_log_in(node, "li", "new-secret-1")
    assert "disabled" in clinic_edge(env, "user", "list").stdout


@pytest.mark.parametrize("args,message", [
    (("user", "add", "Bad Name!", "--generate"), "user name"),
    (("user", "disable", "nobody"), "no user named nobody"),
])
def test_user_errors_are_one_clear_line(env, node, args, message):
    node.store
    out = clinic_edge(env, *args, check=False)
    assert out.returncode == 2 and message in out.stderr
