"""Customer-lifetime models: published CDNOW results through rxrepurchase's own data preparation,
recovery of simulated parameters, the penalizer ladder, checks, CLV, wake-up list, group fits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from cdnow import read_cdnow_sample
from lifetimes import BetaGeoFitter
from lifetimes.utils import ConvergenceError

from rxrepurchase.errors import ModelFitError
from rxrepurchase.models import (
    DAYS_PER_MONTH,
    BGNBDModel,
    GammaGammaModel,
    MBGNBDModel,
    ParetoNBDModel,
    customer_lifetime_value,
    fit_by_group,
    group_value_ranges,
    inverse_hessian,
    row_scores,
    score_members,
    simulate_bgnbd,
    value_draws,
    wake_up_list,
)
from rxrepurchase.plots import plot_clv_by_group
from rxrepurchase.rfm import RFMInputError, calibration_holdout, rfm_summary

CDNOW_COLUMNS = {"customer_col": "customer_id", "time_col": "date", "amount_col": "amount"}


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """lifetimes' raw CDNOW 1/10 sample: master id, sample id, date, number of CDs, dollars."""
    return read_cdnow_sample()


@pytest.fixture(scope="module")
def cdnow_cal(cdnow) -> pd.DataFrame:
    return calibration_holdout(cdnow, "1997-09-30", time_unit="weeks", **CDNOW_COLUMNS).calibration


@pytest.fixture(scope="module")
def cdnow_bg(cdnow_cal) -> BGNBDModel:
    return BGNBDModel().fit(cdnow_cal)


@pytest.fixture(scope="module")
def cdnow_gg(cdnow_cal) -> GammaGammaModel:
    return GammaGammaModel().fit(cdnow_cal)


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def test_cdnow_bgnbd_reproduces_published_results(cdnow_bg):
    # Fader, Hardie & Lee (2005), CDNOW 1/10 sample, 39-week calibration.
    params = cdnow_bg.params_
    assert [_sig(params[k]) for k in ["r", "alpha", "a", "b"]] == [0.243, 4.41, 0.793, 2.43]
    assert cdnow_bg.log_likelihood_ == pytest.approx(-9582.43, abs=0.005)
    assert cdnow_bg.n_members_ == 2357 and cdnow_bg.n_repeat_buyers_ == 946
    assert cdnow_bg.penalizer_coef_ == 0.0
    assert cdnow_bg.convergence_notes_ == ["converged without penalizer"]
    assert cdnow_bg.time_unit_ == "weeks"
    # Fitting on the ~1000 unique (x, t_x, T) rows is the same as on all 2357 members.
    assert cdnow_bg.n_unique_rows_ < 1100


def test_cdnow_gamma_gamma_reproduces_published_results(cdnow_gg):
    # Fader, Hardie & Lee (2005) / Hardie's note 025: 946 repeaters, mean repeat spend.
    params = cdnow_gg.params_
    assert (_sig(params["p"]), _sig(params["q"]), _sig(params["v"], 4)) == (6.25, 3.74, 15.44)
    assert cdnow_gg.n_members_ == 946
    assert len(cdnow_gg.nonpositive_monetary_) == 0
    # lifetimes' docs report a weak correlation (0.11) for CDNOW: no independence warning.
    assert cdnow_gg.frequency_monetary_corr_ == pytest.approx(0.1139, abs=5e-4)
    assert not any("independence" in note for note in cdnow_gg.notes_)


def test_cdnow_pareto_nbd_reproduces_published_results(cdnow_cal):
    # Fader, Hardie & Lee (2005) "A note on implementing the Pareto/NBD model in MATLAB":
    # r = 0.55, alpha = 10.58, s = 0.61, beta = 11.67, LL = -9595.0.
    model = ParetoNBDModel().fit(cdnow_cal)
    assert [round(model.params_[k], 2) for k in ["r", "alpha", "s", "beta"]] == [0.55, 10.58, 0.61, 11.67]
    assert model.log_likelihood_ == pytest.approx(-9595.0, abs=0.05)


def test_compressed_fit_equals_plain_lifetimes_fit(cdnow_cal, cdnow_bg):
    plain = BetaGeoFitter().fit(cdnow_cal["frequency"], cdnow_cal["recency"], cdnow_cal["T"])
    np.testing.assert_allclose(cdnow_bg.params_.to_numpy(), plain.params_.to_numpy(), rtol=1e-4)


def test_predictions_agree_with_lifetimes(cdnow_cal, cdnow_bg):
    fitter = cdnow_bg.fitter_
    f, r, T = (cdnow_cal[c].to_numpy() for c in ["frequency", "recency", "T"])
    np.testing.assert_allclose(
        cdnow_bg.predict_purchases(cdnow_cal, 39).to_numpy(),
        fitter.conditional_expected_number_of_purchases_up_to_time(39, f, r, T),
    )
    alive = cdnow_bg.probability_alive(cdnow_cal)
    # predictions are made once per distinct (frequency, recency, T) row and spread back
    np.testing.assert_allclose(alive.to_numpy(), fitter.conditional_probability_alive(f, r, T))
    durations = np.linspace(1, 39, len(cdnow_cal))  # a horizon per member, as in holdout checks
    np.testing.assert_allclose(
        cdnow_bg.predict_purchases(cdnow_cal, durations).to_numpy(),
        fitter.conditional_expected_number_of_purchases_up_to_time(durations, f, r, T),
    )
    assert (alive[cdnow_cal["frequency"] == 0] == 1).all()  # BG/NBD: no dropout before a repeat
    assert alive.index.equals(cdnow_cal.index)
    # Unconditional curve: E[X(0)] = 0, increasing.
    curve = cdnow_bg.expected_purchases([0, 10, 39, 78])
    assert curve[0] == 0 and np.all(np.diff(curve) > 0)


def _posterior_expected_purchases(params, t, x, tx, T):
    """E[purchases in (T, T+t] | x, tx, T] by integrating the BG/NBD posterior numerically.

    Given lambda and p and alive at T, E = (1 - exp(-lambda p t)) / p (Fader, Hardie & Lee
    2005, eq. 7); the lambda integrals are Gamma integrals in closed form, the p integral is
    done by quadrature with the Beta weight p^(a-1) (1-p)^(b-1).
    """
    from scipy.integrate import quad

    r, alpha, a, b = params
    k = r + x

    def alive(p):  # likelihood of (x, tx, T) with the member alive at T, lambda integrated out
        return (1 - p) ** x * (alpha + T) ** -k

    def numerator(p):
        if p == 0:  # the limit, should the quadrature touch the end point
            return k * t * (alpha + T) ** (-k - 1)
        return (1 - p) ** x * ((alpha + T) ** -k - (alpha + T + p * t) ** -k) / p

    def likelihood(p):
        dead = p * (1 - p) ** (x - 1) * (alpha + tx) ** -k if x > 0 else 0.0
        return alive(p) + dead

    weight = {"weight": "alg", "wvar": (a - 1, b - 1)}
    return quad(numerator, 0, 1, **weight)[0] / quad(likelihood, 0, 1, **weight)[0]


def test_expected_purchases_when_a_plus_b_is_below_one(cdnow_cal):
    # Fitted a + b < 1 is common in pharmacy data; lifetimes then returns NaN for members
    # without a repeat purchase (log of a negative hypergeometric term).
    params = (0.49158, 21.35794, 0.260983, 0.719562)
    model = BGNBDModel().fit(cdnow_cal)
    model.params_ = pd.Series(params, index=["r", "alpha", "a", "b"])
    members = pd.DataFrame(
        {"frequency": [0, 1, 5, 12], "recency": [0.0, 50.0, 150.0, 290.0], "T": [200.0, 200.0, 300.0, 300.0]}
    )
    got = model.predict_purchases(members, 30).to_numpy()
    expected = [_posterior_expected_purchases(params, 30, *row) for row in members.to_numpy()]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    lifetimes_fitter = BetaGeoFitter()
    lifetimes_fitter.params_ = model.params_
    assert np.isnan(lifetimes_fitter.conditional_expected_number_of_purchases_up_to_time(30, 0, 0, 200))


def test_mbgnbd_fits_cdnow_with_its_own_likelihood(cdnow_cal):
    model = MBGNBDModel().fit(cdnow_cal)
    # MBG/NBD nests BG/NBD's behaviour closely on CDNOW: the likelihoods are within 1 point.
    assert abs(model.log_likelihood_ - (-9582.43)) < 1.0
    alive = model.probability_alive(cdnow_cal)
    assert (alive[cdnow_cal["frequency"] == 0] < 1).all()  # MBG/NBD: one-time buyers may be gone
    # Its own conditional expectation (it used BG/NBD's, inherited: up to 2x off on CDNOW).
    lifetimes_values = model.fitter_.conditional_expected_number_of_purchases_up_to_time(
        39.0, cdnow_cal["frequency"], cdnow_cal["recency"], cdnow_cal["T"])
    np.testing.assert_allclose(model.predict_purchases(cdnow_cal, 39.0), lifetimes_values, rtol=1e-8)


def test_simulator_matches_closed_form_mean():
    truth = pd.Series({"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5})
    sim = simulate_bgnbd(100_000, T=30.0, seed=1, **truth)
    closed = BetaGeoFitter()
    closed.params_ = truth
    expected = closed.expected_number_of_purchases_up_to_time(30.0)  # eq. (9), about 1.10
    standard_error = sim["frequency"].std() / np.sqrt(len(sim))
    assert abs(sim["frequency"].mean() - expected) < 4 * standard_error
    assert (sim["recency"] <= sim["T"]).all() and (sim.loc[sim["frequency"] == 0, "recency"] == 0).all()


def test_bgnbd_recovers_simulated_parameters():
    truth = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    rng = np.random.default_rng(0)
    sim = simulate_bgnbd(20_000, T=rng.uniform(26, 39, 20_000), seed=0, **truth)
    model = BGNBDModel().fit(sim)
    errors = model.summary()["std_error"]
    for name, value in truth.items():
        assert abs(model.params_[name] - value) < 3 * errors[name], name
        assert model.params_[name] == pytest.approx(value, rel=0.15), name
    # P(alive) averages to the simulated share of members still active.
    assert model.probability_alive(sim).mean() == pytest.approx(sim["alive"].mean(), abs=0.01)


def test_simulator_records_its_time_unit_and_clv_needs_one(cdnow_cal, cdnow_gg):
    truth = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    weekly = simulate_bgnbd(3000, T=39.0, seed=2, time_unit="weeks", **truth)
    assert weekly.attrs["time_unit"] == "weeks"
    model = BGNBDModel().fit(weekly)
    assert model.time_unit_ == "weeks"
    # Expected purchases in the next 30 days are those of 30 / 7 weeks.
    scores = score_members(model, cdnow_gg, cdnow_cal.head(50), gross_margin=0.3, horizon_days=30)
    expected = model.predict_purchases(cdnow_cal.head(50), 30 / 7)
    np.testing.assert_allclose(scores["expected_purchases"], expected)
    # Without a unit, a CLV horizon in months cannot be converted: refused, not read as days.
    no_unit = weekly.copy()
    no_unit.attrs = {}
    unknown = BGNBDModel().fit(no_unit)
    with pytest.raises(RFMInputError, match="does not know its time unit"):
        customer_lifetime_value(unknown, cdnow_gg, cdnow_cal.head(5), gross_margin=0.3)
    with pytest.raises(RFMInputError, match="time_unit must be"):
        simulate_bgnbd(10, T=1.0, time_unit="months", **truth)


def test_gamma_gamma_recovers_simulated_parameters():
    p, q, v = 6.0, 4.0, 15.0
    rng = np.random.default_rng(2)
    n = 8000
    frequency = rng.integers(1, 8, n)
    nu = rng.gamma(q, 1 / v, n)  # per-member scale: spend per purchase ~ Gamma(p, rate nu)
    monetary = rng.gamma(p * frequency, 1 / nu) / frequency
    rfm = pd.DataFrame({"frequency": frequency, "monetary_value": monetary})
    model = GammaGammaModel().fit(rfm)
    for name, value in {"p": p, "q": q, "v": v}.items():
        assert model.params_[name] == pytest.approx(value, rel=0.15), name
    # Population mean spend p v / (q - 1) = 6 * 15 / 3 = 30 for a member with no repeats.
    fitted = model.params_
    newcomer = pd.DataFrame({"frequency": [0], "monetary_value": [0.0]})
    assert model.expected_spend(newcomer).iloc[0] == pytest.approx(
        fitted["p"] * fitted["v"] / (fitted["q"] - 1)
    )
    assert model.expected_spend(newcomer).iloc[0] == pytest.approx(30, rel=0.05)


def test_gamma_gamma_rejects_undefined_mean_spend():
    # Simulated with q = 0.6 < 1: the population mean p v / (q - 1) does not exist.
    rng = np.random.default_rng(0)
    frequency = rng.integers(1, 5, 3000)
    nu = rng.gamma(0.6, 1 / 10, 3000)
    monetary = rng.gamma(5 * frequency, 1 / nu) / frequency
    with pytest.raises(ModelFitError, match=r"fitted q = 0.\d+ <= 1, so the mean spend is undefined"):
        GammaGammaModel().fit(pd.DataFrame({"frequency": frequency, "monetary_value": monetary}))


def test_gamma_gamma_surfaces_correlation_and_nonpositive_spend():
    rng = np.random.default_rng(4)
    n = 2000
    frequency = rng.integers(1, 10, n)
    monetary = 10 * frequency * rng.gamma(20, 1 / 20, n)  # spend grows with frequency
    rfm = pd.DataFrame(
        {"frequency": frequency, "monetary_value": monetary}, index=pd.Index([f"m{i}" for i in range(n)])
    )
    rfm.iloc[:3, 1] = [0.0, -5.0, 0.0]  # fully subsidised / refunded repeat purchases
    model = GammaGammaModel().fit(rfm)
    assert list(model.nonpositive_monetary_) == ["m0", "m1", "m2"]
    assert model.n_members_ == n - 3
    assert model.frequency_monetary_corr_ > 0.5
    assert any("independence assumption" in note for note in model.notes_)
    assert any("3 repeat buyers with mean repeat value <= 0" in note for note in model.notes_)
    assert model.summary().attrs["nonpositive_monetary"] == 3


class _FailsUnpenalized(BetaGeoFitter):
    """A fitter that does not converge without a penalizer, like lifetimes on awkward data."""

    def fit(self, *args, **kwargs):
        if self.penalizer_coef < 0.01:
            raise ConvergenceError("The model did not converge.")
        return super().fit(*args, **kwargs)


class _FlakyBGNBD(BGNBDModel):
    _fitter_class = _FailsUnpenalized


def test_penalizer_ladder_retries_and_says_so(cdnow_cal):
    model = _FlakyBGNBD().fit(cdnow_cal)
    assert model.penalizer_coef_ == 0.01  # 0 and 0.001 failed; the next rung worked
    assert model.convergence_notes_[0].startswith("penalizer 0: did not converge")
    assert model.convergence_notes_[1].startswith("penalizer 0.001: did not converge")
    assert "fitted with penalizer 0.01" in model.convergence_notes_[2]
    with pytest.raises(ModelFitError, match=r"did not converge with any penalizer in \[0.0, 0.001\]"):
        _FlakyBGNBD(penalizer_ladder=(0.0, 0.001)).fit(cdnow_cal)


class _NaNLikelihoodUnpenalized(BGNBDModel):
    """A fit whose log-likelihood is NaN without penalizer (as lifetimes' Pareto/NBD gave on a
    real chain, noted as 'converged')."""

    def _log_likelihood(self, f, r, t, weights) -> float:
        return np.nan if self.fitter_.penalizer_coef == 0 else super()._log_likelihood(f, r, t, weights)


class _NaNForFrequentBuyers(BGNBDModel):
    def _conditional_purchases(self, t, frequency, recency, T):
        return np.where(frequency >= 10, np.nan, super()._conditional_purchases(t, frequency, recency, T))


def test_non_finite_likelihood_or_predictions_are_failures_with_reasons(cdnow_cal):
    model = _NaNLikelihoodUnpenalized().fit(cdnow_cal)
    assert model.convergence_notes_[0] == "penalizer 0: the log-likelihood is nan"
    assert model.penalizer_coef_ == 0.001 and np.isfinite(model.log_likelihood_)
    frequent = int((cdnow_cal["frequency"] >= 10).sum())
    with pytest.raises(ModelFitError, match=f"penalizer 0: predictions are not finite for {frequent} "
                                            "of 2357 members \\(e.g. frequency 1"):
        _NaNForFrequentBuyers().fit(cdnow_cal)
    failed = _NaNForFrequentBuyers()
    with pytest.raises(ModelFitError):
        failed.fit(cdnow_cal)
    assert not hasattr(failed, "params_")  # a failed fit leaves no half-fitted model


def test_too_few_repeat_buyers_is_a_clear_error(cdnow_cal):
    few = pd.concat([cdnow_cal[cdnow_cal["frequency"] > 0].head(5), cdnow_cal[cdnow_cal["frequency"] == 0]])
    with pytest.raises(ModelFitError, match="only 5 of 1416 members made a repeat purchase; at least 30"):
        BGNBDModel().fit(few)
    with pytest.raises(ModelFitError, match="only 5 repeat buyers with positive spend"):
        GammaGammaModel().fit(few)


def test_bad_rfm_inputs_are_named(cdnow_cal, cdnow_bg):
    with pytest.raises(RFMInputError, match="no column 'T'"):
        BGNBDModel().fit(cdnow_cal.drop(columns="T"))
    broken = cdnow_cal.copy()
    broken.loc["0002", "recency"] = 100.0
    with pytest.raises(RFMInputError, match="recency <= T.*0002"):
        BGNBDModel().fit(broken)
    days = cdnow_cal.copy()
    days.attrs = {**cdnow_cal.attrs, "time_unit": "days"}
    with pytest.raises(RFMInputError, match="fitted in weeks but this RFM summary is in days"):
        cdnow_bg.predict_purchases(days, 10)
    with pytest.raises(ModelFitError, match="not fitted yet"):
        BGNBDModel().probability_alive(cdnow_cal)


def test_clv_hand_computed_from_monthly_expected_purchases(cdnow_cal, cdnow_bg, cdnow_gg):
    members = cdnow_cal.loc[["0001", "0002", "0003"]]
    month = DAYS_PER_MONTH / 7  # weeks in a month: 4.348
    x1 = cdnow_bg.predict_purchases(members, month).to_numpy()
    x2 = cdnow_bg.predict_purchases(members, 2 * month).to_numpy()
    spend = cdnow_gg.expected_spend(members).to_numpy()
    # 2 months at 1%/month, 30% margin: 0.3 * spend * (X1 / 1.01 + (X2 - X1) / 1.01**2).
    expected = 0.3 * spend * (x1 / 1.01 + (x2 - x1) / 1.01**2)
    clv = customer_lifetime_value(
        cdnow_bg, cdnow_gg, members, gross_margin=0.3, horizon_months=2, monthly_discount_rate=0.01
    )
    np.testing.assert_allclose(clv.to_numpy(), expected)
    # Without discounting the monthly increments add up to the 12-month expectation.
    undiscounted = customer_lifetime_value(
        cdnow_bg, cdnow_gg, members, gross_margin=1.0, horizon_months=12, monthly_discount_rate=0.0
    )
    np.testing.assert_allclose(
        undiscounted.to_numpy(), spend * cdnow_bg.predict_purchases(members, 12 * month).to_numpy()
    )
    with pytest.raises(RFMInputError, match="gross_margin"):
        customer_lifetime_value(cdnow_bg, cdnow_gg, members, gross_margin=30)


def test_score_members_columns(cdnow_cal, cdnow_bg, cdnow_gg):
    scores = score_members(cdnow_bg, cdnow_gg, cdnow_cal, gross_margin=0.3, horizon_days=70)
    assert list(scores.columns[:6]) == ["p_alive", "expected_purchases", "next_purchase_days",
                                        "next_purchase_on", "expected_spend", "clv"]
    np.testing.assert_allclose(
        scores["expected_purchases"].to_numpy(), cdnow_bg.predict_purchases(cdnow_cal, 10).to_numpy()
    )  # 70 days = 10 weeks
    assert (scores["clv"] >= 0).all()


def test_the_old_days_keyword_warns_and_gives_the_same_figures(cdnow_cal, cdnow_bg, cdnow_gg):
    few = cdnow_cal.head(400)
    calls = {
        "score_members": lambda **k: score_members(cdnow_bg, cdnow_gg, few, gross_margin=0.3, **k),
        "row_scores": lambda **k: row_scores(cdnow_bg, few[["frequency", "recency", "T"]], **k),
        "group_value_ranges": lambda **k: group_value_ranges(
            cdnow_bg, cdnow_gg, few, pd.Series("all", index=few.index), gross_margin=0.3,
            n_draws=5, **k),
        "fit_by_group": lambda **k: fit_by_group(few, pd.Series("all", index=few.index),
                                                 gross_margin=0.3, **k).scores,
    }
    for name, call in calls.items():
        new = call(horizon_days=70)
        with pytest.warns(FutureWarning, match=rf"{name}\(days=\.\.\.\) is renamed {name}\(horizon_days="):
            old = call(days=70)
        pd.testing.assert_frame_equal(old, new)
    # 70 days are 10 weeks of the weekly CDNOW fit; the horizon is recorded under its new name.
    np.testing.assert_allclose(calls["score_members"](horizon_days=70)["expected_purchases"],
                               cdnow_bg.predict_purchases(few, 10))
    assert calls["score_members"](horizon_days=70).attrs["horizon_days"] == 70


def test_wake_up_list_flags_valuable_members_going_quiet(cdnow, cdnow_bg, cdnow_gg):
    listed = wake_up_list(
        cdnow,
        cdnow_bg,
        cdnow_gg,
        as_of="1997-09-30",
        lookback_days=91,
        gross_margin=0.3,
        top_share=0.2,
        min_drop=0.2,
        **CDNOW_COLUMNS,
    )
    before = rfm_summary(cdnow, as_of="1997-07-01", time_unit="weeks", **CDNOW_COLUMNS)
    now = rfm_summary(cdnow, as_of="1997-09-30", time_unit="weeks", **CDNOW_COLUMNS).loc[before.index]
    drop = cdnow_bg.probability_alive(before) - cdnow_bg.probability_alive(now)
    value = customer_lifetime_value(cdnow_bg, cdnow_gg, before, gross_margin=0.3)
    top = value.rank(ascending=False, method="first") <= np.ceil(0.2 * len(value))
    assert set(listed.index) == set(value.index[top & (drop >= 0.2)])
    assert len(listed) > 10
    assert listed["value_at_risk"].is_monotonic_decreasing
    assert (listed["p_alive_drop"] >= 0.2).all()
    np.testing.assert_allclose(listed["p_alive_drop"], drop[listed.index])
    # Most went quiet for the whole 91 days; days since last purchase count to 1997-09-30.
    assert (listed["last_purchase"] <= pd.Timestamp("1997-07-01")).mean() > 0.5
    assert (listed["days_since_last_purchase"] == (pd.Timestamp("1997-09-30") - listed["last_purchase"]).dt.days).all()
    # Ranges of today's figures from parameter uncertainty, around the estimates.
    assert (listed["p_alive_now_low"] <= listed["p_alive_now"]).all()
    assert (listed["p_alive_now"] <= listed["p_alive_now_high"]).all()
    assert (listed["clv_now_low"] < listed["clv_now"]).all() and (listed["clv_now"] < listed["clv_now_high"]).all()
    assert list(listed.columns[:5]) == ["p_alive_before", "p_alive_now", "p_alive_now_low",
                                        "p_alive_now_high", "p_alive_drop"]


def test_next_purchase_date_by_hand(cdnow_cal, cdnow_bg, cdnow_gg):
    scores = score_members(cdnow_bg, cdnow_gg, cdnow_cal, gross_margin=0.3)
    r, alpha = cdnow_bg.params_["r"], cdnow_bg.params_["alpha"]
    row = cdnow_cal.iloc[0]
    # Given alive, the rate ~ Gamma(r + x, alpha + T): half the time no purchase within
    # (alpha + T) (2 ** (1 / (r + x)) - 1) weeks.
    weeks = (alpha + row["T"]) * (2 ** (1 / (r + row["frequency"])) - 1)
    assert scores["next_purchase_days"].iloc[0] == pytest.approx(7 * weeks)
    assert scores["next_purchase_on"].iloc[0] == pd.Timestamp("1997-09-30") + pd.Timedelta(
        days=int(np.ceil(7 * weeks)))
    # Frequent buyers are expected back sooner.
    by_frequency = scores.groupby(cdnow_cal["frequency"].clip(upper=5))["next_purchase_days"].median()
    assert by_frequency.is_monotonic_decreasing


def test_score_ranges_narrow_with_more_members(cdnow_gg):
    truth = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    sim = simulate_bgnbd(40_000, T=39.0, seed=4, time_unit="weeks", **truth)
    members = sim[sim["frequency"] > 0].head(200).assign(monetary_value=30.0)
    widths = {}
    for n in (2_500, 40_000):
        model = BGNBDModel().fit(sim.head(n))
        scores = score_members(model, cdnow_gg, members, gross_margin=0.3, intervals=True, n_draws=60)
        for name in ("p_alive", "expected_purchases", "clv"):
            inside = (scores[f"{name}_low"] <= scores[name]) & (scores[name] <= scores[f"{name}_high"])
            assert inside.mean() > 0.95, name
        widths[n] = (scores["clv_high"] - scores["clv_low"]).median()
    assert list(scores.columns[:4]) == ["p_alive", "p_alive_low", "p_alive_high", "expected_purchases"]
    # 16 times the members: about a quarter of the width (1 / sqrt(16)).
    assert 2.5 < widths[2_500] / widths[40_000] < 6


def test_group_value_ranges_come_from_the_same_draws_as_the_members(cdnow_cal, cdnow_bg, cdnow_gg):
    value = {"gross_margin": 0.3, "horizon_days": 30, "n_draws": 40, "seed": 2}
    scores = score_members(cdnow_bg, cdnow_gg, cdnow_cal, intervals=True, **value)
    # One group of everyone: its total's range is score_members' total range, draw for draw.
    everyone = pd.Series("all", index=cdnow_cal.index, name="group")
    whole = group_value_ranges(cdnow_bg, cdnow_gg, cdnow_cal, everyone, **value)
    assert whole.loc["all", "members"] == len(cdnow_cal)
    assert whole.loc["all", "clv_total_low"] == pytest.approx(scores.attrs["clv_total_low"])
    assert whole.loc["all", "clv_total_high"] == pytest.approx(scores.attrs["clv_total_high"])
    # Per group: the estimates lie in their group's range; the mean's range is the total's
    # over the group's members.
    groups = pd.Series(np.where(cdnow_cal["frequency"] > 0, "repeat", "one_off"),
                       index=cdnow_cal.index, name="buyers")
    table = group_value_ranges(cdnow_bg, cdnow_gg, cdnow_cal, groups, **value)
    assert table.index.name == "buyers" and table["members"].sum() == len(cdnow_cal)
    point = scores.groupby(groups).agg(clv_total=("clv", "sum"), p_alive=("p_alive", "mean"))
    for group in ("repeat", "one_off"):
        row = table.loc[group]
        assert row["clv_total_low"] < point.at[group, "clv_total"] < row["clv_total_high"]
        # (BG/NBD: a member without a repeat purchase is alive for sure, in every draw.)
        assert row["p_alive_low"] <= point.at[group, "p_alive"] <= row["p_alive_high"]
        assert row["clv_mean_high"] * row["members"] == pytest.approx(row["clv_total_high"])
    with pytest.raises(RFMInputError, match="groups has no entry for 2 member"):
        group_value_ranges(cdnow_bg, cdnow_gg, cdnow_cal, groups.iloc[2:], **value)
    # Draws made once and shared give exactly what each call draws on its own.
    draws = value_draws(cdnow_bg, cdnow_gg, cdnow_cal, **value)
    pd.testing.assert_frame_equal(
        score_members(cdnow_bg, cdnow_gg, cdnow_cal, intervals=True, draws=draws, **value), scores,
        check_exact=True)
    pd.testing.assert_frame_equal(
        group_value_ranges(cdnow_bg, cdnow_gg, cdnow_cal, groups, draws=draws, **value), table, check_exact=True)
    # ... and are refused for other settings, members or models.
    with pytest.raises(RFMInputError, match="other settings.*seed 2, 3"):
        group_value_ranges(cdnow_bg, cdnow_gg, cdnow_cal, groups, draws=draws, **{**value, "seed": 3})
    with pytest.raises(RFMInputError, match="other members"):
        score_members(cdnow_bg, cdnow_gg, cdnow_cal.iloc[::-1], intervals=True, draws=draws, **value)
    with pytest.raises(RFMInputError, match="other models"):
        score_members(BGNBDModel().fit(cdnow_cal), cdnow_gg, cdnow_cal, intervals=True, draws=draws, **value)
    with pytest.raises(RFMInputError, match="only used with intervals=True"):
        score_members(cdnow_bg, cdnow_gg, cdnow_cal, draws=draws, **value)


def test_pareto_nbd_ranges_from_the_numerical_hessian(cdnow_cal, cdnow_bg, cdnow_gg):
    # The numerical inverse Hessian agrees with lifetimes' own covariance of BG/NBD on CDNOW.
    (f, r, t) = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    weights = np.ones(len(f))

    def bg_nll(params):
        return BetaGeoFitter._negative_log_likelihood(np.log(params), f, r, t, weights, 0.0) * len(f)

    covariance, notes = inverse_hessian(bg_nll, cdnow_bg.params_.to_numpy(), list("rxab"))
    np.testing.assert_allclose(np.diag(covariance), np.diag(cdnow_bg.parameter_covariance()),
                               rtol=0.05)
    assert notes == []
    # Pareto/NBD (no Hessian in lifetimes) gets one: standard errors and member ranges.
    pareto = ParetoNBDModel().fit(cdnow_cal)
    std_error = pareto.summary()["std_error"]
    assert np.isfinite(std_error).all() and (std_error < pareto.params_).all()
    scores = score_members(pareto, cdnow_gg, cdnow_cal, gross_margin=0.3, intervals=True, n_draws=40)
    for name in ("p_alive", "expected_purchases", "clv"):
        low, high = scores[f"{name}_low"], scores[f"{name}_high"]
        assert ((low <= scores[name] + 1e-9) & (scores[name] <= high + 1e-9)).mean() > 0.95, name
        assert (high > low).mean() > 0.9, name
    assert scores["p_alive_high"].max() <= 1.0


def test_fit_by_group_side_by_side(cdnow_cal):
    labels = pd.Series(
        np.where(cdnow_cal["monetary_value"] > 40, "big_spenders", "others"), index=cdnow_cal.index
    )
    fits = fit_by_group(cdnow_cal, labels, gross_margin=0.3)
    others = cdnow_cal[labels == "others"]
    direct = BGNBDModel().fit(others)
    np.testing.assert_allclose(
        fits.params.loc["others", ["r", "alpha", "a", "b"]].to_numpy(float), direct.params_.to_numpy(), rtol=1e-6
    )
    assert fits.params.loc["others", "error"] == ""
    assert fits.params.loc["others", "n_members"] == len(others)
    distribution = fits.clv_distribution()
    assert distribution.loc["others", "members"] == len(others)
    assert list(distribution.columns[:5]) == ["q10", "q25", "q50", "q75", "q90"]
    assert plot_clv_by_group(fits).get_title() == "CLV by group"


def test_fit_by_group_reports_unfittable_groups(cdnow_cal):
    labels = pd.Series("main", index=cdnow_cal.index)
    labels.iloc[:40] = "tiny"  # 40 members, far fewer than 30 repeat buyers
    fits = fit_by_group(cdnow_cal, labels)
    assert "only" in fits.params.loc["tiny", "error"]
    assert np.isnan(fits.params.loc["tiny", "r"])
    assert fits.params.loc["main", "error"] == ""
    assert set(fits.models) == {"main"}
    with pytest.raises(RFMInputError, match="no group label"):
        fit_by_group(cdnow_cal, labels.iloc[1:])


def test_fit_by_group_per_store_index_level(cdnow):
    stores = cdnow.assign(store_id=np.where(cdnow["customer_id"].str[-1].isin(list("01234")), "S1", "S2"))
    rfm = rfm_summary(stores, as_of="1997-09-30", time_unit="weeks", by="store_id", **CDNOW_COLUMNS)
    fits = fit_by_group(rfm, "store_id")
    assert list(fits.params.index) == ["S1", "S2"]
    s2 = rfm.xs("S2", level="store_id")
    np.testing.assert_allclose(
        fits.params.loc["S2", ["r", "alpha", "a", "b"]].to_numpy(float),
        BGNBDModel().fit(s2).params_.to_numpy(),
        rtol=1e-6,
    )
    assert fits.params["n_members"].sum() == 2357
    with pytest.raises(RFMInputError, match="no level 'region'"):
        fit_by_group(rfm, "region")


def test_demo_chain_loyal_members_match_their_simulated_truth():
    from rxrepurchase.demo import DemoConfig, generate_demo_chain

    chain = generate_demo_chain(DemoConfig(n_members=20_000))
    truth = chain.truth.set_index("member_id")
    general = truth.index[truth["archetype"] == "loyal_general"]  # pure BG/NBD members
    orders = chain.orders[chain.orders["member_id"].isin(general)]
    rfm = rfm_summary(orders, as_of=chain.truth_params["period"]["end"])
    model = BGNBDModel().fit(rfm)
    true = chain.truth_params["archetypes"]["loyal_general"]["bgnbd_days"]
    assert model.params_["r"] == pytest.approx(true["r"], rel=0.15)
    # Mean purchase rate r / alpha: same-day purchases merge, which lowers it by ~5% here.
    rate = model.params_["r"] / model.params_["alpha"]
    assert rate == pytest.approx(true["r"] / true["alpha"], rel=0.15)
    # P(alive) averages to the share of these members who had not dropped out by the end.
    alive = truth.loc[rfm.index, "dropped_out_at"].isna().mean()
    assert model.probability_alive(rfm).mean() == pytest.approx(alive, abs=0.03)

