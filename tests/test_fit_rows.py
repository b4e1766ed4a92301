"""core.fit_rows: the distinct (frequency, recency, T) rows a fit needs, and a BG/NBD fit on
them (weighted by their member counts) equal to the fit on every member; the same for
Gamma-Gamma on the spend rows, and scores per distinct row spread to every member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter

from rxrepurchase import sources
from rxrepurchase.core import backend
from rxrepurchase.core import rfm as core_rfm
from rxrepurchase.core.fit_rows import fit_rows, spend_rows
from rxrepurchase.demo import DemoConfig, generate_demo_chain
from rxrepurchase.models import BGNBDModel, GammaGammaModel, score_members, score_table


def test_fit_rows_count_members_per_distinct_row():
    rfm = pd.DataFrame({
        "store_id": ["S1", "S1", "S1", "S2", "S2"],
        "member_id": ["a", "b", "c", "a", "d"],
        "frequency": [0, 2, 2, 0, 0],
        "recency": [0.0, 30.0, 30.0, 0.0, 0.0],
        "T": [40.0, 90.0, 90.0, 40.0, 40.0],
    })
    with backend.tables(rfm) as (t,):
        chain = backend.to_pandas(fit_rows(t))
        by_store = backend.to_pandas(fit_rows(t, by=["store_id"]))
    assert chain.values.tolist() == [[0, 0.0, 40.0, 3], [2, 30.0, 90.0, 2]]
    assert by_store.values.tolist() == [
        ["S1", 0, 0.0, 40.0, 1], ["S1", 2, 30.0, 90.0, 2], ["S2", 0, 0.0, 40.0, 2],
    ]


@pytest.fixture(scope="module")
def demo_rfm():
    demo = generate_demo_chain(DemoConfig(n_members=4000, n_stores=3, months=12, seed=7))
    with sources.from_frames(demo) as src:
        end = pd.Timestamp(demo.config.end_date).date()
        rfm = core_rfm.rfm_summary(src.orders, as_of=end)
        return src.to_pandas(rfm), src.to_pandas(fit_rows(rfm))


def test_weighted_fit_on_distinct_rows_equals_fit_on_every_member(demo_rfm):
    members, rows = demo_rfm
    assert rows["members"].sum() == len(members)
    assert len(rows) < len(members)  # the point: fewer rows than members
    every = BetaGeoFitter().fit(members["frequency"], members["recency"], members["T"])
    weighted = BetaGeoFitter().fit(rows["frequency"], rows["recency"], rows["T"],
                                   weights=rows["members"])
    np.testing.assert_allclose(weighted.params_.to_numpy(), every.params_.to_numpy(), rtol=1e-4)


def test_spend_rows_count_repeat_buyers_per_distinct_spend():
    rfm = pd.DataFrame({
        "member_id": ["a", "b", "c", "d", "e"],
        "frequency": [0, 2, 2, 1, 2],
        "monetary_value": [0.0, 12.5, 12.5, 7.0, 30.0],
    })
    with backend.tables(rfm) as (t,):
        rows = backend.to_pandas(spend_rows(t))
    assert rows.values.tolist() == [[1, 7.0, 1], [2, 12.5, 2], [2, 30.0, 1]]


def test_models_fitted_on_weighted_rows_equal_fits_on_every_member(demo_rfm):
    members, rows = demo_rfm
    members.attrs["time_unit"] = rows.attrs["time_unit"] = "days"
    bg_every = BGNBDModel().fit(members)
    bg_rows = BGNBDModel().fit(rows, weights="members")
    np.testing.assert_allclose(bg_rows.params_, bg_every.params_, rtol=1e-6)
    assert (bg_rows.n_members_, bg_rows.n_repeat_buyers_) == (bg_every.n_members_, bg_every.n_repeat_buyers_)
    with backend.tables(members) as (t,):
        spend = backend.to_pandas(spend_rows(t))
    gg_every = GammaGammaModel().fit(members)
    gg_rows = GammaGammaModel().fit(spend, weights="members")
    np.testing.assert_allclose(gg_rows.params_, gg_every.params_, rtol=1e-6)
    assert gg_rows.n_members_ == gg_every.n_members_ == (members["frequency"] > 0).sum()
    assert gg_rows.frequency_monetary_corr_ == pytest.approx(gg_every.frequency_monetary_corr_, abs=1e-12)


def test_score_table_gives_every_member_score_members_figures(demo_rfm):
    members, _ = demo_rfm
    members = members.set_index("member_id")
    members.attrs["time_unit"] = "days"
    bg, gg = BGNBDModel().fit(members), GammaGammaModel().fit(members)
    expected = score_members(bg, gg, members, gross_margin=0.3, horizon_days=30, horizon_months=12)
    with backend.tables(members.reset_index()) as (t,):
        got = backend.to_pandas(score_table(bg, gg, t, gross_margin=0.3, horizon_days=30, horizon_months=12))
    got = got.set_index("member_id").loc[expected.index]
    for col in ("p_alive", "expected_purchases", "expected_spend", "clv"):
        np.testing.assert_allclose(got[col], expected[col], rtol=1e-12, err_msg=col)
