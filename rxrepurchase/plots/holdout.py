"""Plots of :mod:`rxrepurchase.holdout` (matplotlib, ``ax=`` like the rest of the package)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_holdout_by_frequency", "plot_tracking"]


def plot_holdout_by_frequency(table: pd.DataFrame, *, ax=None, naive: bool = True):
    """Bars of actual vs predicted mean holdout purchases by calibration frequency."""
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
