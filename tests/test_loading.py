"""The loader on good and bad exports: every validation rule has a broken file here."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from rxrepurchase import DataContractError, load_chain
from rxrepurchase.contract import TABLES

AS_OF = "2026-06-30"


def good_tables() -> dict[str, pd.DataFrame]:
    """A tiny valid chain: 2 stores, 3 members, 5 orders (one walk-in), 6 lines."""
    stores = pd.DataFrame(
        {
            "store_id": ["S01", "S02"],
            "name": ["人民路店", "Station Rd"],
            "city": ["杭州", "Hangzhou"],
            "opened_on": ["2019-03-01", "2021-07-15"],
            "manager_email": ["s01@example.com", ""],
        }
    )
    members = pd.DataFrame(
        {
            "member_id": ["M1", "M2", "M3"],
            "home_store_id": ["S01", "S01", "S02"],
            "joined_on": ["2025-01-05", "2025-02-10", "2025-03-01"],
            "tier": ["gold", "金卡", "regular"],
            "gender": ["F", "M", ""],
            "birth_year": ["1958", "1990", ""],
            "region": ["西湖区", "", ""],
            "acquisition_channel": ["store", "mini_program", "o2o_platform"],
            "tags": ["慢病;高血压", "", "公众号"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5"],
            "member_id": ["M1", "M1", "M2", "", "M3"],
            "store_id": ["S01", "S01", "S01", "S01", "S02"],
            "ordered_at": [
                "2026-01-03 09:15:00",
                "2026-02-02 10:00:00",
                "2026-02-14 20:05:00",
                "2026-03-01 12:00:00",
                "2026-06-30 21:00:00",
            ],
            "channel": ["store", "store", "mini_program", "store", "o2o_delivery"],
            "gross_amount": ["100.00", "100.00", "60.00", "25.50", "80.00"],
            "discount_amount": ["5.00", "5.00", "30.00", "0", "20.00"],
            "paid_amount": ["95.00", "95.00", "30.00", "25.50", "60.00"],
            "coupon_id": ["", "", "C9", "", "C9"],
            "campaign_id": ["", "", "W1", "", "W1"],
            "stored_value_amount": ["95.00", "0", "0", "0", ""],
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O3", "O4", "O5"],
            "sku": ["AMLO5", "AMLO5", "VC100", "MASK", "COLD1", "VC100"],
            "product_name": ["氨氯地平片", "氨氯地平片", "维生素C", "口罩", "感冒灵", "维生素C"],
            "category": ["antihypertensive", "antihypertensive", "vitamins", "devices", "cold_flu", "vitamins"],
            "is_chronic": ["true", "1", "false", "0", "False", "是"],
            "quantity": ["1", "1", "2", "1", "1", "3"],
            "line_amount": ["95.00", "95.00", "20.00", "10.00", "25.50", "60.00"],
            "days_supply": ["28", "28", "", "", "", "90"],
        }
    )
    return {"stores": stores, "members": members, "orders": orders, "order_lines": lines}


def write(folder: Path, tables: dict[str, pd.DataFrame], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False, encoding=encoding)
    return folder


def load(folder: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_chain(folder, as_of=AS_OF, **kw)


def issue(chain, rule: str):
    found = [i for i in chain.quality.issues if i.rule == rule]
    assert found, f"no issue {rule!r}; issues: {[i.rule for i in chain.quality.issues]}"
    return found[0]


def test_good_chain_loads_with_contract_dtypes(tmp_path):
    chain = load(write(tmp_path, good_tables()))
    assert chain.quality.ok, str(chain.quality)
    assert len(chain.orders) == 5 and len(chain.order_lines) == 6
    o = chain.orders
    assert o["ordered_at"].dtype == "datetime64[ns]"
    assert o["paid_amount"].dtype == "float64"
    assert isinstance(o["order_id"].dtype, pd.StringDtype)
    # empty cells are missing values, not empty strings: O4 is the walk-in order
    assert o["member_id"].isna().tolist() == [False, False, False, True, False]
    assert o["stored_value_amount"].tolist() == [95.0, 0.0, 0.0, 0.0, 0.0]
    lines = chain.order_lines
    assert lines["is_chronic"].tolist() == [True, True, False, False, False, True]
    assert lines["days_supply"].dtype == "Int64"
    assert lines["days_supply"].isna().sum() == 3
    # 金卡 is normalised to gold; birth_year is a nullable integer
    assert chain.members["tier"].tolist() == ["gold", "gold", "regular"]
    assert chain.members["birth_year"].tolist()[:2] == [1958, 1990]
    assert chain.stores.loc[1, "manager_email"] is pd.NA
    # no campaigns file: W1 derived from its orders, 2026-02-14 to 2026-06-30
    c = chain.campaigns.set_index("campaign_id").loc["W1"]
    assert (c["starts_on"], c["ends_on"]) == (pd.Timestamp("2026-02-14"), pd.Timestamp("2026-06-30"))
    assert chain.quality.rows_read == chain.quality.rows_loaded


def test_parquet_and_csv_give_the_same_chain(tmp_path):
    csv = load(write(tmp_path / "csv", good_tables()))
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    for name in ("stores", "members", "orders", "order_lines"):
        getattr(csv, name).to_parquet(pq_dir / f"{name}.parquet")
    pq = load(pq_dir)
    for name in ("stores", "members", "orders", "order_lines"):
        pd.testing.assert_frame_equal(getattr(csv, name), getattr(pq, name), check_dtype=True)


def test_gbk_file_with_chinese_headers(tmp_path):
    t = good_tables()
    zh = {
        "order_id": "订单号", "member_id": "会员编号", "store_id": "门店编码",
        "ordered_at": "下单时间", "paid_amount": "实付金额", "discount_amount": "优惠金额",
        "gross_amount": "应收金额", "stored_value_amount": "储值支付",
    }
    t["orders"] = t["orders"].rename(columns=zh)
    folder = write(tmp_path, t, encoding="gbk")
    with pytest.raises(DataContractError, match=r"stores\.csv: cannot be read as utf-8.*gbk"):
        load(folder)
    chain = load(folder, encoding="gbk")
    assert chain.orders["paid_amount"].sum() == pytest.approx(95 + 95 + 30 + 25.5 + 60)
    assert chain.stores["name"].tolist()[0] == "人民路店"
    assert chain.quality.renamed_columns["orders"]["会员编号"] == "member_id"


def test_mapping_file_renames_files_and_headers(tmp_path):
    t = good_tables()
    t["orders"] = t["orders"].rename(columns={"ordered_at": "交易时间", "channel": "销售渠道"})
    folder = write(tmp_path, t, encoding="gbk")
    (folder / "orders.csv").rename(folder / "销售订单.csv")
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        'encoding = "gbk"\n[files]\norders = "销售订单.csv"\n'
        '[columns.orders]\n"交易时间" = "ordered_at"\n"销售渠道" = "channel"\n',
        encoding="utf-8",
    )
    chain = load(folder, mapping=mapping)
    assert chain.orders["ordered_at"].min() == pd.Timestamp("2026-01-03 09:15")
    bad = tmp_path / "bad.toml"
    bad.write_text('[columns.orders]\n"交易时间" = "order_time"\n', encoding="utf-8")
    with pytest.raises(DataContractError, match=r"unknown column.*order_time"):
        load(folder, mapping=bad)


def test_missing_file_and_missing_column(tmp_path):
    t = good_tables()
    folder = write(tmp_path, t)
    (folder / "stores.csv").unlink()
    with pytest.raises(DataContractError, match=r"no file for table 'stores'"):
        load(folder)
    t["orders"] = t["orders"].drop(columns=["paid_amount"])
    write(folder, t)
    with pytest.raises(DataContractError, match=r"orders\.csv: missing required column\(s\) \['paid_amount'\]"):
        load(folder)


def test_two_files_for_one_table_is_an_error(tmp_path):
    folder = write(tmp_path, good_tables())
    load(folder).orders.to_parquet(folder / "orders.parquet")
    with pytest.raises(DataContractError, match=r"'orders' has more than one file"):
        load(folder)


def broken(tmp_path, table, column, row, value):
    t = good_tables()
    t[table].loc[row, column] = value
    return write(tmp_path, t)


@pytest.mark.parametrize(
    ("table", "column", "row", "value", "rule", "excluded_orders"),
    [
        ("orders", "ordered_at", 1, "2026-02-31 10:00", "unparseable_timestamp", 1),
        ("orders", "paid_amount", 1, "-5", "negative_paid_amount", 1),
        ("orders", "discount_amount", 1, "120", "discount_exceeds_gross", 1),
        ("orders", "store_id", 1, "S99", "unknown_store", 1),
        ("orders", "member_id", 1, "M404", "unknown_member", 1),
        ("orders", "ordered_at", 1, "2026-07-01 00:00:01", "after_as_of", 1),
        ("orders", "paid_amount", 1, "abc", "unparseable_money", 1),
    ],
)
def test_bad_order_rows_are_excluded_and_reported(tmp_path, table, column, row, value, rule, excluded_orders):
    chain = load(broken(tmp_path, table, column, row, value))
    found = issue(chain, rule)
    assert found.action == "excluded"
    assert found.rows == excluded_orders
    # names the file, the column, and the CSV line (header is line 1, row 1 is line 3)
    assert "orders.csv" in found.message and f"'{column}'" in found.message
    assert "lines 3" in found.message and "order_id=O2" in found.message
    assert found.by_store == {"S01": 1} or rule == "unknown_store"
    assert "O2" not in set(chain.orders["order_id"])
    assert len(chain.orders) == 4
    # the excluded order's line goes too, and is counted as such
    line_issue = issue(chain, "line_of_excluded_order")
    assert line_issue.rows == 1 and len(chain.order_lines) == 5
    assert chain.quality.excluded() == 2
    with pytest.raises(DataContractError, match=rf"strict mode.*\n- orders\.csv: column '{column}'"):
        load(broken(tmp_path / "strict", table, column, row, value), strict=True)


def test_paid_mismatch_is_kept_with_a_warning(tmp_path):
    # O3: gross 60 - discount 30 = 30, but 33 was paid: kept, flagged
    chain = load(broken(tmp_path, "orders", "paid_amount", 2, "33.00"))
    found = issue(chain, "paid_mismatch")
    assert (found.action, found.rows) == ("kept", 1)
    assert "O3" in set(chain.orders["order_id"])
    # its lines (20 + 10) no longer add up to 33 either
    assert issue(chain, "lines_do_not_sum_to_paid").rows == 1
    assert chain.quality.excluded() == 0


def test_duplicate_order_ids(tmp_path):
    t = good_tables()
    copy = t["orders"].iloc[[0]]
    conflict = t["orders"].iloc[[2]].assign(paid_amount="31.00", discount_amount="29.00")
    t["orders"] = pd.concat([t["orders"], copy, conflict], ignore_index=True)
    chain = load(write(tmp_path, t))
    # the exact copy of O1 is dropped (one kept); both versions of O3 are excluded
    assert issue(chain, "duplicate_order_id").rows == 1
    assert issue(chain, "conflicting_order_id").rows == 2
    assert sorted(chain.orders["order_id"]) == ["O1", "O2", "O4", "O5"]
    assert issue(chain, "line_of_excluded_order").rows == 2  # O3's two lines


def test_order_lines_of_unknown_orders(tmp_path):
    t = good_tables()
    t["order_lines"].loc[5, "order_id"] = "O77"
    chain = load(write(tmp_path, t))
    found = issue(chain, "unknown_order")
    assert found.rows == 1 and "order_lines.csv" in found.message and "line 7" in found.message.replace("lines 7", "line 7")
    assert len(chain.order_lines) == 5
    # O5 has no line left: kept, but flagged for the product analyses
    assert issue(chain, "order_without_lines").rows == 1


def test_missing_required_value_and_bad_flag(tmp_path):
    t = good_tables()
    t["orders"].loc[0, "store_id"] = ""
    t["order_lines"].loc[2, "is_chronic"] = "maybe"
    chain = load(write(tmp_path, t))
    assert issue(chain, "missing_value").rows == 1
    assert issue(chain, "unparseable_flag").action == "excluded"


def test_member_value_problems_are_kept_and_blanked(tmp_path):
    t = good_tables()
    t["members"].loc[1, "birth_year"] = "1890"
    t["members"].loc[2, "tier"] = "platinum"
    chain = load(write(tmp_path, t))
    assert issue(chain, "implausible_birth_year").rows == 1
    assert chain.members["birth_year"].isna().sum() == 2  # M2 blanked, M3 was empty
    assert issue(chain, "unknown_tier").action == "kept"
    assert len(chain.members) == 3


def test_for_store_slices_orders_lines_members(tmp_path):
    chain = load(write(tmp_path, good_tables()))
    s1 = chain.for_store("S01")
    assert sorted(s1.orders["order_id"]) == ["O1", "O2", "O3", "O4"]
    assert len(s1.order_lines) == 5
    assert sorted(s1.members["member_id"]) == ["M1", "M2"]
    with pytest.raises(DataContractError, match="unknown store 'S9'"):
        chain.for_store("S9")


def test_quality_summary_per_store(tmp_path):
    chain = load(broken(tmp_path, "orders", "paid_amount", 4, "-1"))  # O5 is at S02
    assert chain.quality.summary("S02")["rows"].sum() == 2  # the order and its line
    assert chain.quality.summary("S01").empty


def test_contract_tables_document_every_column():
    for table in TABLES.values():
        for col in table.columns:
            assert col.description, f"{table.name}.{col.name} has no description"
            assert col.kind in {"id", "text", "timestamp", "date", "money", "number", "integer", "flag"}


def test_published_contract_doc_matches_the_code():
    from rxrepurchase.contract import contract_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert contract_markdown() in doc, "regenerate the tables in docs/data-contract.md"


def test_prescription_flag_empty_is_unknown_not_false(tmp_path):
    t = good_tables()
    t["order_lines"]["是否处方药"] = ["是", "true", "否", "", "0", "maybe"]
    chain = load(write(tmp_path, t))
    flag = chain.order_lines["is_prescription"]
    assert flag.dtype == "boolean"
    assert flag.tolist() == [True, True, False, pd.NA, False, pd.NA]
    bad = issue(chain, "unparseable_flag")
    assert bad.column == "is_prescription" and bad.action == "kept"


def test_gzipped_csv_and_utf8_bom(tmp_path):
    t = good_tables()
    folder = write(tmp_path, t, encoding="utf-8-sig")  # Excel's "CSV UTF-8" has a BOM
    t["orders"].to_csv(folder / "orders.csv.gz", index=False)
    (folder / "orders.csv").unlink()
    chain = load(folder)
    assert chain.quality.ok and list(chain.stores.columns)[0] == "store_id"
    assert chain.orders["paid_amount"].sum() == pytest.approx(305.5)
