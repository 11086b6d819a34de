"""First boot: the one file county IT writes onto the boot (FAT) partition before posting the card.

    # clinic-edge.toml
    [clinic]
    name = "石桥村卫生室"
    division_code = "110105001001"      # 12-digit statistical division code of the village
    [hub]
    url = "https://hub.county.example:8470"
    code = "K7QF-2MXD-9TRA"              # from `clinic-edge hub node add NAME` (one use, expires)
    hub_key = "3f5a…"                    # the hub key fingerprint `hub node add` prints beside it
    [wifi]                              # optional
    ssid = "clinic"
    psk = "secret"

`run()` writes the clinic into the node's config, makes the node's secrets, enrolls with the hub
(the sync client's enrollment function, reached through edge/core/enrollment.py; retried with
capped backoff until the link comes up),
creates the first admin account and a one-time setup code (`announce_setup_code`: shown on the
local console, in the journal and in clinic-edge-setup-code.txt on the boot partition - never on
the web page; it expires), and then deletes the file with its secrets. A refused code
(wrong, used or expired) is not retried: it is reported in the journal and on /setup with what
to do, and the file stays so a corrected code can be written into it. The node believes only the
hub whose key matches `hub_key` (docs/tls.md), and enrolls over https:// (http:// only to a hub on
this machine), coming back with its certificate from the county CA in DATA/tls/.

Progress is kept in `run/firstboot.json` (Node.write_status) for the setup page.
"""
from __future__ import annotations

import logging
import os
import random
import re
import time
import tomllib
from pathlib import Path
from typing import Callable

import tomli_w

from edge.core import durable, enrollment
from edge.core.enrollment import AlreadyEnrolled, EnrollmentRefused, HubNotTrusted
from edge.core.first_admin import ADMIN, create_first_admin
from edge.core.node import Node

from .errors import ProvisioningError

log = logging.getLogger(__name__)
NODE_CONFIG = "config.toml"   # /etc/clinic-edge/config.toml links here on the image
REFUSED_HINT = ("Ask county IT for a new enrollment code (`clinic-edge hub node add NAME` on the hub), write it as "
                "[hub] code in clinic-edge.toml on the SD card's boot partition, and restart the box.")


UNTRUSTED_HINT = ("Check [hub] url and hub_key in clinic-edge.toml on the boot partition against what "
                  "`clinic-edge hub node add` printed (hub key fingerprint), and restart the box.")


def read_boot_file(path: Path) -> dict:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ProvisioningError(f"no provisioning file at {path}: county IT writes clinic-edge.toml onto "
                                f"the boot partition before the first start") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProvisioningError(f"{path} is not valid TOML: {e}") from e
    clinic, hub = raw.get("clinic", {}), raw.get("hub", {})
    problems = []
    if not 0 < len(str(clinic.get("name", ""))) <= 64:
        problems.append("[clinic] name (the clinic's name) is missing")
    if not re.fullmatch(r"\d{12}", str(clinic.get("division_code", ""))):
        problems.append("[clinic] division_code must be the village's 12-digit division code")
    if not re.match(r"https?://[^/\s]+", str(hub.get("url", ""))):
        problems.append("[hub] url must be http(s)://HOST:PORT")
    problems += _hub_trust_problems(hub)
    if not str(hub.get("code", "")).strip():
        problems.append("[hub] code (the enrollment code) is missing")
    if "wifi" in raw and not raw["wifi"].get("ssid"):
        problems.append("[wifi] needs ssid (and psk) or should be left out")
    if problems:
        raise ProvisioningError(f"{path}: " + "; ".join(problems))
    return raw


def _hub_trust_problems(hub: dict) -> list[str]:
    from urllib.parse import urlparse

    host = urlparse(str(hub.get("url", ""))).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    problems = []
    if str(hub.get("url", "")).startswith("http://") and not local:
        problems.append("[hub] url must be https:// (plain http:// only to a hub on this machine)")
    fp = re.sub(r"[\s:-]", "", str(hub.get("hub_key", "")).lower().removeprefix("sha256:"))
    if not local and not re.fullmatch(r"[0-9a-f]{64}", fp):
        problems.append("[hub] hub_key must be the hub key fingerprint (64 hex digits) that "
                        "`clinic-edge hub node add` prints beside the code")
    return problems


def run(node: Node, boot_file: Path, *, attempts: int | None = None, enroll: Callable | None = None,
        sleep=time.sleep) -> str:
    status = {"state": "starting", "boot_file": str(boot_file)}
    try:
        raw = read_boot_file(boot_file)
    except ProvisioningError as e:
        _report(node, status, "invalid", str(e))
        raise
    clinic, hub = raw["clinic"], raw["hub"]
    write_node_config(node, clinic)
    _make_secrets(node)
    if "wifi" in raw:
        write_wifi(node, raw["wifi"])
    hub_key = str(hub.get("hub_key", "")).strip() or None
    enroll = enroll or (lambda url, code: enrollment.enroller()(node, url, code, hub_key))
    result = enroll_with_retry(node, status, hub["url"], str(hub["code"]).strip(), enroll, attempts, sleep)
    if result != "enrolled":
        raise ProvisioningError(result)
    hours = node.config["appliance"]["setup_code_hours"]
    code = create_first_admin(node, hours=hours)
    durable.remove_file(boot_file)   # the enrollment code must not come back after a power cut
    if code:
        announce_setup_code(code, hours, boot_file.parent)
    status.update(state="done", message="enrolled; type the setup code from the box's console at /setup",
                  admin=ADMIN, secrets_removed=True)
    node.write_status("firstboot", status)
    log.info("first boot done: enrolled with %s, boot file with its secrets deleted", hub["url"])
    return "first boot done" + ("" if code else " (an admin already existed)")


SETUP_CODE_NOTE = "clinic-edge-setup-code.txt"


def announce_setup_code(code: str, hours: int, boot_dir: Path | None) -> str:
    """Where county IT has physical access only: the journal, the console (the firstboot unit's
    output goes to journal+console) and a note on the boot partition. Never the web page."""
    text = (f"clinic-edge setup code for the {ADMIN} account: {code} (valid {hours} h, one use). "
            f"Open http://<this box>:8080/setup, type it and choose the admin's password.")
    log.warning("%s", text)
    print(text, flush=True)
    if boot_dir is not None and boot_dir.is_dir():
        try:   # FAT: no chmod there (the mount's fmask keeps it the service user's); plain write
            with open(boot_dir / SETUP_CODE_NOTE, "w", encoding="utf-8") as f:
                f.write(text + "\r\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            log.error("could not write the setup code onto the boot partition: %s", e)
    return text


def enroll_with_retry(node, status, url, code, enroll, attempts, sleep) -> str:
    """"enrolled", or what went wrong as county IT reads it. `enroll(url, code)` raises
    edge.core.enrollment's errors; a refused code or an untrusted hub is not retried."""
    attempt = 0
    while True:
        attempt += 1
        status.update(state="enrolling", attempt=attempt, hub=url)
        node.write_status("firstboot", status)
        try:
            enroll(url, code)
            return "enrolled"
        except AlreadyEnrolled:
            return "enrolled"
        except HubNotTrusted as e:
            text = f"the hub was not trusted: {e}. {UNTRUSTED_HINT}"
            _report(node, status, "untrusted", text)
            return text
        except EnrollmentRefused as e:    # the hub said no (wrong, used or expired code)
            text = f"the hub refused the enrollment code: {e}. {REFUSED_HINT}"
            _report(node, status, "refused", text)
            return text
        except Exception as e:   # unreachable, or anything else: keep trying, as before the link is up
            message = str(e) if isinstance(e, enrollment.EnrollmentError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, enrollment.EnrollmentError):
                log.exception("enrollment failed unexpectedly")
        wait = min(300.0, 2.0 * 2 ** min(attempt, 8)) * (0.5 + random.random() / 2)
        log.warning("cannot enroll yet (attempt %d): %s; retrying in %.0f s", attempt, message, wait)
        status.update(last_error=message)
        if attempts is not None and attempt >= attempts:
            text = f"could not reach the hub at {url} after {attempt} attempts: {message}"
            _report(node, status, "unreachable", text)
            return text
        sleep(wait)


def write_node_config(node: Node, clinic: dict) -> Path:
    """Put the clinic into the node's config file (data partition), keeping its other sections."""
    path = Path(node.config.source) if node.config.source else node.data_dir / NODE_CONFIG
    raw = tomllib.loads(path.read_text()) if path.exists() else {}
    raw.setdefault("node", {}).update(clinic_name=str(clinic["name"]), division_code=str(clinic["division_code"]),
                                      name=f"clinic-{clinic['division_code']}")
    durable.write_file(path, dump_toml(raw))
    return path


def write_wifi(node: Node, wifi: dict) -> Path:
    """wpa_supplicant's config for wlan0 (the image links /etc/wpa_supplicant/wpa_supplicant-wlan0.conf here)."""
    ssid, psk = str(wifi["ssid"]), str(wifi.get("psk", ""))
    body = ["ctrl_interface=DIR=/run/wpa_supplicant", "update_config=0", f"country={wifi.get('country', 'CN')}",
            "network={", f"  ssid={_quoted(ssid)}"]
    body += [f"  psk={_quoted(psk)}"] if psk else ["  key_mgmt=NONE"]
    body += ["}", ""]
    path = node.path("network", "wpa_supplicant-wlan0.conf")
    durable.write_file(path, "\n".join(body))
    return path


def dump_toml(data: dict) -> str:
    """The node's config as TOML. A library writer: nested tables such as [drivers.astm] and
    [drivers.astm.codes] must come back exactly as they were read."""
    return tomli_w.dumps(data)


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _make_secrets(node: Node) -> None:
    for name in ("web-secret-key", "mqtt-ingest-password"):
        node.secret(name)


def _report(node: Node, status: dict, state: str, message: str) -> None:
    status.update(state=state, message=message)
    node.write_status("firstboot", status)
    log.error("first boot: %s", message)
