"""Secrets at rest (issue 13): a USB export bundle is encrypted to the hub's key (still signed by
the node: the real hub imports it), a nightly backup to the county backup key (`clinic-edge
restore --key` brings it back); neither holds a resident's name or ID number in its bytes; the
data directory's files are 0600 in 0700 folders whatever the umask."""
from __future__ import annotations

import json
import shutil
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import clinic_edge
from edge.core import residents, sealed
from sync_fixtures import enroll, hub, hub_records, sync_env  # noqa: F401

NAME = "王秀英"
ID_NUMBER = "11010519491231002X"
PHONE = "13912345678"


@pytest.fixture
def hub_database(tmp_path) -> str:   # SQLite only: the hub's storage is not what is tested here
    return f"sqlite:///{tmp_path / 'hub.db'}"


def _resident(node) -> str:
    return residents.create(node.store, {"name": NAME, "id_number": ID_NUMBER, "phone": PHONE},
                            division_code="110105001001", now=node.clock.now(), actor="doc")


def _plain(data: bytes) -> list[str]:
    return [w for w in (NAME, ID_NUMBER, PHONE) if w.encode("utf-8") in data]


def test_a_usb_bundle_holds_no_plaintext_and_only_the_hubs_key_opens_it(env, node, hub, tmp_path):
    enroll(env, hub)
    _resident(node)
    stick = tmp_path / "usb" / "clinic-a.bundle"
    stick.parent.mkdir()
    clinic_edge(env, "sync", "export-bundle", str(stick))
    data = stick.read_bytes()
    assert data.startswith(sealed.MAGIC) and _plain(data) == []
    r = hub.cli("import-bundle", str(stick))
    assert r.stdout.startswith("1 batches read, 1 new records stored"), r.stdout + r.stderr
    held = hub.records()
    assert [h["payload"]["name"] for h in held if h["kind"] == "resident"] == [NAME]
    # another hub (another key) cannot read it
    from sync_fixtures import Hub

    other_dir = tmp_path / "other-hub"
    other_dir.mkdir()
    other = Hub(env, other_dir, f"sqlite:///{tmp_path / 'other.db'}")
    r = other.cli("import-bundle", str(stick), check=False)
    assert r.returncode != 0 and "cannot decrypt" in r.stderr


def _backup_key(tmp_path, suite: str = "ed25519") -> tuple[Path, Path]:
    keys = tmp_path / "county-it"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    out = clinic_edge({**env, "CLINIC_EDGE_DATA": str(tmp_path / "county-laptop")}, "backup-key", str(keys),
                      "--suite", suite)
    assert "backup.pub" in out.stdout
    return keys / "backup.key", keys / "backup.pub"


@pytest.mark.parametrize("suite", ["ed25519", "sm"])
def test_a_nightly_backup_is_sealed_to_the_county_key_and_restores_with_it(env, node, tmp_path, suite):
    rid = _resident(node)
    private, public = _backup_key(tmp_path, suite)
    usb = tmp_path / "usb"
    usb.mkdir()
    e = {**env, "CLINIC_EDGE_APPLIANCE_BACKUP_KEY": str(public), "CLINIC_EDGE_APPLIANCE_USB_BACKUP_DIR": str(usb)}
    out = clinic_edge(e, "backup-nightly", "--any-folder").stdout
    written = [Path(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("backup written")]
    assert [p.parent for p in written] == [node.data_dir / "backups", usb]
    for p in written:
        assert p.name.endswith(".sealed") and _plain(p.read_bytes()) == [], p
        assert p.read_bytes().startswith(sealed.MAGIC_SM if suite == "sm" else sealed.MAGIC)
    assert not list((node.data_dir / "backups").glob("*.db")), "no plaintext copy left behind"
    # the doctor sees it as a backup
    assert "no nightly backup" not in clinic_edge(e, "doctor", check=False).stdout
    # the county's restore: without the key it is refused, with it the resident is back
    node.close()
    r = clinic_edge(e, "restore", "--yes", str(written[1]), check=False)
    assert r.returncode != 0 and "--key" in r.stderr
    wrong, _ = _backup_key(tmp_path / "other", suite)
    r = clinic_edge(e, "restore", "--yes", "--key", str(wrong), str(written[1]), check=False)
    assert r.returncode != 0 and "not made for this key" in r.stderr
    other_suite, _ = _backup_key(tmp_path / "other-suite", "ed25519" if suite == "sm" else "sm")
    r = clinic_edge(e, "restore", "--yes", "--key", str(other_suite), str(written[1]), check=False)
    assert r.returncode != 0 and "and this key is" in r.stderr, r.stderr
    (node.data_dir / "clinic-edge.db").unlink()
    clinic_edge(e, "restore", "--yes", "--key", str(private), str(written[1]))
    from edge.core import config as config_mod
    from edge.core.node import Node

    back = Node(config_mod.load(env=e))
    try:
        assert back.store.one("SELECT name, id_number FROM residents WHERE id = ?", (rid,)) is not None
    finally:
        back.close()


def test_without_a_backup_key_no_copy_goes_to_the_usb_stick(env, node, tmp_path):
    _resident(node)
    usb = tmp_path / "usb"
    usb.mkdir()
    e = {**env, "CLINIC_EDGE_APPLIANCE_BACKUP_KEY": str(tmp_path / "none.pub"),
         "CLINIC_EDGE_APPLIANCE_USB_BACKUP_DIR": str(usb)}
    r = clinic_edge(e, "backup-nightly", "--any-folder")
    assert list(usb.iterdir()) == [] and "backup key" in r.stderr


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
            if not p.is_symlink()}


def test_data_directory_files_are_private_whatever_the_umask(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    env["CLINIC_EDGE_DATA"] = str(data)
    code = ("import os, sys; os.umask(0); sys.argv = ['clinic-edge'] + sys.argv[1:];"
            " from edge.cli import main; main()")
    for args in (["init"], ["user", "add", "doc", "--generate"], ["backup-nightly"]):
        subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, timeout=120)
    modes = _modes(data)
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (0o700 if (data / p).is_dir() else 0o600)}
    assert wrong == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="root (the updater) writing into the service user's folder")
def test_what_the_root_updater_files_in_the_data_directory_stays_the_service_users(tmp_path):
    data = tmp_path / "data"
    (data / "updates" / "ready").mkdir(parents=True)
    for p in (data, data / "updates", data / "updates" / "ready"):
        os.chown(p, 65534, 65534)
    (data / "updates" / "ready" / "0.5.0.bundle").write_bytes(b"not a bundle")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    env.update(CLINIC_EDGE_DATA=str(data), CLINIC_EDGE_UPDATE_PREFIX=str(tmp_path / "opt"),
               CLINIC_EDGE_UPDATE_RELEASE_KEY=str(tmp_path / "release.pub"))
    r = clinic_edge(env, "update", "apply-pending", check=False)
    assert r.returncode == 3, r.stderr
    failed = data / "updates" / "failed"
    assert (failed / "0.5.0.bundle").exists()
    assert (failed.stat().st_uid, stat.S_IMODE(failed.stat().st_mode)) == (65534, 0o700)
    # the outcome the sync daemon sends to the county: root wrote it, the service user must read it
    outcome = data / "run" / "update.json"
    assert json.loads(outcome.read_text())["result"] == "refused"
    assert (outcome.stat().st_uid, outcome.parent.stat().st_uid) == (65534, 65534)


def test_an_sm_sealed_file_opens_with_openssl_and_the_standard_sm4_gcm(tmp_path):
    """The sm format checked by parts other than ours: OpenSSL's command line unwraps the file key
    with the county's SM2 private key, and `cryptography`'s SM4-GCM opens the chunk with it."""
    import shutil

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not shutil.which("openssl"):
        pytest.skip("openssl command line not installed")
    private, public = _backup_key(tmp_path, "sm")
    blob = sealed.seal(sealed.load_public(public), ID_NUMBER.encode() * 3, "backup")
    size = int.from_bytes(blob[4:6], "big")
    (tmp_path / "wrapped").write_bytes(blob[6:6 + size])
    key = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", str(private), "-in", str(tmp_path / "wrapped")],
                         capture_output=True, check=True).stdout
    assert len(key) == 16
    chunk = blob[6 + size:]
    ct = chunk[4:4 + int.from_bytes(chunk[:4], "big")]
    aad = sealed.MAGIC_SM + blob[6:6 + size] + b"backup"
    dec = Cipher(algorithms.SM4(key), modes.GCM((0).to_bytes(11, "big") + b"\x01", ct[-16:])).decryptor()
    dec.authenticate_additional_data(aad)
    assert dec.update(ct[:-16]) + dec.finalize() == ID_NUMBER.encode() * 3
    assert sealed.unseal(sealed.load_private(private), blob, "backup") == ID_NUMBER.encode() * 3
    with pytest.raises(sealed.SealError, match="cut short"):
        sealed.unseal(sealed.load_private(private), blob[:6 + size], "backup")


def test_a_sealed_backup_of_an_sm_node_brings_back_its_field_key_and_search_by_id_tail(env, tmp_path):
    """The field key (docs/field-encryption.md) rides in the sealed backup: after the box is wiped,
    the county's restore brings back a database whose ID numbers can be read and searched."""
    from edge.appliance.backup import FIELD_KEY_STATE
    from edge.core import config as config_mod
    from edge.core.node import Node
    from edge.core.resident_search import search

    private, public = _backup_key(tmp_path, "sm")
    e = {**env, "CLINIC_EDGE_CRYPTO_SUITE": "sm", "CLINIC_EDGE_APPLIANCE_BACKUP_KEY": str(public)}
    node = Node(config_mod.load(env=e))
    rid = _resident(node)
    data = node.data_dir
    node.close()
    key_text = (data / "keys" / "fields.key").read_text()
    out = clinic_edge(e, "backup-nightly").stdout
    [written] = [Path(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("backup written")]
    assert _plain(written.read_bytes()) == [] and key_text.encode() not in written.read_bytes()
    keep = tmp_path / "stick" / written.name
    keep.parent.mkdir()
    written.replace(keep)
    for p in list(data.iterdir()):          # the card is replaced: nothing of the old data is left
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    r = clinic_edge(e, "restore", "--yes", "--key", str(private), str(keep))
    assert "restored the field key" in r.stdout
    key = data / "keys" / "fields.key"
    assert key.read_text() == key_text and stat.S_IMODE(key.stat().st_mode) == 0o600
    back = Node(config_mod.load(env=e))
    try:
        assert [x["id"] for x in search(back.store, ID_NUMBER[-4:])] == [rid]
        assert back.store.one("SELECT value FROM node_state WHERE key = ?", (FIELD_KEY_STATE,)) is None
    finally:
        back.close()
    assert key_text.encode() not in b"".join(p.read_bytes() for p in data.glob("clinic-edge.db*"))
