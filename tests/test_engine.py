"""The DuckDB engine: aggregates and refill fills on a hand-built export against hand-computed
values; the validated views against the pandas path on a small demo chain (Parquet and CSV) and
on an export with rows the loader excludes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_metrics import _ROWS

from rxrepurchase import engine, metrics, refill, rfm
from rxrepurchase.contract import TABLES
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.errors import DataContractError, RxRepurchaseError
from rxrepurchase.loading import load_chain

AS_OF = "2026-09-30"
CUT = "2026-03-31"
CONFIG = DemoConfig(n_members=800, n_stores=4, months=12, seed=5, end_date=AS_OF)
MONEY = {"check_exact": False, "rtol": 1e-9}  # money to 1e-9 relative; counts stay exact


def _load(folder) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dirty chain's exclusions are what we test
        return load_chain(folder, as_of=AS_OF)


@pytest.fixture(scope="module", params=["parquet", "csv"])
def demo(request, tmp_path_factory):
    """(folder, loaded chain, open ChainSource) of the demo chain in one file format."""
    folder = tmp_path_factory.mktemp(f"demo_{request.param}")
    write_demo_chain(folder, CONFIG, file_format=request.param, overwrite=True)
    src = engine.ChainSource(folder, as_of=AS_OF, memory_limit="1GB", threads=2)
    yield folder, _load(folder), src
    src.close()


def _dirty_chain(folder) -> None:
    """Write the demo chain as CSV and break some orders and lines the way real exports do."""
    write_demo_chain(folder, CONFIG, file_format="csv", overwrite=True)
    orders = pd.read_csv(folder / "orders.csv", dtype=str, keep_default_na=False)
    members = orders.loc[orders["member_id"] != "", "member_id"]
    first_member = members.iloc[0]
    bad = orders.iloc[:8].copy()
    bad["order_id"] = [f"X{i}" for i in range(8)]
    bad.loc[bad.index[0], "paid_amount"] = "-5"  # negative paid: excluded
    bad.loc[bad.index[1], "ordered_at"] = "2026-10-01 09:00:00"  # after as_of: excluded
    bad.loc[bad.index[2], "ordered_at"] = "not a time"  # unparseable: excluded
    bad.loc[bad.index[3], "member_id"] = "NOBODY"  # unknown member: excluded
    bad.loc[bad.index[4], "store_id"] = "S-GONE"  # unknown store: excluded
    bad.loc[bad.index[5], "member_id"] = f"  {first_member} "  # padded id: kept, trimmed
    bad.loc[bad.index[6], "discount_amount"] = "99999"  # discount above gross: excluded
    bad.loc[bad.index[7], "channel"] = ""  # empty required value: excluded
    exact_copy = orders.iloc[[10]]  # the copy goes, the order stays
    conflicting = orders.iloc[[11]].assign(paid_amount="1.23")  # both versions go
    out = pd.concat([orders, bad, exact_copy, conflicting], ignore_index=True)
    out.to_csv(folder / "orders.csv", index=False)
    lines = pd.read_csv(folder / "order_lines.csv", dtype=str, keep_default_na=False)
    extra = lines.iloc[:3].copy()
    extra["order_id"] = ["X0", "X5", "NO-SUCH-ORDER"]  # line of an excluded / kept / unknown order
    extra.loc[extra.index[1], "quantity"] = "0"  # non-positive quantity: excluded
    pd.concat([lines, extra], ignore_index=True).to_csv(folder / "order_lines.csv", index=False)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dirty")
    _dirty_chain(folder)
    src = engine.ChainSource(folder, as_of=AS_OF, memory_limit="1GB", threads=2)
    yield folder, _load(folder), src
    src.close()


def _assert_rfm_equal(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(expected, got, **MONEY)
    # Counts and days exactly, not merely to the tolerance.
    for col in ("frequency", "recency", "T", "first_purchase", "last_purchase"):
        np.testing.assert_array_equal(expected[col].to_numpy(), got[col].to_numpy())
    assert expected.attrs == got.attrs


# --------------------------------------------------------------------------- hand-computed

# The hand chain of test_metrics: o9 (paid -40, a refund of o8) is dropped by the engine's
# rules (a negative amount); o10 and o11 are walk-ins.
HAND = _ROWS


# Campaign ids on o1 (Jan 5), o4 (Jan 10), the walk-in o11 (Feb 7) and the excluded refund o9.
CAMPAIGNS = ["W1", None, None, "W1", None, None, None, None, "W2", None, "W1", None, None, None]


# Order lines: (order, sku, product name, category, chronic, quantity, amount, days supply).
# Chronic lines: A (blood pressure) for M1 on Jan 5 (o1, o2) and Jan 20, for M4 and the walk-in
# o10; B and D (diabetes) for M2 on Jan 10 (o4), B on Feb 12 (supply unknown) and Mar 20 (S2).
LINES = [
    ("o1", "A", "Amlo 5mg box", "bp", True, 1, 30.0, 30), ("o2", "A", "Amlo 5mg", "bp", True, 2, 60.0, 60),
    ("o2", "C", "Vitamin C", "vit", False, 1, 20.0, None), ("o3", "A", "Amlo 5mg", "bp", True, 1, 30.0, 30),
    ("o4", "B", "Metformin", "dm", True, 1, 80.0, 30), ("o4", "D", "Glipizide", "dm", True, 1, 20.0, 30),
    ("o5", "B", "Metformin", "dm", True, 1, 60.0, None), ("o6", "C", "Vitamin C", "vit", False, 1, 50.0, None),
    ("o7", "C", "Vitamin C", "vit", False, 1, 130.0, None), ("o8", "A", "Amlo 5mg", "bp", True, 1, 40.0, 30),
    ("o9", "A", "Amlo 5mg", "bp", True, 1, -40.0, 30), ("o10", "A", "Amlo 5mg", "bp", True, 1, 15.0, 30),
    ("o11", "B", "Metformin", "dm", False, 1, 25.0, None), ("o12", "C", "Vitamin C", "vit", False, 1, 200.0, None),
    ("o13", "C", "Vitamin C", "vit", False, 1, 10.0, None), ("o14", "B", "Metformin", "dm", True, 1, 70.0, 30),
]  # fmt: skip


def _hand_tables() -> dict[str, pd.DataFrame]:
    orders = pd.DataFrame(HAND, columns=["order_id", "member_id", "store_id", "ordered_at",
                                         "gross_amount", "discount_amount", "paid_amount"])  # fmt: skip
    return {
        "stores": pd.DataFrame({"store_id": ["S1", "S2"], "name": ["One", "Two"], "city": "X"}),
        "members": pd.DataFrame({
            "member_id": ["M1", "M2", "M3", "M4", "M5"], "home_store_id": "S1",
            "joined_on": "2023-12-01", "tier": ["gold", "regular", "regular", "gold", "plus"],
            "acquisition_channel": "store",
        }),
        "orders": orders.assign(channel="store", stored_value_amount=0.0, campaign_id=CAMPAIGNS),
        "order_lines": pd.DataFrame(LINES, columns=["order_id", "sku", "product_name", "category",
                                                    "is_chronic", "quantity", "line_amount",
                                                    "days_supply"]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    """An export folder (CSV) of the hand chain, opened with as_of 2024-03-31."""
    folder = tmp_path_factory.mktemp("hand")
    for name, frame in _hand_tables().items():  # the contract's optional columns present but empty
        frame.reindex(columns=TABLES[name].column_names).to_csv(folder / f"{name}.csv", index=False)
    src = engine.ChainSource(folder, as_of="2024-03-31", memory_limit="1GB", threads=2)
    yield folder, src
    src.close()


def test_campaigns_derived_from_the_kept_orders(hand):
    _, src = hand
    # No campaigns file: W1 runs from its first to its last order day (walk-ins count); W2
    # was only on the refund the rules exclude.
    got = src.sql("SELECT * FROM campaigns").df()
    assert got.to_dict("records") == [{
        "campaign_id": "W1", "name": "W1", "starts_on": pd.Timestamp("2024-01-05"),
        "ends_on": pd.Timestamp("2024-02-07"), "kind": None,
    }]  # fmt: skip


FILL_COLUMNS = ["member_id", "product", "filled_on", "store_id", "product_name", "quantity",
                "line_amount", "days_supply", "n_lines", "home_store_id"]


def test_refill_fills_hand_computed(hand):
    _, src = hand
    fills = engine.refill_fills(src)
    nan = np.nan
    # M1's two lines of A on Jan 5 are one fill of 90 days, named by the larger line (o2);
    # M2's B on Feb 12 has no supply, so Mar 20's ratio is unknown; o9's line goes with the
    # excluded refund, the walk-in's A line is counted, non-chronic lines are left out.
    expected = [
        ("M1", "A", "2024-01-05", "S1", "Amlo 5mg", 3.0, 90.0, 90.0, 2, "S1", nan, nan),
        ("M1", "A", "2024-01-20", "S2", "Amlo 5mg", 1.0, 30.0, 30.0, 1, "S1", 15.0, 15 / 90),
        ("M2", "B", "2024-01-10", "S1", "Metformin", 1.0, 80.0, 30.0, 1, "S1", nan, nan),
        ("M2", "B", "2024-02-12", "S1", "Metformin", 1.0, 60.0, nan, 1, "S1", 33.0, 33 / 30),
        ("M2", "B", "2024-03-20", "S2", "Metformin", 1.0, 70.0, 30.0, 1, "S1", 37.0, nan),
        ("M2", "D", "2024-01-10", "S1", "Glipizide", 1.0, 20.0, 30.0, 1, "S1", nan, nan),
        ("M4", "A", "2024-02-03", "S1", "Amlo 5mg", 1.0, 40.0, 30.0, 1, "S1", nan, nan),
    ]
    want = pd.DataFrame(expected, columns=[*FILL_COLUMNS, "interval_days", "supply_ratio"])
    want["filled_on"] = pd.to_datetime(want["filled_on"]).astype("datetime64[ns]")
    pd.testing.assert_frame_equal(fills[want.columns], want, check_dtype=False)
    assert fills.attrs == {"walk_in_lines": 1, "return_lines": 0, "group_by": "sku"}
    # By category M2's B and D of Jan 10 are one diabetes fill of 60 days, named by Metformin;
    # without chronic_only the vitamin lines come in too (M3's o6 and o7, M5's, M1's o2).
    by_category = engine.refill_fills(src, group_by="category", with_members=False)
    jan10 = by_category.set_index(["member_id", "product"]).loc[("M2", "dm")].iloc[0]
    assert (jan10["product_name"], jan10["days_supply"], jan10["n_lines"]) == ("Metformin", 60.0, 2)
    assert "home_store_id" not in by_category and len(by_category) == 6
    every = engine.refill_fills(src, chronic_only=False)
    assert len(every) == len(fills) + 5 and every.attrs["walk_in_lines"] == 2
    # The pandas path on the same tables gives the same fills (its own rules keep o9 out).
    tables = _hand_tables()
    orders = tables["orders"].loc[lambda o: o["order_id"] != "o9"].astype({"ordered_at": "datetime64[ns]"})
    lines = tables["order_lines"].loc[lambda o: o["order_id"] != "o9"]
    pandas_fills = refill.fill_intervals(refill.refill_fills(lines, orders, tables["members"]))
    pd.testing.assert_frame_equal(pandas_fills[want.columns], want, check_dtype=False)


def test_rfm_summary_hand_computed(hand):
    folder, src = hand
    rfm_ = engine.rfm_summary(src, as_of="2024-03-31")
    assert list(rfm_.index) == ["M1", "M2", "M3", "M4", "M5"] and rfm_.index.dtype == "string"
    # (frequency, recency, T, monetary): M1 Jan 5 (o1+o2 = 120) and Jan 20 (50); M2 Jan 10,
    # Feb 12, Mar 20; M3 Jan 15 (paid 0, still part of RFM) and Jan 25; M4 Feb 3 only (the
    # refund o9 is excluded by the rules); M5 Mar 1 and Mar 15. T runs to Mar 31.
    expected = {
        "M1": (1, 15, 86, 50.0), "M2": (2, 70, 81, 65.0), "M3": (1, 10, 76, 30.0),
        "M4": (0, 0, 57, 0.0), "M5": (1, 14, 30, 10.0),
    }  # fmt: skip
    for member, values in expected.items():
        assert tuple(rfm_.loc[member, ["frequency", "recency", "T", "monetary_value"]]) == values
    assert rfm_.loc["M2", "litt"] == pytest.approx(np.log(33) + np.log(37))  # 33 and 37 days
    assert rfm_.loc["M2", "first_purchase"] == pd.Timestamp("2024-01-10")
    assert rfm_.attrs["walk_in_orders"] == 2 and rfm_.attrs["transactions_after_end"] == 0
    # Default as_of: the last member purchase (Mar 20); weeks are days / 7. A folder works
    # too (read as of today without as_of).
    weeks = engine.rfm_summary(folder, time_unit="weeks")
    assert weeks.attrs["as_of"] == pd.Timestamp("2024-03-20")
    assert weeks.loc["M5", "T"] == pytest.approx(19 / 7)


def test_rfm_summary_per_store_and_gross_hand_computed(hand):
    _, src = hand
    per_store = engine.rfm_summary(src, as_of="2024-03-31", by="store_id",
                                   amount_col="gross_amount")  # fmt: skip
    assert per_store.index.names == ["store_id", "member_id"]
    # M2 bought at S1 on Jan 10 and Feb 12 (gross 60), at S2 on Mar 20 only.
    assert tuple(per_store.loc[("S1", "M2"), ["frequency", "recency", "monetary_value"]]) == (1, 33, 60)
    assert tuple(per_store.loc[("S2", "M2"), ["frequency", "T"]]) == (0, 11)
    with pytest.raises(rfm.RFMInputError, match="no member purchase on or before 2023-12-31"):
        engine.rfm_summary(src, as_of="2023-12-31")


def test_calibration_holdout_hand_computed(hand):
    _, src = hand
    split = engine.calibration_holdout(src, "2024-01-31", holdout_end="2024-03-31")
    cal, hold = split.calibration, split.holdout
    # Calibration members first bought by Jan 31: M1 (Jan 5, 20), M2 (Jan 10), M3 (Jan 15, 25).
    assert list(cal.index) == ["M1", "M2", "M3"]
    assert tuple(cal.loc["M2", ["frequency", "T"]]) == (0, 21)
    assert list(hold["frequency_holdout"]) == [0, 2, 0]  # M2: Feb 12 and Mar 20
    assert hold.loc["M2", "monetary_holdout"] == 65.0 and split.duration_holdout == 60
    # M4 (Feb 3, 40) and M5 (Mar 1 and 15, 210) first buy in the holdout.
    new = split.new_in_holdout
    assert list(new.index) == ["M4", "M5"] and list(new["purchases"]) == [1, 2]
    assert list(new["spend"]) == [40.0, 210.0]
    assert split.first_purchases.to_dict() == {
        pd.Timestamp(d): 1 for d in ("2024-01-05", "2024-01-10", "2024-01-15")
    }
    assert split.repeat_purchases.to_dict() == {
        pd.Timestamp(d): 1 for d in ("2024-01-20", "2024-01-25", "2024-02-12", "2024-03-20")
    }
    assert split.walk_in_orders == 2 and split.transactions_after_holdout == 0


def test_repurchase_rates_hand_computed(hand):
    _, src = hand
    t = engine.repurchase_rates(src, "M", None)
    assert list(t["window"]) == ["2024-01", "2024-02", "2024-03"]
    # Jan: M1 (2 days), M2, M3 (o6 paid 0 is no purchase) -> 3 members, 1 repeat, 4 purchases.
    assert tuple(t.iloc[0][["members", "repeat_members", "purchases", "excluded_orders"]]) == (3, 1, 4, 1)
    # Feb: M2, M4 once each (the refund is not in the validated orders); Mar: M5 twice, M2.
    assert tuple(t.iloc[1][["members", "repeat_members", "excluded_orders"]]) == (2, 0, 0)
    assert t.iloc[2]["user_repurchase_rate"] == pytest.approx(0.5)
    assert t.iloc[2]["order_repurchase_rate"] == pytest.approx(1 / 3)
    tiers = engine.repurchase_rates(src, "M", "tier")
    jan = tiers.loc[tiers["window"] == "2024-01"].set_index("tier")
    assert jan.loc["gold", "user_repurchase_rate"] == 1.0 and jan.loc["regular", "members"] == 2
    stores = engine.repurchase_rates(src, "Q", "store_id", purchase_unit="order")
    # Q1 at S1: M1 o1, o2; M2 o4, o5; M4 o8 -> 3 members, 2 repeat, 5 purchases.
    s1 = stores.set_index("store_id").loc["S1"]
    assert tuple(s1[["members", "repeat_members", "purchases"]]) == (3, 2, 5)
    assert stores["store_id"].dtype == "string"


def test_repurchase_rates_n_day_windows_hand_computed(hand):
    _, src = hand
    cols = ["window_start", "window_end", "members", "repeat_members", "purchases", "excluded_orders"]
    # 30-day windows tiled back from Mar 30 to Jan 1 (member-day purchases of the chain).
    t = engine.repurchase_rates(src, "30D", None, start="2024-01-01", end="2024-03-30")
    assert [tuple(r) for r in t[cols].astype(str).to_numpy()] == [
        # M1 twice (Jan 5, Jan 20), M2, M3 (o7; o6 paid 0 is excluded)
        ("2024-01-01", "2024-01-30", "3", "1", "4", "1"),
        ("2024-01-31", "2024-02-29", "2", "0", "2", "0"),  # M2 Feb 12, M4 Feb 3
        ("2024-03-01", "2024-03-30", "2", "1", "3", "0"),  # M5 Mar 1 and 15, M2 Mar 20
    ]
    # 60-day windows every 30 days overlap: a purchase counts in each window holding it.
    rolling = engine.repurchase_rates(src, 60, None, start="2024-01-01", end="2024-03-30", step=30)
    assert [tuple(r) for r in rolling[cols].astype(str).to_numpy()] == [
        ("2024-01-01", "2024-02-29", "4", "2", "6", "1"),  # M1 2, M2 2 (Jan 10, Feb 12), M3, M4
        ("2024-01-31", "2024-03-30", "3", "2", "5", "0"),  # M2 2 (Feb 12, Mar 20), M4, M5 2
    ]
    assert rolling["window"].tolist() == ["2024-01-01..2024-02-29", "2024-01-31..2024-03-30"]


def test_money_measures_hand_computed(hand):
    _, src = hand
    # The refund o9 (paid -40) is not in the validated orders; the walk-ins o10, o11 are.
    t = engine.arpu(src, "M", None)
    # Jan: M1 100+20+50, M2 80, M3 0+30 = 280 over 3; Feb: M2 60, M4 40; Mar: M5 210, M2 70.
    assert list(zip(t["window"], t["members"], t["revenue"], t["arpu"], strict=True)) == [
        ("2024-01", 3, 280.0, pytest.approx(280 / 3)), ("2024-02", 2, 100.0, 50.0),
        ("2024-03", 2, 280.0, 140.0),
    ]  # fmt: skip
    assert (t["gross_amount"].iloc[0], t["discount_amount"].iloc[0]) == (470.0, 190.0)
    tiers = engine.arpu(src, "Q", "tier").set_index("tier")
    # gold M1 170 + M4 40; regular M2 210 + M3 30; plus M5 210.
    assert tiers["arpu"].to_dict() == {"gold": 105.0, "plus": 210.0, "regular": 120.0}
    walk = engine.walk_in_share(src, "M", "store_id")
    assert list(zip(walk["window"], walk["store_id"], walk["orders"], walk["walk_in_orders"],
                    walk["revenue"], walk["walk_in_revenue"], strict=True)) == [
        ("2024-01", "S1", 4, 1, 215.0, 15.0), ("2024-01", "S2", 3, 0, 80.0, 0.0),
        ("2024-02", "S1", 2, 0, 100.0, 0.0), ("2024-02", "S2", 1, 1, 25.0, 25.0),
        ("2024-03", "S2", 3, 0, 280.0, 0.0),
    ]  # fmt: skip
    with pytest.raises(RxRepurchaseError, match="order columns only"):
        engine.walk_in_share(src, "M", "tier")
    top = engine.pareto_share(src, 0.5, "store_id").set_index(["store_id", "measure"])
    # S1 gross M2 160, M1 140, M4 40 (paid 140, 120, 40): top ceil(1.5) = 2.
    # S2 gross M5 210, M3 180, M2 70, M1 50 (paid 210, 30, 70, 50): top 2; the subsidised M3
    # is second by list price and last by what was paid.
    assert top[["members", "top_members", "total", "top_total"]].to_dict("index") == {
        ("S1", "revenue"): {"members": 3, "top_members": 2, "total": 340.0, "top_total": 300.0},
        ("S1", "revenue_net_of_subsidy"): {"members": 3, "top_members": 2, "total": 300.0,
                                           "top_total": 260.0},
        ("S2", "revenue"): {"members": 4, "top_members": 2, "total": 510.0, "top_total": 390.0},
        ("S2", "revenue_net_of_subsidy"): {"members": 4, "top_members": 2, "total": 360.0,
                                           "top_total": 280.0},
    }  # fmt: skip
    march = engine.pareto_share(src, 0.2, start="2024-03-01")
    assert march["top_share"].tolist() == [210 / 280] * 2  # M5 of M5, M2


def test_cohort_retention_hand_computed(hand):
    _, src = hand
    t = engine.cohort_retention(src, "M", as_of="2024-03-31")
    # Cohorts by first paid purchase: Jan M1, M2, M3 (o7); Feb M4; Mar M5. M2 buys again in
    # Feb and Mar.
    assert list(zip(t["cohort"], t["periods_since_first"], t["cohort_members"], t["active_members"],
                    strict=True)) == [
        ("2024-01", 0, 3, 3), ("2024-01", 1, 3, 1), ("2024-01", 2, 3, 1),
        ("2024-02", 0, 1, 1), ("2024-02", 1, 1, 0), ("2024-03", 0, 1, 1),
    ]  # fmt: skip
    by_store = engine.cohort_retention(src, "M", "store_id", as_of="2024-03-31")
    # Acquiring stores: S1 for M1, M2 (Jan) and M4 (Feb); S2 for M3 (Jan) and M5 (Mar).
    sizes = by_store.drop_duplicates(["store_id", "cohort"]).set_index(["store_id", "cohort"])
    assert sizes["cohort_members"].to_dict() == {
        ("S1", "2024-01"): 2, ("S1", "2024-02"): 1, ("S2", "2024-01"): 1, ("S2", "2024-03"): 1,
    }


# --------------------------------------------------------------------------- validation


def test_dirty_export_excludes_the_rows_the_loader_excludes(dirty):
    folder, chain, src = dirty
    counts = src.row_counts().set_index("table")
    assert counts["rows_read"].to_dict() == chain.quality.rows_read
    assert counts["rows_loaded"].to_dict() == chain.quality.rows_loaded
    # 7 broken orders + the exact copy + both versions of the conflicting order.
    assert counts.loc["orders", "excluded"] == 10
    # Lines of the excluded order X0 and of the conflicting order, the zero quantity line and
    # the unknown order's line.
    lines = pd.read_csv(folder / "order_lines.csv", dtype=str)
    conflicting = pd.read_csv(folder / "orders.csv", dtype=str)["order_id"].iloc[11]
    assert counts.loc["order_lines", "excluded"] == 3 + (lines["order_id"] == conflicting).sum()


def test_dirty_parquet_export_excludes_the_same_rows(dirty, tmp_path):
    # Parquet files carry row numbers: the row rules of keyed tables are then evaluated once,
    # into a table of the excluded rows, instead of filtering every query.
    folder, chain, _ = dirty
    for file in folder.glob("*.csv"):
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
        frame.to_parquet(tmp_path / f"{file.stem}.parquet", index=False)
    with engine.ChainSource(tmp_path, as_of=AS_OF, memory_limit="1GB", threads=2) as src:
        counts = src.row_counts().set_index("table")
        assert counts["rows_loaded"].to_dict() == chain.quality.rows_loaded
        assert counts.loc["orders", "excluded"] == 10
        assert src.table("orders").columns == tuple(TABLES["orders"].column_names)
        _assert_rfm_equal(rfm.rfm_summary(chain.orders, by="store_id"),
                          engine.rfm_summary(src, by="store_id"))


def test_dirty_export_aggregates_match_pandas(dirty):
    _, chain, src = dirty
    _assert_rfm_equal(rfm.rfm_summary(chain.orders, by="store_id"),
                      engine.rfm_summary(src, by="store_id"))
    pd.testing.assert_frame_equal(
        metrics.repurchase_rates(chain.orders, "M", "store_id"),
        engine.repurchase_rates(src, "M", "store_id"),
    )
    pd.testing.assert_frame_equal(
        metrics.cohort_retention(chain.orders, "M", "store_id"),
        engine.cohort_retention(src, "M", "store_id"),
    )
    members = {"members": chain.members}
    for name, args, kw in (("arpu", ("M", "tier"), members), ("walk_in_share", ("Q", "channel"), {}),
                           ("pareto_share", (0.2, "store_id"), members)):  # fmt: skip
        pd.testing.assert_frame_equal(getattr(metrics, name)(chain.orders, *args, **kw),
                                      getattr(engine, name)(src, *args), **MONEY)


def test_lighter_validation_modes(dirty, demo):
    folder, chain, _ = dirty
    with engine.ChainSource(folder, as_of=AS_OF, validate="rows") as src:
        rows = src.row_counts().set_index("table")
    with engine.ChainSource(folder, as_of=AS_OF, validate="none") as src:
        none = src.row_counts().set_index("table")
    # Row rules still apply with "rows"; duplicates and unknown references are not looked
    # for: the exact copy, both conflicting versions, the unknown member and the unknown store.
    assert rows.loc["orders", "rows_loaded"] == chain.quality.rows_loaded["orders"] + 5
    # "none" keeps every order known to be on or before as_of: all but the one dated after it
    # and the one whose time cannot be read.
    assert none.loc["orders", "rows_loaded"] == chain.quality.rows_read["orders"] - 2
    # On a clean export every mode gives the pandas path's results.
    demo_folder, demo_chain, _ = demo
    expected = rfm.rfm_summary(demo_chain.orders, by="store_id")
    for mode in ("rows", "none"):
        with engine.ChainSource(demo_folder, as_of=AS_OF, validate=mode) as src:
            _assert_rfm_equal(expected, engine.rfm_summary(src, by="store_id"))
            pd.testing.assert_frame_equal(
                metrics.cohort_retention(demo_chain.orders, "M", "store_id"),
                engine.cohort_retention(src, "M", "store_id"),
            )


# --------------------------------------------------------------------------- errors


def test_errors_name_the_problem(demo, tmp_path):
    folder, _, src = demo
    with pytest.raises(engine.EngineError, match="grouping column.*'no_such_column'"):
        engine.repurchase_rates(src, "M", "no_such_column")
    with pytest.raises(metrics.MetricsInputError, match="window 'fortnight' not understood"):
        engine.repurchase_rates(src, "fortnight")
    with pytest.raises(engine.EngineError, match="amount_col"):
        engine.rfm_summary(src, amount_col="quantity")
    with pytest.raises(engine.EngineError, match="as_of 2027-01-01 is after the source.s"):
        engine.rfm_summary(src, as_of="2027-01-01")
    with pytest.raises(engine.EngineError, match="as_of 2020-01-01 differs from the source's"):
        engine.calibration_holdout(src, "2019-12-01", as_of="2020-01-01")
    with pytest.raises(rfm.RFMInputError, match="no member purchase on or before 2020-01-01"):
        engine.rfm_summary(src, as_of="2020-01-01")  # an earlier day: observed to it
    with pytest.raises(engine.EngineError, match="validate must be"):
        engine.ChainSource(folder, validate="some")
    with pytest.raises(rfm.RFMInputError, match="after calibration_end"):
        engine.calibration_holdout(src, CUT, holdout_end="2026-01-01")
    with pytest.raises(engine.EngineError, match="order_lines column"):
        engine.refill_fills(src, group_by="brand")
    with pytest.raises(DataContractError, match="does not exist"):
        engine.ChainSource(tmp_path / "missing")
    (tmp_path / "orders.csv").write_text("order_id,member_id\n1,2\n", encoding="utf-8")
    with pytest.raises(DataContractError, match="stores"):
        engine.ChainSource(tmp_path)
    assert issubclass(engine.EngineError, RxRepurchaseError)


def test_missing_required_column_names_file_and_column(tmp_path):
    write_demo_chain(tmp_path, CONFIG, file_format="csv", overwrite=True)
    orders = pd.read_csv(tmp_path / "orders.csv", dtype=str).drop(columns="paid_amount")
    orders.to_csv(tmp_path / "orders.csv", index=False)
    with pytest.raises(DataContractError, match=r"orders\.csv.*paid_amount"):
        engine.ChainSource(tmp_path, as_of=AS_OF)
