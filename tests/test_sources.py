"""rxrepurchase.sources on DuckDB: an export folder and pandas frames give the same validated
tables; bad input is named. (Spark sources: tests/test_spark.py.)"""

from __future__ import annotations

import pandas as pd
import pytest

from rxrepurchase import load_chain, sources
from rxrepurchase.demo import DemoConfig, generate_demo_chain, write_demo_chain
from rxrepurchase.errors import DataContractError, SourceError

AS_OF = "2026-09-30"
CONFIG = DemoConfig(n_members=600, n_stores=2, months=6, seed=3)


@pytest.fixture(scope="module")
def demo():
    return generate_demo_chain(CONFIG)


def _rows(src, name: str, key: list[str]) -> pd.DataFrame:
    return src.to_pandas(src[name]).sort_values(key).reset_index(drop=True)


def test_folder_loaded_chain_and_frames_give_the_same_tables(demo, tmp_path):
    write_demo_chain(tmp_path, CONFIG, file_format="parquet")
    keys = {"stores": ["store_id"], "members": ["member_id"], "orders": ["order_id"],
            "order_lines": ["order_id", "sku"], "campaigns": ["campaign_id"]}
    with sources.from_files(tmp_path, as_of=AS_OF) as files, \
            sources.from_frames(load_chain(tmp_path, as_of=AS_OF)) as loaded, \
            sources.open_tables(demo, as_of=AS_OF) as frames:
        assert loaded.as_of == frames.as_of == pd.Timestamp(AS_OF)
        for name, key in keys.items():
            expected = _rows(frames, name, key)
            assert len(expected) == len(demo.tables()[name])
            for other in (files, loaded):
                pd.testing.assert_frame_equal(_rows(other, name, key), expected, check_dtype=False)


def test_rows_the_rules_exclude_are_left_out(demo):
    orders = demo.orders
    bad = orders.iloc[:3].copy()
    bad["order_id"] = ["X1", "X2", "X3"]
    bad["discount_amount"] = bad["gross_amount"] + 5.0  # discount above the gross amount
    bad.loc[bad.index[1], "member_id"] = "M-UNKNOWN"
    bad.loc[bad.index[2], "ordered_at"] = pd.Timestamp("2026-10-01 08:00")  # after as_of
    tables = {**demo.tables(), "orders": pd.concat([orders, bad], ignore_index=True)}
    with sources.from_frames(tables, as_of=AS_OF) as src:
        assert sorted(src.to_pandas(src.orders)["order_id"]) == sorted(orders["order_id"])
    with sources.from_frames(tables, as_of=AS_OF, validate="none") as src:
        kept = set(src.to_pandas(src.orders)["order_id"])
    assert {"X1", "X2"} <= kept and "X3" not in kept  # only the after-as_of rule


def test_bad_sources_are_named(demo):
    with pytest.raises(SourceError, match="a Chain, a DemoChain or a dict of DataFrames"):
        sources.from_frames([demo.orders])
    with pytest.raises(SourceError, match=r"frames\['orders'\] is a list"):
        sources.from_frames({**demo.tables(), "orders": [1, 2]})
    with pytest.raises(SourceError, match="validate must be"):
        sources.from_frames(demo, validate="some")
    text_amounts = demo.orders.assign(paid_amount=demo.orders["paid_amount"].astype(str))
    with pytest.raises(DataContractError, match=r"frame 'orders': column 'paid_amount' \(paid_amount\) is string"):
        sources.from_frames({**demo.tables(), "orders": text_amounts})
    with sources.from_frames(demo) as src:
        with pytest.raises(SourceError, match="no table 'sales'"):
            src["sales"]
