"""The connection loop: scan for the clinic's registered devices, run one session per device that
is due, remember per device when it was last seen, last gave a reading and last failed, and back
off (capped, jittered: edge.core.backoff.delay) from devices that fail.

One iteration is `round()`; `run(stop)` repeats it. Only devices registered with a Bluetooth
address are ever connected to; everything else nearby is ignored.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo

from edge.core import devices
from edge.core.reading import utc_iso

from edge.core import backoff
from . import state
from .adapter import Adapter
from .errors import BleLinkError, BondLost, NoRadio, StepTimeout
from .session import DeviceSession, SessionResult
from .settings import BleSettings

log = logging.getLogger(__name__)
BOND_HINT = " - re-pair it with this box (docs/ble.md, 'Pairing'); it will be retried"


@dataclass
class DeviceState:
    device_id: str
    address: str
    last_seen: datetime | None = None       # last advertisement heard
    last_reading: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    attempt: int = 0                        # consecutive failures
    next_try: float = 0.0                   # monotonic time before which we do not connect
    connected: bool = False
    sessions: int = 0
    last_result: dict | None = None

    def as_dict(self) -> dict:
        return {"address": self.address, "last_seen": utc_iso(self.last_seen),
                "last_reading": utc_iso(self.last_reading), "last_error": self.last_error,
                "last_error_at": utc_iso(self.last_error_at), "failures": self.attempt,
                "connected": self.connected, "sessions": self.sessions, "last_session": self.last_result}


class BleConnections:
    def __init__(self, store, adapter: Adapter, *, settings: BleSettings, clock, tz: tzinfo,
                 rand=random.random, monotonic=time.monotonic):
        self.store, self.adapter, self.s = store, adapter, settings
        self.clock, self.tz, self.rand, self.monotonic = clock, tz, rand, monotonic
        self.devices: dict[str, DeviceState] = {}
        self.throttle: dict = {}
        self.radio_error: str | None = None
        self.radio_ok: bool | None = None        # None until a scan has been tried
        self.heartbeat = monotonic()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        radio_attempt = 0
        while not self.stop.is_set():
            try:
                await self.round()
                radio_attempt = 0
                pause = self.s.pause_seconds
            except NoRadio as e:
                self.radio_error, self.radio_ok = str(e), False
                pause = backoff.delay(radio_attempt, base=self.s.backoff_base, cap=self.s.backoff_cap,
                                      rand=self.rand)
                radio_attempt += 1
                log.error("Bluetooth unavailable: %s; retrying in %.0fs", e, pause)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=pause)
            except TimeoutError:
                pass

    async def round(self) -> list[str]:
        """Scan once, then run a session with every registered device in range that is due."""
        self.heartbeat = self.monotonic()
        known = await asyncio.to_thread(state.registered, self.store)
        for address, row in known.items():
            st = self.devices.get(row["id"])
            if st is None or st.address != address:
                self.devices[row["id"]] = DeviceState(row["id"], address)
        for device_id in [d for d, st in self.devices.items() if st.address not in known]:
            del self.devices[device_id]          # removed or re-addressed
        if not known:
            return []
        try:
            async with asyncio.timeout(self.s.scan_seconds + self.s.step_timeout):
                heard = await self.adapter.scan(self.s.scan_seconds)
        except TimeoutError:
            raise NoRadio(f"a {self.s.scan_seconds:g}s scan did not finish (is bluetoothd wedged?)") from None
        self.radio_error, self.radio_ok = None, True
        self.heartbeat = self.monotonic()
        visited = []
        for adv in heard:
            row = known.get(adv.address.upper())
            if row is None:
                continue                          # not ours: never connect
            st = self.devices[row["id"]]
            st.last_seen = self.clock.now()
            if self.monotonic() < st.next_try or self.stop.is_set():
                continue
            await self.visit(row, st)
            visited.append(row["id"])
        return visited

    async def visit(self, device: dict, st: DeviceState) -> SessionResult | None:
        """One session with one device, under the overall session timeout; never raises link errors."""
        disconnected = asyncio.Event()
        link = None
        st.sessions += 1
        try:
            async with asyncio.timeout(self.s.session_timeout):
                try:
                    async with asyncio.timeout(self.s.connect_timeout):
                        link = await self.adapter.connect(st.address, timeout=self.s.connect_timeout,
                                                          on_disconnect=disconnected.set)
                except TimeoutError:
                    raise StepTimeout(f"connecting took longer than {self.s.connect_timeout:g}s") from None
                st.connected = True
                session = DeviceSession(link, device, store=self.store, settings=self.s, clock=self.clock,
                                        tz=self.tz, disconnected=disconnected, stop=self.stop,
                                        throttle=self.throttle)
                try:
                    result = await session.run()
                finally:
                    self._after(st, session.result)
        except TimeoutError:
            self._failed(st, StepTimeout(f"the session took longer than {self.s.session_timeout:g}s"))
            return None
        except BleLinkError as e:
            self._failed(st, e)
            return None
        except Exception as e:   # a store error or a bug: this device fails, the loop and the others go on
            log.exception("BLE session with %s failed", st.device_id)
            self._failed(st, BleLinkError(f"session failed: {type(e).__name__}: {e}"))
            return None
        finally:
            st.connected = False
            if link is not None:
                try:
                    async with asyncio.timeout(self.s.step_timeout):
                        await link.disconnect()
                except (TimeoutError, BleLinkError):
                    pass
        st.attempt, st.next_try = 0, self.monotonic() + self.s.pause_seconds
        await asyncio.to_thread(state.note_session, self.store, st.device_id, result.summary(),
                                now=self.clock.now())
        for problem in result.frame_errors[:3] + ([result.time_note] if result.time_note else []):
            await self._note_error(st, problem)
        return result

    def _after(self, st: DeviceState, result: SessionResult) -> None:
        st.last_result = result.summary()
        if result.last_reading_at:
            st.last_reading = result.last_reading_at

    def _failed(self, st: DeviceState, e: BleLinkError) -> None:
        reason = str(e) + (BOND_HINT if isinstance(e, BondLost) else "")
        wait = backoff.delay(st.attempt, base=self.s.backoff_base, cap=self.s.backoff_cap, rand=self.rand)
        st.attempt += 1
        st.next_try = self.monotonic() + wait
        log.warning("BLE device %s (%s): %s; next try in %.1fs", st.device_id, st.address, reason, wait)
        try:
            devices.record_error(self.store, st.device_id, reason, now=self.clock.now())
        except Exception as err:  # the note is for county IT; it never stops the loop
            log.error("could not note the error of %s: %s", st.device_id, err)
        st.last_error, st.last_error_at = reason, self.clock.now()

    async def _note_error(self, st: DeviceState, reason: str) -> None:
        st.last_error, st.last_error_at = reason, self.clock.now()
        await asyncio.to_thread(devices.record_error, self.store, st.device_id, reason, now=self.clock.now())

    def status(self) -> dict:
        return {"ble_radio": self.radio_ok, "ble_radio_error": self.radio_error,
                "ble_devices": {d: st.as_dict() for d, st in sorted(self.devices.items())}}
