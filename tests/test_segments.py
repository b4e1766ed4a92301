"""Segmentation on a hand-built chain of three members; expected values worked out in comments."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rxrepurchase import plots  # noqa: E402
from rxrepurchase import segments as sg  # noqa: E402
from rxrepurchase.errors import RxRepurchaseError  # noqa: E402

AS_OF = "2024-06-30"


def hand_members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": pd.array(["A", "B", "C"], dtype="string"),
            "joined_on": pd.to_datetime(["2024-01-10", "2023-03-01", "2024-06-01"]),
            "tier": pd.array(["gold", "regular", "plus"], dtype="string"),
            "birth_year": pd.array([1990, None, 1950], dtype="Int64"),
            "tags": pd.array(["公众号;慢病", None, "门店; ;高血压"], dtype="string"),
            "stored_value_balance": [50.0, np.nan, 0.0],
        }
    )


def hand_orders() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        ("o1", "A", "2024-06-20 20:15", 100.0, "C1", None, 0.0),
        ("o2", "A", "2024-05-01 09:00", 50.0, None, None, 0.0),
        ("o3", "A", "2024-03-15 19:30", 30.0, None, "K1", 0.0),
        ("o4", "B", "2023-05-01 10:00", 500.0, None, None, 0.0),
        ("o5", "B", "2024-06-29 12:00", 20.0, None, None, 20.0),  # stored-value payment
        ("o6", None, "2024-06-29 20:00", 15.0, None, None, 0.0),  # walk-in
    ]
    o = pd.DataFrame(rows, columns=["order_id", "member_id", "ordered_at", "paid_amount",
                                    "coupon_id", "campaign_id", "stored_value_amount"])  # fmt: skip
    for c in ("order_id", "member_id", "coupon_id", "campaign_id"):
        o[c] = o[c].astype("string")
    o["ordered_at"] = pd.to_datetime(o["ordered_at"])
    o["store_id"] = pd.Series(["S1"] * len(o), dtype="string")
    lines = pd.DataFrame(
        {
            "order_id": pd.array(["o1", "o1", "o2", "o3", "o4", "o5", "o6"], dtype="string"),
            "category": [
                "antihypertensive",
                "vitamins",
                "cold_flu",
                "vitamins",
                "cold_flu",
                "cold_flu",
                "cold_flu",
            ],  # fmt: skip
            "is_chronic": [True, True, False, True, False, False, False],
            "line_amount": [60.0, 40.0, 50.0, 30.0, 500.0, 20.0, 15.0],
        }
    )
    return o, lines


def test_member_attributes():
    o, _ = hand_orders()
    a = sg.member_attributes(hand_members(), AS_OF, orders=o).set_index("member_id")
    # Ages 2024-1990 = 34, unknown, 74; tenure 172, 487, 29 days.
    assert list(a["age_band"].astype(object).fillna("?")) == ["30-39", "?", "70+"]
    assert list(a["tenure_days"]) == [172, 487, 29]
    assert list(a["tenure_band"].astype(str)) == ["90-364 days", "365-729 days", "<90 days"]
    assert list(a["acquisition_month"]) == ["2024-01", "2023-03", "2024-06"]
    # A holds a balance, B paid from stored value, C has 0.
    assert list(a["stored_value_holder"]) == [True, True, False]
    assert a.loc["B", "first_purchase_month"] == "2023-05"
    assert pd.isna(a.loc["C", "first_purchase_month"])
    assert list(a["tier"].cat.categories) == ["regular", "gold", "plus"]


def test_rfm_scores_and_segments():
    o, _ = hand_orders()
    cfg = sg.RFMConfig(monetary_edges=(50, 100, 150, 200))
    r = sg.rfm_segments(o, AS_OF, members=hand_members(), config=cfg).set_index("member_id")
    # A: last 06-20 -> 10 days (<= 30: R5); 3 purchases in 365 days (>= 2: F2); 180 paid
    # (>= 150: M4). B: 1 day (R5); 2023-05-01 is outside the 365 days -> 1 purchase (F1), 20 (M1).
    assert (r.loc["A", "recency_days"], r.loc["A", "frequency"], r.loc["A", "monetary"]) == (
        10, 3, 180.0,
    )  # fmt: skip
    assert r.loc["A", "rfm"] == "524" and r.loc["B", "rfm"] == "511"
    assert r.loc["A", "segment"] == "potential_loyalists"
    assert r.loc["B", "segment"] == "new_customers"
    assert r.loc["C", "segment"] == "never_purchased"
    th = sg.rfm_thresholds(r.dropna(subset=["monetary"]), cfg)
    assert th.loc["recency_days_at_most", "score_5"] == 30
    # Default monetary edges are the 20/40/60/80% quantiles of the two members: 20 and 180.
    q = sg.rfm_thresholds(r.dropna(subset=["monetary"]))
    assert list(q.loc["monetary_at_least"]) == pytest.approx([52.0, 84.0, 116.0, 148.0])
    with pytest.raises(RxRepurchaseError, match="R=1, F=1"):
        sg.RFMConfig(segments=(("champions", (4, 5), (4, 5)),))
    with pytest.raises(RxRepurchaseError, match="recency_edges"):
        sg.RFMConfig(recency_edges=(30, 20, 60, 90))


def test_member_profile_dimensions():
    o, lines = hand_orders()
    p = sg.member_profile(o, lines, hand_members(), AS_OF).set_index("member_id")
    a = p.loc["A"]
    # A lines: chronic 60 (antihypertensive), acute 50 (cold_flu), health 40 + 30 (vitamins)
    # of 180 -> main class health.
    assert (a.chronic_share, a.acute_share, a.health_share) == pytest.approx(
        (1 / 3, 5 / 18, 7 / 18)
    )
    assert a.main_product_class == "health"
    # Coupon (o1) and campaign (o3) on 2 of 3 orders -> mostly promotions.
    assert a.promo_order_share == pytest.approx(2 / 3) and a.activity == "mostly_promotions"
    # 20:15 and 19:30 are evening, 09:00 morning.
    assert a.main_daypart == "evening" and a.evening_share == pytest.approx(2 / 3)
    assert a.spend_365d == 180.0 and a.spend_band == "<200"
    assert p.loc["B", "activity"] == "no_promotions"
    assert p.loc["B", "spend_365d"] == 20.0  # the 2023 order is older than 365 days
    assert p.loc["C", "activity"] == "no_orders" and p.loc["C", "purchases"] == 0
    s = sg.segment_summary(p.reset_index(), "activity").set_index("activity")
    assert s.loc["mostly_promotions", "members"] == 1
    assert s["member_share"].sum() == pytest.approx(1.0)
    with pytest.raises(RxRepurchaseError, match="nope"):
        sg.segment_summary(p, "nope")


def test_hour_of_day_profile():
    o, _ = hand_orders()
    h = sg.hour_of_day_profile(o)
    # Member orders at 20, 9, 19, 10, 12 h -> 24 rows, 1/5 at 20 h; the walk-in is left out.
    assert len(h) == 24 and h["orders"].sum() == 5
    assert h.set_index("hour").loc[20, "share"] == pytest.approx(0.2)
    with_walk_ins = sg.hour_of_day_profile(o, "store_id", include_walk_ins=True)
    assert with_walk_ins.set_index("hour").loc[20, "orders"] == 2
    tiers = sg.hour_of_day_profile(o, "tier", members=hand_members())
    gold = tiers.loc[tiers["tier"] == "gold"].set_index("hour")
    assert gold.loc[20, "share"] == pytest.approx(1 / 3)  # A: 20, 9, 19 h
    with pytest.raises(RxRepurchaseError, match="walk-in"):
        sg.hour_of_day_profile(o, "tier", members=hand_members(), include_walk_ins=True)


def test_tier_transitions_and_tags():
    after = hand_members()
    before = after.iloc[:2].assign(tier=pd.array(["regular", "regular"], dtype="string"))
    t = sg.tier_transitions(before, after)
    moved = dict(zip(t["tier_after"], t["moved"], strict=True))
    # A regular -> gold (up), B regular -> regular (same), C new in the later snapshot.
    assert moved == {"regular": "same", "gold": "up", "plus": "joined_or_left"}
    tags = sg.member_tags(hand_members())
    assert list(zip(tags["member_id"], tags["tag"], strict=True)) == [
        ("A", "公众号"), ("A", "慢病"), ("C", "门店"), ("C", "高血压"),
    ]  # fmt: skip


def test_plots_return_axes():
    o, _ = hand_orders()
    fig, (a1, a2) = plt.subplots(1, 2)
    assert plots.plot_rfm_segments(sg.rfm_segments(o, AS_OF), ax=a1) is a1
    assert (
        plots.plot_hour_of_day_profile(sg.hour_of_day_profile(o, "store_id"), "store_id", ax=a2) is a2
    )
    plt.close(fig)


def test_demo_profile_matches_truth():
    from rxrepurchase.demo import DemoConfig, generate_demo_chain

    chain = generate_demo_chain(DemoConfig(n_members=2000, n_stores=3, months=12, seed=5))
    p = sg.member_profile(chain.orders, chain.order_lines, chain.members)
    p = p.merge(chain.truth[["member_id", "archetype"]], on="member_id")
    main = p.groupby("archetype")["main_product_class"].agg(lambda s: s.value_counts().index[0])
    mix = p.groupby("archetype")[["chronic_share", "acute_share"]].mean()
    # Occasional acute buyers buy acute medication; only chronic patients buy chronic
    # medication (their other baskets are health products, so chronic is not always the main).
    assert main["occasional_acute"] == "acute"
    assert mix.loc["loyal_chronic", "chronic_share"] > 0.3
    assert mix.drop(index="loyal_chronic")["chronic_share"].max() < 0.05
    promo = p.groupby("archetype")["promo_order_share"].mean()
    assert promo["coupon_hunter"] > 2 * promo["loyal_chronic"]
