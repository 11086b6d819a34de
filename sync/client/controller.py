"""The transport controller: one sync cycle (hello -> uplink -> downlink -> hello) over a link that
breaks. The daemon's cycles say hello only when there is news (sync/client/hello.py) and skip the
pull when an answer said the hub holds nothing newer; `sync --once` always says hello.

* batch size and upload chunk size adapt to the link (sync/client/pacing.py): chunks as long as
  the link's cuts allow, batches doubled after a success and halved after a timeout or a 413;
* every failure waits a capped exponential delay with full jitter, and a cycle gives up after
  `[sync] attempts` failures in a row (the daemon tries again later; nothing is lost either way);
  each step that succeeds (the hello, one batch's upload, the pull) starts the count again, so a
  link that drops every few seconds is used between its drops instead of waiting ever longer
  (issue 17);
* a batch is uploaded in chunks the hub keeps, so an interrupted large batch resumes at the
  hub's offset instead of starting over (the offset the hub last said, within a cycle, without
  asking again);
* the daily byte budget is checked before every chunk; urgent batches are exempt.
"""
from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from edge.core import backoff, config as config_mod, outbox
from edge.core.node import Node

from sync import protocol, signing

from . import anchors, batcher, downlink, hello as hello_rule, pacing, state, status, timefix, tls
from .errors import BudgetExhausted, HubBusy, HubRefused, HubUntrusted, LinkError
from .transport import HubClient

log = logging.getLogger(__name__)


def backoff_delay(failures: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the n-th consecutive failure (1-based): full jitter up to min(cap, base*2^(n-1))."""
    return backoff.delay(max(failures - 1, 0), base=base, cap=cap, rand=rand)


@dataclass
class CycleResult:
    ok: bool = False
    batches: int = 0
    acked: int = 0
    quarantined: int = 0
    downlink: int = 0
    conflicts: int = 0
    corrected: int = 0
    failures: int = 0
    error: str | None = None
    budget_exhausted: bool = False
    link_failed: bool = False       # the cycle ended on a broken link: the daemon tries again soon
    busy: int = 0                   # answers "hub busy, retry after" (503 + Retry-After): not failures
    busy_for: float | None = None   # the cycle ended on one: the daemon's next cycle is this many s later
    bytes: int = 0
    notes: list[str] = field(default_factory=list)


class Cycle:
    def __init__(self, node: Node, ident, *, client: HubClient | None = None, sleep=time.sleep,
                 rand: Callable[[], float] = random.random, always_hello: bool = True):
        self.node, self.store, self.ident = node, node.store, ident
        self.cfg = node.config["sync"]
        self.client = client or HubClient(ident.hub_url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey,
                                          timeout=self.cfg["timeout_seconds"],
                                          wall=lambda: node.clock.now().timestamp(),
                                          monotonic=node.clock.monotonic,
                                          context=tls.client_context(node.data_dir),
                                          retry_after_cap=self.cfg["retry_after_cap_seconds"])
        if client is None:
            self.client.offset = float(state.get(self.store, "clock_offset_s", 0.0) or 0.0)
        self.sleep, self.rand = sleep, rand
        self.always_hello = always_hello      # False for the daemon: only when there is news (sync/client/hello.py)
        self.downlink_head: int | None = None  # the hub's newest downlink cursor for us, from any answer
        self.result = CycleResult()
        self.streak = 0     # failures since the last step that succeeded
        self.busy_streak = 0   # "hub busy" answers since the last step that succeeded
        self.pace = pacing.Pace(int(state.get(self.store, "chunk_bytes", self.cfg["chunk_bytes"])),
                                int(state.get(self.store, "batch_records", self.cfg["batch_records"])),
                                max_records=self.cfg["batch_max_records"], monotonic=node.clock.monotonic)
        self.offsets: dict[str, int] = {}    # batch id -> the offset the hub last said it holds

    @property
    def chunk(self) -> int:
        return self.pace.chunk

    @chunk.setter
    def chunk(self, value: int) -> None:
        self.pace.chunk = value

    @property
    def batch_records(self) -> int:
        return self.pace.batch_records

    # ---- helpers ------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.node.clock.now()

    def day(self) -> str:
        return self.node.today().isoformat()

    def _failed(self, e: Exception) -> None:
        self.result.failures += 1
        self.streak += 1
        if isinstance(e, LinkError) and e.status is None:   # timed out or broke, not a 5xx answer
            self.pace.broke(timed_out=isinstance(e.__cause__, (socket.timeout, TimeoutError)))
        if self.streak >= self.cfg["attempts"]:
            raise e
        wait = backoff_delay(self.streak, base=self.cfg["backoff_base_ms"] / 1000,
                             cap=self.cfg["backoff_cap_ms"] / 1000, rand=self.rand)
        log.info("sync: %s; retrying in %.1f s", e, wait)
        self.sleep(wait)

    def _busy(self, e: HubBusy) -> None:
        """The hub said "later" (503 + Retry-After, already capped by the client): wait that long and
        try again, without counting a failure or shrinking batches (docs/hub.md, "Admission
        control"). After `[sync] attempts` such answers in a row the cycle ends and the daemon's
        next one starts after the last Retry-After. `sync status` shows "hub busy, next try at"."""
        self.result.busy += 1
        self.busy_streak += 1
        # up to a second more at random: Retry-After is whole seconds, and the nodes a hub gave the
        # same second must not all come back at its first instant
        wait = self.result.busy_for = min(self.cfg["retry_after_cap_seconds"], e.retry_after + self.rand())
        state.put_many(self.store, {"busy_until": protocol.utc_now_iso(self.now() + timedelta(seconds=wait))},
                       self.now())
        if self.busy_streak >= self.cfg["attempts"]:
            raise e
        log.info("sync: %s", e)
        self.sleep(wait)

    def _call(self, method: str, path: str, body: bytes = b"", kinds: dict[str, int] | None = None,
              batch: str | None = None):
        try:
            ans = self.client.call(method, path, body, batch=batch)
        except LinkError as e:      # a failed attempt costs the SIM card too
            if e.sent_bytes:
                self.result.bytes += e.sent_bytes
                state.meter(self.store, self.day(), kinds or {"_control": 1}, e.sent_bytes)
            raise
        n = ans.sent_bytes + ans.received_bytes
        head = ans.doc.get("d" if batch else "downlink")     # a compact upload's answer says it as "d"
        if isinstance(head, int):
            self.downlink_head = head
        self.result.bytes += n
        state.meter(self.store, self.day(), kinds or {"_control": 1}, n)
        return ans

    def _retrying(self, fn):
        while True:
            try:
                done = fn()
            except HubBusy as e:
                self._busy(e)
                continue
            except LinkError as e:
                self._failed(e)
                continue
            self.streak = 0
            if self.busy_streak:
                self.busy_streak, self.result.busy_for = 0, None
                state.put_many(self.store, {"busy_until": None}, self.now())
            return done

    # ---- the cycle ----------------------------------------------------------------------------
    def run(self) -> CycleResult:
        try:
            csr = tls.renewal_csr(self.node.data_dir, now=self.now(), hub_host=self.client.host)
            first = self.always_hello or hello_rule.due_first(
                self.store, boot_id=self.node.clock.boot_id(), now=self.now(), renewing=csr is not None)
            if first:
                self._retrying(lambda: self.hello(csr))
            self.uplink()
            self._retrying(self.pull_all)
            if not self.always_hello and hello_rule.changed(self.store, self.brief()):
                self._retrying(lambda: self.hello(None))     # e.g. the backlog the first hello showed is gone
            self.fetch_bundles()
            self.result.ok = outbox.backlog(self.store.conn) == 0
        except BudgetExhausted as e:
            self.result.budget_exhausted, self.result.error = True, str(e)
        except HubBusy:               # "later", not an error: last_error stays as it was (busy_for is set)
            pass
        except (LinkError, HubRefused, HubUntrusted) as e:
            self.result.error = str(e)
            self.result.link_failed = isinstance(e, LinkError)
        finally:
            self.client.close()
            self._save()
            anchors.seal(self.node, now=self.now())    # also while the hub cannot be reached
        return self.result

    def _save(self) -> None:
        values = {"batch_records": self.batch_records, "chunk_bytes": self.chunk,
                  "last_attempt": protocol.utc_now_iso(self.now())}
        if self.result.ok:
            values["last_success"] = protocol.utc_now_iso(self.now())
            values["last_error"] = None
        elif self.result.error:
            values["last_error"] = self.result.error
        state.put_many(self.store, values, self.now())

    def brief(self) -> dict:
        """What a hello tells the hub about this node."""
        full = status_report(self.node)
        brief = {k: full[k] for k in ("backlog", "oldest_pending", "quarantined", "conflicts", "clock_offset_s",
                                      "software", "bytes_today", "last_success")}
        from edge.core import node_health  # disk, temperature, uptime, devices (issue 8)
        brief["health"] = node_health.report(self.node, now=self.now())
        brief["audit"] = anchors.claim(self.store)
        brief["division_code"] = self.node.config["node"]["division_code"]   # the county places the clinic
        return brief

    def hello(self, csr: str | None) -> None:
        brief = self.brief()
        if csr:   # the node certificate expires soon: the hub signs a new one (docs/tls.md)
            brief["csr"] = csr
        body = json.dumps(brief, ensure_ascii=False, separators=(",", ":")).encode()
        ans = self._call("POST", "/v1/hello", body)
        hello_rule.said(self.store, brief, boot_id=self.node.clock.boot_id(), now=self.now())
        if csr and tls.store_renewal(self.node.data_dir, ans.doc):
            self.result.notes.append("node certificate renewed")
        self.client.offset = timefix.learn(
            self.store, boot_id=self.node.clock.boot_id(), hub_time=ans.doc["hub_time"],
            wall_before=ans.wall_before, wall_after=ans.wall_after, mono_before=ans.mono_before,
            mono_after=ans.mono_after, now=self.now())
        anchors.keep(self.store, ans.doc, node=self.ident.node, hub_pubkey=self.ident.hub_pubkey, now=self.now())
        fixed = timefix.correct(self.store, current_boot=self.node.clock.boot_id(), now=self.now())
        self.result.corrected += fixed["corrected"] + fixed["uncorrectable"]

    def uplink(self) -> None:
        ahead = None
        try:
            while True:
                if ahead is not None:
                    ahead.join()
                batch = batcher.next_batch(self.store, self.ident, limit=self.batch_records, now=self.now())
                if batch is None:
                    return
                ahead = self._build_ahead(batch)
                self._send(batch)
        finally:
            if ahead is not None:
                ahead.join()

    def _build_ahead(self, batch: batcher.Batch) -> threading.Thread | None:
        """Build the next bulk batch while this one uploads, so the link does not wait for the
        encoding (issue 17.4); nothing when another batch already waits or this one is urgent."""
        if batch.urgent or self.store.scalar("SELECT count(*) FROM sync_batches WHERE state = 'pending'"
                                             " AND batch_id != ?", (batch.batch_id,)):
            return None
        limit, now = min(self.cfg["batch_max_records"], self.batch_records * 2), self.now()

        def build() -> None:
            try:
                batcher.build(self.store, self.ident, limit=limit, now=now)
            except Exception:      # noqa: BLE001 - the next batch is then built when it is needed
                log.exception("sync: building the next batch ahead failed")

        thread = threading.Thread(target=build, name="sync-build-ahead", daemon=True)
        thread.start()
        return thread

    def _send(self, batch: batcher.Batch) -> None:
        try:
            receipt = self._retrying(lambda: self.upload(batch))
        except HubRefused as e:
            if e.status != 413:
                raise
            batcher.abandon(self.store, batch, now=self.now())
            self.pace.refused_as_too_large(batch.records)
            return
        self.result.acked += batcher.settle(self.store, batch, receipt, now=self.now())
        self.result.quarantined += len(receipt.get("rejected", []))
        self.result.batches += 1
        state.count_records(self.store, self.day(), batch.kinds)
        self.pace.batch_done()

    def upload(self, batch: batcher.Batch) -> dict:
        """Upload a batch by the compact form (/v2/u/, docs/api.md): the hub's signed answer is the
        receipt. Hubs are updated before nodes; an older hub, which has no such route, is named."""
        env, total = batch.envelope, len(batch.envelope)
        base = f"/v2/u/{batch.batch_id}"
        offset = 0
        attempts = self.store.scalar("SELECT attempts FROM sync_batches WHERE batch_id = ?", (batch.batch_id,))
        batcher.note_attempt(self.store, batch)
        if batch.batch_id in self.offsets:      # cut in this cycle: go on from what the hub said last
            offset = self.offsets[batch.batch_id]
        elif attempts:   # tried before (maybe by a process that was killed): ask the hub where it stopped
            ans = self._upload_call("GET", f"{base}?t={total}", b"", batch)
            if "r" in ans.doc:
                return self._verified(batch, ans)
            offset = int(ans.doc.get("o", 0))
        while True:
            piece = env[offset:offset + self.chunk]
            self._check_budget(batch, len(piece))
            ans = self._upload_call("PUT", f"{base}?o={offset}&t={total}", piece, batch)
            if ans.status == 200:
                self.pace.carried(len(piece), ans.mono_after - ans.mono_before)
            if "r" in ans.doc:
                return self._verified(batch, ans)
            if ans.status == 413:
                raise HubRefused(413, ans.doc.get("error", "too large"))
            offset = self.offsets[batch.batch_id] = int(ans.doc.get("o", offset))

    def _upload_call(self, method: str, path: str, body: bytes, batch: batcher.Batch):
        try:
            return self._call(method, path, body, kinds=batch.kinds, batch=batch.batch_id)
        except HubRefused as e:
            if e.status == 404:
                raise HubRefused(404, f"the hub at {self.ident.hub_url} is older than this node (it has no compact "
                                      "uploads, /v2/u/): county IT updates the hub first, then the nodes") from e
            raise

    def _verified(self, batch: batcher.Batch, ans) -> dict:
        """The receipt of a compact upload's answer, checked again as the proof the node keeps (the
        transport verified the signature over this node, this batch and our nonce); a receipt that
        does not verify leaves the batch pending (LinkError: it is asked for again)."""
        proof = {"nonce": ans.nonce, "body": ans.body.decode("utf-8", "replace"), "sig": ans.signature}
        try:
            receipt = protocol.verify_receipt_proof(signing.public_from_text(self.ident.hub_pubkey),
                                                    self.ident.node, batch.batch_id, proof)
        except protocol.ProtocolError as e:
            raise LinkError(f"receipt for batch {batch.batch_id} is not signed by the hub: {e}") from e
        return {**receipt, "proof": proof}

    def _check_budget(self, batch: batcher.Batch, nbytes: int) -> None:
        from .bundles import METERED_AS

        budget = self.cfg["daily_budget_bytes"]
        if not budget or batch.urgent:
            return
        used = state.bytes_today(self.store, self.day(),
                                 without=METERED_AS if self.cfg["update_budget_bytes"] else None)
        if used + nbytes + 600 > budget:
            raise BudgetExhausted(f"today's sync budget of {budget} bytes is spent ({used} used); "
                                  "bulk records wait until tomorrow, urgent ones still go")

    def pull_all(self) -> None:
        while True:
            cursor = int(state.get(self.store, "cursor", 0))
            if self.downlink_head is not None and self.downlink_head <= cursor:
                return    # an answer this cycle said the hub holds nothing newer for us
            body = json.dumps({"cursor": cursor}, separators=(",", ":")).encode()   # the hub's page: 200
            doc = self._call("POST", "/v1/pull", body, kinds={"_downlink": 1}).doc
            items = doc.get("items", [])
            if items or doc.get("cursor", cursor) != cursor:
                counts = downlink.apply_page(self.store, items, int(doc["cursor"]), now=self.now())
                if any(i.get("kind") == downlink.CONFIG_KIND for i in items):
                    config_mod.write_county(self.node.data_dir, downlink.county_settings(self.store))
                self.result.downlink += counts["applied"]
                self.result.conflicts += counts["conflicts"]
            if not doc.get("more"):
                return

    def fetch_bundles(self) -> None:
        """Update bundles announced by the downlink: download (resumable) into updates/ready."""
        from . import bundles

        bundles.drop_withdrawn(self.store, self.node.data_dir)
        waiting = None
        for item in bundles.wanted(self.store, self.node.data_dir):
            waiting = waiting or self._update_waits(item)
            if waiting:
                continue
            def one(item=item):
                try:
                    ready, got = bundles.fetch(self.client, item, self.node.data_dir,
                                               Path(self.node.config["update"]["release_key"]))
                except LinkError as e:
                    state.meter(self.store, self.day(), {bundles.METERED_AS: 1}, e.sent_bytes)
                    raise
                state.meter(self.store, self.day(), {bundles.METERED_AS: 1}, got)
                self.result.bytes += got
                if ready is None:
                    self.result.notes.append(f"update bundle {item['version']} was not accepted (hash, signature "
                                             f"or release key; see the log)")
            self._retrying(one)
        state.put_many(self.store, {"update_waiting": waiting}, self.now())

    def _update_waits(self, item: dict) -> str | None:
        """Why a bundle waits for another day (sync.client.bundles.waits), noted in the cycle's result."""
        from . import bundles

        why = bundles.waits(item, self.node.data_dir, self.store, self.cfg, self.day())
        if why:
            log.info("sync: %s", why)
            self.result.notes.append(why)
        return why


def status_report(node: Node) -> dict:
    """What `sync status --json` prints (sync/client/status.py, shared with the web UI)."""
    return status.report(node)
