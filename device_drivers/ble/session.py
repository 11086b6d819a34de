"""One connection to one device: set its clock, subscribe, collect, store, disconnect.

Every step has its own timeout (bleak has no overall one on Linux, docs/devices.md, real devices and BlueZ). Readings
are committed as they arrive, in groups (whatever is queued when one commit ends), through
`state.store_readings`, so a glucose meter's last sequence number only ever covers committed
records: a link dropped mid-download resumes at "sequence >= last + 1" and fetches nothing twice.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from edge.core.ingest import STATUS_REFUSED

from . import gatt, glucose, racp, state
from .adapter import Link, current_time, date_time
from .errors import BleFrameError, GattRefused, LinkLost, RacpError, StepTimeout
from .settings import BleSettings

log = logging.getLogger(__name__)
DISCONNECTED = object()
STOPPING = object()
LIVE = {"2a36", "2a1e"}     # intermediate cuff pressure / temperature


@dataclass
class SessionResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    refused: int = 0
    frames: int = 0
    frame_errors: list[str] = field(default_factory=list)
    time_written: bool | None = None        # None: the device offers no Current Time
    time_note: str | None = None
    racp: str | None = None                 # outcome of a stored-records download
    meter_reset: str | None = None          # the meter's sequence numbers restarted
    last_sequence: int | None = None
    live: dict = field(default_factory=dict)
    last_reading_at: datetime | None = None

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


@dataclass
class _Item:
    uuid: str
    data: bytes
    received: datetime


class DeviceSession:
    def __init__(self, link: Link, device: dict, *, store, settings: BleSettings, clock, tz: tzinfo,
                 disconnected: asyncio.Event, stop: asyncio.Event, throttle: dict):
        self.link, self.device, self.store, self.s = link, device, store, settings
        self.clock, self.tz = clock, tz
        self.disconnected, self.stop = disconnected, stop
        self.throttle = throttle               # (device, uuid) -> monotonic time of the last stored sample
        self.queue: asyncio.Queue = asyncio.Queue()
        self.result = SessionResult()
        self.pending: dict[int, list] = {}     # glucose: sequence -> [readings, context still due]
        self.chars: set[str] = set()
        self.seen: list[int] = []               # glucose sequence numbers received

    @property
    def device_id(self) -> str:
        return self.device["id"]

    # -- the session -------------------------------------------------------------------------
    async def run(self) -> SessionResult:
        self.chars = self.link.characteristics()
        await self._set_time()
        measurements = [u for u in gatt.MEASUREMENTS if u in self.chars]
        if not measurements:
            raise LinkLost("the device offers none of the health measurement characteristics")
        for uuid in measurements:
            await self._step(f"subscribe to {gatt.MEASUREMENTS[uuid].name}",
                             self.link.start_notify(uuid, self._receiver(uuid)))
        if glucose.GLUCOSE_MEASUREMENT in self.chars and gatt.RACP in self.chars:
            await self._download()
        else:
            await self._listen()
            await self._flush(everything=True)    # a record whose announced context never came
        return self.result

    async def _set_time(self) -> None:
        """Write the clinic's local time: Current Time (0x2A2B), or else a writable Date Time (0x2A08)
        some BP monitors and meters expose inside their health service (A&D UA-651BLE, Roche)."""
        target = next((u for u in (gatt.CURRENT_TIME, gatt.DATE_TIME) if u in self.chars), None)
        if target is None:
            return
        if not self.s.write_time:
            self.result.time_written = False
            return
        now = self.clock.now().astimezone(self.tz)
        value = current_time(now) if target == gatt.CURRENT_TIME else date_time(now)
        try:
            await self._step("write the time", self.link.write(target, value))
            self.result.time_written = True
        except (GattRefused, StepTimeout) as e:   # e.g. Omron models answer ATT 0x80: carry on
            self.result.time_written = False
            self.result.time_note = f"device did not take the time: {e}"

    async def _listen(self) -> None:
        """Indicating/notifying devices: take what comes until the device goes quiet or leaves.

        Live values (cuff pressure while inflating) keep the session open but are not a measurement.
        """
        measured = False
        while True:
            wait = self.s.idle_seconds if measured else self.s.measurement_wait
            item = await self._next(wait)
            if item is STOPPING:
                return
            if item is None:
                if measured:
                    return
                raise StepTimeout(f"connected, but no measurement arrived within {wait:g}s "
                                  "(take a measurement, or check the device sends to this box)")
            if item is DISCONNECTED:
                if measured:
                    return                  # many devices disconnect after sending their burst
                raise LinkLost("the device disconnected before sending a measurement")
            batch = [item, *self._drain()]
            measured = measured or any(isinstance(i, _Item) and i.uuid not in LIVE for i in batch)
            await self._handle(batch)

    async def _download(self) -> None:
        """Glucose stored records through the Record Access Control Point.

        Incremental: "sequence >= last stored + 1". When that finds no records, the newest record
        is asked for once: a newest sequence below the stored one means the meter's memory was
        reset or its counter wrapped, so progress is reset and every record is asked for (stable
        ids keep the ones already stored from being stored twice). Otherwise nothing new exists.
        """
        await self._step("subscribe to Record Access Control Point",
                         self.link.start_notify(gatt.RACP, self._receiver(gatt.RACP)))
        last = await asyncio.to_thread(state.last_sequence, self.store, self.device_id)
        request = racp.report_after(last)
        phase = "all" if request == racp.report_all() else "incremental"
        await self._step("write RACP request", self.link.write(gatt.RACP, request))
        aborted = False
        while True:
            if self.stop.is_set() and not aborted:   # the driver is stopping: end the procedure cleanly
                aborted = True
                await self._step("write RACP abort", self.link.write(gatt.RACP, racp.abort()))
            item = await self._next(self.s.step_timeout, watch_stop=not aborted)
            if item is STOPPING:
                continue
            if item is None:
                raise StepTimeout(f"the meter sent nothing for {self.s.step_timeout:g}s during the download")
            if item is DISCONNECTED:
                raise LinkLost(f"the meter disconnected during the download (records up to sequence "
                               f"{self.result.last_sequence} are stored)")
            batch = [item, *self._drain()]
            answers = [i for i in batch if isinstance(i, _Item) and i.uuid == gatt.RACP]
            await self._handle([i for i in batch if not (isinstance(i, _Item) and i.uuid == gatt.RACP)])
            for answer in answers:
                if not self._answered(answer, aborted):
                    continue
                await self._flush(everything=True)
                if aborted or phase == "all" or (phase == "incremental" and self.result.racp != "no records"):
                    return
                if phase == "incremental":              # nothing new: is the meter's counter behind ours?
                    phase, self.seen = "check", []
                    await self._step("write RACP request", self.link.write(gatt.RACP, racp.report_last()))
                elif self.seen and max(self.seen) < last:
                    self.result.meter_reset = f"newest record {max(self.seen)} < stored {last}"
                    await asyncio.to_thread(state.reset_sequence, self.store, self.device_id, now=self.clock.now())
                    phase = "all"
                    await self._step("write RACP request", self.link.write(gatt.RACP, racp.report_all()))
                else:
                    self.result.racp = "no records"     # the newest record is one we have
                    return

    def _answered(self, item: _Item, aborted: bool) -> bool:
        """True when this RACP indication ends the current request (result.racp says how)."""
        try:
            answer = racp.parse_response(item.data)
        except BleFrameError as e:
            raise RacpError(str(e)) from e
        if answer.count is not None:
            return False
        if answer.request_op == racp.ABORT:
            self.result.racp = "aborted" if answer.success else answer.error
            return True
        if answer.error:
            raise RacpError(answer.error)
        self.result.racp = "success" if answer.success else "no records"
        return not aborted

    # -- receiving ---------------------------------------------------------------------------
    def _receiver(self, uuid: str):
        def receive(data: bytes) -> None:
            self.queue.put_nowait(_Item(uuid, bytes(data), self.clock.now()))
        return receive

    async def _next(self, timeout: float, *, watch_stop: bool = True):
        """The next received item, DISCONNECTED, STOPPING (driver stopping), or None on timeout."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self.disconnected.is_set():
            return DISCONNECTED
        if watch_stop and self.stop.is_set():
            return STOPPING
        getter = asyncio.ensure_future(self.queue.get())
        gone = asyncio.ensure_future(self.disconnected.wait())
        waits = {getter, gone}
        stopping = asyncio.ensure_future(self.stop.wait()) if watch_stop else None
        if stopping:
            waits.add(stopping)
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in waits - {getter}:
                t.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        if gone in done:
            return DISCONNECTED
        if stopping is not None and stopping in done:
            return STOPPING
        return None

    def _drain(self) -> list:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    # -- parsing and storing -----------------------------------------------------------------
    async def _handle(self, items: list) -> None:
        ready = []
        for item in items:
            if not isinstance(item, _Item):   # DISCONNECTED: seen again by the caller's next wait
                self.queue.put_nowait(item)
                continue
            self.result.frames += 1
            characteristic = gatt.MEASUREMENTS.get(item.uuid)
            if characteristic is None:
                continue
            try:
                readings = characteristic.parse(item.data, self.device_id, tz=self.tz, received=item.received)
            except BleFrameError as e:
                self.result.frame_errors.append(str(e))
                log.warning("device %s sent a bad %s: %s", self.device_id, characteristic.name, e)
                if item.uuid == glucose.GLUCOSE_MEASUREMENT:   # kept rejected: the download moves past it
                    self._glucose(item, glucose.unreadable(item.data, self.device_id, e), context=False)
                continue
            ready += self._route(item, characteristic, readings)
        if ready:
            await self._commit(ready, None)
        await self._flush(everything=False)

    def _route(self, item: _Item, characteristic: gatt.Characteristic, readings: list) -> list:
        live = [r for r in readings if r.meta.get("intermediate")]
        for r in live:
            self.result.live[r.code] = {"value": r.value, "unit": r.unit}
        readings = [r for r in readings if not r.meta.get("intermediate")]
        if item.uuid == glucose.GLUCOSE_MEASUREMENT:
            return self._glucose(item, readings)
        if item.uuid == glucose.GLUCOSE_CONTEXT:
            return self._context(item, readings)
        if characteristic.continuous and readings:
            key, now = (self.device_id, item.uuid), time.monotonic()
            if now - self.throttle.get(key, -1e12) < self.s.continuous_every:
                return []
            self.throttle[key] = now
        return readings

    def _glucose(self, item: _Item, readings: list, *, context: bool = True) -> list:
        if len(item.data) < 3:              # not even a sequence number: nothing to record
            return []
        seq = int.from_bytes(item.data[1:3], "little")
        self.seen.append(seq)
        follows = context and bool(item.data[0] & 0x10) and glucose.GLUCOSE_CONTEXT in self.chars
        self.pending[seq] = [readings, follows]
        return []

    def _context(self, item: _Item, readings: list) -> list:
        ctx = glucose.parse_context_fields(item.data)
        entry = self.pending.get(ctx.sequence)
        if entry is None:
            return []                       # context of a record not in this session: nothing to attach
        measured, _ = entry
        for r in measured:
            r.meta["context"] = ctx.fields
        for r in readings:                  # HbA1c: at the time of its measurement
            r.device_time = measured[0].device_time if measured else None
        entry[0], entry[1] = measured + readings, False
        return []

    async def _flush(self, *, everything: bool) -> None:
        done = []
        for seq in sorted(self.pending):     # a prefix only: the stored sequence never skips a record
            if self.pending[seq][1] and not everything:
                break
            done.append(seq)
        if not done:
            return
        readings = [r for seq in done for r in self.pending.pop(seq)[0]]
        await self._commit(readings, max(done))

    async def _commit(self, readings: list, sequence: int | None) -> None:
        now = self.clock.now()
        outcomes = await asyncio.to_thread(state.store_readings, self.store, readings, device_id=self.device_id,
                                           sequence=sequence, clock=self.clock, now=now)
        for o in outcomes:
            if o.duplicate:
                self.result.duplicates += 1
            elif o.status == STATUS_REFUSED:
                self.result.refused += 1
            else:
                self.result.stored += 1
                self.result.rejected += o.status == "rejected"
        if readings:
            self.result.last_reading_at = now
        if sequence is not None:
            self.result.last_sequence = max(sequence, self.result.last_sequence or 0)

    async def _step(self, what: str, awaitable, timeout: float | None = None):
        timeout = timeout or self.s.step_timeout
        try:
            async with asyncio.timeout(timeout):
                return await awaitable
        except TimeoutError:
            raise StepTimeout(f"{what} took longer than {timeout:g}s") from None
