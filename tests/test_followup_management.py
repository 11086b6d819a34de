"""One source of truth for enrolment: the resident form's 高血压/糖尿病 ticks write
chronic_management (edge/core/management.py); the reports and the worklist count exactly the
ticked residents; ending management (死亡/迁出/失访) keeps the history for past periods."""
from datetime import date, datetime, timezone

import pytest

from edge.core import audit, idnumber, management, residents
from edge.core.errors import ValidationError
from edge.core.store import Store
from edge.reports import source
from edge.reports.population import month

NOW = datetime(2026, 6, 10, 2, 0, tzinfo=timezone.utc)
DIV = "110101001001"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    yield s
    s.close()


def register(store, name, first17, **extra):
    number = first17 + idnumber.check_char(first17)
    return residents.create(store, {"name": name, "id_number": number, **extra}, division_code=DIV,
                            now=NOW, actor="doc")


def test_ticks_on_the_resident_form_are_what_reports_and_worklist_count(store):
    a = register(store, "张秀英", "11010519491231002", htn="on", htn_diagnosed_on="2019-04-01")
    b = register(store, "王建国", "11010119620315001", t2dm="on")          # no date: managed from today
    register(store, "李小红", "11010119900101123")                          # not ticked: not counted
    assert management.active(store, a) == {"hypertension": "2019-04-01"}
    assert management.active(store, b) == {"diabetes": "2026-06-10"}
    r = source.report(store, month(2026, 6), "Asia/Shanghai")
    assert r["managed_hypertension"].numerator == (a,)
    assert r["managed_diabetes"].numerator == (b,)
    wl = source.build_worklist(store, NOW.date())
    assert {i.resident_id for i in wl.overdue + wl.due} == {a, b}
    # unticking on the form ends the management (录入更正) and the flag follows
    rec = residents.get(store, b)
    residents.update(store, b, {**rec, "t2dm": ""}, now=NOW, actor="doc")
    assert management.active(store, b) == {}
    assert residents.get(store, b)["t2dm"] == 0
    [h] = management.history(store, b)
    assert (h["ended_on"], h["end_reason"]) == ("2026-06-10", "corrected")
    assert source.report(store, month(2026, 6), "Asia/Shanghai")["managed_diabetes"].numerator == ()


def test_end_management_keeps_history_for_past_periods(store):
    a = register(store, "张秀英", "11010519491231002", htn="on", htn_diagnosed_on="2019-04-01")
    with pytest.raises(ValidationError):
        management.end(store, resident_id=a, disease="hypertension", on=date(2026, 5, 3), reason="asleep",
                       actor="doc", at=NOW)
    management.end(store, resident_id=a, disease="hypertension", on=date(2026, 5, 3), reason="died",
                   actor="doc", at=NOW)
    assert residents.get(store, a)["htn"] == 0                                # derived flag follows
    assert source.report(store, month(2026, 4), "Asia/Shanghai")["managed_hypertension"].numerator == (a,)
    assert source.report(store, month(2026, 6), "Asia/Shanghai")["managed_hypertension"].numerator == ()
    wl = source.build_worklist(store, NOW.date())
    assert not (wl.overdue or wl.due or wl.not_seen or wl.urgent)
    actions = [h["action"] for h in audit.history(store.conn, "chronic_management", f"{a}:hypertension")]
    assert actions == ["management.enrol", "management.end"]
    kinds = [r["kind"] for r in store.query("SELECT kind FROM outbox WHERE record_id LIKE ? ORDER BY rowid", (a + "%",))]
    assert kinds[-2:] == ["resident", "chronic_management"]                   # new flag + the end, sent upstream
    assert audit.verify(store.conn).ok
    rec = residents.get(store, a)                                             # editing the phone later
    residents.update(store, a, {**rec, "phone": "13800138000"}, now=NOW, actor="doc")
    assert management.active(store, a) == {} and residents.get(store, a)["htn_diagnosed_on"] == "2019-04-01"
    with pytest.raises(ValidationError):                                      # already ended
        management.end(store, resident_id=a, disease="hypertension", on=date(2026, 6, 1), reason="moved",
                       actor="doc", at=NOW)


def test_end_management_from_the_resident_page(env):
    import re
    from edge.core import config as config_mod
    from edge.core.node import Node
    from edge.web import create_app
    from followup_support import login, seed
    node = Node(config_mod.load(env=env))
    try:
        app = create_app(node=node)
        seed(node.store)
        client = app.test_client()
        login(client)
        page = client.get("/residents/R1").text
        assert "2024-01-01 起纳入管理" in page and 'id="followup-hypertension"' in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        today = node.clock.now().date().isoformat()
        r = client.post("/residents/R1/management/hypertension/end",
                        data={"csrf_token": token, "end_reason": "moved", "ended_on": today})
        assert r.status_code == 303
        page = client.get("/residents/R1").text
        assert f"{today} 终止" in page and "迁出" in page and "已终止管理" in page
        assert 'id="followup-hypertension"' not in page                   # the flag is derived: gone
        assert management.active(node.store, "R1") == {}
        wl = client.get("/api/v1/worklist").get_json()
        assert "R1" not in str(wl)
    finally:
        node.close()
