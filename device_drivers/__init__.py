"""Device drivers: one module per transport/protocol. Each has a pure parser (bytes -> Reading,
raising only its own FrameError) and a thin I/O part. Drivers hand readings to
edge.core.ingest.ingest() and never touch the database or the web app otherwise."""
