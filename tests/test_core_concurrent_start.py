"""Web, ingest and sync start at the same moment after an update (the updater restarts them all
together): every one of them opens the same fresh database and applies the migrations. None may
crash, and the schema ends up applied exactly once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPEN = ("import sys; from edge.core.store import Store; "
        "s = Store(sys.argv[1]); print(s.scalar('SELECT count(*) FROM _migrations')); s.close()")


def _start_together(db: Path, n: int) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(db)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def test_fifteen_services_starting_at_once_on_a_new_database_all_come_up(tmp_path):
    from edge.core import migrations
    expected = len(migrations.registered())
    for attempt in range(3):
        db = tmp_path / f"round{attempt}" / "clinic-edge.db"
        db.parent.mkdir()
        results = _start_together(db, 15)
        failed = [r.stderr.strip().splitlines()[-1] for r in results if r.returncode != 0]
        assert not failed, f"round {attempt}: {len(failed)} of 15 starts crashed: {failed[:3]}"
        assert {r.stdout.strip() for r in results} == {str(expected)}
