"""No dependency range allows a release with a known advisory (issue 14 item 9).

security/advisories.toml is the offline list (package, affected range, fixed release, id, url).
Each range in pyproject.toml is turned into one interval of versions and intersected with each
affected range: any overlap means `pip install` could still pick a vulnerable release."""
import tomllib
from importlib.metadata import PackageNotFoundError, version as installed_version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
ADVISORIES = tomllib.loads((ROOT / "security" / "advisories.toml").read_text())["advisory"]


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def interval(spec: SpecifierSet):
    """(low, low_included, high, high_included) of the versions the set allows; None = unbounded.
    `!=` exclusions are ignored (they never make a range safer than its bounds)."""
    low, low_in, high, high_in = None, True, None, True

    def raise_low(v, included):
        nonlocal low, low_in
        if low is None or v > low or (v == low and not included):
            low, low_in = v, included

    def cut_high(v, included):
        nonlocal high, high_in
        if high is None or v < high or (v == high and not included):
            high, high_in = v, included

    for s in spec:
        op, text = s.operator, s.version
        if op == "==" and text.endswith(".*"):
            prefix = Version(text[:-2]).release
            raise_low(Version(".".join(map(str, prefix))), True)
            cut_high(Version(".".join(map(str, prefix[:-1] + (prefix[-1] + 1,)))), False)
            continue
        v = Version(text) if op not in ("!=", "===") else None
        if op in (">=", ">"):
            raise_low(v, op == ">=")
        elif op in ("<=", "<"):
            cut_high(v, op == "<=")
        elif op == "==":
            raise_low(v, True)
            cut_high(v, True)
        elif op == "~=":
            raise_low(v, True)
            prefix = v.release[:-1]
            cut_high(Version(".".join(map(str, prefix[:-1] + (prefix[-1] + 1,)))), False)
    return low, low_in, high, high_in


def overlap(a: SpecifierSet, b: SpecifierSet) -> bool:
    a_low, a_low_in, a_high, a_high_in = interval(a)
    b_low, b_low_in, b_high, b_high_in = interval(b)
    lows = [(v, inc) for v, inc in ((a_low, a_low_in), (b_low, b_low_in)) if v is not None]
    highs = [(v, inc) for v, inc in ((a_high, a_high_in), (b_high, b_high_in)) if v is not None]
    if not lows or not highs:
        return True
    low, low_in = max(lows, key=lambda p: (p[0], not p[1]))
    high, high_in = min(highs, key=lambda p: (p[0], p[1]))
    return low < high or (low == high and low_in and high_in)


def test_every_advised_package_is_pinned_in_pyproject():
    missing = sorted({a["package"] for a in ADVISORIES} - set(requirements()))
    assert not missing, f"list these in pyproject.toml with a floor past their advisories: {missing}"


def test_no_pinned_range_allows_a_release_with_a_known_advisory():
    reqs = requirements()
    allowed = []
    for a in ADVISORIES:
        req = reqs.get(canonicalize_name(a["package"]))
        if req is not None and overlap(req.specifier, SpecifierSet(a["affected"])):
            allowed.append(f"{a['package']} {req.specifier} allows {a['affected']} "
                           f"({a['id']}, fixed in {a['fixed']}: {a['url']})")
    assert not allowed, "raise these floors:\n" + "\n".join(allowed)


def test_the_installed_releases_have_no_known_advisory():
    affected = []
    for a in ADVISORIES:
        try:
            v = installed_version(a["package"])
        except PackageNotFoundError:
            continue
        if SpecifierSet(a["affected"]).contains(v, prereleases=True):
            affected.append(f"{a['package']} {v}: {a['id']} (fixed in {a['fixed']})")
    assert not affected, "reinstall (./run test --collect-only -q):\n" + "\n".join(affected)


def test_every_advisory_names_its_fix_outside_the_affected_range():
    for a in ADVISORIES:
        assert not SpecifierSet(a["affected"]).contains(a["fixed"]), a["id"]
        assert a["url"].startswith("https://") and a["id"], a


@pytest.mark.parametrize("pinned,affected,expected", [
    (">=42,<47", ">=44.0.0,<50.0.0", True),          # the old cryptography pin
    (">=50.0.2,<51", ">=44.0.0,<50.0.0", False),
    (">=50.0.0", "<50.0.0", False),
    (">=49.9", "<50.0.0", True),
    ("~=3.1", "<3.1.3", True),
    ("~=3.1.3", ">=3.2", False),
    ("==3.1.*", ">=3.1.0,<3.1.1", True),
    ("==3.0.2", "<3.0.1", False),
    ("", "<1", True),                                # no range at all allows everything
    (">=2.0,<2.1", ">=2.1", False),
    (">=2.0,<=2.1", ">=2.1", True),
])
def test_the_range_check_itself(pinned, affected, expected):
    assert overlap(SpecifierSet(pinned), SpecifierSet(affected)) is expected
