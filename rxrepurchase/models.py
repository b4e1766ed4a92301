"""Customer-lifetime models: BG/NBD, MBG/NBD and Pareto/NBD purchase models, Gamma-Gamma spend,
CLV, the wake-up list of lapsing valuable members, and side-by-side fits per cohort or store.

The fitters are lifetimes' (``BetaGeoFitter``, ``ModifiedBetaGeoFitter``, ``ParetoNBDFitter``,
``GammaGammaFitter``); the data preparation is :mod:`rxrepurchase.rfm`. Fitting runs on the
unique ``(frequency, recency, T)`` rows with ``weights=`` (the likelihood is identical, and a
store of millions of members has only tens of thousands of distinct rows).

Convergence: a fit is first tried with the model's ``penalizer_coef`` and, if lifetimes does not
converge (or returns non-finite parameters), retried with each larger coefficient of
``penalizer_ladder`` (default :data:`PENALIZER_LADDER`). ``convergence_notes_`` says what
happened; a penalized fit is biased toward small parameters, so the note says so too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.utils import ConvergenceError
from scipy.special import hyp2f1
from statsmodels.tools.numdiff import approx_hess3

from rxrepurchase.arguments import TIME_UNITS, check_unit
from rxrepurchase.errors import ModelFitError, RFMInputError
from rxrepurchase.fit_data import (
    compress,
    distinct_rows,
    rfm_arrays,
    row_weights,
    silenced,
    time_unit_of,
)
from rxrepurchase.renames import renamed_keywords
from rxrepurchase.rfm import rfm_summary

__all__ = [
    "DAYS_PER_MONTH",
    "MIN_REPEAT_BUYERS",
    "PENALIZER_LADDER",
    "BGNBDModel",
    "GammaGammaModel",
    "GroupFits",
    "MBGNBDModel",
    "ParetoNBDModel",
    "PurchaseModel",
    "ValueDraws",
    "customer_lifetime_value",
    "fit_by_group",
    "group_value_ranges",
    "inverse_hessian",
    "row_scores",
    "score_members",
    "score_table",
    "simulate_bgnbd",
    "value_draws",
    "wake_up_list",
]

PENALIZER_LADDER: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1, 1.0)
"""L2 penalizer coefficients tried in turn when a fit does not converge."""

MIN_REPEAT_BUYERS = 30
"""Fewest members with a repeat purchase a model is fitted on (fewer: :class:`ModelFitError`)."""

DAYS_PER_MONTH = 365.25 / 12
"""Month length used by CLV horizons and monthly discounting."""

_FIT_ERRORS = (ConvergenceError, ValueError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError)


def _fit_with_ladder(model, fit_once, problem=None) -> tuple[object, float, list[str]]:
    """Try ``fit_once(penalizer)`` up the ladder; return (fitter, penalizer used, notes).

    A fit whose parameters are not finite and positive, or for which ``problem(fitter)``
    names a reason (a non-finite log-likelihood or predictions), is a failure: the next
    penalizer is tried and the reason is noted."""
    ladder = [model.penalizer_coef] + [p for p in model.penalizer_ladder if p > model.penalizer_coef]
    notes: list[str] = []
    for penalizer in ladder:
        try:
            fitter = silenced(fit_once, penalizer)
        except _FIT_ERRORS as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            notes.append(f"penalizer {penalizer:g}: did not converge ({reason})")
            continue
        params = np.asarray(fitter.params_, dtype=np.float64)
        if not np.all(np.isfinite(params)) or np.any(params <= 0):
            notes.append(f"penalizer {penalizer:g}: non-finite or non-positive parameters")
            continue
        reason = silenced(problem, fitter) if problem is not None else None
        if reason:
            notes.append(f"penalizer {penalizer:g}: {reason}")
            continue
        if notes:
            notes.append(
                f"fitted with penalizer {penalizer:g} after the smaller ones failed; "
                "parameters are shrunk toward 0, read them with care"
            )
        elif penalizer > 0:
            notes.append(f"fitted with the requested penalizer {penalizer:g}")
        else:
            notes.append("converged without penalizer")
        return fitter, penalizer, notes
    raise ModelFitError(
        f"{type(model).__name__} did not converge with any penalizer in {ladder}: "
        + "; ".join(notes)
    )


def inverse_hessian(negative_log_likelihood, params: np.ndarray,
                    names: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Covariance of maximum-likelihood estimates: the inverse of the numerical Hessian
    (statsmodels ``approx_hess3``) of ``negative_log_likelihood`` at ``params``, and notes
    (a singular Hessian gives NaN and says so)."""
    hessian = approx_hess3(np.asarray(params, dtype=np.float64), negative_log_likelihood)
    hessian = (hessian + hessian.T) / 2  # numerical differences are not exactly symmetric
    try:
        covariance, notes = np.linalg.inv(hessian), []
    except np.linalg.LinAlgError:
        covariance, notes = np.full(hessian.shape, np.nan), ["singular Hessian: no standard errors"]
    return pd.DataFrame(covariance, index=names, columns=names), notes


class PurchaseModel:
    """Base class of the repeat-purchase models: fit on an RFM summary, then predict per member
    (scikit-learn style). Subclasses name their lifetimes fitter and parameters."""

    _fitter_class: type
    param_names: tuple[str, ...]

    def __init__(
        self,
        penalizer_coef: float = 0.0,
        *,
        penalizer_ladder: tuple[float, ...] = PENALIZER_LADDER,
        min_repeat_buyers: int = MIN_REPEAT_BUYERS,
    ) -> None:
        self.penalizer_coef = penalizer_coef
        self.penalizer_ladder = penalizer_ladder
        self.min_repeat_buyers = min_repeat_buyers

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}(penalizer_coef={self.penalizer_coef})"
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"<{type(self).__name__} fitted on {self.n_members_} members: {params}>"

    def _lifetimes_fit(self, fitter, frequency, recency, T, weights):
        return fitter.fit(frequency, recency, T, weights=weights)

    def fit(self, rfm: pd.DataFrame, *, weights=None) -> PurchaseModel:
        """Fit on an RFM summary (columns ``frequency``, ``recency``, ``T``).

        ``weights`` (a column name or one value per row) counts each row as that many
        members: the distinct rows of :func:`rxrepurchase.core.fit_rows.fit_rows` with
        ``weights="members"`` give the fit on every member.

        Raises
        ------
        ModelFitError
            Fewer than ``min_repeat_buyers`` members with a repeat purchase, or no convergence
            anywhere on the penalizer ladder.
        """
        frequency, recency, T = rfm_arrays(rfm, ("frequency", "recency", "T"))
        w = row_weights(rfm, weights)
        n_members = len(frequency) if w is None else int(round(w.sum()))
        repeat_buyers = int((frequency > 0).sum()) if w is None else int(round(w[frequency > 0].sum()))
        if repeat_buyers < self.min_repeat_buyers:
            raise ModelFitError(
                f"{type(self).__name__}: only {repeat_buyers} of {n_members} members made a "
                f"repeat purchase; at least {self.min_repeat_buyers} are needed to fit"
            )
        if not (T > 0).any():
            raise ModelFitError(f"{type(self).__name__}: every member has T = 0")
        (f, r, t), weights = compress(frequency, recency, T, weights=w)
        try:
            fitter, penalizer, notes = _fit_with_ladder(
                self,
                lambda pen: self._lifetimes_fit(self._fitter_class(penalizer_coef=pen), f, r, t, weights),
                lambda fitter: self._unusable(fitter, f, r, t, weights),
            )
        except ModelFitError:
            for name in ("fitter_", "params_"):  # left by the failed trials: not a fitted model
                self.__dict__.pop(name, None)
            raise
        self._use(fitter)
        self.penalizer_coef_ = penalizer
        self.convergence_notes_ = notes
        self.n_members_ = n_members
        self.n_repeat_buyers_ = repeat_buyers
        self.n_unique_rows_ = len(weights)
        self.time_unit_ = time_unit_of(rfm)
        self.log_likelihood_ = float(self._log_likelihood(f, r, t, weights))
        self._fit_uncertainty(f, r, t, weights)
        return self

    def _fit_uncertainty(self, f, r, t, weights) -> None:
        """lifetimes' fitters keep their own Hessian (``parameter_covariance``)."""

    def _use(self, fitter) -> None:
        self.fitter_ = fitter
        self.params_ = pd.Series(
            np.asarray(fitter.params_, dtype=np.float64), index=list(self.param_names), name=type(self).__name__
        )

    def _unusable(self, fitter, f, r, t, weights) -> str | None:
        """Why a converged fit cannot be used: a non-finite log-likelihood, or non-finite
        P(alive) or expected purchases (over the longest T) for members of the data; None if
        it can."""
        self._use(fitter)
        ll = self._log_likelihood(f, r, t, weights)
        if not np.isfinite(ll):
            return f"the log-likelihood is {ll}"
        p_alive = np.asarray(fitter.conditional_probability_alive(f, r, t), dtype=np.float64)
        purchases = self._conditional_purchases(float(t.max()), f, r, t)
        bad = ~(np.isfinite(p_alive) & np.isfinite(purchases))
        if bad.any():
            i = np.flatnonzero(bad)[0]
            return (f"predictions are not finite for {int(weights[bad].sum())} of "
                    f"{int(weights.sum())} members (e.g. frequency {f[i]:g}, recency {r[i]:g}, "
                    f"T {t[i]:g})")
        return None

    def _log_likelihood(self, f, r, t, weights) -> float:
        """Log-likelihood of the fitted parameters on the unscaled data, without penalty."""
        nll = self._fitter_class._negative_log_likelihood(
            np.log(self.params_.to_numpy()), f, r, t, weights, 0.0
        )
        return -nll * weights.sum()

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise ModelFitError(f"{type(self).__name__} is not fitted yet: call .fit(rfm) first")

    def _inputs(self, rfm: pd.DataFrame) -> list[np.ndarray]:
        self._check_fitted()
        unit = time_unit_of(rfm)
        if unit and self.time_unit_ and unit != self.time_unit_:
            raise RFMInputError(
                f"the model was fitted in {self.time_unit_} but this RFM summary is in {unit}"
            )
        return rfm_arrays(rfm, ("frequency", "recency", "T"))

    def _conditional_purchases(self, t: float, frequency, recency, T) -> np.ndarray:
        """Expected purchases in the next ``t`` time units, for arrays of RFM values."""
        values = silenced(
            self.fitter_.conditional_expected_number_of_purchases_up_to_time, t, frequency, recency, T
        )
        return np.asarray(values, dtype=np.float64)

    def predict_purchases(self, rfm: pd.DataFrame, t) -> pd.Series:
        """Expected number of purchases of each member in the next ``t`` time units.

        ``t`` is one horizon for all, or one per member (e.g. holdout durations).
        """
        columns = self._inputs(rfm)
        t = np.asarray(t, dtype=np.float64)
        if t.ndim:  # a horizon per member is part of what makes a row distinct
            columns.append(np.broadcast_to(t, columns[0].shape))
        distinct, rows = distinct_rows(*columns)
        horizon = distinct[3] if t.ndim else float(t)
        values = self._conditional_purchases(horizon, *distinct[:3])[rows]
        return pd.Series(values, index=rfm.index, name="expected_purchases")

    def probability_alive(self, rfm: pd.DataFrame) -> pd.Series:
        """Probability that each member is still active ("alive") at the end of observation."""
        (frequency, recency, T), rows = distinct_rows(*self._inputs(rfm))
        values = silenced(self.fitter_.conditional_probability_alive, frequency, recency, T)
        return pd.Series(np.asarray(values, dtype=np.float64)[rows], index=rfm.index, name="p_alive")

    def time_to_next_purchase(self, rfm: pd.DataFrame, *, quantile: float = 0.5) -> pd.Series:
        """Each member's time (in the model's unit) until their next purchase, if still
        active: the ``quantile`` (median by default) of its distribution given the history.

        Given alive, the member buys at rate ``lambda`` whose posterior is
        ``Gamma(r + frequency, alpha + T)`` (BG/NBD, MBG/NBD and Pareto/NBD alike), so
        ``P(no purchase within t) = ((alpha + T) / (alpha + T + t)) ** (r + frequency)`` and
        the quantile is ``(alpha + T) * ((1 - quantile) ** (-1 / (r + frequency)) - 1)``.
        Read it with P(alive): a member likely gone will probably not buy at all.
        """
        if not 0 < quantile < 1:
            raise RFMInputError(f"quantile must be in (0, 1), got {quantile}")
        frequency, _, T = self._inputs(rfm)
        r, alpha = float(self.params_["r"]), float(self.params_["alpha"])
        shape = r + frequency
        values = (alpha + T) * ((1 - quantile) ** (-1 / shape) - 1)
        return pd.Series(values, index=rfm.index, name="time_to_next_purchase")

    def expected_purchases(self, t) -> np.ndarray:
        """Expected repeat purchases by time ``t`` after a new member's first purchase."""
        self._check_fitted()
        t = np.asarray(t, dtype=np.float64)
        values = silenced(self.fitter_.expected_number_of_purchases_up_to_time, np.maximum(t, 0.0))
        return np.where(t > 0, values, 0.0)

    def parameter_covariance(self) -> pd.DataFrame:
        """Covariance of the estimated parameters (inverse Hessian of the log-likelihood).

        Raises
        ------
        ModelFitError
            The fit has none.
        """
        self._check_fitted()
        if getattr(self.fitter_, "_hessian_", None) is None:
            raise ModelFitError(f"{type(self).__name__} has no Hessian: no parameter uncertainty")
        return self.fitter_.variance_matrix_.set_axis(self.param_names).set_axis(self.param_names, axis=1)

    def _with_params(self, values: np.ndarray) -> PurchaseModel:
        """A copy of this fitted model with other parameter values (for parameter draws)."""
        other = copy.copy(self)
        other.params_ = pd.Series(values, index=self.params_.index, name=self.params_.name)
        other.fitter_ = copy.copy(self.fitter_)
        other.fitter_.params_ = pd.Series(values, index=self.fitter_.params_.index)
        return other

    def _standard_errors(self) -> np.ndarray | None:
        if getattr(self.fitter_, "_hessian_", None) is None:
            return None
        return np.asarray(self.fitter_.standard_errors_, dtype=np.float64)

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors (where lifetimes gives them) and the fit's figures."""
        self._check_fitted()
        table = pd.DataFrame({"estimate": self.params_})
        std_error = self._standard_errors()
        if std_error is not None:
            table["std_error"] = std_error
        table.attrs = {
            "model": type(self).__name__,
            "time_unit": self.time_unit_,
            "n_members": self.n_members_,
            "n_repeat_buyers": self.n_repeat_buyers_,
            "log_likelihood": self.log_likelihood_,
            "penalizer_coef": self.penalizer_coef_,
            "convergence_notes": list(self.convergence_notes_),
        }
        return table


class BGNBDModel(PurchaseModel):
    """BG/NBD repeat-purchase model (Fader, Hardie & Lee 2005), lifetimes' ``BetaGeoFitter``.

    Parameters
    ----------
    penalizer_coef : float
        L2 penalizer tried first (lifetimes' ``penalizer_coef``).
    penalizer_ladder : tuple of float
        Larger penalizers tried in turn when a fit fails to converge.
    min_repeat_buyers : int
        Fewest members with a repeat purchase to fit on.

    Attributes
    ----------
    params_ : Series
        ``r``, ``alpha`` (in the RFM time unit), ``a``, ``b``.
    log_likelihood_ : float
        Log-likelihood on the unscaled data (comparable with published values).
    n_members_, n_repeat_buyers_, n_unique_rows_ : int
    penalizer_coef_ : float
        The penalizer the accepted fit used.
    convergence_notes_ : list of str
    time_unit_ : str or None
        ``days`` or ``weeks`` from the RFM summary's ``attrs``.
    fitter_ : lifetimes.BetaGeoFitter
    """

    _fitter_class = BetaGeoFitter
    param_names = ("r", "alpha", "a", "b")

    def _conditional_purchases(self, t: float, frequency, recency, T) -> np.ndarray:
        """Expected purchases in the next ``t`` time units, for arrays of RFM values.

        Fader, Hardie & Lee (2005) eq. 10, computed directly. lifetimes takes the log of the
        Gauss hypergeometric term, which is negative when ``a + b + x - 1 < 0`` (fitted
        ``a + b < 1`` is common in pharmacy data), and so returns NaN for those members.
        """
        r, alpha, a, b = (float(self.params_[k]) for k in self.param_names)
        x = frequency
        z = t / (alpha + T + t)
        c = a + b + x - 1
        with np.errstate(over="ignore", invalid="ignore"):
            hyp = hyp2f1(r + x, b + x, c, z)
            # Euler's transformation where the series overflows (large x and z near 1).
            euler = hyp2f1(c - r - x, c - b - x, c, z) * (1 - z) ** (c - r - 2 * x - b)
            hyp = np.where(np.isfinite(hyp), hyp, euler)
            first = c / (a - 1)
            second = 1 - hyp * ((alpha + T) / (alpha + T + t)) ** (r + x)
            ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + recency)))
            third = 1 + (x > 0) * a / (b + np.maximum(x, 1) - 1) * ratio
            return first * second / third


def mbgnbd_expected_if_alive(t, r: float, scale, a: float, b: float, frequency) -> np.ndarray:
    """MBG/NBD's expected purchases in the next ``t`` of a member known to be alive, with
    ``scale = alpha + T`` (Batislam et al. 2007; MBG/CNBD-k uses ``k alpha + T``)."""
    x = frequency
    with np.errstate(over="ignore", invalid="ignore"):
        hyp = hyp2f1(r + x, b + x + 1, a + b + x, t / (scale + t))
        return (a + b + x) / (a - 1) * (1 - hyp * (scale / (scale + t)) ** (r + x))


class MBGNBDModel(BGNBDModel):
    """MBG/NBD (Batislam et al. 2007): like BG/NBD, but members may also drop out right after
    their first purchase. lifetimes' ``ModifiedBetaGeoFitter``; same parameters."""

    _fitter_class = ModifiedBetaGeoFitter

    def _conditional_purchases(self, t: float, frequency, recency, T) -> np.ndarray:
        """Expected purchases in the next ``t`` time units (its own formula: BG/NBD's does not
        hold once members may leave after their first purchase)."""
        r, alpha, a, b = (float(self.params_[k]) for k in self.param_names)
        p_alive = np.asarray(self.fitter_.conditional_probability_alive(frequency, recency, T),
                             dtype=np.float64)
        return mbgnbd_expected_if_alive(t, r, alpha + T, a, b, frequency) * p_alive


class ParetoNBDModel(PurchaseModel):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987), lifetimes' ``ParetoNBDFitter``.

    Parameters ``r``, ``alpha`` (purchase rate), ``s``, ``beta`` (dropout rate). lifetimes fits
    it by Nelder-Mead from a random start; this class starts from 1s so fits are repeatable.
    lifetimes reports no convergence status for it: non-finite results go up the ladder.
    """

    _fitter_class = ParetoNBDFitter
    param_names = ("r", "alpha", "s", "beta")

    def _lifetimes_fit(self, fitter, frequency, recency, T, weights):
        return fitter.fit(frequency, recency, T, weights=weights, initial_params=np.ones(4))

    def _log_likelihood(self, f, r, t, weights) -> float:
        ll = ParetoNBDFitter._conditional_log_likelihood(self.params_.to_numpy(), f, r, t)
        return float((weights * ll).sum())

    def _fit_uncertainty(self, f, r, t, weights) -> None:
        """lifetimes computes no Hessian for Pareto/NBD: the numerical one of the
        log-likelihood (without penalty) at the estimate."""
        def nll(params: np.ndarray) -> float:
            with np.errstate(all="ignore"):
                return -float((weights * ParetoNBDFitter._conditional_log_likelihood(params, f, r, t)).sum())

        self.covariance_, notes = inverse_hessian(nll, self.params_.to_numpy(), list(self.param_names))
        self.convergence_notes_ = [*self.convergence_notes_, *notes]

    def parameter_covariance(self) -> pd.DataFrame:
        """Covariance of ``r, alpha, s, beta``: the inverse numerical Hessian."""
        self._check_fitted()
        return self.covariance_

    def _standard_errors(self) -> np.ndarray:
        diagonal = np.diag(self.covariance_.to_numpy())
        return np.sqrt(np.where(diagonal > 0, diagonal, np.nan))


class GammaGammaModel:
    """Gamma-Gamma model of the mean purchase value (Fader, Hardie & Lee 2005; Hardie's note 025).

    Fitted on members with at least one repeat purchase, on ``monetary_value`` (mean repeat
    purchase value). It assumes spend per purchase is independent of purchase frequency and
    that values are positive: both are checked and reported, never silently assumed.

    Parameters
    ----------
    penalizer_coef, penalizer_ladder, min_repeat_buyers
        As for :class:`BGNBDModel`.
    max_abs_correlation : float
        A frequency-monetary correlation beyond this is reported as an independence concern.

    Attributes
    ----------
    params_ : Series
        ``p``, ``q``, ``v`` (lifetimes' name for gamma).
    frequency_monetary_corr_ : float
        Pearson correlation of frequency and monetary value among the repeat buyers fitted.
    nonpositive_monetary_ : Index
        Repeat buyers excluded from the fit because their mean repeat value is <= 0 (refunds,
        fully subsidised purchases).
    notes_ : list of str
        Convergence notes and assumption-check findings.
    log_likelihood_, n_members_, penalizer_coef_
    """

    param_names = ("p", "q", "v")

    def __init__(
        self,
        penalizer_coef: float = 0.0,
        *,
        penalizer_ladder: tuple[float, ...] = PENALIZER_LADDER,
        min_repeat_buyers: int = MIN_REPEAT_BUYERS,
        max_abs_correlation: float = 0.3,
    ) -> None:
        self.penalizer_coef = penalizer_coef
        self.penalizer_ladder = penalizer_ladder
        self.min_repeat_buyers = min_repeat_buyers
        self.max_abs_correlation = max_abs_correlation

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"GammaGammaModel(penalizer_coef={self.penalizer_coef})"
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"<GammaGammaModel fitted on {self.n_members_} repeat buyers: {params}>"

    def fit(self, rfm: pd.DataFrame, *, weights=None) -> GammaGammaModel:
        """Fit on the repeat buyers of an RFM summary (``frequency``, ``monetary_value``).

        ``weights`` (a column name or one value per row) counts each row as that many
        members: the rows of :func:`rxrepurchase.core.fit_rows.spend_rows` with
        ``weights="members"`` give the fit on every member.
        """
        frequency, monetary = rfm_arrays(rfm, ("frequency", "monetary_value"))
        w = row_weights(rfm, weights)
        w = np.ones(len(frequency)) if w is None else w
        repeaters = frequency > 0
        nonpositive = repeaters & (monetary <= 0)
        used = repeaters & ~nonpositive
        n_used = int(round(w[used].sum()))
        notes: list[str] = []
        if nonpositive.any():
            notes.append(
                f"{int(round(w[nonpositive].sum()))} repeat buyers with mean repeat value <= 0 "
                "are left out of the fit (see nonpositive_monetary_)"
            )
        if n_used < self.min_repeat_buyers:
            raise ModelFitError(
                f"GammaGammaModel: only {n_used} repeat buyers with positive spend; "
                f"at least {self.min_repeat_buyers} are needed to fit"
            )
        x, m, wx = frequency[used], monetary[used], w[used]
        corr = 0.0
        if np.ptp(x) > 0 and np.ptp(m) > 0:
            cov = np.cov(x, m, aweights=wx)
            corr = float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]))
        if abs(corr) > self.max_abs_correlation:
            notes.append(
                f"frequency and spend per purchase correlate ({corr:+.2f}); the Gamma-Gamma "
                "independence assumption is doubtful, so spend predictions are biased"
            )
        (fx, fm), weights = compress(x, m, weights=wx)
        fitter, penalizer, fit_notes = _fit_with_ladder(
            self,
            lambda pen: GammaGammaFitter(penalizer_coef=pen).fit(fx, fm, weights=weights),
        )
        params = pd.Series(np.asarray(fitter.params_, dtype=np.float64), index=list(self.param_names))
        if params["q"] <= 1:
            raise ModelFitError(
                f"GammaGammaModel: fitted q = {params['q']:.3g} <= 1, so the mean spend is "
                "undefined; spend is too heavy-tailed for this model"
            )
        self.fitter_ = fitter
        self.params_ = params.rename("GammaGammaModel")
        self.penalizer_coef_ = penalizer
        self.notes_ = fit_notes + notes
        self.frequency_monetary_corr_ = corr
        self.nonpositive_monetary_ = rfm.index[nonpositive]
        self.n_members_ = n_used
        nll = GammaGammaFitter._negative_log_likelihood(np.log(params.to_numpy()), fx, fm, weights, 0.0)
        self.log_likelihood_ = float(-nll * weights.sum())
        return self

    def expected_spend(self, rfm: pd.DataFrame) -> pd.Series:
        """Expected mean value of each member's future purchases.

        A weighted average of the member's own mean repeat value and the population mean
        ``p v / (q - 1)``; members without repeat purchases get the population mean.
        """
        if not hasattr(self, "params_"):
            raise ModelFitError("GammaGammaModel is not fitted yet: call .fit(rfm) first")
        frequency, monetary = rfm_arrays(rfm, ("frequency", "monetary_value"))
        return pd.Series(self.spend_formula(frequency, monetary), index=rfm.index, name="expected_spend")

    def spend_formula(self, frequency, monetary):
        """:meth:`expected_spend` of ``frequency`` and ``monetary`` values: numpy arrays, or
        Ibis columns (only arithmetic, so it runs where the members are)."""
        p, q, v = (float(x) for x in self.params_.to_numpy())
        mean, q_1 = v * p / (q - 1), q - 1
        if not isinstance(frequency, np.ndarray | pd.Series | float | int):
            import ibis

            # Doubles throughout: Spark reads a bare 0.7388... as a DECIMAL, and DECIMAL times
            # an integer column divided by another is rounded to 6 places.
            p, mean, q_1 = (ibis.literal(repr(x)).cast("float64") for x in (p, mean, q_1))
            frequency = frequency.cast("float64")
        weight = p * frequency / (p * frequency + q_1)
        return (1 - weight) * mean + weight * monetary

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors and the fit's figures and checks in ``attrs``."""
        if not hasattr(self, "params_"):
            raise ModelFitError("GammaGammaModel is not fitted yet: call .fit(rfm) first")
        table = pd.DataFrame(
            {
                "estimate": self.params_,
                "std_error": np.asarray(self.fitter_.standard_errors_, dtype=np.float64),
            }
        )
        table.attrs = {
            "model": "GammaGammaModel",
            "n_members": self.n_members_,
            "log_likelihood": self.log_likelihood_,
            "penalizer_coef": self.penalizer_coef_,
            "frequency_monetary_corr": self.frequency_monetary_corr_,
            "nonpositive_monetary": len(self.nonpositive_monetary_),
            "notes": list(self.notes_),
        }
        return table


def _units_per_day(model: PurchaseModel) -> float:
    """Time units per day of a fitted model; a model that does not know its unit (fitted on a
    table without ``attrs["time_unit"]``) is refused, so weeks are never read as days."""
    model._check_fitted()
    if model.time_unit_ is None:
        raise RFMInputError(
            f"{type(model).__name__} does not know its time unit: fit it on an RFM summary whose "
            "attrs['time_unit'] is 'days' or 'weeks' (rfm_summary and the simulators set it), so "
            "that horizons in days and months are converted right"
        )
    return 1.0 / TIME_UNITS[model.time_unit_]


def customer_lifetime_value(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    rfm: pd.DataFrame,
    *,
    gross_margin: float,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> pd.Series:
    """Discounted gross profit each member is expected to bring over the next months.

    ``CLV = gross_margin * E[spend] * sum_m (E[X(m)] - E[X(m-1)]) / (1 + d) ** m`` for months
    ``m = 1..horizon_months`` of :data:`DAYS_PER_MONTH` days, where ``E[X(m)]`` is the expected
    number of purchases within ``m`` months (``purchase_model``) and ``E[spend]`` the expected
    purchase value (``spend_model``); each month's profit is discounted at its end.

    Parameters
    ----------
    purchase_model : BGNBDModel, MBGNBDModel or ParetoNBDModel
        Fitted; its time unit (from the RFM it was fitted on; days if unknown) converts months.
    spend_model : GammaGammaModel
        Fitted on the same amounts (paid or gross) the CLV should be in.
    rfm : DataFrame
        Members to value (RFM summary at the valuation date).
    gross_margin : float
        Gross margin rate on sales, in (0, 1]; 1 gives discounted revenue.
    horizon_months : int
    monthly_discount_rate : float
        E.g. 0.01 for 1% a month.
    """
    _check_value_terms(gross_margin, horizon_months, monthly_discount_rate)
    (frequency, recency, T), rows = distinct_rows(*purchase_model._inputs(rfm))
    discounted = _discounted_purchases(purchase_model, frequency, recency, T, horizon_months,
                                       monthly_discount_rate)
    spend = spend_model.expected_spend(rfm).to_numpy()
    return pd.Series(gross_margin * spend * discounted[rows], index=rfm.index, name="clv")


def _check_value_terms(gross_margin: float, horizon_months: int, monthly_discount_rate: float) -> None:
    if not 0 < gross_margin <= 1:
        raise RFMInputError(f"gross_margin must be in (0, 1], got {gross_margin}")
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise RFMInputError(f"horizon_months must be a positive whole number, got {horizon_months}")
    if monthly_discount_rate < 0:
        raise RFMInputError(f"monthly_discount_rate must be >= 0, got {monthly_discount_rate}")


def _discounted_purchases(purchase_model: PurchaseModel, frequency, recency, T, horizon_months: int,
                          monthly_discount_rate: float) -> np.ndarray:
    """``sum_m (E[X(m)] - E[X(m-1)]) / (1 + d) ** m`` of :func:`customer_lifetime_value`."""
    month = DAYS_PER_MONTH * _units_per_day(purchase_model)
    discounted = np.zeros(len(frequency))
    previous = np.zeros(len(frequency))
    for m in range(1, int(horizon_months) + 1):  # a few dozen vectorized steps, not rows
        cumulative = purchase_model._conditional_purchases(m * month, frequency, recency, T)
        discounted += (cumulative - previous) / (1 + monthly_discount_rate) ** m
        previous = cumulative
    return discounted


@renamed_keywords(days="horizon_days")
def score_members(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    rfm: pd.DataFrame,
    *,
    gross_margin: float,
    horizon_days: int = 30,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    intervals: bool = False,
    level: float = 0.8,
    n_draws: int = 100,
    seed: int = 0,
    draws: ValueDraws | None = None,
) -> pd.DataFrame:
    """Per member: ``p_alive``, ``expected_purchases`` in the next ``horizon_days``,
    ``next_purchase_days`` (median days to the next purchase if still active,
    :meth:`PurchaseModel.time_to_next_purchase`) and ``next_purchase_on`` (that date, when the
    RFM records its ``as_of``), ``expected_spend`` per purchase and ``clv`` (see
    :func:`customer_lifetime_value`), plus the RFM columns.

    With ``intervals=True``, also the ``level`` ranges of P(alive), expected purchases and
    CLV from the purchase model's parameter uncertainty (``p_alive_low``, ``p_alive_high``,
    ``expected_purchases_low`` ..., ``clv_high``): ``n_draws`` parameter sets drawn from the
    estimate's asymptotic normal distribution on the log scale (covariance:
    :meth:`PurchaseModel.parameter_covariance`, the inverse Hessian), each member's figures
    computed for every draw, the central ``level`` interval taken; ``attrs`` also holds the
    ranges of the totals (``clv_total_low`` ..., ``expected_purchases_total_high``). The spend
    per purchase is the Gamma-Gamma estimate (its own uncertainty is not included). Ranges
    narrow as 1 / sqrt(members fitted on). ``draws`` (:func:`value_draws` with the same models,
    members and settings) gives the draws already made, e.g. for :func:`group_value_ranges` too."""
    value = {"gross_margin": gross_margin, "horizon_months": horizon_months,
             "monthly_discount_rate": monthly_discount_rate}
    if draws is not None and not intervals:
        raise RFMInputError("draws= is only used with intervals=True")
    scores = pd.DataFrame(
        {
            "p_alive": purchase_model.probability_alive(rfm),
            "expected_purchases": purchase_model.predict_purchases(
                rfm, horizon_days * _units_per_day(purchase_model)
            ),
            "expected_spend": spend_model.expected_spend(rfm),
            "clv": customer_lifetime_value(purchase_model, spend_model, rfm, **value),
        }
    )
    # The median time to the next purchase if still active, as a date when the RFM says when
    # observation ended: what an operator's "expected next visit" column shows.
    next_days = purchase_model.time_to_next_purchase(rfm) / _units_per_day(purchase_model)
    at = scores.columns.get_loc("expected_purchases") + 1
    scores.insert(at, "next_purchase_days", next_days)
    end = rfm.attrs.get("as_of")
    if end is not None:
        scores.insert(at + 1, "next_purchase_on",
                      pd.Timestamp(end) + pd.to_timedelta(np.ceil(next_days.to_numpy()), unit="D"))
    if intervals:
        _check_level(level)
        figures = _drawn(draws, purchase_model, spend_model, rfm, horizon_days=horizon_days, n_draws=n_draws,
                         seed=seed, **value)
        ranges = _score_ranges(figures, rfm.index, level=level)
        for name in ("clv", "expected_purchases", "p_alive"):  # each range after its figure
            at = scores.columns.get_loc(name) + 1
            scores.insert(at, f"{name}_high", ranges[f"{name}_high"])
            scores.insert(at, f"{name}_low", ranges[f"{name}_low"])
    scores = scores.join(rfm[["frequency", "recency", "T", "monetary_value"]])
    scores.attrs = {"horizon_days": horizon_days, "horizon_months": horizon_months, "gross_margin": gross_margin,
                    **(ranges.attrs if intervals else {})}
    return scores


@renamed_keywords(days="horizon_days")
def row_scores(purchase_model: PurchaseModel, rows: pd.DataFrame, *, horizon_days: int = 30, horizon_months: int = 12,
               monthly_discount_rate: float = 0.01) -> pd.DataFrame:
    """The scores that depend on ``(frequency, recency, T)`` only, once per row of ``rows``.

    Returns
    -------
    DataFrame
        ``frequency, recency, T`` as given, ``p_alive``, ``expected_purchases`` in the next
        ``horizon_days`` and ``discounted_purchases`` (the discounted expected purchases over
        ``horizon_months`` of :func:`customer_lifetime_value`, which times the expected spend
        and the margin gives the CLV).
    """
    _check_value_terms(1.0, horizon_months, monthly_discount_rate)
    frequency, recency, T = purchase_model._inputs(rows)
    return pd.DataFrame({
        **{c: rows[c].to_numpy() for c in ("frequency", "recency", "T")},
        "p_alive": np.asarray(silenced(purchase_model.fitter_.conditional_probability_alive,
                                     frequency, recency, T), dtype=np.float64),
        "expected_purchases": purchase_model._conditional_purchases(
            horizon_days * _units_per_day(purchase_model), frequency, recency, T),
        "discounted_purchases": _discounted_purchases(purchase_model, frequency, recency, T,
                                                      horizon_months, monthly_discount_rate),
    })


@renamed_keywords(days="horizon_days")
def score_table(purchase_model: PurchaseModel, spend_model: GammaGammaModel, rfm, *, gross_margin: float,
                horizon_days: int = 30, horizon_months: int = 12, monthly_discount_rate: float = 0.01):
    """:func:`score_members`' ``p_alive``, ``expected_purchases``, ``expected_spend`` and
    ``clv`` for every member of an Ibis RFM table, where the table is (DuckDB, Spark).

    Only the distinct ``(frequency, recency, T)`` rows come to Python
    (:func:`rxrepurchase.core.fit_rows.fit_rows`); their scores (:func:`row_scores`) go back as
    a small table joined to the members (:func:`rxrepurchase.core.fit_rows.spread_to_members`),
    and the expected spend and CLV are arithmetic on the joined columns. Nothing per member
    passes through pandas.

    Parameters
    ----------
    purchase_model, spend_model
        Fitted, as for :func:`customer_lifetime_value`.
    rfm : ibis.Table
        One row per member with ``frequency``, ``recency``, ``T``, ``monetary_value`` in the
        purchase model's time unit (e.g. :func:`rxrepurchase.core.rfm.rfm_summary`).

    Returns
    -------
    ibis.Table
        ``rfm``'s columns, ``p_alive``, ``expected_purchases``, ``expected_spend``, ``clv``;
        lazy: write it with the backend's ``to_parquet`` or ``create_table``.
    """
    import ibis

    from rxrepurchase.core.fit_rows import FIT_COLUMNS, fit_rows, spread_to_members

    _check_value_terms(gross_margin, horizon_months, monthly_discount_rate)
    rows = fit_rows(rfm).select(*FIT_COLUMNS).execute()
    per_row = row_scores(purchase_model, rows, horizon_days=horizon_days, horizon_months=horizon_months,
                         monthly_discount_rate=monthly_discount_rate)
    scored = spread_to_members(rfm, ibis.memtable(per_row))
    spend = spend_model.spend_formula(scored.frequency, scored.monetary_value)
    margin = ibis.literal(repr(float(gross_margin))).cast("float64")  # not a Spark DECIMAL
    return scored.mutate(expected_spend=spend,
                         clv=margin * spend * scored.discounted_purchases).drop("discounted_purchases")


@dataclass(frozen=True)
class ValueDraws:
    """Each member's figures under parameter sets drawn from the purchase model's uncertainty
    (:func:`value_draws`), for :func:`score_members` and :func:`group_value_ranges` to share.

    Attributes
    ----------
    purchase_model, spend_model
        The models drawn from.
    members : Index
        The RFM summary's index: the members, in the order of the arrays' columns.
    settings : dict
        ``gross_margin``, ``horizon_days``, ``horizon_months``, ``monthly_discount_rate``,
        ``n_draws`` and ``seed`` they were made with.
    figures : dict of ndarray
        ``p_alive``, ``expected_purchases`` and ``clv``: arrays of draws x members.
    """

    purchase_model: PurchaseModel
    spend_model: GammaGammaModel
    members: pd.Index
    settings: dict
    figures: dict


def value_draws(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    rfm: pd.DataFrame,
    *,
    gross_margin: float,
    horizon_days: int = 30,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    n_draws: int = 100,
    seed: int = 0,
) -> ValueDraws:
    """The parameter draws behind :func:`score_members`' intervals and
    :func:`group_value_ranges`, made once: pass them to both as ``draws=`` (with the same
    settings) instead of drawing the same ``n_draws`` parameter sets in each call.

    Returns
    -------
    ValueDraws
        Each member's P(alive), expected purchases in ``horizon_days`` and CLV under each draw.
    """
    settings = {"gross_margin": gross_margin, "horizon_days": horizon_days, "horizon_months": horizon_months,
                "monthly_discount_rate": monthly_discount_rate, "n_draws": n_draws, "seed": seed}
    return ValueDraws(purchase_model, spend_model, rfm.index, settings,
                      _draw_figures(purchase_model, spend_model, rfm, **settings))


def _drawn(draws: ValueDraws | None, purchase_model: PurchaseModel, spend_model: GammaGammaModel,
           rfm: pd.DataFrame, **settings) -> dict[str, np.ndarray]:
    """The figures of ``draws`` after checking they were made for these models, members and
    settings; drawn here when ``draws`` is None."""
    if draws is None:
        return value_draws(purchase_model, spend_model, rfm, **settings).figures
    if draws.purchase_model is not purchase_model or draws.spend_model is not spend_model:
        raise RFMInputError("draws= were made with other models than the ones given")
    if not draws.members.equals(rfm.index):
        raise RFMInputError("draws= were made for other members (or another order) than the RFM summary's")
    differ = {k: (draws.settings[k], v) for k, v in settings.items() if draws.settings[k] != v}
    if differ:
        raise RFMInputError("draws= were made with other settings (drawn with, asked): "
                            + ", ".join(f"{k} {a!r}, {b!r}" for k, (a, b) in differ.items()))
    return draws.figures


def _draw_figures(purchase_model: PurchaseModel, spend_model: GammaGammaModel, rfm: pd.DataFrame,
                  *, horizon_days: float, n_draws: int, seed: int, **value) -> dict[str, np.ndarray]:
    """Each member's P(alive), expected purchases in ``horizon_days`` and CLV under ``n_draws``
    parameter sets drawn from the estimate's asymptotic normal distribution on the log scale
    (covariance: :meth:`PurchaseModel.parameter_covariance`): arrays of draws x members."""
    covariance = purchase_model.parameter_covariance()
    names = list(covariance.index)
    estimate = purchase_model.params_[names].to_numpy(dtype=np.float64)
    log_covariance = covariance.to_numpy() / np.outer(estimate, estimate)  # delta method
    # A numerical Hessian is not exactly symmetric nor always positive semi-definite: use the
    # nearest matrix that is (negative eigenvalues set to 0).
    values, vectors = np.linalg.eigh((log_covariance + log_covariance.T) / 2)
    log_covariance = (vectors * np.clip(values, 0, None)) @ vectors.T
    draws = np.exp(np.random.default_rng(seed).multivariate_normal(
        np.log(estimate), log_covariance, size=n_draws))
    horizon = horizon_days * _units_per_day(purchase_model)
    figures = {"p_alive": [], "expected_purchases": [], "clv": []}
    for draw in draws:
        params = purchase_model.params_.copy()
        params[names] = draw
        model = purchase_model._with_params(params.to_numpy())
        figures["p_alive"].append(model.probability_alive(rfm).to_numpy())
        figures["expected_purchases"].append(model.predict_purchases(rfm, horizon).to_numpy())
        figures["clv"].append(customer_lifetime_value(model, spend_model, rfm, **value).to_numpy())
    return {name: np.vstack(v) for name, v in figures.items()}


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise RFMInputError(f"level must be in (0, 1), got {level}")


def _score_ranges(figures: dict[str, np.ndarray], members: pd.Index, *, level: float) -> pd.DataFrame:
    """The ``*_low`` / ``*_high`` columns of :func:`score_members` (``intervals=True``) from
    :func:`value_draws`' figures."""
    n_draws = len(figures["clv"])
    probs = [(1 - level) / 2, (1 + level) / 2]
    out = pd.DataFrame(index=members)
    totals = {}
    for name, values in figures.items():
        low, high = np.nanquantile(values, probs, axis=0)
        out[f"{name}_low"], out[f"{name}_high"] = low, high
        if name != "p_alive":  # a total's range: the quantiles of the per-draw totals
            totals[f"{name}_total_low"], totals[f"{name}_total_high"] = (
                float(v) for v in np.nanquantile(values.sum(axis=1), probs))
    out.attrs = {"level": level, "n_draws": n_draws, **totals}
    return out


@renamed_keywords(days="horizon_days")
def group_value_ranges(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    rfm: pd.DataFrame,
    groups: pd.Series,
    *,
    gross_margin: float,
    horizon_days: int = 30,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    level: float = 0.8,
    n_draws: int = 100,
    seed: int = 0,
    draws: ValueDraws | None = None,
) -> pd.DataFrame:
    """Ranges of a group's figures (a cohort's, a tier's) from the purchase model's parameter
    uncertainty: for every parameter draw (as in :func:`score_members` with
    ``intervals=True``) the group's mean P(alive), mean expected purchases in ``horizon_days``, total
    and mean CLV; the central ``level`` interval of each over the draws.

    A group's range is not the sum of its members' ranges: the members' figures move together
    with the parameters, so it is computed from the draws' group totals.

    Parameters
    ----------
    groups : Series
        Group of each member, indexed like ``rfm`` (members with no group are left out).
    draws : ValueDraws, optional
        :func:`value_draws` made with these models, members and settings (e.g. shared with
        :func:`score_members` and other groupings); drawn here when not given.

    Returns
    -------
    DataFrame
        One row per group (index named as ``groups``): ``members``, ``p_alive_low``,
        ``p_alive_high``, ``expected_purchases_low`` ..., ``clv_total_low``,
        ``clv_total_high``, ``clv_mean_low``, ``clv_mean_high``; ``attrs`` holds ``level``
        and ``n_draws``.
    """
    missing = ~rfm.index.isin(groups.index)
    if missing.any():
        raise RFMInputError(f"groups has no entry for {int(missing.sum())} member(s) of the RFM "
                            f"summary, e.g. {list(rfm.index[missing][:3])}")
    _check_level(level)
    figures = _drawn(draws, purchase_model, spend_model, rfm, horizon_days=horizon_days, n_draws=n_draws, seed=seed,
                     gross_margin=gross_margin, horizon_months=horizon_months,
                     monthly_discount_rate=monthly_discount_rate)
    labels = groups.reindex(rfm.index)
    probs = [(1 - level) / 2, (1 + level) / 2]
    rows = {}
    for group, at in labels.groupby(labels, observed=True, sort=False).indices.items():
        row = {"members": len(at)}
        for name, column in (("p_alive", "p_alive"), ("expected_purchases", "expected_purchases"),
                             ("clv_mean", "clv")):
            row[f"{name}_low"], row[f"{name}_high"] = np.nanquantile(
                figures[column][:, at].mean(axis=1), probs)
        row["clv_total_low"], row["clv_total_high"] = np.nanquantile(
            figures["clv"][:, at].sum(axis=1), probs)
        rows[group] = row
    out = pd.DataFrame.from_dict(rows, orient="index").rename_axis(groups.name)
    out.attrs = {"level": level, "n_draws": n_draws}
    return out


def wake_up_list(
    transactions: pd.DataFrame,
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    *,
    as_of,
    gross_margin: float,
    lookback_days: int = 30,
    top_share: float = 0.2,
    min_drop: float = 0.2,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    customer_col: str = "member_id",
    time_col: str = "ordered_at",
    amount_col: str = "paid_amount",
    intervals: bool = True,
    level: float = 0.8,
) -> pd.DataFrame:
    """Valuable members whose probability of being active is falling: whom to contact.

    P(alive) and CLV are computed twice from the transactions, ``lookback_days`` before
    ``as_of`` and at ``as_of``. A member is listed when their CLV before ranked in the top
    ``top_share`` of members known then, and their P(alive) fell by at least ``min_drop``.
    Members whose first purchase came after the earlier date have no "before" and are not
    considered. Sorted by ``value_at_risk = clv_before - clv_now``, largest first. Both RFM
    summaries are made in the purchase model's time unit (days if it was fitted on an RFM
    summary that did not record one).

    Returns
    -------
    DataFrame
        ``p_alive_before``, ``p_alive_now``, ``p_alive_drop``, ``clv_before``, ``clv_now``,
        ``value_at_risk``, ``frequency``, ``last_purchase``, ``days_since_last_purchase``;
        with ``intervals`` (and a model with a Hessian), the ``level`` ranges of today's figures
        from parameter uncertainty (:func:`score_members`): ``p_alive_now_low/high``,
        ``clv_now_low/high``.
    """
    if lookback_days <= 0:
        raise RFMInputError(f"lookback_days must be positive, got {lookback_days}")
    if not 0 < top_share <= 1:
        raise RFMInputError(f"top_share must be in (0, 1], got {top_share}")
    purchase_model._check_fitted()
    now = pd.Timestamp(as_of)
    before = now - pd.Timedelta(days=lookback_days)
    unit = purchase_model.time_unit_ or "days"
    columns = {"customer_col": customer_col, "time_col": time_col, "amount_col": amount_col}
    rfm_now = rfm_summary(transactions, as_of=now, time_unit=unit, **columns)
    rfm_before = rfm_summary(transactions, as_of=before, time_unit=unit, **columns)
    rfm_now = rfm_now.loc[rfm_before.index]
    value = {
        "gross_margin": gross_margin,
        "horizon_months": horizon_months,
        "monthly_discount_rate": monthly_discount_rate,
    }
    table = pd.DataFrame(
        {
            "p_alive_before": purchase_model.probability_alive(rfm_before),
            "p_alive_now": purchase_model.probability_alive(rfm_now),
            "clv_before": customer_lifetime_value(purchase_model, spend_model, rfm_before, **value),
            "clv_now": customer_lifetime_value(purchase_model, spend_model, rfm_now, **value),
        }
    )
    table["p_alive_drop"] = table["p_alive_before"] - table["p_alive_now"]
    table["value_at_risk"] = table["clv_before"] - table["clv_now"]
    table["frequency"] = rfm_now["frequency"]
    table["last_purchase"] = rfm_now["last_purchase"]
    table["days_since_last_purchase"] = (now - rfm_now["last_purchase"]).dt.days
    valuable = table["clv_before"].rank(ascending=False, method="first") <= np.ceil(
        top_share * len(table)
    )
    listed = table[valuable & (table["p_alive_drop"] >= min_drop)]
    order = [
        "p_alive_before", "p_alive_now", "p_alive_drop", "clv_before", "clv_now",
        "value_at_risk", "frequency", "last_purchase", "days_since_last_purchase",
    ]  # fmt: skip
    listed = listed[order].sort_values("value_at_risk", ascending=False)
    if intervals and len(listed):
        _check_level(level)
        try:
            draws = value_draws(purchase_model, spend_model, rfm_now.loc[listed.index], horizon_days=30,
                                n_draws=100, seed=0, **value)
            ranges = _score_ranges(draws.figures, listed.index, level=level)
        except ModelFitError:  # a fit without a Hessian: no ranges to show
            ranges = None
        if ranges is not None:
            for name in ("p_alive", "clv"):
                listed.insert(listed.columns.get_loc(f"{name}_now") + 1, f"{name}_now_high",
                              ranges[f"{name}_high"])
                listed.insert(listed.columns.get_loc(f"{name}_now") + 1, f"{name}_now_low",
                              ranges[f"{name}_low"])
    listed.attrs = {
        "as_of": now,
        "compared_with": before,
        "members_considered": len(table),
        "top_share": top_share,
        "min_drop": min_drop,
    }
    return listed


@dataclass
class GroupFits:
    """Models fitted separately per group (cohort, store), side by side.

    Attributes
    ----------
    params : DataFrame
        One row per group: ``n_members``, ``n_repeat_buyers``, the purchase model's
        parameters and ``log_likelihood``, ``penalizer_coef``, the Gamma-Gamma ``p, q, v``
        and ``frequency_monetary_corr`` (when fitted), and ``error`` (why a group could not be
        fitted; empty otherwise).
    scores : DataFrame
        :func:`score_members` rows of every fitted group's members, with a ``group`` column
        (empty when no ``gross_margin`` was given).
    models : dict
        Group -> (purchase model, spend model or None), for fitted groups.
    """

    params: pd.DataFrame
    scores: pd.DataFrame
    models: dict = field(default_factory=dict)

    def clv_distribution(self, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9)) -> pd.DataFrame:
        """Mean and quantiles of predicted CLV per group."""
        grouped = self.scores.groupby("group", observed=True)["clv"]
        table = grouped.quantile(list(quantiles)).unstack()
        table.columns = [f"q{int(round(q * 100)):02d}" for q in quantiles]
        return table.assign(mean=grouped.mean(), members=grouped.size())


@renamed_keywords(days="horizon_days")
def fit_by_group(
    rfm: pd.DataFrame,
    groups: pd.Series | str,
    *,
    purchase_model: PurchaseModel | None = None,
    spend_model: GammaGammaModel | None = None,
    gross_margin: float | None = None,
    horizon_days: int = 30,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> GroupFits:
    """Fit a purchase model (and Gamma-Gamma) per group, e.g. subsidy-driven vs loyal members.

    Parameters
    ----------
    rfm : DataFrame
        RFM summary of all members.
    groups : Series or str
        Group label per member, indexed like ``rfm`` (e.g. the cohort labels), or the name of
        an ``rfm`` index level (e.g. ``"store_id"`` for a per-store summary).
    purchase_model, spend_model
        Unfitted templates (their settings are copied per group). Default: ``BGNBDModel()``
        and ``GammaGammaModel()``.
    gross_margin : float, optional
        When given, members are scored (:func:`score_members`) for CLV distributions.

    A group that cannot be fitted gets its reason in ``params["error"]`` instead of failing
    the rest.
    """
    template = purchase_model if purchase_model is not None else BGNBDModel()
    spend_template = spend_model if spend_model is not None else GammaGammaModel()
    if isinstance(groups, str):
        if groups not in (rfm.index.names or []):
            raise RFMInputError(f"the RFM index has no level {groups!r} (levels: {rfm.index.names})")
        labels = pd.Series(rfm.index.get_level_values(groups), index=rfm.index)
    else:
        labels = groups.reindex(rfm.index)
    unlabelled = labels.isna().to_numpy()
    if unlabelled.any():
        raise RFMInputError(
            f"{int(unlabelled.sum())} members of the RFM summary have no group label, e.g. "
            f"{', '.join(map(str, rfm.index[unlabelled][:5]))}; label them (e.g. fillna)"
        )
    rows, scored, models = [], [], {}
    for label, part in rfm.groupby(labels.to_numpy(), sort=True):  # one fit per group
        part.attrs = rfm.attrs
        row = {
            "group": label,
            "n_members": len(part),
            "n_repeat_buyers": int((part["frequency"] > 0).sum()),
            "error": "",
        }
        try:
            pm = type(template)(
                template.penalizer_coef,
                penalizer_ladder=template.penalizer_ladder,
                min_repeat_buyers=template.min_repeat_buyers,
            ).fit(part)
            row.update(pm.params_.to_dict())
            row.update(log_likelihood=pm.log_likelihood_, penalizer_coef=pm.penalizer_coef_)
            sm = GammaGammaModel(
                spend_template.penalizer_coef,
                penalizer_ladder=spend_template.penalizer_ladder,
                min_repeat_buyers=spend_template.min_repeat_buyers,
                max_abs_correlation=spend_template.max_abs_correlation,
            ).fit(part)
            row.update(sm.params_.to_dict())
            row["frequency_monetary_corr"] = sm.frequency_monetary_corr_
        except ModelFitError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        rows.append(row)
        models[label] = (pm, sm)
        if gross_margin is not None:
            scores = score_members(
                pm,
                sm,
                part,
                gross_margin=gross_margin,
                horizon_days=horizon_days,
                horizon_months=horizon_months,
                monthly_discount_rate=monthly_discount_rate,
            )
            scored.append(scores.assign(group=label))
    params = pd.DataFrame(rows).set_index("group")
    scores = pd.concat(scored) if scored else pd.DataFrame(columns=["group", "clv"])
    return GroupFits(params=params, scores=scores, models=models)


def simulate_bgnbd(
    n_members: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T,
    seed=None,
    time_unit: str = "days",
) -> pd.DataFrame:
    """Simulate RFM data from the BG/NBD model with known parameters (vectorized).

    Each member buys as a Poisson process with rate ``lambda ~ Gamma(r, rate=alpha)`` and drops
    out after each repeat purchase with probability ``p ~ Beta(a, b)``; observed over ``(0, T]``
    after the first purchase. ``T`` is a scalar or one value per member, in ``time_unit``
    (``alpha`` too).

    Returns
    -------
    DataFrame
        ``frequency``, ``recency``, ``T`` and the hidden ``lambda_``, ``p``, ``alive``;
        ``attrs["time_unit"]`` records the unit, so a model fitted on it converts CLV
        horizons right (a CLV on weekly data is never read as days).
    """
    check_unit(time_unit)
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=np.float64), (n_members,))
    lam = rng.gamma(r, 1.0 / alpha, n_members)
    p = rng.beta(a, b, n_members)
    # Purchases within T if never dropping out; dropout comes right after repeat purchase j.
    n_purchases = rng.poisson(lam * T)
    dropout_at = rng.geometric(np.clip(p, 1e-12, 1.0))
    frequency = np.minimum(n_purchases, dropout_at)
    # Given n purchase times uniform on (0, T], the x-th one is T * Beta(x, n - x + 1).
    has_repeat = frequency > 0
    recency = np.zeros(n_members)
    recency[has_repeat] = T[has_repeat] * rng.beta(
        frequency[has_repeat], n_purchases[has_repeat] - frequency[has_repeat] + 1
    )
    out = pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": recency,
            "T": T.copy(),
            "lambda_": lam,
            "p": p,
            "alive": n_purchases < dropout_at,
        }
    )
    out.attrs = {"time_unit": time_unit}
    return out
