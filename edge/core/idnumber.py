"""公民身份号码 (GB 11643-1999): check character, birth date and sex.

Layout: 6-digit address code (GB/T 2260) + birth date YYYYMMDD + 3-digit sequence (odd = male,
even = female) + check character, ISO 7064 MOD 11-2 over the first 17 digits
(weights 2^(17-i) mod 11 = 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2; check = "10X98765432"[S mod 11]).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timezone

from .clock import local_date
from .errors import ValidationError


def N_(message: str) -> str:
    """Marks a message for translation; the web layer translates it when shown."""
    return message

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
# Province-level prefixes of GB/T 2260 (83 = residence permits of Taiwan residents).
PROVINCES = {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
             "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
             "65", "71", "81", "82", "83"}
SEX_MALE, SEX_FEMALE = "1", "2"          # GB/T 2261.1
EARLIEST_BIRTH = date(1880, 1, 1)


@dataclass(frozen=True)
class IdNumber:
    number: str
    birth_date: date
    sex: str            # GB/T 2261.1: "1" male, "2" female

    @property
    def address_code(self) -> str:
        return self.number[:6]


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if not re.fullmatch(r"\d{17}", first17):
        raise ValueError("need exactly 17 digits")
    s = sum(int(d) * w for d, w in zip(first17, WEIGHTS))
    return CHECK_CHARS[s % 11]


def normalise(text: str) -> str:
    """As typed -> 18 plain characters: full-width digits and X (NFKC), spaces between groups removed."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "")).upper()


def parse(text: str, *, today: date | None = None) -> IdNumber:
    """Validate an 18-character ID number; raise ValidationError (field id_number) saying why."""
    n = normalise(text)
    today = today or local_date(datetime.now(timezone.utc))
    if len(n) == 15 and n.isdigit():
        raise ValidationError(N_("This is an old 15-digit ID number; enter the 18-character number "
                              "printed on the second-generation ID card."), field="id_number")
    if not re.fullmatch(r"\d{17}[\dX]", n):
        raise ValidationError(N_("An ID number has 18 characters: 17 digits and a final digit or X."),
                              field="id_number")
    if n[:2] not in PROVINCES:
        raise ValidationError(N_("The ID number does not start with a known province code."), field="id_number")
    try:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        raise ValidationError(N_("Digits 7-14 of the ID number are not a real date of birth."),
                              field="id_number") from None
    if born > today or born < EARLIEST_BIRTH:
        raise ValidationError(N_("The date of birth in the ID number is not possible."), field="id_number")
    if check_char(n[:17]) != n[17]:
        raise ValidationError(N_("The last character of the ID number does not match the others: "
                              "a digit was probably mistyped."), field="id_number")
    sex = SEX_MALE if int(n[16]) % 2 == 1 else SEX_FEMALE
    return IdNumber(n, born, sex)


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except ValidationError:
        return False
    return True
