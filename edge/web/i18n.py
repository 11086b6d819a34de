"""Translations: the .po catalogs are kept in the source tree and compiled to .mo at start-up
(into the data directory), so a clean clone and a read-only install both work."""
from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SOURCE = Path(__file__).parent / "translations"


def compiled(target: Path, source: Path = SOURCE) -> Path:
    """Compile every <lang>/LC_MESSAGES/messages.po under source into target (when newer).

    Written durably (edge.core.durable): a .mo cut by a power loss comes back empty under its
    name, and an empty catalog breaks every page; an empty one is also compiled again."""
    import io

    from edge.core import durable

    for po in source.glob("*/LC_MESSAGES/messages.po"):
        mo = target / po.relative_to(source).with_suffix(".mo")
        if mo.exists() and mo.stat().st_size and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f)
        out = io.BytesIO()
        write_mo(out, catalog)
        durable.write_file(mo, out.getvalue(), 0o644)
    return target


def update(root: Path = SOURCE.parents[2]) -> list[str]:
    """Add the messages babel.cfg extracts to every messages.po, keeping all existing translations
    (never regenerate a catalog from scratch: other parts' entries would be lost). Returns the
    msgids still untranslated. Run: python -m edge.web.i18n"""
    from configparser import ConfigParser

    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import write_po

    cfg = ConfigParser()
    cfg.read(SOURCE / "babel.cfg")
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: dict[str, bool] = {}
    for section in cfg.sections():
        method, _, pattern = section.partition(":")
        for path in sorted(root.glob(pattern.strip())):
            for _line, msg, _c, _ctx in extract_from_file(method.strip(), str(path), keywords=keywords):
                msgid = msg if isinstance(msg, str) else msg[0]
                found[msgid] = found.get(msgid, False) or "%(" in msgid
    untranslated = []
    for po in SOURCE.glob("*/LC_MESSAGES/messages.po"):
        with po.open("rb") as f:
            catalog = read_po(f)
        for msgid, formatted in found.items():
            if msgid not in catalog:
                catalog.add(msgid, "", flags=["python-format"] if formatted else [])
        catalog.fuzzy = False
        with po.open("wb") as f:
            write_po(f, catalog, sort_output=True, width=100, no_location=True)
        untranslated += [m.id for m in catalog if m.id and not m.string]
    return untranslated


if __name__ == "__main__":  # pragma: no cover
    missing = update()
    print("untranslated:" if missing else "every message is translated", *missing, sep="\n  ")
