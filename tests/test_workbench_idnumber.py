"""GB 11643 ID numbers: the ISO 7064 MOD 11-2 check character, birth date and sex.

Valid numbers: 11010519491231002X and 440524188001010014 are the standard's own examples (GB 11643-1999,
also in python-stdnum's cn.ric docs); 360426199101010071 and 120103198806018241 come from stdnum's
test files; 110101202311012176 from the china_identification_card crate's tests
(docs/domain.md §3)."""
from datetime import date

import pytest

from edge.core import idnumber
from edge.core.errors import ValidationError

VALID = [
    ("11010519491231002X", date(1949, 12, 31), "2"),
    ("440524188001010014", date(1880, 1, 1), "1"),
    ("11010219840406970X", date(1984, 4, 6), "2"),
    ("360426199101010071", date(1991, 1, 1), "1"),
    ("120103198806018241", date(1988, 6, 1), "2"),
    ("110101202311012176", date(2023, 11, 1), "1"),
]


@pytest.mark.parametrize("number,born,sex", VALID)
def test_published_numbers_are_valid_and_give_birth_date_and_sex(number, born, sex):
    ident = idnumber.parse(number, today=date(2026, 11, 23))
    assert (ident.birth_date, ident.sex) == (born, sex)
    assert idnumber.check_char(number[:17]) == number[17]


def test_lower_case_x_and_spaces_are_accepted():
    assert idnumber.parse(" 11010519491231002x ").number == "11010519491231002X"


@pytest.mark.parametrize("number,why", [
    ("360426199101010072", "last character"),        # stdnum: bad check digit
    ("110105194912310021", "last character"),
    ("11010519491231002", "18 characters"),
    ("110105491231002", "15-digit"),
    ("11010519491331002X", "real date"),             # month 13
    ("991005194912310021", "province"),
    ("110105210012310025", "not possible"),          # born in 2100
])
def test_invalid_numbers_are_refused_with_a_reason(number, why):
    with pytest.raises(ValidationError) as e:
        idnumber.parse(number, today=date(2026, 11, 23))
    assert why in str(e.value)
    assert e.value.field == "id_number"


def test_every_single_digit_typo_is_caught():
    number = "11010519491231002X"
    for i in range(17):
        for d in "0123456789":
            if d != number[i]:
                typo = number[:i] + d + number[i + 1:]
                assert idnumber.check_char(typo[:17]) != typo[17]
