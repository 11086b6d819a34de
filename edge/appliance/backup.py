"""Nightly backups (kept locally, rotated onto a USB drive when one is mounted) and restoring one.

`nightly()` writes `backups/clinic-edge-YYYYMMDD-HHMMSS.db` with SQLite's online backup (safe
while ingest writes), keeps the newest `[appliance] keep_backups`, and when the USB drive's folder
is a mount point (or `require_mount=False`, for tests) copies the same file there and rotates
there too. With the county backup key (`[appliance] backup_key`, on the image's read-only root)
every nightly backup is sealed to it (`clinic-edge-*.sealed`, edge/core/sealed.py): only county
IT's offline backup.key opens it (`clinic-edge restore --key`). Without that key the backup stays
on the SD card and no copy goes to the USB drive (whoever holds the stick could read it).
`restore_file()` replaces the database (with the services stopped) after checking the backup
opens and passes its integrity check.
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from edge.core import durable, sealed
from edge.core.node import Node

from .errors import ApplianceError

log = logging.getLogger(__name__)
PREFIX = "clinic-edge-"
SEALED = ".sealed"
BACKUP_PURPOSE = "backup"      # the sealed-file purpose; `clinic-edge restore --key` opens with it


def nightly(node: Node, *, now: datetime | None = None, require_mount: bool = True) -> list[Path]:
    cfg = node.config["appliance"]
    stamp = (now or node.clock.now()).astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    local_dir = node.data_dir / "backups"
    local_dir.mkdir(parents=True, exist_ok=True)
    local = node.store.backup(local_dir / f"{PREFIX}{stamp}.db")
    recipient = _county_key(Path(cfg["backup_key"]))
    if recipient is not None:
        plain, local = local, sealed.seal_file(recipient, local, local.with_suffix(SEALED), BACKUP_PURPOSE)
        plain.unlink()
    written = [local]
    rotate(local_dir, cfg["keep_backups"])
    usb = Path(cfg["usb_backup_dir"])
    if recipient is None:
        log.error("no county backup key at %s: the backup stays on the SD card, none goes to the USB drive "
                  "(put backup.pub from `clinic-edge backup-key` into the image: image/build --backup-key)",
                  cfg["backup_key"])
    elif usb.is_dir() and (os.path.ismount(usb) or not require_mount):
        try:
            target = usb / local.name
            shutil.copyfile(local, target.with_suffix(".partial"))
            os.replace(target.with_suffix(".partial"), target)
            written.append(target)
            rotate(usb, cfg["keep_backups"])
        except OSError as e:
            log.error("could not copy the backup to the USB drive %s: %s (replace the drive)", usb, e)
    else:
        log.info("no USB backup drive mounted at %s: the backup stays on the SD card only", usb)
    return written


def _county_key(path: Path):
    try:
        return sealed.load_public(path)
    except sealed.SealError as e:
        if path.exists():
            log.error("the county backup key is unusable: %s", e)
        return None


def backups_in(folder: Path) -> list[Path]:
    """Nightly backups in `folder`, oldest first (named by time; sealed or plain)."""
    found = [*folder.glob(f"{PREFIX}*.db"), *folder.glob(f"{PREFIX}*{SEALED}")]
    return sorted(found, key=lambda p: p.name.split(".", 1)[0])


def rotate(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` nightly backups in `folder`; returns what was deleted."""
    backups = backups_in(folder)
    doomed = backups[:-keep] if keep else backups
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def latest(folder: Path) -> Path | None:
    backups = backups_in(folder)
    return backups[-1] if backups else None


def taken_at(backup: Path) -> datetime:
    """When a nightly backup was taken: its name (stamped by the node's clock), else its mtime."""
    try:
        return datetime.strptime(backup.name.split(".", 1)[0].removeprefix(PREFIX),
                                 "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.fromtimestamp(backup.stat().st_mtime, timezone.utc)


def restore_file(backup: Path, target: Path) -> None:
    """Replace `target` with `backup` (services stopped): checked first, then swapped in one rename."""
    try:
        conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        ok = [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
        conn.close()
    except sqlite3.Error as e:
        raise ApplianceError(f"{backup} is not a usable backup: {e}") from e
    if not ok:
        raise ApplianceError(f"{backup} fails its integrity check; try an older backup")
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    durable.copy_file(backup, target)
