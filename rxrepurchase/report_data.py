"""Figures and tables the report notebooks show, assembled from the analysis modules.

The notebooks in ``notebooks/`` only call these functions and display what they return; the
analysis itself lives in :mod:`rxrepurchase.metrics`, :mod:`rxrepurchase.cohorts`,
:mod:`rxrepurchase.models`, :mod:`rxrepurchase.refill`. :func:`store_headline` is also what the
runner writes to each store's ``metrics.json`` and what the index page shows.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from rxrepurchase.cohorts import (
    COHORTS,
    CohortRules,
    classify_members,
    compare_cohorts,
    post_subsidy_repurchase,
    wave_response,
)
from rxrepurchase.i18n import STRINGS, format_count, format_money, format_rate, normalize_lang, t
from rxrepurchase.loading import Chain
from rxrepurchase.metrics import repurchase_rates, retention_curve

__all__ = [
    "chain_headlines",
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
    "report_period",
    "report_title",
    "store_cohorts",
    "store_headline",
    "table_html",
    "waves_table_html",
    "write_metrics",
]


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


def store_headline(chain: Chain, store_id: str, *, period_days: int = 90) -> dict:
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
        chain_median_order_repurchase_rate`` (median over the stores with member purchases),
        ``active_members`` (members with a purchase at the store in the period),
        ``member_purchases``, ``orders`` (all orders incl. walk-in), ``revenue`` (paid, all
        orders) and ``subsidy`` (discount, all orders). Rates are None when nobody purchased.

    Raises
    ------
    DataContractError
        If the store is not in the chain's stores table.
    """
    store = chain.for_store(store_id)  # raises a clear error for an unknown store
    start, end = report_period(chain.as_of, period_days)
    rates = repurchase_rates(chain.orders, (start, end), by="store_id").set_index("store_id")
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
        "chain_median_user_repurchase_rate": _number(rates["user_repurchase_rate"].median()),
        "chain_median_order_repurchase_rate": _number(rates["order_repurchase_rate"].median()),
        "active_members": 0 if row is None else int(row["members"]),
        "member_purchases": 0 if row is None else int(row["purchases"]),
        "orders": len(in_period),
        "revenue": float(in_period["paid_amount"].sum()),
        "subsidy": float(in_period["discount_amount"].sum()),
    }


def _text(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def write_metrics(metrics: dict, path: str | os.PathLike) -> Path:
    """Write a store's figures as ``metrics.json`` (UTF-8, store names kept readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def headline_html(headline: dict, lang: str = "en") -> str:
    """The headline figures as a row of tiles (HTML) for the top of a store report."""
    lang = normalize_lang(lang)
    median_user = format_rate(headline["chain_median_user_repurchase_rate"], lang)
    median_order = format_rate(headline["chain_median_order_repurchase_rate"], lang)
    tiles = [
        ("user_repurchase_rate", format_rate(headline["user_repurchase_rate"], lang),
         t("chain_median", lang, value=median_user)),
        ("order_repurchase_rate", format_rate(headline["order_repurchase_rate"], lang),
         t("chain_median", lang, value=median_order)),
        ("active_members", format_count(headline["active_members"], lang), ""),
        ("revenue", format_money(headline["revenue"], lang), ""),
        ("subsidy", format_money(headline["subsidy"], lang), ""),
    ]
    e = html.escape
    cells = "".join(
        f'<div class="rx-tile"><div class="rx-label">{e(t(key, lang))}</div>'
        f'<div class="rx-value">{e(value)}</div><div class="rx-note">{e(note)}</div></div>'
        for key, value, note in tiles
    )
    period = t("period", lang, start=headline["period_start"], end=headline["period_end"])
    return f'<p class="rx-meta">{e(period)}</p><div class="rx-tiles">{cells}</div>'


def monthly_repurchase(chain: Chain, store_id: str, *, months: int = 12) -> pd.DataFrame:
    """Monthly user and order repurchase rates of the store and the chain median of stores.

    Returns
    -------
    DataFrame
        One row per calendar month (the last ``months`` up to ``chain.as_of``) with
        ``month`` (period start), ``user_repurchase_rate, order_repurchase_rate`` (the
        store's) and ``chain_median_user_repurchase_rate, chain_median_order_repurchase_rate``.
    """
    chain.for_store(store_id)
    end = chain.as_of
    start = (end.to_period("M") - (months - 1)).to_timestamp()
    rates = repurchase_rates(chain.orders, "M", by="store_id", start=start, end=end)
    cols = ["user_repurchase_rate", "order_repurchase_rate"]
    median = rates.groupby("window_start")[cols].median().add_prefix("chain_median_")
    store = rates[rates["store_id"] == store_id].set_index("window_start")[cols]
    table = store.join(median, how="right").rename_axis("month").reset_index()
    return table


def plot_monthly_repurchase(
    table: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None
) -> plt.Axes:
    """Plot :func:`monthly_repurchase`: the store's two rates, dashed chain medians."""
    ax = ax if ax is not None else plt.subplots()[1]
    for key, color in (("user_repurchase_rate", "#1f6f8b"), ("order_repurchase_rate", "#e07a1f")):
        ax.plot(table["month"], table[key], marker="o", color=color, label=t(key, lang))
        ax.plot(table["month"], table[f"chain_median_{key}"], linestyle="--", color=color,
                alpha=0.6, label=t("chain_median_of", lang, what=t(key, lang)))
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_ylim(bottom=0)
    ax.set_title(t("trend_title", lang))
    ax.legend(fontsize=8, ncol=2)
    return ax


def report_title(headline: dict, lang: str = "en") -> str:
    """Markdown title of a store report: store, name, city and analysis date."""
    title = t("store_report_title", lang, store_id=headline["store_id"],
              name=headline["store_name"] or headline["store_id"])
    meta = t("report_meta", lang, city=headline["city"] or "–", as_of=headline["as_of"])
    return f"# {title}\n\n{meta}"


def quality_table(chain: Chain, store_id: str, lang: str = "en") -> pd.DataFrame:
    """The store's rows the loader excluded or warned about, and why (localized headers)."""
    table = chain.quality.summary(store_id)[["table", "rule", "action", "rows", "message"]]
    table = table.assign(action=table["action"].map(lambda a: t(f"quality_{a}", lang)))
    return table.rename(columns={c: t(f"quality_{c}", lang) for c in table.columns})


def quality_html(chain: Chain, store_id: str, lang: str = "en") -> str:
    """Data-quality section: a sentence, and the table of issues when there are any."""
    table = quality_table(chain, store_id, lang)
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
) -> str:
    """A table for a report page: numbers formatted for ``lang``, headers translated.

    Columns named in ``rates`` / ``money`` / ``counts`` are formatted with
    :func:`~rxrepurchase.i18n.format_rate` / ``format_money`` / ``format_count``; headers that
    are keys of :data:`rxrepurchase.i18n.STRINGS` are translated, others kept.
    """
    out = df.copy()
    for cols, fmt in ((rates, format_rate), (money, format_money), (counts, format_count)):
        for c in cols:
            out[c] = out[c].map(lambda v, fmt=fmt: fmt(v, lang))
    out = out.rename(columns=lambda c: t(c, lang) if c in STRINGS else c)
    return out.to_html(index=index, border=0, escape=True, na_rep="–")


def chain_headlines(chain: Chain, *, period_days: int = 90) -> pd.DataFrame:
    """:func:`store_headline` of every store, one row per store, with an ``outlier`` column.

    ``outlier`` is ``"high"`` / ``"low"`` when the store's user repurchase rate lies outside
    Tukey's fences (1.5 interquartile ranges beyond the quartiles) of all stores' rates, else
    ``""``.
    """
    table = pd.DataFrame(
        [store_headline(chain, s, period_days=period_days) for s in chain.store_ids]
    )
    rate = table["user_repurchase_rate"].astype("float64")
    q1, q3 = rate.quantile(0.25), rate.quantile(0.75)
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    table["outlier"] = ""
    table.loc[rate > high, "outlier"] = "high"
    table.loc[rate < low, "outlier"] = "low"
    return table


def chain_title(chain: Chain, lang: str = "en") -> str:
    """Markdown title of the chain overview."""
    meta = t("chain_meta", lang, n=len(chain.stores), as_of=chain.as_of.date().isoformat())
    return f"# {t('chain_overview', lang)}\n\n{meta}"


def chain_ranking_html(stores: pd.DataFrame, lang: str = "en") -> str:
    """Stores ranked by user repurchase rate (best first), outliers marked."""
    ranked = stores.sort_values("user_repurchase_rate", ascending=False, na_position="last")
    ranked = ranked.assign(
        rank=range(1, len(ranked) + 1),
        outlier=ranked["outlier"].map(lambda o: t(f"outlier_{o}", lang) if o else ""),
    )
    cols = ["rank", "store_id", "store_name", "city", "user_repurchase_rate",
            "order_repurchase_rate", "active_members", "revenue", "subsidy", "outlier"]
    table = ranked[cols].rename(columns={"store_id": "store"})
    return table_html(
        table, lang,
        rates=("user_repurchase_rate", "order_repurchase_rate"),
        money=("revenue", "subsidy"), counts=("active_members",),
    )


def plot_store_rates(stores: pd.DataFrame, lang: str = "en", *, ax: plt.Axes | None = None) -> plt.Axes:
    """Bar chart of every store's user and order repurchase rates, chain median as a line."""
    ax = ax if ax is not None else plt.subplots()[1]
    ranked = stores.sort_values("user_repurchase_rate", ascending=False)
    x = range(len(ranked))
    width = 0.4
    for shift, key, color in ((-width / 2, "user_repurchase_rate", "#1f6f8b"),
                              (width / 2, "order_repurchase_rate", "#e07a1f")):
        ax.bar([i + shift for i in x], ranked[key].astype("float64"), width, color=color,
               label=t(key, lang))
        ax.axhline(ranked[key].astype("float64").median(), color=color, linestyle="--",
                   alpha=0.6, label=t("chain_median_of", lang, what=t(key, lang)))
    ax.set_xticks(list(x), [f"{s}\n{n}" for s, n in zip(ranked["store_id"], ranked["store_name"], strict=True)])
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_title(t("store_rates_title", lang))
    ax.legend(fontsize=8, ncol=2)
    return ax


# --------------------------------------------------------------------------- section 2: cohorts

COHORT_COLORS = {
    "loyal": "#1f6f8b",
    "mixed": "#8fb9a8",
    "occasional": "#b0bec5",
    "subsidy_driven": "#e07a1f",
    "new": "#c9b458",
}

# Rows of the side-by-side cohort table and how each is formatted.
_COHORT_ROWS: tuple[tuple[str, str], ...] = (
    ("members", "count"),
    ("member_share", "rate"),
    ("user_repurchase_rate", "rate"),
    ("order_repurchase_rate", "rate"),
    ("repurchase_within_days", "rate"),
    ("repurchase_after_last_subsidy", "rate"),
    ("spend_per_member", "money"),
    ("subsidy_per_member", "money"),
    ("revenue_net_of_subsidy_per_member", "money"),
    ("subsidy_rate", "rate"),
    ("subsidy_per_retained_member", "money"),
)


def store_cohorts(
    chain: Chain, store_id: str, *, rules: CohortRules | None = None, days: int = 90
) -> dict[str, pd.DataFrame]:
    """Everything section 2 shows for a store, from :mod:`rxrepurchase.cohorts`.

    Members are classified on their whole history in the chain
    (:func:`~rxrepurchase.cohorts.classify_members`); the figures count the store's orders.

    Returns
    -------
    dict of DataFrame
        ``members`` (the classification), ``comparison``
        (:func:`~rxrepurchase.cohorts.compare_cohorts` plus ``member_share``), ``retention``
        (monthly :func:`~rxrepurchase.metrics.retention_curve` per cohort), ``spend``
        (paid amount per member at the store, with its cohort), ``post_subsidy``
        (:func:`~rxrepurchase.cohorts.post_subsidy_repurchase` at ``days``) and ``waves``
        (:func:`~rxrepurchase.cohorts.wave_response` of the new-member waves, or of every
        campaign when none is marked ``new_member``).
    """
    store = chain.for_store(store_id)
    members = classify_members(chain.orders, chain.campaigns, order_lines=chain.order_lines,
                               as_of=chain.as_of, rules=rules)
    lookup = members[["member_id", "subsidy_cohort"]]
    comparison = compare_cohorts(store.orders, members, campaigns=chain.campaigns,
                                 as_of=chain.as_of, days=days, rules=rules)
    comparison["member_share"] = comparison["members"] / comparison["members"].sum()
    retention = retention_curve(store.orders, "M", by="subsidy_cohort", members=lookup,
                                as_of=chain.as_of)
    bought = store.orders[store.orders["member_id"].notna()]
    spend = (bought.groupby("member_id")["paid_amount"].sum().rename("spend").reset_index()
             .merge(lookup, on="member_id", how="inner"))
    post = post_subsidy_repurchase(store.orders, members, [days], campaigns=chain.campaigns,
                                   as_of=chain.as_of, rules=rules)
    kinds = ["new_member"] if (chain.campaigns["kind"] == "new_member").any() else None
    waves = wave_response(store.orders, chain.campaigns, kinds=kinds, days=days,
                          as_of=chain.as_of, rules=rules)
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
             parts="; ".join(parts) if lang == "en" else "；".join(parts))


def cohort_table_html(comparison: pd.DataFrame, lang: str = "en") -> str:
    """The cohorts side by side: one column per cohort, one row per figure."""
    fmt = {"count": format_count, "rate": format_rate, "money": format_money}
    c = comparison.set_index("subsidy_cohort")
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
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(lambda y, _: format_rate(y, lang, digits=0))
    ax.set_title(t("retention_title", lang))
    ax.legend(fontsize=8)
    return ax


def plot_cohort_spend(spend: pd.DataFrame, lang: str = "en", *,
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Distribution of what each member paid at the store, per cohort (box plot, log scale)."""
    ax = ax if ax is not None else plt.subplots()[1]
    cohorts = [c for c in COHORTS if (spend["subsidy_cohort"] == c).any()]
    data = [spend.loc[spend["subsidy_cohort"] == c, "spend"].clip(lower=1) for c in cohorts]
    box = ax.boxplot(data, tick_labels=[cohort_label(c, lang) for c in cohorts],
                     patch_artist=True, showfliers=False)
    for patch, c in zip(box["boxes"], cohorts, strict=True):
        patch.set_facecolor(COHORT_COLORS.get(c, "#cccccc"))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(lambda y, _: format_money(y, lang))
    ax.set_title(t("spend_title", lang))
    ax.tick_params(axis="x", labelsize=8)
    return ax


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
