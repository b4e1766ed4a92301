"""Chain overview figures against hand-counted orders."""

import pandas as pd
import pytest

from rxrepurchase.chain_view import (
    LIST_SIZES,
    ChainViewError,
    chain_periods,
    chain_totals,
    chain_trend,
    chain_vs_store_rates,
    list_sizes_line,
    nothing_received_line,
    read_store_results,
    store_list_sizes,
    stores_needing_attention,
)

AS_OF = "2026-09-30"


def _orders(rows):
    """rows: (store_id, member_id or None, day)."""
    return pd.DataFrame([
        {"order_id": f"O{i}", "store_id": s, "member_id": m, "ordered_at": pd.Timestamp(d),
         "gross_amount": 11.0, "discount_amount": 1.0, "paid_amount": 10.0, "coupon_id": None,
         "campaign_id": None}
        for i, (s, m, d) in enumerate(rows)
    ])


# This period (30 days: 09-01..09-30): A twice, B once, one walk-in.
# Previous (08-02..08-31): A once, B twice, C twice, a walk-in on its first day (the data
# reaches back to the period's start). Nothing a year before.
CHAIN = _orders([
    ("S1", "A", "2026-09-05"), ("S1", "A", "2026-09-10"), ("S1", "B", "2026-09-06"),
    ("S1", None, "2026-09-07"),
    ("S1", "A", "2026-08-10"), ("S1", "B", "2026-08-11"), ("S1", "B", "2026-08-20"),
    ("S1", "C", "2026-08-12"), ("S1", "C", "2026-08-15"), ("S1", None, "2026-08-02"),
])


def test_periods_are_this_the_one_before_and_a_year_before():
    p = chain_periods(AS_OF, 30).set_index("period")
    assert p.loc["this"].tolist() == [pd.Timestamp("2026-09-01"), pd.Timestamp("2026-09-30")]
    assert p.loc["previous"].tolist() == [pd.Timestamp("2026-08-02"), pd.Timestamp("2026-08-31")]
    assert p.loc["year_before"].tolist() == [pd.Timestamp("2025-09-01"),
                                             pd.Timestamp("2025-09-30")]
    with pytest.raises(ChainViewError, match="period_days"):
        chain_periods(AS_OF, 0)


def test_chain_totals_and_their_change():
    t = chain_totals(CHAIN, AS_OF, period_days=30).set_index("period")
    now, before = t.loc["this"], t.loc["previous"]
    assert (now["active_members"], now["orders"], now["revenue"], now["subsidy"]) == (2, 4, 40, 4)
    assert now["user_repurchase_rate"] == pytest.approx(1 / 2)
    assert (before["active_members"], before["orders"], before["revenue"]) == (3, 6, 60)
    assert before["user_repurchase_rate"] == pytest.approx(2 / 3)
    assert before["change_user_repurchase_rate"] == pytest.approx(1 / 2 - 2 / 3)  # points
    assert before["change_revenue"] == pytest.approx(40 / 60 - 1)  # relative
    assert before["change_active_members"] == pytest.approx(-1 / 3)
    # The data starts in August 2026: no year-before figures, and said so.
    assert not t.loc["year_before", "available"]
    assert pd.isna(t.loc["year_before", "revenue"])
    assert pd.isna(t.loc["year_before", "change_revenue"])
    assert pd.isna(now["change_revenue"])


def test_chain_trend_per_calendar_month():
    trend = chain_trend(CHAIN, AS_OF, months=2)
    assert trend["month"].tolist() == [pd.Timestamp("2026-08-01"), pd.Timestamp("2026-09-01")]
    assert trend["members"].tolist() == [3, 2]  # the August walk-in is no member
    assert trend["user_repurchase_rate"].tolist() == pytest.approx([2 / 3, 1 / 2])
    assert not trend["partial"].any()


def test_stores_needing_attention_falls_first_then_costly_subsidy_above_the_minimum():
    rows = []
    # S1: 2/2 repeat before, 1/2 now (-50 points). S2: 0/2 before, 2/2 now (rise).
    # S3: 1/2 before, 0/2 now (-50 points). S4: one member only (too small).
    for store, before, now in (("S1", (2, 2), (2, 1)), ("S2", (1, 1), (2, 2)),
                               ("S3", (2, 1), (1, 1)), ("S4", (2,), (1,))):
        for k, n in enumerate(before):
            rows += [(store, f"{store}m{k}", f"2026-08-{10 + j:02d}") for j in range(n)]
        for k, n in enumerate(now):
            rows += [(store, f"{store}m{k}", f"2026-09-{10 + j:02d}") for j in range(n)]
    stores = pd.DataFrame({"store_id": ["S1", "S2", "S3", "S4"],
                           "subsidy_per_retained_member": [10.0, 30.0, None, 99.0]})
    table = stores_needing_attention(_orders(rows), stores, AS_OF, period_days=30,
                                     min_active_members=2, top=2)
    assert table[["reason", "store_id"]].values.tolist() == [
        ["repurchase_fall", "S1"], ["repurchase_fall", "S3"],
        ["subsidy_efficiency", "S2"]]  # above the median of S1 and S2 (S3 has no figure)
    assert table["change"].iloc[0] == pytest.approx(-0.5)


def test_totals_table_states_the_periods_and_signs_the_changes():
    import matplotlib.pyplot as plt

    from rxrepurchase import report_data as rd

    page = rd.chain_totals_html(chain_totals(CHAIN, AS_OF, period_days=30))
    assert "2026-09-01 to 2026-09-30 (30 days)" in page and "(2026-08-02 to 2026-08-31)" in page
    assert "User repurchase rate, last 30 days" in page
    assert "<td>50.0%</td>" in page and "<td>-16.7 pts</td>" in page  # 1/2 against 2/3
    assert "<td>¥40</td>" in page and "<td>-33.3%</td>" in page  # revenue 40 against 60
    assert "no comparison with a year before" in page
    assert "同比" in rd.chain_totals_html(chain_totals(CHAIN, AS_OF, period_days=30), "zh")
    # Level axes start at zero.
    fig, ax = plt.subplots()
    rd.plot_chain_trend(chain_trend(CHAIN, AS_OF, months=2), ax=ax)
    assert ax.get_ylim()[0] == 0
    stores = pd.DataFrame({"store_id": ["S1", "S2"], "subsidy_driven_share": [0.3, 0.35],
                           "subsidy_per_retained_member": [92.0, 99.0], "loyal_share": [0.4, 0.5]})
    rd.plot_subsidy_efficiency(stores, ax=ax)
    assert ax.get_ylim()[0] == 0 and ax.get_xlim()[0] == 0
    plt.close(fig)


# --- list sizes per store and whose manager receives nothing -------------------------------

RESULTS = [
    {"store_id": "S1", "ok": True, "error": None,
     "metrics": {"refill_reminder_members": 12, "refill_reminder_rows": 15, "wake_up_members": 4,
                 "lapsed_refill_members": 7, "top_members": 20,
                 "this_week_member_care_members": 6}},
    {"store_id": "S2", "ok": False, "error": "ValueError: boom", "metrics": None},
    {"store_id": "S3", "ok": True, "error": None,
     "metrics": {"refill_reminder_members": 0, "refill_reminder_rows": 0, "wake_up_members": None,
                 "lapsed_refill_members": 1, "top_members": 3}},
]


def test_list_sizes_per_store_and_the_managers_who_receive_nothing():
    table = store_list_sizes(RESULTS, {"S3": ("no_manager_address", "no manager_email"),
                                       "S2": ("no_manager_address", "none either")})
    s1, s2, s3 = (row for _, row in table.iterrows())
    assert [s1[k] for k in LIST_SIZES] == [12, 15, 4, 7, 20, 6]
    assert s1["nothing_reason"] == ""
    # A failed report is the reason, whatever else is missing; its sizes are unknown.
    assert (s2["nothing_reason"], s2["nothing_detail"]) == ("report_failed", "ValueError: boom")
    assert all(pd.isna(s2[k]) for k in LIST_SIZES)
    assert pd.isna(s3["wake_up_members"]) and s3["refill_reminder_members"] == 0
    # A figure the report wrote as NaN is missing too, not an error.
    nan = store_list_sizes([{**RESULTS[0], "metrics": {"top_members": float("nan")}}])
    assert pd.isna(nan.at[0, "top_members"])
    assert s3["nothing_reason"] == "no_manager_address"
    line = nothing_received_line(table)
    assert line == ("Managers who receive nothing: S2 (report failed: ValueError: boom); "
                    "S3 (no manager address: no manager_email).")
    assert "S2（报告生成失败：ValueError: boom）" in nothing_received_line(table, "zh")
    assert list_sizes_line(s1) == ("- S1: refill reminders 12 (15 member × product) · wake-up 4 "
                                   "· lapsed refills 7 · top 20% 20 (6 slowed)")
    assert "wake-up – ·" in list_sizes_line(s3)
    with pytest.raises(ChainViewError, match="unknown reason 'gone'"):
        store_list_sizes(RESULTS, {"S1": ("gone", "")})


def test_every_manager_served_is_said_and_a_run_without_email_says_so():
    served = store_list_sizes([RESULTS[0]])
    assert nothing_received_line(served) == ("Every store's manager receives the store's report "
                                             "and lists.")
    assert nothing_received_line(served, sends_email=False) == (
        "Every store's report was produced; this run sends no email.")


def test_store_results_file_errors_name_the_file(tmp_path):
    path = tmp_path / "stores.json"
    with pytest.raises(ChainViewError, match="stores.json: the stores' results file does not"):
        read_store_results(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ChainViewError, match="stores.json: not valid JSON"):
        read_store_results(path)
    path.write_text('{"stores": [{"ok": true}]}', encoding="utf-8")
    with pytest.raises(ChainViewError, match=r"stores\[0\] needs 'store_id'"):
        read_store_results(path)
    path.write_text('{"stores": [], "undelivered": {"S1": ["no_manager_address", "x"]}}',
                    encoding="utf-8")
    assert read_store_results(path) == {"stores": [], "sends_email": False,
                                        "undelivered": {"S1": ("no_manager_address", "x")}}


def test_chain_rate_counts_a_member_once_across_stores_a_store_only_its_own_purchases():
    # 30 days to 09-30. A: one purchase at S1 and one at S2 (repeat for the chain only).
    # B: twice at S1. C: once at S1, once at S2, twice at S2 (repeats at S2 too). D: once at S2.
    # E: twice the same day, at S1 and S2 (one purchase for the chain: not a repeat buyer).
    rows = [("S1", "A", "2026-09-02"), ("S2", "A", "2026-09-20"),
            ("S1", "B", "2026-09-03"), ("S1", "B", "2026-09-13"),
            ("S1", "C", "2026-09-04"), ("S2", "C", "2026-09-14"), ("S2", "C", "2026-09-24"),
            ("S2", "D", "2026-09-05"),
            ("S1", "E", "2026-09-06"), ("S2", "E", "2026-09-06"),
            ("S1", "A", "2026-08-01")]  # before the period
    d = chain_vs_store_rates(_orders(rows), AS_OF, period_days=30, min_active_members=1)
    assert (d["members"], d["repeat_members"]) == (5, 3)  # A, B, C of A..E
    assert d["chain_rate"] == pytest.approx(3 / 5)
    assert d["multi_store_members"] == 3  # A, C, E
    assert d["cross_store_only"] == 1  # A
    # Store by store: S1 A B C E, S2 A C D E = 8 pairs; B at S1 and C at S2 repeat there.
    assert d["store_members"] == 8 and d["pooled_store_rate"] == pytest.approx(2 / 8)
    # One purchase at a store, a repeat buyer for the chain: A at S1 and S2, C at S1.
    assert d["once_here"] == 3
    # S1: A, B, C, E bought, B repeats (1/4); S2: A, C, D, E bought, C repeats (1/4).
    assert (d["store_low"], d["store_high"], d["stores"]) == (pytest.approx(0.25),
                                                              pytest.approx(0.25), 2)
    t = chain_totals(_orders(rows), AS_OF, period_days=30).set_index("period")
    assert d["chain_rate"] == pytest.approx(t.at["this", "user_repurchase_rate"])
