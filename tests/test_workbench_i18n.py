"""Chinese by default, English available: every message of the workbench has a Chinese translation
and the catalog compiles from the .po in a clean checkout."""
from pathlib import Path

from babel.messages.pofile import read_po

from edge.web import create_app, i18n

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "edge/web/translations/babel.cfg"


def workbench_msgids() -> set[str]:
    """The messages pybabel would extract with babel.cfg (its sections name the files)."""
    from configparser import ConfigParser

    from babel.messages.extract import extract_from_file

    cfg = ConfigParser()
    cfg.read(CFG)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    ids = set()
    for section in cfg.sections():
        method, _, pattern = section.partition(":")
        for path in ROOT.glob(pattern.strip()):
            for _line, message, _comments, _ctx in extract_from_file(method.strip(), str(path), keywords=keywords):
                ids.add(message if isinstance(message, str) else message[0])
    assert len(ids) > 100
    return ids


def test_every_workbench_message_has_a_chinese_translation():
    with (i18n.SOURCE / "zh/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f)
    translated = {m.id for m in catalog if m.id and m.string}
    missing = workbench_msgids() - translated
    assert not missing, f"add these to messages.po: {sorted(missing)}"


def test_a_catalog_cut_by_a_power_loss_is_compiled_again(tmp_path):
    """After a power cut the compiled catalog can come back empty under its name (and newer than
    its source): an empty .mo would break every page, so it is compiled again."""
    mo = i18n.compiled(tmp_path).joinpath("zh/LC_MESSAGES/messages.mo")
    mo.write_bytes(b"")
    i18n.compiled(tmp_path)
    assert mo.stat().st_size > 1000


def test_login_page_is_chinese_by_default_and_english_on_request(node, tmp_path):
    assert i18n.compiled(tmp_path).joinpath("zh/LC_MESSAGES/messages.mo").exists()
    c = create_app(node=node).test_client()
    assert "登录" in c.get("/login").text
    c.get("/lang/en")
    page = c.get("/login").text
    assert "Log in" in page and "登录" not in page
