"""The design lives in the repository: code and tests cite the project's own docs/, never the
research notes outside it, and every docs/ file a comment names exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("edge", "device_drivers", "sync", "tests", "bench", "image", "systemd", "security", "docs")
           for p in (ROOT / d).rglob("*")
           if p.suffix in {".py", ".toml", ".html", ".sh", ".yaml", ".md", ".service", ".conf", ""} and p.is_file()
           ] + [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "run"]


def test_no_source_cites_notes_outside_the_repository():
    outside = re.compile(r"\b(DEVICES|DOMAIN|ARCHITECTURE)\.md\b|/work/shared|\.\./shared")
    bad = {str(p.relative_to(ROOT)) for p in SOURCES if p.name != Path(__file__).name
           and outside.search(p.read_text(encoding="utf-8", errors="replace"))}
    assert bad == set()


def test_every_docs_file_named_in_the_code_exists():
    named = {m for p in SOURCES for m in re.findall(r"docs/([\w.-]+\.md)", p.read_text(encoding="utf-8", errors="replace"))}
    assert named and {n for n in named if not (ROOT / "docs" / n).exists()} == set()
