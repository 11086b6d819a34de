"""What the check-day and health-check tests share: the check day (2026-12-03, the box clock stopped
at 09:00 in Shanghai, conftest.SetClock) and residents written straight into a real store."""
from __future__ import annotations

from datetime import date, datetime, timezone

TZ = "Asia/Shanghai"
NOW = datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)        # 09:00 in Shanghai
CHECK_DAY = date(2026, 12, 3)


def add_resident(store, rid: str, *, name: str, birth: str, id_number: str | None = None) -> None:
    """A resident row as registration leaves it (sex 1, created 2026-01-01), without the services."""
    with store.atomic() as conn:
        conn.execute("INSERT INTO residents (id, name, id_number, birth_date, sex, created_at, updated_at)"
                     " VALUES (?,?,?,?,?,?,?)", (rid, name, id_number, birth, "1", "2026-01-01T00:00:00Z",
                                                 "2026-01-01T00:00:00Z"))
