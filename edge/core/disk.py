"""The data partition's room: is there space to write, and is an error "the disk is full"?

A full data partition must be loud and harmless (docs/architecture.md): /healthz says so
with the reason, the web UI keeps what the doctor typed and says what to do, and the services
wait for space instead of being restarted in a loop (edge.core.watchdog.Waiting).
"""
from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from pathlib import Path

MIN_FREE_BYTES = 8 * 1024 * 1024       # below this a commit of a day's readings may not fit
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def free_bytes(directory: str | Path) -> int | None:
    """Bytes an unprivileged service may still write on the partition (root's reserve excluded)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def shortage(directory: str | Path, min_free: int = MIN_FREE_BYTES) -> str | None:
    """None when the partition holding `directory` has room; else a sentence saying what is short."""
    try:
        st = os.statvfs(directory)
    except OSError as e:
        return f"cannot see the free space of {directory}: {e}"
    free = st.f_bavail * st.f_frsize
    if free < min_free:
        return (f"only {free / 1e6:.1f} MB free on the data partition ({directory}); "
                f"at least {min_free / 1e6:.0f} MB are needed")
    if st.f_files and st.f_favail == 0:
        return f"no free inodes on the data partition ({directory})"
    return None


def write_fails(directory: str | Path) -> str | None:
    """None when a small file can be written in `directory` (and is removed again); else why not.
    Not synced: it tells whether the file system takes data, without wearing the SD card."""
    probe = Path(directory) / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
    except OSError as e:
        return f"writing to {directory} fails: {e.strerror or e}"
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return None


def problem(directory: str | Path, min_free: int = MIN_FREE_BYTES) -> str | None:
    return shortage(directory, min_free) or write_fails(directory)


def is_full(e: BaseException) -> bool:
    """True for SQLite's "database or disk is full" and for ENOSPC/EDQUOT, also when chained."""
    while e is not None:
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if isinstance(e, sqlite3.Error) and "disk is full" in str(e):
            return True
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return True
        e = e.__cause__ or e.__context__
    return False
