"""Dependencies point one way (docs/architecture.md): device_drivers, sync, edge.web, edge.reports -> edge.core.

Checked on the source, so a new import that breaks the direction fails here."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# edge/cli.py is the front door and composition root: it may start the web app (`serve`).
COMPOSITION_ROOTS = {"edge/cli.py"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}
            elif node.module:
                found.add(node.module)
    return found


def sources(folder: str):
    for p in sorted((ROOT / folder).rglob("*.py")):
        yield p.relative_to(ROOT).as_posix(), imports(p)


def starts(mods: set[str], *prefixes: str) -> set[str]:
    return {m for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_core_imports_nothing_above_it():
    bad = {f: starts(m, "flask", "edge.web", "edge.reports", "edge.cli", "device_drivers", "sync")
           for f, m in sources("edge/core")}
    assert {f: m for f, m in bad.items() if m} == {}


def test_edge_never_imports_drivers_or_sync():
    bad = {f: starts(m, "device_drivers", "sync") for f, m in sources("edge")}
    assert {f: m for f, m in bad.items() if m} == {}


def test_nothing_imports_the_web_app():
    bad = {}
    for folder in ("edge", "device_drivers", "sync"):
        for f, m in sources(folder):
            if f.startswith("edge/web/") or f in COMPOSITION_ROOTS:
                continue
            if starts(m, "edge.web"):
                bad[f] = starts(m, "edge.web")
    assert bad == {}


def test_drivers_and_sync_use_only_edge_core():
    bad = {}
    for folder in ("device_drivers", "sync"):
        for f, m in sources(folder):
            above = starts(m, "edge") - starts(m, "edge.core")
            if above:
                bad[f] = above
    assert bad == {}


def test_reports_depend_only_on_core():
    bad = {f: starts(m, "edge.web", "flask", "device_drivers", "sync") for f, m in sources("edge/reports")}
    assert {f: m for f, m in bad.items() if m} == {}


def test_the_node_client_and_the_county_hub_never_import_each_other():
    """The node's sync client and the county's server are two programs that talk only over the
    wire (sync.protocol is what they share); the demo runs the hub as the process it is."""
    bad = {f: starts(m, "sync.hub") for f, m in sources("sync/client")}
    bad |= {f: starts(m, "sync.client") for f, m in sources("sync/hub")}
    assert {f: m for f, m in bad.items() if m} == {}


def test_core_names_no_module_above_it():
    """edge.core finds the parts above it through entry points (edge/core/parts.py), never by a
    module name in its source (an import_module("sync...") would be an arrow running back)."""
    import re

    above = re.compile(r"(sync|device_drivers)(\.\w+)+(:\w+)?")
    bad = {}
    for p in sorted((ROOT / "edge/core").rglob("*.py")):
        names = [n.value for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str) and above.fullmatch(n.value)]
        if names:
            bad[p.relative_to(ROOT).as_posix()] = names
    assert bad == {}


def contributed_modules() -> set[str]:
    """The modules named in the migration and status entry-point groups of pyproject.toml."""
    import tomllib

    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    return {target.split(":")[0] for group in ("clinic_edge.migrations", "clinic_edge.status")
            for target in groups[group].values()}


def test_tables_and_status_modules_import_only_core():
    """Core, the web app and doctor load these in every process: they may import edge.core and
    one another, nothing else of this project (not the package's drivers, network or crypto)."""
    targets = contributed_modules()
    assert {"sync.client.tables", "sync.client.status", "device_drivers.ble.tables",
            "device_drivers.ble.status", "device_drivers.mqtt.tables"} <= targets
    packages = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 1)}
    bad = {}
    for module in sorted(targets):
        own = starts(imports(ROOT / (module.replace(".", "/") + ".py")), "edge", "sync", "device_drivers")
        wrong = {m for m in own if not starts({m}, "edge.core") and m not in targets | packages}
        if wrong:
            bad[module] = wrong
    for package in sorted(packages):   # their __init__ runs too
        own = starts(imports(ROOT / package.replace(".", "/") / "__init__.py"), "edge", "sync", "device_drivers")
        if own:
            bad[package] = own
    assert bad == {}


def test_the_standard_documents_depend_on_nothing_of_ours_but_edge_core():
    """sync.standards (docs/interop.md) is shared by the hub's forwarder and a node that sends
    directly: it may import edge.core, never the hub, the node's sync client, the web app or drivers."""
    bad = {f: starts(m, "sync.hub", "sync.client", "edge.web", "edge.reports", "edge.cli", "device_drivers", "flask")
           for f, m in sources("sync/standards")}
    assert {f: m for f, m in bad.items() if m} == {}


def test_the_delivery_of_documents_is_shared_and_imports_neither_side():
    """sync.delivery (docs/interop.md §5, §6) is the transports and delivery states the hub's
    forwarder and a node sending directly both use: never the hub, the node's client or the web app."""
    bad = {f: starts(m, "sync.hub", "sync.client", "sync.protocol", "sync.signing", "sync.record_codec", "edge.web",
                     "edge.reports", "edge.cli",
                     "device_drivers", "flask", "sqlalchemy")
           for f, m in sources("sync/delivery")}
    assert {f: m for f, m in bad.items() if m} == {}
    assert starts(imports(ROOT / "sync/hub/forwarding.py"), "sync.delivery")
