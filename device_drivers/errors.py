"""Exception tree of the drivers. Each protocol's parser raises its own subclass of FrameError."""


class DriverError(Exception):
    """A driver cannot do what it was asked (bad config, port missing...)."""


class FrameError(DriverError):
    """Bytes from a device that cannot be turned into readings. The message says why."""
