"""RFM summary and calibration/holdout split: hand-computed cases, CDNOW, a pandas reference."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pandas as pd
import pytest
from cdnow import read_cdnow_sample

from rxrepurchase.errors import RxRepurchaseError
from rxrepurchase.rfm import RFMInputError, calibration_holdout, rfm_summary


def _orders(rows):
    frame = pd.DataFrame(rows, columns=["member_id", "store_id", "ordered_at", "paid_amount", "gross_amount"])
    frame["member_id"] = frame["member_id"].astype("string")
    frame["store_id"] = frame["store_id"].astype("string")
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    return frame


@pytest.fixture
def orders() -> pd.DataFrame:
    return _orders(
        [
            ("A", "S1", "2024-01-01 10:00", 10.0, 12.0),
            ("A", "S1", "2024-01-01 18:30", 5.0, 5.0),  # same day as above: one purchase of 15
            ("A", "S2", "2024-01-08 09:00", 20.0, 30.0),
            ("A", "S1", "2024-01-15 23:59", 40.0, 50.0),
            ("B", "S2", "2024-01-10 12:00", 7.0, 9.0),
            (None, "S1", "2024-01-02 11:00", 3.0, 3.0),  # walk-in
            ("C", "S1", "2024-01-25 08:00", 9.0, 9.0),  # after the observation end below
        ]
    )


def test_rfm_summary_hand_computed_days(orders):
    rfm = rfm_summary(orders, as_of="2024-01-20")
    assert list(rfm.index) == ["A", "B"]
    a, b = rfm.loc["A"], rfm.loc["B"]
    # A buys on Jan 1 (10+5 merged), Jan 8 (20), Jan 15 (40): 2 repeat purchases.
    assert a["frequency"] == 2
    assert a["recency"] == 14  # Jan 15 - Jan 1
    assert a["T"] == 19  # Jan 20 - Jan 1
    assert a["monetary_value"] == 30.0  # (20 + 40) / 2, first purchase excluded
    assert a["first_purchase"] == pd.Timestamp("2024-01-01")
    assert a["last_purchase"] == pd.Timestamp("2024-01-15")
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0, 10, 0)
    # Gaps of 7 and 7 days: litt = 2 log 7; B has no gap.
    assert a["litt"] == pytest.approx(2 * np.log(7)) and b["litt"] == 0
    assert rfm.attrs["walk_in_orders"] == 1
    assert rfm.attrs["transactions_after_end"] == 1  # C's order on Jan 25
    assert rfm.attrs["as_of"] == pd.Timestamp("2024-01-20")
    assert rfm["frequency"].dtype == np.int64


def test_rfm_summary_weeks_count_from_first_purchase(orders):
    rfm = rfm_summary(orders, as_of="2024-01-20", time_unit="weeks")
    assert rfm.loc["A", "recency"] == pytest.approx(2.0)  # 14 days / 7
    assert rfm.loc["A", "T"] == pytest.approx(19 / 7)
    assert rfm.loc["A", "litt"] == pytest.approx(0.0)  # two gaps of one week: log 1 + log 1
    assert rfm.loc["B", "T"] == pytest.approx(10 / 7)
    assert rfm.attrs["time_unit"] == "weeks"


def test_rfm_summary_gross_basis_and_default_end(orders):
    rfm = rfm_summary(orders, amount_col="gross_amount")
    # Default end is the last transaction date, Jan 25; A's repeats at gross: (30 + 50) / 2.
    assert rfm.loc["A", "monetary_value"] == 40.0
    assert rfm.loc["A", "T"] == 24
    assert rfm.loc["C", "T"] == 0
    assert rfm.attrs["transactions_after_end"] == 0


def test_rfm_summary_per_store(orders):
    rfm = rfm_summary(orders, as_of="2024-01-20", by="store_id")
    assert list(rfm.index) == [("S1", "A"), ("S2", "A"), ("S2", "B")]
    # At S1, A buys Jan 1 (merged) and Jan 15: one repeat worth 40.
    assert tuple(rfm.loc[("S1", "A"), ["frequency", "recency", "T", "monetary_value"]]) == (1, 14, 19, 40)
    # At S2, A's only purchase is Jan 8.
    assert tuple(rfm.loc[("S2", "A"), ["frequency", "recency", "T"]]) == (0, 0, 12)


def test_local_date_of_tz_aware_timestamps():
    frame = _orders([("A", "S1", "2024-03-01 23:30", 1.0, 1.0), ("A", "S1", "2024-03-02 00:30", 2.0, 2.0)])
    frame["ordered_at"] = frame["ordered_at"].dt.tz_localize("Asia/Shanghai")
    rfm = rfm_summary(frame)
    assert rfm.loc["A", "frequency"] == 1  # two local dates, not merged
    assert rfm.loc["A", "recency"] == 1


def test_calibration_holdout_hand_computed(orders):
    split = calibration_holdout(orders, "2024-01-08", holdout_end="2024-01-20")
    cal, hold = split.calibration, split.holdout
    # Purchases on the cut date are calibration purchases; T runs to the cut date.
    assert list(cal.index) == ["A"]
    assert tuple(cal.loc["A", ["frequency", "recency", "T", "monetary_value"]]) == (1, 7, 7, 20)
    assert hold.loc["A", "frequency_holdout"] == 1  # Jan 15
    assert hold.loc["A", "monetary_holdout"] == 40
    assert hold.loc["A", "duration_holdout"] == 12  # Jan 8 -> Jan 20
    assert split.duration_holdout == 12
    # B first buys in the holdout: reported, not lost. C buys after the holdout end.
    assert list(split.new_in_holdout.index) == ["B"]
    assert split.new_in_holdout.loc["B", "purchases"] == 1
    assert split.new_in_holdout.loc["B", "spend"] == 7
    assert split.new_in_holdout.loc["B", "first_purchase"] == pd.Timestamp("2024-01-10")
    assert split.transactions_after_holdout == 1
    assert split.walk_in_orders == 1
    # Tracking inputs: A entered on Jan 1, repeats on Jan 8 (calibration) and Jan 15 (holdout).
    assert split.first_purchases.to_dict() == {pd.Timestamp("2024-01-01"): 1}
    assert list(split.repeat_purchases.index) == [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-15")]


def test_calibration_holdout_per_store_in_weeks(orders):
    split = calibration_holdout(orders, "2024-01-08", holdout_end="2024-01-22", by="store_id", time_unit="weeks")
    assert list(split.calibration.index) == [("S1", "A"), ("S2", "A")]
    assert split.holdout.loc[("S1", "A"), "frequency_holdout"] == 1
    assert split.holdout.loc[("S2", "A"), "frequency_holdout"] == 0
    assert split.holdout["duration_holdout"].iloc[0] == 2.0  # 14 days
    assert list(split.new_in_holdout.index) == [("S2", "B")]


def test_cdnow_calibration_matches_published_summary():
    split = calibration_holdout(
        read_cdnow_sample(), "1997-09-30", time_unit="weeks", customer_col="customer_id", time_col="date", amount_col="amount"
    )
    cal = split.calibration
    # Hardie's CDNOW 1/10 sample summary (x, t_x, T in weeks, rounded to 2 decimals), shipped with lifetimes.
    published = pd.read_csv(importlib.resources.files("lifetimes") / "datasets" / "cdnow_customers_summary.csv")
    assert len(cal) == 2357 and (cal["frequency"] > 0).sum() == 946
    np.testing.assert_array_equal(cal["frequency"].to_numpy(), published["frequency"].to_numpy())
    np.testing.assert_allclose(cal["recency"].to_numpy(), published["recency"].to_numpy(), atol=0.005)
    np.testing.assert_allclose(cal["T"].to_numpy(), published["T"].to_numpy(), atol=0.005)
    assert split.new_in_holdout.empty  # the sample's customers all enter in Q1 1997
    assert split.holdout_end == pd.Timestamp("1998-06-30")


def _reference_rfm(frame: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Straightforward pandas version of the definitions, for comparison."""
    members = frame.dropna(subset=["member_id"]).copy()
    members = members[members["ordered_at"] < end + pd.Timedelta(days=1)]
    members["day"] = members["ordered_at"].dt.normalize()
    daily = members.groupby(["member_id", "day"])["paid_amount"].sum().reset_index()
    rows = {}
    for member, g in daily.groupby("member_id"):
        days = g["day"].sort_values()
        amounts = g.sort_values("day")["paid_amount"].to_numpy()
        freq = len(g) - 1
        rows[member] = {
            "frequency": freq,
            "recency": (days.iloc[-1] - days.iloc[0]).days,
            "T": (end - days.iloc[0]).days,
            "monetary_value": amounts[1:].mean() if freq else 0.0,
        }
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def test_rfm_summary_matches_pandas_reference_on_random_orders():
    rng = np.random.default_rng(3)
    n = 3000
    ids = rng.integers(0, 400, n).astype(str)
    ids = np.where(rng.random(n) < 0.1, None, ids)
    frame = pd.DataFrame(
        {
            "member_id": pd.array(ids, dtype="string"),
            "ordered_at": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s"),
            "paid_amount": rng.gamma(2.0, 30.0, n).round(2),
        }
    )
    end = pd.Timestamp("2023-06-01")
    ours = rfm_summary(frame, as_of=end)
    reference = _reference_rfm(frame, end)
    assert list(ours.index) == list(reference.index)
    for col in ["frequency", "recency", "T", "monetary_value"]:
        np.testing.assert_allclose(ours[col].to_numpy(float), reference[col].to_numpy(float), rtol=1e-12)
    assert ours.attrs["walk_in_orders"] == int(pd.isna(ids).sum())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="paid_amount"), "no column 'paid_amount'"),
        (lambda f: f.assign(ordered_at=f["ordered_at"].astype(str)), "must hold timestamps"),
        (lambda f: f.assign(paid_amount=f["paid_amount"].where(f.index != 2)), r"'paid_amount' is empty .*rows 2\)"),
        (lambda f: f.assign(ordered_at=f["ordered_at"].where(f.index != 4)), r"'ordered_at' is empty .*rows 4\)"),
        (lambda f: f.assign(paid_amount=f["paid_amount"].astype(str)), "must be numeric"),
    ],
)
def test_bad_transactions_name_the_column_and_rows(orders, change, message):
    with pytest.raises(RFMInputError, match=message):
        rfm_summary(change(orders))


def test_walk_in_rows_with_empty_values_are_not_errors(orders):
    orders.loc[5, "paid_amount"] = np.nan  # the walk-in order
    assert rfm_summary(orders).attrs["walk_in_orders"] == 1


def test_bad_dates_and_units(orders):
    assert issubclass(RFMInputError, RxRepurchaseError)
    with pytest.raises(RFMInputError, match="time of day"):
        rfm_summary(orders, as_of="2024-01-20 12:00")
    with pytest.raises(RFMInputError, match="time_unit"):
        rfm_summary(orders, time_unit="months")
    with pytest.raises(RFMInputError, match="no member purchase on or before 2023-12-31"):
        rfm_summary(orders, as_of="2023-12-31")
    with pytest.raises(RFMInputError, match="must be after calibration_end"):
        calibration_holdout(orders, "2024-01-08", holdout_end="2024-01-08")
    with pytest.raises(RFMInputError, match="no member purchases"):
        rfm_summary(orders.assign(member_id=pd.NA))  # walk-ins only
    with pytest.raises(RFMInputError, match="'store_id' is empty"):
        rfm_summary(orders.assign(store_id=orders["store_id"].where(orders.index != 1)), by="store_id")
