"""Plots of :mod:`rxrepurchase.segments` (matplotlib, ``ax=`` like the rest of the package)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["plot_rfm_segments", "plot_hour_of_day_profile"]


def plot_rfm_segments(rfm: pd.DataFrame, *, ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars: members per RFM segment, largest first."""
    ax = ax if ax is not None else plt.gca()
    counts = rfm["segment"].value_counts(dropna=False).sort_values()
    ax.barh([str(i) for i in counts.index], counts.to_numpy(), color="tab:blue")
    ax.set_xlabel("members")
    return ax


def plot_hour_of_day_profile(
    profile: pd.DataFrame, by: str | None = None, *, ax: plt.Axes | None = None
) -> plt.Axes:
    """Share of orders per hour from :func:`hour_of_day_profile`, a line per group; the
    evening band 18-22 h is shaded."""
    ax = ax if ax is not None else plt.gca()
    groups = profile.groupby(by, dropna=False, observed=True) if by else [("all", profile)]
    for key, part in groups:
        ax.plot(part["hour"], part["share"], marker=".", label=str(key))
    ax.axvspan(18, 22, color="orange", alpha=0.12, label="18-22 h")
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour of day")
    ax.set_ylabel("share of orders")
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(title=by, fontsize="small")
    return ax
