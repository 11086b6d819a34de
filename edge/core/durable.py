"""Small files that survive a power cut.

The boxes lose power without warning. A file written the plain way (open, write, close) can come
back after the cut as an empty file under its name: the name reached the disk's journal, the
bytes did not (ext4 writes data late; the data partition commits every 30 s). For a key or a
password that is a box nobody can log in to. So: write a temporary file beside it, fsync it,
rename it over the name, fsync the folder; after a cut the file is either the old one or the new
one, never empty. (The appliance test pulls the plug on a booted card and checks this.)
"""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_dir(folder: Path) -> None:
    """Make renames and deletions in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:        # a file system that cannot fsync a folder (some FUSE mounts): nothing more to do
        pass
    finally:
        os.close(fd)


def _tmp_written(path: Path, data: bytes, mode: int, sync: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)        # whatever the umask
        _owned_like_parent(fd, path.parent)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _owned_like_parent(fd: int, parent: Path) -> None:
    """Root (the updater) writing into the service user's data directory: the file stays the
    service user's, so a 0600 file remains readable by the services."""
    if os.geteuid() != 0:
        return
    st = os.stat(parent)
    if st.st_uid != 0:
        os.fchown(fd, st.st_uid, st.st_gid)


def make_dir(path: Path) -> Path:
    """mkdir -p; when root makes it inside the service user's data directory, it stays the user's."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            st = os.stat(path.parent)
            if st.st_uid != 0:
                os.chown(path, st.st_uid, st.st_gid)
    return path


def write_file(path: Path, data: bytes | str, mode: int = 0o600, *, sync: bool = True) -> Path:
    """Replace `path` with `data` in one durable step (readers see the old or the new file). A
    symbolic link is followed: the file it points to is replaced (the appliance's
    /etc/clinic-edge/config.toml points into the data partition). `sync=False` keeps the atomic
    rename, the mode and the owner but skips the fsyncs: for status files rewritten every few
    seconds, where losing the last one to a power cut costs nothing and SD-card writes do."""
    path = Path(os.path.realpath(path))
    tmp = _tmp_written(path, data.encode() if isinstance(data, str) else data, mode, sync)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)
    return path


def copy_file(source: Path, path: Path, mode: int | None = None) -> Path:
    """Replace `path` with a copy of `source` in one durable step: the copy is written beside it
    and fsynced, then renamed over it, so after a power cut `path` is the old file or the whole
    new one. `mode` defaults to the replaced file's mode (0600 when there was none)."""
    path = Path(os.path.realpath(path))
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    mode = mode if mode is not None else (old.st_mode & 0o777 if old else 0o600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(source, "rb") as src, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
        os.fchmod(out.fileno(), mode)
        shutil.copyfileobj(src, out, 1024 * 1024)   # a database can be large: never all in memory
        out.flush()
        os.fsync(out.fileno())
    try:
        if old is not None and os.geteuid() == 0:   # root restores for the service user: keep the owner
            os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def create_file(path: Path, data: bytes | str, mode: int = 0o600) -> bool:
    """Create `path` with `data` durably unless it already exists (two processes racing to make the
    same secret agree on one). An empty file left by a power cut before this module existed counts
    as missing. Returns whether this call created it."""
    path = Path(path)
    tmp = _tmp_written(path, data.encode() if isinstance(data, str) else data, mode)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.stat().st_size:
                return False
            os.replace(tmp, path)     # the empty remains of a cut write
            tmp = None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def remove_file(path: Path) -> None:
    """Delete `path` so that it stays deleted after a power cut (a secret must not come back)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an advisory lock on `lock` (created 0600 if missing) across processes: two hubs
    started at once on one data directory make a key and its certificate as one unit, not one
    of each. The kernel drops the lock when the process dies, so a crash leaves no stale lock."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
