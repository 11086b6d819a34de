"""Benchmark of the serial and HL7 drivers: prints figures, asserts nothing.

    .venv/bin/python bench/drivers_serial.py [--messages 500]

1. Parser throughput per protocol (pure code, no I/O): ASTM frames/s through the E1381 link and
   the E1394 reader, HL7 messages/s (and OBX/s) through MLLP + ORU parsing, line-device lines/s.
2. End to end with commits: ASTM messages over a real pty to the driver, HL7 messages over TCP.
3. Latency: from the last byte of an ASTM message written on the pty to its committed reading
   (the driver's on_commit hook, called after ingest() returned). Target: p99 < 50 ms.
"""
from __future__ import annotations

import argparse
import os
import pty
import socket
import statistics
import sys
import tempfile
import threading
import time
import tty
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers.astm.codec import ACK, split_message           # noqa: E402
from device_drivers.astm.driver import AstmDriver                  # noqa: E402
from device_drivers.astm.link import Link, Message                 # noqa: E402
from device_drivers.astm.results import Context, code_map, readings_from_message  # noqa: E402
from device_drivers.astm.simulator import Analyser                 # noqa: E402
from device_drivers.hl7.driver import MllpDriver                   # noqa: E402
from device_drivers.hl7.mllp import Decoder, frame                 # noqa: E402
from device_drivers.hl7.oru import parse_oru                       # noqa: E402
from device_drivers.lines.profile import load, parse_line          # noqa: E402
from edge.core import config                                       # noqa: E402
from edge.core.node import Node                                    # noqa: E402

TZ = timezone.utc


def astm_message(i: int) -> bytes:
    """Afinion 2-shaped message (senaite/senaite.astm tests/data/abbott_afinion2.txt), sample id i."""
    return (b"H|\\^&|||Afinion 2 Analyzer^^AF20052397|||||||P|1|20260301141235\r"
            b"P|1||%d|||||U\rO|1||S%d|^^^HbA1c|||||||N||||^O||||||||^10228413||F\r"
            b"R|1|^^^HbA1c|%d.%d|%%||||F||3643||20260301140615\rL|1|N\r") % (i, i, 5 + i % 5, i % 10)


def hl7_message(i: int) -> bytes:
    return (f"MSH|^~\\&|MONITOR||||20260912120000||ORU^R01^ORU_R01|B{i}|P|2.6\rPID|||{i}\r"
            f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|{90 + i % 10}|262688^MDC_DIM_PERCENT^MDC|||||R|||20260912120000+0800\r"
            f"OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.3.1.149530|{60 + i % 30}|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20260912120000+0800\r"
            f"OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|{110 + i % 40}|266016^MDC_DIM_MMHG^MDC|||||R|||20260912120000+0800\r"
            f"OBX|4|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.0.1.2|{70 + i % 20}|266016^MDC_DIM_MMHG^MDC|||||R|||20260912120000+0800\r"
            ).encode()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


def parsers(n: int) -> None:
    codes = code_map({"HbA1c": "4548-4"})
    # one chunk per session, as on the wire (an analyser waits for each ACK before going on)
    sessions = [b"\x05" + b"".join(split_message(astm_message(i), size=60)) + b"\x04" for i in range(n)]
    frames = sum(len(split_message(astm_message(i), size=60)) for i in range(n))
    link, readings = Link(), 0
    t = time.perf_counter()
    for chunk in sessions:
        pending = link.feed(chunk, 0.0)
        while pending:
            a = pending.pop(0)
            if isinstance(a, Message):
                rs, _ = readings_from_message(a.text, Context(), device_id="b", codes=codes, tz=TZ)
                readings += len(rs)
                pending = link.stored(0.0) + pending
    dt = time.perf_counter() - t
    assert readings == n, readings
    print(f"ASTM parser: {frames} frames ({n} messages) in {dt * 1000:.0f} ms = {rate(frames, dt)} frames, "
          f"{rate(n, dt)} messages")

    blob = b"".join(frame(hl7_message(i)) for i in range(n))
    t = time.perf_counter()
    obx = 0
    for m in Decoder().feed(blob):
        obx += len(parse_oru(m, device_id="b", tz=TZ)[1])
    dt = time.perf_counter() - t
    print(f"HL7 parser: {n} messages ({obx} OBX) in {dt * 1000:.0f} ms = {rate(n, dt)} messages, {rate(obx, dt)} OBX")

    profile, now = load("bp-sys-dia-pul"), datetime.now(timezone.utc)
    lines = [b"SYS=%d,DIA=%d,PR=%d" % (110 + i % 40, 70 + i % 20, 60 + i % 30) for i in range(n)]
    t = time.perf_counter()
    for line in lines:
        parse_line(profile, line, device_id="b", received=now, tz=TZ)
    dt = time.perf_counter() - t
    print(f"line parser: {n} lines in {dt * 1000:.0f} ms = {rate(n, dt)} lines")


def make_node(tmp: str) -> Node:
    return Node(config.load(env={"CLINIC_EDGE_DATA": tmp}))


def astm_end_to_end(n: int, tmp: str) -> list[float]:
    master, slave = pty.openpty()
    tty.setraw(master), tty.setraw(slave)
    path = os.ttyname(slave)
    node = make_node(tmp)
    committed: list[float] = []
    done = threading.Event()
    driver = AstmDriver(node, {"url": path, "device_id": "bench-astm", "codes": {"HbA1c": "4548-4"}},
                        on_commit=lambda rs: (committed.append(time.perf_counter()), done.set()))
    driver.start()
    while not driver.port_open:
        time.sleep(0.01)
    analyser = Analyser(master)
    latencies = []
    t0 = time.perf_counter()
    for i in range(n):
        done.clear()
        assert analyser.establish() == ACK
        frames = split_message(astm_message(i))
        for f in frames[:-1]:
            assert analyser.send_frame(f) == ACK
        analyser.write(frames[-1])
        last_byte = analyser.last_write_at
        assert analyser.reply() == ACK
        done.wait(5)
        latencies.append(committed[-1] - last_byte)
        analyser.write(b"\x04")
    total = time.perf_counter() - t0
    driver.stop()
    driver.join(5)
    os.close(master), os.close(slave)
    stored = node.store.scalar("SELECT count(*) FROM readings WHERE device_id = 'bench-astm'")
    node.close()
    print(f"ASTM end to end over a pty: {n} messages committed one by one in {total:.2f} s = {rate(n, total)} "
          f"messages ({stored} readings stored)")
    return latencies


def hl7_end_to_end(n: int, tmp: str) -> None:
    node = make_node(tmp)
    driver = MllpDriver(node, {"listen": "127.0.0.1:0", "device_id": "bench-mllp"})
    driver.start()
    t0 = time.perf_counter()
    with socket.create_connection(driver.address) as s:
        for i in range(n):
            s.sendall(frame(hl7_message(i)))
            buf = b""
            while not buf.endswith(b"\x1c\r"):
                buf += s.recv(4096)
    total = time.perf_counter() - t0
    driver.stop()
    driver.join(5)
    stored = node.store.scalar("SELECT count(*) FROM readings WHERE device_id = 'bench-mllp'")
    node.close()
    print(f"HL7 end to end over TCP: {n} messages (each AA after its commit) in {total:.2f} s = {rate(n, total)} "
          f"messages ({stored} readings stored)")


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=500)
    args = ap.parse_args(argv)
    print("== serial and HL7 drivers ==")
    parsers(args.messages * 4)
    with tempfile.TemporaryDirectory() as tmp:
        lat = astm_end_to_end(args.messages, tmp)
        ms = [x * 1000 for x in lat]
        p99 = percentile(ms, 99)
        print(f"ASTM last byte on the pty -> committed reading: p50 {statistics.median(ms):.1f} ms, "
              f"p95 {percentile(ms, 95):.1f} ms, p99 {p99:.1f} ms, max {max(ms):.1f} ms "
              f"(target p99 < 50 ms: {'met' if p99 < 50 else 'NOT met'})")
    with tempfile.TemporaryDirectory() as tmp:
        hl7_end_to_end(args.messages, tmp)


if __name__ == "__main__":
    main()
