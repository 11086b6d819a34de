"""What every command of this node shares: its config, its data directory, its store and clock.

The CLI builds one `Node` and hands it to every subcommand (`click.pass_obj`), including the
ones contributed by device_drivers and sync, so they never parse config themselves.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from . import durable
from .clock import SystemClock, clinic_today
from .config import Config
from .field_seal import FieldSetup
from .store import Store


class Node:
    def __init__(self, config: Config, clock=None):
        self.config = config
        self.clock = clock or SystemClock()
        self._store: Store | None = None

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def store(self) -> Store:
        if self._store is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._store = Store(self.config.store_path, fields=self.field_setup())
        return self._store

    def field_setup(self) -> FieldSetup:
        """What [crypto] asks for ID numbers and phones at rest (docs/field-encryption.md)."""
        crypto = self.config["crypto"]
        mode = crypto["encrypt_fields"]
        key = Path(crypto["fields_key_file"]) if crypto["fields_key_file"] else self.data_dir / "keys" / "fields.key"
        return FieldSetup(crypto["suite"], key, mode == "on" or (mode == "auto" and crypto["suite"] == "sm"))

    def today(self):
        """Today's date at the clinic ([node] timezone, on the best time known)."""
        return clinic_today(self.store, self.clock, self.config["node"]["timezone"])

    def path(self, *parts: str) -> Path:
        p = self.data_dir.joinpath(*parts)
        durable.make_dir(p.parent)      # made by root (the updater): still the service user's
        return p

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A secret kept in the data directory (mode 0600), made on first use."""
        p = self.path("secrets", name)
        os.chmod(p.parent, 0o700)
        if not p.exists() or not p.stat().st_size:   # empty: cut by a power loss before it was durable
            durable.create_file(p, secrets.token_urlsafe(nbytes))
        return p.read_text().strip()

    def write_status(self, name: str, status: dict[str, Any]) -> None:
        """A small status file other processes read (e.g. /healthz reads ingest's)."""
        # written by root too (update apply-pending): the file must stay readable by the services,
        # whose sync daemon sends the update's outcome to the county
        durable.write_file(self.path("run", f"{name}.json"), json.dumps({**status, "pid": os.getpid()}), sync=False)

    def read_status(self, name: str) -> dict[str, Any] | None:
        p = self.data_dir / "run" / f"{name}.json"
        try:
            status = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        pid = status.get("pid")
        status["running"] = bool(pid) and pid_alive(pid)
        return status

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (one owned by another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
