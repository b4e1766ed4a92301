"""Holdout validation of purchase models: tables, tracking curves, errors, plots, model choice.

Fit a model on the calibration period of a :class:`~rxrepurchase.rfm.CalibrationHoldout`, then
compare what it predicts for the holdout period with what members actually did, next to a
naive baseline: every member keeps buying at their calibration rate ``frequency / T`` (members
first seen on the cut date, ``T = 0``, are predicted 0 repeat purchases by the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rxrepurchase.errors import ModelFitError
from rxrepurchase.models import BGNBDModel, MBGNBDModel, ParetoNBDModel
from rxrepurchase.rfm import TIME_UNITS, CalibrationHoldout, RFMInputError

__all__ = [
    "CANDIDATE_MODELS",
    "ModelSelection",
    "holdout_by_frequency",
    "holdout_error",
    "holdout_predictions",
    "naive_holdout_prediction",
    "plot_holdout_by_frequency",
    "plot_tracking",
    "select_model",
    "tracking_curves",
]

CANDIDATE_MODELS = {"bgnbd": BGNBDModel, "mbgnbd": MBGNBDModel, "pareto_nbd": ParetoNBDModel}
"""Model names :func:`select_model` accepts."""


def _aligned(calibration: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    for col in ("frequency_holdout", "duration_holdout"):
        if col not in holdout.columns:
            raise RFMInputError(
                f"holdout table has no column {col!r} (use CalibrationHoldout.holdout)"
            )
    if not holdout.index.equals(calibration.index):
        raise RFMInputError("calibration and holdout tables must have the same members, in order")
    return holdout


def naive_holdout_prediction(calibration: pd.DataFrame, duration: float | pd.Series) -> pd.Series:
    """Repeat purchases each member makes in ``duration`` at their calibration rate ``x / T``."""
    frequency = calibration["frequency"].to_numpy(dtype=np.float64)
    T = calibration["T"].to_numpy(dtype=np.float64)
    rate = np.divide(frequency, T, out=np.zeros_like(frequency), where=T > 0)
    return pd.Series(rate * np.asarray(duration, dtype=np.float64), index=calibration.index, name="naive")


def holdout_predictions(model, calibration: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """Per member: ``actual`` holdout purchases, the model's ``predicted`` and the ``naive`` baseline."""
    holdout = _aligned(calibration, holdout)
    duration = holdout["duration_holdout"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "frequency": calibration["frequency"],
            "actual": holdout["frequency_holdout"].astype(np.float64),
            "predicted": model.predict_purchases(calibration, duration),
            "naive": naive_holdout_prediction(calibration, duration),
        }
    )


def holdout_by_frequency(
    model, calibration: pd.DataFrame, holdout: pd.DataFrame, *, max_frequency: int = 7
) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency: actual, model and naive baseline.

    Rows are calibration repeat-purchase counts ``0 .. max_frequency - 1`` and
    ``"{max_frequency}+"``; columns ``members``, ``actual``, ``predicted``, ``naive`` (means per
    member in the bin). This is Fader, Hardie & Lee's conditional-expectations check.
    """
    per_member = holdout_predictions(model, calibration, holdout)
    labels = [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]
    bins = pd.Categorical.from_codes(
        np.minimum(per_member["frequency"].to_numpy(), max_frequency), categories=labels
    )
    grouped = per_member[["actual", "predicted", "naive"]].groupby(bins, observed=False)
    table = grouped.mean().assign(members=grouped.size())
    table.index.name = "calibration_frequency"
    return table[["members", "actual", "predicted", "naive"]]


def holdout_error(model, calibration: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """Aggregate holdout errors of the model and the naive baseline.

    Rows ``model`` and ``naive``; columns ``mae`` and ``rmse`` (per member, in purchases),
    ``total_actual``, ``total_predicted`` and ``total_error_pct``
    (``100 * (predicted - actual) / actual`` over all members).
    """
    per_member = holdout_predictions(model, calibration, holdout)
    actual = per_member["actual"].to_numpy()
    rows = {}
    for name, column in (("model", "predicted"), ("naive", "naive")):
        predicted = per_member[column].to_numpy()
        error = predicted - actual
        total = actual.sum()
        rows[name] = {
            "mae": np.abs(error).mean(),
            "rmse": np.sqrt((error**2).mean()),
            "total_actual": total,
            "total_predicted": predicted.sum(),
            "total_error_pct": 100 * (predicted.sum() - total) / total if total else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def tracking_curves(model, split: CalibrationHoldout, *, period_days: int = 7) -> pd.DataFrame:
    """Repeat purchases per period and cumulatively: actual, model-predicted, naive baseline.

    Covers the calibration members from the first entry date to ``split.holdout_end``, in
    periods of ``period_days`` ending on the cut date (the last period ends on
    ``holdout_end`` and may be shorter). The model's curve is the unconditional expectation
    ``sum over members of E[X(t - first purchase)]``; the naive curve starts at the actual
    cumulative count on the cut date and adds each member's calibration rate.

    Returns
    -------
    DataFrame
        Indexed by period end date: ``actual``, ``predicted``, ``naive`` (per period; naive is
        empty in the calibration period), their ``*_cumulative`` sums, and ``holdout`` (bool).
    """
    if period_days < 1:
        raise RFMInputError(f"period_days must be at least 1, got {period_days}")
    unit_days = TIME_UNITS[split.time_unit]
    entries = split.first_purchases
    start, cut, end = entries.index.min(), split.cut_date, split.holdout_end
    step = pd.Timedelta(days=period_days)
    back = (cut - start) // step
    ends = pd.DatetimeIndex([cut - k * step for k in range(back, 0, -1)] + [cut])
    forward = [cut + k * step for k in range(1, (end - cut) // step + 1)]
    ends = ends.append(pd.DatetimeIndex(forward))
    if ends[-1] != end:
        ends = ends.append(pd.DatetimeIndex([end]))

    # Expected cumulative repeat purchases: members grouped by entry day, times each end day.
    elapsed = (ends.to_numpy()[:, None] - entries.index.to_numpy()[None, :]) / np.timedelta64(1, "D")
    expected = model.expected_purchases(elapsed / unit_days)  # 0 before a member's entry
    predicted_cum = expected @ entries.to_numpy(dtype=np.float64)

    repeats = split.repeat_purchases
    actual_cum = np.searchsorted(repeats.index.to_numpy(), ends.to_numpy(), side="right")
    actual_cum = np.concatenate(([0], np.cumsum(repeats.to_numpy())))[actual_cum].astype(np.float64)

    holdout = ends > cut
    total_rate = naive_holdout_prediction(split.calibration, 1.0).sum()  # purchases per unit
    at_cut = actual_cum[~holdout][-1]
    naive_cum = np.where(
        holdout, at_cut + total_rate * ((ends - cut).days.to_numpy() / unit_days), np.nan
    )
    curves = pd.DataFrame(
        {
            "actual_cumulative": actual_cum,
            "predicted_cumulative": predicted_cum,
            "naive_cumulative": naive_cum,
        },
        index=pd.DatetimeIndex(ends, name="period_end"),
    )
    for name in ("actual", "predicted", "naive"):
        curves[name] = np.diff(curves[f"{name}_cumulative"].to_numpy(), prepend=0.0)
    # The naive baseline's first holdout period starts from the actual count at the cut date.
    first = np.flatnonzero(holdout)
    if len(first):
        curves.iloc[first[0], curves.columns.get_loc("naive")] = naive_cum[first[0]] - at_cut
    curves["holdout"] = holdout
    return curves[
        ["actual", "predicted", "naive", "actual_cumulative", "predicted_cumulative",
         "naive_cumulative", "holdout"]
    ]  # fmt: skip


@dataclass
class ModelSelection:
    """Outcome of :func:`select_model`.

    Attributes
    ----------
    best : fitted model
        The candidate with the lowest holdout error (fitted on the calibration period; refit on
        all data before predicting forward).
    scores : DataFrame
        One row per candidate that fitted: the model's :func:`holdout_error` row, its
        ``log_likelihood`` and ``penalizer_coef``; plus a ``naive`` row for reference.
    failures : dict
        Candidate name -> why it could not be fitted.
    models : dict
        Candidate name -> fitted model.
    """

    best: object
    scores: pd.DataFrame
    failures: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)


def select_model(
    calibration: pd.DataFrame,
    holdout: pd.DataFrame,
    candidates=("bgnbd", "mbgnbd", "pareto_nbd"),
    *,
    metric: str = "rmse",
) -> ModelSelection:
    """Fit each candidate on the calibration period and pick the best on the holdout period.

    Parameters
    ----------
    calibration, holdout : DataFrame
        ``CalibrationHoldout.calibration`` and ``.holdout``.
    candidates : iterable
        Names from :data:`CANDIDATE_MODELS` or unfitted model instances (e.g.
        ``BGNBDModel(penalizer_coef=0.001)``).
    metric : {"rmse", "mae", "total_error_pct"}
        Holdout error to minimise (``total_error_pct`` by absolute value).

    Raises
    ------
    ModelFitError
        No candidate could be fitted (the reasons are in the message).
    """
    if metric not in ("rmse", "mae", "total_error_pct"):
        raise RFMInputError(f"metric must be rmse, mae or total_error_pct, got {metric!r}")
    _aligned(calibration, holdout)
    rows, failures, models = {}, {}, {}
    naive = None
    for candidate in candidates:
        if isinstance(candidate, str):
            if candidate not in CANDIDATE_MODELS:
                raise RFMInputError(
                    f"unknown model {candidate!r}; choose from {sorted(CANDIDATE_MODELS)}"
                )
            name, model = candidate, CANDIDATE_MODELS[candidate]()
        else:
            name, model = type(candidate).__name__, candidate
        try:
            model.fit(calibration)
        except ModelFitError as exc:
            failures[name] = str(exc)
            continue
        errors = holdout_error(model, calibration, holdout)
        rows[name] = {
            **errors.loc["model"].to_dict(),
            "log_likelihood": model.log_likelihood_,
            "penalizer_coef": model.penalizer_coef_,
        }
        naive = errors.loc["naive"].to_dict()
        models[name] = model
    if not models:
        raise ModelFitError(
            "no candidate model could be fitted: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items())
        )
    scores = pd.DataFrame.from_dict(rows, orient="index")
    best = scores[metric].abs().idxmin()
    scores.loc["naive", list(naive)] = list(naive.values())
    scores["selected"] = scores.index == best
    return ModelSelection(best=models[best], scores=scores, failures=failures, models=models)


def plot_holdout_by_frequency(table: pd.DataFrame, *, ax=None, naive: bool = True):
    """Bars of actual vs predicted mean holdout purchases by calibration frequency."""
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots()[1]
    x = np.arange(len(table))
    ax.plot(x, table["actual"], "o-", color="black", label="actual")
    ax.plot(x, table["predicted"], "s--", color="tab:blue", label="model")
    if naive:
        ax.plot(x, table["naive"], "^:", color="tab:orange", label="naive baseline")
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set_xlabel("repeat purchases in calibration period")
    ax.set_ylabel("mean purchases in holdout period")
    ax.set_title("Holdout purchases by calibration frequency")
    ax.legend()
    return ax


def plot_tracking(curves: pd.DataFrame, *, cumulative: bool = True, ax=None, naive: bool = True):
    """Actual vs predicted repeat purchases over time, with the cut date marked."""
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots()[1]
    suffix = "_cumulative" if cumulative else ""
    ax.plot(curves.index, curves[f"actual{suffix}"], color="black", label="actual")
    ax.plot(curves.index, curves[f"predicted{suffix}"], "--", color="tab:blue", label="model")
    if naive:
        ax.plot(curves.index, curves[f"naive{suffix}"], ":", color="tab:orange", label="naive baseline")
    calibration = curves.index[~curves["holdout"].to_numpy()]
    if len(calibration):
        ax.axvline(calibration[-1], color="grey", linewidth=1)
    ax.set_ylabel(("cumulative " if cumulative else "") + "repeat purchases")
    ax.set_title("Tracking: " + ("cumulative" if cumulative else "per period") + " repeat purchases")
    ax.legend()
    return ax
