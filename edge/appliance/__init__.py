"""The appliance: first boot, signed updates with rollback, backups, `doctor` (issue 8).

Part of edge/ (the front door): imports edge.core only; never device_drivers or sync, which it
reaches as subprocesses (`clinic-edge enroll ...`) the way systemd does.
"""
