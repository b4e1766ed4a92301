"""The chain's tables from Spark (named tables, DataFrames, a catalog database), and the core
aggregates on PySpark local mode equal to DuckDB's on the same demo chain."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lifetimes import BetaGeoFitter

from rxrepurchase import sources
from rxrepurchase.core import rates as core_rates
from rxrepurchase.core import revenue as core_revenue
from rxrepurchase.core import rfm as core_rfm
from rxrepurchase.core.fit_rows import fit_rows, spend_rows, spread_to_members
from rxrepurchase.demo import DemoConfig, generate_demo_chain
from rxrepurchase.errors import DataContractError, SourceError
from rxrepurchase.models import BGNBDModel, GammaGammaModel, score_members, score_table

AS_OF = "2026-09-30"


@pytest.fixture(scope="module")
def demo():
    return generate_demo_chain(DemoConfig(n_members=3000, n_stores=3, months=12, seed=12))


def _spark_frame(spark, frame: pd.DataFrame):
    """``frame`` as a Spark DataFrame the way a chain's warehouse holds it: naive timestamps
    as TIMESTAMP_NTZ (local wall-clock time), aware ones as TIMESTAMP (instants)."""
    sdf = spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
    naive = [c for c in frame.columns if pd.api.types.is_datetime64_dtype(frame[c])]
    return sdf.withColumns({c: sdf[c].cast("timestamp_ntz") for c in naive}) if naive else sdf


@pytest.fixture(scope="module")
def warehouse(spark, demo, tmp_path_factory):
    """The demo chain as a Spark catalog database (tables written with ``saveAsTable``)."""
    location = tmp_path_factory.mktemp("rx_demo_db")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS rx_demo LOCATION '{location}'")
    for name, frame in demo.tables().items():
        if name in sources.CONTRACT_TABLES:
            _spark_frame(spark, frame).write.mode("overwrite").saveAsTable(f"rx_demo.{name}")
    yield "rx_demo"
    spark.sql("DROP DATABASE rx_demo CASCADE")


# The demo chain breaks no rule: the parity tests leave the rules out (validate="none") to
# time the aggregates only; test_named_tables_... runs every rule on Spark.
@pytest.fixture(scope="module")
def on_spark(spark, warehouse):
    return sources.from_spark(spark, database=warehouse, as_of=AS_OF, validate="none")


@pytest.fixture(scope="module")
def on_duckdb(demo):
    return sources.from_frames(demo, as_of=AS_OF, validate="none")


def _same(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> None:
    """Equal up to row order; money to 1e-9 relative (sums run in another order)."""
    left = left.sort_values(keys).reset_index(drop=True)
    right = right.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False, rtol=1e-9)


# --------------------------------------------------------------------------- sources


def test_catalog_database_is_read_by_name(on_spark, on_duckdb, demo):
    assert on_spark.backend.name == "pyspark"
    for name in ("stores", "members", "orders", "order_lines", "campaigns"):
        spark_rows = on_spark.to_pandas(on_spark[name])
        assert list(spark_rows.columns) == list(on_duckdb[name].columns)
        key = {"order_lines": ["order_id", "sku"]}.get(name, [spark_rows.columns[0]])
        _same(spark_rows, on_duckdb.to_pandas(on_duckdb[name]), key)
    # Every demo order is on or before the analysis date: none is left out.
    assert on_spark.orders.count().execute() == len(demo.orders)


def test_named_tables_dataframes_mapping_and_instants(spark, demo, on_duckdb):
    """(c): the chain's own table and column names, mapped; a TIMESTAMP column holds instants
    and comes back as the chain's local time."""
    # Rows the contract's rules exclude: a refund below zero, an unknown store, an order after
    # the analysis date, and an exact copy of an order (the copy is dropped, the order kept).
    bad = demo.orders.iloc[:4].copy()
    bad["order_id"] = ["X1", "X2", "X3", "X4"]
    bad["paid_amount"] = [-1.0, 5.0, 5.0, 5.0]
    bad["store_id"] = ["S01", "S99", "S01", "S01"]
    bad["ordered_at"] = bad["ordered_at"].where(bad["order_id"] != "X3", pd.Timestamp("2026-10-01 09:00"))
    bad.iloc[3] = demo.orders.iloc[5]
    orders = pd.concat([demo.orders, bad], ignore_index=True)
    orders = orders.rename(columns={"member_id": "会员卡号", "paid_amount": "pay_amt"})
    # The warehouse stores order times as UTC instants.
    orders["ordered_at"] = orders["ordered_at"].dt.tz_localize("Asia/Shanghai")
    _spark_frame(spark, orders).createOrReplaceTempView("pos_sales")
    tables = {name: _spark_frame(spark, demo.tables()[name])
              for name in ("stores", "members", "order_lines")}
    src = sources.from_spark(
        spark, {"orders": "pos_sales", **tables},
        mapping={"columns": {"orders": {"pay_amt": "paid_amount"}}}, time_zone="Asia/Shanghai",
        as_of=AS_OF,
    )
    assert src.origin == "Spark session"
    _same(src.to_pandas(src.orders), on_duckdb.to_pandas(on_duckdb.orders), ["order_id"])
    # No campaigns table: derived from the orders, first to last order day.
    campaigns = src.to_pandas(src.campaigns).set_index("campaign_id").sort_index()
    seen = demo.orders.dropna(subset=["campaign_id"]).groupby("campaign_id")["ordered_at"]
    assert campaigns["starts_on"].tolist() == seen.min().dt.normalize().tolist()
    assert campaigns["ends_on"].tolist() == seen.max().dt.normalize().tolist()


def test_spark_errors_name_the_table_and_column(spark, demo, warehouse):
    with pytest.raises(DataContractError, match=r"Spark table rx_demo\.sales does not exist"):
        sources.from_spark(spark, {"orders": "sales"}, database=warehouse)
    stores = _spark_frame(spark, demo.stores.drop(columns="city"))
    with pytest.raises(DataContractError, match=r"DataFrame for stores: missing required column\(s\) \['city'\]"):
        sources.from_spark(spark, {"stores": stores}, database=warehouse)
    with pytest.raises(SourceError, match=r"unknown contract table\(s\) \['sales'\]"):
        sources.from_spark(spark, {"sales": "orders"}, database=warehouse)
    with pytest.raises(SourceError, match=r"\[files\] names export files"):
        sources.from_spark(spark, database=warehouse, mapping={"files": {"orders": "x.csv"}})


# --------------------------------------------------------------------------- core parity


END = pd.Timestamp(AS_OF).date()
CUT = pd.Timestamp("2026-05-31").date()

MONTHS = pd.period_range("2025-10", "2026-09", freq="M")
WINDOWS = ibis.memtable(pd.DataFrame({
    "window_id": range(len(MONTHS)),
    "window_start": MONTHS.start_time.date, "window_end": MONTHS.end_time.date,
}))
LAST_MONTH = pd.Period("2026-08", "M").ordinal  # the last complete month before AS_OF
LAST_WEEK = pd.Period("2026-09-27", "W").ordinal

# Each core aggregate on the contract's tables, and the columns its rows are unique by.
AGGREGATES = {
    "repurchase rates by month and store": (
        lambda t: core_rates.repurchase_rates(t.orders, WINDOWS, by=["store_id"]),
        ["window_id", "store_id"]),
    "repurchase rates by calendar month (joined on the period's start)": (
        lambda t: core_rates.repurchase_rates(t.orders, WINDOWS, by=["store_id"], period="M"),
        ["window_id", "store_id"]),
    "repurchase rates by month and tier, per order": (
        lambda t: core_rates.repurchase_rates(
            t.orders, WINDOWS, by=["tier"], members=t.members, member_columns=["tier"],
            purchase_unit="order", zero_paid="include"),
        ["window_id", "tier"]),
    "cohort sizes by acquiring store": (
        lambda t: core_rates.cohorts(t.orders, freq="M", last=LAST_MONTH, by=["store_id"])[0],
        ["store_id", "cohort"]),
    "cohort activity by acquiring store": (
        lambda t: core_rates.cohorts(t.orders, freq="M", last=LAST_MONTH, by=["store_id"])[1],
        ["store_id", "cohort", "periods_since_first"]),
    "weekly cohorts by tier": (
        lambda t: core_rates.cohorts(t.orders, freq="W", last=LAST_WEEK, by=["tier"],
                                     members=t.members, member_columns=["tier"])[1],
        ["tier", "cohort", "periods_since_first"]),
    "n-day repurchase by acquiring store and month": (
        lambda t: core_rates.n_day_repurchase(t.orders, (30, 90), as_of=END,
                                              by=["store_id", "cohort_month"]),
        ["store_id", "cohort_month", "days"]),
    "rfm by store": (lambda t: core_rfm.rfm_summary(t.orders, as_of=END, by="store_id"),
                     ["store_id", "member_id"]),
    "rfm in weeks, gross": (lambda t: core_rfm.rfm_summary(t.orders, as_of=CUT, time_unit_days=7,
                                                           amount="gross_amount"), ["member_id"]),
    "fit rows of the chain": (lambda t: fit_rows(core_rfm.rfm_summary(t.orders, as_of=END)),
                              ["frequency", "recency", "T"]),
    "calibration / holdout by store": (
        lambda t: core_rfm.calibration_holdout(t.orders, calibration_end=CUT, holdout_end=END, by="store_id")[0],
        ["store_id", "member_id"]),
    "repeat purchases per day": (
        lambda t: core_rfm.calibration_holdout(t.orders, calibration_end=CUT, holdout_end=END)[1], ["date"]),
    "order counts": (lambda t: core_rfm.order_counts(t.orders, after_cut=CUT), ["last_day"]),
    "member order span": (lambda t: core_rates.member_span(t.orders), ["first"]),
    # Ranking within groups (window functions) is the part of the money measures most likely to
    # differ between engines; ARPU and walk-in shares join windows as the rates above do.
    "Pareto shares by store and tier": (
        lambda t: core_revenue.pareto_share(t.orders, 0.2, by=["store_id", "tier"],
                                            members=t.members, member_columns=["tier"]),
        ["store_id", "tier", "measure"]),
}


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_core_aggregate_on_spark_equals_duckdb(name, on_spark, on_duckdb):
    build, keys = AGGREGATES[name]
    on_duck = on_duckdb.to_pandas(build(on_duckdb))
    assert len(on_duck) > 0
    _same(on_spark.to_pandas(build(on_spark)), on_duck, keys)


def test_scores_computed_once_per_distinct_row_go_back_to_every_member(on_spark, warehouse):
    """The runbook's round trip (docs/scale.md): per-member RFM stays on Spark, the distinct
    fit rows come back, BG/NBD is fitted on them (weighted) and P(alive) per row goes back to
    the members, written as a table of the chain's database."""
    rfm = core_rfm.rfm_summary(on_spark.orders, as_of=END)
    rows = on_spark.to_pandas(fit_rows(rfm))
    fitter = BetaGeoFitter().fit(rows["frequency"], rows["recency"], rows["T"],
                                 weights=rows["members"])
    rows["p_alive"] = fitter.conditional_probability_alive(rows["frequency"], rows["recency"], rows["T"])
    scores = spread_to_members(rfm, ibis.memtable(rows.drop(columns="members")))
    written = on_spark.backend.create_table("member_scores", scores, database=warehouse,
                                            overwrite=True)
    scored = on_spark.to_pandas(written)
    assert len(scored) == rows["members"].sum() and scored["member_id"].is_unique
    expected = fitter.conditional_probability_alive(scored["frequency"], scored["recency"], scored["T"])
    np.testing.assert_allclose(scored["p_alive"], expected, rtol=1e-12)


def test_gamma_gamma_from_spend_rows_and_every_members_scores_on_spark(on_spark, on_duckdb):
    """Gamma-Gamma's data (the repeat buyers' distinct (frequency, monetary_value) rows) comes
    back from Spark and gives DuckDB's fit on every member; score_table's CLV on Spark equals
    score_members' on the members."""
    members = on_duckdb.to_pandas(core_rfm.rfm_summary(on_duckdb.orders, as_of=END)).set_index("member_id")
    members.attrs["time_unit"] = "days"
    bgnbd, every = BGNBDModel().fit(members), GammaGammaModel().fit(members)
    rfm = core_rfm.rfm_summary(on_spark.orders, as_of=END)
    spend = on_spark.to_pandas(spend_rows(rfm))
    gamma = GammaGammaModel().fit(spend, weights="members")
    np.testing.assert_allclose(gamma.params_, every.params_, rtol=1e-6)
    scored = on_spark.to_pandas(score_table(bgnbd, gamma, rfm, gross_margin=0.3)).set_index("member_id")
    expected = score_members(bgnbd, gamma, members, gross_margin=0.3)
    for col in ("p_alive", "expected_purchases", "clv"):
        np.testing.assert_allclose(scored.loc[expected.index, col], expected[col], rtol=1e-9)
