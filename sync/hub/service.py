"""What the hub does with a batch, an enrollment or a pull, apart from HTTP.

`accept_batch()` is shared by uploads and USB bundles, so both have the same idempotency: a
batch already stored returns its stored receipt; a record already stored (same node, kind, id,
version, content) is not stored again; one bad record is rejected by itself, never the batch.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sync import protocol, record_codec, signing
from .storage import HubStore, batches, now_iso

MAX_RECORD_BYTES = 64 * 1024
KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
REQUIRED = {"reading": ("code", "unit", "effective_time")}   # kinds the hub knows more about
CHUNK_DAYS = timedelta(days=30)                                # an abandoned partial upload is kept this long
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"              # no 0/O, 1/I


class HubError(Exception):
    status = 400


class UnknownNode(HubError):
    status = 401


class Refused(HubError):
    status = 401


class Replayed(HubError):
    status = 409


class TooLarge(HubError):
    status = 413


class ClockSkew(Refused):
    """X-CE-Time is outside the hub's window: the answer carries the hub's signed time, so the
    node learns its offset and signs its retry with a corrected time (sync/client/transport.py)."""


@dataclass
class Hub:
    store: HubStore
    key: Any                     # the hub's Ed25519 key (edge.core.suites), what nodes before issue 21 know
    max_batch_bytes: int = 4 << 20
    code_ttl: timedelta = timedelta(hours=72)
    bundle_dir: Path | None = None   # published update bundles, <sha256>.bundle (sync.hub.bundles)
    time_window: timedelta = timedelta(minutes=10)       # |hub time - X-CE-Time| accepted
    nonce_retention: timedelta = timedelta(minutes=30)   # at least 2 x time_window (docs/hub.md)
    sm_key: Any = None           # the hub's SM2 key, for nodes of the sm suite ([hub] suite, docs/crypto-suites.md)
    suite: str = signing.DEFAULT_SUITE                   # the suite of the enrollment codes it issues

    def __post_init__(self) -> None:
        if self.nonce_retention < 2 * self.time_window:
            raise ValueError("nonce retention must be at least twice the time window, or a request could be "
                             "replayed after its nonce is forgotten")

    @property
    def pubkey(self) -> str:
        return signing.public_text(self.key)

    def key_for(self, suite: str):
        """The hub's key that signs for nodes of `suite`."""
        if suite == self.key.suite:
            return self.key
        if self.sm_key is not None and suite == self.sm_key.suite:
            return self.sm_key
        raise Refused(f"this hub has no {suite} key (set [hub] suite = \"{suite}\" and restart it)")

    def keys(self) -> list[Any]:
        return [k for k in (self.key, self.sm_key) if k is not None]

    # ---- enrollment -------------------------------------------------------------------------
    def add_node(self, name: str, *, now: datetime, suite: str | None = None) -> str:
        """A one-time code for `name`; a code for the sm suite starts "SM-" (signing.code_suite)."""
        suite = suite or self.suite
        self.key_for(suite)
        code = "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(3))
        code = signing.CODE_PREFIXES.get(suite, "") + code
        self.store.add_node(name, code, now=now, ttl=self.code_ttl)
        return code

    def enroll(self, code: str, pubkey: str, *, now: datetime) -> dict[str, Any]:
        suite = signing.code_suite(code)
        have = signing.public_from_text(pubkey).suite
        if have != suite:    # checked before the code is spent: the right node software can still use it
            raise Refused(f"this enrollment code is for the {suite} suite but the node sent an {have} key "
                          "(update the node's software, or ask county IT for a code of the node's suite)")
        try:
            name = self.store.redeem(code, pubkey, now=now)
        except KeyError as e:
            raise Refused(e.args[0]) from e
        return {"node": name, "hub_pubkey": signing.public_text(self.key_for(suite)), "hub_time": now_iso(now)}

    # ---- request authentication ---------------------------------------------------------------
    def authenticate(self, method: str, path: str, headers, body: bytes, *, now: datetime) -> str:
        return self.signed_by(method, path, headers, body, now=now)["name"]

    def signed_by(self, method: str, path: str, headers, body: bytes, *, now: datetime) -> dict[str, Any]:
        """The enrolled node's row (name, pubkey, ...) that signed this request, its nonce now
        remembered and its last contact now; else Refused, UnknownNode, ClockSkew or Replayed."""
        node, nonce, sent, sig = protocol.request_auth(headers)
        if not (node and nonce and sig):
            raise Refused("unsigned request: X-CE-Auth (node, nonce, time, signature) is required")
        if not re.fullmatch(r"[\w-]{16,64}", nonce):
            raise Refused("bad nonce")
        row = self.store.node(node)
        if row is None or not row["pubkey"]:
            raise UnknownNode(f"node {node!r} is not enrolled at this hub")
        try:
            suite, raw_sig = signing.read_signature_text(sig)
            signing.verify(signing.public_from_text(row["pubkey"]), raw_sig,
                            protocol.request_bytes(method, path, node, nonce, sent, body, suite), suite)
        except protocol.ProtocolError as e:
            raise self.refused(node, "request", f"request signature does not match node {node}'s key: {e}",
                               now=now) from e
        self.check_time(sent, now=now)
        if not self.store.remember_nonce(node, nonce, now=now):
            raise Replayed("this request was already received (replayed nonce); nothing stored")
        if secrets.randbelow(100) == 0:
            # A nonce older than the retention can go: its request's time is outside the window now.
            self.store.prune(nonces_before=now - self.nonce_retention, chunks_before=now - CHUNK_DAYS)
        return row

    def check_time(self, sent: str, *, now: datetime) -> None:
        """The signed X-CE-Time must be within time_window of the hub's clock (replays of old requests,
        whose nonces were pruned, fall outside it)."""
        try:
            if not record_codec.ISO_MS.fullmatch(sent or ""):
                raise ValueError(sent)
            skew = (datetime.fromisoformat(sent.replace("Z", "+00:00")) - now).total_seconds()
        except ValueError as e:
            raise Refused("X-CE-Time must be UTC ISO 8601 with milliseconds, e.g. 2026-01-31T08:00:00.000Z") from e
        window = self.time_window.total_seconds()
        if abs(skew) > window:
            raise ClockSkew(f"request time {sent} is {skew:+.0f} s from the hub's clock (allowed ±{window:.0f} s); "
                            "correct the clock offset from hub_time and sign again")

    def audit_head(self, node: str, claim: Any, *, now: datetime) -> dict[str, Any]:
        """Keep the audit head a node reported (sync.hub.anchors); the signed anchor for the answer."""
        from . import anchors

        return anchors.report(self.store, self.key_for(self.node_suite(node)), node, claim, now=now)

    def node_suite(self, node: str, pubkey: str | None = None) -> str:
        """The suite of the node's current key: what the hub signs its answers to the node in."""
        if pubkey is None:
            row = self.store.node(node)
            pubkey = row["pubkey"] if row else None
        return signing.text_suite(pubkey or "")

    def sign_response(self, nonce: str, body: bytes, suite: str = signing.DEFAULT_SUITE) -> str:
        """The answer's signature (untagged: the node knows which hub key it holds)."""
        return signing.b64(signing.sign(self.key_for(suite), protocol.response_bytes(nonce, body, suite)))

    def sign_receipt_answer(self, node: str, batch: str, nonce: str, body: bytes,
                            suite: str = signing.DEFAULT_SUITE) -> str:
        """The one signature over an answer to a compact upload (protocol.receipt_bytes): it binds the
        node and the batch, so the receipt in the body need not name them."""
        return signing.b64(signing.sign(self.key_for(suite), protocol.receipt_bytes(node, batch, nonce, body, suite)))

    def refused(self, node: str, what: str, reason: str, *, now: datetime) -> "Refused":
        """A refused signature, counted with its reason (`hub node list`, docs/crypto-suites.md)."""
        self.store.add_refusal(node, what, reason, now=now)
        return Refused(reason)

    # ---- batches ------------------------------------------------------------------------------
    def accept_batch(self, raw: bytes, *, via: str, now: datetime, sender: str | None = None,
                     sender_key: str | None = None, unstored: bool = False, whole: bool = False) -> dict[str, Any]:
        """Verify and store one envelope; returns its stored receipt (the same one every time): the
        receipt's document, unsigned until a /v1 node asks for it (`full_receipt`); a /v2 upload's
        answer is signed once over its compact form (docs/api.md, "Uploads").
        An upload passes the key its request was signed with (`sender_key`, no second look-up)
        and `unstored` when it has just found no receipt for this batch (a race with another
        worker still ends in the stored receipt, below), and `whole` when it came in one request
        (no partial upload to drop)."""
        try:
            env = protocol.open_envelope(raw)
        except protocol.TooBig as e:
            raise TooLarge(str(e)) from e
        if sender is not None and env.node != sender:
            raise Refused(f"node {sender} cannot upload a batch signed as {env.node}")
        pubkey = sender_key if sender is not None else None
        if pubkey is None:
            row = self.store.node(env.node)
            if row is None or not row["pubkey"]:
                raise UnknownNode(f"node {env.node!r} is not enrolled at this hub")
            pubkey = row["pubkey"]
        self._verify_batch(env, pubkey, now=now)
        stored = None if unstored else self.store.batch_receipt(env.node, env.batch_id)
        if stored:
            return json.loads(stored)
        try:
            recs = record_codec.decode_records(env.payload)
        except protocol.TooBig as e:
            raise TooLarge(f"batch {env.batch_id}: {e}") from e
        if len(recs) != env.header["n"]:
            raise HubError(f"batch says {env.header['n']} records but holds {len(recs)}")
        try:
            return self._store_batch(env, recs, via=via, now=now, size=len(raw), whole=whole)
        except sa.exc.IntegrityError:   # another worker stored the same batch at the same moment
            stored = self.store.batch_receipt(env.node, env.batch_id)
            if stored:
                return json.loads(stored)
            raise

    def _verify_batch(self, env, pubkey: str, *, now: datetime) -> None:
        """The envelope verifies with the node's current key or, signed before the node re-enrolled
        in another suite, with one of its old keys of the envelope's suite; else refused, counted."""
        current = [pubkey] if signing.text_suite(pubkey) == env.suite else []
        if self._verifies(env, current):
            return
        old = self.store.old_keys(env.node, env.suite)   # looked up only when the current key did not do
        if self._verifies(env, old):
            return
        if not current and not old:
            raise self.refused(env.node, "batch", f"batch {env.batch_id} is signed in the {env.suite} suite, but node "
                               f"{env.node} has no {env.suite} key at this hub (its key is "
                               f"{signing.text_suite(pubkey)}); nothing stored", now=now)
        raise self.refused(env.node, "batch", f"batch {env.batch_id} is not signed by node {env.node}'s "
                           f"{env.suite} key; nothing stored", now=now)

    @staticmethod
    def _verifies(env, keys: list[str]) -> bool:
        for text in keys:
            try:
                env.verify(signing.public_from_text(text))
                return True
            except protocol.ProtocolError:
                continue
        return False

    def full_receipt(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """The stored receipt as a signed document of its own, for a node that uploads by /v1/uploads/
        (before issue 17.4). It is signed the first time one asks and kept, so every retry gets the
        same document; a /v2 upload never needs it (docs/api.md, "Uploads"). Signed again, not
        kept, if the node has since moved to another suite."""
        suite = self.node_suite(receipt["node"])
        if "sig" in receipt:
            if receipt.get("suite", signing.DEFAULT_SUITE) == suite:
                return receipt
            return protocol.sign_document(self.key_for(suite), receipt)
        signed = protocol.sign_document(self.key_for(suite), receipt)
        where = sa.and_(batches.c.node == receipt["node"], batches.c.batch_id == receipt["batch"],
                        ~batches.c.receipt.contains('"sig"'))
        with self.store.begin() as c:
            kept = c.execute(batches.update().where(where).values(receipt=json.dumps(signed))).rowcount
        if kept:
            return signed
        stored = self.store.batch_receipt(receipt["node"], receipt["batch"])   # another worker signed it first
        return self.full_receipt(json.loads(stored)) if stored and '"sig"' in stored else signed

    def _store_batch(self, env, recs, *, via: str, now: datetime, size: int, whole: bool) -> dict[str, Any]:
        day, at = now_iso(now)[:10], now_iso(now)
        rejected, good = [], []
        for r in recs:
            problem = record_problem(r)
            if problem:
                rejected.append({"kind": str(r.get("kind"))[:32], "id": str(r.get("id"))[:128],
                                 "version": r.get("version"), "reason": problem})
            else:
                good.append(r)
        with self.store.begin() as c:
            # PostgreSQL's insert says which records were there already (_insert_new): no look-up first
            have = self.store.existing_digests(c, env.node, [(r["kind"], r["id"], r["version"]) for r in good]) \
                if self.store.is_sqlite else {}
            new, seen = [], set()
            for r in good:
                key = (r["kind"], r["id"], r["version"])
                text = protocol.canonical(r["payload"]).decode()
                digest = hashlib.sha256(text.encode()).hexdigest()
                old = have.get(key) or (digest if key in seen else None)
                if old is not None and old != digest:
                    rejected.append(changed_content(r["kind"], r["id"], r["version"]))
                    continue
                if old is None:
                    seen.add(key)
                    new.append({"node": env.node, "kind": r["kind"], "record_id": r["id"], "version": r["version"],
                                "payload": text, "digest": digest, "batch_id": env.batch_id, "day": day,
                                "received_at": at})
            new = self._insert_new(c, env.node, new, rejected)
            high = self.store.high_water(c, env.node)
            receipt = {   # signed only when a /v1 node asks for it (full_receipt)
                "high_water": max(high, env.header["to"]),   # highest outbox seq received from this node
                "type": "receipt", "node": env.node, "batch": env.batch_id, "from": env.header["from"],
                "to": env.header["to"], "records": len(recs), "stored": len(new),
                "accepted": len(recs) - len(rejected), "rejected": rejected, "at": at}
            c.execute(batches.insert().values(node=env.node, batch_id=env.batch_id, seq_from=env.header["from"],
                                              seq_to=env.header["to"], records=len(recs), bytes=size, via=via,
                                              day=day, received_at=at, receipt=json.dumps(receipt)))
            if not whole:
                self.store.drop_chunks(c, env.node, env.batch_id)
        return receipt

    def _insert_new(self, c, node: str, new: list[dict[str, Any]], rejected: list) -> list[dict[str, Any]]:
        """Insert the records no stored one had; returns those this batch stored. A worker storing
        an overlapping batch of the same node at the same moment may have stored some first: those
        are not counted twice, and one it stored with other content is rejected here as it would
        have been had it come first (docs/hub.md, "Many nodes at once")."""
        stored = self.store.insert_records(c, new)
        if len(stored) == len(new):
            return new
        lost = [r for r in new if (r["kind"], r["record_id"], r["version"]) not in stored]
        theirs = self.store.existing_digests(c, node, [(r["kind"], r["record_id"], r["version"]) for r in lost])
        for r in lost:
            if theirs.get((r["kind"], r["record_id"], r["version"])) != r["digest"]:
                rejected.append(changed_content(r["kind"], r["record_id"], r["version"]))
        return [r for r in new if (r["kind"], r["record_id"], r["version"]) in stored]

    # ---- downlink -----------------------------------------------------------------------------
    def pull(self, node: str, cursor: int, limit: int) -> dict[str, Any]:
        rows = self.store.downlink_page(node, cursor, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [{"kind": r["kind"], "id": r["record_id"], "version": r["version"],
                  "payload": json.loads(r["payload"])} for r in rows]
        if not items:       # nothing new: the shortest answer (nodes read items and more with defaults)
            return {"cursor": cursor}
        return {"items": items, "cursor": rows[-1]["seq"], "more": more}


def changed_content(kind: str, record_id: str, version: int) -> dict[str, Any]:
    """The receipt's entry for a record whose version is already stored with other content."""
    return {"kind": kind, "id": record_id, "version": version,
            "reason": f"version {version} of this {kind} is already stored with different content; "
                      "send it as a new version"}


def record_problem(r: dict[str, Any]) -> str | None:
    kind, rid, version, payload = r.get("kind"), r.get("id"), r.get("version"), r.get("payload")
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        return "kind must be 1-32 lower-case letters, digits or _"
    if not isinstance(rid, str) or not 0 < len(rid) <= 128:
        return "id must be a text of 1-128 characters"
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2 ** 31:
        return "version must be a positive integer"
    if not isinstance(payload, dict):
        return "payload must be an object"
    if record_codec.nesting(payload) > record_codec.MAX_DEPTH:
        return f"payload nests more than {record_codec.MAX_DEPTH} levels deep"
    if len(protocol.canonical(payload)) > MAX_RECORD_BYTES:
        return f"payload is larger than {MAX_RECORD_BYTES} bytes"
    missing = [k for k in REQUIRED.get(kind, ()) if payload.get(k) in (None, "")]
    if missing:
        return f"{kind} lacks {', '.join(missing)}"
    return None


def load_or_create_key(path: Path, suite: str = signing.DEFAULT_SUITE):
    if path.exists():
        return signing.load_key(path)
    key = signing.new_key(suite)
    signing.save_key(key, path)
    return key


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
