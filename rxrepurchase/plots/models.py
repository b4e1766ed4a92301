"""Plots of :mod:`rxrepurchase.models` (matplotlib, ``ax=`` like the rest of the package)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from rxrepurchase.errors import RFMInputError

if TYPE_CHECKING:
    from rxrepurchase.models import GroupFits

__all__ = ["plot_clv_by_group"]


def plot_clv_by_group(fits: GroupFits, *, ax=None, log_scale: bool = False):
    """Box plot of predicted CLV per group (needs ``fit_by_group(..., gross_margin=...)``)."""
    if fits.scores.empty:
        raise RFMInputError("no CLV scores: call fit_by_group(..., gross_margin=...)")
    ax = ax if ax is not None else plt.subplots()[1]
    labels = list(dict.fromkeys(fits.scores["group"]))
    data = [fits.scores.loc[fits.scores["group"] == g, "clv"].to_numpy() for g in labels]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), [str(g) for g in labels])
    if log_scale:
        ax.set_yscale("symlog")
    ax.set_ylabel("predicted CLV")
    ax.set_title("CLV by group")
    return ax
