"""MBG/CNBD-k: a repeat-purchase model that knows members buy on a rhythm.

Reutterer, Platzer & Schröder (2021), "Leveraging purchase regularity for predicting
customer behavior the easy way", International Journal of Research in Marketing 38(1). Like
MBG/NBD, each member buys at a rate ``lambda ~ Gamma(r, alpha)`` and may drop out after any
purchase (including the first) with probability ``p ~ Beta(a, b)``; but the times between
purchases are Erlang-k instead of exponential. ``k = 1`` is MBG/NBD; larger ``k`` means more
regular buying (coefficient of variation ``1 / sqrt(k)``), which a chronic patient's refills
show. Its likelihood needs, besides ``frequency``, ``recency`` and ``T``, the sum of the logs
of each member's inter-purchase times (``litt``, in :func:`rxrepurchase.rfm.rfm_summary`).

Estimated by maximum likelihood (scipy's L-BFGS-B on the log parameters) for each ``k`` in a
grid, keeping the ``k`` of highest likelihood (BTYDplus's procedure); standard errors of
``r, alpha, a, b`` from the inverse of the numerical Hessian (statsmodels). The formulas follow
the paper and R's BTYDplus (``mbgcnbd.*``), written here for numpy.

Conditional expected purchases: exact for ``k = 1`` (MBG/NBD). For ``k > 1`` no closed form
exists; as in BTYDplus, the MBG/NBD expression with the scale ``k x alpha`` is used and, when
at least 100 members are predicted together, rescaled so that its total matches the exact
unconditional expectation of those members (a sum of incomplete beta functions).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from scipy import optimize, special

from rxrepurchase.arguments import check_unit
from rxrepurchase.errors import ModelFitError, RFMInputError
from rxrepurchase.fit_data import compress, distinct_rows, rfm_arrays, silenced, time_unit_of
from rxrepurchase.models import (
    MIN_REPEAT_BUYERS,
    PurchaseModel,
    inverse_hessian,
    mbgnbd_expected_if_alive,
)

__all__ = ["MBGCNBDModel", "mbgcnbd_log_likelihood", "simulate_mbgcnbd"]


def mbgcnbd_log_likelihood(k: int, r: float, alpha: float, a: float, b: float, frequency, recency,
                           T, litt) -> np.ndarray:
    """Log-likelihood of each member's ``(frequency, recency, T, litt)`` under MBG/CNBD-k."""
    x, tx, T, litt = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T, litt))
    rkx = r + k * x
    ll = ((k - 1) * litt - x * special.gammaln(k)
          + special.betaln(a, b + x + 1) - special.betaln(a, b)
          + special.gammaln(rkx) - special.gammaln(r) + r * np.log(alpha)
          - rkx * np.log(alpha + T))
    # Alive at T: still in the k-1 first phases of the next Erlang gap.
    alive = np.ones_like(x)
    term = np.ones_like(x)
    for j in range(1, k):
        term = term * (rkx + j - 1) / j * (T - tx) / (alpha + T)
        alive = alive + term
    # Dropped after the last purchase: log of a / (b + x) * ((alpha + T) / (alpha + tx)) ** rkx.
    log_dropped = np.log(a) - np.log(b + x) + rkx * (np.log(alpha + T) - np.log(alpha + tx))
    return ll + np.logaddexp(log_dropped, np.log(alive))


def _probability_alive(k, r, alpha, a, b, x, tx, T) -> np.ndarray:
    rkx = r + k * x
    alive = np.ones_like(x)
    term = np.ones_like(x)
    for j in range(1, k):
        term = term * (rkx + j - 1) / j * (T - tx) / (alpha + T)
        alive = alive + term
    log_ratio = np.log(a) - np.log(b + x) + rkx * (np.log(alpha + T) - np.log(alpha + tx)) - np.log(alive)
    return special.expit(-log_ratio)


def _unconditional(k, r, alpha, a, b, t, max_terms: int = 2000) -> np.ndarray:
    """Exact E[X(t)] for a new member: sum over n of P(still buying at the n-th repeat
    purchase) x P(n Erlang-k gaps end by t); the n gaps' sum over a gamma rate is beta-prime,
    so the second factor is the incomplete beta ``I_{t/(alpha+t)}(k n, r)``."""
    t = np.asarray(t, dtype=np.float64)
    n = np.arange(1, max_terms + 1, dtype=np.float64)
    survive = np.exp(special.betaln(a, b + n) - special.betaln(a, b))
    z = np.clip(t / (alpha + t), 0, 1)
    out = np.zeros(t.shape)
    flat = out.reshape(-1)
    for i, zi in enumerate(z.reshape(-1)):  # few distinct horizons: a loop over them
        flat[i] = (survive * special.betainc(k * n, r, zi)).sum() if zi > 0 else 0.0
    return out


def _conditional(k, r, alpha, a, b, t, x, tx, T) -> np.ndarray:
    """MBG/NBD's conditional expectation with scale ``k x alpha`` (exact for k = 1)."""
    return (mbgnbd_expected_if_alive(t, r, k * alpha + T, a, b, x)
            * _probability_alive(k, r, alpha, a, b, x, tx, T))


class MBGCNBDModel(PurchaseModel):
    """MBG/CNBD-k repeat-purchase model (see the module docstring).

    Parameters
    ----------
    k : int, optional
        The regularity; by default estimated over ``1 .. max_k`` (the grid stops once the
        likelihood has fallen twice in a row).
    max_k : int
    min_repeat_buyers : int
        Fewest members with a repeat purchase to fit on.

    Attributes
    ----------
    params_ : Series
        ``k``, ``r``, ``alpha`` (in the RFM time unit), ``a``, ``b``.
    standard_errors_ : Series
        Of ``r, alpha, a, b`` (inverse Hessian of the log-likelihood at the estimate; ``k``
        is chosen on a grid and has none).
    covariance_ : DataFrame
        Of ``r, alpha, a, b``.
    log_likelihood_ : float
    log_likelihood_by_k_ : Series
        The grid's maximum log-likelihood for each ``k`` tried.
    n_members_, n_repeat_buyers_, n_unique_rows_ : int
    time_unit_ : str or None
    convergence_notes_ : list of str
    penalizer_coef_ : float
        Always 0 (no penalty).
    """

    param_names = ("k", "r", "alpha", "a", "b")

    def __init__(self, k: int | None = None, *, max_k: int = 8,
                 min_repeat_buyers: int = MIN_REPEAT_BUYERS) -> None:
        super().__init__(min_repeat_buyers=min_repeat_buyers)
        self.k = k
        self.max_k = max_k

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}(k={self.k})"
        return super().__repr__()

    def fit(self, rfm: pd.DataFrame) -> MBGCNBDModel:
        """Fit on an RFM summary with ``frequency``, ``recency``, ``T`` and ``litt``.

        Raises
        ------
        ModelFitError
            Too few repeat buyers, or no ``k`` gave a finite likelihood and parameters.
        """
        if "litt" not in rfm.columns:
            raise RFMInputError("RFM summary has no column 'litt' (the sum of log inter-purchase "
                                "times MBG/CNBD-k needs; rxrepurchase.rfm.rfm_summary makes it)")
        if self.k is not None and (int(self.k) != self.k or self.k < 1):
            raise RFMInputError(f"k must be a whole number >= 1, got {self.k}")
        frequency, recency, T, litt = rfm_arrays(rfm, ("frequency", "recency", "T", "litt"))
        repeat_buyers = int((frequency > 0).sum())
        if repeat_buyers < self.min_repeat_buyers:
            raise ModelFitError(
                f"{type(self).__name__}: only {repeat_buyers} of {len(frequency)} members made a "
                f"repeat purchase; at least {self.min_repeat_buyers} are needed to fit"
            )
        (f, r, t, lt), weights = compress(frequency, recency, T, litt)
        grid = [int(self.k)] if self.k is not None else range(1, self.max_k + 1)
        fits, notes = {}, []
        for k in grid:
            result = silenced(self._fit_k, k, f, r, t, lt, weights)
            if isinstance(result, str):
                notes.append(f"k={k}: {result}")
                break  # larger k only gets harder once one fails (BTYDplus stops too)
            fits[k] = result
            lls = [fits[j][1] for j in sorted(fits)]
            if len(lls) >= 3 and lls[-1] < lls[-2] < lls[-3]:
                break
        if not fits:
            raise ModelFitError(f"{type(self).__name__} could not be fitted: " + "; ".join(notes))
        best = max(fits, key=lambda j: fits[j][1])
        params, ll = fits[best]
        self.params_ = pd.Series([float(best), *params], index=list(self.param_names),
                                 name=type(self).__name__)
        self.log_likelihood_ = float(ll)
        self.log_likelihood_by_k_ = pd.Series({j: fits[j][1] for j in sorted(fits)}, name="log_likelihood")
        self.log_likelihood_by_k_.index.name = "k"
        self.covariance_, singular = inverse_hessian(
            lambda p: self._nll(best, p, f, r, t, lt, weights), params, list(self.param_names[1:]))
        notes += singular
        names = list(self.param_names[1:])
        diagonal = np.diag(self.covariance_.to_numpy())
        self.standard_errors_ = pd.Series(np.sqrt(np.where(diagonal > 0, diagonal, np.nan)), index=names)
        self.convergence_notes_ = [*notes, f"k={best} of highest likelihood over k in {sorted(fits)}"]
        self.penalizer_coef_ = 0.0
        self.n_members_ = len(frequency)
        self.n_repeat_buyers_ = repeat_buyers
        self.n_unique_rows_ = len(weights)
        self.time_unit_ = time_unit_of(rfm)
        reason = self._unusable(None, f, r, t, weights)
        if reason:
            for name in ("params_", "log_likelihood_"):
                self.__dict__.pop(name, None)
            raise ModelFitError(f"{type(self).__name__}: {reason}")
        return self

    @staticmethod
    def _nll(k, params, f, r, t, lt, weights) -> float:
        return -float((weights * mbgcnbd_log_likelihood(k, *params, f, r, t, lt)).sum())

    def _fit_k(self, k, f, r, t, lt, weights) -> tuple[np.ndarray, float] | str:
        """``(r, alpha, a, b)`` and the log-likelihood for one ``k``, or why it failed."""
        scale = weights.sum()

        def objective(log_params):
            value = self._nll(k, np.exp(log_params), f, r, t, lt, weights) / scale
            return value if np.isfinite(value) else 1e300

        # Start from the data's own purchase rate (BTYDplus starts from fixed values).
        rate = max(float((weights * f).sum() / (weights * t).sum()), 1e-6)
        start = np.log([1.0, k / rate, 1.0, 3.0])
        result = optimize.minimize(objective, start, method="L-BFGS-B",
                                   bounds=[(-10, 10)] * 4)
        params = np.exp(result.x)
        ll = -self._nll(k, params, f, r, t, lt, weights)
        if not np.isfinite(ll) or not np.all(np.isfinite(params)):
            return f"the log-likelihood is {ll}"
        if np.any(np.abs(result.x) >= 10 - 1e-6):
            return f"a parameter ran to its bound ({dict(zip(self.param_names[1:], params.round(4), strict=True))})"
        return params, ll

    def _log_likelihood(self, f, r, t, weights) -> float:
        return self.log_likelihood_

    def _unusable(self, fitter, f, r, t, weights) -> str | None:
        k, rr, alpha, a, b = self.params_.to_numpy()
        p_alive = _probability_alive(int(k), rr, alpha, a, b, f, r, t)
        purchases = _conditional(int(k), rr, alpha, a, b, float(t.max()), f, r, t)
        bad = ~(np.isfinite(p_alive) & np.isfinite(purchases))
        if not np.isfinite(self.log_likelihood_):
            return f"the log-likelihood is {self.log_likelihood_}"
        if bad.any():
            return f"predictions are not finite for {int(weights[bad].sum())} of {int(weights.sum())} members"
        return None

    def _params(self) -> tuple:
        k, r, alpha, a, b = self.params_.to_numpy()
        return int(k), r, alpha, a, b

    def probability_alive(self, rfm: pd.DataFrame) -> pd.Series:
        """Probability that each member is still active at the end of observation."""
        (x, tx, T), rows = distinct_rows(*self._inputs(rfm))
        values = _probability_alive(*self._params(), x, tx, T)
        return pd.Series(values[rows], index=rfm.index, name="p_alive")

    def _conditional_purchases(self, t, frequency, recency, T) -> np.ndarray:
        return _conditional(*self._params(), t, frequency, recency, T)

    def predict_purchases(self, rfm: pd.DataFrame, t) -> pd.Series:
        """Expected purchases of each member in the next ``t`` time units (see the module
        docstring for ``k > 1``: rescaled to the exact total when 100 members or more)."""
        predicted = super().predict_purchases(rfm, t)
        k = self._params()[0]
        if k == 1 or len(rfm) < 100:
            return predicted
        T = rfm["T"].to_numpy(dtype=np.float64)
        horizon = np.broadcast_to(np.asarray(t, dtype=np.float64), T.shape)
        (t_before, t_after), rows = distinct_rows(T, T + horizon)
        exact = (self.expected_purchases(t_after) - self.expected_purchases(t_before))[rows].sum()
        total = predicted.sum()
        return predicted * (exact / total) if total > 0 else predicted

    def expected_purchases(self, t) -> np.ndarray:
        """Expected repeat purchases by time ``t`` after a new member's first purchase (exact)."""
        self._check_fitted()
        t = np.asarray(t, dtype=np.float64)
        values, rows = np.unique(np.maximum(t, 0.0), return_inverse=True)
        return _unconditional(*self._params(), values)[rows].reshape(t.shape)

    def time_to_next_purchase(self, rfm: pd.DataFrame, *, quantile: float = 0.5) -> pd.Series:
        """The ``quantile`` of the time to the next purchase if still active.

        The rate's posterior is taken as ``Gamma(r + k x, alpha + T)`` and the whole Erlang-k
        gap as still ahead (the phases already run since the last purchase are ignored, so
        the time is an upper estimate for ``k > 1``); a Gamma-mixed Erlang-k gap ends by ``t``
        with probability ``I_{t/(alpha+T+t)}(k, r + k x)``, solved for ``t``. For ``k = 1`` it
        equals MBG/NBD's.
        """
        if not 0 < quantile < 1:
            raise RFMInputError(f"quantile must be in (0, 1), got {quantile}")
        (x, _, T), rows = distinct_rows(*self._inputs(rfm))
        k, r, alpha, _, _ = self._params()
        shape, scale = r + k * x, alpha + T
        values = np.array([
            optimize.brentq(lambda t, s=s, c=c: special.betainc(k, s, t / (c + t)) - quantile,
                            0.0, 1e6 * c)
            for s, c in zip(shape, scale, strict=True)
        ])
        return pd.Series(values[rows], index=rfm.index, name="time_to_next_purchase")

    def parameter_covariance(self) -> pd.DataFrame:
        """Covariance of ``r, alpha, a, b`` (``k`` is chosen on a grid and held fixed)."""
        self._check_fitted()
        return self.covariance_

    def _with_params(self, values: np.ndarray) -> MBGCNBDModel:
        other = copy.copy(self)
        other.params_ = pd.Series(values, index=self.params_.index, name=self.params_.name)
        return other

    def _standard_errors(self) -> np.ndarray:
        return self.standard_errors_.reindex(self.params_.index).to_numpy()

    def summary(self) -> pd.DataFrame:
        """Parameters with standard errors (``k``: none, chosen on a grid) and the fit's
        figures, with the grid's log-likelihood per ``k``."""
        table = super().summary()
        table.attrs["log_likelihood_by_k"] = self.log_likelihood_by_k_.to_dict()
        return table


def simulate_mbgcnbd(n_members: int, *, k: int, r: float, alpha: float, a: float, b: float, T,
                     time_unit: str = "weeks", seed=None) -> pd.DataFrame:
    """Simulate members from MBG/CNBD-k with known parameters.

    Each member's rate is ``lambda ~ Gamma(r, rate=alpha)``, gaps between purchases are
    Erlang-k of rate ``k``-phases ``lambda`` (mean ``k / lambda``), and after every purchase
    (the first included) the member drops out with probability ``p ~ Beta(a, b)``; observed
    over ``(0, T]`` after the first purchase, ``T`` in ``time_unit``.

    Returns
    -------
    DataFrame
        ``frequency``, ``recency``, ``T``, ``litt`` and the hidden ``lambda_``, ``p``,
        ``alive``; ``attrs["time_unit"]`` records the unit (models fitted on it carry it).
    """
    check_unit(time_unit)
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=np.float64), (n_members,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n_members)
    p = rng.beta(a, b, n_members)
    frequency = np.zeros(n_members, dtype=np.int64)
    recency, litt, now = np.zeros(n_members), np.zeros(n_members), np.zeros(n_members)
    active = np.ones(n_members, dtype=bool)
    alive = np.ones(n_members, dtype=bool)
    while active.any():  # one purchase per step for the members still buying within T
        idx = np.flatnonzero(active)
        dropped = rng.random(len(idx)) < p[idx]
        alive[idx[dropped]] = False
        idx = idx[~dropped]
        gap = rng.gamma(k, 1.0 / lam[idx])
        now[idx] += gap
        within = now[idx] <= T[idx]
        bought = idx[within]
        frequency[bought] += 1
        recency[bought] = now[bought]
        litt[bought] += np.log(gap[within])
        active[:] = False
        active[bought] = True
    out = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T, "litt": litt,
                        "lambda_": lam, "p": p, "alive": alive})
    out.attrs = {"time_unit": time_unit}
    return out
