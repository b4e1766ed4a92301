"""The DuckDB engine against the pandas path: same tables on a small demo chain, written as
Parquet and as CSV, and on an export with rows the loader excludes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from rxrepurchase import engine, metrics, refill, rfm
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


@pytest.mark.parametrize("by", [None, "store_id"])
@pytest.mark.parametrize("time_unit", ["days", "weeks"])
def test_rfm_summary_matches_pandas(demo, by, time_unit):
    _, chain, src = demo
    expected = rfm.rfm_summary(chain.orders, by=by, time_unit=time_unit)
    got = engine.rfm_summary(src, by=by, time_unit=time_unit)
    assert len(got) >= 800 and (got["frequency"] > 0).sum() > 200
    _assert_rfm_equal(expected, got)


def test_rfm_summary_with_observation_end_and_gross_amount(demo):
    _, chain, src = demo
    kwargs = {"observation_end": "2026-06-30", "amount_col": "gross_amount"}
    expected = rfm.rfm_summary(chain.orders, **kwargs)
    got = engine.rfm_summary(src, **kwargs)
    assert got.attrs["transactions_after_end"] > 0
    _assert_rfm_equal(expected, got)


@pytest.mark.parametrize("by", [None, "store_id"])
def test_calibration_holdout_matches_pandas(demo, by):
    _, chain, src = demo
    expected = rfm.calibration_holdout(chain.orders, CUT, by=by, time_unit="weeks")
    got = engine.calibration_holdout(src, CUT, by=by, time_unit="weeks")
    _assert_rfm_equal(expected.calibration, got.calibration)
    pd.testing.assert_frame_equal(expected.holdout, got.holdout, **MONEY)
    pd.testing.assert_frame_equal(expected.new_in_holdout, got.new_in_holdout, **MONEY)
    pd.testing.assert_series_equal(expected.first_purchases, got.first_purchases)
    pd.testing.assert_series_equal(expected.repeat_purchases, got.repeat_purchases)
    assert len(got.new_in_holdout) > 0 and got.holdout["frequency_holdout"].sum() > 0
    for field in ("cut_date", "holdout_end", "time_unit", "walk_in_orders",
                  "transactions_after_holdout"):
        assert getattr(expected, field) == getattr(got, field), field


def test_calibration_holdout_with_holdout_end(demo):
    _, chain, src = demo
    expected = rfm.calibration_holdout(chain.orders, CUT, holdout_end="2026-08-31")
    got = engine.calibration_holdout(src, CUT, holdout_end="2026-08-31")
    assert got.transactions_after_holdout == expected.transactions_after_holdout > 0
    pd.testing.assert_frame_equal(expected.holdout, got.holdout, **MONEY)
    pd.testing.assert_series_equal(expected.repeat_purchases, got.repeat_purchases)


@pytest.mark.parametrize(
    ("window", "by", "options"),
    [
        ("M", "store_id", {}),
        ("M", None, {"purchase_unit": "order"}),
        ("Q", ["store_id", "channel"], {"zero_paid": "include"}),
        ("W", "tier", {}),
        ("M", "store_id", {"start": "2026-01-01", "end": "2026-06-30"}),
    ],
)
def test_repurchase_rates_match_pandas(demo, window, by, options):
    _, chain, src = demo
    expected = metrics.repurchase_rates(chain.orders, window, by, members=chain.members, **options)
    got = engine.repurchase_rates(src, window, by, **options)
    assert len(got) > 10 and got["repeat_members"].sum() > 0
    pd.testing.assert_frame_equal(expected, got)


@pytest.mark.parametrize(("freq", "by"), [("M", "store_id"), ("M", None), ("Q", "tier")])
def test_cohort_retention_matches_pandas(demo, freq, by):
    _, chain, src = demo
    expected = metrics.cohort_retention(chain.orders, freq, by, members=chain.members)
    got = engine.cohort_retention(src, freq, by)
    assert got["active_members"].sum() > got["cohort_members"].drop_duplicates().sum()
    pd.testing.assert_frame_equal(expected, got)


@pytest.mark.parametrize("group_by", ["sku", "category"])
def test_refill_fills_and_intervals_match_pandas(demo, group_by):
    _, chain, src = demo
    fills = refill.refill_fills(chain.order_lines, chain.orders, chain.members, group_by=group_by)
    expected = refill._with_intervals(fills)
    got = engine.refill_fills(src, group_by=group_by)
    assert got["interval_days"].notna().sum() > 500
    pd.testing.assert_frame_equal(expected, got, **MONEY)
    assert got.attrs == fills.attrs


def test_path_argument_opens_and_closes_a_source(demo):
    folder, chain, _ = demo
    expected = rfm.rfm_summary(chain.orders, by="store_id")
    _assert_rfm_equal(expected, engine.rfm_summary(folder, by="store_id", as_of=AS_OF))


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
    with pytest.raises(engine.EngineError, match="calendar windows"):
        engine.repurchase_rates(src, 90)
    with pytest.raises(engine.EngineError, match="amount_col"):
        engine.rfm_summary(src, amount_col="quantity")
    with pytest.raises(engine.EngineError, match="as_of"):
        engine.rfm_summary(src, as_of="2020-01-01")
    with pytest.raises(engine.EngineError, match="validate must be"):
        engine.ChainSource(folder, validate="some")
    with pytest.raises(rfm.RFMInputError, match="after cut_date"):
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
