"""The one typing rule (:mod:`rxrepurchase.core.cells`): raw export cells of every kind, read
by the loader and by the DuckDB engine from the same CSV files, against values worked out by
hand. A cell either gives the value written next to it or no value, for the reason given
(``unparseable``, ``non_finite``, ``ambiguous``, ``out_of_range``): an optional column keeps
its row with the value blanked, a required column loses the row."""

from __future__ import annotations

import pandas as pd
import pytest
from test_loading import AS_OF, good_tables, load, write

from rxrepurchase import engine
from rxrepurchase.contract import TABLES
from rxrepurchase.core.cells import WHITESPACE


class Problem(str):
    """A cell that gives no value, and why."""


T = pd.Timestamp
# (table, column, raw cell, expected value or Problem)
CASES = [
    # id and text: whitespace at the ends goes (tabs, the full-width space U+3000 of Chinese
    # exports, no-break space, byte-order mark), inside it stays; only whitespace is empty.
    ("orders", "coupon_id", "C1", "C1"),
    ("orders", "coupon_id", " C1 ", "C1"),
    ("orders", "coupon_id", "\tC1\t", "C1"),
    ("orders", "coupon_id", "\u3000C1\u3000", "C1"),
    ("orders", "coupon_id", "\u00a0C1\ufeff", "C1"),
    ("orders", "coupon_id", "C 1", "C 1"),
    ("orders", "coupon_id", "\u3000", None),
    ("orders", "coupon_id", "   ", None),
    ("members", "region", "西湖区\u3000", "西湖区"),
    ("members", "tier", " 金卡\u3000", "gold"),
    # money: a decimal number with ASCII digits, sign, point and exponent optional
    ("members", "stored_value_balance", "5", 5.0),
    ("members", "stored_value_balance", " 5 ", 5.0),
    ("members", "stored_value_balance", "\u30005\u3000", 5.0),
    ("members", "stored_value_balance", "\t5", 5.0),
    ("members", "stored_value_balance", "+5", 5.0),
    ("members", "stored_value_balance", ".5", 0.5),
    ("members", "stored_value_balance", "5.", 5.0),
    ("members", "stored_value_balance", "1e3", 1000.0),
    ("members", "stored_value_balance", "1E3", 1000.0),
    ("members", "stored_value_balance", "-0", 0.0),
    ("members", "stored_value_balance", "1_000", Problem("unparseable")),  # DuckDB alone: 1000
    ("members", "stored_value_balance", "1,000", Problem("unparseable")),
    ("members", "stored_value_balance", "1 000", Problem("unparseable")),
    ("members", "stored_value_balance", "0x10", Problem("unparseable")),
    ("members", "stored_value_balance", "５", Problem("unparseable")),  # full-width digit
    ("members", "stored_value_balance", "abc", Problem("unparseable")),
    ("members", "stored_value_balance", "inf", Problem("non_finite")),
    ("members", "stored_value_balance", "-Infinity", Problem("non_finite")),
    ("members", "stored_value_balance", "NaN", Problem("non_finite")),
    ("members", "stored_value_balance", "+nan", Problem("non_finite")),
    ("members", "stored_value_balance", "1e400", Problem("non_finite")),  # beyond a double
    # number (required: a bad cell loses its row)
    ("order_lines", "quantity", "2.5", 2.5),
    ("order_lines", "quantity", "\u3000+2\u3000", 2.0),
    ("order_lines", "quantity", "2_0", Problem("unparseable")),
    ("order_lines", "quantity", "Infinity", Problem("non_finite")),
    # integer: whole and within 64 bits
    ("members", "birth_year", "1958", 1958),
    ("members", "birth_year", "1958.0", 1958),
    ("members", "birth_year", " 1958 ", 1958),
    ("members", "birth_year", "1.958e3", 1958),
    ("members", "birth_year", "1958.5", Problem("unparseable")),
    ("members", "birth_year", "9223372036854775808", Problem("unparseable")),  # 2**63
    ("members", "birth_year", "1_958", Problem("unparseable")),
    ("members", "birth_year", "inf", Problem("non_finite")),
    # flag: the true and false words in any case
    ("order_lines", "is_prescription", " TRUE ", True),
    ("order_lines", "is_prescription", "\u3000是", True),
    ("order_lines", "is_prescription", "Yes", True),
    ("order_lines", "is_prescription", "1", True),
    ("order_lines", "is_prescription", "否", False),
    ("order_lines", "is_prescription", "N", False),
    ("order_lines", "is_prescription", "0", False),
    ("order_lines", "is_prescription", "", None),
    ("order_lines", "is_prescription", "2", Problem("unparseable")),
    ("order_lines", "is_prescription", "maybe", Problem("unparseable")),
    # timestamp: ISO 8601 value by value, offsets converted to Asia/Shanghai, microseconds
    ("orders", "ordered_at", "2026-03-01 09:00", T("2026-03-01 09:00")),
    ("orders", "ordered_at", "\u30002026-03-01 09:00\t", T("2026-03-01 09:00")),
    ("orders", "ordered_at", "2026/3/1 9:05", T("2026-03-01 09:05")),
    ("orders", "ordered_at", "2026-03-01", T("2026-03-01")),
    ("orders", "ordered_at", "2026-03-01T01:00:00Z", T("2026-03-01 09:00")),
    ("orders", "ordered_at", "2026-03-01 09:00:00 +0800", T("2026-03-01 09:00")),
    ("orders", "ordered_at", "2026-03-01 09:00+08", T("2026-03-01 09:00")),
    ("orders", "ordered_at", "2026-03-01T09:00:00-05:00", T("2026-03-01 22:00")),
    ("orders", "ordered_at", "2026-03-01 09:00:00.123456789", T("2026-03-01 09:00:00.123456")),
    ("orders", "ordered_at", "2026-03-01 24:00", T("2026-03-02 00:00")),  # ISO: end of day
    ("orders", "ordered_at", "2026-03-01 09:00 PM", Problem("unparseable")),
    ("orders", "ordered_at", "2026-03-01 09:00 UTC", Problem("unparseable")),
    ("orders", "ordered_at", "2026-03-01 09:00+8", Problem("unparseable")),
    ("orders", "ordered_at", "2026-02-30", Problem("unparseable")),
    ("orders", "ordered_at", "20260301", Problem("unparseable")),
    ("orders", "ordered_at", "yesterday", Problem("unparseable")),
    ("orders", "ordered_at", "01/03/2026 09:00", Problem("ambiguous")),
    ("orders", "ordered_at", "2300-01-01", Problem("out_of_range")),
    ("orders", "ordered_at", "1677-09-21 00:00:00", Problem("out_of_range")),  # before 00:12:43
    # date: the day of the value, after conversion
    ("members", "joined_on", "2025-01-05", T("2025-01-05")),
    ("members", "joined_on", "\u30002025-01-05 ", T("2025-01-05")),
    ("members", "joined_on", "2025-01-05T23:30:00Z", T("2025-01-06")),
    ("members", "joined_on", "5.1.2025", Problem("ambiguous")),
    ("members", "joined_on", "2025-13-01", Problem("unparseable")),
]
KEYS = {"orders": "order_id", "members": "member_id", "order_lines": "sku"}


def matrix_chain(tmp_path):
    """The good chain plus one row per case, a copy of O1 / M1 / O1's line with the cell
    replaced; the row's key (order, member, sku) is ``X<case number>``."""
    t = good_tables()
    t["order_lines"]["is_prescription"] = ""
    for name, key in KEYS.items():
        rows = [i for i, case in enumerate(CASES) if case[0] == name]
        extra = t[name].iloc[[0] * len(rows)].reset_index(drop=True)
        extra[key] = [f"X{i}" for i in rows]
        for j, i in enumerate(rows):
            extra.loc[j, CASES[i][1]] = CASES[i][2]
        t[name] = pd.concat([t[name], extra], ignore_index=True)
    return write(tmp_path, t)


def _plain(value):
    if value is None or value is pd.NA or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") and not isinstance(value, pd.Timestamp) else value


def expected_rows(table):
    """Key -> expected value of the row, for the rows the rule keeps."""
    required = {c.name: not c.nullable for t in KEYS for c in TABLES[t].columns}
    out = {}
    for i, (name, column, _, want) in enumerate(CASES):
        if name != table:
            continue
        if isinstance(want, Problem):
            if required[column]:
                continue  # the row is excluded
            want = None  # blanked, kept
        out[f"X{i}"] = (column, want)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return matrix_chain(tmp_path_factory.mktemp("cells"))


def test_whitespace_set_holds_what_python_strips():
    assert "\u3000" in WHITESPACE and "\t" in WHITESPACE and "\ufeff" in WHITESPACE
    assert {c for c in map(chr, range(0x3001)) if c.isspace()} <= set(WHITESPACE)


def test_loader_and_engine_type_every_cell_by_the_one_rule(folder):
    chain = load(folder)
    with engine.ChainSource(folder, as_of=AS_OF, threads=1) as src:
        for table, key in KEYS.items():
            want = expected_rows(table)
            frame = getattr(chain, table)
            got_loader = frame[frame[key].str.startswith("X")].set_index(key)
            got_engine = src.sql(f"SELECT * FROM {table} WHERE {key} LIKE 'X%'").df().set_index(key)
            for name, got in (("loader", got_loader), ("engine", got_engine)):
                assert sorted(got.index) == sorted(want), (name, table)
                for row, (column, value) in want.items():
                    assert _plain(got.loc[row, column]) == value, (name, row, column)
    # Every bad cell is reported by the loader under its reason, once.
    found = {}
    for i in chain.quality.issues:
        if i.rule.startswith(("unparseable_", "non_finite_", "ambiguous_", "out_of_range_")):
            found[(i.column, i.rule)] = i.rows
    kinds = {"stored_value_balance": "money", "quantity": "number", "birth_year": "integer",
             "is_prescription": "flag", "ordered_at": "timestamp", "joined_on": "date"}
    expected = {}
    for _, column, _, want in CASES:
        if isinstance(want, Problem):
            rule = (column, f"{want}_{kinds[column]}")
            expected[rule] = expected.get(rule, 0) + 1
    assert found == expected


def test_a_configured_layout_reads_what_iso_does_not(folder):
    kw = {"timestamp_format": "%d/%m/%Y %H:%M", "date_format": "%d.%m.%Y"}
    chain = load(folder, **kw)
    ambiguous = [f"X{i}" for i, case in enumerate(CASES) if case[3] == Problem("ambiguous")]
    with engine.ChainSource(folder, as_of=AS_OF, threads=1, mapping=kw) as src:
        typed = {
            "loader": {**chain.orders.set_index("order_id")["ordered_at"].to_dict(),
                       **chain.members.set_index("member_id")["joined_on"].to_dict()},
            "engine": {**src.sql("SELECT order_id, ordered_at FROM orders").df()
                       .set_index("order_id")["ordered_at"].to_dict(),
                       **src.sql("SELECT member_id, joined_on FROM members").df()
                       .set_index("member_id")["joined_on"].to_dict()},
        }
    for got in typed.values():
        assert [got[k] for k in ambiguous] == [T("2026-03-01 09:00"), T("2025-01-05")]
