"""老年人生活自理能力评估表: the scores printed on the form, the total and the band at each edge."""
import pytest

from edge.core.healthcheck import selfcare


def levels(**kw):
    return {"meal": "1", "grooming": "1", "dressing": "1", "toilet": "1", "activity": "1", **kw}


@pytest.mark.parametrize("total, band", [(0, "1"), (3, "1"), (4, "2"), (8, "2"), (9, "3"), (18, "3"),
                                         (19, "4"), (37, "4")])
def test_band_at_each_edge(total, band):
    assert selfcare.band(total) == band


@pytest.mark.parametrize("total", [-1, 38])
def test_a_total_outside_the_form_is_refused(total):
    with pytest.raises(ValueError):
        selfcare.band(total)


@pytest.mark.parametrize("chosen, total, band", [
    (levels(), 0, "1"),
    (levels(meal="3"), 3, "1"),                                  # 3: still 可自理
    (levels(meal="3", grooming="2"), 4, "2"),                    # 4: 轻度依赖
    (levels(meal="3", dressing="4"), 8, "2"),                    # 8
    (levels(meal="3", dressing="4", toilet="2"), 9, "3"),        # 9: 中度依赖
    (levels(grooming="3", toilet="4", activity="3"), 18, "3"),                   # 3+10+5: 18
    (levels(grooming="3", toilet="4", activity="3", dressing="4"), 23, "4"),
    (levels(meal="4", grooming="3", toilet="4", activity="2"), 19, "4"),         # 5+3+10+1: 19
    (levels(meal="4", grooming="4", dressing="4", toilet="4", activity="4"), 37, "4"),
])
def test_scores_total_and_band(chosen, total, band):
    a = selfcare.assess(chosen)
    assert (a.total, a.band) == (total, band)


def test_item_scores_are_the_forms():
    assert {i.name: i.scores for i in selfcare.ITEMS} == {
        "meal": {"1": 0, "3": 3, "4": 5}, "grooming": {"1": 0, "2": 1, "3": 3, "4": 7},
        "dressing": {"1": 0, "3": 3, "4": 5}, "toilet": {"1": 0, "2": 1, "3": 5, "4": 10},
        "activity": {"1": 0, "2": 1, "3": 5, "4": 10}}


def test_read_refuses_a_level_the_item_does_not_have_and_a_missing_item():
    a, _, errors = selfcare.read({"selfcare_meal": "2", "selfcare_grooming": "1"})
    assert a is None
    assert errors == {"selfcare_meal": "level", "selfcare_dressing": "missing", "selfcare_toilet": "missing",
                      "selfcare_activity": "missing"}
    assert selfcare.read({}) == (None, {}, {})
