"""The errors of the sync wire format (sync.protocol, sync.signing, sync.record_codec): bytes that are not
a valid, correctly signed message, or a batch larger than a hub decodes."""
from __future__ import annotations


class ProtocolError(Exception):
    """Bytes that are not a valid, correctly signed message. The message says what is wrong."""


class BadSignature(ProtocolError):
    pass


class TooBig(ProtocolError):
    """A well-formed batch that is larger than the hub decodes; send it in smaller batches."""
