"""MQTT ingest: subscribe to every device's readings topic, commit, then acknowledge.

paho-mqtt 2.x, MQTT v5, with `manual_ack=True` and a persistent session (clean_start=False): a
message is PUBACKed only after the transaction holding its readings committed, so a SIGKILL at any
moment loses nothing the broker handed over; the broker redelivers and the stable reading id
drops the duplicate. What the broker itself loses (it keeps its queue in RAM) is in its journal:
ingest replays the records it has not committed at start and after every (re)subscription
(journal.py, docs/mqtt.md). Messages are committed in groups while they arrive faster than
`commit_wait_ms` apart (grouping.py), which keeps fsyncs, and SD-card wear, per reading low; a
message arriving on its own is committed at once. A batch of journaled messages is committed with
synchronous=NORMAL (no fsync: a power cut may undo it while the journal still holds it) and the
journal's watermark moves only after `Store.make_durable()` (docs/mqtt.md, "What a reading writes").
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge.core import devices
from edge.core.ingest import STATUS_REFUSED, Group, commit_groups
from edge.core.node import Node
from edge.core.store import Store

from edge.core import backoff
from ..errors import FrameError
from . import senml
from .broker import ERRORS_TOPIC, broker_address, ingest_credentials
from . import journal
from .delivery import Deliveries, by_delivery
from .grouping import Gatherer

log = logging.getLogger(__name__)
SUBSCRIPTION = "devices/+/readings"
# the broker is on the same box (or LAN): after its restart, be back within a few seconds
RECONNECT_CAP_S = 5.0
CONNACK_TIMEOUT_S = 10.0
REASON_MAX = 300         # characters of an unexpected error's text sent back to the device
SESSION_EXPIRY_S = 0xFFFFFFFF   # MQTT v5: the broker keeps ingest's session while it is away
WATERMARK_EVERY = 1000   # records committed between two notes of the journal's watermark
GAP_REPLAY_S = 10.0      # a record that never arrived live is read from the journal after this
REPLAYED = -1            # the generation of a record read from the journal: nothing to acknowledge


@dataclass
class Incoming:
    generation: int     # which connection delivered it: a PUBACK only makes sense on that one
    mid: int
    qos: int
    dup: bool
    topic: str
    payload: bytes
    journal: tuple[int, int] | None = None   # (epoch, seq) of the broker's journal record
    arrived: float = 0.0                      # time.monotonic() when the network thread queued it


class MqttDriver:
    name = "mqtt"

    def __init__(self, node: Node, *, client_factory=None, store_factory=None):
        self.node = node
        cfg = node.config["mqtt"]
        self.host, self.port = broker_address(cfg["url"])
        self.max_payload = cfg["max_payload"]
        self.batch_max = cfg["batch_max"]
        self.commit_wait_s = cfg["commit_wait_ms"] / 1000
        self.client_id = cfg["client_id"]
        self._client_factory = client_factory or self._make_client
        self._store_factory = store_factory or (lambda: Store(node.config.store_path))
        # bounded: when the writer falls behind, the network thread waits in on_message and stops
        # reading the socket, so a flood (QoS 0 too) is held back by TCP instead of filling memory
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=2 * self.batch_max)
        self.gatherer = Gatherer(self._queue, wait_s=self.commit_wait_s, batch_max=self.batch_max)
        self.crashed: str | None = None
        self.deliveries: Deliveries | None = None
        self._stop = threading.Event()
        self._generation = 0
        self._connected = threading.Event()
        self._replay_wanted = threading.Event()
        self._replay_wanted.set()           # at start, before the broker is even reachable
        self._subscriptions = 0             # SUBACKs seen
        self._replayed_for = 0              # ... of which the journal was replayed after the latest
        self.journal_dir = journal.journal_dir(node.data_dir)
        self.progress: journal.Progress | None = None
        self._noted = 0                     # the watermark last written
        self._synchronous_mode = None       # (store, mode) the writer's connection commits with
        self._last_replay = 0.0
        self.stats: Counter = Counter()
        self._threads: list[threading.Thread] = []
        self.client: mqtt.Client | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.client = self._client_factory()
        self._threads = [threading.Thread(target=self._guarded, args=(self._network_loop,), name="mqtt-net",
                                          daemon=True),
                         threading.Thread(target=self._guarded, args=(self._writer_loop,), name="mqtt-writer",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        for t in self._threads:
            t.join(timeout)
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:  # already gone
                pass

    def healthy(self) -> bool:
        """Connected to the broker and both threads alive: a thread that died (a bug) makes the
        service unhealthy, so the watchdog restarts it instead of it looking alive while storing nothing."""
        return (self.crashed is None and self._connected.is_set() and bool(self._threads)
                and all(t.is_alive() for t in self._threads))   # crashed: set before the thread ends

    def status(self) -> dict:
        crashed = {"mqtt_crashed": self.crashed} if self.crashed else {}
        return {"mqtt_connected": self._connected.is_set(), "mqtt_journal_caught_up": self.caught_up(), **crashed,
                **{f"mqtt_{k}": v for k, v in self.stats.items()}}

    def caught_up(self) -> bool:
        """Subscribed, and the journal replayed since: from now on every message arrives live."""
        return self._connected.is_set() and 0 < self._subscriptions == self._replayed_for

    def _guarded(self, loop) -> None:
        try:
            loop()
        except BaseException as e:   # a bug: say so in the status; healthy() is now false
            self.crashed = f"{threading.current_thread().name}: {type(e).__name__}: {e}"
            log.exception("MQTT %s stopped", threading.current_thread().name)

    # -- network -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True)
        user, password = ingest_credentials(self.node)
        c.username_pw_set(user, password)
        c.max_inflight_messages_set(200)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _network_loop(self) -> None:
        attempt = 0
        socket_open = False        # a TCP connection exists
        awaiting_connack = False   # ... and the broker has not answered CONNECT yet
        while not self._stop.is_set():
            if not socket_open:
                try:
                    self.client.connect(self.host, self.port, keepalive=30, clean_start=False,
                                        properties=_session_properties())
                    socket_open, awaiting_connack, opened_at = True, True, time.monotonic()
                except OSError as e:
                    wait = backoff.delay(attempt, base=0.2, cap=RECONNECT_CAP_S)
                    log.warning("broker %s:%d unreachable (%s); retrying in %.1fs", self.host, self.port, e, wait)
                    attempt += 1
                    self._stop.wait(wait)
                    continue
            rc = self.client.loop(timeout=0.2)
            if self._connected.is_set():
                attempt, awaiting_connack = 0, False
            elif awaiting_connack and time.monotonic() - opened_at > CONNACK_TIMEOUT_S:
                rc = mqtt.MQTT_ERR_CONN_LOST  # the broker accepted TCP but never answered CONNECT
                log.warning("no CONNACK from the broker in %.0fs; reconnecting", CONNACK_TIMEOUT_S)
            if rc != mqtt.MQTT_ERR_SUCCESS and not self._stop.is_set():
                self._connected.clear()
                socket_open = False
                wait = backoff.delay(attempt, base=0.2, cap=RECONNECT_CAP_S)
                attempt += 1
                self._stop.wait(wait)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s (check [mqtt] username/password)", reason_code)
            return
        self._generation += 1
        client.subscribe(SUBSCRIPTION, qos=1)
        self._connected.set()
        log.info("connected to broker %s:%d (session present: %s)", self.host, self.port, flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """Subscribed: whatever the broker journals from now on reaches us live; what it journaled
        before (and may have lost with its RAM) is read from the journal now."""
        self._subscriptions += 1
        self._replay_wanted.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("lost the broker: %s", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        item = Incoming(self._generation, msg.mid, msg.qos, bool(msg.dup), msg.topic, msg.payload,
                        _journal_identity(msg), time.monotonic())
        while not self._stop.is_set():   # on stop: not acknowledged, so the broker keeps it
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                self.stats["writer_behind"] += 1

    # -- committing --------------------------------------------------------------------------
    def _writer_loop(self) -> None:
        store = self._store_factory()
        try:
            self.deliveries = Deliveries(store)
            self.progress = journal.Progress(journal.watermark(self.journal_dir))
            self._noted = self.progress.done
            while not (self._stop.is_set() and self._queue.empty()):
                if self._replay_due():
                    self._replay(store)
                batch = self.gatherer.take(stopping=self._stop.is_set)
                if batch:
                    self._commit(store, batch)
            if self.progress.done > self._noted:   # a clean stop: the next start replays nothing
                self._write_watermark(store)
        finally:
            store.close()

    def _commit(self, store: Store, batch: list[Incoming]) -> None:
        """Read every message, commit the readable ones together, refuse the rest with a reason,
        then acknowledge the whole batch (a refused message is answered, never redelivered)."""
        now = self.node.clock.now()
        accepted, refused = [], []
        for item in batch:
            readings, reason = self._read(item, now)
            if reason is not None:
                refused.append((item, reason))
                continue
            if item.journal is not None:   # the broker's journal record: the same live or replayed
                delivery, note = "j" + journal.identity(*item.journal), None
            else:
                delivery, note = self.deliveries.identify(mid=item.mid, qos=item.qos, dup=item.dup,
                                                          topic=item.topic, payload=item.payload, now=now)
            accepted.append((item, Group(by_delivery(readings, delivery), note)))
        self._synchronous(store, all(item.journal is not None for item in batch))
        results = self._commit_groups(store, [g for _, g in accepted])
        if results is None:
            return  # stopping: unacknowledged, the broker redelivers after restart
        for (item, _), result in zip(accepted, results):
            reason = self._count(result)
            if reason is not None:
                refused.append((item, reason))
        for item, reason in refused:
            self._refuse(store, item, reason, now)
        for item in batch:
            self._acknowledge(item)
        self.stats["messages"] += len(batch)
        self.stats["commits"] += 1
        self._note_committed(store, batch)

    def _read(self, item: Incoming, now) -> tuple[list, str | None]:
        """(readings, None), or ([], why the message is refused). Catches everything: whatever a
        parser raises is this message's fault and must not stop the others."""
        try:
            return senml.parse(_device_of(item.topic), item.payload, now=now, max_bytes=self.max_payload), None
        except FrameError as e:
            return [], str(e)
        except Exception as e:  # a parser bug: refuse this message, keep running
            self.stats["parser_faults"] += 1
            log.exception("the SenML parser failed on a message on %s", item.topic)
            return [], f"the message could not be read ({type(e).__name__}: {e})"[:REASON_MAX]

    def _commit_groups(self, store: Store, groups: list[Group]) -> list | None:
        """commit_groups, retried with backoff while the store itself fails; None when stopped."""
        attempt = 0
        while True:
            try:
                return commit_groups(store, groups, clock=self.node.clock)
            except Exception as e:  # disk full, locked... keep the messages unacknowledged and retry
                wait = backoff.delay(attempt, base=0.2, cap=10)
                log.error("could not store %d messages (%s); retrying in %.1fs", len(groups), e, wait)
                self.stats["store_failures"] += 1
                attempt += 1
                if self._stop.wait(wait):
                    return None

    def _count(self, result) -> str | None:
        """Count one message's outcomes; returns why it was refused, if it was."""
        if isinstance(result, str):
            self.stats["commit_refused"] += 1
            return result
        refused = [o.reason for o in result if o.status == STATUS_REFUSED]
        self.stats["stored"] += sum(not o.duplicate and o.status != STATUS_REFUSED for o in result)
        self.stats["duplicates"] += sum(o.duplicate for o in result)
        self.stats["rejected_values"] += sum(o.status == "rejected" and not o.duplicate for o in result)
        return refused[0] if refused else None

    def _refuse(self, store: Store, item: Incoming, reason: str, now) -> None:
        """Tell the device (its errors topic) and county IT (`device list`) why; count and log it."""
        device_id = _device_of(item.topic)
        self.stats["rejected_messages"] += 1
        log.warning("rejected message from %s: %s", device_id, reason)
        self.client.publish(ERRORS_TOPIC.format(device_id=device_id), reason.encode(), qos=1)
        try:
            devices.record_error(store, device_id, reason, now=now)
        except Exception as e:  # the error note is a convenience; never block the ack on it
            log.error("could not note the error of %s: %s", device_id, e)

    def _acknowledge(self, item: Incoming) -> None:
        """PUBACK, on the connection that delivered it (a new connection gets it again, DUP set)."""
        if item.qos > 0 and item.generation == self._generation != REPLAYED and self._connected.is_set():
            self.client.ack(item.mid, item.qos)


    # -- the broker's journal ---------------------------------------------------------------
    def _replay_due(self) -> bool:
        if self._replay_wanted.is_set():
            return True
        gap = self.progress.gap and self._queue.empty()
        return gap and time.monotonic() - self._last_replay > GAP_REPLAY_S

    def _replay(self, store: Store) -> None:
        """Commit every journal record above the watermark (a record already stored is a duplicate
        of itself and stores nothing), then move the watermark over what was read."""
        self._replay_wanted.clear()
        subscriptions = self._subscriptions
        self._last_replay = time.monotonic()
        found = journal.scan(self.journal_dir, epoch=self.progress.epoch, after=self.progress.done)
        self.stats["journal_torn"] = found.torn
        items = [Incoming(REPLAYED, 0, 1, False, r.topic, r.payload, (r.epoch, r.seq)) for r in found.records]
        live, self.stats = self.stats, Counter()     # what the replay did is counted apart
        try:
            for i in range(0, len(items), self.batch_max):
                if self._stop.is_set():
                    break
                self._commit(store, items[i:i + self.batch_max])
        finally:
            replay, self.stats = self.stats, live
        for key in ("messages", "stored", "duplicates", "rejected_messages"):
            self.stats[f"journal_{key}"] += replay[key]
        if items and not self._stop.is_set():   # stopped inside a commit: not all were stored
            log.info("replayed %d record(s) of the broker's journal: %d reading(s) the broker had lost stored, "
                     "%d already stored", len(items), replay["stored"], replay["duplicates"])
            last = found.records[-1]
            self.progress.replayed(last.epoch, last.seq)
            self._write_watermark(store)
        if not self._stop.is_set():
            self._replayed_for = subscriptions

    def _synchronous(self, store: Store, journaled: bool) -> None:
        """A batch of journaled messages only is committed with synchronous=NORMAL: no fsync per
        commit (half the bytes an SD card gets per reading, docs/mqtt.md, "What a reading
        writes"); a power cut may undo it, and the broker's journal still holds every record above
        the watermark, which moves only after `make_durable()`. Anything else (a broker without the
        journal) is committed with FULL, as every other writer of the store does."""
        mode = "NORMAL" if journaled else "FULL"
        if self._synchronous_mode != (store, mode):
            store.conn.execute(f"PRAGMA synchronous = {mode}")
            self._synchronous_mode = (store, mode)

    def _note_committed(self, store: Store, batch: list[Incoming]) -> None:
        moved = False
        for item in batch:
            if item.journal is not None:
                moved |= self.progress.committed(*item.journal)
        if moved and self.progress.done - self._noted >= WATERMARK_EVERY:
            self._write_watermark(store)

    def _write_watermark(self, store: Store) -> None:
        """After the commits it covers are on disk: the broker then deletes what is below it."""
        try:
            store.make_durable()
            journal.commit_watermark(self.journal_dir, self.progress.epoch, self.progress.done)
            self._noted = self.progress.done
        except Exception as e:   # the disk, or the store's sync commit: only costs a longer replay next time
            log.error("could not note the journal's watermark in %s: %s", self.journal_dir, e)


def _session_properties():
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def _journal_identity(msg: mqtt.MQTTMessage) -> tuple[int, int] | None:
    """The broker's journal record of a QoS 1/2 message: its own property is the last one (a
    device's own property of that name comes before it; QoS 0 is not journaled)."""
    props = getattr(msg, "properties", None)
    if msg.qos == 0 or props is None:
        return None
    values = [v for k, v in getattr(props, "UserProperty", []) if k == journal.PROPERTY]
    return journal.parse_identity(values[-1]) if values else None


def _device_of(topic: str) -> str:
    parts = topic.split("/")
    return parts[1] if len(parts) == 3 else topic
