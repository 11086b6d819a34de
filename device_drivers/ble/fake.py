"""A fake Bluetooth stack implementing the adapter interface by replaying recorded sessions.

A peripheral is described by what it advertises, what it offers, and one script per connection
(a list of events, JSON-friendly so sessions can be kept as files):

    {"notify": "2a35", "data": "1e8a00..."}          sent once that characteristic is subscribed
    {"expect_write": "2a52", "data": "0101",          the next write must be exactly this; then
     "reply": [["2a18", "..."], ["2a52", "06000101"], ["drop"]]}   these are sent in order
    {"drop": true}                                    the device disconnects
    {"refuse_write": "2a2b", "att": 128}              writes to that characteristic fail (ATT error)
    {"bond_lost": "2a18"}                             enabling notifications there fails: no bond
    {"connect": "not_found" | "bond_lost" | "hang"}   the connection attempt itself fails

Anything the script does not foresee (a write that differs from the recording) is a test
failure recorded in `adapter.mismatches`, and the write raises, so the fake cannot quietly
accept what a real device would not. Writes are kept in `adapter.writes` for assertions.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .adapter import Advertisement, Notify
from .errors import BondLost, DeviceNotFound, GattRefused, LinkLost, NoRadio


@dataclass
class FakePeripheral:
    address: str
    services: list[str]
    characteristics: list[str]
    sessions: list[list[dict]] = field(default_factory=list)
    name: str | None = None
    rssi: int = -60
    advertising: bool = True


class FakeAdapter:
    def __init__(self, peripherals: list[FakePeripheral] = (), *, radio: bool = True):
        self.peripherals = {p.address.upper(): p for p in peripherals}
        self.radio = radio
        self.writes: list[tuple[str, str, str]] = []      # (address, uuid, hex)
        self.mismatches: list[str] = []
        self.connects: list[str] = []
        self.links: list[FakeLink] = []

    @classmethod
    def from_json(cls, path: str | Path) -> "FakeAdapter":
        data = json.loads(Path(path).read_text())
        return cls([FakePeripheral(**p) for p in data["peripherals"]])

    async def scan(self, seconds: float) -> list[Advertisement]:
        if not self.radio:
            raise NoRadio("no Bluetooth adapter found (fake)")
        await asyncio.sleep(min(seconds, 0.01))
        return [Advertisement(p.address, p.name, p.rssi, tuple(p.services))
                for p in self.peripherals.values() if p.advertising]

    async def connect(self, address: str, *, timeout: float, on_disconnect: Callable[[], None]):
        p = self.peripherals.get(address.upper())
        self.connects.append(address)
        if p is None or not p.advertising or not p.sessions:
            raise DeviceNotFound(f"{address} is not in range")
        script = list(p.sessions.pop(0))
        first = script[0] if script else {}
        if "connect" in first:
            if first["connect"] == "hang":
                await asyncio.sleep(timeout + 3600)
            if first["connect"] == "bond_lost":
                raise BondLost(f"{address} refused to connect: authentication failed (bond lost)")
            raise DeviceNotFound(f"{address} is not in range")
        link = FakeLink(self, p, script, on_disconnect)
        self.links.append(link)
        return link


class FakeLink:
    def __init__(self, adapter: FakeAdapter, p: FakePeripheral, script: list[dict], on_disconnect):
        self.adapter, self.peripheral, self.address = adapter, p, p.address
        self.script = script
        self.on_disconnect = on_disconnect
        self.callbacks: dict[str, Notify] = {}
        self.connected = True
        self.refused = {e["refuse_write"]: e.get("att", 0x80) for e in script if "refuse_write" in e}
        self.no_bond = {e["bond_lost"] for e in script if "bond_lost" in e}
        self.script = [e for e in script if "refuse_write" not in e and "bond_lost" not in e]

    def characteristics(self) -> set[str]:
        return set(self.peripheral.characteristics)

    async def start_notify(self, uuid: str, callback: Notify) -> None:
        self._alive()
        if uuid in self.no_bond:
            raise BondLost(f"{self.address}: enabling {uuid} failed: insufficient authentication (bond lost)")
        if uuid not in self.peripheral.characteristics:
            raise LinkLost(f"{self.address} has no characteristic {uuid}")
        self.callbacks[uuid] = callback
        self._pump()

    async def write(self, uuid: str, data: bytes, *, response: bool = True) -> None:
        self._alive()
        self.adapter.writes.append((self.address, uuid, bytes(data).hex()))
        if uuid in self.refused:
            raise GattRefused(f"{self.address} refused the write to {uuid}: ATT error {self.refused[uuid]:#04x}")
        event = self.script[0] if self.script else {}
        if event.get("expect_write") == uuid:
            if bytes.fromhex(event["data"]) != bytes(data):
                self.adapter.mismatches.append(f"{uuid}: expected {event['data']}, got {bytes(data).hex()}")
                raise GattRefused(f"unexpected write to {uuid}: {bytes(data).hex()} (recording has {event['data']})")
            self.script.pop(0)
            self._send(event.get("reply", []))
            self._pump()
        elif uuid not in ("2a2b", "2a08"):   # setting the time needs no recording
            self.adapter.mismatches.append(f"{uuid}: unexpected write {bytes(data).hex()}")
            raise GattRefused(f"unexpected write to {uuid}")

    async def disconnect(self) -> None:
        self._drop(notify=False)

    def _alive(self) -> None:
        if not self.connected:
            raise LinkLost(f"{self.address} is not connected")

    def _pump(self) -> None:
        """Send the recording's notifications as far as the script can go without a write."""
        while self.script and self.connected:
            event = self.script[0]
            if "notify" in event and event["notify"] in self.callbacks:
                self.script.pop(0)
                self._send([[event["notify"], event["data"]]])
            elif event.get("drop"):
                self.script.pop(0)
                self._send([["drop"]])
            else:
                return

    def _send(self, replies: list) -> None:
        loop = asyncio.get_running_loop()
        for reply in replies:        # call_soon keeps their order and delivers them like a radio would
            if reply[0] == "drop":
                loop.call_soon(self._drop)
            else:
                loop.call_soon(self._deliver, reply[0], bytes.fromhex(reply[1]))

    def _deliver(self, uuid: str, data: bytes) -> None:
        if self.connected and uuid in self.callbacks:
            self.callbacks[uuid](data)

    def _drop(self, notify: bool = True) -> None:
        if self.connected:
            self.connected = False
            if notify:
                self.on_disconnect()
