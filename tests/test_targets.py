"""Targets from the config: validation naming the key, and progress against hand-set figures."""

import math

import pytest

from rxrepurchase.targets import (
    TargetsError,
    chain_and_store_progress,
    read_targets,
    target_progress,
    targets_for_store,
)

TARGETS = {"chain": {"user_repurchase_rate": 0.7},
           "store": {"user_repurchase_rate": 0.55, "active_members": 100},
           "stores": {"S01": {"user_repurchase_rate": 0.6}}}


def test_targets_are_read_and_a_store_own_target_wins():
    targets = read_targets(TARGETS, stores=["S01", "S02"])
    assert targets_for_store(targets, "S01") == {"user_repurchase_rate": 0.6, "active_members": 100}
    assert targets_for_store(targets, "S02") == {"user_repurchase_rate": 0.55, "active_members": 100}
    assert targets_for_store(None, "S01") == {}
    assert read_targets(None) == {"chain": {}, "store": {}, "stores": {}}


@pytest.mark.parametrize("raw, message", [
    ({"chain": {"user_repurchase_rate": 60}},
     r"targets\.chain\.user_repurchase_rate: a rate is a fraction between 0 and 1, got 60 "
     r"\(write 0\.6 for 60%\)"),
    ({"store": {"repeat_rate": 0.5}}, r"targets\.store\.repeat_rate: unknown figure"),
    ({"store": {"active_members": "many"}}, r"targets\.store\.active_members: expected a number"),
    ({"store": {"active_members": True}}, r"targets\.store\.active_members: expected a number"),
    ({"stores": {"S01": {"revenue": -1}}}, r"targets\.stores\.S01\.revenue: must be at least 0"),
    ({"stores": {"S09": {"revenue": 1}}}, r"targets\.stores\.S09: no such store"),
    ({"region": {}}, r"targets\.region: unknown part"),
    ({"chain": 0.7}, r"targets\.chain: expected a table"),
])
def test_bad_targets_name_the_key(raw, message):
    with pytest.raises(TargetsError, match=message):
        read_targets(raw, stores=["S01"])


def test_progress_against_each_target():
    p = target_progress({"user_repurchase_rate": 0.54, "active_members": 120, "revenue": None},
                        {"user_repurchase_rate": 0.6, "active_members": 100, "revenue": 5.0})
    rate, members, revenue = (r for _, r in p.iterrows())
    assert rate["gap"] == pytest.approx(-0.06) and rate["progress"] == pytest.approx(0.9)
    assert not rate["met"]
    assert members["gap"] == 20 and members["progress"] == pytest.approx(1.2) and members["met"]
    assert math.isnan(revenue["actual"]) and not revenue["met"]  # a missing figure is not met


def test_overview_progress_is_the_chain_then_each_store_with_targets():
    parts = chain_and_store_progress(
        read_targets({"chain": {"user_repurchase_rate": 0.7},
                      "stores": {"S02": {"user_repurchase_rate": 0.5}}}),
        {"user_repurchase_rate": 0.696},
        {"S01": {"user_repurchase_rate": 0.56}, "S02": {"user_repurchase_rate": 0.54}, "S03": None})
    assert [who for who, _ in parts] == ["", "S02"]  # S01 and S03 have no target
    assert parts[0][1].at[0, "gap"] == pytest.approx(-0.004)
    assert bool(parts[1][1].at[0, "met"])


def test_targets_html_names_whom_and_never_rounds_a_miss_up_to_100():
    from rxrepurchase import report_data as rd

    progress = target_progress({"active_members": 797, "user_repurchase_rate": 0.62},
                               {"active_members": 800, "user_repurchase_rate": 0.6})
    page = rd.targets_html([("S01", progress)], start="2026-07-03", end="2026-09-30")
    assert ("<td>S01</td><td>User repurchase rate, last 90 days</td><td>60.0%</td>"
            "<td>62.0%</td><td>103%</td><td>reached</td>") in page
    assert "<td>S01</td><td>Active members</td><td>800</td><td>797</td><td>99.6%</td><td>3 to go</td>" in page
    assert rd.targets_html([], start="2026-07-03", end="2026-09-30") == ""
