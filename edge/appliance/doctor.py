"""`clinic-edge doctor`: what county IT asks about on the phone, each problem with its fix.

Every check returns Findings (ok / warning / problem, what was seen, what to do). Checks read the
node's own files and database and make at most a short TCP/HTTP probe; they never change anything.
The packages above core add their own checks (sync's "hub" line, BLE's devices) as status
contributions (edge/core/status.py), found through entry points, so doctor imports none of them.
"""
from __future__ import annotations

import os
import platform
import socket
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from edge.core import release, status
from edge.core.node import Node
from edge.core.reading import parse_iso
from edge.core.status import Finding

from . import backup
from .update import Layout

BUILD_YEAR = 2026  # a clock earlier than this was never set (no RTC and no time sync yet)
STALE_DEVICE = timedelta(days=7)
OLD_BACKUP = timedelta(days=2)
OLD_BACKLOG = timedelta(days=3)


def examine(node: Node, *, now: datetime | None = None, sys_root: Path = Path("/")) -> list[Finding]:
    now = now or node.clock.now()
    findings: list[Finding] = []
    from .doctor_tls import certificates, plain_mqtt

    for check in (disk, sd_card, clock, store, broker, devices, contributed, backlog, last_backup, versions,
                  certificates, plain_mqtt):
        try:
            findings.extend(check(node, now, sys_root))
        except Exception as e:  # one broken check must not hide the others
            findings.append(Finding(check.__name__, "problem", f"the check itself failed: {e}",
                                    "report this output to the project"))
    return findings


def disk(node: Node, now, sys_root) -> list[Finding]:
    st = os.statvfs(node.data_dir)
    free = st.f_bavail * st.f_frsize
    pct = 100 * st.f_bavail / max(st.f_blocks, 1)
    detail = f"{free / 1e9:.1f} GB free ({pct:.0f} %) on the data partition {node.data_dir}"
    if pct < 5 or free < 200e6:
        return [Finding("disk", "problem", detail, "delete old exports, move backups to USB, or use a larger SD card")]
    if pct < 15:
        return [Finding("disk", "warning", detail, "plan a larger SD card; copy old backups off the box")]
    return [Finding("disk", "ok", detail)]


def sd_card(node: Node, now, sys_root) -> list[Finding]:
    out = []
    for counter in sorted((sys_root / "sys/fs/ext4").glob("*/errors_count")):
        n = int(counter.read_text().strip() or 0)
        if n:
            out.append(Finding("sd card", "problem", f"{n} file system errors on {counter.parent.name}",
                               "the SD card is failing: back up now (clinic-edge backup) and replace the card"))
    life = sys_root / "sys/block/mmcblk0/device/life_time"
    if life.exists():
        worst = max(int(x, 16) for x in life.read_text().split())
        level = "problem" if worst >= 0x0A else "warning" if worst >= 0x08 else "ok"
        out.append(Finding("sd card", level, f"wear estimate {worst * 10}% used",
                           "" if level == "ok" else "replace the card soon; restore the latest backup onto a new one"))
    probe = node.data_dir / ".doctor-write-test"
    try:
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        out.append(Finding("sd card", "problem", f"cannot write the data partition: {e}",
                           "the card went read-only (worn out): replace it and restore the latest backup"))
    return out or [Finding("sd card", "ok", "no file system errors, data partition writable")]


def clock(node: Node, now, sys_root) -> list[Finding]:
    out = []
    if now.year < BUILD_YEAR:
        out.append(Finding("clock", "problem", f"the clock says {now:%Y-%m-%d}, before this software was built",
                           "connect the box to a network with NTP, or let it sync once with the hub"))
    synced = (sys_root / "run/systemd/timesync/synchronized").exists()
    offset = _sync_state(node, "clock_offset_s")
    detail = f"system time {now:%Y-%m-%d %H:%M:%S} UTC; NTP {'synchronised' if synced else 'not synchronised'}"
    if offset is not None:
        detail += f"; offset to the hub {float(offset):+.1f} s"
        if abs(float(offset)) > 300:
            out.append(Finding("clock", "warning", detail, "the clock is off by minutes: check NTP (port 123 out)"
                                                             " or let the hub correct it (sync)"))
    if not out:
        out.append(Finding("clock", "ok", detail))
    return out


def store(node: Node, now, sys_root) -> list[Finding]:
    path = node.config.store_path
    if not path.exists():
        return [Finding("database", "problem", f"{path} does not exist", "run `clinic-edge init` or restore a backup")]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()
    if result != "ok":
        return [Finding("database", "problem", f"integrity check: {result}",
                        "stop the services and `clinic-edge restore` the latest backup")]
    return [Finding("database", "ok", f"{path} ({path.stat().st_size / 1e6:.1f} MB) passes its quick check")]


def broker(node: Node, now, sys_root) -> list[Finding]:
    if not node.config["mqtt"]["enabled"]:
        return [Finding("broker", "ok", "MQTT is switched off in the config")]
    u = urlparse(node.config["mqtt"]["url"])
    try:
        socket.create_connection((u.hostname, u.port or 1883), timeout=2).close()
    except OSError as e:
        return [Finding("broker", "problem", f"nothing answers at {u.hostname}:{u.port}: {e}",
                        "systemctl restart clinic-edge-broker; then journalctl -u clinic-edge-broker")]
    status = node.read_status("ingest") or {}
    if not (status.get("running") and status.get("mqtt_connected")):
        return [Finding("broker", "warning", "the broker answers but ingest is not connected to it",
                        "systemctl restart clinic-edge-ingest; then journalctl -u clinic-edge-ingest")]
    return [Finding("broker", "ok", f"broker at {u.hostname}:{u.port}, ingest connected")]


def devices(node: Node, now, sys_root) -> list[Finding]:
    rows = _query(node, "SELECT id, kind, last_reading_at, last_error FROM devices WHERE removed_at IS NULL"
                        " ORDER BY id")
    if not rows:
        return [Finding("devices", "warning", "no device is registered", "clinic-edge device add ID --kind bp")]
    out = []
    for d in rows:
        last = parse_iso(d["last_reading_at"])
        if last is None:
            out.append(Finding(f"device {d['id']}", "warning", f"{d['kind']}: never sent a reading",
                               "check its Wi-Fi/Bluetooth pairing and its MQTT password"))
        elif now - last > STALE_DEVICE:
            out.append(Finding(f"device {d['id']}", "warning", f"{d['kind']}: last reading {d['last_reading_at']}",
                               "replace its batteries; check it is in range and paired"))
        else:
            out.append(Finding(f"device {d['id']}", "ok", f"{d['kind']}: last reading {d['last_reading_at']}"))
        if d["last_error"]:
            out[-1].detail += f"; last error: {d['last_error']}"
    return out


def contributed(node: Node, now, sys_root) -> list[Finding]:
    """The checks of the installed packages' status contributions (sync's "hub" line), by name."""
    out = []
    for name, part in status.contributions():
        try:
            out.extend(part.findings(node, now))
        except Exception as e:  # noqa: BLE001 - one broken contribution must not hide the others
            out.append(Finding(name, "problem", f"the check itself failed: {e}", "report this output to the project"))
    return out


def backlog(node: Node, now, sys_root) -> list[Finding]:
    rows = _query(node, "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE acked_at IS NULL")
    n, oldest = (rows[0]["n"], rows[0]["oldest"]) if rows else (0, None)
    oldest_at = parse_iso(oldest)
    detail = f"{n} records wait for the hub" + (f" (oldest {oldest})" if oldest else "")
    if oldest_at and now - oldest_at > OLD_BACKLOG:
        return [Finding("backlog", "warning", detail, "the uplink has been down for days: check it, then "
                                                      "`clinic-edge sync --once`")]
    return [Finding("backlog", "ok", detail)]


def last_backup(node: Node, now, sys_root) -> list[Finding]:
    latest = backup.latest(node.data_dir / "backups")
    if latest is None:
        return [Finding("backup", "problem", "no nightly backup exists",
                        "systemctl start clinic-edge-backup (and check clinic-edge-backup.timer is enabled)")]
    age = now - backup.taken_at(latest)
    usb = Path(node.config["appliance"]["usb_backup_dir"])
    on_usb = (usb / latest.name).exists()
    detail = f"{latest.name}, {age.total_seconds() / 3600:.0f} h old; {'also on' if on_usb else 'NOT on'} the USB drive"
    if age > OLD_BACKUP:
        return [Finding("backup", "warning", detail, "journalctl -u clinic-edge-backup; free space on the card")]
    if not on_usb:
        return [Finding("backup", "warning", detail, "plug in the USB backup drive (label CLINICBACKUP)")]
    return [Finding("backup", "ok", detail)]


def versions(node: Node, now, sys_root) -> list[Finding]:
    running = release.running_version()
    current = Layout(Path(node.config["update"]["prefix"])).current_version()
    detail = f"clinic-edge {running} (installed: {current or 'not under ' + node.config['update']['prefix']}); " \
             f"Python {platform.python_version()}; {platform.machine()}"
    findings = [Finding("versions", "ok", detail)]
    update = last_update(node)
    return findings + ([update] if update else [])


def last_update(node: Node) -> Finding | None:
    """The last update that failed, and why: which check, its output, how long it waited (issue 18)."""
    last = node.read_status("update") or {}
    result, reason = last.get("result"), last.get("reason") or {}
    if result not in ("rolled back", "refused"):
        return None
    what = (f"update {last.get('from') or '(none)'} -> {last.get('to')} was rolled back" if result == "rolled back"
            else f"update bundle {last.get('bundle')} was refused")
    detail = f"{what} at {last.get('at') or '?'}: {reason.get('check') or '?'}"
    if reason.get("failed"):
        detail += f" failed ({reason['failed']}"
        detail += f" after {reason['waited_s']} s, {reason.get('attempts')} tries)" if "waited_s" in reason else ")"
    detail += f"; output: {reason.get('output') or '-'}"
    if result == "rolled back" and not last.get("old_version_healthy"):
        detail += "; the old version did not report healthy after the rollback either"
        return Finding("update", "problem", detail, "journalctl -u clinic-edge-web -u clinic-edge-update; "
                                                    "then clinic-edge update status --json to the county")
    return Finding("update", "warning", detail, "the old version runs on; send this line and `journalctl -u "
                                                "clinic-edge-update` from that time to the county")


def _query(node: Node, sql: str) -> list[dict]:
    try:
        return node.store.query(sql)
    except sqlite3.OperationalError:  # the table belongs to a part not installed here
        return []


def _sync_state(node: Node, key: str):
    """A value the sync client keeps in node_state (key `sync.<key>`, JSON)."""
    import json

    try:
        v = node.store.scalar("SELECT value FROM node_state WHERE key = ?", ("sync." + key,))
    except sqlite3.OperationalError:
        return None
    return None if v is None else json.loads(v)
