"""core.fit_rows: the distinct (frequency, recency, T) rows a fit needs, and a BG/NBD fit on
them (weighted by their member counts) equal to the fit on every member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter

from rxrepurchase import sources
from rxrepurchase.core import backend
from rxrepurchase.core import rfm as core_rfm
from rxrepurchase.core.fit_rows import fit_rows
from rxrepurchase.demo import DemoConfig, generate_demo_chain


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
        rfm = core_rfm.rfm_summary(src.orders, end=end)
        return src.to_pandas(rfm), src.to_pandas(fit_rows(rfm))


def test_weighted_fit_on_distinct_rows_equals_fit_on_every_member(demo_rfm):
    members, rows = demo_rfm
    assert rows["members"].sum() == len(members)
    assert len(rows) < len(members)  # the point: fewer rows than members
    every = BetaGeoFitter().fit(members["frequency"], members["recency"], members["T"])
    weighted = BetaGeoFitter().fit(rows["frequency"], rows["recency"], rows["T"],
                                   weights=rows["members"])
    np.testing.assert_allclose(weighted.params_.to_numpy(), every.params_.to_numpy(), rtol=1e-4)
