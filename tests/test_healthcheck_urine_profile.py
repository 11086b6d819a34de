"""The shipped urine strip-reader line profile: printed grades to stored grades, other items as
expected lines, a grade the table lacks refused; a profile's grades table is checked when it loads."""
from datetime import timezone

import pytest

from device_drivers.lines import profile

from checkday_support import NOW


def read(line: bytes):
    p = profile.load("urine-strip-reader-line")
    return [(r.code, r.value, r.unit) for r in profile.parse_line(p, line, device_id="u", received=NOW,
                                                                   tz=timezone.utc)]


@pytest.mark.parametrize("line, expected", [
    (b"PRO  -", [("20454-5", 0.0, "{grade}")]),
    (b"PRO  +-  0.15g/L", [("20454-5", 0.5, "{grade}")]),
    (b"GLU  4+  >=55mmol/L", [("25428-4", 4.0, "{grade}")]),
    (b"*KET 1+  1.5mmol/L", [("2514-8", 1.0, "{grade}")]),
    (b"BLD  3+  200Cell/uL", [("5794-3", 3.0, "{grade}")]),
    (b"LEU  -", []), (b"SG   1.015", []), (b"No.0012", []), (b"----------", []),
])
def test_lines(line, expected):
    assert read(line) == expected


def test_a_grade_the_table_lacks_is_a_frame_error():
    with pytest.raises(profile.LineFrameError):
        read(b"PRO  5+")


def test_a_grades_table_must_map_to_numbers():
    with pytest.raises(profile.ProfileError, match=r"values.g.grades"):
        profile.from_dict({"profile": {"name": "x", "kind": "analyser"},
                           "line": [{"pattern": "^PRO (?P<g>.+)$",
                                     "values": {"g": {"code": "20454-5", "unit": "{grade}", "grades": {"-": "neg"}}}}]})
