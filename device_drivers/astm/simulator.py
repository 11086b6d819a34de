"""A simulated analyser: the sending side of E1381 on a file descriptor (the master of a pty).

Used by the tests and the benchmark; it follows the sender rules (ENQ, wait for ACK, frames
answered by ACK/NAK, retransmit up to 6 times, then EOT) and lets a test misbehave on purpose.
"""
from __future__ import annotations

import os
import select
import time

from .codec import ACK, ENQ, EOT, NAK, split_message

REPLIES = (ACK, NAK, EOT, ENQ)


class NoReply(Exception):
    pass


class Analyser:
    def __init__(self, fd: int, *, reply_timeout: float = 5.0):
        self.fd = fd
        self.reply_timeout = reply_timeout
        self.replies: list[bytes] = []      # every reply byte received, in order
        self.last_write_at = 0.0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.last_write_at = time.perf_counter()

    def reply(self, timeout: float | None = None) -> bytes:
        """The next ACK/NAK/EOT/ENQ the node sends; raises NoReply after the timeout."""
        deadline = time.monotonic() + (self.reply_timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise NoReply("the node did not answer")
            byte = os.read(self.fd, 1)
            if byte in REPLIES:
                self.replies.append(byte)
                return byte

    def establish(self) -> bytes:
        self.write(ENQ)
        return self.reply()

    def send_frame(self, frame: bytes, *, retries: int = 6, on_last_ack=None) -> bytes:
        """Send one frame, retransmitting on NAK up to `retries` times; returns the final reply."""
        for _ in range(retries + 1):
            self.write(frame)
            answer = self.reply()
            if answer != NAK:
                return answer
        return NAK

    def transmit(self, text: bytes, *, frame_size: int = 240, on_final_ack=None) -> bool:
        """A whole session: ENQ, the message's frames, EOT. False when it had to abort."""
        if self.establish() != ACK:
            return False
        frames = split_message(text, size=frame_size)
        for i, frame in enumerate(frames):
            answer = self.send_frame(frame)
            if answer != ACK:
                self.write(EOT)
                return False
            if i == len(frames) - 1 and on_final_ack:
                on_final_ack()
        self.write(EOT)
        return True
