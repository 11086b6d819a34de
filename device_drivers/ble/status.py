"""BLE's status contribution (entry point `clinic_edge.status` "ble", contract in
edge/core/status.py): its lines in `clinic-edge doctor`. A Bluetooth device registered without a
radio address is never connected to, so no reading of it ever arrives. Imports edge.core only."""
from __future__ import annotations

from datetime import datetime

from edge.core.status import Finding

from . import tables


def findings(node, now: datetime) -> list[Finding]:
    addressed = tables.ble_devices(node.store, addressed=True)
    missing = tables.ble_devices(node.store, addressed=False)
    if not addressed and not missing:
        return []   # no Bluetooth device at this clinic: nothing to say
    out = [Finding("bluetooth", "ok", f"{len(addressed)} of {len(addressed) + len(missing)} Bluetooth devices "
                                      "have an address: "
                                      + (", ".join(f"{d['id']} {d['ble_address']}" for d in addressed) or "-"))]
    for d in missing:
        out.append(Finding(f"bluetooth {d['id']}", "warning", "no Bluetooth address: the driver never connects to it",
                           f"clinic-edge device remove {d['id']}; then clinic-edge device add {d['id']} --kind "
                           f"{d['kind']} --transport ble --address ADDRESS (find it with clinic-edge device scan)"))
    return out
