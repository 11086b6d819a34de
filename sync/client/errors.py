"""The sync client's exception tree."""


class SyncError(Exception):
    """Base of every error sync.client raises on purpose."""


class NotEnrolled(SyncError):
    """This node has no identity at a hub yet: run `clinic-edge enroll --hub URL --code CODE`."""


class LinkError(SyncError):
    """The link failed (connect, timeout, reset, truncated answer, 5xx): retry later, it is safe."""

    def __init__(self, message: str, status: int | None = None, sent_bytes: int = 0):
        super().__init__(message)
        self.status = status
        self.sent_bytes = sent_bytes      # what the attempt may have cost on a metered link


class HubBusy(LinkError):
    """The hub answered 503 (or 429) with a Retry-After: a polite "later", not a failure. `retry_after`
    is the wait in seconds, already capped ([sync] retry_after_cap_seconds, docs/hub.md)."""

    def __init__(self, message: str, retry_after: float, status: int = 503, sent_bytes: int = 0):
        super().__init__(message, status=status, sent_bytes=sent_bytes)
        self.retry_after = retry_after


class HubRefused(SyncError):
    """The hub answered and said no (4xx). Retrying the same request will not help."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"hub refused ({status}): {reason}")
        self.status = status
        self.reason = reason


class BudgetExhausted(SyncError):
    """Today's byte budget is spent; bulk records wait for tomorrow (urgent ones still go)."""


class HubUntrusted(SyncError):
    """The hub did not prove it is the county's (wrong key, bad signature) or the link to it
    would be readable (plain http:// off this machine). Retrying will not help; fix the setting."""
