"""The "This week" actions, against hand-computed counts on small tables."""

import math

import pandas as pd
import pytest

from rxrepurchase import report_data as rd
from rxrepurchase.i18n import format_count
from rxrepurchase.metrics import pareto_share
from rxrepurchase.this_week import (
    ThisWeekError,
    contact_channel,
    evening_peak,
    slowed_top_members,
    this_week_actions,
    top_members,
)

AS_OF = pd.Timestamp("2026-09-30")


def _orders(rows):
    """rows: (member_id, 'YYYY-MM-DD HH:MM', paid)."""
    frame = pd.DataFrame(rows, columns=["member_id", "ordered_at", "paid_amount"])
    return frame.assign(ordered_at=pd.to_datetime(frame["ordered_at"]),
                        gross_amount=frame["paid_amount"], discount_amount=0.0,
                        order_id=[f"O{i}" for i in range(len(frame))], store_id="S01", coupon_id=None,
                        campaign_id=None)


def test_channel_is_wechat_then_sms_then_in_store():
    members = pd.DataFrame({"member_id": ["A", "B", "C", "D"],
                            "wechat_id": ["wx1", None, "  ", None],
                            "phone": ["138", "139", "137", ""]})
    assert contact_channel(members).to_dict() == {"A": "wechat", "B": "sms", "C": "sms",
                                                  "D": "in_store"}


def test_top_members_are_the_top_fifth_by_what_they_paid_ties_by_id():
    orders = _orders([("A", "2026-09-01 10:00", 100), ("C", "2026-09-02 10:00", 50),
                      ("B", "2026-09-03 10:00", 50), ("D", "2026-09-04 10:00", 10),
                      ("E", "2026-09-05 10:00", 5), ("F", "2026-09-06 10:00", 1),
                      ("F", "2026-10-06 10:00", 1000)])  # after as_of: not counted
    top = top_members(orders, 0.2, as_of=AS_OF)
    assert list(top) == ["A", "B"]  # ceil(0.2 x 6) = 2; B before C at 50
    with pytest.warns(FutureWarning, match=r"top_members\(end=\.\.\.\) is renamed top_members\(as_of="):
        assert top_members(orders, 0.2, end=AS_OF).equals(top)
    shares = pareto_share(orders, 0.2, end=AS_OF).set_index("measure")
    assert shares.at["revenue_net_of_subsidy", "top_members"] == len(top)


def _day_of(hours):
    return [(f"M{i}", f"2026-09-20 {h:02d}:15", 1.0) for i, h in enumerate(hours)]


def test_evening_peak_found_where_the_evening_dominates():
    hours = list(range(9, 22)) + [19] * 6 + [20] * 6
    peak = evening_peak(_orders(_day_of(hours)), AS_OF)
    # 25 orders over 13 open hours; 19-21 h holds 14: share 0.56, ratio 0.56 / (2/13) = 3.64.
    assert (peak["start"], peak["end"]) == (19, 21)
    assert peak["share"] == pytest.approx(14 / 25)
    assert peak["ratio"] == pytest.approx(14 / 25 * 13 / 2)
    assert peak["members"] == 14


def test_no_evening_offer_for_a_morning_peak_a_flat_day_or_old_orders():
    morning = list(range(9, 22)) + [9] * 6 + [10] * 6
    assert evening_peak(_orders(_day_of(morning)), AS_OF) is None
    assert evening_peak(_orders(_day_of(list(range(9, 22)) * 3)), AS_OF) is None
    evening = list(range(9, 22)) + [19] * 6 + [20] * 6
    old = [(m, "2026-05-01" + when[10:], p) for m, when, p in _day_of(evening)]
    assert evening_peak(_orders(old), AS_OF, period_days=90) is None


def _inputs():
    predictions = pd.DataFrame({
        "member_id": ["A", "A", "B", "C", "D", "E", "F", "G", "H"],
        "rhythm": ["repeat"] * 8 + ["first_refill"],
        "days_until_due": [0, 5, 7, 10, 14, 15, -3, 3, 2],
    })
    members = pd.DataFrame({"member_id": list("ABCDEFGHXYZ"),
                            "wechat_id": ["w", None, None, "w", None, None, None, None, None,
                                          None, None],
                            "phone": ["1"] * 11})
    cohorts = pd.DataFrame({"member_id": list("ABCDEFGHXYZ"),
                            "subsidy_cohort": ["loyal", "mixed", "loyal", "loyal", "loyal",
                                               "loyal", "subsidy_driven", "subsidy_driven",
                                               "loyal", "subsidy_driven", "loyal"]})
    wake = pd.DataFrame({"member_id": ["X", "Y", "Z", "A", "B"],
                         "value_at_risk": [100.0, 50.0, 80.0, -5.0, 30.0],
                         "p_alive_now": [0.5, 0.4, 0.9, 0.5, 0.5],
                         "days_since_last_purchase": [30, 20, 40, 60, 5]})
    # Top 20% by what they paid: Y (10 + 2) and X (9 + 1). Y bought every 10 days up to 09-10,
    # 20 days ago (> 1.5 x 10): slowed. X bought 09-10 and 09-20, 10 days ago: on rhythm.
    orders = _orders([(m, "2026-09-10 10:00", float(i + 1)) for i, m in enumerate("ABCDEFGHXY")]
                     + [("Y", "2026-08-21 10:00", 1.0), ("Y", "2026-08-31 10:00", 1.0),
                        ("X", "2026-09-20 10:00", 1.0)])
    return dict(predictions=predictions, members=members, cohorts=cohorts, orders=orders,
                as_of=AS_OF, wake_up=wake)


def test_refill_reminders_are_exactly_the_list_when_one_is_given():
    # The default list picks by chance of a refill, so it may hold an overdue pair (F) and
    # one due in 15 days (E); the page then counts what the list file holds.
    inputs = _inputs()
    listed = inputs["predictions"].iloc[[0, 1, 5, 6, 7]]  # A x2, E (15 d), F (-3 d), G
    actions = this_week_actions(**inputs, refill_list=listed).set_index("offer")
    # G buys on coupons (reminder only); A (both products), E and F get the coupon. Within
    # 7 days: A (0 and 5 days), F (overdue) and G (3 days).
    coupon, only = actions.loc["reminder_coupon"], actions.loc["reminder_only"]
    assert (coupon["members"], coupon["items"], coupon["members_soon"]) == (3, 4, 2)
    assert (only["members"], only["items"], only["members_soon"]) == (1, 1, 1)
    assert coupon["items"] + only["items"] == len(listed)
    with pytest.raises(ThisWeekError, match="refill_list has no column.*days_until_due"):
        this_week_actions(**inputs, refill_list=listed.drop(columns="days_until_due"))


def test_actions_count_whom_how_many_which_channel_and_offer():
    actions = this_week_actions(**_inputs()).set_index("offer")
    # Due within 14 days, repeat rhythm: A (2 products), B, C, D, G; E (15 d), F (overdue) and
    # H (first refill) are not. G buys on coupons: reminder only.
    refill = actions.loc["reminder_coupon"]
    assert (refill["members"], refill["items"], refill["members_soon"]) == (4, 5, 2)
    assert (refill["wechat"], refill["sms"], refill["in_store"]) == (2, 2, 0)
    assert actions.loc["reminder_only", "members"] == 1
    # Win back: A has a negative value at risk and B bought 5 days ago; Y buys on coupons.
    assert actions.loc["win_back_coupon", "members"] == 2
    assert actions.loc["win_back_coupon", "expected_value"] == pytest.approx(100 * .5 + 80 * .9)
    assert actions.loc["win_back_no_coupon", "expected_value"] == pytest.approx(50 * .4)
    assert actions.loc["member_care", "members"] == 1  # Y of the top ceil(0.2 x 10) = 2
    assert actions.loc["member_care", "top_members"] == math.ceil(0.2 * 10)
    assert this_week_actions(**_inputs()).attrs["top_members"] == 2
    assert "evening_offer" not in actions.index
    assert list(this_week_actions(**_inputs())["action"]) == [
        "refill_reminder", "refill_reminder", "win_back", "win_back", "top_care"]


def test_refill_horizons_count_soon_apart_and_the_old_pair_still_works():
    # Due within 20 days: E (15 d) joins A (2 products), B, C, D; within 5 days only A (0 and
    # 5 d) of them (the _inputs rows; G buys on coupons: reminder only).
    wide = this_week_actions(**_inputs(), soon_days=5, horizon_days=20).set_index("offer")
    coupon = wide.loc["reminder_coupon"]
    assert (coupon["members"], coupon["items"], coupon["members_soon"]) == (5, 6, 1)
    with pytest.warns(FutureWarning, match=r"this_week_actions\(horizons=\.\.\.\) is renamed "
                                           r"this_week_actions\(soon_days=\.\.\., horizon_days=\.\.\.\)"):
        old = this_week_actions(**_inputs(), horizons=(5, 20)).set_index("offer")
    pd.testing.assert_frame_equal(old, wide)
    with pytest.raises(ThisWeekError, match="0 < soon_days <= horizon_days, got 15 and 14"):
        this_week_actions(**_inputs(), soon_days=15)


def test_slowed_top_members_are_late_against_their_own_rhythm():
    rows = []
    # P: every 7 days, last 2026-09-02 (28 days ago > 1.5 x 7): slowed, paid 40.
    rows += [("P", f"2026-08-{d:02d} 10:00", 10.0) for d in (12, 19, 26)] + [("P", "2026-09-02 10:00", 10.0)]
    # Q: every 30 days, last 2026-09-05 (25 days ago < 45): on rhythm, paid 60.
    rows += [("Q", f"2026-{m:02d}-{d:02d} 10:00", 20.0) for m, d in ((7, 7), (8, 6), (9, 5))]
    # R: one purchase only, 100 days ago: no rhythm to judge. S: two purchases the same day.
    rows += [("R", "2026-06-22 10:00", 50.0), ("S", "2026-09-01 09:00", 30.0),
             ("S", "2026-09-01 18:00", 30.0)]
    # T: every 7 days up to 2026-05-15, 138 days ago: lapsed (the wake-up lists' job), paid 60.
    rows += [("T", f"2026-05-{d:02d} 10:00", 20.0) for d in (1, 8, 15)]
    rows += [(f"Z{i}", "2026-09-01 10:00", 1.0) for i in range(16)]  # the other 80%
    got = slowed_top_members(_orders(rows), AS_OF, top=0.2)
    assert got.attrs["top_members"] == 5  # ceil(0.2 x 21): Q 60, S 60, T 60, R 50, P 40
    assert got["member_id"].tolist() == ["P"]
    # Without the 90-day bound T counts too, the larger spender first.
    assert slowed_top_members(_orders(rows), AS_OF, period_days=200)["member_id"].tolist() == [
        "T", "P"]
    with pytest.warns(FutureWarning, match=r"slowed_top_members\(active_days=\.\.\.\) is renamed "
                                           r"slowed_top_members\(period_days="):
        assert slowed_top_members(_orders(rows), AS_OF, active_days=200)["member_id"].tolist() == [
            "T", "P"]
    assert got.iloc[0][["paid", "purchases", "usual_gap_days", "days_since_last"]].tolist() == [
        40.0, 4, 7.0, 28]
    # A stricter factor keeps P only while 28 > factor x 7.
    assert slowed_top_members(_orders(rows), AS_OF, factor=4.1).empty
    with pytest.raises(ThisWeekError, match="factor must be positive"):
        slowed_top_members(_orders(rows), AS_OF, factor=0)


def test_no_wake_up_list_means_no_win_back_row_and_bad_input_is_named():
    inputs = _inputs() | {"wake_up": None}
    assert "win_back" not in set(this_week_actions(**inputs)["action"])
    inputs["predictions"] = inputs["predictions"].drop(columns="rhythm")
    with pytest.raises(ThisWeekError, match="predictions has no column.*rhythm"):
        this_week_actions(**inputs)


def test_this_week_html_says_each_count_and_escapes(monkeypatch):
    actions = this_week_actions(**_inputs())
    actions.attrs |= {"as_of": "2026-09-30", "horizon_days": 14, "soon_days": 7, "period_days": 90}
    page = rd.this_week_html(actions, "en")
    assert ("Of the top 20% of members by what they paid at this store (2), those not back "
            "for more than 1.5 times their usual interval between purchases: 1.") in page
    assert page.count("<li>") == len(actions)
    assert "Chronic patients to remind about a refill: 4 (2 due within 7 days or overdue; 5 member" in page
    assert "Channel: WeChat 2 · SMS 2 · in store 0" in page
    zh = rd.this_week_html(actions, "zh")
    assert f"{format_count(4)} 位按周期购药的慢病会员需要续药提醒（其中 2 位在 7 天内到期或已逾期" in zh
    actions.attrs["as_of"] = "<b>"
    assert "&lt;b&gt;" in rd.this_week_html(actions, "en")
    metrics = rd.this_week_metrics(actions)
    assert metrics["this_week_reminder_coupon_members"] == 4
    assert (metrics["this_week_member_care_members"], metrics["top_members"]) == (1, 2)
