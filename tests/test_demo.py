"""The demo chain generator: contract shape, consistency, and statistics against its ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from rxrepurchase.cli import main
from rxrepurchase.contract import TABLES, TAG_SEPARATOR, TIERS
from rxrepurchase.demo import (
    ARCHETYPES,
    DemoConfig,
    DemoConfigError,
    DemoOutputError,
    _bgnbd_repeats,
    generate_demo_chain,
    load_ground_truth,
    load_send_truth,
    write_demo_chain,
)
from rxrepurchase.errors import RxRepurchaseError
from rxrepurchase.loading import load_chain

SMALL = DemoConfig(n_members=2_000, n_stores=3, months=12, seed=11)
MEDIUM = DemoConfig(n_members=12_000, n_stores=6, months=18, seed=3)
DTYPES = {"id": "string", "text": "string", "timestamp": "datetime64[ns]", "date": "datetime64[ns]",
          "money": "float64", "number": "float64", "integer": "Int64", "flag": "bool"}


@pytest.fixture(scope="module")
def chain():
    return generate_demo_chain(MEDIUM)


@pytest.fixture(scope="module")
def member_orders(chain):
    """Member orders joined with the members' ground truth, in time order."""
    o = chain.orders[chain.orders["member_id"].notna()]
    cols = ["member_id", "archetype", "acquisition_wave", "dropped_out_at", "first_purchase_at"]
    return o.merge(chain.truth[cols], on="member_id").sort_values(["member_id", "ordered_at"])


def test_tables_have_the_contract_columns_and_dtypes(chain):
    for name, df in chain.tables().items():
        table = TABLES[name]
        assert list(df.columns) == table.column_names, name
        for col in table.columns:
            # A flag that may be empty (is_prescription: unknown) is nullable "boolean".
            expected = "boolean" if col.kind == "flag" and col.nullable else DTYPES[col.kind]
            assert str(df[col.name].dtype) == expected, (name, col.name)
            if not col.nullable:
                assert df[col.name].notna().all(), (name, col.name)
        if table.key:
            assert df[table.key].is_unique, name
    assert chain.stores["store_id"].tolist() == ["S01", "S02", "S03", "S04", "S05", "S06"]
    assert chain.members["member_id"].iloc[0] == "M000001"
    assert chain.orders["order_id"].str.fullmatch(r"O\d{9}").all()
    assert set(chain.members["tier"]) <= set(TIERS)


def test_same_config_gives_identical_tables_and_another_seed_does_not():
    a, b = generate_demo_chain(SMALL), generate_demo_chain(SMALL)
    for name, df in a.tables().items():
        pdt.assert_frame_equal(df, b.tables()[name])
    pdt.assert_frame_equal(a.truth, b.truth)
    assert a.truth_params == b.truth_params
    c = generate_demo_chain(DemoConfig(n_members=2_000, n_stores=3, months=12, seed=12))
    assert not a.orders["ordered_at"].equals(c.orders["ordered_at"])


def test_archetype_counts_follow_the_configured_shares():
    shares = {"loyal_chronic": 0.1, "loyal_general": 0.2, "occasional_acute": 0.3, "coupon_hunter": 0.4}
    c = generate_demo_chain(DemoConfig(n_members=1_001, n_stores=2, months=6, archetype_shares=shares))
    counts = c.truth["archetype"].value_counts()
    for name, share in shares.items():
        assert abs(counts[name] - share * 1_001) < 1
        assert c.truth_params["archetypes"][name]["members"] == counts[name]
    assert set(c.truth["archetype"]) == set(ARCHETYPES)


def test_walk_in_share_of_orders(chain):
    assert chain.orders["member_id"].isna().mean() == pytest.approx(MEDIUM.walk_in_share, abs=0.002)
    walk_ins = chain.orders[chain.orders["member_id"].isna()]
    assert (walk_ins["discount_amount"] <= walk_ins["gross_amount"] * 0.15 + 0.01).all()
    assert walk_ins["coupon_id"].isna().all() and (walk_ins["stored_value_amount"] == 0).all()


def test_amounts_add_up_to_the_fen(chain):
    o, lines = chain.orders, chain.order_lines
    fen = {c: np.round(o[c].to_numpy() * 100) for c in ("gross_amount", "discount_amount", "paid_amount")}
    for c, v in fen.items():
        assert np.allclose(v / 100, o[c].to_numpy(), atol=1e-9), c  # at most 2 decimals
    assert (fen["paid_amount"] == fen["gross_amount"] - fen["discount_amount"]).all()
    assert (o["discount_amount"] >= 0).all() and (o["paid_amount"] >= 0).all()
    assert (o["stored_value_amount"] <= o["paid_amount"]).all()
    line_fen = np.round(lines["line_amount"] * 100).groupby(lines["order_id"]).sum()
    assert (line_fen.reindex(o["order_id"]).to_numpy() == fen["paid_amount"]).all()
    assert (lines["line_amount"] >= 0).all() and (lines["quantity"] >= 1).all()
    # Discount depth: coupon hunters' new-member coupons take 30-60% off (plus member price).
    new = o["coupon_id"].str.startswith("CPN-NEW", na=False)
    depth = o.loc[new, "discount_amount"] / o.loc[new, "gross_amount"]
    assert depth.between(0.29, 0.70).all() and depth.mean() > 0.4


def test_stored_value_only_for_stored_value_members(chain):
    sv = chain.truth.set_index("member_id")["stored_value_member"]
    o = chain.orders[chain.orders["stored_value_amount"] > 0]
    assert sv.reindex(o["member_id"]).all()
    m = chain.members.set_index("member_id")
    sv = sv.reindex(m.index).to_numpy()
    assert (m["stored_value_balance"].notna().to_numpy() == sv).all()
    assert (m["tags"].str.contains("储值").to_numpy(dtype=bool) == sv).all()


def _chronic_refills(chain) -> tuple[pd.DataFrame, pd.Series]:
    """The chronic patients' own medication lines and the gaps between them (days)."""
    truth = chain.truth[chain.truth["archetype"] == "loyal_chronic"]
    lines = chain.order_lines.merge(chain.orders[["order_id", "member_id", "ordered_at"]], on="order_id")
    lines = lines.merge(truth[["member_id", "chronic_sku", "refill_interval_days", "packs_per_refill"]],
                        on="member_id")
    refills = lines[lines["sku"] == lines["chronic_sku"]].sort_values(["member_id", "ordered_at"])
    gaps = refills.groupby("member_id")["ordered_at"].diff().dt.total_seconds() / 86_400
    return refills, gaps


def test_chronic_refill_gaps_are_near_the_true_cycle(chain):
    truth = chain.truth[chain.truth["archetype"] == "loyal_chronic"]
    refills, gaps = _chronic_refills(chain)
    assert refills["is_chronic"].all()
    pack_days = refills["days_supply"] / refills["packs_per_refill"]
    assert pack_days.isin([28, 30]).all()
    median_gap = gaps.groupby(refills["member_id"]).median().dropna()
    cycle = truth.set_index("member_id")["refill_interval_days"].reindex(median_gap.index)
    ratio = median_gap / cycle
    # Gaps are the cycle with 6% jitter plus, 12% of the time, ~12 days late.
    assert ratio.median() == pytest.approx(1.01, abs=0.02)
    assert (ratio.between(0.85, 1.2)).mean() > 0.9
    assert cycle.between(28, 70).all() and (cycle < 35).mean() > 0.85


def test_irregular_refills_option():
    # Off by default: the standard chain is unchanged. On: each patient's own CV is
    # 0.8 x Uniform(0.25, 1.75), so regular and erratic patients side by side.
    def member_cv(config):
        refills, gaps = _chronic_refills(generate_demo_chain(config))
        by_member = gaps.groupby(refills["member_id"])
        return (by_member.std() / by_member.mean())[by_member.count() >= 5]

    regular = member_cv(SMALL)
    irregular = member_cv(dataclasses.replace(SMALL, refill_dispersion=0.8))
    assert regular.median() < 0.25 and len(irregular) > 100
    assert 0.55 < irregular.median() < 1.0
    assert irregular.quantile(0.1) < 0.45 and irregular.quantile(0.9) > 1.0


def test_coupon_hunters_buy_mostly_with_coupons_loyal_members_rarely(chain, member_orders):
    share = member_orders["coupon_id"].notna().groupby(member_orders["archetype"]).mean()
    assert share["coupon_hunter"] > 0.7
    for loyal in ("loyal_chronic", "loyal_general"):
        assert 0.02 < share[loyal] < 0.2  # sometimes, not never
    first = member_orders.drop_duplicates("member_id")
    hunters = first[first["archetype"] == "coupon_hunter"]
    expected = "CP-NEW" + hunters["acquisition_wave"].astype(int).astype(str).str.zfill(2)
    assert (hunters["campaign_id"] == expected).all()
    # Wave recruits joined inside their wave's campaign window.
    windows = chain.campaigns.set_index("campaign_id")
    joined = hunters["ordered_at"].dt.normalize()
    assert (joined >= windows.loc[expected, "starts_on"].to_numpy()).all()
    assert (joined <= windows.loc[expected, "ends_on"].to_numpy()).all()
    # They stop soon after the subsidy: most of their orders fall while the coupon is valid.
    all_hunters = member_orders[member_orders["archetype"] == "coupon_hunter"]
    wave = "CP-NEW" + all_hunters["acquisition_wave"].astype(int).astype(str).str.zfill(2)
    valid_until = windows.loc[wave, "ends_on"].to_numpy() + np.timedelta64(MEDIUM.coupon_valid_days + 1, "D")
    assert (all_hunters["ordered_at"].to_numpy() < valid_until).mean() > 0.6


def test_later_waves_recruit_fewer_and_repurchase_less(chain, member_orders):
    waves = chain.truth_params["waves"]
    recruited = [w["coupon_hunters_recruited"] for w in waves]
    assert recruited == sorted(recruited, reverse=True) and recruited[-1] < 0.6 * recruited[0]
    hunters = member_orders[member_orders["archetype"] == "coupon_hunter"]
    since_first = hunters["ordered_at"] - hunters["first_purchase_at"]
    repeat = (since_first > pd.Timedelta(0)) & (since_first <= pd.Timedelta(days=60))
    rate = repeat.groupby(hunters["member_id"]).any().groupby(
        hunters.groupby("member_id")["acquisition_wave"].first()).mean()
    expected = np.array([w["hunter_repurchase_60d"] for w in waves])
    assert np.all(np.diff(expected) < 0)
    n = np.array(recruited)
    assert np.all(np.abs(rate.to_numpy() - expected) < 4 * np.sqrt(expected * (1 - expected) / n))
    assert rate.iloc[0] - rate.iloc[-1] > 0.15


def test_bgnbd_process_matches_the_closed_form():
    # E[X(t) | lambda, p] = (1 - exp(-lambda p t)) / p and P(alive at t) = exp(-lambda p t).
    rng = np.random.default_rng(0)
    m, lam, p, t = 200_000, 0.1, 0.2, 100.0
    owner, times, dropout = _bgnbd_repeats(rng, np.zeros(m), t, np.full(m, lam), np.full(m, p))
    count = np.bincount(owner, minlength=m)
    assert count.mean() == pytest.approx((1 - np.exp(-lam * p * t)) / p, rel=0.01)
    assert np.isnan(dropout).mean() == pytest.approx(np.exp(-lam * p * t), abs=0.005)
    assert ((times > 0) & (times < t)).all()
    last = np.zeros(m)
    np.maximum.at(last, owner, times)
    dropped = ~np.isnan(dropout)
    assert np.array_equal(last[dropped], dropout[dropped])  # dropout happens at the last purchase
    # Without dropout, counts are Poisson(lambda t): mean = variance.
    owner, _, _ = _bgnbd_repeats(rng, np.zeros(m), t, np.full(m, lam), np.full(m, 1e-12))
    count = np.bincount(owner, minlength=m)
    assert count.mean() == pytest.approx(lam * t, rel=0.01)
    assert count.var() == pytest.approx(lam * t, rel=0.03)


def test_members_repeat_purchases_follow_their_true_rates(chain, member_orders):
    end = pd.Timestamp(chain.truth_params["period"]["end"]) + pd.Timedelta(days=1)
    for archetype in ("loyal_general", "coupon_hunter"):
        truth = chain.truth[chain.truth["archetype"] == archetype].set_index("member_id")
        t = (end - truth["first_purchase_at"]).dt.total_seconds() / 86_400
        lam, p = truth["purchase_rate_per_day"], truth["dropout_prob"]
        expected = ((1 - np.exp(-lam * p * t)) / p).sum()
        observed = (truth["n_orders"] - 1).sum()
        assert observed == pytest.approx(expected, rel=0.05), archetype


def test_lifetimes_recovers_the_general_shoppers_population(chain, member_orders):
    from lifetimes import BetaGeoFitter

    start = pd.Timestamp(chain.truth_params["period"]["start"])
    general = member_orders[member_orders["archetype"] == "loyal_general"]
    days = (general["ordered_at"] - start).dt.total_seconds() / 86_400
    by_member = days.groupby(general["member_id"])
    horizon = (pd.Timestamp(chain.truth_params["period"]["end"]) - start).days + 1
    fitted = BetaGeoFitter().fit(by_member.size() - 1, by_member.max() - by_member.min(),
                                 horizon - by_member.min()).params_
    true = chain.truth_params["archetypes"]["loyal_general"]["bgnbd_days"]
    assert fitted["r"] / fitted["alpha"] == pytest.approx(true["r"] / true["alpha"], rel=0.05)
    assert fitted["a"] / (fitted["a"] + fitted["b"]) == pytest.approx(true["a"] / (true["a"] + true["b"]), abs=0.01)
    assert fitted["r"] == pytest.approx(true["r"], rel=0.2)


def test_dropout_is_the_members_last_order(chain, member_orders):
    last = member_orders.groupby("member_id")["ordered_at"].max()
    truth = chain.truth.set_index("member_id")
    dropped = truth["dropped_out_at"].notna()
    assert (truth.loc[dropped, "dropped_out_at"] == last[truth.index[dropped]]).all()
    churn = dropped.groupby(truth["archetype"]).mean()
    assert churn["loyal_chronic"] < churn["loyal_general"] < churn["coupon_hunter"]


def test_acute_buying_peaks_in_winter(member_orders):
    acute = member_orders[member_orders["archetype"] == "occasional_acute"]
    month = acute["ordered_at"].dt.month
    # Per-month counts also grow as members join, so compare Dec-Feb with Jun-Aug of the
    # same membership: the last 12 months of the 18 (Oct 2025 - Sep 2026).
    last_year = acute["ordered_at"] >= "2025-10-01"
    winter = (last_year & month.isin([12, 1, 2])).sum()
    summer = (last_year & month.isin([6, 7, 8])).sum()
    assert winter > 1.5 * summer


def test_evening_peak_stores(chain):
    o = chain.orders[chain.orders["channel"] == "store"]
    evening = o["ordered_at"].dt.hour.between(19, 21)
    share = evening.groupby(o["store_id"]).mean()
    peak = chain.truth_params["evening_peak_stores"]
    assert peak == ["S03", "S06"]
    assert share[peak].min() > share.drop(peak).max() + 0.1
    assert o["ordered_at"].dt.hour.between(8, 22).all()


def test_tier_follows_spend_over_the_last_year(chain):
    o = chain.orders[chain.orders["member_id"].notna()]
    since = pd.Timestamp(chain.truth_params["period"]["end"]) - pd.Timedelta(days=364)
    spend = o[o["ordered_at"] >= since].groupby("member_id")["paid_amount"].sum()
    m = chain.members.set_index("member_id")
    spend = spend.reindex(m.index, fill_value=0.0)
    expected = np.searchsorted(MEDIUM.tier_thresholds, spend.to_numpy() + 1e-6, side="right")
    assert (m["tier"].to_numpy() == np.array(TIERS)[expected]).all()
    medians = spend.groupby(m["tier"]).median()
    assert list(medians[list(TIERS)]) == sorted(medians)


def test_members_join_at_their_first_order_at_their_main_store(chain):
    o = chain.orders[chain.orders["member_id"].notna()]
    m = chain.members.set_index("member_id")
    first = o.groupby("member_id")["ordered_at"].min()
    assert (m["joined_on"] == first.dt.normalize().reindex(m.index)).all()
    assert m["joined_on"].is_monotonic_increasing  # member numbers follow registration
    per_store = o.groupby(["member_id", "store_id"]).size()
    top = per_store.groupby(level="member_id").max()
    home_count = per_store.reindex(list(zip(m.index, m["home_store_id"], strict=True))).to_numpy()
    assert (home_count == top.reindex(m.index).to_numpy()).all()


def test_member_attributes(chain):
    m = chain.members.merge(chain.truth[["member_id", "archetype", "chronic_sku"]], on="member_id")
    chronic = m[m["archetype"] == "loyal_chronic"]
    assert chronic["tags"].str.contains(f"{TAG_SEPARATOR}慢病{TAG_SEPARATOR}").all()
    assert not m.loc[m["archetype"] != "loyal_chronic", "tags"].str.contains("慢病").any()
    hypertension = chronic["chronic_sku"].str.startswith("HBP")
    assert chronic.loc[hypertension, "tags"].str.contains("高血压").all()
    assert m["phone"].dropna().str.fullmatch(r"1[35789]\d{9}").all()
    assert 0.85 < m["phone"].notna().mean() < 0.95
    assert m["birth_month"].dropna().between(1, 12).all()
    assert m["wechat_id"].dropna().str.startswith("wxid_").all()
    assert set(m["gender"].dropna()) == {"F", "M"}
    ages = 2026 - m["birth_year"]
    assert ages[m["archetype"] == "loyal_chronic"].median() > ages[m["archetype"] == "coupon_hunter"].median() + 15


def test_write_then_load_with_the_loader(tmp_path):
    paths = write_demo_chain(tmp_path, SMALL)
    assert {p.name for p in paths.values()} == {
        "stores.csv", "members.csv", "orders.csv", "order_lines.csv", "campaigns.csv",
        "campaign_members.csv", "ground_truth_members.csv", "ground_truth.json",
        "ground_truth_campaign_members.csv"}
    expected = generate_demo_chain(SMALL)
    loaded = load_chain(tmp_path, as_of=expected.truth_params["period"]["end"])
    # the only finding: control members the coupon leaked to (simulated contamination)
    assert {i.rule for i in loaded.quality.issues} <= {"control_redeemed_coupon"}, str(loaded.quality)
    for name, df in expected.tables().items():
        pdt.assert_frame_equal(getattr(loaded, name), df, check_exact=False, rtol=0, atol=1e-9)
    truth, params = load_ground_truth(tmp_path)
    pdt.assert_frame_equal(truth, expected.truth, check_exact=False, rtol=1e-12)
    assert params == expected.truth_params
    pdt.assert_frame_equal(load_send_truth(tmp_path), expected.send_truth, check_dtype=False)

    with pytest.raises(DemoOutputError, match="stores.csv"):
        write_demo_chain(tmp_path, SMALL)
    with pytest.raises(DemoOutputError, match="stores.csv"):  # another format would mix with it
        write_demo_chain(tmp_path, SMALL, file_format="parquet")
    write_demo_chain(tmp_path, SMALL, file_format="parquet", overwrite=True)
    assert not (tmp_path / "orders.csv").exists()
    loaded = load_chain(tmp_path, as_of=expected.truth_params["period"]["end"])
    pdt.assert_frame_equal(loaded.orders, expected.orders)


def test_a_chain_written_in_parts_has_distinct_members_and_added_truth(tmp_path):
    config = DemoConfig(n_members=900, n_stores=3, months=6, seed=5)
    write_demo_chain(tmp_path, config, file_format="parquet", part_members=400)  # 400 + 400 + 100
    first = generate_demo_chain(dataclasses.replace(config, n_members=400))  # part 0 is this chain
    loaded = load_chain(tmp_path, as_of=config.end_date)
    truth, params = load_ground_truth(tmp_path)
    assert loaded.members["member_id"].tolist() == [f"M{k:06d}" for k in range(1, 901)]
    assert truth["member_id"].tolist() == loaded.members["member_id"].tolist()
    assert loaded.orders["order_id"].is_unique
    assert loaded.orders["member_id"].dropna().isin(loaded.members["member_id"]).all()
    pdt.assert_frame_equal(loaded.stores, first.stores)
    pdt.assert_frame_equal(loaded.orders.iloc[:len(first.orders)].reset_index(drop=True), first.orders)
    assert params["orders"] == len(loaded.orders) == truth["n_orders"].sum() + params["walk_in_orders"]
    assert sum(a["members"] for a in params["archetypes"].values()) == 900
    assert params["config"]["n_members"] == 900 and params["parts"] == {"part_members": 400, "parts": 3}
    assert sum(w["treatment"] + w["control"] for w in params["send_waves"]) == len(load_send_truth(tmp_path))


def test_chain_without_coupon_hunters_and_a_single_member():
    shares = {"loyal_chronic": 0.5, "loyal_general": 0.5}
    c = generate_demo_chain(DemoConfig(n_members=500, n_stores=1, months=3, archetype_shares=shares))
    assert set(c.truth["archetype"]) == set(shares)
    assert (c.truth["acquisition_wave"].dropna() >= 1).all()  # loyal members recruited by waves
    single = generate_demo_chain(DemoConfig(n_members=1, n_stores=1, months=3))
    assert single.orders["member_id"].eq("M000001").any() and len(single.members) == 1


def test_unknown_file_format_is_refused(tmp_path):
    with pytest.raises(DemoConfigError, match="file_format"):
        write_demo_chain(tmp_path, SMALL, file_format="xlsx")
    assert not any(tmp_path.iterdir())


def test_load_ground_truth_of_a_folder_without_one(tmp_path):
    with pytest.raises(RxRepurchaseError, match="ground_truth_members.csv"):
        load_ground_truth(tmp_path)


def test_cli_demo_data(tmp_path, capsys):
    args = ["demo-data", "--out", str(tmp_path), "--members", "300", "--stores", "2", "--months", "6"]
    assert main(args) == 0
    assert "orders.csv" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "members.csv")["member_id"].nunique() == 300
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--format", "parquet"]) == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"archetype_shares": {"loyal_chronic": 0.5, "coupon_hunter": 0.6}}, "archetype_shares"),
    ({"archetype_shares": {"loyal": 1.0}}, "archetype_shares"),
    ({"months": 2}, "months"),
    ({"walk_in_share": 1.0}, "walk_in_share"),
    ({"end_date": "not a date"}, "end_date"),
    ({"n_members": 0}, "n_members"),
    ({"n_waves": 0}, "n_waves"),
    ({"refill_dispersion": -0.1}, "refill_dispersion"),
])
def test_bad_config_is_refused_naming_the_field(change, field):
    with pytest.raises(DemoConfigError, match=f"DemoConfig.{field}"):
        generate_demo_chain(DemoConfig(**change))


def test_shapes_set_their_fields_and_refuse_a_contradiction(tmp_path, capsys):
    from rxrepurchase.demo import DEMO_SHAPES

    for shape, changes in DEMO_SHAPES.items():
        config = DemoConfig(n_members=10, shape=shape)
        assert all(getattr(config, k) == v for k, v in changes.items())
    with pytest.raises(DemoConfigError, match="member_discount: shape 'member_price' sets it"):
        DemoConfig(shape="member_price", member_discount=(0.2, 0.3))
    with pytest.raises(DemoConfigError, match="shape must be one of"):
        DemoConfig(shape="nope")
    assert main(["demo-data", "--out", str(tmp_path), "--members", "300", "--stores", "3",
                 "--months", "6", "--shape", "nope"]) == 2
    assert "shape must be one of" in capsys.readouterr().err


def test_shapes_shape_the_data():
    small = dict(n_members=1500, n_stores=6, months=9, seed=2)
    price = generate_demo_chain(DemoConfig(**small, shape="member_price")).orders
    plain = price.loc[price["member_id"].notna() & price["coupon_id"].isna() & price["campaign_id"].isna()]
    depth = plain["discount_amount"] / plain["gross_amount"]
    assert 0.13 <= depth.quantile(0.05) and depth.quantile(0.95) <= 0.17 + 0.001  # fen rounding
    bare = generate_demo_chain(DemoConfig(**small, shape="discount_only"))
    assert bare.orders["coupon_id"].isna().all() and bare.orders["campaign_id"].isna().all()
    assert bare.campaigns.empty and (bare.orders["discount_amount"] > 0).any()
    promo = generate_demo_chain(DemoConfig(**small, shape="campaigns_most_of_year")).campaigns
    days = set()
    for row in promo[promo["kind"] == "promotion"].itertuples():
        days |= set(pd.date_range(row.starts_on, row.ends_on))
    span = pd.date_range(promo["starts_on"].min(), promo["ends_on"].max())
    assert 0.75 <= len(days) / len(span) <= 0.9
    multi = generate_demo_chain(DemoConfig(**small, shape="multi_store"))
    stores_per_member = multi.orders.dropna(subset=["member_id"]).groupby("member_id")["store_id"].nunique()
    assert stores_per_member.max() == 3  # home store and two others
    many = multi.truth.loc[multi.truth["n_orders"] >= 8, "member_id"]
    assert stores_per_member.reindex(many).mean() > 2.5


def test_utc_shape_writes_offsets(tmp_path):
    config = DemoConfig(n_members=200, n_stores=2, months=3, seed=1, shape="utc")
    chain = generate_demo_chain(config)
    write_demo_chain(tmp_path, config)
    raw = pd.read_csv(tmp_path / "orders.csv", dtype=str)
    assert raw["ordered_at"].str.endswith("+00:00").all()
    back = pd.to_datetime(raw["ordered_at"]).dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
    assert (back.to_numpy() == chain.orders["ordered_at"].to_numpy()).all()
