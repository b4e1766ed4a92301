"""The core's backend helpers and the small shared expressions, on hand-built frames."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from rxrepurchase.core import backend
from rxrepurchase.core.campaigns import derived_campaigns
from rxrepurchase.core.purchases import purchase_mask, purchases
from rxrepurchase.errors import DataContractError


def test_to_pandas_gives_frames_series_and_python_scalars():
    frame = pd.DataFrame({
        "amount": [1.5, 2.0, None],
        "at": pd.to_datetime(["2024-01-01 09:00", "2024-01-03 18:30", None]),
    })  # fmt: skip
    with backend.tables(frame) as (t,):
        assert backend.to_pandas(t.amount.sum()) == 3.5 and type(backend.to_pandas(t.amount.sum())) is float
        count = backend.to_pandas(t.count())
        assert count == 3 and type(count) is int
        assert backend.to_pandas(t.at.max()) == pd.Timestamp("2024-01-03 18:30")
        day = backend.to_pandas(t.at.max().date())
        assert isinstance(day, pd.Timestamp) and day == pd.Timestamp("2024-01-03")
        none = t.filter(t.amount > 5)  # empty: no sum, no latest time
        assert backend.to_pandas(none.amount.sum()) is None
        assert backend.to_pandas(none.at.max()) is pd.NaT
        column = backend.to_pandas(t.at.date())
        assert isinstance(column, pd.Series) and column.dtype == "datetime64[ns]"
        assert column.iloc[1] == pd.Timestamp(dt.date(2024, 1, 3)) and pd.isna(column.iloc[2])
        table = backend.to_pandas(t)
        assert list(table.columns) == ["amount", "at"] and table["amount"].sum() == 3.5


def test_purchase_mask_is_the_paid_rule_of_the_expressions():
    orders = pd.DataFrame({
        "member_id": pd.array(["M1", "M1", "M2", None, "M3"], dtype="string"),
        "paid_amount": [30.0, 0.0, -30.0, None, 5.0],  # a walk-in without an amount is no member order
    })  # fmt: skip
    assert purchase_mask(orders).tolist() == [True, False, False, False, True]
    assert purchase_mask(orders, "include").tolist() == [True, True, False, False, True]
    with backend.tables(orders) as (t,):  # the same rule filters the core's purchases
        t = t.mutate(ordered_at=ibis.timestamp("2024-01-01 10:00"))
        bought = backend.to_pandas(purchases(t, amounts=()))
    assert sorted(bought["member_id"]) == ["M1", "M3"]
    orders.loc[2, "paid_amount"] = None
    with pytest.raises(DataContractError, match="paid_amount is empty at row 2"):
        purchase_mask(orders)


def test_campaigns_derived_from_orders_span_first_to_last_order_day():
    orders = pd.DataFrame({
        "campaign_id": pd.array(["W1", "W2", "W1", None, "W1"], dtype="string"),
        "ordered_at": pd.to_datetime(["2024-03-05 20:00", "2024-03-06 08:00", "2024-03-01 09:30",
                                      "2024-01-01 00:00", "2024-03-09 23:59"]),
    })  # fmt: skip
    with backend.tables(orders) as (t,):
        got = backend.to_pandas(derived_campaigns(t)).sort_values("campaign_id", ignore_index=True)
    assert list(got.columns) == ["campaign_id", "name", "starts_on", "ends_on", "kind"]
    assert got[["campaign_id", "name"]].to_numpy().tolist() == [["W1", "W1"], ["W2", "W2"]]
    assert got["starts_on"].tolist() == [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-06")]
    assert got["ends_on"].tolist() == [pd.Timestamp("2024-03-09"), pd.Timestamp("2024-03-06")]
    assert got["kind"].isna().all()
