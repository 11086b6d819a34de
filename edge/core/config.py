"""Node configuration: one TOML file, embedded defaults, environment overrides.

PINNED (docs/architecture.md, README "Configuration"): the file comes from `--config` or `CLINIC_EDGE_CONFIG`; the data
directory from `CLINIC_EDGE_DATA`; every key may be overridden by `CLINIC_EDGE_<SECTION>_<KEY>`
(`CLINIC_EDGE_MQTT_URL`, `CLINIC_EDGE_DRIVERS_ASTM_URL`). A bad value stops start-up with one
line naming the key, the value and what is allowed.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from . import durable

log = logging.getLogger(__name__)
ENV_PREFIX = "CLINIC_EDGE_"
ENV_CONFIG = "CLINIC_EDGE_CONFIG"
ENV_DATA = "CLINIC_EDGE_DATA"
APPLIANCE_DATA_DIR = Path("/var/lib/clinic-edge")
APPLIANCE_CONFIG = Path("/etc/clinic-edge/config.toml")


class ConfigError(Exception):
    """One line a person can act on: key, bad value, what is allowed."""


@dataclass(frozen=True)
class Key:
    kind: type
    default: Any
    allowed: str                                  # said back to the user on a bad value
    check: Callable[[Any], bool] = lambda v: True


def _hostport(v: str) -> bool:
    m = re.fullmatch(r"\[?([\w.:-]*)\]?:(\d{1,5})", v)
    return bool(m) and 0 <= int(m.group(2)) <= 65535


def _zone(v: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(v)    # time zone data: the system's, else the tzdata package (a dependency)
    except (ValueError, OSError, LookupError):
        return False
    return True


def _url(*schemes: str) -> Callable[[str], bool]:
    def ok(v: str) -> bool:
        u = urlparse(v)
        return u.scheme in schemes and (bool(u.netloc) or u.scheme == "sqlite")
    return ok


SCHEMA: dict[str, dict[str, Key]] = {
    "node": {
        "name": Key(str, "clinic-edge-node", "a short name for this box", lambda v: 0 < len(v) <= 64),
        "clinic_name": Key(str, "示范村卫生室", "the clinic's name", lambda v: 0 < len(v) <= 64),
        "division_code": Key(str, "110105001001", "the 12-digit statistical division code of the village",
                             lambda v: bool(re.fullmatch(r"\d{12}", v))),
        "timezone": Key(str, "Asia/Shanghai", "an IANA time zone name such as Asia/Shanghai (the clinic's day: "
                        "dates on forms, rules and reports)", lambda v: _zone(v)),
    },
    "store": {
        "path": Key(str, "", "a file path (empty = clinic-edge.db in the data directory)"),
    },
    # the county's crypto suite and field encryption at rest (docs/crypto-suites.md, docs/field-encryption.md)
    "crypto": {
        "suite": Key(str, "ed25519", "ed25519 or sm", lambda v: v in ("ed25519", "sm")),
        "encrypt_fields": Key(str, "auto", "auto (on for the sm suite, off for ed25519), on or off",
                              lambda v: v in ("auto", "on", "off")),
        "fields_key_file": Key(str, "", "the field key file (empty = keys/fields.key in the data directory)"),
    },
    "mqtt": {
        "enabled": Key(bool, True, "true or false"),
        "url": Key(str, "mqtt://127.0.0.1:1883", "mqtt://HOST:PORT", _url("mqtt", "mqtts")),
        "username": Key(str, "clinic-edge-ingest", "the broker account of the ingest service"),
        "password": Key(str, "", "its password (empty = read broker/ingest.secret in the data directory)"),
        "client_id": Key(str, "clinic-edge-ingest", "1-23 letters, digits or -_",
                         lambda v: bool(re.fullmatch(r"[\w-]{1,23}", v))),
        "max_payload": Key(int, 4096, "bytes, 256-262144", lambda v: 256 <= v <= 262144),
        "batch_max": Key(int, 200, "readings per commit, 1-5000", lambda v: 1 <= v <= 5000),
        "commit_wait_ms": Key(int, 100, "how long a commit waits for more messages while they come closer together than this, ms, 0-1000",
                              lambda v: 0 <= v <= 1000),
    },
    "broker": {
        "listen": Key(str, "127.0.0.1:1883", "HOST:PORT", _hostport),
        "mosquitto": Key(str, "mosquitto", "the mosquitto program (name or path)"),
        "tls_listen": Key(str, "0.0.0.0:8883", "HOST:PORT of the MQTT-over-TLS listener with the node certificate "
                          "(empty = none)", lambda v: v == "" or _hostport(v)),
        "plain_lan": Key(bool, False, "true lets devices that cannot do TLS use plain MQTT (listen) from the LAN; "
                         "false binds it to loopback"),
        "journal_segment_kib": Key(int, 1024, "KiB per file of the broker's journal of readings, 16-65536 "
                                   "(docs/mqtt.md)", lambda v: 16 <= v <= 65536),
    },
    "web": {
        "listen": Key(str, "127.0.0.1:8080", "HOST:PORT", _hostport),
        "secret_key": Key(str, "", "a long random string (empty = generated in the data directory)"),
        "language": Key(str, "zh", "zh or en", lambda v: v in ("zh", "en")),
        "idle_minutes": Key(int, 30, "minutes, 1-1440", lambda v: 1 <= v <= 1440),
        "session_hours": Key(int, 12, "hours a login lasts however busy, 1-168", lambda v: 1 <= v <= 168),
        "trusted_proxy": Key(str, "", "the address of a reverse proxy whose X-Forwarded-For is believed "
                             "(empty = none: the client address is the connection's)"),
        "measuring_minutes": Key(int, 5, "minutes a \"measuring now\" session lasts, 1-120",
                                 lambda v: 1 <= v <= 120),
        "secure_cookies": Key(bool, False, "true when served over HTTPS (`serve` sets it itself when it serves TLS)"),
        "tls": Key(bool, True, "true: HTTPS on listen with the node certificate (DATA/tls) once enrolled"),
        "redirect_listen": Key(str, "", "HOST:PORT of a plain HTTP port that only redirects to HTTPS (empty = none)",
                               lambda v: v == "" or _hostport(v)),
    },
    # a node that sends its own records' standard documents to the county platform (docs/interop.md §6)
    "direct": {
        "kind": Key(str, "", "empty (the hub forwards; this node sends nothing itself), fhir, cda or drop",
                    lambda v: v in ("", "fhir", "cda", "drop")),
        "target": Key(str, "", "the platform's http(s):// URL (fhir: its FHIR base; cda: where documents are POSTed), "
                      "or for drop an absolute directory the 前置机 picks files up from", lambda v: len(v) <= 1024),
        "clinic_code": Key(str, "", "the clinic's organisation code at the county, the documents' custodian "
                           "(empty = the node's name)", lambda v: len(v) <= 64 and "\n" not in v),
        "interval_seconds": Key(int, 300, "seconds between rounds of `clinic-edge sync direct`, 1-86400",
                                lambda v: 1 <= v <= 86400),
    },
    "sync": {
        "hub_url": Key(str, "", "http(s)://HOST:PORT of the county hub (empty = the one enrolled with)",
                       lambda v: v == "" or _url("http", "https")(v)),
        "interval_seconds": Key(int, 300, "seconds between attempts while there is a backlog, 1-86400",
                                lambda v: 1 <= v <= 86400),
        "nightly_hour": Key(int, 2, "hour of the nightly full sync, 0-23", lambda v: 0 <= v <= 23),
        "nightly_jitter_minutes": Key(int, 120, "random delay of the nightly sync, 0-720 minutes",
                                      lambda v: 0 <= v <= 720),
        "daily_budget_bytes": Key(int, 0, "bytes per day on the uplink (0 = no limit)", lambda v: v >= 0),
        "update_budget_bytes": Key(int, 0, "bytes per day for update bundle downloads, apart from the records' "
                                   "daily_budget_bytes (0 = they share daily_budget_bytes)", lambda v: v >= 0),
        "batch_records": Key(int, 2000, "records in the first batch, 1-20000", lambda v: 1 <= v <= 20000),
        "batch_max_records": Key(int, 5000, "largest batch, 1-20000", lambda v: 1 <= v <= 20000),
        "chunk_bytes": Key(int, 16384, "bytes per upload request at first, 512-4194304",
                           lambda v: 512 <= v <= 4194304),
        "timeout_seconds": Key(int, 30, "seconds before a request is given up, 1-600", lambda v: 1 <= v <= 600),
        "backoff_base_ms": Key(int, 1000, "first retry delay in ms, 1-600000", lambda v: 1 <= v <= 600000),
        "backoff_cap_ms": Key(int, 300000, "longest retry delay in ms, 1-86400000", lambda v: 1 <= v <= 86400000),
        "retry_after_cap_seconds": Key(int, 900, "longest a hub's Retry-After is believed, 1-86400 seconds",
                                       lambda v: 1 <= v <= 86400),
        "attempts": Key(int, 8, "failed tries in a row before a cycle gives up until the next one, 1-1000",
                        lambda v: 1 <= v <= 1000),
    },
    "hub": {
        "listen": Key(str, "127.0.0.1:8470", "HOST:PORT", _hostport),
        "database": Key(str, "", "sqlite:///PATH or postgresql://USER@HOST/DB (empty = hub/hub.db in the data "
                        "directory)", lambda v: v == "" or _url("sqlite", "postgresql", "postgresql+psycopg")(v)),
        "key_file": Key(str, "", "the hub's Ed25519 key file (empty = hub/hub.key in the data directory; the SM2 key "
                        "is hub-sm.key beside it)"),
        # the county's crypto suite for new enrollment codes (docs/crypto-suites.md); existing nodes keep theirs
        "suite": Key(str, "ed25519", "ed25519 or sm", lambda v: v in ("ed25519", "sm")),
        "code_ttl_hours": Key(int, 72, "hours an enrollment code stays valid, 1-8760", lambda v: 1 <= v <= 8760),
        "max_batch_bytes": Key(int, 4 << 20, "largest batch in bytes, 1024-268435456",
                               lambda v: 1024 <= v <= 268435456),
        "threads": Key(int, 16, "worker threads, 1-256", lambda v: 1 <= v <= 256),
        # admission control (docs/hub.md): more uploads at once in one worker process get 503 + Retry-After
        "uploads_in_service": Key(int, 8, "uploads served at once per worker process, 0-256 (0 = no limit)",
                                  lambda v: 0 <= v <= 256),
        "busy_retry_max_seconds": Key(int, 60, "longest Retry-After a turned-away upload is given, 1-3600 seconds",
                                      lambda v: 1 <= v <= 3600),
        "tls": Key(bool, True, "true (HTTPS with the county CA) or false (plain HTTP, e.g. behind a TLS proxy)"),
        "names": Key(str, "", "comma-separated host names / IP addresses nodes use to reach the hub (its "
                     "certificate's names; the listen address is added)"),
        # a signed request's X-CE-Time may differ this much from the hub's clock; its nonce is kept
        # nonce_retention_seconds, which must be at least twice the window (docs/hub.md)
        "time_window_seconds": Key(int, 600, "seconds, 30-86400", lambda v: 30 <= v <= 86400),
        "nonce_retention_seconds": Key(int, 1800, "seconds, at least 2 x time_window_seconds, up to 2592000",
                                       lambda v: 60 <= v <= 2592000),
        # the county view's de-identified export (docs/county.md): its HMAC key lives outside the database
        "deid_key_file": Key(str, "", "the county's de-identification (pseudonym) key file (empty = hub/deid.key "
                             "in the data directory)"),
        "deid_min_cell": Key(int, 5, "fewest people sharing a township, sex and age band in a de-identified "
                             "export, 2-1000", lambda v: 2 <= v <= 1000),
    },
    # the appliance (issue 8): first boot, backups, updates
    "appliance": {
        "boot_file": Key(str, "/boot/firmware/clinic-edge.toml", "the provisioning file on the boot partition"),
        "usb_backup_dir": Key(str, "/media/clinic-edge-backup", "where a USB backup drive is mounted"),
        "keep_backups": Key(int, 7, "nightly backups kept in each place, 1-365", lambda v: 1 <= v <= 365),
        "backup_key": Key(str, "/etc/clinic-edge/backup.pub", "the county backup key (base64 X25519, or an SM2 PEM "
                          "for the sm suite; `clinic-edge backup-key`) nightly backups are encrypted to"),
        "setup_code_hours": Key(int, 24, "hours the one-time setup code of the first admin stays valid, 1-720",
                                lambda v: 1 <= v <= 720),
    },
    "update": {
        "prefix": Key(str, "/opt/clinic-edge", "the folder holding one virtualenv per version and `current`"),
        "release_key": Key(str, "/etc/clinic-edge/release.pub", "the release public key file (base64 Ed25519)"),
        "python": Key(str, "python3", "the Python that makes new virtualenvs (name or path)"),
        "health_url": Key(str, "http://127.0.0.1:8080/healthz", "http://HOST:PORT/healthz", _url("http", "https")),
        "health_timeout": Key(int, 120, "seconds to wait for a healthy new version, 5-3600",
                              lambda v: 5 <= v <= 3600),
        "stop_command": Key(str, "systemctl stop clinic-edge-web clinic-edge-ingest clinic-edge-sync "
                            "clinic-edge-direct",
                            "a command that stops the node's services"),
        "restart_command": Key(str, "systemctl restart clinic-edge-broker clinic-edge-ingest clinic-edge-web "
                               "clinic-edge-sync clinic-edge-direct", "a command that (re)starts the node's services"),
    },
}
# Keys the county may set from its hub (downlink kind "config", record id = section): an explicit
# allowlist of tuning knobs - timeouts, budgets, schedules, UI options (docs/security.md). Never a
# key that names a key file, a path, a command, a URL the box trusts, a listener or a secret. They
# are written to COUNTY_FILE in the data directory and sit between the file and the environment:
# built-in < config file < county < environment.
COUNTY_KEYS: dict[str, frozenset[str]] = {
    "sync": frozenset({"interval_seconds", "nightly_hour", "nightly_jitter_minutes", "daily_budget_bytes",
                       "update_budget_bytes",
                       "batch_records", "batch_max_records", "chunk_bytes", "timeout_seconds",
                       "backoff_base_ms", "backoff_cap_ms", "attempts"}),
    "web": frozenset({"language", "idle_minutes", "measuring_minutes"}),
    "update": frozenset({"health_timeout"}),
    "appliance": frozenset({"keep_backups"}),
}
COUNTY_SECTIONS = tuple(COUNTY_KEYS)
COUNTY_FILE = "county-config.json"
# What the root updater trusts: never read from a file on the writable data partition (on the
# appliance /etc/clinic-edge/config.toml links into it), only from the built-in defaults (the
# read-only root: /etc/clinic-edge/release.pub, /opt/clinic-edge), a config file elsewhere, or the
# environment (set by units on the read-only root, or by tests and the demo).
ROOT_ONLY = {"update": ("prefix", "release_key", "python", "health_url", "stop_command", "restart_command"),
             "appliance": ("backup_key",)}
# Sections whose sub-tables belong to a plug-in (each driver validates its own keys).
OPEN_SECTIONS = ("drivers",)


class Config:
    def __init__(self, values: dict[str, dict[str, Any]], data_dir: Path, source: Path | None):
        self._values = values
        self.data_dir = data_dir
        self.source = source

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self._values[section]

    def get(self, section: str, default: Any = None) -> Any:
        return self._values.get(section, default)

    def driver(self, name: str) -> dict[str, Any] | None:
        """The `[drivers.NAME]` table, or None when that driver is not enabled."""
        table = self._values.get("drivers", {}).get(name)
        if table is None or table.get("enabled", True) in (False, "false", "0"):
            return None
        return table

    @property
    def store_path(self) -> Path:
        p = self["store"]["path"]
        return Path(p) if p else self.data_dir / "clinic-edge.db"

    def as_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self._values.items()}


def default_data_dir() -> Path:
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA])
    checkout = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return Path("var") if checkout.exists() else APPLIANCE_DATA_DIR


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    source = Path(path) if path else Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None
    if source is None and APPLIANCE_CONFIG.exists():
        source = APPLIANCE_CONFIG
    raw: dict[str, Any] = {}
    if source is not None:
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {source} is not valid TOML: {e}") from None
    data_dir = Path(env[ENV_DATA]) if env.get(ENV_DATA) else default_data_dir()
    if source is not None:
        _drop_root_only(raw, source, data_dir)
    for section, table in _county(data_dir).items():
        raw[section] = {**raw.get(section, {}), **table}
    return Config(_validate(raw, env), data_dir, source)


def _county(data_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads((data_dir / COUNTY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"config: {data_dir / COUNTY_FILE} (settings from the county) is unreadable: {e}; "
                          f"delete it and run `clinic-edge sync --once` to fetch it again") from None
    out = {}
    for section, table in doc.items():
        if section in COUNTY_KEYS and isinstance(table, dict):
            # a file written before the allowlist may hold more: only allowed keys are read
            out[section] = {k: v for k, v in table.items() if k in COUNTY_KEYS[section]}
    return out


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return True


def _drop_root_only(raw: dict[str, Any], source: Path, data_dir: Path) -> None:
    """Keys the root updater trusts are ignored (and logged) in a config file on the data partition."""
    if not _inside(source, data_dir):
        return
    for section, keys in ROOT_ONLY.items():
        for key in [k for k in keys if k in raw.get(section, {})]:
            value = raw[section].pop(key)
            log.warning("config: %s.%s = %r in %s ignored: that file is on the writable data partition; the "
                        "updater takes it only from the read-only root (the built-in default) or from %s%s_%s "
                        "in its unit", section, key, value, source, ENV_PREFIX, section.upper(), key.upper())


def check_county_section(section: str, table: Any) -> dict[str, Any]:
    """A section the county sent down, checked key by key like the config file; ConfigError if not."""
    if section not in COUNTY_SECTIONS:
        raise ConfigError(f"config from the county: section [{section}] may not be set centrally; "
                          f"allowed: {', '.join(COUNTY_SECTIONS)}")
    if not isinstance(table, dict):
        raise ConfigError(f"config from the county: [{section}] must be an object")
    allowed = COUNTY_KEYS[section]
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"config from the county: {section}.{key} may not be set centrally (only tuning "
                              f"keys may: {', '.join(sorted(allowed))}); the whole [{section}] item was refused")
        _check(section, key, SCHEMA[section][key], value)
    return dict(table)


def write_county(data_dir: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Replace the county's settings file in one rename (read at each service's next start)."""
    path = data_dir / COUNTY_FILE
    return durable.write_file(path, json.dumps(sections, ensure_ascii=False, indent=1, sort_keys=True))


def _validate(raw: dict[str, Any], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for section, table in raw.items():
        if section not in SCHEMA and section not in OPEN_SECTIONS:
            allowed = ", ".join(sorted([*SCHEMA, *OPEN_SECTIONS]))
            raise ConfigError(f"config: unknown section [{section}]; allowed: {allowed}")
        if not isinstance(table, dict):
            raise ConfigError(f"config: [{section}] must be a table")
    for section, keys in SCHEMA.items():
        given = dict(raw.get(section, {}))
        for key in given:
            if key not in keys:
                raise ConfigError(f"config: unknown key {section}.{key}; allowed: {', '.join(keys)}")
        for key, spec in keys.items():
            env_name = f"{ENV_PREFIX}{section}_{key}".upper()
            if env_name in env:
                given[key] = _from_text(section, key, spec, env[env_name])
        values[section] = {k: _check(section, k, spec, given.get(k, spec.default))
                           for k, spec in keys.items()}
    for section in OPEN_SECTIONS:
        values[section] = _open_section(section, raw.get(section, {}), env)
    _check_hub_times(values["hub"])
    return values


def _check_hub_times(hub: dict[str, Any]) -> None:
    """A request inside the window must not outlive its remembered nonce (or it could be replayed)."""
    if hub["nonce_retention_seconds"] < 2 * hub["time_window_seconds"]:
        raise ConfigError(f"config: hub.nonce_retention_seconds = {hub['nonce_retention_seconds']} must be at least "
                          f"twice hub.time_window_seconds = {hub['time_window_seconds']}")


def _open_section(section: str, tables: dict[str, Any], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    out = {name: dict(t) for name, t in tables.items() if isinstance(t, dict)}
    prefix = f"{ENV_PREFIX}{section}_".upper()
    for name, text in env.items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):].lower()
        plugin, _, key = rest.partition("_")
        if key:
            out.setdefault(plugin, {})[key] = text
    return out


def _from_text(section: str, key: str, spec: Key, text: str) -> Any:
    if spec.kind is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return text  # _check reports it
    if spec.kind is int:
        try:
            return int(text)
        except ValueError:
            return text
    return text


def _check(section: str, key: str, spec: Key, value: Any) -> Any:
    ok_type = isinstance(value, spec.kind) and not (spec.kind is int and isinstance(value, bool))
    if not ok_type or not spec.check(value):
        raise ConfigError(f"config: {section}.{key} = {value!r} is not allowed; expected {spec.allowed}")
    return value
