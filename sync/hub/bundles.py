"""Update bundles through the downlink: the hub keeps each bundle under its sha256 and queues an
`update_bundle` downlink item; enrolled nodes fetch the bytes with a signed GET that honours
HTTP Range, so a download the link broke resumes where it stopped.

The hub does not check the bundle's Ed25519 signature (the node's `update apply` does, against
its configured release key); it only reads the version from the manifest to name the item.
"""
from __future__ import annotations

import json
import re
import shutil
import tarfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from sync import protocol

KIND = "update_bundle"
SHA_RE = re.compile(r"[0-9a-f]{64}")
RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)")


class BundleError(Exception):
    """A file that is not a bundle (one line for the CLI)."""


def bundle_version(path: Path) -> str:
    try:
        with tarfile.open(path) as t:
            member = t.extractfile("manifest.json")
            return str(json.loads(member.read())["version"])
    except (tarfile.TarError, KeyError, ValueError, AttributeError, OSError) as e:
        raise BundleError(f"{path} is not an update bundle (no readable manifest.json: {e})") from e


def publish(store, bundle_dir: Path, file: Path, node: str, *, now: datetime) -> dict:
    """Copy FILE to bundle_dir/<sha256>.bundle and queue the downlink item; returns its payload."""
    version = bundle_version(file)
    digest = protocol.sha256_file(file)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    target = bundle_dir / f"{digest}.bundle"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(file, tmp)
        tmp.replace(target)
    payload = {"version": version, "sha256": digest, "size": target.stat().st_size}
    previous = _latest(store).get((node, version))   # published before (maybe withdrawn): a newer item
    seq = store.put_downlink(node, KIND, version, previous["version"] + 1 if previous else 1, json.dumps(payload),
                             now=now)
    return {**payload, "cursor": seq}


def _latest(store) -> dict[tuple[str, str], dict]:
    """The newest update_bundle item per (node, version): what the nodes hold."""
    from .storage import downlink

    with store.read() as c:
        rows = c.execute(sa.select(downlink).where(downlink.c.kind == KIND).order_by(downlink.c.seq)).mappings().all()
    return {(r["node"], r["record_id"]): dict(r) for r in rows}


def published(store) -> list[dict]:
    """Each published bundle (by sha256), newest first, for the dashboard: its version, size, the
    nodes it is queued for and whether county IT withdrew it (for every one of them)."""
    out: dict[str, dict] = {}
    for (node, _), r in sorted(_latest(store).items(), key=lambda kv: kv[1]["seq"], reverse=True):
        try:
            doc = json.loads(r["payload"])
            digest = str(doc["sha256"])
        except (ValueError, KeyError, TypeError):
            continue
        b = out.setdefault(digest, {"version": str(doc.get("version")), "sha256": digest,
                                    "size": doc.get("size"), "nodes": [], "withdrawn": True})
        b["nodes"].append(node)
        b["withdrawn"] = b["withdrawn"] and doc.get("withdrawn") is True
    return list(out.values())


def withdraw(store, bundle_dir: Path, which: str, *, now: datetime) -> list[dict]:
    """Withdraw a published bundle (by sha256 or version): for every node it was queued for, a newer
    downlink item of the same id says `withdrawn`, so nodes that have not fetched it do not and a
    node holding it unapplied in updates/ready drops it. The bytes are no longer served."""
    out = []
    for (node, record_id), r in _latest(store).items():
        doc = json.loads(r["payload"])
        if doc.get("withdrawn") or which not in (doc.get("sha256"), doc.get("version")):
            continue
        payload = {"version": doc["version"], "sha256": doc["sha256"], "size": doc["size"], "withdrawn": True}
        seq = store.put_downlink(node, KIND, record_id, r["version"] + 1, json.dumps(payload), now=now)
        out.append({**payload, "node": node, "cursor": seq})
    for digest in {o["sha256"] for o in out}:
        if bundle_dir and SHA_RE.fullmatch(digest):
            (bundle_dir / f"{digest}.bundle").unlink(missing_ok=True)
    return out


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for a `Range: bytes=A-[B]` header; None = the whole file.
    Raises ValueError when the range cannot be satisfied (416)."""
    if not header:
        return None
    m = RANGE_RE.fullmatch(header.strip())
    if not m:
        raise ValueError(f"only one 'bytes=A-[B]' range is served, not {header!r}")
    start = int(m.group(1))
    end = min(int(m.group(2)) + 1, size) if m.group(2) else size
    if start >= size or end <= start:
        raise ValueError(f"range {header!r} is outside the bundle's {size} bytes")
    return start, end
