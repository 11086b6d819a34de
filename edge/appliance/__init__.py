"""The appliance: first boot, signed updates with rollback, backups, `doctor` (issue 8).

Part of edge/ (the front door): imports edge.core only; never device_drivers or sync. First boot
reaches the sync client's enrollment through an entry point (edge/core/enrollment.py).
"""
