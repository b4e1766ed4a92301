"""Plots of :mod:`rxrepurchase.refill` (matplotlib, ``ax=`` like the rest of the package)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.errors import RefillError
from rxrepurchase.i18n import t

__all__ = ["plot_refills_due_by_week", "plot_pdc_by_product"]


def plot_refills_due_by_week(predictions: pd.DataFrame, *, weeks: int = 8, lang: str = "en",
                             ax=None):
    """Bar chart of member x products coming due per week ahead of the prediction day; the
    first bar holds those past their expected day (due now or overdue, not lapsed).
    Texts in ``lang`` (``"en"`` or ``"zh"``, :mod:`rxrepurchase.i18n`). Returns the Axes."""
    require_columns(predictions, ["status", "days_until_due"], "predictions", error=RefillError)
    ax = ax if ax is not None else plt.subplots(figsize=(7, 3.5))[1]
    # Unknown rows (one-off buys among them) are never due.
    until = predictions["days_until_due"].astype("float64").where(predictions["status"] != "unknown")
    upcoming = until[(until > 0) & (until <= 7 * weeks)]
    week = np.ceil(upcoming / 7).astype(int)
    counts = week.value_counts().reindex(range(1, weeks + 1), fill_value=0)
    overdue = int(((until <= 0) & predictions["status"].isin(["due_now", "overdue"])).sum())
    labels = [t("refills_due_now", lang), *[t("week_n", lang, n=w) for w in counts.index]]
    values = [overdue, *counts.tolist()]
    ax.bar(labels, values, color=["#c0392b", *["#2e86c1"] * len(counts)])
    ax.set_xlabel(t("weeks_ahead", lang))
    ax.set_ylabel(t("member_products", lang))
    as_of = predictions.attrs.get("as_of")
    title = t("refills_due_title", lang)
    ax.set_title(title if as_of is None else t("as_of_suffix", lang, what=title,
                                                 as_of=f"{as_of:%Y-%m-%d}"))
    ax.tick_params(axis="x", labelsize=8)
    return ax


def plot_pdc_by_product(adherence_table: pd.DataFrame, *, top: int = 10,
                        threshold: float = 0.8, lang: str = "en", ax=None):
    """Box plots of PDC for the ``top`` product groups with most eligible members (largest
    first), with the adherence threshold. Texts in ``lang`` (``"en"`` or ``"zh"``). Returns the
    Axes."""
    require_columns(adherence_table, ["product", "pdc", "eligible"], "adherence table",
                    error=RefillError)
    ax = ax if ax is not None else plt.subplots(figsize=(0.6 * top + 2, 4))[1]
    eligible = adherence_table[adherence_table["eligible"]]
    biggest = eligible["product"].value_counts().index[:top]
    label_col = "product_name" if "product_name" in eligible else "product"
    labels = eligible.groupby("product", observed=True)[label_col].last()
    data = [eligible.loc[eligible["product"] == p, "pdc"].to_numpy() for p in biggest]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(biggest) + 1), [str(labels[p]) for p in biggest],
                  rotation=30, ha="right", fontsize=8)
    ax.axhline(threshold, color="#c0392b", linestyle="--",
               label=t("pdc_adherent_line", lang, threshold=threshold))
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(t("pdc_axis", lang))
    ax.legend(loc="lower left", fontsize=8)
    return ax
