"""Figures and tables the report notebooks show, assembled from the analysis modules.

The notebooks in ``notebooks/`` only call these functions and display what they return; the
analysis itself lives in :mod:`rxrepurchase.metrics`, :mod:`rxrepurchase.cohorts`,
:mod:`rxrepurchase.models`, :mod:`rxrepurchase.refill`. :func:`store_headline` is also what the
runner writes to each store's ``metrics.json`` and what the index page shows.

:func:`store_page` computes everything a store report shows; the report run calls it in its
slice step, and the store's kernel only renders the page with the ``*_html``, ``*_summary``
and ``plot_*`` functions here. So that such a kernel loads no analysis module (scipy,
statsmodels, lifetimes, Ibis), this module imports them inside the functions that compute.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rxrepurchase.contract import TIERS
from rxrepurchase.errors import ModelFitError, ReportDataError
from rxrepurchase.i18n import (
    DEFAULT_CURRENCY,
    STRINGS,
    check_currency,
    format_count,
    format_money,
    format_rate,
    format_text,
    label,
    normalize_lang,
    set_currency,
    t,
    windowed,
)
from rxrepurchase.outputs import write_atomic
from rxrepurchase.renames import renamed_attribute, renamed_keywords
from rxrepurchase.rendering import render_section

if TYPE_CHECKING:
    from rxrepurchase.cohorts import CohortRules
    from rxrepurchase.loading import Chain
    from rxrepurchase.models import BGNBDModel, GammaGammaModel
    from rxrepurchase.refill import RefillOverview

__all__ = [
    "campaign_effects",
    "uplift_html",
    "uplift_ranking_html",
    "ReportDataError",
    "ChainWide",
    "chain_wide",
    "chain_medians",
    "monthly_chain_medians",
    "action_list_metrics",
    "actions_html",
    "adherence_table_html",
    "channels_table_html",
    "plot_hours",
    "plot_refills_due",
    "plot_rfm",
    "refills_summary",
    "segments_summary",
    "store_refills",
    "store_segments",
    "store_this_week",
    "store_wake_up",
    "this_week_html",
    "this_week_metrics",
    "tiers_table_html",
    "write_action_lists",
    "note_html",
    "section_metrics",
    "StoreModels",
    "holdout_check",
    "holdout_summary",
    "model_summary",
    "plot_clv_by_cohort",
    "plot_holdout_check",
    "store_models",
    "value_by",
    "value_table_html",
    "MIN_ACTIVE_MEMBERS",
    "OUTLIER_COLUMNS",
    "calibration_note",
    "post_subsidy_note",
    "repurchase_interval",
    "store_ranking",
    "chain_comparison",
    "chain_value_html",
    "outliers_text",
    "plot_subsidy_efficiency",
    "chain_ranking_html",
    "chain_title",
    "cohort_label",
    "cohort_summary",
    "cohort_table_html",
    "headline_html",
    "monthly_repurchase",
    "plot_cohort_retention",
    "plot_cohort_spend",
    "plot_monthly_repurchase",
    "plot_post_subsidy",
    "plot_waves",
    "plot_store_rates",
    "quality_html",
    "quality_table",
    "quality_table_html",
    "RefillSection",
    "StorePage",
    "store_page",
    "report_period",
    "report_title",
    "store_cohorts",
    "store_headline",
    "table_html",
    "waves_table_html",
    "write_metrics",
    "attention_html",
    "chain_totals_html",
    "plot_chain_trend",
    "GLOSSARY",
    "glossary_html",
    "hours_reading",
    "rfm_actions_html",
    "store_tags",
    "STORE_TABLES",
    "store_tables",
    "tags_reading",
    "waves_reading",
    "period_days_of",
    "windowed",
]


MIN_ACTIVE_MEMBERS = 30
"""Fewest active members a store needs to be ranked, flagged as an outlier or counted in the
chain median (``min_active_members`` of the functions below)."""


@dataclass
class ChainWide:
    """The chain-wide work behind every store report, done once per run.

    A store's cohorts classify its members on their whole history in the chain, and its
    refill figures use the chain's product rhythms; both need the whole chain. The runner
    computes them once (:func:`chain_wide`) and every store notebook takes its slice, instead
    of each store repeating the work.

    Attributes
    ----------
    as_of : Timestamp
        ``chain.as_of`` of the chain they were computed on.
    source : Path or None
        ``chain.source`` of that chain.
    rules : CohortRules
        The cohort rules of ``members``.
    members : DataFrame
        :func:`~rxrepurchase.cohorts.classify_members` of every member.
    refill_predictions, refill_adherence, refill_lift : DataFrame
        Chain-wide :func:`~rxrepurchase.refill.predict_refills`,
        :func:`~rxrepurchase.refill.adherence` and :func:`~rxrepurchase.refill.co_purchase_lift`
        (product groups by SKU, as :func:`store_refills` uses them).
    refill_list_check : DataFrame
        Chain-wide :func:`~rxrepurchase.refill.list_check`: the reminder list as sent 30 days
        before ``as_of`` and who refilled since (its measured precision).
    last_orders : DataFrame
        ``member_id, ordered_at``: each member's last order anywhere in the chain (who bought
        recently, for the wake-up and lapsed-refill lists).
    headline_medians : dict
        The chain medians a store's headline compares against (:func:`chain_medians`).
    monthly_medians : DataFrame
        The chain medians of every month of :func:`monthly_repurchase`
        (:func:`monthly_chain_medians`).
    store_id : str or None
        Set when these are one store's share (:func:`rxrepurchase.report_slices.store_slice`):
        the member tables then hold that store's members only, and ``campaign_effects`` is
        :func:`campaign_effects` of the store (None when the export has no send lists).
    by_store : dict of DataFrame or None
        :func:`store_tables`: the per-store tables of every store's page, each computed once
        for all stores (grouped by ``store_id``); a store's share holds its own rows only.
    """

    as_of: pd.Timestamp
    source: Path | None
    rules: CohortRules
    members: pd.DataFrame
    refill_predictions: pd.DataFrame
    refill_adherence: pd.DataFrame
    refill_lift: pd.DataFrame
    refill_list_check: pd.DataFrame
    last_orders: pd.DataFrame | None = None
    headline_medians: dict | None = None
    monthly_medians: pd.DataFrame | None = None
    store_id: str | None = None
    campaign_effects: pd.DataFrame | None = None
    by_store: dict | None = None

    def check(self, chain: Chain, store_id: str | None = None) -> None:
        """Raise :class:`ReportDataError` unless these were computed on ``chain``'s data and day
        (and, for one store's share, are that store's)."""
        if self.as_of != chain.as_of or self.source != chain.source:
            raise ReportDataError(
                f"the chain-wide figures are of {self.source or 'a chain'} as of "
                f"{self.as_of.date()}, not of {chain.source or 'this chain'} as of "
                f"{chain.as_of.date()}; leave them out to compute them from the chain"
            )
        if self.store_id is not None and store_id is not None and store_id != self.store_id:
            raise ReportDataError(f"the chain-wide figures given are store {self.store_id}'s "
                                  f"share, not store {store_id}'s")


def chain_wide(chain: Chain, *, rules: CohortRules | None = None, period_days: int = 90,
               min_active_members: int = MIN_ACTIVE_MEMBERS) -> ChainWide:
    """Compute the chain-wide figures every store report needs (see :class:`ChainWide`);
    ``period_days`` and ``min_active_members`` are those of the store reports' headlines."""
    from rxrepurchase.cohorts import CohortRules, classify_members
    from rxrepurchase.refill import (
        adherence,
        co_purchase_lift,
        list_check,
        predict_refills,
        refill_fills,
    )

    rules = rules or CohortRules()
    members = classify_members(chain.orders, chain.campaigns, order_lines=chain.order_lines,
                               as_of=chain.as_of, rules=rules)
    fills = refill_fills(chain.order_lines, chain.orders, chain.members)
    bought = chain.member_orders
    last = bought.groupby("member_id", sort=False, observed=True)["ordered_at"].max()
    tables = store_tables(chain, members, rules=rules, period_days=period_days,
                          min_active_members=min_active_members)
    return ChainWide(
        as_of=chain.as_of,
        source=chain.source,
        rules=rules,
        members=members,
        refill_predictions=predict_refills(fills, as_of=chain.as_of),
        refill_adherence=adherence(fills, end=chain.as_of),
        refill_lift=co_purchase_lift(chain.order_lines, chain.orders, end=chain.as_of),
        refill_list_check=list_check(fills, as_of=chain.as_of),
        last_orders=last.reset_index(),
        headline_medians=chain_medians(chain, period_days=period_days,
                                       min_active_members=min_active_members,
                                       rates=tables["headline"]),
        monthly_medians=monthly_chain_medians(chain, min_active_members=min_active_members,
                                              rates=tables["monthly"]),
        by_store=tables,
    )


STORE_TABLES = ("headline", "monthly", "tier", "stored_value_holder", "channel", "tags",
                "cohorts")
"""The tables of :func:`store_tables`."""


def store_tables(chain: Chain, members: pd.DataFrame, *, rules: CohortRules | None = None,
                 period_days: int = 90, months: int = 12, outcome_days: int = 90,
                 min_active_members: int = MIN_ACTIVE_MEMBERS) -> dict[str, pd.DataFrame]:
    """The per-store tables of the store pages, computed once for every store.

    Each is one grouped query on the whole chain instead of one query per store: a store's
    rows equal what its page would compute from its own orders (every figure is counted within
    the store). The store functions take their rows from :class:`ChainWide` (``by_store``).

    Returns
    -------
    dict of DataFrame
        ``headline``: :func:`~rxrepurchase.metrics.repurchase_rates` of the headline period by
        ``store_id`` (:func:`store_headline`); ``monthly``: by ``store_id`` and month
        (:func:`monthly_repurchase`); ``tier``, ``stored_value_holder``, ``channel``: of the
        headline period by ``store_id`` and that column (:func:`store_segments`); ``tags``:
        :func:`~rxrepurchase.readings.tag_repurchase` by ``store_id`` (:func:`store_tags`);
        ``cohorts``: :func:`~rxrepurchase.cohorts.compare_cohorts` by ``store_id`` of the
        members classified in ``members`` with ``rules`` (:func:`store_cohorts`,
        :func:`chain_comparison`). Their ``attrs`` name ``period_days``, ``months``,
        ``outcome_days`` and ``min_active_members``.
    """
    from rxrepurchase.cohorts import compare_cohorts
    from rxrepurchase.metrics import repurchase_rates
    from rxrepurchase.readings import tag_repurchase

    period = report_period(chain.as_of, period_days)
    segments = _segment_members(chain.members)
    tables = {
        "headline": repurchase_rates(chain.orders, period, by="store_id"),
        "monthly": _monthly_rates(chain.orders, chain.as_of, months),
        **{by: repurchase_rates(chain.orders, period, by=["store_id", by], members=segments)
           for by in ("tier", "stored_value_holder")},
        "channel": repurchase_rates(chain.orders, period, by=["store_id", "channel"]),
        "tags": tag_repurchase(chain.orders, chain.members, period,
                               min_members=min_active_members, by="store_id"),
        "cohorts": compare_cohorts(chain.orders, members, "store_id", campaigns=chain.campaigns,
                                   as_of=chain.as_of, outcome_days=outcome_days, rules=rules),
    }
    for table in tables.values():
        table.attrs = {"period_days": period_days, "months": months, "outcome_days": outcome_days,
                       "min_active_members": min_active_members}
    return tables


def _store_rows(shared: ChainWide | None, name: str, chain: Chain, store_id: str,
                **settings) -> pd.DataFrame | None:
    """The store's rows of ``shared``'s table ``name`` (:func:`store_tables`, computed with
    ``settings``), numbered from 0 as the store's own query would; None when not given."""
    if shared is None or not shared.by_store or name not in shared.by_store:
        return None
    shared.check(chain, store_id)
    table = shared.by_store[name]
    for key, wanted in settings.items():
        if table.attrs.get(key) != wanted:
            raise ReportDataError(f"the chain-wide {name} table was computed with {key}="
                                  f"{table.attrs.get(key)}, not {wanted}; compute it with "
                                  f"chain_wide(..., {key}={wanted}) or leave it out")
    rows = table[table["store_id"] == store_id].reset_index(drop=True)
    rows.attrs = {}
    return rows


def _segment_members(members: pd.DataFrame) -> pd.DataFrame:
    """``members`` with ``stored_value_holder`` (a positive stored-value balance)."""
    return members.assign(stored_value_holder=members["stored_value_balance"].fillna(0) > 0)


def _monthly_rates(orders: pd.DataFrame, as_of: pd.Timestamp, months: int) -> pd.DataFrame:
    """Repurchase rates by ``store_id`` of the last ``months`` calendar months to ``as_of``."""
    from rxrepurchase.metrics import repurchase_rates

    start = (as_of.to_period("M") - (months - 1)).to_timestamp()
    return repurchase_rates(orders, "M", by="store_id", start=start, end=as_of)


def report_period(as_of: pd.Timestamp, period_days: int = 90) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The headline period: the ``period_days`` days ending on ``as_of`` (both inclusive)."""
    if period_days < 1:
        raise ValueError(f"period_days must be at least 1, got {period_days}")
    end = pd.Timestamp(as_of).normalize()
    return end - pd.Timedelta(days=period_days - 1), end


def _number(value) -> float | None:
    """JSON-safe float: NaN (a rate over nobody) becomes None."""
    value = float(value)
    return None if math.isnan(value) else value


def repurchase_interval(repeat: pd.Series | float, members: pd.Series | float,
                        level: float = 0.95) -> tuple:
    """Wilson interval (statsmodels) of a user repurchase rate: ``repeat`` of ``members``
    bought twice or more. NaN where ``members`` is 0."""
    # Imported here: statsmodels loads scipy.stats, which a store kernel that only renders its
    # precomputed page does not need.
    from statsmodels.stats.proportion import proportion_confint

    n = np.asarray(members, dtype="float64")
    k = np.asarray(repeat, dtype="float64")
    safe = np.where(n > 0, n, 1)
    low, high = proportion_confint(k, safe, alpha=1 - level, method="wilson")
    # At k = 0 or k = n statsmodels' bounds miss the rate by rounding (2.8e-17 above 0).
    rate = k / safe
    low, high = np.minimum(low, rate), np.maximum(high, rate)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def _chain_median(rates: pd.DataFrame, column: str, min_active_members: int) -> float | None:
    """Median of ``column`` over the stores with at least ``min_active_members`` members."""
    return _number(rates.loc[rates["members"] >= min_active_members, column].median())


def chain_medians(chain: Chain, *, period_days: int = 90,
                  min_active_members: int = MIN_ACTIVE_MEMBERS,
                  rates: pd.DataFrame | None = None) -> dict:
    """The chain medians of the headline's two rates over the stores with at least
    ``min_active_members`` active members in the ``period_days`` days to ``chain.as_of``
    (``chain_median_user_repurchase_rate``, ``chain_median_order_repurchase_rate``; None
    when no store has that many), with the two settings they were computed with. ``rates``:
    the stores' rates of that period (:func:`store_tables` ``["headline"]``) when already
    computed."""
    from rxrepurchase.metrics import repurchase_rates

    if rates is None:
        rates = repurchase_rates(chain.orders, report_period(chain.as_of, period_days),
                                 by="store_id")
    return {"period_days": period_days, "min_active_members": min_active_members,
            **{f"chain_median_{c}": _chain_median(rates, c, min_active_members)
               for c in ("user_repurchase_rate", "order_repurchase_rate")}}


def _shared_figure(shared: ChainWide | None, name: str, chain: Chain, store_id: str, **settings):
    """``shared``'s figure ``name`` when it was computed with ``settings``, else None."""
    if shared is None or getattr(shared, name) is None:
        return None
    shared.check(chain, store_id)
    value = getattr(shared, name)
    made = value if isinstance(value, dict) else value.attrs
    for key, wanted in settings.items():
        if made.get(key) != wanted:
            raise ReportDataError(f"the chain-wide {name} were computed with {key}="
                                  f"{made.get(key)}, not {wanted}; compute them with "
                                  f"chain_wide(..., {key}={wanted}) or leave them out")
    return value


def store_headline(chain: Chain, store_id: str, *, period_days: int = 90,
                   min_active_members: int = MIN_ACTIVE_MEMBERS,
                   shared: ChainWide | None = None) -> dict:
    """A store's headline figures over the last ``period_days`` days to ``chain.as_of``.

    Parameters
    ----------
    chain : Chain
        The whole chain (the chain median needs every store).
    store_id : str
        The store.
    period_days : int
        Length of the headline period.

    Returns
    -------
    dict
        JSON-ready: ``store_id, store_name, city, manager_email, as_of, period_start,
        period_end, user_repurchase_rate, order_repurchase_rate`` (the store's, see
        :func:`rxrepurchase.metrics.repurchase_rates`), ``chain_median_user_repurchase_rate,
        chain_median_order_repurchase_rate`` (median over the stores with at least
        ``min_active_members`` active members; None when none has), ``active_members``
        (members with a purchase at the store in the period), ``repeat_members`` (with two or
        more), ``user_repurchase_low, user_repurchase_high`` (95% Wilson interval),
        ``ranked`` (the store has at least ``min_active_members`` active members),
        ``member_purchases``, ``orders`` (all orders incl. walk-in), ``revenue`` (paid, all
        orders) and ``subsidy`` (discount, all orders). Rates are None when nobody purchased.

    ``shared`` (:func:`chain_wide` of this chain, or the store's share of it) supplies the
    chain medians, so that ``chain`` may be the store's slice.

    Raises
    ------
    DataContractError
        If the store is not in the chain's stores table.
    """
    from rxrepurchase.metrics import repurchase_rates

    store = chain.for_store(store_id)  # raises a clear error for an unknown store
    start, end = report_period(chain.as_of, period_days)
    medians = _shared_figure(shared, "headline_medians", chain, store_id,
                             period_days=period_days, min_active_members=min_active_members)
    if medians is None:
        medians = chain_medians(chain, period_days=period_days,
                                min_active_members=min_active_members)
    rates = _store_rows(shared, "headline", chain, store_id, period_days=period_days)
    if rates is None:
        rates = (repurchase_rates(store.orders, (start, end), by="store_id")
                 if len(store.orders) else pd.DataFrame({"store_id": []}))  # no order, no rates
    rates = rates.set_index("store_id")
    info = store.stores.iloc[0]
    orders = store.orders
    day = orders["ordered_at"].dt.normalize()
    in_period = orders[(day >= start) & (day <= end)]
    row = rates.loc[store_id] if store_id in rates.index else None
    return {
        "store_id": store_id,
        "store_name": _text(info.get("name")),
        "city": _text(info.get("city")),
        "manager_email": _text(info.get("manager_email")),
        "as_of": chain.as_of.date().isoformat(),
        "period_start": start.date().isoformat(),
        "period_end": end.date().isoformat(),
        "user_repurchase_rate": None if row is None else _number(row["user_repurchase_rate"]),
        "order_repurchase_rate": None if row is None else _number(row["order_repurchase_rate"]),
        "chain_median_user_repurchase_rate": medians["chain_median_user_repurchase_rate"],
        "chain_median_order_repurchase_rate": medians["chain_median_order_repurchase_rate"],
        "active_members": 0 if row is None else int(row["members"]),
        "repeat_members": 0 if row is None else int(row["repeat_members"]),
        **dict(zip(("user_repurchase_low", "user_repurchase_high"), (
            _number(v[0]) for v in repurchase_interval(
                [0 if row is None else row["repeat_members"]],
                [0 if row is None else row["members"]])), strict=True)),
        "ranked": row is not None and int(row["members"]) >= min_active_members,
        "min_active_members": min_active_members,
        "member_purchases": 0 if row is None else int(row["purchases"]),
        "orders": len(in_period),
        "revenue": float(in_period["paid_amount"].sum()),
        "subsidy": float(in_period["discount_amount"].sum()),
    }


def _text(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def period_days_of(start, end) -> int:
    """Days from ``start`` to ``end``, both included (a headline period's length)."""
    return (pd.Timestamp(end) - pd.Timestamp(start)).days + 1


def write_metrics(metrics: dict, path: str | os.PathLike) -> Path:
    """Write a store's figures as ``metrics.json`` (UTF-8, store names kept readable)."""
    return write_atomic(path, json.dumps(metrics, ensure_ascii=False, indent=2))


def headline_html(headline: dict, lang: str = "en") -> str:
    """The headline figures as a row of tiles (HTML) for the top of a store report."""
    lang = normalize_lang(lang)
    median_user = format_rate(headline["chain_median_user_repurchase_rate"], lang)
    median_order = format_rate(headline["chain_median_order_repurchase_rate"], lang)
    days = period_days_of(headline["period_start"], headline["period_end"])
    tiles = [
        ("user_repurchase_rate", format_rate(headline["user_repurchase_rate"], lang),
         t("chain_median", lang, value=median_user)),
        ("order_repurchase_rate", format_rate(headline["order_repurchase_rate"], lang),
         t("chain_median", lang, value=median_order)),
        ("active_members", format_count(headline["active_members"], lang), ""),
        ("revenue", format_money(headline["revenue"], lang), ""),
        ("subsidy", format_money(headline["subsidy"], lang), ""),
    ]
    labels = {key: windowed(key, lang, period_days=days)
              for key in ("user_repurchase_rate", "order_repurchase_rate")}
    period = t("period", lang, start=headline["period_start"], end=headline["period_end"])
    return render_section("headline", period=period, tiles=[
        {"label": labels.get(key) or t(key, lang), "value": value, "note": note}
        for key, value, note in tiles])


def monthly_chain_medians(chain: Chain, *, months: int = 12,
                          min_active_members: int = MIN_ACTIVE_MEMBERS,
                          rates: pd.DataFrame | None = None) -> pd.DataFrame:
    """The chain medians of the monthly rates of :func:`monthly_repurchase`.

    One row per calendar month with an order (the last ``months`` up to ``chain.as_of``,
    ``window_start``), ``chain_median_user_repurchase_rate`` and
    ``chain_median_order_repurchase_rate`` over the stores with at least ``min_active_members``
    active members that month; ``attrs`` name ``months`` and ``min_active_members``.
    ``rates``: the stores' monthly rates (:func:`store_tables` ``["monthly"]``) when already
    computed.
    """
    if rates is None:
        rates = _monthly_rates(chain.orders, chain.as_of, months)
    cols = ["user_repurchase_rate", "order_repurchase_rate"]
    big = rates[rates["members"] >= min_active_members]
    months_index = pd.Index(sorted(rates["window_start"].unique()), name="window_start")
    median = big.groupby("window_start")[cols].median().add_prefix("chain_median_")
    table = median.reindex(months_index).reset_index()
    table.attrs = {"months": months, "min_active_members": min_active_members}
    return table


def monthly_repurchase(chain: Chain, store_id: str, *, months: int = 12,
                       min_active_members: int = MIN_ACTIVE_MEMBERS,
                       shared: ChainWide | None = None) -> pd.DataFrame:
    """Monthly user and order repurchase rates of the store and the chain median of stores.

    Returns
    -------
    DataFrame
        One row per calendar month (the last ``months`` up to ``chain.as_of``) with
        ``month`` (period start), ``members`` (the store's active members that month),
        ``user_repurchase_rate, order_repurchase_rate`` (the store's),
        ``chain_median_user_repurchase_rate, chain_median_order_repurchase_rate`` (over the
        stores with at least ``min_active_members`` active members that month), ``days``
        (days of the month up to ``as_of``) and ``partial`` (the month is not over: its rates
        cover fewer days and are not comparable with full months).

    ``shared`` (:func:`chain_wide` of this chain, or the store's share of it) supplies the
    chain medians, so that ``chain`` may be the store's slice.
    """
    median = _shared_figure(shared, "monthly_medians", chain, store_id, months=months,
                            min_active_members=min_active_members)
    if median is None:
        median = monthly_chain_medians(chain, months=months,
                                       min_active_members=min_active_members)
    end = chain.as_of
    rates = _store_rows(shared, "monthly", chain, store_id, months=months)
    if rates is None:
        rates = _monthly_rates(chain.for_store(store_id).orders, end, months)
    cols = ["user_repurchase_rate", "order_repurchase_rate"]
    store = rates[rates["store_id"] == store_id].set_index("window_start")[["members", *cols]]
    median = median.set_index("window_start")
    table = store.reindex(median.index).join(median).rename_axis("month").reset_index()
    month_end = table["month"] + pd.offsets.MonthEnd(0)
    table["days"] = (np.minimum(month_end, end) - table["month"]).dt.days + 1
    table["partial"] = month_end > end
    return table


def plot_monthly_repurchase(
    table: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None
) -> plt.Axes:
    """Plot :func:`monthly_repurchase`: the store's two rates, dashed chain medians.

    An unfinished month is left out of the lines (its rate is not comparable: fewer days) and
    shown as a hollow marker labelled with the days it covers.
    """
    ax = ax if ax is not None else plt.subplots()[1]
    full, partial = table[~table["partial"]], table[table["partial"]]
    for key, color in (("user_repurchase_rate", "#1f6f8b"), ("order_repurchase_rate", "#e07a1f")):
        ax.plot(full["month"], full[key], marker="o", color=color, label=windowed(key, lang))
        ax.plot(full["month"], full[f"chain_median_{key}"], linestyle="--", color=color,
                alpha=0.6, label=t("chain_median_of", lang, what=windowed(key, lang)))
        ax.scatter(partial["month"], partial[key], facecolors="none", edgecolors=color)
    for row in partial.itertuples():
        ax.annotate(t("partial_month", lang, days=row.days), (row.month, 0),
                    textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_ylim(bottom=0)
    ax.set_title(t("trend_title", lang))
    ax.legend(fontsize=8, ncol=2)
    return ax


def thin_data_reason(chain: Chain, store_id: str, lang: str = "en") -> str | None:
    """Why the store's report can show no analysis (one sentence), or None when it can.

    A store with no member orders up to the analysis date has nothing to analyse: its report
    says so in one line instead of failing on empty tables.
    """
    if chain.for_store(store_id).member_orders.empty:
        return t("store_no_orders", lang, as_of=chain.as_of.date().isoformat())
    return None


def report_title(headline: dict, lang: str = "en") -> str:
    """HTML title of a store report: store, name, city and analysis date.

    HTML, not Markdown: names come from data, and Markdown would pass markup in them through
    to the page. Every value is escaped and shortened for display (:func:`format_text`).
    """
    store_id = format_text(headline["store_id"])
    title = t("store_report_title", lang, store_id=store_id,
              name=format_text(headline["store_name"]) or store_id)
    meta = t("report_meta", lang, city=format_text(headline["city"]) or "–",
             as_of=headline["as_of"])
    return render_section("title", title=title, meta=meta)


def quality_table(chain: Chain, store_id: str, lang: str = "en") -> pd.DataFrame:
    """The store's rows the loader excluded or warned about, and why (localized headers)."""
    table = chain.quality.summary(store_id)[["table", "rule", "action", "rows", "message"]]
    table = table.assign(action=table["action"].map(lambda a: t(f"quality_{a}", lang)))
    return table.rename(columns={c: t(f"quality_{c}", lang) for c in table.columns})


def quality_html(chain: Chain, store_id: str, lang: str = "en") -> str:
    """Data-quality section: a sentence, and the table of issues when there are any."""
    return quality_table_html(quality_table(chain, store_id, lang), lang)


def quality_table_html(table: pd.DataFrame, lang: str = "en") -> str:
    """:func:`quality_html` of a :func:`quality_table` already made (in ``lang``)."""
    if table.empty:
        return f"<p>{html.escape(t('quality_none', lang))}</p>"
    rows = t("quality_rows", lang)
    excluded = int(table.loc[table[t("quality_action", lang)] == t("quality_excluded", lang), rows].sum())
    intro = t("quality_intro", lang, excluded=format_count(excluded, lang))
    return f"<p>{html.escape(intro)}</p>" + table.to_html(index=False, border=0)


def table_html(
    df: pd.DataFrame,
    lang: str = "en",
    *,
    rates: tuple[str, ...] = (),
    money: tuple[str, ...] = (),
    counts: tuple[str, ...] = (),
    index: bool = False,
    headers: dict[str, str] | None = None,
) -> str:
    """A table for a report page: numbers formatted for ``lang``, headers translated.

    ``headers`` gives the shown header of some columns outright (e.g. a rate with its window,
    :func:`windowed`) instead of the translation of the column's name.

    Columns named in ``rates`` / ``money`` / ``counts`` are formatted with
    :func:`~rxrepurchase.i18n.format_rate` / ``format_money`` / ``format_count``; headers that
    are keys of :data:`rxrepurchase.i18n.STRINGS` are translated, others kept. Text cells are
    escaped and shortened for display (:func:`~rxrepurchase.i18n.format_text`).
    """
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_object_dtype(out[c]) or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(lambda v: format_text(v) if isinstance(v, str) else v)
    for cols, fmt in ((rates, format_rate), (money, format_money), (counts, format_count)):
        for c in cols:
            out[c] = out[c].map(lambda v, fmt=fmt: fmt(v, lang))
    headers = headers or {}
    out = out.rename(columns=lambda c: headers.get(c) or (t(c, lang) if c in STRINGS else c))
    return out.to_html(index=index, border=0, escape=True, na_rep="–")


def _outside_fences(values: pd.Series) -> pd.Series:
    """``"high"`` / ``"low"`` beyond Tukey's fences (1.5 IQR past the quartiles), else ``""``."""
    v = values.astype("float64")
    q1, q3 = v.quantile(0.25), v.quantile(0.75)
    out = pd.Series("", index=values.index)
    out[v > q3 + 1.5 * (q3 - q1)] = "high"
    out[v < q1 - 1.5 * (q3 - q1)] = "low"
    return out


LABEL_LIMIT = 20
"""Characters of a store id shown as a chart label."""

OUTLIER_COLUMNS: tuple[str, ...] = (
    "user_repurchase_rate", "order_repurchase_rate", "subsidy_driven_share",
    "subsidy_per_retained_member", "clv_mean",
)
"""Store figures the chain overview checks for outliers."""


def chain_comparison(chain: Chain, *, period_days: int = 90, gross_margin: float = 0.3,
                     rules: CohortRules | None = None,
                     min_active_members: int = MIN_ACTIVE_MEMBERS,
                     shared: ChainWide | None = None) -> pd.DataFrame:
    """Every store side by side: headline, cohort mix, subsidy efficiency, CLV, outliers.

    Returns
    -------
    DataFrame
        One row per store: the :func:`store_headline` keys; ``loyal_share`` and
        ``subsidy_driven_share`` (of the members who bought at the store, cohorts as in
        :func:`store_cohorts`); ``subsidy_per_retained_member`` (all subsidy on members'
        orders / members who bought twice or more); ``clv_mean`` and ``clv_total`` of a
        BG/NBD + Gamma-Gamma fit per store (:func:`rxrepurchase.models.fit_by_group`) and
        ``model_error`` for stores that could not be modelled; ``outliers``: the columns of
        :data:`OUTLIER_COLUMNS` where the store is outside Tukey's fences of the ranked stores,
        as ``"column:high"`` / ``"column:low"`` separated by ``;`` (only ranked stores, those
        with at least ``min_active_members`` active members, are checked).

    ``shared`` (:func:`chain_wide` of this chain with the same ``rules``) supplies the chain
    medians and the cohort classification instead of computing them here.
    """
    from rxrepurchase.cohorts import CohortRules, classify_members, compare_cohorts
    from rxrepurchase.models import fit_by_group
    from rxrepurchase.rfm import rfm_summary

    if shared is None:
        members = classify_members(chain.orders, chain.campaigns, order_lines=chain.order_lines,
                                   as_of=chain.as_of, rules=rules)
    elif shared.rules != (rules or CohortRules()) or shared.store_id is not None:
        raise ReportDataError("chain_comparison needs the whole chain's figures, classified "
                              "with the same cohort rules")
    else:
        shared.check(chain)
        members = shared.members
    table = pd.DataFrame(
        [store_headline(chain, s, period_days=period_days, min_active_members=min_active_members,
                        shared=shared)
         for s in chain.store_ids]
    ).set_index("store_id")
    cmp = None if shared is None else (shared.by_store or {}).get("cohorts")
    if cmp is None or cmp.attrs.get("outcome_days") != 90:
        cmp = compare_cohorts(chain.orders, members, "store_id", campaigns=chain.campaigns,
                              as_of=chain.as_of, rules=rules)
    counts = cmp.pivot_table(index="store_id", columns="subsidy_cohort", values="members",
                             aggfunc="sum", fill_value=0)
    for cohort in ("loyal", "subsidy_driven"):
        n = counts[cohort] if cohort in counts else 0
        table[f"{cohort}_share"] = (n / counts.sum(axis=1)).reindex(table.index)
    per_store = cmp.groupby("store_id")[["subsidy", "repeat_members"]].sum()
    table["subsidy_per_retained_member"] = (
        per_store["subsidy"] / per_store["repeat_members"].where(per_store["repeat_members"] > 0)
    ).reindex(table.index)
    rfm = rfm_summary(chain.member_orders, as_of=chain.as_of, by="store_id")
    fits = fit_by_group(rfm, "store_id", gross_margin=gross_margin)
    if not fits.scores.empty:
        clv = fits.clv_distribution()
        table["clv_mean"] = clv["mean"].reindex(table.index)
        table["clv_total"] = (clv["mean"] * clv["members"]).reindex(table.index)
    else:
        table["clv_mean"] = table["clv_total"] = float("nan")
    table["model_error"] = fits.params["error"].reindex(table.index).fillna("")
    ranked = table[table["ranked"]]
    flags = pd.DataFrame({c: _outside_fences(ranked[c]) for c in OUTLIER_COLUMNS},
                         index=ranked.index).reindex(table.index, fill_value="")
    table["outliers"] = flags.apply(
        lambda row: ";".join(f"{c}:{v}" for c, v in row.items() if v), axis=1)
    return table.reset_index()


def chain_title(chain: Chain, lang: str = "en", *, period_days: int = 90) -> str:
    """Markdown title of the chain overview, with the period its figures cover."""
    start, end = report_period(chain.as_of, period_days)
    meta = t("chain_meta", lang, n=len(chain.stores), as_of=chain.as_of.date().isoformat(),
             start=start.date().isoformat(), end=end.date().isoformat(), days=period_days)
    return f"# {t('chain_overview', lang)}\n\n{meta}"


def _points(value: float, lang: str) -> str:
    """A change of a rate in percentage points: ``-0.0123`` → ``"-1.2 pts"``."""
    if value is None or not math.isfinite(value):
        return "–"
    return t("points", lang, value=f"{round(100 * value, 1) + 0.0:+.1f}")


def _change(value: float, lang: str) -> str:
    """A relative change: ``0.05`` → ``"+5.0%"``."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{round(100 * value, 1) + 0.0:+.1f}%"


def chain_totals_html(totals: pd.DataFrame, lang: str = "en") -> str:
    """:func:`rxrepurchase.chain_view.chain_totals` as a table: one row per figure, this
    period, the previous one and a year before with their changes; the periods stated above."""
    from rxrepurchase.chain_view import TOTALS  # the overview's; chain_view loads the core

    p = totals.set_index("period")
    days = period_days_of(p.at["this", "start"], p.at["this", "end"])
    day = {(k, c): p.at[k, c].date().isoformat() for k in ("this", "previous")
           for c in ("start", "end")}
    intro = t("chain_totals_intro", lang, days=days, start=day["this", "start"],
              end=day["this", "end"], pstart=day["previous", "start"],
              pend=day["previous", "end"])
    rows = []
    for total in TOTALS:
        if total in ("user_repurchase_rate", "order_repurchase_rate"):
            shown, change = (lambda v: format_rate(v, lang)), _points
            # The population too: a chain rate is not a store's (chain_vs_stores_reading).
            name = t("population_chain", lang, what=windowed(total, lang, period_days=days))
        else:
            shown = (lambda v: format_money(v, lang)) if total in ("revenue", "subsidy") else (
                lambda v: format_count(v, lang))
            change, name = _change, t(total, lang)
        row = {"chain_figure": name}
        for period, col, change_col in (("this", "period_this", None),
                                        ("previous", "period_previous", "change_previous"),
                                        ("year_before", "period_year_before",
                                         "change_year_before")):
            value = p.at[period, total]
            row[col] = shown(value) if pd.notna(value) else "–"
            if change_col:
                row[change_col] = change(p.at[period, f"change_{total}"], lang)
        rows.append(row)
    out = f"<p>{html.escape(intro)}</p>" + table_html(pd.DataFrame(rows), lang)
    if not p.at["year_before", "available"]:
        out += note_html(t("chain_no_year_before", lang,
                           start=p.at["year_before", "start"].date().isoformat()))
    return out


def chain_vs_stores_reading(figures: dict, lang: str = "en") -> str:
    """One sentence on why the chain's user repurchase rate differs from its stores', from
    :func:`rxrepurchase.chain_view.chain_vs_store_rates`; a shorter one when no store is large
    enough to compare."""
    if not figures["stores"]:
        return t("chain_vs_stores_none", lang)
    return t("chain_vs_stores", lang, chain=format_rate(figures["chain_rate"], lang),
             members=format_count(figures["members"], lang),
             low=format_rate(figures["store_low"], lang),
             high=format_rate(figures["store_high"], lang), n=figures["stores"],
             multi=format_count(figures["multi_store_members"], lang),
             pairs=format_count(figures["store_members"], lang),
             pooled=format_rate(figures["pooled_store_rate"], lang),
             once=format_count(figures["once_here"], lang),
             cross=format_count(figures["cross_store_only"], lang))


def plot_chain_trend(trend: pd.DataFrame, lang: str = "en", *,
                     ax: plt.Axes | None = None) -> plt.Axes:
    """:func:`rxrepurchase.chain_view.chain_trend`: the chain's two rates per calendar month,
    from zero (a rate is a level); an unfinished month as a hollow marker."""
    ax = ax if ax is not None else plt.subplots()[1]
    full, partial = trend[~trend["partial"]], trend[trend["partial"]]
    for key, color in (("user_repurchase_rate", "#1f6f8b"), ("order_repurchase_rate", "#e07a1f")):
        ax.plot(full["month"], full[key], marker="o", color=color, label=windowed(key, lang))
        ax.scatter(partial["month"], partial[key], facecolors="none", edgecolors=color)
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_ylim(0, 1)
    ax.set_title(t("chain_trend_title", lang))
    ax.legend(fontsize=8)
    return ax


def attention_html(table: pd.DataFrame, lang: str = "en", *,
                   min_active_members: int = MIN_ACTIVE_MEMBERS) -> str:
    """:func:`rxrepurchase.chain_view.stores_needing_attention` as a table with its rule."""
    intro = f"<p>{html.escape(t('attention_intro', lang, n=min_active_members))}</p>"
    if table.empty:
        return intro + note_html(t("attention_none", lang))
    out = pd.DataFrame({
        "attention_reason": [t(f"reason_{r}", lang) for r in table["reason"]],
        "store": table["store_id"].to_numpy(),
        "active_members": table["active_members"].to_numpy(),
        "user_repurchase_rate": table["user_repurchase_rate"].to_numpy(),
        "previous_user_repurchase_rate": table["previous_user_repurchase_rate"].to_numpy(),
        "repurchase_change": [_points(v, lang) for v in table["change"]],
        "subsidy_per_retained_member": table["subsidy_per_retained_member"].to_numpy(),
    })
    return intro + table_html(out, lang, rates=("user_repurchase_rate",
                                                "previous_user_repurchase_rate"),
                              money=("subsidy_per_retained_member",), counts=("active_members",))


def targets_html(progress: list[tuple[str, pd.DataFrame]], lang: str = "en", *,
                 start, end) -> str:
    """Targets with their progress: ``progress`` holds ``(who, table)`` pairs, ``who`` a store
    id or ``""`` for the chain, ``table`` :func:`rxrepurchase.targets.target_progress` over the
    period ``start`` to ``end``. Empty when no target is set."""
    rows = []
    days = period_days_of(start, end)
    for who, table in progress:
        for r in table.itertuples():
            if r.kind == "rate":
                shown, gap = (lambda v: format_rate(v, lang)), _points(abs(r.gap), lang)
            else:
                shown = (lambda v: format_money(v, lang)) if r.kind == "money" else (
                    lambda v: format_count(v, lang))
                gap = shown(abs(r.gap))
            status = (t("target_met", lang) if r.met else
                      t("target_to_go", lang, gap=gap.lstrip("+")) if math.isfinite(r.gap) else "–")
            # 99.6% short of a target is not shown as 100%.
            progress = format_rate(r.progress, lang, digits=0)
            if not r.met and progress == format_rate(1.0, lang, digits=0):
                progress = format_rate(r.progress, lang, digits=1)
            rows.append([format_text(who) if who else t("target_chain", lang),
                         windowed(r.measure, lang, period_days=days) if r.kind == "rate" else t(r.measure, lang),
                         shown(r.target), shown(r.actual), progress, status])
    if not rows:
        return ""
    headers = [t(k, lang) for k in ("target_who", "chain_figure", "target_value", "target_actual",
                                    "target_progress", "target_gap")]
    intro = t("targets_intro", lang, days=days, start=pd.Timestamp(start).date().isoformat(),
              end=pd.Timestamp(end).date().isoformat())
    return render_section("targets", intro=intro, headers=headers, rows=rows)


@renamed_keywords(within="horizon_days")
def list_sizes_html(results: dict | None, lang: str = "en", *, horizon_days: int = 14) -> str:
    """List sizes per store and the stores whose manager receives nothing, from the stores'
    results the runner hands the overview (:func:`rxrepurchase.chain_view.read_store_results`;
    None when the overview runs on its own). ``horizon_days``: the refill reminders'
    horizon."""
    from rxrepurchase.chain_view import LIST_SIZES, nothing_received_line, store_list_sizes

    if results is None:
        return note_html(t("lists_not_run", lang))
    table = store_list_sizes(results["stores"], results["undelivered"])
    return render_section(
        "list_sizes", intro=t("lists_intro", lang, within=horizon_days),
        headers=[t("store", lang), *(t(k, lang) for k in LIST_SIZES)],
        rows=[[format_text(row["store_id"]),
               *(format_count(None if pd.isna(row[k]) else row[k], lang) for k in LIST_SIZES)]
              for _, row in table.iterrows()],
        nothing=nothing_received_line(table, lang, sends_email=results["sends_email"]))


def outliers_text(outliers: str, lang: str = "en") -> str:
    """``"clv_mean:low;..."`` as words: ``"CLV, mean: well below the other stores"``."""
    parts = []
    for item in filter(None, outliers.split(";")):
        column, side = item.split(":")
        parts.append(f"{t(column, lang)}: {t(f'outlier_{side}', lang)}")
    return "; ".join(parts)


def store_ranking(stores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stores with enough active members (``ranked``) by user repurchase rate, best first
    with a ``rank`` column, and the others by store id."""
    ranked = stores[stores["ranked"]].sort_values("user_repurchase_rate", ascending=False)
    return (ranked.assign(rank=range(1, len(ranked) + 1)),
            stores[~stores["ranked"]].sort_values("store_id"))


def chain_ranking_html(stores: pd.DataFrame, lang: str = "en") -> str:
    """Stores with enough active members ranked by user repurchase rate (best first), with its
    95% interval; the other stores listed apart, unranked (:func:`store_ranking`)."""
    first = stores.iloc[0] if len(stores) else {}
    intro = t("ranking_intro", lang, n=first.get("min_active_members", MIN_ACTIVE_MEMBERS),
              start=first.get("period_start", ""), end=first.get("period_end", ""))
    ranked, small = store_ranking(stores)
    cols = ["store_id", "store_name", "city", "user_repurchase_rate", "user_repurchase_low",
            "user_repurchase_high", "order_repurchase_rate", "active_members", "revenue",
            "subsidy"]
    fmt = {"rates": ("user_repurchase_rate", "user_repurchase_low", "user_repurchase_high",
                     "order_repurchase_rate"),
           "money": ("revenue", "subsidy"), "counts": ("active_members",)}  # fmt: skip
    if len(stores):
        days = period_days_of(first["period_start"], first["period_end"])
        fmt["headers"] = {k: t("population_store", lang, what=windowed(k, lang, period_days=days))
                          for k in ("user_repurchase_rate", "order_repurchase_rate")}
    out = f"<p>{html.escape(intro)}</p>" + table_html(
        ranked[["rank", *cols]].rename(columns={"store_id": "store"}), lang, **fmt)
    if len(small):
        out += f"<p>{html.escape(t('unranked_stores', lang, n=len(small)))}</p>" + table_html(
            small[cols].rename(columns={"store_id": "store"}), lang, **fmt)
    return out


def chain_value_html(stores: pd.DataFrame, lang: str = "en") -> str:
    """Cohort mix, subsidy efficiency and CLV per store; outliers spelled out."""
    table = stores.assign(
        outliers=stores["outliers"].map(lambda o: outliers_text(o, lang)),
        clv_mean=stores["clv_mean"].where(stores["model_error"] == ""),
    )[["store_id", "loyal_share", "subsidy_driven_share", "subsidy_per_retained_member",
       "clv_mean", "clv_total", "outliers"]].rename(columns={"store_id": "store"})
    return table_html(table, lang, rates=("loyal_share", "subsidy_driven_share"),
                      money=("subsidy_per_retained_member", "clv_mean", "clv_total"))


def plot_subsidy_efficiency(stores: pd.DataFrame, lang: str = "en", *,
                    ax: plt.Axes | None = None) -> plt.Axes:
    """Subsidy efficiency: subsidy per retained member against the user repurchase rate."""
    ax = ax if ax is not None else plt.subplots()[1]
    ax.scatter(stores["subsidy_driven_share"], stores["subsidy_per_retained_member"],
               s=40 + 400 * stores["loyal_share"].fillna(0), color="#e07a1f", alpha=0.7)
    for row in stores.itertuples():
        ax.annotate(format_text(row.store_id, LABEL_LIMIT),
                    (row.subsidy_driven_share, row.subsidy_per_retained_member),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.xaxis.set_major_formatter(lambda x, _: format_rate(x, lang))
    ax.yaxis.set_major_formatter(lambda y, _: format_money(y, lang))
    ax.set_xlabel(t("subsidy_driven_share", lang))
    ax.set_ylabel(t("subsidy_per_retained_member", lang))
    # Levels start at zero: a narrow range (say ¥92-¥99) must not look like a wide spread.
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title(t("subsidy_efficiency_title", lang))
    return ax


def plot_store_rates(stores: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None) -> plt.Axes:
    """Bar chart of the ranked stores' user and order repurchase rates (each store's active
    members under its bar), chain median as a line."""
    ax = ax if ax is not None else plt.subplots()[1]
    ranked = store_ranking(stores)[0]
    x = range(len(ranked))
    width = 0.4
    for shift, key, color in ((-width / 2, "user_repurchase_rate", "#1f6f8b"),
                              (width / 2, "order_repurchase_rate", "#e07a1f")):
        bars = ax.bar([i + shift for i in x], ranked[key].astype("float64"), width, color=color,
                      label=t(key, lang))
        if key == "user_repurchase_rate":
            ax.bar_label(bars, [t("bar_n", lang, n=n) for n in ranked["active_members"]], fontsize=6)
        ax.axhline(ranked[key].astype("float64").median(), color=color, linestyle="--",
                   alpha=0.6, label=t("chain_median_of", lang, what=t(key, lang)))
    if not len(ranked):
        return ax
    # Store ids only (the ranking table beside the chart has the names): names overlap.
    ax.set_xticks(list(x), [format_text(s, LABEL_LIMIT) for s in ranked["store_id"]])
    if len(ranked) > 12:
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    # Head room for the legend above the bars (no rate at all in a chain too young: 0-100%).
    top = float(ranked[["user_repurchase_rate", "order_repurchase_rate"]].astype("float64").max().max())
    ax.set_ylim(0, 1.4 * top if np.isfinite(top) and top > 0 else 1.0)
    ax.set_title(t("store_rates_title", lang))
    ax.legend(fontsize=8, ncol=2)
    return ax


# --------------------------------------------------------------------------- section 2: cohorts

# The report's cohorts in cohorts.COHORTS' order (tested), each with its colour: charts order
# their cohorts by it without importing the analysis module into a store's kernel.
COHORT_COLORS = {
    "loyal": "#1f6f8b",
    "mixed": "#8fb9a8",
    "occasional": "#b0bec5",
    "subsidy_driven": "#e07a1f",
    "undetermined": "#d7ccc8",
    "new": "#c9b458",
}

# Rows of the side-by-side cohort table and how each is formatted.
_COHORT_ROWS: tuple[tuple[str, str], ...] = (
    ("members", "count"),
    ("member_share", "rate"),
    ("user_repurchase_rate", "rate"),
    ("user_repurchase_interval", "interval"),
    ("order_repurchase_rate", "rate"),
    ("repurchase_within_days", "rate"),
    ("repurchase_after_last_subsidy", "rate"),
    ("spend_per_member", "money"),
    ("subsidy_per_member", "money"),
    ("revenue_net_of_subsidy_per_member", "money"),
    ("subsidy_rate", "rate"),
    ("subsidy_per_retained_member", "money"),
)


@renamed_keywords(days="outcome_days")
def store_cohorts(
    chain: Chain, store_id: str, *, rules: CohortRules | None = None, outcome_days: int = 90,
    shared: ChainWide | None = None,
) -> dict[str, pd.DataFrame]:
    """Everything section 2 shows for a store, from :mod:`rxrepurchase.cohorts`.

    Members are classified on their whole history in the chain
    (:func:`~rxrepurchase.cohorts.classify_members`); the figures count the store's orders.

    Returns
    -------
    dict of DataFrame
        ``members`` (the classification), ``comparison``
        (:func:`~rxrepurchase.cohorts.compare_cohorts` plus ``member_share`` and the user
        repurchase rate's 95% Wilson interval ``user_repurchase_low``, ``_high``),
        ``retention`` (monthly :func:`~rxrepurchase.metrics.retention_curve` per cohort), ``spend``
        (paid amount per member at the store, with its cohort), ``post_subsidy``
        (:func:`~rxrepurchase.cohorts.post_subsidy_repurchase` at ``outcome_days``) and ``waves``
        (:func:`~rxrepurchase.cohorts.wave_response` of the new-member waves, or of every
        campaign when none is marked ``new_member``).

    ``shared`` (:func:`chain_wide` of this chain with the same ``rules``) supplies the
    classification and the comparison (:func:`store_tables`) instead of computing them here.
    """
    from rxrepurchase.cohorts import (
        CohortRules,
        classify_members,
        compare_cohorts,
        post_subsidy_repurchase,
        wave_response,
    )
    from rxrepurchase.metrics import retention_curve

    store = chain.for_store(store_id)
    if shared is None:
        members = classify_members(chain.orders, chain.campaigns, order_lines=chain.order_lines,
                                   as_of=chain.as_of, rules=rules)
    else:
        shared.check(chain, store_id)
        if shared.rules != (rules or CohortRules()):
            raise ReportDataError("the chain-wide figures were classified with other cohort "
                                  "rules; leave them out or compute them with these rules")
        members = shared.members
    lookup = members[["member_id", "subsidy_cohort"]]
    comparison = _store_rows(shared, "cohorts", chain, store_id, outcome_days=outcome_days)
    if comparison is None:
        comparison = compare_cohorts(store.orders, members, campaigns=chain.campaigns,
                                     as_of=chain.as_of, outcome_days=outcome_days, rules=rules)
    else:
        comparison = comparison.drop(columns="store_id")
    comparison["member_share"] = comparison["members"] / comparison["members"].sum()
    comparison["user_repurchase_low"], comparison["user_repurchase_high"] = repurchase_interval(
        comparison["repeat_members"], comparison["members"])
    retention = retention_curve(store.orders, "M", by="subsidy_cohort", members=lookup,
                                as_of=chain.as_of)
    bought = store.orders[store.orders["member_id"].notna()]
    spend = (bought.groupby("member_id")["paid_amount"].sum().rename("spend").reset_index()
             .merge(lookup, on="member_id", how="inner"))
    post = post_subsidy_repurchase(store.orders, members, [outcome_days], campaigns=chain.campaigns,
                                   as_of=chain.as_of, rules=rules)
    kinds = ["new_member"] if (chain.campaigns["kind"] == "new_member").any() else None
    waves = wave_response(store.orders, chain.campaigns, kinds=kinds, outcome_days=outcome_days,
                          as_of=chain.as_of, rules=rules,
                          calibration=members.attrs.get("calibration"))
    return {"members": members, "comparison": comparison, "retention": retention,
            "spend": spend, "post_subsidy": post, "waves": waves}


def cohort_label(cohort: str, lang: str = "en") -> str:
    """Display name of a subsidy cohort."""
    return t(f"cohort_{cohort}", lang) if f"cohort_{cohort}" in STRINGS else str(cohort)


def cohort_summary(comparison: pd.DataFrame, lang: str = "en") -> str:
    """One paragraph: how many members of each cohort bought at the store."""
    c = comparison.set_index("subsidy_cohort")
    parts = [
        t("cohort_count", lang, label=cohort_label(k, lang), n=format_count(row["members"], lang),
          share=format_rate(row["member_share"], lang, digits=0))
        for k, row in c.iterrows()
    ]
    return t("cohort_summary", lang, total=format_count(c["members"].sum(), lang),
             parts="; ".join(parts) if lang == "en" else "；".join(parts)) + "\n\n" + t(
        "store_membership", lang)


def calibration_note(members: pd.DataFrame, lang: str = "en") -> str:
    """How subsidies were judged on this chain (routine discount, thresholds, campaign signal)
    and how many members are undetermined, from :func:`~rxrepurchase.cohorts.classify_members`
    output."""
    from rxrepurchase.cohorts import COHORTS

    cal, rules = members.attrs.get("calibration"), members.attrs.get("rules")
    if cal is None or rules is None:
        raise ReportDataError("members has no calibration or rules: pass classify_members output")
    th = cal.thresholds
    campaign = (t("calibration_campaign_on", lang, cover=format_rate(cal.campaign_calendar_share, lang, 0),
                  share=format_rate(th["campaign_window_share_high"], lang, 0))
                if cal.campaign_signal_on else
                t("calibration_campaign_off", lang, cover=format_rate(cal.campaign_calendar_share, lang, 0)))
    # A store's share of the classification keeps the chain's counts: the note is the chain's.
    counts = members.attrs.get("chain_cohort_counts") or members["subsidy_cohort"].value_counts()
    judged = sum(int(counts.get(c, 0)) for c in COHORTS if c != "new")
    unsure = int(counts.get("undetermined", 0))
    return t("calibration_note", lang, routine=format_rate(cal.chain_routine, lang),
             excess=format_rate(th["excess_threshold"], lang),
             share=format_rate(th["subsidized_share_high"], lang, 0),
             share_purchases=rules.share_min_purchases,
             depth=format_rate(th["discount_depth_high"], lang), campaign=campaign,
             needed=cal.signals_needed, days=int(th["lapse_days"]),
             undetermined=format_count(unsure, lang),
             undetermined_share=format_rate(unsure / max(judged, 1), lang))


@renamed_keywords(days="outcome_days")
def post_subsidy_note(outcome_days: int, as_of: pd.Timestamp, lang: str = "en") -> str:
    """Who the repurchase-after-subsidy chart counts (:func:`post_subsidy_repurchase`)."""
    cutoff = (pd.Timestamp(as_of) - pd.Timedelta(days=outcome_days)).date().isoformat()
    return t("post_subsidy_note", lang, days=outcome_days, cutoff=cutoff)


def cohort_table_html(comparison: pd.DataFrame, lang: str = "en") -> str:
    """The cohorts side by side: one column per cohort, one row per figure (the user
    repurchase rate with its 95% Wilson interval); ``comparison`` is
    :func:`store_cohorts`' (with ``member_share`` and the interval's bounds)."""
    def interval(pair, lang):
        return "–".join(format_rate(v, lang, digits=0) for v in pair)

    fmt = {"count": format_count, "rate": format_rate, "money": format_money, "interval": interval}
    c = comparison.set_index("subsidy_cohort")
    c = c.assign(user_repurchase_interval=list(zip(c["user_repurchase_low"],
                                                   c["user_repurchase_high"], strict=True)))
    days = int(c["days"].iloc[0]) if len(c) else 90
    rows = {
        t(f"cmp_{key}", lang, days=days): [fmt[kind](c.at[k, key], lang) for k in c.index]
        for key, kind in _COHORT_ROWS
    }
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=[cohort_label(k, lang) for k in c.index])
    return table.to_html(border=0, escape=True)


def plot_cohort_retention(retention: pd.DataFrame, lang: str = "en", *,
                          ax: plt.Axes | None = None) -> plt.Axes:
    """Monthly retention after the first purchase, one line per cohort."""
    ax = ax if ax is not None else plt.subplots()[1]
    for cohort, part in retention.groupby("subsidy_cohort", sort=False):
        if part["periods_since_first"].max() < 1:
            continue  # new members: nothing to show yet
        ax.plot(part["periods_since_first"], part["retention"], marker="o", markersize=3,
                color=COHORT_COLORS.get(cohort), label=cohort_label(cohort, lang))
    ax.set_xlabel(t("months_since_first", lang))
    ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_title(t("retention_title", lang))
    ax.legend(fontsize=8)
    return ax


def _plot_money_by_cohort(members: pd.DataFrame, column: str, title: str, lang: str,
                          ax: plt.Axes | None) -> plt.Axes:
    """Box plot per cohort of a money ``column`` per member, log scale (floor at ¥1)."""
    ax = ax if ax is not None else plt.subplots()[1]
    cohorts = [c for c in COHORT_COLORS if (members["subsidy_cohort"] == c).any()]
    data = [members.loc[members["subsidy_cohort"] == c, column].clip(lower=1) for c in cohorts]
    box = ax.boxplot(data, tick_labels=[cohort_label(c, lang) for c in cohorts],
                     patch_artist=True, showfliers=False)
    for patch, c in zip(box["boxes"], cohorts, strict=True):
        patch.set_facecolor(COHORT_COLORS.get(c, "#cccccc"))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(lambda y, _: format_money(y, lang))
    ax.set_title(t(title, lang))
    ax.tick_params(axis="x", labelsize=8)
    return ax


def plot_cohort_spend(spend: pd.DataFrame, lang: str = "en", *,
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Distribution of what each member paid at the store, per cohort (box plot, log scale)."""
    return _plot_money_by_cohort(spend, "spend", "spend_title", lang, ax)


def plot_post_subsidy(post: pd.DataFrame, lang: str = "en", *,
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Repurchase within N days after the first purchase vs after the last subsidised one."""
    ax = ax if ax is not None else plt.subplots()[1]
    p = post.dropna(subset=["after_first_rate", "after_last_subsidy_rate"], how="all")
    x = range(len(p))
    days = int(p["days"].iloc[0]) if len(p) else 90
    ax.bar([i - 0.2 for i in x], p["after_first_rate"], 0.4, color="#90a4ae",
           label=t("after_first", lang, days=days))
    ax.bar([i + 0.2 for i in x], p["after_last_subsidy_rate"], 0.4, color="#e07a1f",
           label=t("after_last_subsidy", lang, days=days))
    ax.set_xticks(list(x), [cohort_label(c, lang) for c in p["subsidy_cohort"]], fontsize=8)
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_ylim(0, 1.02)
    ax.set_title(t("post_subsidy_title", lang))
    ax.legend(fontsize=8)
    return ax


def plot_waves(waves: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None) -> plt.Axes:
    """Participants of each promotion wave and the full-price repurchase it left behind."""
    ax = ax if ax is not None else plt.subplots()[1]
    ax.bar(waves["wave"], waves["participants"], color="#cfd8dc", label=t("participants", lang))
    ax.set_xticks(waves["wave"], [f"{w}\n{s:%Y-%m}" for w, s in
                                  zip(waves["wave"], waves["starts_on"], strict=True)], fontsize=8)
    ax.set_xlabel(t("wave", lang))
    ax.set_ylabel(t("participants", lang))
    right = ax.twinx()
    days = int(waves["days"].iloc[0]) if len(waves) else 90
    for key, color in (("repurchase_rate", "#90a4ae"), ("full_price_repurchase_rate", "#e07a1f")):
        right.plot(waves["wave"], waves[key], marker="o", color=color,
                   label=t(f"wave_{key}", lang, days=days))
    right.set_ylim(0, 1.02)
    right.grid(False)
    right.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    right.legend(fontsize=8, loc="upper right")
    ax.set_title(t("waves_title", lang))
    return ax


def waves_table_html(waves: pd.DataFrame, lang: str = "en") -> str:
    """The waves as a table: participants, subsidy, repurchase after, cost per retained member."""
    table = waves.assign(starts_on=waves["starts_on"].dt.date.astype(str))[
        ["wave", "name", "starts_on", "participants", "new_members", "subsidy",
         "repurchase_rate", "full_price_repurchase_rate", "subsidy_per_retained_member"]]
    return table_html(table, lang, rates=("repurchase_rate", "full_price_repurchase_rate"),
                      money=("subsidy", "subsidy_per_retained_member"),
                      counts=("participants", "new_members"))


# --------------------------------------------------------------------------- section 3: value


@dataclass
class StoreModels:
    """Section 3 of a store report: BG/NBD + Gamma-Gamma fitted on the store's members.

    Attributes
    ----------
    reason : str or None
        Why the store could not be modelled (:class:`~rxrepurchase.errors.ModelFitError`'s
        message); None when it was.
    purchase_model, spend_model
        Fitted :class:`~rxrepurchase.models.BGNBDModel` / ``GammaGammaModel`` (None if not).
    scores : DataFrame
        :func:`~rxrepurchase.models.score_members` per member, with ``subsidy_cohort`` and
        ``tier``.
    holdout : DataFrame or None
        Holdout check (see :func:`holdout_check`); None when the calibration period could not
        be modelled (``holdout_reason`` says why).
    value_ranges : dict of DataFrame
        :func:`~rxrepurchase.models.group_value_ranges` by ``subsidy_cohort`` and by ``tier``.
    """

    reason: str | None = None
    purchase_model: BGNBDModel | None = None
    spend_model: GammaGammaModel | None = None
    scores: pd.DataFrame | None = None
    holdout: pd.DataFrame | None = None
    holdout_reason: str | None = None
    calibration_end: pd.Timestamp | None = None
    params: dict = field(default_factory=dict)
    value_ranges: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is None


@renamed_keywords(days="horizon_days")
def store_models(
    chain: Chain,
    store_id: str,
    cohorts: pd.DataFrame,
    *,
    gross_margin: float = 0.3,
    horizon_days: int = 30,
    horizon_months: int = 12,
    calibration_end=None,
    holdout_days: int = 90,
) -> StoreModels:
    """Fit the store's member value models and score its members.

    Parameters
    ----------
    chain : Chain
    store_id : str
    cohorts : DataFrame
        :func:`~rxrepurchase.cohorts.classify_members` output (``store_cohorts()["members"]``).
    gross_margin : float
        Gross margin on sales: CLV is discounted gross profit (see
        :func:`~rxrepurchase.models.customer_lifetime_value`).
    horizon_days : int
        Horizon of ``expected_purchases``.
    horizon_months : int
        CLV horizon.
    calibration_end : date-like, optional
        End of the calibration period of the holdout check (default: ``holdout_days`` before
        ``chain.as_of``).
    holdout_days : int
        Length of the holdout period when ``calibration_end`` is not given.

    Returns
    -------
    StoreModels
        With ``reason`` set (and nothing else) when the store has too few repeat buyers or the
        fit fails; the report then says so instead of showing figures.
    """
    from rxrepurchase.models import (
        BGNBDModel,
        GammaGammaModel,
        group_value_ranges,
        score_members,
        value_draws,
    )
    from rxrepurchase.rfm import rfm_summary

    orders = chain.for_store(store_id).member_orders
    rfm = rfm_summary(orders, as_of=chain.as_of)
    try:
        pm = BGNBDModel().fit(rfm)
        sm = GammaGammaModel().fit(rfm)
    except ModelFitError as exc:
        return StoreModels(reason=str(exc))
    # One set of parameter draws for the members' ranges and both groupings' ranges.
    settings = {"gross_margin": gross_margin, "horizon_days": horizon_days, "horizon_months": horizon_months,
                "n_draws": 30}
    draws = value_draws(pm, sm, rfm, **settings)
    scores = score_members(pm, sm, rfm, intervals=True, draws=draws, **settings)
    labels = cohorts.set_index("member_id")["subsidy_cohort"]
    tiers = chain.members.set_index("member_id")["tier"]
    scores = scores.assign(subsidy_cohort=labels.reindex(scores.index).to_numpy(),
                           tier=tiers.reindex(scores.index).to_numpy())
    cut = (pd.Timestamp(calibration_end) if calibration_end is not None
           else chain.as_of - pd.Timedelta(days=holdout_days))
    ranges = {by: group_value_ranges(pm, sm, rfm, scores[by], draws=draws, **settings)
              for by in ("subsidy_cohort", "tier")}
    result = StoreModels(purchase_model=pm, spend_model=sm, scores=scores, calibration_end=cut,
                         params={**pm.params_.to_dict(), **sm.params_.to_dict()},
                         value_ranges=ranges)
    try:
        result.holdout = holdout_check(orders, cut, chain.as_of)
    except ModelFitError as exc:
        result.holdout_reason = str(exc)
    return result


def holdout_check(orders: pd.DataFrame, calibration_end, holdout_end, *,
                  max_frequency: int | None = None) -> pd.DataFrame:
    """BG/NBD fitted on the calibration period only, compared with the holdout period.

    :func:`rxrepurchase.holdout.holdout_by_frequency` (mean holdout purchases by calibration
    repeat purchases, in bins adapted to the store's members unless ``max_frequency`` is given:
    actual, model, naive baseline), with the aggregate errors of
    :func:`rxrepurchase.holdout.holdout_error` in ``attrs["errors"]`` and the period in
    ``attrs["calibration_end"]`` / ``attrs["holdout_end"]``.

    Raises
    ------
    ModelFitError
        When the calibration period cannot be modelled.
    """
    from rxrepurchase.holdout import holdout_by_frequency, holdout_error
    from rxrepurchase.models import BGNBDModel
    from rxrepurchase.rfm import calibration_holdout

    split = calibration_holdout(orders, calibration_end, holdout_end=holdout_end)
    model = BGNBDModel().fit(split.calibration)
    table = holdout_by_frequency(model, split.calibration, split.holdout,
                                 max_frequency=max_frequency)
    table.attrs = {"calibration_end": split.calibration_end, "holdout_end": split.holdout_end,
                   "errors": holdout_error(model, split.calibration, split.holdout)}
    return table


def value_by(scores: pd.DataFrame, by: str, ranges: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean model figures and CLV per group of members (``subsidy_cohort`` or ``tier``), with
    the ranges of mean expected purchases and total CLV when ``ranges``
    (:attr:`StoreModels.value_ranges` ``[by]``) is given."""
    from rxrepurchase.cohorts import COHORTS

    if ranges is not None and not ranges["members"].equals(
            scores.groupby(by, observed=True).size().reindex(ranges.index)):
        raise ReportDataError(f"the value ranges by {by} are of other members than these scores")
    g = scores.groupby(by, observed=True)
    table = g.agg(members=("clv", "size"), p_alive=("p_alive", "mean"),
                  expected_purchases=("expected_purchases", "mean"),
                  expected_spend=("expected_spend", "mean"), clv_mean=("clv", "mean"),
                  clv_median=("clv", "median"), clv_total=("clv", "sum"))
    table["clv_share"] = table["clv_total"] / table["clv_total"].sum()
    if ranges is not None:
        table = table.join(ranges[["expected_purchases_low", "expected_purchases_high",
                                   "clv_total_low", "clv_total_high"]])
    order = list(COHORTS) if by == "subsidy_cohort" else list(TIERS)
    table = table.reindex([k for k in order if k in table.index]
                          + [k for k in table.index if k not in order])
    table = table.rename_axis(by).reset_index()
    table.attrs = {"level": ranges.attrs["level"]} if ranges is not None else {}
    return table


@renamed_keywords(days="horizon_days")
def value_table_html(table: pd.DataFrame, by: str, lang: str = "en", *, horizon_days: int = 30) -> str:
    """:func:`value_by` as a report table, group names translated."""
    names = cohort_label if by == "subsidy_cohort" else label
    out = table.assign(**{by: table[by].map(lambda v: names(v, lang)),
                          "expected_purchases": table["expected_purchases"].map("{:.2f}".format)})
    if "clv_total_low" in table:  # the ranges beside their figures
        purchases = [f"{low:.2f}–{high:.2f}" for low, high in
                     zip(table["expected_purchases_low"], table["expected_purchases_high"], strict=True)]
        clv = [f"{format_money(low, lang)}–{format_money(high, lang)}" for low, high in
               zip(table["clv_total_low"], table["clv_total_high"], strict=True)]
        out = out.drop(columns=["expected_purchases_low", "expected_purchases_high",
                                "clv_total_low", "clv_total_high"])
        out.insert(out.columns.get_loc("expected_purchases") + 1, "expected_purchases_range", purchases)
        out.insert(out.columns.get_loc("clv_total") + 1, "clv_total_range", clv)
    out = out.rename(columns={by: t(f"group_{by}", lang),
                              "expected_purchases": t("expected_purchases", lang, days=horizon_days),
                              **{c: t(c, lang, level=format_rate(table.attrs.get("level"), lang, digits=0))
                                 for c in ("expected_purchases_range", "clv_total_range")}})
    return table_html(out, lang, rates=("p_alive", "clv_share"),
                      money=("expected_spend", "clv_mean", "clv_median", "clv_total"),
                      counts=("members",))


def model_summary(models: StoreModels, lang: str = "en") -> str:
    """One paragraph: what the models say about the store's members (Markdown)."""
    s = models.scores
    return t("value_summary", lang, members=format_count(len(s), lang),
             alive=format_rate(s["p_alive"].mean(), lang, digits=0),
             purchases=f"{s['expected_purchases'].sum():,.0f}",
             days=s.attrs.get("horizon_days", 30),
             clv=format_money(s["clv"].sum(), lang),
             clv_range=t("range_suffix", lang, low=format_money(s.attrs["clv_total_low"], lang),
                         high=format_money(s.attrs["clv_total_high"], lang),
                         level=format_rate(s.attrs["level"], lang, digits=0))
             if "clv_total_low" in s.attrs else "",
             months=s.attrs.get("horizon_months", 12),
             margin=format_rate(s.attrs.get("gross_margin"), lang, digits=0))


def plot_clv_by_cohort(scores: pd.DataFrame, lang: str = "en", *,
                       ax: plt.Axes | None = None) -> plt.Axes:
    """Distribution of predicted CLV per cohort (box plot, log scale)."""
    return _plot_money_by_cohort(scores, "clv", "clv_title", lang, ax)


def plot_holdout_check(holdout: pd.DataFrame, lang: str = "en", *,
                       ax: plt.Axes | None = None) -> plt.Axes:
    """:func:`rxrepurchase.plots.plot_holdout_by_frequency`, labelled in ``lang``."""
    from rxrepurchase.plots.holdout import plot_holdout_by_frequency

    ax = plot_holdout_by_frequency(holdout, ax=ax)
    for line, key in zip(ax.get_lines(), ("holdout_actual", "holdout_predicted", "holdout_naive"),
                         strict=False):
        line.set_label(t(key, lang))
    ax.legend(fontsize=8)
    ax.set_xlabel(t("holdout_x", lang))
    ax.set_ylabel(t("holdout_y", lang))
    ax.set_title(t("holdout_title", lang))
    return ax


def holdout_summary(holdout: pd.DataFrame, lang: str = "en") -> str:
    """Sentences: the holdout period, total predicted vs actual, model vs naive error."""
    errors = holdout.attrs["errors"]
    model, naive = errors.loc["model"], errors.loc["naive"]

    def pct(v: float) -> str:
        return f"{v:+.0f}%" if v == v else "–"

    return t("holdout_summary", lang,
             start=(holdout.attrs["calibration_end"] + pd.Timedelta(days=1)).date().isoformat(),
             end=holdout.attrs["holdout_end"].date().isoformat(),
             actual=f"{model['total_actual']:,.0f}", predicted=f"{model['total_predicted']:,.0f}",
             error=pct(model["total_error_pct"]), naive_error=pct(naive["total_error_pct"]),
             mae=f"{model['mae']:.2f}", naive_mae=f"{naive['mae']:.2f}")


def note_html(text: str) -> str:
    """A highlighted note (e.g. "this store could not be modelled")."""
    return render_section("note", text=text)


def section_metrics(cohorts: dict[str, pd.DataFrame], models: StoreModels) -> dict:
    """Figures of sections 2 and 3 added to the store's ``metrics.json``.

    ``loyal_members``, ``subsidy_driven_members`` and their shares of the members who bought at
    the store; ``subsidy_per_retained_member`` (all cohorts); ``modelled`` and, when modelled,
    ``p_alive_mean``, ``expected_purchases_30d``, ``clv_total``, ``clv_mean``; ``model_error``
    otherwise.
    """
    c = cohorts["comparison"].set_index("subsidy_cohort")
    total = int(c["members"].sum())
    out: dict = {"cohort_members": total}
    for cohort in ("loyal", "subsidy_driven"):
        n = int(c.at[cohort, "members"]) if cohort in c.index else 0
        out[f"{cohort}_members"] = n
        out[f"{cohort}_share"] = n / total if total else None
    repeat = int(c["repeat_members"].sum())
    out["subsidy_per_retained_member"] = float(c["subsidy"].sum()) / repeat if repeat else None
    out["modelled"] = models.ok
    if models.ok:
        s = models.scores
        out.update(p_alive_mean=float(s["p_alive"].mean()),
                   expected_purchases_30d=float(s["expected_purchases"].sum()),
                   clv_total=float(s["clv"].sum()), clv_mean=float(s["clv"].mean()))
    else:
        out["model_error"] = models.reason
    return out


# --------------------------------------------------------------------------- section 4: segments


def store_segments(chain: Chain, store_id: str, cohorts: pd.DataFrame, *,
                   period_days: int = 90, shared: ChainWide | None = None) -> dict:
    """Section 4 of a store report, from :mod:`rxrepurchase.segments` and ``metrics``.

    Members are those who bought at the store (up to ``chain.as_of``); repurchase rates are
    over the headline period.

    Returns
    -------
    dict
        ``tiers`` (tier summary with the period's ``user_repurchase_rate`` and its 95% Wilson
        interval ``user_repurchase_low``, ``_high``), ``rfm`` (RFM
        segment summary), ``pareto`` (:func:`~rxrepurchase.metrics.pareto_share`, top 20%),
        ``stored_value`` (holders vs others), ``channels`` (repurchase by order channel) and
        ``hours`` (share of orders per hour, loyal vs subsidy-driven members).

    ``shared`` (:func:`chain_wide` of this chain, or the store's share of it) supplies the
    rates by tier, stored-value holding and channel (:func:`store_tables`).
    """
    from rxrepurchase.metrics import pareto_share, repurchase_rates
    from rxrepurchase.segments import (
        hour_of_day_profile,
        member_profile,
        rfm_segments,
        segment_summary,
    )

    store = chain.for_store(store_id)
    period = report_period(chain.as_of, period_days)
    profile = member_profile(store.orders, store.order_lines, store.members, chain.as_of)
    profile = profile[profile["purchases"] > 0]
    members = _segment_members(chain.members.merge(cohorts[["member_id", "subsidy_cohort"]],
                                                   on="member_id", how="left"))

    def rates_by(by: str, **lookup) -> pd.DataFrame:
        rates = _store_rows(shared, by, chain, store_id, period_days=period_days)
        if rates is None:
            return repurchase_rates(store.orders, period, by=by, **lookup)
        return rates.drop(columns="store_id")

    def with_rates(summary: pd.DataFrame, by: str) -> pd.DataFrame:
        rates = rates_by(by, members=members)
        rates = rates.rename(columns={"members": "period_members"})
        return summary.merge(rates[[by, "user_repurchase_rate", "period_members", "repeat_members"]],
                             on=by, how="left")

    tiers = with_rates(segment_summary(profile, "tier"), "tier")
    tiers = tiers.set_index("tier").reindex([x for x in TIERS if x in set(tiers["tier"])])
    tiers["user_repurchase_low"], tiers["user_repurchase_high"] = repurchase_interval(
        tiers["repeat_members"].fillna(0), tiers["period_members"].fillna(0))
    stored = with_rates(segment_summary(profile, "stored_value_holder"), "stored_value_holder")
    rfm = segment_summary(rfm_segments(store.orders, chain.as_of), "segment", value="monetary")
    channels = rates_by("channel")
    hours = hour_of_day_profile(store.orders, by="subsidy_cohort", members=members)
    return {
        "tiers": tiers.reset_index(),
        "rfm": rfm.sort_values("members", ascending=False, ignore_index=True),
        "pareto": pareto_share(store.orders, 0.2, end=chain.as_of),
        "stored_value": stored,
        "channels": channels[["channel", "members", "user_repurchase_rate", "purchases",
                              "order_repurchase_rate"]].sort_values("members", ascending=False),
        "hours": hours[hours["subsidy_cohort"].isin(["loyal", "subsidy_driven"])],
        "period_days": period_days,
    }


def segments_summary(segments: dict, lang: str = "en") -> str:
    """Sentences on the top-20% share and stored-value members (Markdown)."""
    pareto = segments["pareto"].set_index("measure")
    stored = segments["stored_value"].set_index("stored_value_holder")
    holders = stored.loc[True] if True in stored.index else None
    others = stored.loc[False] if False in stored.index else None
    text = t("pareto_sentence", lang,
             top=format_count(pareto.at["revenue_net_of_subsidy", "top_members"], lang),
             share=format_rate(pareto.at["revenue_net_of_subsidy", "top_share"], lang, digits=0))
    if holders is not None:
        text += " " + t("stored_value_sentence", lang,
                        n=format_count(holders["members"], lang),
                        share=format_rate(holders["member_share"], lang, digits=0),
                        rate=format_rate(holders["user_repurchase_rate"], lang),
                        days=segments["period_days"],
                        other=format_rate(None if others is None
                                          else others["user_repurchase_rate"], lang))
    return text


def waves_reading(waves: pd.DataFrame, lang: str = "en") -> str:
    """One line on the promotion waves: participants, repurchase after and cost per retained
    member, first measured wave against the last (:func:`rxrepurchase.readings.wave_decline`);
    empty with fewer than two measured waves."""
    from rxrepurchase.readings import wave_decline

    r = wave_decline(waves)
    if r is None:
        return ""
    (p0, p1), (r0, r1) = r["participants"], r["repurchase_rate"]
    c0, c1 = r["subsidy_per_retained_member"]
    return t("reading_waves", lang, first=r["first"], last=r["last"],
             p0=format_count(p0, lang), p1=format_count(p1, lang),
             r0=format_rate(r0, lang), r1=format_rate(r1, lang),
             c0=_money_or_missing(c0, lang), c1=_money_or_missing(c1, lang))


def hours_reading(chain: Chain, store_id: str, lang: str = "en", *, period_days: int = 90) -> str:
    """One line: the store's busiest two hours (:func:`rxrepurchase.readings.busiest_hours`)."""
    from rxrepurchase.readings import busiest_hours

    peak = busiest_hours(chain.for_store(store_id).orders, chain.as_of, period_days=period_days)
    if peak is None:
        return ""
    return t("reading_hours", lang, start=peak["start"], end=peak["end"], days=period_days,
             share=format_rate(peak["share"], lang, digits=0), ratio=f"{peak['ratio']:.1f}")


def store_tags(chain: Chain, store_id: str, *, period_days: int = 90,
               min_members: int = MIN_ACTIVE_MEMBERS,
               shared: ChainWide | None = None) -> pd.DataFrame:
    """User repurchase rate per member tag at the store over the headline period
    (:func:`rxrepurchase.readings.tag_repurchase`; from ``shared``, see :func:`store_tables`,
    when given)."""
    from rxrepurchase.readings import tag_repurchase

    tags = _store_rows(shared, "tags", chain, store_id, period_days=period_days,
                       min_active_members=min_members)
    if tags is not None:
        return tags.drop(columns="store_id")
    store = chain.for_store(store_id)
    return tag_repurchase(store.orders, chain.members, report_period(chain.as_of, period_days),
                          min_members=min_members)


@renamed_keywords(days="period_days")
def tags_reading(tags: pd.DataFrame, lang: str = "en", *, period_days: int = 90) -> str:
    """One line: the tags with the highest and lowest repurchase (empty with fewer than two)."""
    if len(tags) < 2:
        return ""
    high, low = tags.iloc[0], tags.iloc[-1]
    return t("reading_tags", lang, days=period_days, high=format_text(high["tag"]),
             high_rate=format_rate(high["user_repurchase_rate"], lang),
             high_n=format_count(high["members"], lang), low=format_text(low["tag"]),
             low_rate=format_rate(low["user_repurchase_rate"], lang),
             low_n=format_count(low["members"], lang))


def rfm_actions_html(rfm: pd.DataFrame, lang: str = "en") -> str:
    """Each member group (RFM segment) in operator words, its size and what to do with it."""
    table = pd.DataFrame({
        "rfm_group": [label(s, lang) for s in rfm["segment"]],
        "members": rfm["members"].to_numpy(),
        "rfm_action": [t(f"rfm_action_{s}", lang) if f"rfm_action_{s}" in STRINGS else "–"
                       for s in rfm["segment"]],
    })
    return table_html(table, lang, counts=("members",))


GLOSSARY = ("gloss_user_repurchase", "gloss_order_repurchase", "gloss_cohorts", "gloss_value",
            "gloss_value_at_risk", "gloss_retained", "gloss_pdc")
"""The glossary that closes a store page, in this order."""


def glossary_html(lang: str = "en") -> str:
    """The store page's glossary: the terms it uses, in plain words (Jinja, autoescaped)."""
    return render_section("glossary", items=[t(key, lang) for key in GLOSSARY])


@renamed_keywords(days="period_days")
def tiers_table_html(tiers: pd.DataFrame, lang: str = "en", *, period_days: int = 90) -> str:
    """Tier summary: members, share, spend over 365 days, repurchase rate over the headline
    period of ``period_days`` days with its 95% Wilson interval (``tiers``: :func:`store_segments`')."""
    bounds = ["user_repurchase_low", "user_repurchase_high"]
    out = tiers.drop(columns=bounds).assign(tier=tiers["tier"].map(lambda v: label(v, lang)))
    out.insert(out.columns.get_loc("user_repurchase_rate") + 1, "user_repurchase_range",
               [f"{format_rate(a, lang, digits=0)}–{format_rate(b, lang, digits=0)}"
                if np.isfinite(a) else "–" for a, b in tiers[bounds].itertuples(index=False)])
    out = out.drop(columns=["period_members", "repeat_members"]).rename(columns={"tier": "group_tier"})
    return table_html(out, lang, rates=("member_share", "user_repurchase_rate"),
                      money=("spend_365d_mean", "spend_365d_total"), counts=("members",),
                      headers={"user_repurchase_rate": windowed("user_repurchase_rate", lang,
                                                                period_days=period_days)})


@renamed_keywords(days="period_days")
def channels_table_html(channels: pd.DataFrame, lang: str = "en", *, period_days: int = 90) -> str:
    """Repurchase by order channel over the headline period of ``period_days`` days."""
    out = channels.assign(channel=channels["channel"].map(lambda v: label(v, lang)))
    return table_html(out, lang, rates=("user_repurchase_rate", "order_repurchase_rate"),
                      counts=("members", "purchases"),
                      headers={k: windowed(k, lang, period_days=period_days)
                               for k in ("user_repurchase_rate", "order_repurchase_rate")})


def plot_rfm(rfm: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None) -> plt.Axes:
    """Members per RFM segment (horizontal bars, largest on top)."""
    ax = ax if ax is not None else plt.subplots()[1]
    r = rfm.sort_values("members")
    ax.barh([label(s, lang) for s in r["segment"]], r["members"], color="#1f6f8b")
    ax.set_xlabel(t("members", lang))
    ax.set_title(t("rfm_title", lang))
    ax.tick_params(axis="y", labelsize=8)
    return ax


def plot_hours(hours: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None) -> plt.Axes:
    """Share of orders per hour of day, loyal vs subsidy-driven members."""
    ax = ax if ax is not None else plt.subplots()[1]
    for cohort, part in hours.groupby("subsidy_cohort", observed=True):
        ax.plot(part["hour"], part["share"], marker=".", color=COHORT_COLORS.get(cohort),
                label=cohort_label(cohort, lang))
    ax.set_xticks(range(0, 24, 3))
    ax.set_xlabel(t("hour_of_day", lang))
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_title(t("hours_title", lang))
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------- sections 5, 6


@renamed_keywords(within="horizon_days")
def store_refills(chain: Chain, store_id: str, *, horizon_days: int = 14,
                  shared: ChainWide | None = None) -> RefillOverview:
    """Section 5: :func:`rxrepurchase.refill.refill_overview` of the store's members.

    ``shared`` (:func:`chain_wide` of this chain) supplies the chain-wide refill tables the
    store's figures are sliced from, instead of computing them here.
    """
    from rxrepurchase.refill import refill_overview

    chain.for_store(store_id)
    if shared is None:
        return refill_overview(chain, store_id=store_id, horizon_days=horizon_days)
    shared.check(chain, store_id)
    return refill_overview(chain, store_id=store_id, horizon_days=horizon_days,
                           chain_predictions=shared.refill_predictions,
                           chain_adherence=shared.refill_adherence,
                           chain_lift=shared.refill_lift,
                           chain_list_check=shared.refill_list_check)


def refills_summary(refills: RefillOverview, lang: str = "en") -> str:
    """Sentences: members on a refill rhythm, due and overdue, adherence, and the list's
    measured precision (the list as of ``check_days`` ago) beside the naive list's (Markdown)."""
    h = refills.headline
    return t("refills_sentence", lang, members=format_count(h["refill_members"], lang),
             rows=format_count(h["reminder_rows"], lang),
             due=format_count(h["reminder_rows_due"], lang),
             overdue=format_count(h["reminder_rows_overdue"], lang),
             later=format_count(h["reminder_rows_later"], lang),
             lapsed=format_count(h["lapsed_rows"], lang), within=h["horizon_days"],
             pdc=format_rate(h["pdc_mean"], lang, digits=0),
             adherent=format_rate(h["adherent_share"], lang, digits=0)) + (
        "" if h["list_precision"] is None else " " + t(
            "refills_precision_sentence", lang, listed=format_count(h["list_check_listed"], lang),
            as_of=h["list_check_as_of"], days=h["list_check_outcome_days"],
            precision=format_rate(h["list_precision"], lang, digits=0),
            low=format_rate(h["list_precision_low"], lang, digits=0),
            high=format_rate(h["list_precision_high"], lang, digits=0),
            naive=format_rate(h["naive_list_precision"], lang, digits=0)))


def adherence_table_html(refills: RefillOverview, lang: str = "en", *, top: int = 10) -> str:
    """Adherence by product group (the ``top`` groups with most members)."""
    table = refills.adherence_by_product.head(top)
    table = table[["product_name", "members", "pdc_mean", "adherent_share"]]
    return table_html(table, lang, rates=("pdc_mean", "adherent_share"), counts=("members",))


def plot_refills_due(refills: RefillOverview, lang: str = "en", *,
                     ax: plt.Axes | None = None) -> plt.Axes:
    """Refills coming due per week (:func:`rxrepurchase.plots.plot_refills_due_by_week`)."""
    from rxrepurchase.plots.refill import plot_refills_due_by_week

    return plot_refills_due_by_week(refills.predictions, lang=lang, ax=ax)


def _recent_orders(chain: Chain, shared: ChainWide | None) -> pd.DataFrame:
    """Orders that tell who bought recently anywhere in the chain: each member's last order
    from ``shared`` (a store's slice has only its own orders), else the chain's orders."""
    if shared is not None and shared.last_orders is not None:
        shared.check(chain)
        return shared.last_orders
    return chain.orders


_MADE_HERE = object()
"""Default of ``wake_up=``: the function makes the store's wake-up list itself."""


def store_wake_up(chain: Chain, store_id: str, models: StoreModels, *,
                  gross_margin: float = 0.3, shared: ChainWide | None = None) -> pd.DataFrame | None:
    """The store's wake-up list as members get it: :func:`rxrepurchase.models.wake_up_list`
    of its members through :func:`rxrepurchase.actionlists.wake_up_targets` (no recent buyer,
    no negative value at risk), with ``member_id`` as a column; None when the store could not
    be modelled. The list file and "This week" both read it."""
    from rxrepurchase.actionlists import wake_up_targets
    from rxrepurchase.models import wake_up_list

    if not models.ok:
        return None
    wake = wake_up_list(chain.for_store(store_id).member_orders, models.purchase_model,
                        models.spend_model, as_of=chain.as_of, gross_margin=gross_margin)
    return wake_up_targets(wake, chain.members, _recent_orders(chain, shared), as_of=chain.as_of)


def store_this_week(chain: Chain, store_id: str, cohorts: pd.DataFrame, models: StoreModels,
                    refills: RefillOverview, *, gross_margin: float = 0.3,
                    period_days: int = 90, shared: ChainWide | None = None,
                    wake_up=_MADE_HERE) -> pd.DataFrame:
    """"This week" of a store report: :func:`rxrepurchase.this_week.this_week_actions` of the
    store's refill predictions, wake-up list, subsidy cohorts and orders.

    ``attrs`` carries ``as_of``, ``horizon_days`` and ``soon_days`` (the refill horizons) and
    ``period_days`` for the page's sentences. ``wake_up``: the store's :func:`store_wake_up`
    when already made (it scores every member of the store), else made here.
    """
    from rxrepurchase.this_week import this_week_actions

    soon = min(7, refills.horizon_days)
    actions = this_week_actions(
        predictions=refills.predictions, members=chain.members, cohorts=cohorts,
        orders=chain.for_store(store_id).orders, as_of=chain.as_of,
        wake_up=(store_wake_up(chain, store_id, models, gross_margin=gross_margin, shared=shared)
                 if wake_up is _MADE_HERE else wake_up),
        refill_list=refills.targets, soon_days=soon, horizon_days=refills.horizon_days,
        period_days=period_days)
    actions.attrs = {**actions.attrs, "as_of": chain.as_of.date().isoformat(),
                     "horizon_days": refills.horizon_days, "soon_days": soon,
                     "period_days": period_days}
    return actions


def this_week_metrics(actions: pd.DataFrame) -> dict:
    """Members per action and offer, for ``metrics.json`` (``this_week_<offer>_members``),
    and ``top_members``: the size of the top 20% (the chain overview's list sizes)."""
    out = {f"this_week_{row.offer}_members": int(row.members) for row in actions.itertuples()}
    out["top_members"] = int(actions.attrs["top_members"])
    return out


def this_week_html(actions: pd.DataFrame, lang: str = "en") -> str:
    """"This week" as a numbered list: what, whom, how many, channel (Jinja, autoescaped)."""
    from rxrepurchase.this_week import CHANNELS, SLOWED_FACTOR, WIN_BACK_MIN_DAYS

    lang = normalize_lang(lang)
    a = actions.attrs
    items = []
    for row in actions.itertuples():
        values = {"n": format_count(row.members, lang), "within": a["horizon_days"],
                  "soon_days": a["soon_days"], "days": a["period_days"]}
        if row.action == "refill_reminder":
            values.update(soon=format_count(row.members_soon, lang),
                          items=format_count(row.items, lang))
        elif row.action == "win_back":
            values.update(value=format_money(row.expected_value, lang), days=WIN_BACK_MIN_DAYS)
        elif row.action == "top_care":
            values.update(top=format_count(row.top_members, lang), factor=f"{SLOWED_FACTOR:g}")
        elif row.action == "evening_offer":
            values.update(hours=row.hours, share=format_rate(row.share, lang, digits=0),
                          ratio=f"{row.ratio:.1f}")
        items.append({
            "title": t(f"tw_{row.offer}", lang),
            "text": t(f"tw_{row.offer}_text", lang, **values),
            "channels": t("tw_channels", lang, **{c: format_count(getattr(row, c), lang)
                                                  for c in CHANNELS}),
        })
    return render_section("this_week", items=items, intro=t("tw_intro", lang, as_of=a["as_of"]),
                          nothing=t("tw_nothing", lang))


def write_action_lists(
    chain: Chain, store_id: str, models: StoreModels, refills: RefillOverview,
    folder: str | os.PathLike | None, *, gross_margin: float = 0.3, lang: str = "en",
    shared: ChainWide | None = None, wake_up=_MADE_HERE,
) -> pd.DataFrame:
    """Section 6: the refill reminder list, the wake-up list (valuable members whose
    activity is falling, :func:`rxrepurchase.actionlists.wake_up_targets`) and the wake-up
    list of lapsed refills (:func:`rxrepurchase.actionlists.lapsed_refill_list`), written as
    CSV into ``folder`` (skipped when ``folder`` is empty or None), and together as one
    workbook ``lists.xlsx`` in ``lang`` (:func:`rxrepurchase.actionlists.write_lists_workbook`)
    that the store's email carries.

    Returns
    -------
    DataFrame
        ``list, rows, members, path`` (rows: list rows, member x product on refill lists;
        members: distinct members; path None when not written; wake-up sizes None when the
        store could not be modelled). ``attrs["tables"]`` holds the lists themselves.

    ``wake_up``: the store's :func:`store_wake_up` when already made, else made here.
    """
    from rxrepurchase.actionlists import (
        LISTS_WORKBOOK,
        lapsed_refill_list,
        list_sizes,
        write_lists_workbook,
    )
    from rxrepurchase.refill import export_target_list

    lists: dict[str, pd.DataFrame | None] = {
        "refill_reminder": refills.targets,
        "wake_up": (store_wake_up(chain, store_id, models, gross_margin=gross_margin,
                                  shared=shared) if wake_up is _MADE_HERE else wake_up),
    }
    lists["lapsed_refill"] = lapsed_refill_list(
        refills.predictions, chain.members, _recent_orders(chain, shared),
        max_overdue_days=refills.targets.attrs.get("max_overdue_days") or 30)
    rows = []
    for name, table in lists.items():
        path = None
        if folder and table is not None:
            path = export_target_list(table, Path(folder) / f"{name}.csv", overwrite=True)
        sizes = list_sizes(name, table)
        rows.append({"list": name, "rows": sizes[f"{name}_rows"], "members": sizes[f"{name}_members"],
                     "path": None if path is None else str(path)})
    out = pd.DataFrame(rows)
    workbook = None
    if folder:
        workbook = str(write_lists_workbook(lists, Path(folder) / LISTS_WORKBOOK, lang=lang, overwrite=True))
    lapsed = lists["lapsed_refill"].attrs
    out.attrs = {"tables": lists, "workbook": workbook,
                 "lapsed_too_old": {"rows": lapsed["too_old_rows"],
                                    "members": lapsed["too_old_members"],
                                    "days": lapsed["max_lapsed_days"]}}
    return out


def action_list_metrics(actions: pd.DataFrame) -> dict[str, int | None]:
    """``{list}_rows`` and ``{list}_members`` of :func:`write_action_lists`, and
    ``lapsed_refill_too_old_rows`` / ``_members`` (refills overdue beyond
    :data:`rxrepurchase.actionlists.MAX_LAPSED_DAYS`, left out), for ``metrics.json``."""
    out = {f"{r.list}_{unit}": getattr(r, unit) for r in actions.itertuples()
           for unit in ("rows", "members")}
    too_old = actions.attrs["lapsed_too_old"]
    out.update(lapsed_refill_too_old_rows=too_old["rows"],
               lapsed_refill_too_old_members=too_old["members"])
    return out


def actions_html(actions: pd.DataFrame, lang: str = "en", *,
                 relative_to: str | os.PathLike | None = None) -> str:
    """The action lists: size, what each is, a link to the file (relative to the report)."""
    items = []
    for row in actions.itertuples():
        size = "–" if pd.isna(row.members) else t("list_size", lang, rows=format_count(row.rows, lang),
                                                   members=format_count(row.members, lang))
        item = {"name": t(f"list_{row.list}", lang), "size": size, "href": None,
                "shown": t("not_written", lang)}
        if isinstance(row.path, str) and row.path:  # pandas makes an all-None column NaN
            path = Path(row.path)
            item["shown"] = os.path.relpath(path, relative_to) if relative_to else str(path)
            item["href"] = Path(item["shown"]).as_posix()
        what = t(f"list_{row.list}_what", lang)
        too_old = actions.attrs.get("lapsed_too_old")
        if row.list == "lapsed_refill" and too_old and too_old["days"] is not None:
            what += " " + t("lapsed_too_old", lang, rows=format_count(too_old["rows"], lang),
                            members=format_count(too_old["members"], lang),
                            days=too_old["days"])
        items.append({**item, "what": what})
    return render_section("actions", items=items)


# --------------------------------------------------------------------------- did the subsidy pay?


@renamed_keywords(window_days="outcome_days")
def campaign_effects(chain: Chain, store_id: str | None = None, *, outcome_days: int = 30,
                     shared: ChainWide | None = None) -> pd.DataFrame | None:
    """:func:`~rxrepurchase.uplift.campaign_uplift` of the chain, or of the sends to one store's
    members (``home_store_id``); None when the export has no ``campaign_members``.

    A store's share of the chain-wide figures (``shared``, see :class:`ChainWide`) carries the
    store's effects, measured on the whole chain (the matched comparison needs every member)."""
    if shared is not None and shared.store_id is not None and store_id is not None:
        shared.check(chain, store_id)
        effects = shared.campaign_effects
        if effects is not None and effects.attrs.get("outcome_days") != outcome_days:
            raise ReportDataError(f"the store's campaign effects are over "
                                  f"{effects.attrs.get('outcome_days')} days, not {outcome_days}")
        return effects
    if chain.campaign_members is None:
        return None
    members = None
    if store_id is not None:
        members = chain.members.loc[chain.members["home_store_id"] == store_id, "member_id"]
    from rxrepurchase.uplift import campaign_uplift  # statsmodels.api: not in a store's kernel

    effects = campaign_uplift(chain, outcome_days=outcome_days, member_ids=members)
    effects.attrs["outcome_days"] = outcome_days
    return effects


def _money_or_missing(value: float, lang: str) -> str:
    return format_money(value, lang) if math.isfinite(value) and value > 0 else "–"


def _signed(value: float) -> str:
    """``+0.12`` / ``-0.12``; a value that rounds to zero is ``+0.00``, never ``-0.00``."""
    return f"{round(value, 2) + 0.0:+.2f}"


@renamed_keywords(window_days="outcome_days")
def uplift_html(effects: pd.DataFrame | None, lang: str = "en", *, outcome_days: int = 30) -> str:
    """The "Did the subsidy pay?" section: one sentence per wave (HTML, data escaped), or what
    the chain would need to export when there are no send lists."""
    sep = "" if normalize_lang(lang) == "zh" else " "  # Chinese sentences run on after 。
    if effects is None:
        return note_html(t("uplift_missing", lang))
    if effects.empty:
        return note_html(t("uplift_none_for_store", lang))
    items = []
    for r in effects.itertuples():
        method = t("method_randomized" if r.method == "randomized" else "method_observational", lang)
        values = dict(wave=r.wave, name=_text(r.name) or r.campaign_id, method=method,
                      cost=format_money(r.subsidy, lang),
                      low=format_count(r.incremental_members_low, lang),
                      high=format_count(r.incremental_members_high, lang))
        if math.isnan(r.incremental_members):
            text = t("uplift_not_measured", lang, **values)
        elif r.incremental_members_low > 0:
            text = t("uplift_sentence", lang, n=format_count(r.incremental_members, lang),
                     per=_money_or_missing(r.subsidy_per_incremental_member, lang),
                     value=format_money(r.twelve_month_value, lang), **values)
        else:
            text = t("uplift_sentence_none", lang, **values)
        if not math.isnan(r.extra_purchases_180d):
            text += sep + t("uplift_net", lang, days=outcome_days, net=_signed(r.extra_purchases_180d),
                            low=_signed(r.extra_purchases_180d_low), high=_signed(r.extra_purchases_180d_high),
                            window=_signed(r.extra_purchases_window))
            if r.incremental_members_low > 0 and r.extra_purchases_180d < r.extra_purchases_window:
                text += sep + t("uplift_pulled_forward", lang)
        items.append(text)
    return render_section("uplift", intro=t("uplift_intro", lang, days=outcome_days), items=items)


def uplift_ranking_html(effects: pd.DataFrame | None, lang: str = "en") -> str:
    """The campaigns ranked by subsidy per extra member (cheapest first; those with no
    measurable extra member last), as a table (the counts of extra members are in the
    sentences of :func:`uplift_html`)."""
    if effects is None or effects.empty:
        return ""
    ranked = effects.assign(
        _cost=effects["subsidy_per_incremental_member"].where(effects["incremental_members_low"] > 0, np.inf),
    ).sort_values(["_cost", "wave"], kind="stable")
    table = pd.DataFrame({
        "wave": ranked["wave"],
        "name": ranked["name"].fillna(ranked["campaign_id"]),
        "method": [t("method_randomized" if m == "randomized" else "method_observational", lang)
                   for m in ranked["method"]],
        "sent_and_control": [f"{format_count(n, lang)} / {format_count(c, lang)}"
                             for n, c in zip(ranked["treatment"], ranked["control"], strict=True)],
        "uplift_interval": [t("estimate_interval", lang, value=format_rate(u, lang), low=format_rate(lo, lang),
                              high=format_rate(hi, lang))
                            for u, lo, hi in zip(ranked["uplift"], ranked["uplift_low"],
                                                 ranked["uplift_high"], strict=True)],
        "subsidy": ranked["subsidy"],
        "subsidy_per_incremental_member": [_money_or_missing(v, lang) for v in ranked["_cost"]],
        "return_on_subsidy": ranked["return_on_subsidy"].round(2),
        "extra_purchases_180d": ranked["extra_purchases_180d"].map(_signed),
    })
    return table_html(table, lang, money=("subsidy",))


# --------------------------------------------------------------------------- the store page


@dataclass
class RefillSection:
    """What section 5 shows of a :class:`~rxrepurchase.refill.RefillOverview`, computed once:
    :func:`refills_summary`, :func:`adherence_table_html` and :func:`plot_refills_due` take
    either.

    Attributes
    ----------
    predictions : DataFrame
        The store's refill predictions (the chart of refills due per week).
    headline : dict
        ``RefillOverview.headline``.
    adherence_by_product : DataFrame
        ``RefillOverview.adherence_by_product``.
    horizon_days : int
        Days ahead of the reminder list.
    """

    predictions: pd.DataFrame
    headline: dict
    adherence_by_product: pd.DataFrame
    horizon_days: int

    within = renamed_attribute("within", "horizon_days")

    @classmethod
    def of(cls, refills: RefillOverview) -> RefillSection:
        return cls(predictions=refills.predictions, headline=refills.headline,
                   adherence_by_product=refills.adherence_by_product,
                   horizon_days=refills.horizon_days)


@dataclass
class StorePage:
    """Everything a store report shows, computed before its notebook runs (:func:`store_page`).

    The report run computes each store's page in its slice step (the batch) and writes it into
    the store's slice (:func:`rxrepurchase.report_slices.write_store_page`); the store's
    kernel then only reads it and renders: texts, tables and charts. No model is fitted and
    no analysis module is needed in the kernel. Texts that need an analysis module to be
    worded are made here, in ``lang``.

    Attributes
    ----------
    store_id : str
    as_of : Timestamp
    lang : str
        Language of the texts and of the action lists' workbook.
    settings : dict
        The parameters the page was computed with (see :func:`store_page`).
    headline : dict
        :func:`store_headline`.
    metrics : dict
        What the store's ``metrics.json`` holds: the headline, "This week", sections 2 and 3,
        the refill headline (``refill_*``) and the action lists' sizes.
    thin : str or None
        :func:`thin_data_reason`; when set, the sections below are None or empty.
    effects : DataFrame or None
        :func:`campaign_effects` of the store.
    quality : DataFrame
        :func:`quality_table` in ``lang``.
    cohorts : dict of DataFrame
        :func:`store_cohorts` without ``members``.
    calibration_text, waves_text, hours_text : str
        :func:`calibration_note`, :func:`waves_reading`, :func:`hours_reading`.
    models : StoreModels
        :func:`store_models` without the fitted models (their figures are kept).
    value_by : dict of DataFrame
        :func:`value_by` per ``subsidy_cohort`` and ``tier`` (empty when not modelled).
    refills : RefillSection
    this_week : DataFrame
        :func:`store_this_week`.
    monthly : DataFrame
        :func:`monthly_repurchase`.
    segments : dict
        :func:`store_segments`.
    tags : DataFrame
        :func:`store_tags`.
    actions : DataFrame
        :func:`write_action_lists` (the lists themselves are in its files, not in ``attrs``).
    """

    store_id: str
    as_of: pd.Timestamp
    lang: str
    settings: dict
    headline: dict
    metrics: dict
    thin: str | None
    effects: pd.DataFrame | None
    quality: pd.DataFrame
    cohorts: dict | None = None
    calibration_text: str = ""
    waves_text: str = ""
    models: StoreModels | None = None
    value_by: dict = field(default_factory=dict)
    refills: RefillSection | None = None
    this_week: pd.DataFrame | None = None
    monthly: pd.DataFrame | None = None
    segments: dict | None = None
    hours_text: str = ""
    tags: pd.DataFrame | None = None
    actions: pd.DataFrame | None = None


@renamed_keywords(refill_within_days="refill_horizon_days")
def store_page(chain: Chain, store_id: str, *, shared: ChainWide | None = None,
               lang: str = "en", actions_dir: str | os.PathLike | None = "",
               period_days: int = 90, min_active_members: int = MIN_ACTIVE_MEMBERS,
               gross_margin: float = 0.3, clv_horizon_months: int = 12,
               refill_horizon_days: int = 14, calibration_end=None,
               currency: str = DEFAULT_CURRENCY) -> StorePage:
    """Compute a store's report page (:class:`StorePage`): every section's figures, in the
    order the store notebook shows them.

    Parameters
    ----------
    chain, store_id, shared
        As for :func:`store_headline` (``shared``: :func:`chain_wide` of the chain, or the
        store's slice of it).
    lang : {"en", "zh"}
        Language of the page's texts and of the lists' workbook.
    currency : str
        ISO 4217 code the page's texts and lists show amounts in (:func:`set_currency`).
    actions_dir : path, optional
        Where :func:`write_action_lists` writes the action lists (empty: not written).
    period_days, min_active_members, gross_margin, clv_horizon_months, refill_horizon_days,
    calibration_end
        The store notebook's parameters of the same names.
    """
    lang = normalize_lang(lang)
    with set_currency(currency):  # the texts' and lists' amounts
        settings = {"period_days": period_days, "min_active_members": min_active_members,
                    "gross_margin": gross_margin, "clv_horizon_months": clv_horizon_months,
                    "refill_horizon_days": refill_horizon_days,
                    "calibration_end": None if calibration_end is None else str(calibration_end),
                    "actions_dir": str(actions_dir or ""), "currency": check_currency(currency)}
        headline = store_headline(chain, store_id, period_days=period_days,
                                  min_active_members=min_active_members, shared=shared)
        page = StorePage(store_id=store_id, as_of=chain.as_of, lang=lang, settings=settings,
                         headline=headline, metrics=dict(headline),
                         thin=thin_data_reason(chain, store_id, lang),
                         effects=campaign_effects(chain, store_id, shared=shared),
                         quality=quality_table(chain, store_id, lang))
        if page.thin:
            return page
        cohorts = store_cohorts(chain, store_id, shared=shared)
        models = store_models(chain, store_id, cohorts["members"], gross_margin=gross_margin,
                              horizon_months=clv_horizon_months, calibration_end=calibration_end)
        refills = store_refills(chain, store_id, horizon_days=refill_horizon_days, shared=shared)
        wake = store_wake_up(chain, store_id, models, gross_margin=gross_margin, shared=shared)
        page.this_week = store_this_week(chain, store_id, cohorts["members"], models, refills,
                                         gross_margin=gross_margin, period_days=period_days,
                                         shared=shared, wake_up=wake)
        page.metrics.update(this_week_metrics(page.this_week))
        page.metrics.update(section_metrics(cohorts, models))
        page.refills = RefillSection.of(refills)
        page.metrics.update({f"refill_{k}": v for k, v in page.refills.headline.items()
                             if k != "as_of"})
        actions = write_action_lists(chain, store_id, models, refills, actions_dir,
                                     gross_margin=gross_margin, lang=lang, shared=shared,
                                     wake_up=wake)
        page.metrics.update(action_list_metrics(actions))
        actions.attrs = {k: v for k, v in actions.attrs.items() if k != "tables"}
        page.actions = actions
        page.monthly = monthly_repurchase(chain, store_id, shared=shared,
                                          min_active_members=min_active_members)
        page.cohorts = {k: v for k, v in cohorts.items() if k != "members"}
        page.calibration_text = calibration_note(cohorts["members"], lang)
        page.waves_text = waves_reading(cohorts["waves"], lang)
        if models.ok:
            page.value_by = {by: value_by(models.scores, by, models.value_ranges[by])
                             for by in ("subsidy_cohort", "tier")}
        page.models = replace(models, purchase_model=None, spend_model=None)
        page.segments = store_segments(chain, store_id, cohorts["members"],
                                       period_days=period_days, shared=shared)
        page.hours_text = hours_reading(chain, store_id, lang, period_days=period_days)
        page.tags = store_tags(chain, store_id, period_days=period_days,
                               min_members=min_active_members, shared=shared)
        return page
