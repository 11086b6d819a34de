"""Bluetooth Low Energy health devices: the Bluetooth SIG GATT health services.

Pure parsers (one module per characteristic family, `bytes -> list[Reading]`, each raising only
its own FrameError subclass), the Record Access Control Point, a connection manager behind a small
adapter interface (`adapter.py`), a thin bleak adapter and a fake one that replays recorded sessions.
"""
