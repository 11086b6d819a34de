"""MQTT ingest: subscribe to every device's readings topic, commit, then acknowledge.

paho-mqtt 2.x with `manual_ack=True` and a persistent session (clean_session=False): a message
is PUBACKed only after the transaction holding its readings committed, so a SIGKILL at any
moment loses nothing the broker handed over; the broker redelivers and the stable reading id
drops the duplicate. Messages are committed in groups (whatever arrived while the last commit
ran, up to `batch_max`), which keeps fsyncs, and SD-card wear, per reading low.
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
from edge.core.ingest import STATUS_REFUSED, ingest
from edge.core.node import Node
from edge.core.store import Store

from edge.core import backoff
from ..errors import FrameError
from . import senml
from .broker import ERRORS_TOPIC, broker_address, ingest_credentials

log = logging.getLogger(__name__)
SUBSCRIPTION = "devices/+/readings"
# the broker is on the same box (or LAN): after its restart, be back within a few seconds
RECONNECT_CAP_S = 5.0
CONNACK_TIMEOUT_S = 10.0


@dataclass
class Incoming:
    generation: int     # which connection delivered it: a PUBACK only makes sense on that one
    mid: int
    qos: int
    topic: str
    payload: bytes


class MqttDriver:
    name = "mqtt"

    def __init__(self, node: Node, *, client_factory=None, store_factory=None):
        self.node = node
        cfg = node.config["mqtt"]
        self.host, self.port = broker_address(cfg["url"])
        self.max_payload = cfg["max_payload"]
        self.batch_max = cfg["batch_max"]
        self.client_id = cfg["client_id"]
        self._client_factory = client_factory or self._make_client
        self._store_factory = store_factory or (lambda: Store(node.config.store_path))
        self._queue: queue.Queue[Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0
        self._connected = threading.Event()
        self.stats: Counter = Counter()
        self._threads: list[threading.Thread] = []
        self.client: mqtt.Client | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.client = self._client_factory()
        self._threads = [threading.Thread(target=self._network_loop, name="mqtt-net", daemon=True),
                         threading.Thread(target=self._writer_loop, name="mqtt-writer", daemon=True)]
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
        return self._connected.is_set()

    def status(self) -> dict:
        return {"mqtt_connected": self._connected.is_set(), **{f"mqtt_{k}": v for k, v in self.stats.items()}}

    # -- network -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                        protocol=mqtt.MQTTv311, manual_ack=True)
        user, password = ingest_credentials(self.node)
        c.username_pw_set(user, password)
        c.max_inflight_messages_set(200)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def _network_loop(self) -> None:
        attempt = 0
        socket_open = False        # a TCP connection exists
        awaiting_connack = False   # ... and the broker has not answered CONNECT yet
        while not self._stop.is_set():
            if not socket_open:
                try:
                    self.client.connect(self.host, self.port, keepalive=30)
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

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("lost the broker: %s", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Incoming(self._generation, msg.mid, msg.qos, msg.topic, msg.payload))

    # -- committing --------------------------------------------------------------------------
    def _writer_loop(self) -> None:
        store = self._store_factory()
        try:
            while not (self._stop.is_set() and self._queue.empty()):
                batch = self._take_batch()
                if batch:
                    self._commit(store, batch)
        finally:
            store.close()

    def _take_batch(self) -> list[Incoming]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit(self, store: Store, batch: list[Incoming]) -> None:
        now = self.node.clock.now()
        parsed, errors = [], []
        for item in batch:
            device_id = _device_of(item.topic)
            try:
                readings = senml.parse(device_id, item.payload, now=now, max_bytes=self.max_payload)
            except FrameError as e:
                errors.append((item, device_id, str(e)))
                continue
            parsed.append((item, readings))
        attempt = 0
        while True:
            try:
                outcomes = ingest(store, [r for _, rs in parsed for r in rs], clock=self.node.clock)
                break
            except Exception as e:  # disk full, locked... keep the messages unacknowledged and retry
                wait = backoff.delay(attempt, base=0.2, cap=10)
                log.error("could not store %d readings (%s); retrying in %.1fs", len(parsed), e, wait)
                attempt += 1
                if self._stop.wait(wait):
                    return  # unacknowledged: the broker redelivers after restart
        it = iter(outcomes)
        for item, readings in parsed:
            results = [next(it) for _ in readings]
            refused = [o.reason for o in results if o.status == STATUS_REFUSED]
            if refused:
                errors.append((item, _device_of(item.topic), refused[0]))
            self.stats["stored"] += sum(not o.duplicate and o.status != STATUS_REFUSED for o in results)
            self.stats["duplicates"] += sum(o.duplicate for o in results)
            self.stats["rejected_values"] += sum(o.status == "rejected" and not o.duplicate for o in results)
        for item, device_id, reason in errors:
            self.stats["rejected_messages"] += 1
            log.warning("rejected message from %s: %s", device_id, reason)
            self.client.publish(ERRORS_TOPIC.format(device_id=device_id), reason.encode(), qos=1)
            try:
                devices.record_error(store, device_id, reason, now=now)
            except Exception as e:  # the error note is a convenience; never block the ack on it
                log.error("could not note the error of %s: %s", device_id, e)
        for item in batch:  # everything in the batch is now durable (or durably refused)
            if item.qos > 0 and item.generation == self._generation and self._connected.is_set():
                self.client.ack(item.mid, item.qos)
        self.stats["messages"] += len(batch)


def _device_of(topic: str) -> str:
    parts = topic.split("/")
    return parts[1] if len(parts) == 3 else topic
