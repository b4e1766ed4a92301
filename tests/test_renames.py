"""Renamed keywords: the old name works for now, with a FutureWarning naming the new one."""

from __future__ import annotations

import inspect
import warnings

import pandas as pd
import pytest
from test_metrics import hand_orders

from rxrepurchase import metrics
from rxrepurchase.renames import renamed_keywords


@renamed_keywords(within="horizon_days", days="outcome_days")
def _listed(n: int, *, horizon_days: int = 14, outcome_days: int = 30) -> tuple[int, int, int]:
    return n, horizon_days, outcome_days


def test_old_keyword_warns_and_passes_its_value_under_the_new_name():
    with pytest.warns(FutureWarning, match=r"_listed\(within=\.\.\.\) is renamed _listed\(horizon_days=\.\.\.\)"):
        assert _listed(1, within=7) == (1, 7, 30)
    with pytest.warns(FutureWarning) as caught:
        assert _listed(2, within=7, days=60) == (2, 7, 60)
    assert len(caught) == 2 and caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names are silent
        assert _listed(3, horizon_days=7, outcome_days=60) == (3, 7, 60)
    with pytest.raises(TypeError, match="within= and horizon_days=; within= is the old name"):
        _listed(4, within=7, horizon_days=8)
    assert list(inspect.signature(_listed).parameters) == ["n", "horizon_days", "outcome_days"]


def test_a_renamed_library_keyword_gives_the_same_result():
    new = metrics.n_day_repurchase(hand_orders(), outcome_days=(30, 60))
    with pytest.warns(FutureWarning, match=r"n_day_repurchase\(outcome_days=\.\.\.\)"):
        old = metrics.n_day_repurchase(hand_orders(), days=(30, 60))
    pd.testing.assert_frame_equal(old, new)
