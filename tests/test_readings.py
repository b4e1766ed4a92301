"""Section readings against hand-computed figures."""

import math

import pandas as pd
import pytest

from rxrepurchase.readings import ReadingError, busiest_hours, tag_repurchase, wave_decline


def test_wave_decline_pairs_the_first_and_last_measured_wave():
    waves = pd.DataFrame({"wave": [1, 2, 3, 4], "participants": [545, 400, 257, 100],
                          "repurchase_rate": [0.565, 0.5, 0.467, math.nan],
                          "subsidy_per_retained_member": [40.0, 50.0, 61.5, math.nan]})
    reading = wave_decline(waves)
    assert (reading["first"], reading["last"]) == (1, 3)  # wave 4 is not measured yet
    assert reading["participants"] == (545, 257)
    assert reading["repurchase_rate"] == (0.565, 0.467)
    assert reading["subsidy_per_retained_member"] == (40.0, 61.5)
    assert wave_decline(waves.iloc[[0]]) is None
    with pytest.raises(ReadingError, match="waves has no column.*participants"):
        wave_decline(waves.drop(columns="participants"))


def test_busiest_hours_share_and_ratio():
    hours = [9, 10, 11, 12, 13, 14, 9, 10, 10]
    orders = pd.DataFrame({"member_id": [f"M{i}" for i in range(len(hours))],
                           "ordered_at": [pd.Timestamp(f"2026-09-20 {h:02d}:30") for h in hours]})
    peak = busiest_hours(orders, "2026-09-30")
    # 9 orders over 6 open hours; 9-11 h holds 5: share 5/9, ratio (5/9) / (2/6).
    assert (peak["start"], peak["end"]) == (9, 11)
    assert peak["share"] == pytest.approx(5 / 9)
    assert peak["ratio"] == pytest.approx(5 / 9 * 3)
    assert list(peak["member_ids"]) == ["M0", "M1", "M6", "M7", "M8"]
    assert busiest_hours(orders, "2026-01-01") is None


def _order(member, day):
    return {"order_id": f"{member}-{day}", "member_id": member, "store_id": "S01",
            "ordered_at": pd.Timestamp(day), "paid_amount": 10.0, "gross_amount": 10.0,
            "discount_amount": 0.0, "coupon_id": None, "campaign_id": None}


def test_tag_repurchase_per_tag_with_a_minimum_size():
    # A, B: chronic; A bought twice in the period. C: chronic;vitamins, once. D: vitamins, twice.
    orders = pd.DataFrame([_order("A", "2026-09-01"), _order("A", "2026-09-10"),
                           _order("B", "2026-09-02"), _order("C", "2026-09-03"),
                           _order("D", "2026-09-04"), _order("D", "2026-09-20"),
                           _order("E", "2026-09-05")])
    members = pd.DataFrame({"member_id": list("ABCDE"),
                            "tags": ["chronic", "chronic", "chronic; vitamins", "vitamins", None]})
    table = tag_repurchase(orders, members, ("2026-07-01", "2026-09-30"), min_members=2)
    assert table.to_dict("list") == {"tag": ["vitamins", "chronic"], "members": [2, 3],
                                     "user_repurchase_rate": [0.5, pytest.approx(1 / 3)]}
    assert tag_repurchase(orders, members, ("2026-07-01", "2026-09-30"), min_members=3)[
        "tag"].tolist() == ["chronic"]
    # A period without any purchase of a tag's members: no row, no error.
    assert tag_repurchase(orders, members, ("2026-01-01", "2026-01-31"), min_members=1).empty


def test_readings_in_words_en_and_zh():
    from rxrepurchase import report_data as rd

    waves = pd.DataFrame({"wave": [1, 2], "participants": [545, 257],
                          "repurchase_rate": [0.565, 0.467],
                          "subsidy_per_retained_member": [40.0, 61.5]})
    assert rd.waves_reading(waves) == (
        "From wave 1 to wave 2, participants went 545 → 257 and repurchase after the wave "
        "56.5% → 46.7%; each member still buying at full price cost ¥40 of subsidy in wave 1 "
        "and ¥62 in wave 2.")
    assert "参与会员 545 → 257" in rd.waves_reading(waves, "zh")
    tags = pd.DataFrame({"tag": ["慢病", "<b>", "门店"], "members": [40, 35, 90],
                         "user_repurchase_rate": [0.7, 0.5, 0.3]})
    line = rd.tags_reading(tags)
    assert "highest for “慢病” (70.0%, 40 members) and lowest for “门店” (30.0%, 90" in line
    assert rd.tags_reading(tags.iloc[:1]) == ""


def test_rfm_groups_in_operator_words_each_with_an_action_and_no_model_names():
    from rxrepurchase import report_data as rd
    from rxrepurchase.segments import RFMConfig

    segments = [name for name, _, _ in RFMConfig().segments]
    page = rd.rfm_actions_html(pd.DataFrame({"segment": segments, "members": range(len(segments))}))
    assert page.count("</tr>") == len(segments) + 1 and "–" not in page
    assert "Lost: long gone, bought once or twice" in page and "cheap mass channels" in page
    for lang in ("en", "zh"):
        glossary = rd.glossary_html(lang)
        assert glossary.count("<li>") == len(rd.GLOSSARY)
        assert "BG/NBD" not in glossary and "Gamma" not in glossary


def test_tag_repurchase_by_store_counts_within_each_store():
    # S01: A twice, C once (chronic 1/2; vitamins: C alone). S02: A once, D twice (chronic 0/1;
    # vitamins D 1/1). A's two stores are counted apart, as two stores' own reports would.
    rows = [("A", "2026-09-01", "S01"), ("A", "2026-09-10", "S01"), ("C", "2026-09-03", "S01"),
            ("A", "2026-09-12", "S02"), ("D", "2026-09-04", "S02"), ("D", "2026-09-20", "S02")]
    orders = pd.DataFrame([{**_order(m, d), "order_id": f"{m}-{d}", "store_id": s}
                           for m, d, s in rows])
    members = pd.DataFrame({"member_id": list("ACD"),
                            "tags": ["chronic", "chronic; vitamins", "vitamins"]})
    table = tag_repurchase(orders, members, ("2026-07-01", "2026-09-30"), min_members=1,
                           by="store_id")
    assert table.to_dict("list") == {
        "store_id": ["S01", "S01", "S02", "S02"], "tag": ["chronic", "vitamins", "vitamins", "chronic"],
        "members": [2, 1, 1, 1], "user_repurchase_rate": [0.5, 0.0, 1.0, 0.0]}
    for store in ("S01", "S02"):  # each store's rows are its own orders' table
        own = tag_repurchase(orders[orders["store_id"] == store], members,
                             ("2026-07-01", "2026-09-30"), min_members=1)
        pd.testing.assert_frame_equal(
            table[table["store_id"] == store].drop(columns="store_id").reset_index(drop=True), own)
