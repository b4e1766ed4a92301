"""MBG/CNBD-k: recovery on its own simulator, k = 1 against MBG/NBD, predictions vs truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cdnow import read_cdnow_sample

from rxrepurchase.errors import ModelFitError
from rxrepurchase.mbgcnbd import MBGCNBDModel, mbgcnbd_log_likelihood, simulate_mbgcnbd
from rxrepurchase.models import MBGNBDModel
from rxrepurchase.rfm import RFMInputError, calibration_holdout

TRUTH = {"r": 1.2, "alpha": 3.0, "a": 0.8, "b": 3.0}


@pytest.fixture(scope="module")
def recovered():
    fits = {}
    for k in (1, 2, 3):
        for seed in (0, 1):
            sim = simulate_mbgcnbd(2500, k=k, **TRUTH, T=52, seed=seed)
            fits[k, seed] = sim, MBGCNBDModel(max_k=4).fit(sim)
    return fits


def test_recovers_k_and_parameters_within_their_95_percent_intervals(recovered):
    inside = []
    for (k, _), (_sim, model) in recovered.items():
        assert model.params_["k"] == k  # the grid finds the true regularity
        assert model.time_unit_ == "weeks"
        for name, true in TRUTH.items():
            estimate, se = model.params_[name], model.standard_errors_[name]
            assert 0 < se < 0.25 * true
            inside.append(abs(estimate - true) <= 1.96 * se)
    # 24 intervals of 95%: all inside (measured); a binomial allowance of one miss.
    assert sum(inside) >= len(inside) - 1


def test_probability_alive_matches_the_simulated_truth(recovered):
    for sim, model in recovered.values():
        p_alive = model.probability_alive(sim)
        assert p_alive.mean() == pytest.approx(sim["alive"].mean(), abs=0.03)
        # Members who are alive score higher than those who left.
        assert p_alive[sim["alive"]].mean() > p_alive[~sim["alive"]].mean() + 0.2


def test_unconditional_expectation_matches_simulation(recovered):
    sim, model = recovered[2, 0]
    longer = simulate_mbgcnbd(20000, k=2, **TRUTH, T=30, seed=9)
    assert model.expected_purchases(30.0) == pytest.approx(longer["frequency"].mean(), rel=0.05)
    np.testing.assert_allclose(model.expected_purchases(np.array([0.0, -1.0])), [0.0, 0.0])


def test_k1_is_mbgnbd_on_cdnow():
    raw = read_cdnow_sample()
    split = calibration_holdout(raw, "1997-09-30", time_unit="weeks", customer_col="customer_id",
                                time_col="date", amount_col="amount")
    ours = MBGCNBDModel(k=1).fit(split.calibration)
    mbg = MBGNBDModel().fit(split.calibration)
    # The same model: same likelihood, parameters and predictions.
    assert ours.log_likelihood_ == pytest.approx(mbg.log_likelihood_, abs=0.05)
    for name in ("r", "alpha", "a", "b"):
        assert ours.params_[name] == pytest.approx(mbg.params_[name], rel=0.02)
    np.testing.assert_allclose(ours.probability_alive(split.calibration),
                               mbg.probability_alive(split.calibration), atol=0.01)
    np.testing.assert_allclose(ours.predict_purchases(split.calibration, 39.0),
                               mbg.predict_purchases(split.calibration, 39.0), rtol=0.03, atol=0.01)
    np.testing.assert_allclose(ours.time_to_next_purchase(split.calibration),
                               mbg.time_to_next_purchase(split.calibration), rtol=0.03)
    # On CDNOW the grid keeps k = 1 (BTYDplus's vignette finds the same).
    assert MBGCNBDModel(max_k=4).fit(split.calibration).params_["k"] == 1


def test_log_likelihood_by_hand_for_one_member():
    # k = 2, one repeat purchase at t = 2 of T = 5, litt = log 2. By the paper's formula:
    k, r, alpha, a, b = 2, 1.0, 2.0, 1.0, 2.0
    x, tx, T, litt = 1.0, 2.0, 5.0, np.log(2.0)
    from scipy.special import betaln, gammaln

    base = ((k - 1) * litt - x * gammaln(k) + betaln(a, b + x + 1) - betaln(a, b)
            + gammaln(r + k * x) - gammaln(r) + r * np.log(alpha) - (r + k * x) * np.log(alpha + T))
    alive = 1 + (r + k * x) * (T - tx) / (alpha + T)
    dropped = a / (b + x) * ((alpha + T) / (alpha + tx)) ** (r + k * x)
    expected = base + np.log(alive + dropped)
    got = mbgcnbd_log_likelihood(k, r, alpha, a, b, [x], [tx], [T], [litt])[0]
    assert got == pytest.approx(expected)


def test_bad_inputs_are_named():
    sim = simulate_mbgcnbd(300, k=1, **TRUTH, T=52, seed=0)
    with pytest.raises(RFMInputError, match="no column 'litt'"):
        MBGCNBDModel().fit(sim.drop(columns="litt"))
    with pytest.raises(RFMInputError, match="k must be a whole number"):
        MBGCNBDModel(k=0).fit(sim)
    with pytest.raises(ModelFitError, match="at least 30"):
        MBGCNBDModel().fit(sim[sim["frequency"] == 0].head(50).pipe(
            lambda d: pd.concat([d, sim[sim["frequency"] > 0].head(3)])))
    with pytest.raises(RFMInputError, match="time_unit"):
        simulate_mbgcnbd(10, k=1, **TRUTH, T=52, time_unit="months")
