"""Plots of :mod:`rxrepurchase.cohorts` (matplotlib, ``ax=`` like the rest of the package)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from rxrepurchase.errors import MetricsInputError

__all__ = ["plot_cohort_comparison", "plot_wave_response"]


def plot_cohort_comparison(
    table: pd.DataFrame,
    metric: str = "user_repurchase_rate",
    by: str | None = None,
    *,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Bar chart of one column of :func:`compare_cohorts` per cohort (grouped by ``by``)."""
    if metric not in table.columns:
        raise MetricsInputError(f"table has no column {metric!r}; columns: {list(table.columns)}")
    ax = ax if ax is not None else plt.gca()
    wide = (
        table.pivot_table(index=by, columns="subsidy_cohort", values=metric, sort=False)
        if by
        else table.set_index("subsidy_cohort")[[metric]].T
    )
    wide.plot.bar(ax=ax, rot=0, legend=True)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_xlabel(by or "")
    if metric.endswith("rate") or metric.startswith("repurchase"):
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    return ax


def plot_wave_response(waves: pd.DataFrame, *, ax: plt.Axes | None = None) -> plt.Axes:
    """Participants per wave (bars) and the full-price repurchase rate after it (line, right
    axis), one line per cohort when :func:`wave_response` was given cohorts."""
    ax = ax if ax is not None else plt.gca()
    total = waves.groupby("wave")["participants"].sum()
    ax.bar(total.index, total.to_numpy(), color="0.85", label="participants")
    ax.set_xlabel("promotion wave")
    ax.set_ylabel("participants")
    ax.set_xticks(total.index)
    right = ax.twinx()
    groups = waves.groupby("subsidy_cohort") if "subsidy_cohort" in waves else [("all", waves)]
    for name, g in groups:
        right.plot(g["wave"], g["full_price_repurchase_rate"], marker="o", label=str(name))
    days = int(waves["days"].iloc[0]) if len(waves) else "N"
    right.set_ylabel(f"full-price repurchase within {days} days")
    right.set_ylim(0, None)
    right.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    if len(waves):
        right.legend(fontsize="small", loc="upper right")
    return ax
