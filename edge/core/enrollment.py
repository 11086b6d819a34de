"""The seam between first boot and the sync client: enrolling this node at the county hub.

`edge/` never imports `sync` (docs/architecture.md), so the sync client registers its enrollment
function under the `clinic_edge.enrollment` entry-point group (`pyproject.toml`), the way
subcommands reach the front door, and first boot calls it through `enroller()`. The function is

    enroll(node, hub_url, code, hub_key) -> dict     # the hub's signed answer

and fails only with the errors below; their text is what county IT reads (`clinic-edge enroll`
prints it, first boot puts it into the journal and onto /setup), so it says why and what to do.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from .errors import CoreError
from .node import Node

GROUP = "clinic_edge.enrollment"


class EnrollmentError(CoreError):
    """Enrollment did not happen; the message says why."""


class AlreadyEnrolled(EnrollmentError):
    """This node already has an identity at a hub (enrolling again needs --force)."""


class EnrollmentRefused(EnrollmentError):
    """The hub answered no: the code is wrong, used or expired. Retrying will not help."""


class HubNotTrusted(EnrollmentError):
    """The hub did not prove it is the one county IT named (hub key), or the link would be
    readable (plain http:// off this machine). Retrying will not help; fix the setting."""


class HubUnreachable(EnrollmentError):
    """The link failed (no route, timeout, 5xx): retry later, it is safe."""


class Enroll(Protocol):
    def __call__(self, node: Node, hub_url: str, code: str, hub_key: str | None) -> dict[str, Any]: ...


def enroller() -> Enroll:
    """The installed enrollment function (the sync client's)."""
    found = list(entry_points(group=GROUP, name="hub"))
    if not found:
        raise EnrollmentError(f"no enrollment is installed (entry point {GROUP}:hub is missing): "
                              "reinstall clinic-edge")
    return found[0].load()
