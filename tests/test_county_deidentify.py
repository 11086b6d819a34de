"""The de-identified export (issue 19 item 4) from a real `hub serve`: the file's bytes hold no
name, ID number, phone, address, record number, birth date, resident id, doctor or free text; the
ID and record numbers are HMAC pseudonyms under the key file (not in the database); every
(township, sex, age band) in the file is shared by at least 5 people; smaller groups are
generalised, and what stays too small is left out and counted."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import stat
import zipfile
from collections import defaultdict
from datetime import date

import pytest

from sync.hub import county, deidentify
from county_support import T0, add_nodes, followup, put, resident
from sync_fixtures import Hub

PEOPLE = []      # (node, resident id, payload)


def person(node, i, sex, birth, town_code):
    rid = f"res-{node}-{i}"
    p = resident(rid, name=f"测试{node[-1]}{i}号", id_number=f"{town_code}{birth:%Y%m%d}{i:03d}X", sex=sex, birth=birth,
                 phone=f"1390000{i:04d}", address=f"{node}村{i}组{i}号", record_no=f"{town_code}000000{i:05d}")
    return node, rid, p


def seed(store):
    add_nodes(store, "node-a", "node-c")
    county.set_place(store, "node-a", "城关镇", None, actor="it", now=T0)
    county.set_place(store, "node-c", "河口乡", None, actor="it", now=T0)
    people = ([person("node-a", i, "1", date(1964, 3, 1), "330102") for i in range(6)]         # 6 men 62
              + [person("node-a", 10 + i, "2", date(1974, 5, 1), "330102") for i in range(3)]  # 3 women 52
              + [person("node-a", 20 + i, "2", date(1954, 5, 1), "330102") for i in range(2)]  # 2 women 72
              + [person("node-c", 30, "1", date(1985, 1, 2), "330103")])                      # 1 man 41
    for node, rid, p in people:
        put(store, node, "resident", rid, p)
        for k, visit in enumerate((date(2026, 7, 3), date(2026, 9, 10))):
            put(store, node, "followup", f"f-{rid}-{k}", followup(f"f-{rid}-{k}", rid, visit, 150 - k, 90))
    put(store, "node-a", "followup_void", "f-res-node-a-0-1", {"id": "f-res-node-a-0-1", "reason": "错录"})
    return people


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", deid_min_cell="5").start()
    yield h
    h.stop()


def download(b, path):
    with b.opener.open(b.url + path, timeout=10) as r:
        return r.status, r.read()


def forbidden_strings(people):
    for _node, rid, p in people:
        yield from (p["name"], p["id_number"], p["phone"], p["address"], p["health_record_no"], p["birth_date"],
                    p["birth_date"].replace("-", ""), rid)
    yield from ("doctor-wang", "村东头", "node-a", "node-c")


def test_the_export_has_no_identifier_and_no_cell_below_the_threshold(hub, tmp_path):
    people = seed(hub.store())
    b = hub.browser("chen", "county")
    status, data = download(b, "/county/deidentified.csv")
    assert status == 200
    status, xlsx = download(b, "/county/deidentified.xlsx")
    xml = b"".join(zipfile.ZipFile(io.BytesIO(xlsx)).read(n) for n in zipfile.ZipFile(io.BytesIO(xlsx)).namelist())
    for text in forbidden_strings(people):
        assert text.encode() not in data, text
        assert text.encode() not in xml, text
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig").split("\n", 1)[1]),
                               fieldnames=deidentify.COLUMNS))[1:]
    assert "最小单元 min cell 5; 泛化 generalised 10; 删除 left out 2" in data.decode("utf-8-sig").splitlines()[0]
    groups = defaultdict(set)
    for r in rows:
        groups[(r["township"], r["sex"], r["age_band"])].add(r["id_pseudonym"])
    assert {k: len(v) for k, v in groups.items()} == {("城关镇", "1", "60-64"): 6, ("城关镇", "*", "*"): 5}
    assert len(rows) == 11 + 10                          # the voided follow-up and the lone man left out
    # keyed pseudonyms: HMAC-SHA256 under the key file, which is not in the database
    key_file = hub.data / "hub" / "deid.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = bytes.fromhex(key_file.read_text().strip())
    first = people[0][2]
    mine = hmac.new(key, b"id_number\0" + first["id_number"].encode(), hashlib.sha256).hexdigest()[:32]
    record = hmac.new(key, b"health_record_no\0" + first["health_record_no"].encode(), hashlib.sha256).hexdigest()[:32]
    assert [(r["record_pseudonym"], r["visit_month"], r["sbp"]) for r in rows if r["id_pseudonym"] == mine] == \
        [(record, "2026-07", "150")]
    assert key_file.read_text().strip().encode() not in (tmp_path / "hub.db").read_bytes()


def test_only_county_staff_and_admins_get_the_export(hub):
    seed(hub.store())
    assert download(hub.browser("it", "admin"), "/county/deidentified.csv")[0] == 200
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as e:
        download(hub.browser("li", "viewer"), "/county/deidentified.csv")
    assert e.value.code == 403


def test_ages_fall_in_five_year_bands_with_85_and_over_together():
    assert [deidentify.age_band("1961-09-11", d) for d in ("2026-09-10", "2026-09-11")] == ["60-64", "65-69"]
    assert deidentify.age_band("1930-01-01", "2026-01-01") == "85+"
    assert deidentify.age_band("", "2026-01-01") == "*"


def test_a_damaged_key_file_is_refused_not_replaced(tmp_path):
    path = tmp_path / "deid.key"
    path.write_text("not a key\n")
    with pytest.raises(deidentify.DeidError, match="is not a de-identification key"):
        deidentify.load_or_create_key(path)
    assert path.read_text() == "not a key\n"


def test_the_command_line_writes_the_same_export_with_the_same_pseudonyms(hub):
    from conftest import clinic_edge

    people = seed(hub.store())
    out = hub.data / "research.csv"
    done = clinic_edge(hub.env, "hub", "county", "deidentified", "--out", str(out))
    assert done.stdout == f"21 follow-ups written to {out} (min cell 5; 10 generalised, 2 left out)\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    _status, served = download(hub.browser("chen", "county"), "/county/deidentified.csv")
    assert out.read_bytes() == served
    for text in forbidden_strings(people):
        assert text.encode() not in served


def test_one_person_registered_at_two_clinics_counts_once_in_a_cell(tmp_path):
    from sync.hub.storage import HubStore

    store = HubStore(f"sqlite:///{tmp_path / 'hub.db'}")
    add_nodes(store, "node-a", "node-b")
    for node in ("node-a", "node-b"):
        county.set_place(store, node, "城关镇", None, actor="it", now=T0)
        _n, rid, p = person(node, 1, "1", date(1964, 3, 1), "330102")
        p["id_number"] = "330102196403010011"                       # the same resident, moved house
        put(store, node, "resident", rid, p)
        put(store, node, "followup", f"f-{node}", followup(f"f-{node}", rid, date(2026, 9, 1), 140, 85))
    out = deidentify.build(store, b"k" * 32, min_cell=2)
    assert (len(out.rows), out.left_out) == (0, 2)
    store.engine.dispose()
