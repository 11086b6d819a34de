"""Small files that must survive a power cut (keys, passwords, the setup code): edge.core.durable.
The power cut itself is pulled on a booted card in tests/test_image_build.py (VM section)."""
from __future__ import annotations

import os
import stat

from edge.core import durable


def test_write_file_replaces_in_one_step_private_by_default(tmp_path):
    p = tmp_path / "secrets" / "key"
    durable.write_file(p, "one")
    durable.write_file(p, b"two")
    assert p.read_text() == "two"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(os.listdir(p.parent)) == ["key"], "a temporary file was left behind"


def test_create_file_keeps_an_existing_secret_but_replaces_the_empty_remains_of_a_cut(tmp_path):
    p = tmp_path / "mqtt-ingest-password"
    assert durable.create_file(p, "first")
    assert not durable.create_file(p, "second")
    assert p.read_text() == "first"
    p.write_text("")                     # what a power cut left before writes were made durable
    assert durable.create_file(p, "third")
    assert p.read_text() == "third"
    assert sorted(os.listdir(tmp_path)) == ["mqtt-ingest-password"]


def test_a_node_secret_left_empty_by_a_power_cut_is_made_again(node):
    first = node.secret("web-secret-key")
    assert first and node.secret("web-secret-key") == first
    node.path("secrets", "web-secret-key").write_text("")
    again = node.secret("web-secret-key")
    assert again and again != first


def test_remove_file_is_quiet_when_already_gone(tmp_path):
    p = tmp_path / "clinic-edge.toml"
    p.write_text("[hub]\n")
    durable.remove_file(p)
    durable.remove_file(p)
    assert not p.exists()


def test_write_file_through_a_link_replaces_the_file_it_points_to(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "etc").mkdir()
    target = tmp_path / "data" / "config.toml"
    target.write_text("[web]\n")
    link = tmp_path / "etc" / "config.toml"
    link.symlink_to(target)
    durable.write_file(link, "[node]\n", 0o640)
    assert link.is_symlink() and target.read_text() == "[node]\n"
    assert os.listdir(tmp_path / "etc") == ["config.toml"]
