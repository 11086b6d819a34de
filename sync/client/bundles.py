"""Update bundles that came down the downlink (kind `update_bundle`, kept in sync_inbox): fetch
each into <data>/updates/<version>.bundle.partial with signed, resumable (HTTP Range) GETs, check
size and sha256, then rename it to <data>/updates/ready/<version>.bundle.

A complete download is checked against the release key (edge.core.release, the same check the
updater makes) before it may enter ready/: a bundle signed with another key is filed under
failed/ and never fetched again. Without a readable release key the download stays as .partial
(checked again next cycle, not fetched again). The sync process never applies a bundle (it runs
unprivileged); the root `clinic-edge update apply-pending` (clinic-edge-update.path) does, and
checks the signature once more. A file whose hash is wrong is deleted and fetched again.
"""
from __future__ import annotations

import http.client
import json
import logging
import re
import secrets
import socket
from pathlib import Path

from edge.core import release
from edge.core.errors import BundleRefused
from sync import protocol

from . import state
from .errors import LinkError

log = logging.getLogger(__name__)
KIND = "update_bundle"
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
BLOCK = 64 * 1024
METERED_AS = "_update"   # what bundle downloads are metered as (sync_usage.kind)


def updates_dir(data_dir: Path) -> Path:
    return data_dir / "updates"


def wanted(store, data_dir: Path) -> list[dict]:
    """Inbox bundles not yet ready, applied or failed here."""
    root = updates_dir(data_dir)
    out = []
    for row in store.query("SELECT record_id, payload FROM sync_inbox WHERE kind = ?", (KIND,)):
        try:
            doc = json.loads(row["payload"])
            version, sha, size = str(doc["version"]), str(doc["sha256"]), int(doc["size"])
        except (ValueError, KeyError, TypeError):
            log.error("update bundle item %s is malformed; ignored", row["record_id"])
            continue
        if not VERSION_RE.fullmatch(version) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            log.error("update bundle item %s has a bad version or sha256; ignored", row["record_id"])
            continue
        if doc.get("withdrawn") is True:   # county IT withdrew it: not fetched (drop_withdrawn)
            continue
        if any((root / sub / f"{version}.bundle").exists() for sub in ("ready", "done", "failed")):
            continue
        out.append({"version": version, "sha256": sha, "size": size})
    return out


def fetch(client, item: dict, data_dir: Path, release_key: Path) -> tuple[Path | None, int]:
    """Download (resuming) and check one bundle. Returns (ready path or None if the hash or the
    signature was bad, bytes received). Raises LinkError when the link breaks (the .partial stays)."""
    root = updates_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{item['version']}.bundle.partial"
    have = partial.stat().st_size if partial.exists() else 0
    got = 0
    if have > item["size"]:
        partial.unlink()
        have = 0
    if have < item["size"]:
        got = _download(client, f"/v1/bundles/{item['sha256']}", partial, have)
    size = partial.stat().st_size
    if size < item["size"]:     # the hub sent less than announced: keep what came, resume next time
        raise LinkError(f"update bundle {item['version']}: {size} of {item['size']} bytes so far "
                        f"(kept {partial.name} to resume)", sent_bytes=got)
    digest = protocol.sha256_file(partial)
    if size != item["size"] or digest != item["sha256"]:
        log.error("update bundle %s: got %d bytes with sha256 %s, expected %d bytes %s; deleted, "
                  "fetching it again next sync", item["version"], size, digest, item["size"], item["sha256"])
        partial.unlink()
        return None, got
    if not _signed(partial, item["version"], release_key, root):
        return None, got
    ready = root / "ready" / f"{item['version']}.bundle"
    ready.parent.mkdir(parents=True, exist_ok=True)
    partial.replace(ready)
    log.info("update bundle %s downloaded (%d bytes) and ready to apply", item["version"], size)
    return ready, got


def _signed(partial: Path, version: str, release_key: Path, root: Path) -> bool:
    try:
        public = release.load_public_key(release_key)
    except BundleRefused as e:
        log.error("update bundle %s downloaded but not checked: %s; kept %s for the next sync", version, e,
                  partial.name)
        return False
    try:
        manifest = release.verify(partial, public)
        if manifest.version != version:
            raise BundleRefused(f"it holds version {manifest.version}, announced as {version}")
    except BundleRefused as e:
        failed = root / "failed" / f"{version}.bundle"
        try:
            failed.parent.mkdir(parents=True, exist_ok=True)
            partial.replace(failed)
        except OSError as err:      # failed/ not writable here: never keep it where it could be applied
            partial.unlink(missing_ok=True)
            log.error("could not file the refused bundle under %s (%s); deleted it", failed.parent, err)
        log.error("update bundle %s refused, filed under %s (never applied, not fetched again): %s",
                  version, failed, e)
        return False
    return True


def _download(client, path: str, partial: Path, have: int) -> int:
    nonce = secrets.token_urlsafe(18)
    # the corrected clock of every other signed request: a box whose clock is years off still downloads
    headers = protocol.sign_request(client.key, "GET", path, client.node, nonce, client.signing_time(), b"")
    headers["Connection"] = "close"
    if have:
        headers["Range"] = f"bytes={have}-"
    conn = client._connection()
    got = 0
    try:
        conn.request("GET", client.prefix + path, headers=headers)
        resp = conn.getresponse()
        if resp.status not in (200, 206):
            raise LinkError(f"GET {path}: hub answered {resp.status} {resp.read(200)!r}", status=resp.status)
        mode = "ab" if resp.status == 206 else "wb"   # 200 = the whole file again
        with open(partial, mode) as f:
            while True:
                block = resp.read(BLOCK)
                if not block:
                    break
                f.write(block)
                f.flush()
                got += len(block)
        expected = resp.getheader("Content-Length")
        if expected is not None and got != int(expected):   # http.client's read(n) does not notice a cut
            raise LinkError(f"GET {path}: connection closed after {got} of {expected} bytes "
                            f"(kept {partial.name} to resume)", sent_bytes=got)
        return got
    except (OSError, http.client.HTTPException, socket.timeout) as e:
        raise LinkError(f"GET {path}: {e.__class__.__name__}: {e} (kept {partial.name} to resume)",
                        sent_bytes=got) from e
    finally:
        conn.close()


def bytes_to_fetch(item: dict, data_dir: Path) -> int:
    """What is still to download of a bundle (a .partial resumes), for the daily byte budget."""
    partial = updates_dir(data_dir) / f"{item['version']}.bundle.partial"
    have = partial.stat().st_size if partial.exists() else 0
    return max(0, item["size"] - have) if have <= item["size"] else item["size"]


def drop_withdrawn(store, data_dir: Path) -> list[str]:
    """Bundles county IT withdrew (`hub bundle withdraw`): a download in progress or one waiting in
    ready/ and not applied yet is deleted, so the updater never applies it. Applied ones stay in done/."""
    root = updates_dir(data_dir)
    dropped = []
    for row in store.query("SELECT record_id, payload FROM sync_inbox WHERE kind = ?", (KIND,)):
        try:
            doc = json.loads(row["payload"])
            version = str(doc["version"])
        except (ValueError, KeyError, TypeError):
            continue
        if doc.get("withdrawn") is not True or not VERSION_RE.fullmatch(version):
            continue
        for path in (root / "ready" / f"{version}.bundle", root / f"{version}.bundle.partial"):
            if path.exists():
                path.unlink()
                dropped.append(version)
                log.warning("update bundle %s was withdrawn by the county: deleted %s (not applied)", version, path)
    return dropped


def budget(store, cfg: dict, day: str) -> tuple[int, int]:
    """(budget, used today) for bundle downloads: their own `[sync] update_budget_bytes` if the
    county set one, else the records' `daily_budget_bytes`, shared (0 = no limit)."""
    own = cfg["update_budget_bytes"]
    if own:
        return own, state.bytes_today(store, day, only=METERED_AS)
    return cfg["daily_budget_bytes"], state.bytes_today(store, day)


def waits(item: dict, data_dir: Path, store, cfg: dict, day: str) -> str | None:
    """Why a bundle waits for another day (its rest does not fit in today's budget), or None."""
    allowed, used = budget(store, cfg, day)
    need = bytes_to_fetch(item, data_dir) + 2048    # and the request's overhead
    if not allowed or used + need <= allowed:
        return None
    return (f"update bundle {item['version']} ({need} bytes to fetch) waits: {allowed - used} of today's "
            f"{allowed} bytes are left" + ("" if need <= allowed else
                                           "; it is larger than a whole day's budget: the county can raise "
                                           "[sync] update_budget_bytes"))
