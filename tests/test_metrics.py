"""Repurchase metrics on a hand-built chain; every expected value is worked out in comments."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rxrepurchase import engine, plots  # noqa: E402
from rxrepurchase import metrics as m  # noqa: E402
from rxrepurchase.contract import TABLES  # noqa: E402
from rxrepurchase.errors import DataContractError, RxRepurchaseError  # noqa: E402

# order, member, store, time, gross, discount, paid
_ROWS = [
    ("o1", "M1", "S1", "2024-01-05 10:00", 120, 20, 100),
    ("o2", "M1", "S1", "2024-01-05 15:00", 20, 0, 20),  # same day as o1
    ("o3", "M1", "S2", "2024-01-20 09:00", 50, 0, 50),
    ("o4", "M2", "S1", "2024-01-10 20:00", 100, 20, 80),
    ("o5", "M2", "S1", "2024-02-12 20:30", 60, 0, 60),
    ("o6", "M3", "S2", "2024-01-15 11:00", 50, 50, 0),  # zero paid (free gift)
    ("o7", "M3", "S2", "2024-01-25 11:00", 130, 100, 30),
    ("o8", "M4", "S1", "2024-02-03 08:00", 40, 0, 40),
    ("o9", "M4", "S1", "2024-02-04 08:00", -40, 0, -40),  # refund of o8
    ("o10", None, "S1", "2024-01-07 12:00", 15, 0, 15),  # walk-in
    ("o11", None, "S2", "2024-02-07 12:00", 25, 0, 25),  # walk-in
    ("o12", "M5", "S2", "2024-03-01 19:00", 200, 0, 200),
    ("o13", "M5", "S2", "2024-03-15 19:00", 10, 0, 10),
    ("o14", "M2", "S2", "2024-03-20 20:00", 70, 0, 70),
]


def hand_orders() -> pd.DataFrame:
    df = pd.DataFrame(
        _ROWS,
        columns=["order_id", "member_id", "store_id", "ordered_at", "gross_amount",
                 "discount_amount", "paid_amount"],
    )  # fmt: skip
    for c in ("order_id", "member_id", "store_id"):
        df[c] = df[c].astype("string")
    df["ordered_at"] = pd.to_datetime(df["ordered_at"])
    for c in ("gross_amount", "discount_amount", "paid_amount"):
        df[c] = df[c].astype("float64")
    df["channel"] = pd.Series(["store"] * len(df), dtype="string")
    return df


def hand_members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": pd.array(["M1", "M2", "M3", "M4", "M5"], dtype="string"),
            "tier": pd.array(["gold", "regular", "regular", "gold", "plus"], dtype="string"),
        }
    )


def _row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for k, v in where.items():
        mask &= (table[k] == v).to_numpy()
    assert mask.sum() == 1, table
    return table.loc[mask].iloc[0]


def test_monthly_rates_day_unit_hand_computed():
    t = m.repurchase_rates(hand_orders(), "M")
    assert list(t["window"]) == ["2024-01", "2024-02", "2024-03"]
    jan = _row(t, window="2024-01")
    # Jan purchases: M1 on 01-05 (o1+o2 merged) and 01-20; M2 01-10; M3 01-25 (o6 paid 0 is
    # not a purchase) -> members 3, repeat members 1 (M1), purchases 4, repeat purchases 1.
    assert (jan.members, jan.repeat_members, jan.purchases, jan.repeat_purchases) == (3, 1, 4, 1)
    assert jan.user_repurchase_rate == pytest.approx(1 / 3)
    assert jan.order_repurchase_rate == pytest.approx(1 / 4)
    assert jan.excluded_orders == 1  # o6
    assert jan.window_start == pd.Timestamp("2024-01-01")
    assert jan.window_end == pd.Timestamp("2024-01-31")
    feb = _row(t, window="2024-02")
    # Feb: M2 02-12, M4 02-03 (o9 refund excluded) -> 2 members, nobody twice.
    assert (feb.members, feb.repeat_members, feb.purchases, feb.excluded_orders) == (2, 0, 2, 1)
    assert feb.user_repurchase_rate == 0.0
    mar = _row(t, window="2024-03")
    # Mar: M5 03-01 and 03-15, M2 03-20 -> 1/2 users, 1/3 purchases.
    assert mar.user_repurchase_rate == pytest.approx(0.5)
    assert mar.order_repurchase_rate == pytest.approx(1 / 3)


def test_order_unit_and_zero_paid_options():
    o = hand_orders()
    jan = _row(m.repurchase_rates(o, "ME", purchase_unit="order"), window="2024-01")
    # Each order counts: M1 has 3 -> purchases 5 (3+1+1), repeat purchases 5-3 = 2.
    assert (jan.purchases, jan.repeat_purchases) == (5, 2)
    assert jan.order_repurchase_rate == pytest.approx(0.4)
    assert jan.user_repurchase_rate == pytest.approx(1 / 3)
    jan = _row(m.repurchase_rates(o, "M", zero_paid="include"), window="2024-01")
    # o6 now a purchase: M3 has 2 days -> repeat members M1, M3 = 2/3; purchases 5, repeat 2.
    assert jan.user_repurchase_rate == pytest.approx(2 / 3)
    assert jan.order_repurchase_rate == pytest.approx(2 / 5)
    assert jan.excluded_orders == 0
    feb = _row(m.repurchase_rates(o, "M", zero_paid="include"), window="2024-02")
    assert feb.excluded_orders == 1  # a refund never is a purchase


def test_quarter_spellings_and_by_store():
    o = hand_orders()
    for q in ("Q", "QE", "q"):
        t = m.repurchase_rates(o, q)
        assert list(t["window"]) == ["2024Q1"]
    q1 = t.iloc[0]
    # Q1: M1 2 days, M2 3 days, M3 1, M4 1, M5 2 -> repeat 3 of 5; purchases 9, repeat 9-5 = 4.
    assert (q1.members, q1.repeat_members, q1.purchases, q1.repeat_purchases) == (5, 3, 9, 4)
    assert q1.excluded_orders == 2  # o6, o9
    jan = m.repurchase_rates(o, "M", by="store_id")
    jan = jan.loc[jan["window"] == "2024-01"]
    s1 = _row(jan, store_id="S1")
    s2 = _row(jan, store_id="S2")
    # Within the store: S1 has M1 (o1+o2 one day) and M2; S2 has M1 (o3) and M3 (o7).
    assert (s1.members, s1.repeat_members, s1.purchases) == (2, 0, 2)
    assert (s2.members, s2.repeat_members, s2.purchases, s2.excluded_orders) == (2, 0, 2, 1)


def test_group_by_member_column_and_missing_column_error():
    o, mem = hand_orders(), hand_members()
    t = m.repurchase_rates(o, "M", by="tier", members=mem)
    jan = t.loc[t["window"] == "2024-01"]
    # gold: M1 (2 days) -> 1/1; regular: M2 (1), M3 (1) -> 0/2.
    assert _row(jan, tier="gold").user_repurchase_rate == 1.0
    assert _row(jan, tier="regular").members == 2
    with pytest.raises(m.MetricsInputError, match="age_band"):
        m.repurchase_rates(o, "M", by="age_band", members=mem)
    with pytest.raises(DataContractError, match="M5"):
        m.repurchase_rates(o, "M", by="tier", members=mem.iloc[:4])


def test_n_day_windows_tile_back_and_roll():
    o = hand_orders()
    t = m.repurchase_rates(o, "30D")
    # Last order 03-20: windows 02-20..03-20 and 01-21..02-19; 12-22..01-20 would start
    # before the first order (01-05), so it is not a window.
    assert list(t["window"]) == ["2024-01-21..2024-02-19", "2024-02-20..2024-03-20"]
    first = t.iloc[0]
    # M3 01-25, M4 02-03, M2 02-12; o9 refund excluded.
    assert (first.members, first.repeat_members, first.excluded_orders) == (3, 0, 1)
    assert t.iloc[1].user_repurchase_rate == pytest.approx(0.5)  # M5 twice, M2 once
    rolling = m.repurchase_rates(o, 30, step=15)
    # Ends 03-20, 03-05, 02-19, 02-04 (start 01-06); 01-20 would start 12-22.
    assert list(rolling["window_end"].dt.strftime("%m-%d")) == ["02-04", "02-19", "03-05", "03-20"]
    w = rolling.iloc[0]
    # 01-06..02-04: M1 01-20, M2 01-10, M3 01-25, M4 02-03 -> 4 members, none twice;
    # excluded o6 (01-15) and o9 (02-04).
    assert (w.members, w.repeat_members, w.excluded_orders) == (4, 0, 2)


def test_custom_windows_and_single_numbers():
    o = hand_orders()
    t = m.repurchase_rates(o, {"january": ("2024-01-01", "2024-01-31")})
    assert t.loc[0, "window"] == "january"
    assert t.loc[0, "user_repurchase_rate"] == pytest.approx(1 / 3)
    pair = m.repurchase_rates(o, [("2024-01-01", "2024-01-31"), ("2024-03-01", "2024-03-31")])
    assert list(pair["user_repurchase_rate"]) == pytest.approx([1 / 3, 0.5])
    # Whole history = Q1: 3/5 and 4/9.
    assert m.user_repurchase_rate(o) == pytest.approx(0.6)
    assert m.order_repurchase_rate(o) == pytest.approx(4 / 9)
    assert math.isnan(m.user_repurchase_rate(o, ("2025-01-01", "2025-01-31")))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window": "fortnight"}, "window"),
        ({"window": 0}, "positive"),
        ({"window": ("2024-02-01", "2024-01-01")}, "before start"),
        ({"purchase_unit": "visit"}, "purchase_unit"),
        ({"zero_paid": "maybe"}, "zero_paid"),
        ({"window": "M", "step": 3}, "step"),
    ],
)
def test_bad_arguments_raise_named_errors(kwargs, match):
    with pytest.raises(RxRepurchaseError, match=match):
        m.repurchase_rates(hand_orders(), **kwargs)


def test_missing_column_and_empty_paid_are_named():
    o = hand_orders()
    with pytest.raises(DataContractError, match="paid_amount"):
        m.repurchase_rates(o.drop(columns="paid_amount"))
    o.loc[3, "paid_amount"] = np.nan
    with pytest.raises(DataContractError, match="paid_amount is empty at row 3"):
        m.repurchase_rates(o)


def test_walk_in_share():
    t = m.walk_in_share(hand_orders(), "M")
    jan = _row(t, window="2024-01")
    # Jan orders o1-o4, o6, o7, o10 = 7, one walk-in; revenue 100+20+50+80+0+30+15 = 295.
    assert (jan.orders, jan.walk_in_orders) == (7, 1)
    assert jan.walk_in_order_share == pytest.approx(1 / 7)
    assert jan.walk_in_revenue_share == pytest.approx(15 / 295)
    by_store = m.walk_in_share(hand_orders(), "Q", by="store_id")
    # S2 orders: o3, o6, o7, o11, o12, o13, o14 = 7, walk-in o11.
    assert _row(by_store, store_id="S2").walk_in_order_share == pytest.approx(1 / 7)
    with pytest.raises(m.MetricsInputError, match="tier"):
        m.walk_in_share(hand_orders(), by="tier")


def test_purchases_merge_same_day():
    p = m.purchases(hand_orders())
    m1 = p.loc[p["member_id"] == "M1"]
    # o1 + o2 on 01-05 -> one purchase of 2 orders, paid 120, first order o1.
    assert list(m1["n_orders"]) == [2, 1]
    assert list(m1["paid_amount"]) == [120.0, 50.0]
    assert list(m1["order_id"]) == ["o1", "o3"]
    assert list(m1["purchase_number"]) == [1, 2]
    assert len(p) == 9  # 14 orders - 2 walk-ins - o6 - o9 - o2 (merged)


def test_n_day_repurchase():
    t = m.n_day_repurchase(hand_orders(), outcome_days=(30, 60, 90))
    # as_of = last order 03-20. First / second purchase: M1 01-05 / 01-20 (15 d), M2 01-10 /
    # 02-12 (33 d), M3 01-25 / -, M4 02-03 / -, M5 03-01 / 03-15 (14 d).
    # Days observed: M1 75, M2 70, M3 55, M4 46, M5 19.
    # 30 d: eligible M1-M4, repurchased M1 -> 1/4. 60 d: M1, M2, both -> 2/2. 90 d: nobody.
    assert list(t["eligible_members"]) == [4, 2, 0]
    assert list(t["repurchased_members"]) == [1, 2, 0]
    assert t["n_day_repurchase_rate"].iloc[0] == pytest.approx(0.25)
    assert t["n_day_repurchase_rate"].iloc[1] == 1.0
    assert math.isnan(t["n_day_repurchase_rate"].iloc[2])
    by = m.n_day_repurchase(hand_orders(), outcome_days=[30], by="cohort_month", as_of="2024-04-30")
    # Jan cohort M1, M2, M3: M1 within 30 -> 1/3; Feb M4 0/1; Mar M5 (14 d) 1/1.
    assert list(by["cohort_month"]) == ["2024-01", "2024-02", "2024-03"]
    assert list(by["n_day_repurchase_rate"]) == pytest.approx([1 / 3, 0.0, 1.0])


# member, store, time, paid: first purchases A 01-01 S1, B 01-20 S2 (01-05 paid 0), C 02-20
# S1, D 03-10 S2; the walk-in makes the default as_of 03-31.
_N_DAY_ROWS = [
    ("A", "S1", "2024-01-01", 10), ("A", "S2", "2024-01-11", 0), ("A", "S1", "2024-01-31", 5),
    ("B", "S2", "2024-01-05", 0), ("B", "S2", "2024-01-20", 8), ("B", "S1", "2024-03-01", 4),
    ("C", "S1", "2024-02-20", 7), ("C", "S1", "2024-02-25", -7), ("C", "S1", "2024-03-05", 3),
    ("D", "S2", "2024-03-10", 9), (None, "S1", "2024-03-31", 2),
]  # fmt: skip


def _n_day_tables() -> dict[str, pd.DataFrame]:
    orders = pd.DataFrame(_N_DAY_ROWS, columns=["member_id", "store_id", "ordered_at", "paid_amount"])
    orders = orders.assign(order_id=[f"o{i}" for i in range(len(orders))], channel="store",
                           ordered_at=pd.to_datetime(orders["ordered_at"]) + pd.Timedelta(hours=9),
                           gross_amount=orders["paid_amount"], discount_amount=0.0,
                           stored_value_amount=0.0, paid_amount=orders["paid_amount"].astype(float))  # fmt: skip
    members = pd.DataFrame({"member_id": list("ABCD"), "tier": ["gold", "gold", "plus", "regular"],
                            "home_store_id": "S1", "joined_on": "2023-12-01",
                            "acquisition_channel": "store"})  # fmt: skip
    stores = pd.DataFrame({"store_id": ["S1", "S2"], "name": ["One", "Two"], "city": "X"})
    return {"orders": orders, "members": members, "stores": stores}


def _n_day(t: pd.DataFrame, by: list[str]) -> list[tuple]:
    return [tuple(r) for r in t[[*by, "days", "eligible_members", "repurchased_members"]].to_numpy()]


def test_n_day_repurchase_hand_computed(tmp_path):
    tables = _n_day_tables()
    o = tables["orders"]
    # Paid purchases (exclude): A 01-01 then 01-31 (gap 30), B 01-20 then 03-01 (41), C 02-20
    # then 03-05 (14; the refund is no purchase), D 03-10 only. Days from the first purchase
    # to as_of 03-31 (2024 is leap): A 90, B 71, C 40, D 21.
    t = m.n_day_repurchase(o, outcome_days=(10, 30, 60))
    # 10 d: A-D eligible, nobody within 10. 30 d: A, B, C eligible; A (30) and C (14) within.
    # 60 d: A, B eligible, both within.
    assert _n_day(t, []) == [(10, 4, 0), (30, 3, 2), (60, 2, 2)]
    assert t["n_day_repurchase_rate"].tolist() == [0.0, pytest.approx(2 / 3), 1.0]
    assert list(t.columns) == ["days", "eligible_members", "repurchased_members", "n_day_repurchase_rate"]
    assert t["days"].dtype == "int64" and t["eligible_members"].dtype == "int64"
    # Zero-paid orders count: A 01-01 then 01-11 (gap 10); B 01-05 then 01-20 (15), age 86.
    inc = m.n_day_repurchase(o, outcome_days=(10, 30, 60), zero_paid="include")
    assert _n_day(inc, []) == [(10, 4, 1), (30, 3, 3), (60, 2, 2)]
    # as_of 02-15: A 45 days old, B 26; C and D first buy later, so are eligible for nothing
    # (their groups stay, with 0). B's second purchase (03-01) is after as_of.
    # Acquiring store: A, C S1; B, D S2.
    cut = m.n_day_repurchase(o, outcome_days=(10, 30, 60), by="store_id", as_of="2024-02-15")
    assert _n_day(cut, ["store_id"]) == [
        ("S1", 10, 1, 0), ("S1", 30, 1, 1), ("S1", 60, 0, 0),
        ("S2", 10, 1, 0), ("S2", 30, 0, 0), ("S2", 60, 0, 0),
    ]  # fmt: skip
    assert math.isnan(cut["n_day_repurchase_rate"].iloc[5])
    assert cut["store_id"].dtype == o["store_id"].dtype
    # Member column: gold A, B; plus C; regular D (21 days old).
    tier = m.n_day_repurchase(o, outcome_days=(10, 30, 60), by="tier", members=tables["members"])
    assert _n_day(tier, ["tier"]) == [
        ("gold", 10, 2, 0), ("gold", 30, 2, 1), ("gold", 60, 2, 2),
        ("plus", 10, 1, 0), ("plus", 30, 1, 1), ("plus", 60, 0, 0),
        ("regular", 10, 1, 0), ("regular", 30, 0, 0), ("regular", 60, 0, 0),
    ]  # fmt: skip
    # Per member, with the member's own id (the core sees ranks): D is 21 days old.
    assert _n_day(m.n_day_repurchase(o, [30], by="member_id"), ["member_id"]) == [
        ("A", 30, 1, 1), ("B", 30, 1, 0), ("C", 30, 1, 1), ("D", 30, 0, 0),
    ]  # fmt: skip
    with pytest.raises(RxRepurchaseError, match="positive number of days, got 0"):
        m.n_day_repurchase(o, outcome_days=(0, 30))
    # The engine runs the same expression on the validated export.
    for name, frame in tables.items():
        frame.reindex(columns=TABLES[name].column_names).to_csv(tmp_path / f"{name}.csv", index=False)
    pd.DataFrame(columns=TABLES["order_lines"].column_names).to_csv(tmp_path / "order_lines.csv", index=False)
    with engine.ChainSource(tmp_path, as_of="2024-03-31") as src:
        t = engine.n_day_repurchase(src, (10, 30, 60), ["tier", "cohort_month"], zero_paid="include")
    # Cohorts: Jan A, B (gold: gaps 10 and 15 with zero-paid orders); Feb C; Mar D.
    assert _n_day(t, ["tier", "cohort_month"]) == [
        ("gold", "2024-01", 10, 2, 1), ("gold", "2024-01", 30, 2, 2), ("gold", "2024-01", 60, 2, 2),
        ("plus", "2024-02", 10, 1, 0), ("plus", "2024-02", 30, 1, 1), ("plus", "2024-02", 60, 0, 0),
        ("regular", "2024-03", 10, 1, 0), ("regular", "2024-03", 30, 0, 0),
        ("regular", "2024-03", 60, 0, 0),
    ]  # fmt: skip


def test_retention_matrix_and_curve():
    o = hand_orders()
    mat = m.retention_matrix(o, "M", as_of="2024-03-31")
    # Jan cohort M1, M2, M3: Feb active M2, Mar active M2 -> 1, 1/3, 1/3.
    assert list(mat.loc["2024-01"]) == pytest.approx([1.0, 1 / 3, 1 / 3])
    # Feb cohort M4: Mar nobody -> 0; month 2 not observable yet.
    assert mat.loc["2024-02", 1] == 0.0
    assert math.isnan(mat.loc["2024-02", 2])
    assert mat.loc["2024-03", 0] == 1.0
    # Default as_of = 03-20: March is unfinished, so no March column or cohort.
    assert list(m.retention_matrix(o).index) == ["2024-01", "2024-02"]
    curve = m.retention_curve(o, "M", as_of="2024-03-31")
    # k=0: 5 of 5; k=1: cohorts Jan+Feb (4 members), active 1 -> 0.25; k=2: Jan only, 1/3.
    assert list(curve["eligible_members"]) == [5, 4, 3]
    assert list(curve["retention"]) == pytest.approx([1.0, 0.25, 1 / 3])
    by_tier = m.retention_curve(o, "M", by="tier", members=hand_members(), as_of="2024-03-31")
    # regular = M2, M3 (Jan cohort): k=1 M2 active -> 1/2.
    reg = by_tier.loc[by_tier["tier"] == "regular"]
    assert list(reg["retention"]) == pytest.approx([1.0, 0.5, 0.5])
    q = m.cohort_retention(o, "QE", as_of="2024-03-31")
    assert list(q["cohort_members"]) == [5]


def test_inter_purchase_intervals():
    iv = m.inter_purchase_intervals(hand_orders())
    # M1 01-05 -> 01-20 = 15; M2 01-10 -> 02-12 = 33 -> 03-20 = 37 (2024 is leap); M5 14.
    keys = zip(iv["member_id"], iv["purchase_number"], strict=True)
    got = dict(zip(keys, iv["interval_days"], strict=True))
    assert got == {("M1", 2): 15, ("M2", 2): 33, ("M2", 3): 37, ("M5", 2): 14}
    by_order = m.inter_purchase_intervals(hand_orders(), purchase_unit="order", by="store_id")
    m1 = by_order.loc[by_order["member_id"] == "M1"]
    assert list(m1["interval_days"]) == [0, 15]  # o1 -> o2 same day
    assert list(m1["store_id"]) == ["S1", "S2"]  # store of the later purchase


def test_inter_purchase_intervals_zero_paid_and_member_columns():
    tables = _n_day_tables()
    o, members = tables["orders"], tables["members"]
    iv = m.inter_purchase_intervals(o, by=["tier", "store_id"], members=members)
    # Paid purchases: A 01-01 -> 01-31 (30 d, S1), B 01-20 -> 03-01 (41, S1), C 02-20 ->
    # 03-05 (14, S1; the refund between is no purchase); D bought once.
    assert [tuple(r) for r in iv[["member_id", "purchase_number", "interval_days", "tier",
                                  "store_id"]].to_numpy()] == [
        ("A", 2, 30, "gold", "S1"), ("B", 2, 41, "gold", "S1"), ("C", 2, 14, "plus", "S1"),
    ]  # fmt: skip
    assert list(iv.columns) == ["member_id", "purchase_number", "previous_purchase_on",
                                "purchased_on", "interval_days", "tier", "store_id"]  # fmt: skip
    assert iv["previous_purchase_on"].tolist() == list(pd.to_datetime(["2024-01-01", "2024-01-20", "2024-02-20"]))
    inc = m.inter_purchase_intervals(o, zero_paid="include")
    # Zero-paid orders count: A 01-01 -> 01-11 (10) -> 01-31 (20); B 01-05 -> 01-20 (15) -> 03-01.
    assert list(zip(inc["member_id"], inc["interval_days"], strict=True)) == [
        ("A", 10), ("A", 20), ("B", 15), ("B", 41), ("C", 14),
    ]  # fmt: skip
    assert inc["purchase_number"].tolist() == [2, 3, 2, 3, 2]


def test_arpu():
    t = m.arpu(hand_orders(), "M")
    jan = _row(t, window="2024-01")
    # Jan member revenue: M1 100+20+50, M2 80, M3 0+30 = 280 over 3 buyers.
    assert jan.revenue == 280.0
    assert jan.arpu == pytest.approx(280 / 3)
    feb = _row(t, window="2024-02")
    # Feb: M2 60, M4 40-40 (refund netted) = 60 over 2 buyers.
    assert feb.arpu == pytest.approx(30.0)
    assert feb.discount_amount == 0.0


def test_pareto_share():
    t = m.pareto_share(hand_orders(), top=0.2)
    gross = _row(t, measure="revenue")
    paid = _row(t, measure="revenue_net_of_subsidy")
    # Gross per member: M1 190, M2 230, M3 180, M4 0, M5 210 = 810; top 1 of 5 = M2.
    assert (gross.members, gross.top_members, gross.total) == (5, 1, 810.0)
    assert gross.top_share == pytest.approx(230 / 810)
    # Paid: M1 170, M2 210, M3 30, M4 0, M5 210 = 620; top 1 (tie broken by id) = 210.
    assert paid.top_share == pytest.approx(210 / 620)
    half = _row(m.pareto_share(hand_orders(), top=0.5), measure="revenue")
    # ceil(2.5) = 3 members: 230 + 210 + 190 = 630.
    assert half.top_share == pytest.approx(630 / 810)
    by = m.pareto_share(hand_orders(), top=0.5, by="tier", members=hand_members())
    gold = _row(by, tier="gold", measure="revenue")
    # gold: M1 190, M4 0 -> top ceil(1) = M1 -> 190/190.
    assert gold.top_share == 1.0
    with pytest.raises(m.MetricsInputError, match="top"):
        m.pareto_share(hand_orders(), top=1.5)


def test_arpu_rolling_windows_member_groups_and_zero_paid():
    o = hand_orders()
    t = m.arpu(o, 60, "tier", members=hand_members(), start="2024-01-01", end="2024-03-30", step=30)
    got = {(r.window, r.tier): (r.members, r.revenue, r.arpu) for r in t.itertuples()}
    # 60-day windows every 30 days overlap: 01-01..02-29 holds o1-o9, 01-31..03-30 holds o5, o8,
    # o9, o12-o14. gold = M1, M4; regular = M2, M3; plus = M5.
    assert got == {
        # M1 100+20+50, M4 40-40 (o8 paid 40 makes M4 a buyer; the refund is netted).
        ("2024-01-01..2024-02-29", "gold"): (2, 170.0, 85.0),
        ("2024-01-01..2024-02-29", "regular"): (2, 170.0, 85.0),  # M2 80+60, M3 0+30
        ("2024-01-31..2024-03-30", "gold"): (1, 0.0, 0.0),  # M4 40-40
        ("2024-01-31..2024-03-30", "plus"): (1, 210.0, 210.0),  # M5 200+10
        ("2024-01-31..2024-03-30", "regular"): (1, 130.0, 130.0),  # M2 60+70
    }
    assert list(t["tier"]) == ["gold", "regular", "gold", "plus", "regular"]
    assert t["members"].dtype == "int64"
    # 01-15 holds only o6 (M3, paid 0): no purchase unless zero-paid orders count.
    day = ("2024-01-15", "2024-01-15")
    excluded, included = m.arpu(o, day).iloc[0], m.arpu(o, day, zero_paid="include").iloc[0]
    assert (excluded.members, excluded.revenue, excluded.gross_amount) == (0, 0.0, 50.0)
    assert math.isnan(excluded.arpu)
    assert (included.members, included.arpu, included.discount_amount) == (1, 0.0, 50.0)


def test_walk_in_share_named_windows_by_store():
    windows = {"all": ("2024-01-01", "2024-03-31"), "january": ("2024-01-01", "2024-01-31")}
    t = m.walk_in_share(hand_orders(), windows, "store_id")
    got = [(r.window, r.store_id, r.orders, r.walk_in_orders, r.revenue, r.walk_in_revenue)
           for r in t.itertuples()]  # fmt: skip
    assert got == [
        ("january", "S1", 4, 1, 215.0, 15.0),  # o1, o2, o4, o10 (walk-in): 100+20+80+15
        ("january", "S2", 3, 0, 80.0, 0.0),  # o3 50, o6 0, o7 30
        ("all", "S1", 7, 1, 275.0, 15.0),  # + o5 60, o8 40, o9 -40
        ("all", "S2", 7, 1, 385.0, 25.0),  # o3, o6, o7, o11 25, o12 200, o13 10, o14 70
    ]
    assert t["walk_in_revenue_share"].tolist() == pytest.approx([15 / 215, 0.0, 15 / 275, 25 / 385])
    assert t["store_id"].dtype == "string"


def test_pareto_share_in_a_date_range():
    t = m.pareto_share(hand_orders(), top=0.5, start="2024-02-01", end="2024-02-29")
    # February: M2 o5 60; M4 o8 40 and its refund o9 -40 -> 0. Top ceil(0.5 x 2) = 1 = M2.
    assert t[["measure", "members", "top_members", "total", "top_total", "top_share"]].to_dict(
        "records") == [
        {"measure": m_, "members": 2, "top_members": 1, "total": 60.0, "top_total": 60.0,
         "top_share": 1.0} for m_ in ("revenue", "revenue_net_of_subsidy")
    ]  # fmt: skip


def test_plots_return_axes():
    o = hand_orders()
    fig, axes = plt.subplots(2, 2)
    ax = plots.plot_repurchase_rates(m.repurchase_rates(o, "M", by="store_id"), by="store_id",
                                 ax=axes[0, 0])  # fmt: skip
    assert ax is axes[0, 0] and len(ax.lines) == 2
    assert (
        plots.plot_retention_matrix(m.retention_matrix(o, as_of="2024-03-31"), ax=axes[0, 1])
        is axes[0, 1]
    )
    assert len(plots.plot_retention_curves(m.retention_curve(o), ax=axes[1, 0]).lines) == 1
    assert (
        plots.plot_inter_purchase_intervals(m.inter_purchase_intervals(o), ax=axes[1, 1]) is axes[1, 1]
    )
    with pytest.raises(m.MetricsInputError, match="nope"):
        plots.plot_repurchase_rates(m.repurchase_rates(o), rate="nope")
    plt.close(fig)


# --------------------------------------------------------------------------- integer-code path


def _random_chain(seed: int, n: int = 3000, dtype="string") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders with the awkward cases: walk-ins, several orders of a member on one day (in one
    store and across stores, some at the same second), zero-paid and refund tickets, an empty
    store id next to a missing one, ids of 0 to 16 bytes (non-ASCII too; seed 2 adds one longer
    than the string fast path takes) and multi-chunk Arrow columns."""
    rng = np.random.default_rng(seed)
    ids = [f"M{i}" for i in range(60)] + ["", "会员-0001", "x" * 8, "y" * 16]
    ids += ["long-" + "z" * 65] if seed == 2 else []
    member = pd.array(rng.choice(np.array(ids, dtype=object), n), dtype=dtype)
    member[rng.random(n) < 0.25] = pd.NA
    store = pd.array(rng.choice(np.array(["S1", "S2", "S3", ""], dtype=object), n), dtype=dtype)
    store[rng.random(n) < 0.05] = pd.NA
    seconds = rng.integers(0, 120, n) * 86400 + rng.choice([0, 3600, 36000], n)
    orders = pd.DataFrame(
        {
            "order_id": pd.array([f"o{i}" for i in range(n)], dtype=dtype),
            "member_id": member,
            "store_id": store,
            "ordered_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(seconds, unit="s"),
            "paid_amount": rng.choice([0.0, -10.0, 15.0, 80.0], n, p=[0.1, 0.05, 0.5, 0.35]),
            "channel": pd.array(
                rng.choice(np.array(["app", "store"], dtype=object), n), dtype=dtype
            ),
        }
    )
    orders = pd.concat([orders.iloc[: n // 2], orders.iloc[n // 2 :]])  # two Arrow chunks
    orders.index = rng.permutation(n) + 1000
    members = pd.DataFrame(
        {
            "member_id": pd.array(ids, dtype=dtype),
            "tier": pd.array(rng.choice(np.array(["gold", "plus", None]), len(ids)), dtype=dtype),
        }
    )
    return orders, members


def _reference_rates(orders, windows, by, members, purchase_unit, zero_paid) -> pd.DataFrame:
    """The definitions as plain group-bys over the id strings, one window at a time."""
    frame = orders.loc[orders["member_id"].notna()].merge(members, on="member_id", how="left")
    frame["day"] = frame["ordered_at"].dt.normalize()
    paid = frame["paid_amount"]
    frame["purchase"] = paid >= 0 if zero_paid == "include" else paid > 0
    rows = []
    for start, end in windows:
        inside = frame.loc[(frame["day"] >= start) & (frame["day"] <= end)]
        for key, part in inside.groupby(by, dropna=False, sort=True):
            bought = part.loc[part["purchase"]]
            if purchase_unit == "day":
                bought = bought.drop_duplicates(["member_id", "day"])
            n = bought.groupby("member_id").size()
            rows.append(
                (pd.Timestamp(start), pd.Timestamp(end), *key, len(n), int((n >= 2).sum()),
                 int(n.sum()), int((~part["purchase"]).sum()))
            )  # fmt: skip
    cols = ["window_start", "window_end", *by, "members", "repeat_members", "purchases",
            "excluded_orders"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


@pytest.mark.parametrize("purchase_unit", ["day", "order"])
@pytest.mark.parametrize("zero_paid", ["exclude", "include"])
@pytest.mark.parametrize(
    "window, windows, by",
    [
        (
            "M",
            [
                (f"2024-{k:02d}-01", f"2024-{k:02d}-{d}")
                for k, d in [(1, 31), (2, 29), (3, 31), (4, 30)]
            ],
            ["store_id"],
        ),
        ("Q", [("2024-01-01", "2024-03-31"), ("2024-04-01", "2024-06-30")], ["store_id", "tier"]),
        (
            [("2024-01-10", "2024-02-20"), ("2024-02-01", "2024-03-15")],
            [("2024-01-10", "2024-02-20"), ("2024-02-01", "2024-03-15")],
            ["channel", "store_id"],
        ),
    ],
)
def test_rates_match_a_plain_groupby_reference(window, windows, by, purchase_unit, zero_paid):
    for seed in range(3):
        orders, members = _random_chain(seed)
        got = m.repurchase_rates(orders, window, by, members=members,
                                 purchase_unit=purchase_unit, zero_paid=zero_paid)  # fmt: skip
        ref = _reference_rates(orders, windows, by, members, purchase_unit, zero_paid)
        keys = ["window_start", "window_end", *by]
        got = got.sort_values(keys, ignore_index=True)
        ref = ref.sort_values(keys, ignore_index=True)
        assert len(got) == len(ref) > 10 and ref["repeat_members"].sum() > 0
        for c in [*by, "members", "repeat_members", "purchases", "excluded_orders"]:
            assert [None if pd.isna(v) else v for v in got[c]] == [
                None if pd.isna(v) else v for v in ref[c]
            ], c
        assert (got["repeat_purchases"] == ref["purchases"] - ref["members"]).all()


def test_rates_by_member_and_repeated_n_days_are_clear_errors():
    with pytest.raises(m.MetricsInputError, match="by='member_id': a repurchase rate is a share of members"):
        m.repurchase_rates(hand_orders(), "M", by="member_id")
    with pytest.raises(m.MetricsInputError, match=r"outcome_days has a repeated value: \(30, 60, 30\)"):
        m.n_day_repurchase(hand_orders(), (30, 60, 30))
