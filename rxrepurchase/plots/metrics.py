"""Plots of :mod:`rxrepurchase.metrics` (matplotlib, ``ax=`` like the rest of the package)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rxrepurchase.errors import MetricsInputError

__all__ = [
    "plot_inter_purchase_intervals",
    "plot_repurchase_rates",
    "plot_retention_curves",
    "plot_retention_matrix",
]


def plot_repurchase_rates(
    rates: pd.DataFrame,
    rate: str = "user_repurchase_rate",
    by: str | Sequence[str] | None = None,
    *,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Line chart of a rate from :func:`repurchase_rates` over windows, one line per group."""
    if rate not in rates.columns:
        raise MetricsInputError(f"rates has no column {rate!r}; columns: {list(rates.columns)}")
    by = [by] if isinstance(by, str) else list(by or [])
    ax = ax if ax is not None else plt.gca()
    groups = rates.groupby(by, dropna=False, sort=True) if by else [((), rates)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        label = " / ".join(map(str, key)) if by else rate.replace("_", " ")
        ax.plot(part["window_start"], part[rate], marker="o", label=label)
    ax.set_ylabel(rate.replace("_", " "))
    ax.set_ylim(0, None)
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    if by:
        ax.legend(title=" / ".join(by), fontsize="small")
    return ax


def plot_retention_matrix(matrix: pd.DataFrame, *, ax: plt.Axes | None = None) -> plt.Axes:
    """Heatmap of :func:`retention_matrix` (cohorts down, periods since first purchase across)."""
    ax = ax if ax is not None else plt.gca()
    values = matrix.to_numpy(dtype="float64")
    im = ax.imshow(values, aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index])
    if values.size <= 400:
        for (i, j), v in np.ndenumerate(values):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")  # fmt: skip
    ax.set_xlabel("periods since first purchase")
    ax.set_ylabel("cohort (first purchase)")
    ax.figure.colorbar(im, ax=ax, format=plt.matplotlib.ticker.PercentFormatter(1.0))
    return ax


def plot_retention_curves(
    curves: pd.DataFrame, by: str | Sequence[str] | None = None, *, ax: plt.Axes | None = None
) -> plt.Axes:
    """Retention by periods since first purchase from :func:`retention_curve`, a line per group."""
    by = [by] if isinstance(by, str) else list(by or [])
    ax = ax if ax is not None else plt.gca()
    groups = curves.groupby(by, dropna=False, sort=True) if by else [((), curves)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        ax.plot(part["periods_since_first"], part["retention"], marker="o",
                label=" / ".join(map(str, key)) if by else "all")  # fmt: skip
    ax.set_xlabel("periods since first purchase")
    ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("share of members purchasing")
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    if by:
        ax.legend(title=" / ".join(by), fontsize="small")
    return ax


def plot_inter_purchase_intervals(
    intervals: pd.DataFrame,
    by: str | None = None,
    *,
    max_days: int = 180,
    bins: int = 36,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Histogram of ``interval_days`` from :func:`inter_purchase_intervals`, one per group.

    Intervals longer than ``max_days`` are pooled in the last bin (stated in the x label), so
    the refill peak near 30 days stays readable.
    """
    ax = ax if ax is not None else plt.gca()
    edges = np.linspace(0, max_days, bins + 1)
    groups = intervals.groupby(by, dropna=False, sort=True) if by else [("all", intervals)]
    for key, part in groups:
        days = np.minimum(part["interval_days"].to_numpy(dtype="float64"), max_days)
        ax.hist(days, bins=edges, histtype="step", density=True, label=str(key), linewidth=1.5)
    ax.set_xlabel(f"days between purchases (≥{max_days} pooled in the last bin)")
    ax.set_ylabel("density")
    if by:
        ax.legend(title=by, fontsize="small")
    return ax
