"""The broker's journal on a device whose sectors are 4 KiB (docs/mqtt.md, "What a reading writes"):
direct writes of 512-byte sectors are refused there (EINVAL), so the journal falls back to whole
pages, says so in the broker's log, and every acknowledged reading is still journaled, read back
and stored once. The device is real: an ext4 file system on a loop device with 4,096-byte logical
sectors (`losetup --sector-size 4096`), which needs root, as the image tests do."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from device_drivers.mqtt import journal
from tests.conftest import add_device, wait_for
from tests.test_broker_journal import publish_acked, untimed, weights
from tests.test_mqtt_durability import Publisher


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """The data directory on a 4 KiB-sector device (overrides conftest's plain directory)."""
    if os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root, losetup and mkfs.ext4 for a loop device with 4 KiB sectors")
    image, mnt = tmp_path / "4k.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    loop = _run("losetup", "--find", "--show", "--sector-size", "4096", str(image))
    try:
        assert _run("blockdev", "--getss", loop) == "4096"
        _run("mkfs.ext4", "-q", "-b", "4096", loop)
        _run("mount", loop, str(mnt))
        try:
            d = mnt / "data"
            d.mkdir()
            yield d
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def test_on_4k_sectors_the_journal_writes_whole_pages_and_keeps_every_reading(env, data_dir, broker, ingest_proc):
    pw = add_device(env, "scale-4k", broker=broker)
    pub = Publisher(broker, "scale-4k", pw)
    try:
        publish_acked(pub, [untimed(n) for n in range(20)])
    finally:
        pub.close()
    found = journal.scan(journal.journal_dir(data_dir))
    assert found.torn == 0
    assert [json.loads(r.payload)[0]["v"] for r in found.records] == [60 + n / 10 for n in range(20)]
    assert "takes direct writes of whole pages only" in (data_dir / "broker.log").read_text(errors="replace")
    ingest_proc()                                  # ingest reads the journal and stores each once
    wait_for(lambda: len(weights(data_dir)) == 20, timeout=20, message="the readings stored")
    assert weights(data_dir) == [60 + n / 10 for n in range(20)]
