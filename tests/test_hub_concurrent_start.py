"""Two hub workers (or a hub and `hub enroll-code`) started at once on a fresh data directory each
make the county CA and the hub's server certificate. Without agreement one writes the CA key and
the other its certificate: the hub then cannot sign a node certificate the nodes accept, and its
TLS server refuses to start ("key values mismatch"). They must end up with one CA, one server
key and certificate that belong together."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

START = """
import sys
from datetime import datetime, timezone
from pathlib import Path
from sync import pki
from sync.hub import ca
hub = Path(sys.argv[1])
county = ca.load_or_create(hub)
cert, key = county.server_files(["localhost", "127.0.0.1"], now=datetime.now(timezone.utc))
print(pki.cert_fingerprint(county.cert), pki.cert_fingerprint(pki.load_cert(cert.read_bytes())))
"""


def _start_together(hub: Path, n: int) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-c", START, str(hub)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def _public_der(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_hubs_starting_at_once_on_a_new_data_directory_agree_on_one_county_ca_and_server_key(tmp_path):
    from sync import pki
    from sync.hub import ca

    for attempt in range(3):
        hub = tmp_path / f"round{attempt}" / "hub"
        results = _start_together(hub, 8)
        failed = [r.stderr.strip().splitlines()[-1] for r in results if r.returncode != 0]
        assert not failed, f"round {attempt}: {len(failed)} of 8 starts crashed: {failed[:3]}"
        assert len({r.stdout.split()[0] for r in results}) == 1, f"round {attempt}: several county CAs"

        county = ca.load(hub)
        assert _public_der(county.cert.public_key()) == _public_der(county.key.public_key())
        server_cert = pki.load_cert((hub / "tls" / "hub-cert.pem").read_bytes())
        server_key = pki.load_key(hub / "tls" / "hub-key.pem")
        assert _public_der(server_cert.public_key()) == _public_der(server_key.public_key())
        assert pki.issued_by(server_cert, county.cert)
