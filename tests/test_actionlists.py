"""Action lists: no recent buyer on a wake-up list, no negative value at risk, order, sizes."""

import pandas as pd
import pytest

from rxrepurchase.actionlists import (
    bought_recently,
    lapsed_refill_list,
    list_sizes,
    wake_up_targets,
)
from rxrepurchase.refill import RefillError

AS_OF = pd.Timestamp("2026-06-30")


def members():
    return pd.DataFrame({
        "member_id": pd.array(["m1", "m2", "m3", "m4"], dtype="string"),
        "home_store_id": pd.array(["s1"] * 4, dtype="string"),
        "tier": pd.array(["gold", "plus", "regular", "regular"], dtype="string"),
        "phone": pd.array(["13812345678", "13900001111", None, "13700002222"], dtype="string"),
    })


def orders():
    # m3 bought 3 days before as of; m4 exactly 13 days before (inside the 14 days);
    # m1 14 days before (outside: the 14 days are 06-17 ... 06-30).
    return pd.DataFrame({
        "member_id": pd.array(["m3", "m4", "m1", None], dtype="string"),
        "ordered_at": pd.to_datetime(["2026-06-27 10:00", "2026-06-17 09:00", "2026-06-16 20:00",
                                      "2026-06-30 08:00"]),
    })


def test_bought_recently_is_the_last_14_days_inclusive():
    assert sorted(bought_recently(orders(), AS_OF)) == ["m3", "m4"]
    assert sorted(bought_recently(orders(), AS_OF, period_days=15)) == ["m1", "m3", "m4"]
    with pytest.warns(FutureWarning, match=r"bought_recently\(days=...\) is renamed bought_recently\(period_days=...\)"):
        assert sorted(bought_recently(orders(), AS_OF, days=15)) == ["m1", "m3", "m4"]
    with pytest.raises(RefillError, match="orders has no column"):
        bought_recently(orders().drop(columns="ordered_at"), AS_OF)


def wake():
    return pd.DataFrame({
        "p_alive_before": [0.9, 0.95, 0.9, 0.8],
        "p_alive_now": [0.5, 0.8, 0.1, 0.3],
        "clv_before": [200.123, 50.0, 400.0, 90.0],
        "clv_now": [99.667, 55.0, 100.0, 30.0],
        "value_at_risk": [100.456, -5.0, 300.0, 60.0],
        "days_since_last_purchase": [40, 60, 20, 13],
    }, index=pd.Index(["m1", "m2", "m3", "m4"], dtype="string"))


def test_wake_up_targets_no_recent_buyer_no_negative_value_ordered():
    got = wake_up_targets(wake(), members(), orders(), as_of=AS_OF)
    # m3 and m4 bought in the last 14 days: out. m1: 100.46 x 0.5 = 50.2 before m2: 0 x 0.8.
    assert got["member_id"].tolist() == ["m1", "m2"]
    assert got["value_at_risk"].tolist() == [100.46, 0.0]
    assert (got["value_at_risk"] >= 0).all()
    assert got["clv_before"].tolist() == [200.12, 50.0]
    assert got["tier"].tolist() == ["gold", "plus"]
    assert got["phone"].tolist() == ["138****5678", "139****1111"]
    assert got["suggested_action"].tolist() == ["wake_up_offer", "member_care"]
    assert got.attrs["recent_buyers_removed"] == 2 and got.attrs["value_at_risk_clipped"] == 1
    # The model's own last purchase counts too: 13 days ago is recent even without the order.
    # m3 (20 days) is back: 300 x 0.1 = 30 sits between m1's 50.2 and m2's 0.
    alone = wake_up_targets(wake(), members(), orders().iloc[:0], as_of=AS_OF)
    assert alone["member_id"].tolist() == ["m1", "m3", "m2"]


def predictions():
    p = pd.DataFrame({
        "member_id": pd.array(["m1", "m2", "m3", "m1", "m4"], dtype="string"),
        "product": pd.array(["A", "A", "A", "B", "A"], dtype="string"),
        "product_name": pd.array(["氨氯地平片"] * 3 + ["二甲双胍片", "氨氯地平片"], dtype="string"),
        "status": ["overdue", "lapsed", "overdue", "lapsed", "lapsed"],
        "rhythm": ["repeat", "repeat", "repeat", "first_refill", "repeat"],
        "days_overdue": [45, 31, 30, 50, 90],
    })
    p.attrs = {"as_of": AS_OF}
    return p


def test_lapsed_refill_list_takes_what_the_reminder_list_leaves():
    got = lapsed_refill_list(predictions(), members(), orders(), max_overdue_days=30)
    # m3 is 30 days over (not more), m1 B was a first fill, m4 bought 13 days ago.
    assert got[["member_id", "product", "days_overdue"]].values.tolist() == [["m2", "A", 31],
                                                                             ["m1", "A", 45]]
    assert got["suggested_action"].tolist() == ["member_care", "refill_wake_up"]
    assert got.attrs["recent_buyers_removed"] == 1
    p = predictions()
    p.attrs = {}
    with pytest.raises(RefillError, match="as_of"):
        lapsed_refill_list(p, members(), orders())


def test_lapsed_refills_older_than_the_limit_leave_the_list_and_are_counted():
    p = predictions()
    # m2: 31 days (kept), m1 A: 45 days (beyond a 40-day limit), m4: 90 days but a recent
    # buyer (out for that reason, not counted as too old).
    got = lapsed_refill_list(p, members(), orders(), max_overdue_days=30, max_lapsed_days=40)
    assert got["member_id"].tolist() == ["m2"]
    assert (got.attrs["too_old_rows"], got.attrs["too_old_members"]) == (1, 1)
    assert got.attrs["max_lapsed_days"] == 40
    # At the default of 90 days both stay; the limit is inclusive (45 <= 45 stays).
    assert lapsed_refill_list(p, members(), orders()).attrs["too_old_rows"] == 0
    assert len(lapsed_refill_list(p, members(), orders(), max_lapsed_days=45)) == 2
    assert len(lapsed_refill_list(p, members(), orders(), max_lapsed_days=None)) == 2
    with pytest.raises(RefillError, match=r"max_lapsed_days \(20\) must be at least max_overdue_days"):
        lapsed_refill_list(p, members(), orders(), max_lapsed_days=20)


def test_list_sizes_rows_and_members_differ():
    assert list_sizes("refill_reminder", predictions()) == {"refill_reminder_rows": 5,
                                                            "refill_reminder_members": 4}
    assert list_sizes("wake_up", None) == {"wake_up_rows": None, "wake_up_members": None}


def test_lists_workbook_sheets_headers_codes_by_language(tmp_path):
    from openpyxl import load_workbook

    from rxrepurchase.actionlists import write_lists_workbook

    wake_up = wake_up_targets(wake(), members(), orders(), as_of=AS_OF)
    lapsed = lapsed_refill_list(predictions(), members(), orders())
    lists = {"wake_up": wake_up, "lapsed_refill": lapsed, "refill_reminder": None}
    path = write_lists_workbook(lists, tmp_path / "S01_2026-06-30_lists.xlsx", lang="zh")
    book = load_workbook(path)
    assert book.sheetnames == ["唤醒", "中断续方"]  # no sheet for a list that could not be made
    sheet = book["唤醒"]
    assert sheet.freeze_panes == "A2"
    rows = list(sheet.values)
    header = rows[0]
    assert header[0] == "会员编号" and "风险价值（元，≥0）" in header and "建议动作" in header
    assert [r[0] for r in rows[1:]] == ["m1", "m2"]
    assert [r[header.index("风险价值（元，≥0）")] for r in rows[1:]] == [100.46, 0]
    assert [r[header.index("会员等级")] for r in rows[1:]] == ["金卡会员", "PLUS会员"]
    assert [r[header.index("建议动作")] for r in rows[1:]] == ["唤醒优惠", "会员关怀（专人联系）"]
    lapsed_rows = list(book["中断续方"].values)
    assert len(lapsed_rows) == 1 + len(lapsed) and "已中断" in lapsed_rows[1]
    en = load_workbook(write_lists_workbook(lists, tmp_path / "en.xlsx"))
    assert en.sheetnames == ["Wake-up", "Lapsed refills"]
    assert next(en["Wake-up"].values)[0] == "Member ID"
    with pytest.raises(RefillError, match="exists"):
        write_lists_workbook(lists, path)
    with pytest.raises(RefillError, match=".xlsx"):
        write_lists_workbook(lists, tmp_path / "lists.csv")
