"""Records as the node sends them (edge/core/residents.py, edge/core/followup/records.py), taken
from a real node store's outbox, for the standard-document and forwarding tests."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

from edge.core import residents
from edge.core.followup import records
from edge.core.followup.validation import validate
from edge.core.store import Store
from sync.standards.identity import Clinic

NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
TODAY = date(2026, 11, 20)
CLINIC = Clinic("village-1", "东风村卫生室", "110101001001")
HTN_VISIT = {"visit_date": "2026-11-20", "visit_mode": "1", "symptoms": ["1"], "sbp": "138", "dbp": "86",
             "height": "165.0", "weight": "63.5", "bmi": "23.3", "heart_rate": "72", "classification": "1",
             "med_adherence": "1", "adverse_reaction": "1", "next_step": "1", "next_visit_date": "2026-12-20"}
DM_VISIT = {"visit_date": "2026-11-20", "visit_mode": "2", "symptoms": ["1"], "sbp": "128", "dbp": "78",
            "weight": "70.0", "bmi": "25.1", "dorsalis_pedis": "1", "fbg": "6.8", "hba1c": "6.9",
            "hba1c_date": "2026-11-01", "classification": "2", "med_adherence": "1", "adverse_reaction": "1",
            "hypoglycaemia": "1", "next_step": "2", "next_visit_date": "2026-12-04"}


HEALTH_CHECK = {"check_date": "2026-11-20", "symptoms": ["1"], "temperature": "36.6", "pulse": "74",
                "respiration": "18", "bp_left_sbp": "142", "bp_left_dbp": "88", "bp_right_sbp": "138",
                "bp_right_dbp": "86", "height": "165.0", "weight": "63.5", "waist": "86.0", "bmi": "23.3",
                "fbg": "6.1", "ecg": "2", "ecg_detail": "窦性心律；ST-T改变", "selfcare_meal": "1",
                "selfcare_grooming": "1", "selfcare_dressing": "1", "selfcare_toilet": "1",
                "selfcare_activity": "1"}


def health_check_records(tmp_path, extra: dict | None = None) -> list[tuple[str, str, int, dict]]:
    """(kind, record_id, version, payload) of one resident and one 健康体检表 (and its correction), in
    outbox order, made by the node's own code (edge/core/healthcheck) on a store on disk; `extra`:
    more of the form's fields as posted (the tables of rows, for instance)."""
    from edge.core.healthcheck import records as hc_records
    from edge.core.healthcheck.validation import validate as hc_validate
    store = Store(tmp_path / "node-hc.db")
    rid = residents.create(store, {"name": "李秀兰", "id_number": id_number(7), "sex": "1", "birth_date": "1958-03-07"},
                           division_code="110101001001", now=NOW, actor="doc", today=TODAY)
    v = hc_validate({**HEALTH_CHECK, **(extra or {})}, today=TODAY, age=68)
    assert not v.errors, v.errors
    first = hc_records.save(store, resident_id=rid, values=v.values, actor="doc", at=NOW)
    hc_records.save(store, resident_id=rid, values={**v.values, "pulse": 76}, actor="doc", at=NOW,
                    check_id=first.id, reason="脉率复测")
    with store.atomic() as conn:
        rows = conn.execute("SELECT kind, record_id, version, payload FROM outbox"
                            " WHERE kind IN ('resident', 'health_check') ORDER BY seq").fetchall()
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def node_records(tmp_path, count: int = 1) -> list[tuple[str, str, int, dict]]:
    """(kind, record_id, version, payload) of `count` residents each with a hypertension and a
    diabetes follow-up, in outbox order, made by the node's own code on a store on disk."""
    return make_records(Store(tmp_path / "node.db"), count)


def make_records(store, count: int) -> list[tuple[str, str, int, dict]]:
    """`node_records` written into the given node store (a node's own, for direct sending)."""
    for i in range(count):
        rid = residents.create(store, {"name": f"张{i}华", "id_number": id_number(i), "sex": "1",
                                       "birth_date": "1958-03-07", "phone": "13800138000", "address": "东风村3组",
                                       "htn": "1", "htn_diagnosed_on": "2020-01-01", "t2dm": "1",
                                       "t2dm_diagnosed_on": "2021-01-01"},
                               division_code="110101001001", now=NOW, actor="doc", today=TODAY)
        for form, raw in (("hypertension", HTN_VISIT), ("diabetes", DM_VISIT)):
            v = validate(form, raw, today=TODAY)
            assert not v.errors, v.errors
            records.save(store, resident_id=rid, form=form, values=v.values, actor="doc", at=NOW)
    with store.atomic() as conn:
        rows = conn.execute("SELECT kind, record_id, version, payload FROM outbox"
                            " WHERE kind IN ('resident', 'followup') ORDER BY seq").fetchall()
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def id_number(i: int) -> str:
    """A valid 18-digit GB 11643 number (check digit computed)."""
    body = f"11010119580307{i % 100:02d}1"       # 17th digit odd: male
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]
