"""ASTM E1381 (link layer) and E1394 (records) from point-of-care analysers on a serial port.

`codec` frames and checksums, `link` is the pure receiver state machine (bytes + clock in,
actions out), `records` parses E1394 records, `results` maps them to readings, `driver` is the
thin serial I/O part.
"""
