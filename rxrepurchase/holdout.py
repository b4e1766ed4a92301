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

from rxrepurchase.arguments import TIME_UNITS
from rxrepurchase.errors import ModelFitError, RFMInputError
from rxrepurchase.mbgcnbd import MBGCNBDModel
from rxrepurchase.models import BGNBDModel, MBGNBDModel, ParetoNBDModel
from rxrepurchase.rfm import CalibrationHoldout

__all__ = [
    "CANDIDATE_MODELS",
    "ModelSelection",
    "frequency_bins",
    "holdout_by_frequency",
    "holdout_error",
    "holdout_predictions",
    "naive_holdout_prediction",
    "paired_bootstrap",
    "select_model",
    "tracking_curves",
]

CANDIDATE_MODELS = {"bgnbd": BGNBDModel, "mbgnbd": MBGNBDModel, "pareto_nbd": ParetoNBDModel,
                    "mbgcnbd": MBGCNBDModel}
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


def frequency_bins(frequency, *, n_bins: int = 8) -> pd.Categorical:
    """Bins of calibration repeat-purchase counts that adapt to the members: consecutive counts
    are grouped until a bin holds at least ``1 / n_bins`` of the members, so that no bin holds
    most of them unless a single count does (as 0 does on CDNOW). Labels are ``"3"``, ``"4-6"``
    and, for the last bin when it holds several counts, ``"12+"``."""
    frequency = np.asarray(frequency, dtype=np.int64)
    if n_bins < 2:
        raise RFMInputError(f"n_bins must be at least 2, got {n_bins}")
    values, counts = np.unique(frequency, return_counts=True)
    target = len(frequency) / n_bins
    starts, size = [0], 0
    for i, count in enumerate(counts[:-1]):
        size += count
        if size >= target and len(starts) < n_bins:
            starts.append(i + 1)
            size = 0
    ends = [*starts[1:], len(values)]
    labels = []
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        lo, hi = values[a], values[b - 1]
        last = k == len(starts) - 1
        labels.append(str(lo) if lo == hi else f"{lo}+" if last else f"{lo}-{hi}")
    codes = np.searchsorted(values[starts], frequency, side="right") - 1
    return pd.Categorical.from_codes(codes, categories=labels)


def holdout_by_frequency(
    model, calibration: pd.DataFrame, holdout: pd.DataFrame, *, max_frequency: int | None = None,
    n_bins: int = 8,
) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency: actual, model and naive baseline.

    Rows are bins of calibration repeat-purchase counts: by default :func:`frequency_bins`
    (``n_bins`` bins adapted to the members, so that a chain of frequent buyers is not lumped
    into one top bin); with ``max_frequency``, the counts ``0 .. max_frequency - 1`` and
    ``"{max_frequency}+"``. Columns ``members``, ``actual``, ``predicted``, ``naive`` (means per
    member in the bin). This is Fader, Hardie & Lee's conditional-expectations check.
    """
    per_member = holdout_predictions(model, calibration, holdout)
    if max_frequency is None:
        bins = frequency_bins(per_member["frequency"], n_bins=n_bins)
    else:
        labels = [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]
        bins = pd.Categorical.from_codes(
            np.minimum(per_member["frequency"].to_numpy(), max_frequency), categories=labels
        )
    grouped = per_member[["actual", "predicted", "naive"]].groupby(bins, observed=False)
    table = grouped.mean().assign(members=grouped.size())
    table.index.name = "calibration_frequency"
    return table[["members", "actual", "predicted", "naive"]]


def _scores(actual: np.ndarray, predicted: np.ndarray) -> dict:
    error = predicted - actual
    total = actual.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (np.corrcoef(predicted, actual)[0, 1]
                       if np.std(predicted) > 0 and np.std(actual) > 0 else np.nan)
    return {
        "mae": np.abs(error).mean(),
        "rmse": np.sqrt((error**2).mean()),
        "correlation": correlation,
        "total_actual": total,
        "total_predicted": predicted.sum(),
        "total_error_pct": 100 * (predicted.sum() - total) / total if total else np.nan,
    }


def holdout_error(model, calibration: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """Aggregate holdout errors of the model, the naive baseline and predicting zero.

    Rows ``model``, ``naive`` and ``zero`` (no member buys again: on CDNOW its MAE, 0.80, is
    close to the models', so read MAE beside the others); columns ``mae`` and ``rmse`` (per
    member, in purchases), ``correlation`` (Pearson, predicted vs actual per member; empty for
    a constant prediction), ``total_actual``, ``total_predicted`` and ``total_error_pct``
    (``100 * (predicted - actual) / actual`` over all members).
    """
    per_member = holdout_predictions(model, calibration, holdout)
    actual = per_member["actual"].to_numpy()
    rows = {name: _scores(actual, per_member[column].to_numpy())
            for name, column in (("model", "predicted"), ("naive", "naive"))}
    rows["zero"] = _scores(actual, np.zeros_like(actual))
    return pd.DataFrame.from_dict(rows, orient="index")


def paired_bootstrap(actual, reference, candidate, *, metric: str = "rmse", n_boot: int = 500,
                     confidence: float = 0.95, seed: int = 0) -> dict:
    """Is ``candidate`` better than ``reference`` by more than noise? Members are resampled
    (the same members for both, so the comparison is paired) ``n_boot`` times and ``metric``
    (``rmse``, ``mae`` or ``total_error_pct``, by absolute value) computed on each resample.

    Returns ``difference`` (candidate - reference on all members; negative: candidate
    better), its percentile interval ``low`` / ``high`` and ``better`` (the whole interval
    below 0)."""
    actual, reference, candidate = (np.asarray(a, dtype=np.float64)
                                    for a in (actual, reference, candidate))

    def score(pred: np.ndarray, idx) -> np.ndarray:
        a, p = actual[idx], pred[idx]
        if metric == "rmse":
            return np.sqrt(((p - a) ** 2).mean(axis=-1))
        if metric == "mae":
            return np.abs(p - a).mean(axis=-1)
        return np.abs(100 * (p.sum(axis=-1) - a.sum(axis=-1)) / a.sum(axis=-1))

    whole = np.arange(len(actual))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):  # one resample at a time: memory stays O(members)
        idx = rng.integers(0, len(actual), len(actual))
        diffs[b] = score(candidate, idx) - score(reference, idx)
    low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"difference": float(score(candidate, whole) - score(reference, whole)),
            "low": float(low), "high": float(high), "better": bool(high < 0)}


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
    start, cut, end = entries.index.min(), split.calibration_end, split.holdout_end
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
        The reference (the first candidate that fitted) unless another is better on the
        holdout by more than noise (fitted on the calibration period; refit on all data before
        predicting forward).
    scores : DataFrame
        One row per candidate that fitted: the model's :func:`holdout_error` row, its
        ``log_likelihood`` and ``penalizer_coef``, and the paired bootstrap against the
        reference (``vs_reference``, ``vs_reference_low``, ``vs_reference_high``,
        ``clearly_better``); plus ``naive`` and ``zero`` rows for reference.
    failures : dict
        Candidate name -> why it could not be fitted or predicted.
    models : dict
        Candidate name -> fitted model.
    reason : str
        The choice in words, with the test behind it.
    """

    best: object
    scores: pd.DataFrame
    failures: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    reason: str = ""

    def __str__(self) -> str:
        failed = "".join(f"\n  {name} failed: {why}" for name, why in self.failures.items())
        return self.reason + failed


def select_model(
    calibration: pd.DataFrame,
    holdout: pd.DataFrame,
    candidates=("bgnbd", "mbgnbd", "pareto_nbd", "mbgcnbd"),
    *,
    metric: str = "rmse",
    n_boot: int = 500,
    confidence: float = 0.95,
) -> ModelSelection:
    """Fit each candidate on the calibration period and choose one on the holdout period.

    The first candidate that fits is the reference (list the simplest first; BG/NBD by
    default). Another candidate replaces it only when it is better by more than noise: a
    paired bootstrap of the members (:func:`paired_bootstrap`, ``n_boot`` resamples) puts the
    whole ``confidence`` interval of its ``metric`` minus the reference's below zero. Among
    such candidates the one with the lowest ``metric`` is chosen. ``reason`` (and
    ``str(selection)``) says which and why.

    A candidate whose fit fails (:class:`ModelFitError`, which includes a non-finite
    log-likelihood or predictions on the calibration data) or whose holdout predictions are
    not all finite is listed in ``failures`` with the reason.

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
    rows, failures, models, predictions = {}, {}, {}, {}
    errors = None
    actual = holdout["frequency_holdout"].to_numpy(dtype=np.float64)
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
        predicted = holdout_predictions(model, calibration, holdout)["predicted"].to_numpy()
        bad = ~np.isfinite(predicted)
        if bad.any():
            failures[name] = (f"holdout predictions are not finite for {int(bad.sum())} of "
                              f"{len(bad)} members (e.g. {', '.join(map(str, calibration.index[bad][:3]))})")
            continue
        errors = holdout_error(model, calibration, holdout)
        rows[name] = {
            **errors.loc["model"].to_dict(),
            "log_likelihood": model.log_likelihood_,
            "penalizer_coef": model.penalizer_coef_,
        }
        models[name], predictions[name] = model, predicted
    if not models:
        raise ModelFitError(
            "no candidate model could be fitted: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items())
        )
    scores = pd.DataFrame.from_dict(rows, orient="index")
    reference = scores.index[0]
    tests = {name: paired_bootstrap(actual, predictions[reference], predictions[name],
                                    metric=metric, n_boot=n_boot, confidence=confidence)
             for name in scores.index}
    scores["vs_reference"] = [tests[n]["difference"] for n in scores.index]
    scores["vs_reference_low"] = [tests[n]["low"] for n in scores.index]
    scores["vs_reference_high"] = [tests[n]["high"] for n in scores.index]
    scores["clearly_better"] = pd.array([tests[n]["better"] for n in scores.index], dtype="boolean")
    better = scores[scores["clearly_better"]]
    best = better[metric].abs().idxmin() if len(better) else reference
    scores = pd.concat([scores, errors.loc[["naive", "zero"]]])
    scores["selected"] = scores.index == best
    return ModelSelection(best=models[best], scores=scores, failures=failures, models=models,
                          reason=_selection_reason(scores, reference, best, metric, confidence))


def _selection_reason(scores: pd.DataFrame, reference: str, best: str, metric: str,
                      confidence: float) -> str:
    lines = [f"Selected {best} on holdout {metric}; reference {reference} "
             f"({metric} {scores.at[reference, metric]:.4g}). Paired bootstrap of members, "
             f"{metric} minus the reference's, {confidence:.0%} interval:"]
    for name in scores.index:
        if name in ("naive", "zero") or name == reference:
            continue
        verdict = "better by more than noise" if scores.at[name, "clearly_better"] else "not clearly better"
        lines.append(f"  {name}: {metric} {scores.at[name, metric]:.4g}, difference "
                     f"{scores.at[name, 'vs_reference']:+.4g} [{scores.at[name, 'vs_reference_low']:+.4g}, "
                     f"{scores.at[name, 'vs_reference_high']:+.4g}]: {verdict}")
    return "\n".join(lines)
