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

A node that encrypts ID numbers and phones (docs/field-encryption.md) cannot read them without its
field key, which is kept outside the database. A *sealed* backup carries that key inside the copy
(node_state `fields.key.backup`), so it is as protected as the backup (only the county's key opens
it); `take_field_key()` removes it from the copy again on restore and the restore puts the key file
back. A plain backup (no county key) never carries it.
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
        _carry_field_key(node, local)
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


FIELD_KEY_STATE = "fields.key.backup"   # node_state of a sealed backup's copy: the field key file's text


def _carry_field_key(node: Node, copy: Path) -> None:
    """Put the node's field key into `copy` (about to be sealed to the county key)."""
    if node.store.fields is None:
        return
    text = Path(node.field_setup().key_path).read_text()
    db = sqlite3.connect(copy)
    try:
        with db:
            db.execute("INSERT OR REPLACE INTO node_state (key, value, updated_at) VALUES (?, ?, ?)",
                       (FIELD_KEY_STATE, text, datetime.now(timezone.utc).isoformat()))
    finally:
        db.close()


def take_field_key(copy: Path) -> str | None:
    """The field key a sealed backup carried, removed from the opened copy (whose freed pages are
    zeroed), so the restored database does not hold its own key; None if it carried none."""
    db = sqlite3.connect(copy)
    try:
        row = db.execute("SELECT value FROM node_state WHERE key = ?", (FIELD_KEY_STATE,)).fetchone()
        if row is None:
            return None
        db.execute("PRAGMA secure_delete = ON")
        with db:
            db.execute("DELETE FROM node_state WHERE key = ?", (FIELD_KEY_STATE,))
        db.execute("VACUUM")
        return row[0]
    except sqlite3.Error as e:
        raise ApplianceError(f"{copy} is not a usable backup: {e}") from e
    finally:
        db.close()


def restore_field_key(text: str, key_path: Path) -> Path | None:
    """Write the field key a backup carried to `key_path` (0600). A different key already there is
    kept beside it as `fields.key.before-restore` (returned), never overwritten in place."""
    key_path = Path(key_path)
    kept = None
    if key_path.exists():
        if key_path.read_text() == text:
            return None
        kept = key_path.with_name(key_path.name + ".before-restore")
        os.replace(key_path, kept)
    durable.make_dir(key_path.parent)
    os.chmod(key_path.parent, 0o700)
    durable.create_file(key_path, text, 0o600)
    return kept


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
