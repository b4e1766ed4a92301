"""Hostile input, loading half (issue 17): timestamps, amounts, line numbers, empty tables,
thin data, and data quality per store (issue 13 items 6-7). Every value below is worked out
by hand from the tiny chain of ``test_loading.good_tables`` (5 orders O1-O5, stores S01/S02
opened 2019-03-01 and 2021-07-15, analysis date 2026-06-30)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from test_loading import AS_OF, good_tables, issue, load, write

from rxrepurchase import DataContractError, engine
from rxrepurchase.cli import main
from rxrepurchase.loading import parse_timestamps
from rxrepurchase.scheduled import EXIT_CONFIG_ERROR, load_config

ORDER_IDS = ["O1", "O2", "O3", "O4", "O5"]


def with_times(tmp_path, times, **tables):
    """The good chain with ``ordered_at`` of O1-O5 replaced, and other tables as given."""
    t = good_tables()
    t["orders"]["ordered_at"] = times
    t.update(tables)
    return write(tmp_path, t)


def times_of(chain) -> dict[str, str]:
    return {o: str(ts) for o, ts in zip(chain.orders["order_id"], chain.orders["ordered_at"], strict=True)}


def rules(chain) -> dict[str, int]:
    """Rows per rule, over all tables."""
    out: dict[str, int] = {}
    for i in chain.quality.issues:
        out[i.rule] = out.get(i.rule, 0) + i.rows
    return out


# --------------------------------------------------------------------------- timestamps


def test_every_iso_form_is_read_whatever_the_first_row(tmp_path):
    chain = load(with_times(tmp_path, [
        "2026/01/03 09:15",  # year first with slashes: unambiguous, and first
        "2026-02-02T10:00:00",
        "2026-02-14 20:05",
        "2026-03-01",
        "2026-06-30 21:00:00.250",
    ]))
    assert chain.quality.excluded() == 0, str(chain.quality)
    assert times_of(chain) == {
        "O1": "2026-01-03 09:15:00", "O2": "2026-02-02 10:00:00", "O3": "2026-02-14 20:05:00",
        "O4": "2026-03-01 00:00:00", "O5": "2026-06-30 21:00:00.250000",
    }
    assert chain.orders["ordered_at"].dtype == "datetime64[ns]"


def test_offsets_are_converted_to_the_chains_time_zone(tmp_path):
    folder = with_times(tmp_path, [
        "2026-01-03T01:15:00Z",  # UTC: 09:15 in Shanghai
        "2026-02-02T10:00:00+08:00",  # already Shanghai time
        "2026-02-14 12:05:00+00:00",  # mixed with +08:00 in the same column
        "2026-03-01 12:00:00",  # no offset: taken as local time
        "2026-06-30T08:00:00-0500",  # 13:00 UTC = 21:00 in Shanghai
    ])
    chain = load(folder)
    assert chain.quality.excluded() == 0, str(chain.quality)
    assert times_of(chain) == {
        "O1": "2026-01-03 09:15:00", "O2": "2026-02-02 10:00:00", "O3": "2026-02-14 20:05:00",
        "O4": "2026-03-01 12:00:00", "O5": "2026-06-30 21:00:00",
    }
    utc = load(folder, time_zone="UTC")
    assert times_of(utc) == {
        "O1": "2026-01-03 01:15:00", "O2": "2026-02-02 02:00:00", "O3": "2026-02-14 12:05:00",
        "O4": "2026-03-01 12:00:00", "O5": "2026-06-30 13:00:00",
    }
    with pytest.raises(DataContractError, match="unknown time zone 'Mars/Olympus'"):
        load(folder, time_zone="Mars/Olympus")


def test_conversion_can_move_an_order_past_the_analysis_date(tmp_path):
    # 17:00 UTC on the analysis day is 01:00 the next day in Shanghai: after as_of.
    chain = load(with_times(tmp_path, ["2026-01-03 09:15:00", "2026-02-02 10:00:00",
                                       "2026-02-14 20:05:00", "2026-03-01 12:00:00",
                                       "2026-06-30T17:00:00Z"]))
    assert rules(chain)["after_as_of"] == 1
    assert "O5" not in set(chain.orders["order_id"])


def test_day_month_first_is_ambiguous_unless_a_format_is_configured(tmp_path):
    times = ["01/03/2026 09:18:16", "2026-02-02 10:00:00", "2026-02-14 20:05:00",
             "2026-03-01 12:00:00", "2026-06-30 21:00:00"]
    folder = with_times(tmp_path, times)
    chain = load(folder)
    found = issue(chain, "ambiguous_timestamp")
    assert (found.action, found.rows) == ("excluded", 1)
    assert "order_id=O1" in found.message and "timestamp_format" in found.message
    # Only O1 goes: the layout of the first row decides nothing about the others.
    assert sorted(chain.orders["order_id"]) == ["O2", "O3", "O4", "O5"]
    day_first = load(folder, mapping={"timestamp_format": "%d/%m/%Y %H:%M:%S"})
    assert times_of(day_first)["O1"] == "2026-03-01 09:18:16"
    month_first = load(folder, timestamp_format="%m/%d/%Y %H:%M:%S")
    assert times_of(month_first)["O1"] == "2026-01-03 09:18:16"
    assert month_first.quality.excluded() == 0
    with pytest.raises(DataContractError, match="timestamp_format must be a strptime layout"):
        load(folder, mapping={"timestamp_format": "DD/MM/YYYY"})


def test_ambiguous_dates_follow_the_date_format(tmp_path):
    t = good_tables()
    t["stores"].loc[0, "opened_on"] = "01/03/2019"  # nullable: blanked, kept
    folder = write(tmp_path, t)
    found = issue(load(folder), "ambiguous_date")
    assert (found.action, found.rows) == ("kept", 1)
    chain = load(folder, date_format="%d/%m/%Y")
    assert chain.stores.loc[0, "opened_on"] == pd.Timestamp("2019-03-01")


@pytest.mark.parametrize("year", ["2300", "1600", "0001"])
def test_years_out_of_range_are_excluded_and_counted(tmp_path, capsys, year):
    folder = with_times(tmp_path, [f"{year}-01-03 09:15:00", "2026-02-02 10:00:00",
                                   "2026-02-14 20:05:00", "2026-03-01 12:00:00",
                                   "2026-06-30 21:00:00"])
    found = issue(load(folder), "out_of_range_timestamp")
    assert (found.action, found.rows) == ("excluded", 1)
    assert "outside the dates that can be held (1677-09-21 to 2262-04-11)" in found.message and "order_id=O1" in found.message
    assert main(["summary", "--data", str(folder), "--as-of", AS_OF]) == 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("opened", "year", "flagged", "since"), [
    ("2019-03-01", "1900", True, "2019-03-01"),  # before the first store opened
    ("2019-03-01", "1985", True, "2019-03-01"),
    ("2019-03-01", "2018", True, "2019-03-01"),  # after 2000 but before any store
    ("", "1985", True, "2000-01-01"),  # no opening dates: the configured year
    ("", "2001", False, None),
])
def test_implausibly_old_orders_are_flagged(tmp_path, opened, year, flagged, since):
    t = good_tables()
    t["stores"]["opened_on"] = [opened, "" if not opened else "2021-07-15"]
    t["orders"].loc[0, "ordered_at"] = f"{year}-05-01 10:00:00"
    chain = load(write(tmp_path, t))
    assert len(chain.orders) == 5  # kept
    if flagged:
        found = issue(chain, "implausibly_old")
        assert (found.action, found.rows) == ("kept", 1)
        assert f"dated before {since}" in found.message and "order_id=O1" in found.message
    else:
        assert "implausibly_old" not in rules(chain)
    if not opened:  # without opening dates and without a year there is no floor
        assert "implausibly_old" not in rules(load(write(tmp_path / "off", t), min_year=None))


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf", "NaN", "nan"])
def test_non_finite_amounts_are_excluded_and_counted(tmp_path, value):
    t = good_tables()
    t["orders"].loc[1, ["gross_amount", "paid_amount"]] = value  # O2
    t["order_lines"].loc[5, "days_supply"] = value  # O5's line: nullable, blanked and kept
    chain = load(write(tmp_path, t))
    found = issue(chain, "non_finite_money")
    # O2 counted once, under its first bad column.
    assert (found.column, found.action, found.rows, found.by_store) == ("gross_amount", "excluded", 1, {"S01": 1})
    assert chain.quality.excluded("orders") == 1
    assert sorted(chain.orders["order_id"]) == ["O1", "O3", "O4", "O5"]
    assert np.isfinite(chain.orders[["gross_amount", "paid_amount"]].to_numpy()).all()
    days = issue(chain, "non_finite_integer")
    assert (days.action, days.rows) == ("kept", 1)
    assert chain.order_lines.loc[chain.order_lines["order_id"] == "O5", "days_supply"].isna().all()


def test_implausible_amounts_are_flagged_not_dropped(tmp_path):
    t = good_tables()
    t["orders"].loc[3, ["gross_amount", "paid_amount"]] = "1e15"  # O4 adds up, absurdly
    t["order_lines"].loc[4, "line_amount"] = "1e15"
    folder = write(tmp_path, t)
    chain = load(folder)
    orders = [i for i in chain.quality.issues if i.rule == "implausible_amount" and i.table == "orders"]
    lines = [i for i in chain.quality.issues if i.rule == "implausible_amount" and i.table == "order_lines"]
    assert [(i.action, i.rows, i.by_store) for i in orders] == [("kept", 1, {"S01": 1})]
    assert [(i.action, i.rows, i.by_store) for i in lines] == [("kept", 1, {"S01": 1})]
    assert "1,000,000" in orders[0].message and "order_id=O4" in orders[0].message
    assert "O4" in set(chain.orders["order_id"])
    assert "implausible_amount" not in rules(load(folder, max_amount=None))
    # Largest amount per order: O1 100, O2 100, O3 60, O4 1e15, O5 80; above 70: four.
    assert rules(load(folder, max_amount=70))["implausible_amount"] == 4 + 3  # + lines 95, 95, 1e15


# --------------------------------------------------------------------------- line numbers


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_line_numbers_count_quoted_line_breaks(tmp_path, suffix):
    t = good_tables()
    t["orders"]["note"] = ["first\nsecond\nthird", "a\nb", "", "", ""]  # O1: lines 2-4, O2: 5-6
    t["orders"].loc[3, "paid_amount"] = "abc"  # O4: line 8
    folder = write(tmp_path, {k: v for k, v in t.items() if k != "orders"})
    text = t["orders"].to_csv(index=False)
    if suffix == ".csv":
        (folder / "orders.csv").write_text(text, encoding="utf-8")
    else:
        (folder / "orders.csv.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    physical = next(i + 1 for i, line in enumerate(text.splitlines()) if ",abc," in line)
    assert physical == 8
    found = issue(load(folder), "unparseable_money")
    assert "lines 8;" in found.message


# --------------------------------------------------------------------------- empty and thin


@pytest.mark.parametrize("table", ["orders", "stores"])
def test_header_only_table_is_a_clear_error(tmp_path, capsys, table):
    t = good_tables()
    t[table] = t[table].iloc[:0]
    folder = write(tmp_path, t)
    with pytest.raises(DataContractError, match=rf"{table}\.csv: table '{table}' has a header but no rows"):
        load(folder)
    assert main(["summary", "--data", str(folder), "--as-of", AS_OF]) == 2
    err = capsys.readouterr().err
    assert "has a header but no rows" in err and "Traceback" not in err


def test_summary_before_all_data_exits_2_with_the_reason(tmp_path, capsys):
    folder = write(tmp_path, good_tables())
    assert main(["summary", "--data", str(folder), "--as-of", "2025-12-31"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "no orders left to analyse: 5 orders read, 5 excluded" in captured.err
    assert "the analysis date 2025-12-31 is before the first order (2026-01-03" in captured.err
    assert "orders: 0" in captured.out  # the quality report is still printed


def test_summary_with_walk_ins_only_exits_2(tmp_path, capsys):
    t = good_tables()
    t["orders"]["member_id"] = ""
    assert main(["summary", "--data", str(write(tmp_path, t)), "--as-of", AS_OF]) == 2
    assert "no member orders (walk-in customers only)" in capsys.readouterr().err


# --------------------------------------------------------------------------- per store


def test_line_exclusions_belong_to_their_orders_store_with_exact_reasons(tmp_path):
    t = good_tables()
    t["order_lines"].loc[0, "quantity"] = "0"  # O1 (S01): a pseudo-item line
    t["order_lines"].loc[5, "quantity"] = "-1"  # O5 (S02): a return
    t["order_lines"].loc[2, "quantity"] = "two"  # O3 (S01): unparseable, found while typing
    chain = load(write(tmp_path, t))
    zero, negative = issue(chain, "zero_quantity"), issue(chain, "negative_quantity")
    assert (zero.rows, zero.by_store) == (1, {"S01": 1})
    assert (negative.rows, negative.by_store) == (1, {"S02": 1})
    assert issue(chain, "unparseable_number").by_store == {"S01": 1}
    assert "return" not in zero.message and "pseudo-item" in zero.message
    assert "return" in negative.message
    s01 = chain.quality.summary("S01")
    assert s01.loc[s01["table"] == "order_lines", "rows"].sum() == 2
    s02 = chain.quality.summary("S02")
    assert s02.loc[s02["table"] == "order_lines", "rule"].tolist() == ["negative_quantity"]


# --------------------------------------------------------------------------- engine, CLI, config


def test_engine_reads_timestamps_and_amounts_as_the_loader(tmp_path):
    t = good_tables()
    extra = t["orders"].iloc[[0] * 10].reset_index(drop=True)
    extra["order_id"] = [f"X{i}" for i in range(10)]
    extra["ordered_at"] = ["2026-01-03T01:15:00Z", "2026-02-14 12:05:00+00:00",
                           "2026/03/01 12:00", "2026-03-01", "01/03/2026 09:00:00",
                           "2300-01-01 10:00:00", "2026-06-30T17:00:00Z", "2026-03-01 08:00:00.5",
                           "1677-09-21 12:00:00", "2262-04-12 00:00:00"]  # just inside, just out
    extra.loc[extra.index[2], "paid_amount"] = "inf"
    extra.loc[extra.index[3], "stored_value_amount"] = "abc"
    t["orders"] = pd.concat([t["orders"], extra], ignore_index=True)
    folder = write(tmp_path, t)
    for kw in ({}, {"time_zone": "UTC", "mapping": {"timestamp_format": "%d/%m/%Y %H:%M:%S"}}):
        chain = load(folder, **kw)
        with engine.ChainSource(folder, as_of=AS_OF, threads=1, **kw) as src:
            counts = src.row_counts().set_index("table")
            got = src.sql("SELECT order_id, ordered_at FROM orders ORDER BY order_id").df()
        assert counts["rows_loaded"].to_dict() == chain.quality.rows_loaded
        expected = chain.orders.sort_values("order_id")[["order_id", "ordered_at"]]
        assert got["order_id"].tolist() == expected["order_id"].tolist()
        assert (got["ordered_at"].to_numpy() == expected["ordered_at"].to_numpy()).all()
    # Hand count, default time zone: the inf, the unparseable stored value, the ambiguous
    # and the two out-of-range timestamps and the one pushed past as_of go.
    assert sorted(set(ORDER_IDS) | {"X0", "X1", "X7", "X8"}) == sorted(load(folder).orders["order_id"])


def test_time_zone_on_the_command_line_and_in_the_run_config(tmp_path, capsys):
    folder = with_times(tmp_path / "data", ["2026-01-03T01:15:00Z", "2026-02-02 10:00:00",
                                            "2026-02-14 20:05:00", "2026-03-01 12:00:00",
                                            "2026-06-30 21:00:00"])
    assert main(["summary", "--data", str(folder), "--as-of", AS_OF]) == 0
    assert "orders from 2026-01-03 09:15:00" in capsys.readouterr().out
    assert main(["summary", "--data", str(folder), "--as-of", AS_OF, "--time-zone", "UTC"]) == 0
    assert "orders from 2026-01-03 01:15:00" in capsys.readouterr().out
    assert main(["summary", "--data", str(folder), "--time-zone", "Nowhere/Land"]) == 2
    assert "unknown time zone 'Nowhere/Land'" in capsys.readouterr().err
    config = tmp_path / "chain.toml"
    text = ('[data]\npath = "data"\n{tz}\n[run]\nas_of = "2026-06-30"\noutput = "reports"\n'
            '[recipients]\nhead_office = ["ho@chain.example"]\n[smtp]\nhost = "127.0.0.1"\n'
            'security = "none"\nsender = "r@chain.example"\n')
    config.write_text(text.format(tz='time_zone = "UTC"'), encoding="utf-8")
    assert load_config(config).time_zone == "UTC"
    config.write_text(text.format(tz='time_zone = "Mars/Olympus"'), encoding="utf-8")
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG_ERROR
    assert "data.time_zone: unknown time zone 'Mars/Olympus'" in capsys.readouterr().out


def test_parse_timestamps_reasons():
    values = pd.Series(["2026-03-01 09:00", "1/3/2026", "2026-02-30", "9999-01-01", None,
                        "yesterday"], dtype="string")
    parsed, problem = parse_timestamps(values)
    assert parsed.iloc[0] == pd.Timestamp("2026-03-01 09:00")
    assert problem.fillna("-").tolist() == ["-", "ambiguous", "unparseable", "out_of_range", "-",
                                            "unparseable"]


def test_parquet_timestamps_with_a_zone_are_converted_by_loader_and_engine(tmp_path):
    folder = write(tmp_path, good_tables())
    orders = load(folder).orders
    # Shanghai wall time stored as UTC instants (a zone-aware Parquet column).
    orders["ordered_at"] = orders["ordered_at"].dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC")
    (folder / "orders.csv").unlink()
    orders.to_parquet(folder / "orders.parquet")
    chain = load(folder)
    assert times_of(chain)["O1"] == "2026-01-03 09:15:00"
    with engine.ChainSource(folder, as_of=AS_OF, threads=1) as src:
        got = src.sql("SELECT ordered_at FROM orders ORDER BY order_id").df()["ordered_at"]
    assert (got.to_numpy() == chain.orders.sort_values("order_id")["ordered_at"].to_numpy()).all()
    assert times_of(load(folder, time_zone="UTC"))["O1"] == "2026-01-03 01:15:00"
