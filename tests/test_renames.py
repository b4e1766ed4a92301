"""Renamed keywords: the old name works for now, with a FutureWarning naming the new one."""

from __future__ import annotations

import inspect
import warnings

import pandas as pd
import pytest
from test_metrics import hand_orders

from rxrepurchase import metrics
from rxrepurchase.renames import renamed_items, renamed_keywords


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
    with pytest.raises(TypeError, match=r"got _listed\(within=\.\.\.\) and _listed\(horizon_days=\.\.\.\); within is the old name"):
        _listed(4, within=7, horizon_days=8)
    assert list(inspect.signature(_listed).parameters) == ["n", "horizon_days", "outcome_days"]


def test_a_renamed_library_keyword_gives_the_same_result():
    new = metrics.n_day_repurchase(hand_orders(), outcome_days=(30, 60))
    with pytest.warns(FutureWarning, match=r"n_day_repurchase\(outcome_days=\.\.\.\)"):
        old = metrics.n_day_repurchase(hand_orders(), days=(30, 60))
    pd.testing.assert_frame_equal(old, new)


@renamed_keywords(horizons=("soon_days", "horizon_days"))
def _paired(*, soon_days: int = 7, horizon_days: int = 14) -> tuple[int, int]:
    return soon_days, horizon_days


def test_an_old_keyword_of_several_values_unpacks_into_its_new_names():
    with pytest.warns(FutureWarning, match=r"_paired\(horizons=\.\.\.\) is renamed "
                                           r"_paired\(soon_days=\.\.\., horizon_days=\.\.\.\)"):
        assert _paired(horizons=(3, 30)) == (3, 30)
    with pytest.raises(TypeError, match=r"_paired\(horizons=\.\.\.\) takes 2 values"), \
            pytest.warns(FutureWarning):
        _paired(horizons=(3,))
    with pytest.raises(TypeError, match=r"horizons is the old name of soon_days, horizon_days, "
                                        r"give only soon_days, horizon_days"):
        _paired(horizons=(3, 30), horizon_days=30)


def test_a_renamed_attribute_reads_the_new_one_with_a_warning():
    from rxrepurchase.refill import RefillOverview

    empty = pd.DataFrame()
    overview = RefillOverview(predictions=empty, adherence=empty, targets=empty,
                              as_of=pd.Timestamp("2026-06-30"), horizon_days=21, list_check=empty)
    with pytest.warns(FutureWarning, match=r"RefillOverview\.within is renamed "
                                           r"RefillOverview\.horizon_days") as caught:
        assert overview.within == 21
    assert caught[0].filename == __file__
    with pytest.raises(AttributeError):
        overview.within = 7  # read-only: the value lives under its new name only


def test_a_rate_label_takes_its_look_back_as_period_days():
    from rxrepurchase.i18n import windowed

    new = windowed("user_repurchase_rate", "en", period_days=90)
    assert "90" in new and new != windowed("user_repurchase_rate", "en")  # per month without it
    with pytest.warns(FutureWarning, match=r"windowed\(days=\.\.\.\) is renamed windowed\(period_days="):
        assert windowed("user_repurchase_rate", "en", days=90) == new


def test_renamed_notebook_parameters_move_to_their_new_names():
    from rxrepurchase.reporting import PAGE_PARAMETERS, PARAMETER_RENAMES

    def spell(names):
        return "notebook parameter " + ", ".join(names)

    with pytest.warns(FutureWarning, match="notebook parameter refill_within_days is renamed "
                                           "notebook parameter refill_horizon_days"):
        moved = renamed_items({"refill_within_days": 7, "lang": "zh"}, PARAMETER_RENAMES, spell)
    assert moved == {"refill_horizon_days": 7, "lang": "zh"}
    assert set(PARAMETER_RENAMES.values()) <= set(PAGE_PARAMETERS)  # the page is computed with it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_items({"lang": "zh"}, PARAMETER_RENAMES, spell) == {"lang": "zh"}
