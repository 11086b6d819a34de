"""The check day on a real store: registration once, each station's device measuring only for the
resident the station called, the station list, and the form filled from every station."""
from datetime import timedelta

import pytest

from edge.core import devices
from edge.core.errors import NotFound, ValidationError
from edge.core.healthcheck import checkday, prefill
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.store import Store

from checkday_support import CHECK_DAY as DAY, NOW, add_resident
from conftest import SetClock


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    for rid, idn, birth in (("R1", "11010519491231002X", "1949-12-31"), ("R2", "440524188001010014", "1950-01-01")):
        add_resident(s, rid, name="王" + rid, birth=birth, id_number=idn)
    for dev, kind in (("bp-st", "bp"), ("scale-st", "scale")):
        devices.add(s, dev, kind=kind, transport="mqtt", now=NOW)
    checkday.set_device(s, "bp", "bp-st", now=NOW)
    checkday.set_device(s, "body", "scale-st", now=NOW)
    yield s
    s.close()


def send(store, device, pairs, at):
    ingest(store, [Reading(device, c, v, u, "mqtt", device_time=at) for c, v, u in pairs], clock=SetClock(at))


def test_two_stations_measure_two_residents_at_once_each_value_on_its_own_form(store):
    assert checkday.register(store, DAY, "11010519491231002X", now=NOW, actor="reg")["seq"] == 1
    assert checkday.register(store, DAY, "R2", now=NOW, actor="reg")["seq"] == 2
    assert checkday.register(store, DAY, "R2", now=NOW, actor="reg")["seq"] == 2          # once
    t = NOW + timedelta(minutes=1)
    checkday.call(store, DAY, "bp", "R1", now=t, actor="nurse", arm="left")
    checkday.call(store, DAY, "body", "R2", now=t, actor="nurse")
    send(store, "bp-st", [("8480-6", 150, "mm[Hg]"), ("8462-4", 92, "mm[Hg]")], t)
    send(store, "scale-st", [("29463-7", 70, "kg")], t)
    checkday.call(store, DAY, "bp", "R1", now=t + timedelta(minutes=2), actor="nurse", arm="right")
    send(store, "bp-st", [("8480-6", 144, "mm[Hg]"), ("8462-4", 90, "mm[Hg]")], t + timedelta(minutes=2))
    checkday.done(store, DAY, "bp", "R1", now=t + timedelta(minutes=3), actor="nurse")
    checkday.call(store, DAY, "bp", "R2", now=t + timedelta(minutes=4), actor="nurse", arm="left")
    checkday.call(store, DAY, "body", "R1", now=t + timedelta(minutes=4), actor="nurse")
    send(store, "bp-st", [("8480-6", 120, "mm[Hg]"), ("8462-4", 75, "mm[Hg]")], t + timedelta(minutes=4))
    send(store, "scale-st", [("29463-7", 55.5, "kg")], t + timedelta(minutes=4))
    one = prefill.build(store, resident_id="R1", today=DAY, tz="Asia/Shanghai").values
    two = prefill.build(store, resident_id="R2", today=DAY, tz="Asia/Shanghai").values
    assert (one["bp_left_sbp"], one["bp_right_sbp"], one["weight"]) == (150, 144, 55.5)
    assert (two["bp_left_sbp"], two.get("bp_right_sbp"), two["weight"]) == (120, None, 70.0)
    b = checkday.board(store, DAY, "bp")
    assert ([r.resident_id for r in b["done"]], [r.resident_id for r in b["called"]], b["waiting"]) == (
        ["R1"], ["R2"], [])
    assert [r.resident_id for r in checkday.board(store, DAY, "urine")["waiting"]] == ["R1", "R2"]


def test_after_done_the_device_measures_nobody(store):
    checkday.register(store, DAY, "R1", now=NOW, actor="reg")
    checkday.call(store, DAY, "body", "R1", now=NOW, actor="n")
    checkday.done(store, DAY, "body", "R1", now=NOW + timedelta(minutes=1), actor="n")
    send(store, "scale-st", [("29463-7", 70, "kg")], NOW + timedelta(minutes=2))
    assert store.one("SELECT resident_id FROM readings") == {"resident_id": None}     # the inbox


def test_station_rules(store):
    with pytest.raises(ValidationError):
        checkday.call(store, DAY, "bp", "R1", now=NOW, actor="n", arm="left")          # not registered
    checkday.register(store, DAY, "R1", now=NOW, actor="reg")
    with pytest.raises(ValidationError):
        checkday.call(store, DAY, "bp", "R1", now=NOW, actor="n")                      # no arm
    with pytest.raises(ValidationError):
        checkday.call(store, DAY, "urine", "R1", now=NOW, actor="n")                   # no device yet
    with pytest.raises(ValidationError):
        checkday.register(store, DAY, "110105194912310021", now=NOW, actor="reg")      # bad check character
    with pytest.raises(NotFound):
        checkday.register(store, DAY, "120103198806018241", now=NOW, actor="reg")      # nobody has it
