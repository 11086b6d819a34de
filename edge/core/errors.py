"""The exception tree of edge.core. Callers catch these, not sqlite3's or OSError."""


class CoreError(Exception):
    """Base of every error edge.core raises on purpose."""


class StoreError(CoreError):
    """The store cannot be used as asked."""


class StoreFull(StoreError):
    """The data partition is full: nothing was written; retry once there is space again."""


class StoreDamaged(StoreError):
    """The database file failed its integrity check; the message says how to restore."""


class ValidationError(CoreError):
    """Input that cannot be accepted. `field` names what to fix; the message says why."""

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.field = field
        self.code = code


class NotFound(CoreError):
    """The record asked for does not exist."""


class BundleRefused(CoreError):
    """An update bundle that is unsigned, tampered, older or malformed: nothing was changed."""


class MigrationConflict(StoreError):
    """Two modules registered the same migration version: the node refuses to start."""
