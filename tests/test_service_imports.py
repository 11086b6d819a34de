"""The node's services do not load what only the county hub or an export uses (issue 17.2, memory).

Each service starts in a fresh interpreter (a subprocess, as systemd starts it) and reports the
modules it holds. SQLAlchemy, alembic and psycopg are the hub's; openpyxl is the XLSX export's;
pypinyin (without its phrase tables) is loaded only when a resident's name is written; the web UI's
pages do not need cryptography (about 8 MB; docs/operations.md, memory).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HUB_OR_EXPORT = ("sqlalchemy", "alembic", "psycopg", "openpyxl", "sync.hub", "pypinyin")

# what each service runs before it serves: its command resolved by the CLI (`--help` stops there),
# then what the command itself builds
START = {
    "ingest": ("ingest", "import device_drivers.cli, device_drivers.mqtt"),
    "web": ("serve", "from edge.core import config, https\n"
                     "from edge.core.node import Node\n"
                     "from edge.web import create_app\n"
                     "c = create_app(node=Node(config.load())).test_client()\n"
                     "assert c.get('/login').status_code == 200\n"
                     "assert c.get('/healthz').status_code in (200, 503)\n"),
    "sync": ("sync", "import sync.client.daemon"),
}
ALSO_NOT = {"web": ("cryptography",), "ingest": ("cryptography",)}


def loaded_modules(command: str, code: str, tmp_path: Path) -> set[str]:
    script = ("import atexit, json, sys\n"
              "atexit.register(lambda: print(json.dumps(sorted(sys.modules))))\n"
              f"{code}\n"
              f"sys.argv = ['clinic-edge', {command!r}, '--help']\n"
              "from edge.cli import main\n"
              "main()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    env["CLINIC_EDGE_DATA"] = str(tmp_path / "data")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("service", sorted(START))
def test_a_node_service_does_not_load_hub_or_export_modules(service, tmp_path):
    command, code = START[service]
    mods = loaded_modules(command, code, tmp_path)
    forbidden = HUB_OR_EXPORT + ALSO_NOT.get(service, ())
    held = sorted(m for m in mods if m.split(".")[0] in forbidden or m in forbidden
                  or any(m.startswith(f + ".") for f in forbidden))
    assert held == []


def test_writing_a_name_still_gives_its_pinyin_initials():
    from edge.core.resident_search import initials

    assert initials("曾小明") == ["zxm", "cxm"]     # 曾 as a surname is Zēng (edge/core/surnames.py)


def test_writing_a_name_loads_pypinyin_without_its_phrase_tables(tmp_path):
    """The web process imports pypinyin when a resident's name is written; its phrase tables
    (about 40 MB) are not loaded (edge/core/resident_search.py, docs/operations.md "Memory")."""
    code = ("from edge.core.resident_search import initials\n"
            "assert initials('张三') == ['zs']\n")
    mods = loaded_modules("serve", code, tmp_path)
    assert "pypinyin" in mods and "pypinyin.phrases_dict" not in mods
