"""Plots of the analysis modules, one module per domain (the analysis modules import no
pyplot: a report kernel or a batch job that draws nothing never loads matplotlib's pyplot
through them).

Every function takes ``ax=`` (a new figure's axes when not given) and returns the axes::

    from rxrepurchase.plots import plot_repurchase_rates
    plot_repurchase_rates(rates, ax=ax)
"""

from rxrepurchase.plots.cohorts import plot_cohort_comparison, plot_wave_response
from rxrepurchase.plots.holdout import plot_holdout_by_frequency, plot_tracking
from rxrepurchase.plots.metrics import (
    plot_inter_purchase_intervals,
    plot_repurchase_rates,
    plot_retention_curves,
    plot_retention_matrix,
)
from rxrepurchase.plots.models import plot_clv_by_group
from rxrepurchase.plots.refill import plot_pdc_by_product, plot_refills_due_by_week
from rxrepurchase.plots.segments import plot_hour_of_day_profile, plot_rfm_segments

__all__ = [
    "plot_clv_by_group",
    "plot_cohort_comparison",
    "plot_holdout_by_frequency",
    "plot_hour_of_day_profile",
    "plot_inter_purchase_intervals",
    "plot_pdc_by_product",
    "plot_refills_due_by_week",
    "plot_repurchase_rates",
    "plot_retention_curves",
    "plot_retention_matrix",
    "plot_rfm_segments",
    "plot_tracking",
    "plot_wave_response",
]
