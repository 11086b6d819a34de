"""Simulated clinic devices for the demo: a BP monitor, a glucometer, a pulse oximeter, a scale.

Each publishes realistic SenML readings under its own broker account, as a real Wi-Fi device or
gateway would, now and then in another unit (kPa, mg/dL, lb) and, rarely, something broken, so
the demo shows normalisation and rejection too.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time

import paho.mqtt.client as mqtt

from .mqtt.broker import READINGS_TOPIC

log = logging.getLogger(__name__)

DEMO_DEVICES = (("demo-bp", "bp"), ("demo-glucose", "glucose"), ("demo-spo2", "spo2"), ("demo-scale", "scale"))


def senml_for(kind: str, rng: random.Random, t: float) -> list[dict]:
    if kind == "bp":
        sys = round(rng.gauss(138, 16))
        dia = round(max(50, sys - rng.gauss(52, 8)))
        recs = [{"bt": t, "n": "8480-6", "u": "mm[Hg]", "v": sys}, {"n": "8462-4", "u": "mm[Hg]", "v": dia},
                {"n": "8867-4", "u": "/min", "v": round(rng.gauss(76, 9))}]
        if rng.random() < 0.1:  # some monitors report kPa
            recs[0].update(u="kPa", v=round(sys * 0.133322, 1))
            recs[1].update(u="kPa", v=round(dia * 0.133322, 1))
        return recs
    if kind == "glucose":
        mmol = round(max(3.0, rng.gauss(7.4, 2.0)), 1)
        if rng.random() < 0.2:
            return [{"bt": t, "n": "glucose", "u": "mg/dL", "v": round(mmol * 18.016)}]
        return [{"bt": t, "n": "2339-0", "u": "mmol/L", "v": mmol}]
    if kind == "spo2":
        return [{"bt": t, "n": "2708-6", "u": "%", "v": min(100, round(rng.gauss(97, 1.5)))},
                {"n": "8867-4", "u": "beat/min", "v": round(rng.gauss(74, 8))}]
    if kind == "scale":
        kg = round(rng.gauss(63, 9), 1)
        if rng.random() < 0.15:
            return [{"bt": t, "n": "29463-7", "u": "[lb_av]", "v": round(kg / 0.45359237, 1)}]
        return [{"bt": t, "n": "29463-7", "u": "kg", "v": kg}]
    raise ValueError(kind)


def broken(rng: random.Random, t: float) -> bytes:
    """What real devices sometimes send: truncated JSON, a wrong unit, an impossible value."""
    choice = rng.randrange(3)
    if choice == 0:
        return b'[{"n":"8480-6","u":"mm[Hg]","v":12'
    if choice == 1:
        return json.dumps([{"bt": t, "n": "8310-5", "u": "mmol/L", "v": 36.6}]).encode()
    return json.dumps([{"bt": t, "n": "2708-6", "u": "%", "v": 140}]).encode()


def run(host: str, port: int, creds: dict[str, dict], *, rate: float, stop: threading.Event,
        seed: int | None = None) -> None:
    rng = random.Random(seed)
    clients = {}
    for device_id, info in creds.items():
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{device_id}"[:23])
        c.username_pw_set(device_id, info["password"])
        c.reconnect_delay_set(1, 10)
        c.connect_async(host, port)
        c.loop_start()
        clients[device_id] = (c, info["kind"])
    try:
        while not stop.wait(1 / rate if rate > 0 else 1):
            device_id = rng.choice(sorted(clients))
            client, kind = clients[device_id]
            t = time.time()
            payload = broken(rng, t) if rng.random() < 0.03 else json.dumps(senml_for(kind, rng, t)).encode()
            client.publish(READINGS_TOPIC.format(device_id=device_id), payload, qos=1)
            log.debug("%s -> %s", device_id, payload[:120])
    finally:
        for c, _ in clients.values():
            c.loop_stop()
            c.disconnect()
