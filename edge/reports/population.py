"""The plain records the reports are computed from (loaded by `source`, built by hand in tests)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

HYPERTENSION, DIABETES = "hypertension", "diabetes"
DISEASES = (HYPERTENSION, DIABETES)
FACE_TO_FACE = ("1", "2")   # 门诊, 家庭 (电话 is not face to face)


@dataclass(frozen=True)
class Patient:
    resident_id: str
    name: str = ""
    birth_date: date | None = None
    managed: dict[str, date] | None = None     # disease -> date management began (纳入管理)
    ended: dict[str, date] | None = None       # disease -> date management ended (死亡/迁出/失访...)

    def managed_since(self, disease: str) -> date | None:
        return (self.managed or {}).get(disease)

    def managed_on(self, disease: str, day: date) -> bool:
        """Under management on `day`: begun by then and not ended on or before it."""
        since, ended = self.managed_since(disease), (self.ended or {}).get(disease)
        return since is not None and since <= day and (ended is None or ended > day)


@dataclass(frozen=True)
class Visit:
    resident_id: str
    form: str                          # hypertension | diabetes
    visit_date: date
    visit_mode: str = "1"
    sbp: float | None = None
    dbp: float | None = None
    fbg: float | None = None
    classification: str | None = None
    next_step: str | None = None
    next_visit_date: date | None = None
    bp_source: str | None = None       # 'device' when the BP came from a device reading
    id: str = ""

    @property
    def face_to_face(self) -> bool:
        return self.visit_mode in FACE_TO_FACE


@dataclass(frozen=True)
class Period:
    kind: str            # month | quarter | year
    start: date
    end: date            # inclusive

    @property
    def label(self) -> str:
        if self.kind == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        if self.kind == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        return str(self.start.year)

    @property
    def year_start(self) -> date:
        return date(self.end.year, 1, 1)


def month(year: int, m: int) -> Period:
    nxt = date(year + (m == 12), m % 12 + 1, 1)
    return Period("month", date(year, m, 1), date.fromordinal(nxt.toordinal() - 1))


def quarter(year: int, q: int) -> Period:
    first = 3 * (q - 1) + 1
    return Period("quarter", date(year, first, 1), month(year, first + 2).end)


def year(y: int) -> Period:
    return Period("year", date(y, 1, 1), date(y, 12, 31))


def quarter_of(day: date) -> Period:
    return quarter(day.year, (day.month - 1) // 3 + 1)


def parse_period(text: str) -> Period:
    """'2026-03' (month), '2026-Q1' (quarter) or '2026' (year)."""
    try:
        if "-Q" in text.upper():
            y, q = text.upper().split("-Q")
            if int(q) not in (1, 2, 3, 4):
                raise ValueError
            return quarter(int(y), int(q))
        if "-" in text:
            y, m = text.split("-")
            if not 1 <= int(m) <= 12:
                raise ValueError
            return month(int(y), int(m))
        return year(int(text))
    except ValueError:
        raise ValueError(f"period {text!r} is not YYYY-MM, YYYY-Qn or YYYY") from None
