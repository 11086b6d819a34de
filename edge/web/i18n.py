"""Translations: the .po catalogs are kept in the source tree and compiled to .mo at start-up
(into the data directory), so a clean clone and a read-only install both work."""
from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SOURCE = Path(__file__).parent / "translations"


def compiled(target: Path, source: Path = SOURCE) -> Path:
    """Compile every <lang>/LC_MESSAGES/messages.po under source into target (when newer)."""
    for po in source.glob("*/LC_MESSAGES/messages.po"):
        mo = target / po.relative_to(source).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as f:
            catalog = read_po(f)
        tmp = mo.with_suffix(".tmp")
        with tmp.open("wb") as f:
            write_mo(f, catalog)
        tmp.replace(mo)
    return target
