"""Did the subsidy pay? What a campaign's coupons *caused*, with intervals.

A campaign's send list (the contract's ``campaign_members`` table) says who was sent the offer
(``treatment``) and who was randomly held out of it (``control``). Comparing the two groups
over the same days answers what descriptive figures cannot: how many members came back *because
of* the coupon, and what each of them cost.

- :func:`send_outcomes` -- per listed member, what they did after the send: repurchase within
  the window, purchases over 90 and 180 days (pull-forward), revenue, the campaign's subsidy.
- :func:`randomized_uplift` -- with a control group: incremental repurchase rate (treated −
  control, Newcombe interval from statsmodels), incremental members and revenue (bootstrap
  interval from scipy), subsidy per incremental member, return on subsidy, and the net extra
  purchases over 90 and 180 days (Welch interval from statsmodels). Per campaign, and per
  cohort / channel / store with ``by``.
- :class:`MatchedUplift` -- without a control group: the sent members against non-recipients
  with the same pre-campaign recency, frequency, spend, tier and store (coarsened exact
  matching), a balance table, and intervals from a weighted regression with robust errors.
  Labelled *observational*: it assumes the chain chose whom to send on these behaviours only.
- :func:`pre_send_cohorts` -- each listed member's subsidy cohort as it stood the day before the
  send (so that the offer's own effect cannot move a member between cohorts).
- :func:`campaign_uplift` -- every campaign of a chain, randomized where it can be, matched
  where not, numbered as waves.

Purchases follow :mod:`rxrepurchase.metrics`: orders of members with a positive paid amount.
"The window" counts whole days: the day of ``sent_at`` and the ``outcome_days - 1`` days after.
Money is revenue (paid amount, CNY), not profit; multiply by your gross margin for profit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from rxrepurchase.cohorts import CohortRules, classify_members
from rxrepurchase.contract import require_columns
from rxrepurchase.core.purchases import purchase_mask
from rxrepurchase.errors import UpliftInputError
from rxrepurchase.loading import control_redemptions
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "HORIZONS",
    "MATCH_ON",
    "MIN_GROUP_MEMBERS",
    "MatchedUplift",
    "UpliftInputError",
    "campaign_uplift",
    "pre_send_cohorts",
    "randomized_uplift",
    "send_outcomes",
]

HORIZONS: tuple[int, ...] = (90, 180)
"""Days after the send over which the net extra purchases are counted (pull-forward check)."""

MATCH_ON: tuple[str, ...] = ("recency", "frequency", "spend", "tier", "store")
"""Pre-campaign behaviour the observational comparison matches on."""

MIN_GROUP_MEMBERS = 10
"""Fewest sent members, and fewest control (or matched comparison) members, an effect is
measured on. Below it a row says ``too_few_members`` and has no estimate: a small store's share
of a send list (a member or two a group) gives no usable interval, only noise that reads like a
result."""

# Coarsening of the matched behaviours (days since last purchase; purchases and spend in the
# 365 days before the send). Edges are left-closed: [0, 30), [30, 60), ...
_RECENCY_EDGES = (0, 30, 60, 90, 120, 180, 365, np.inf)
_FREQUENCY_EDGES = (0, 1, 2, 3, 5, 9, np.inf)
_SPEND_EDGES = (0, 0.01, 150, 400, 1000, 2500, np.inf)
_SUM_COLUMNS = ("repurchased", "purchases_window", "revenue_window")


def _purchases(orders: pd.DataFrame) -> pd.DataFrame:
    require_columns(orders, ["member_id", "ordered_at", "paid_amount", "discount_amount",
                             "campaign_id"], "orders", error=UpliftInputError)
    keep = purchase_mask(orders)
    return orders.loc[keep, ["member_id", "ordered_at", "paid_amount", "discount_amount",
                             "campaign_id"]]


@renamed_keywords(window_days="outcome_days")
def send_outcomes(
    campaign_members: pd.DataFrame,
    orders: pd.DataFrame,
    *,
    outcome_days: int = 30,
    horizons: Sequence[int] = HORIZONS,
    as_of=None,
) -> pd.DataFrame:
    """What each listed member did after the send.

    Parameters
    ----------
    campaign_members : DataFrame
        Send list(s): ``campaign_id, member_id, group, sent_at`` (``channel`` kept if present).
    orders : DataFrame
        The chain's orders (all stores: a member's repurchase may happen at any store).
    outcome_days : int
        Days from the send (the send day included) in which a repurchase counts (the window).
    horizons : sequence of int
        Longer windows for the net extra purchases (pull-forward check).
    as_of : date-like, optional
        Last day of data (default: the last order's day). Outcomes whose window is not over by
        then are NaN.

    Returns
    -------
    DataFrame
        The send list plus ``repurchased`` (any purchase in the window, float 0/1),
        ``purchases_window``, ``revenue_window`` (paid), ``subsidy`` (discount on the member's
        orders carrying the campaign, from the send on), ``redeemed`` and
        ``purchases_<h>d`` per horizon; ``contaminated`` marks control members who redeemed
        the coupon anyway (:func:`rxrepurchase.loading.control_redemptions`).
    """
    require_columns(campaign_members, ["campaign_id", "member_id", "group", "sent_at"],
                    "campaign_members", error=UpliftInputError)
    if outcome_days < 1 or any(h < outcome_days for h in horizons):
        raise UpliftInputError(f"outcome_days must be >= 1 and every horizon >= it "
                               f"(got {outcome_days}, {list(horizons)})")
    p = _purchases(orders)
    as_of = (pd.Timestamp(as_of) if as_of is not None else p["ordered_at"].max()).normalize()
    out = campaign_members.reset_index(drop=True).copy()
    out["_row"] = np.arange(len(out))
    sent_day = out["sent_at"].dt.normalize()
    hits = out[["_row", "member_id", "campaign_id"]].assign(_sent=sent_day).merge(
        p.rename(columns={"campaign_id": "_order_campaign"}), on="member_id")
    elapsed = (hits["ordered_at"].dt.normalize() - hits["_sent"]).dt.days
    hits = hits[(elapsed >= 0) & (hits["ordered_at"].dt.normalize() <= as_of)]
    elapsed = elapsed[hits.index]
    n = len(out)

    def per_row(mask, values=None) -> np.ndarray:
        w = None if values is None else values[mask].to_numpy(dtype=float)
        return np.bincount(hits.loc[mask, "_row"].to_numpy(), weights=w, minlength=n)

    in_window = elapsed < outcome_days
    own = (hits["_order_campaign"] == hits["campaign_id"]).fillna(False).to_numpy(dtype=bool)
    out["purchases_window"] = per_row(in_window)
    out["repurchased"] = (out["purchases_window"] > 0).astype(float)
    out["revenue_window"] = per_row(in_window, hits["paid_amount"])
    out["subsidy"] = per_row(own, hits["discount_amount"])
    out["redeemed"] = per_row(own) > 0
    out["contaminated"] = control_redemptions(out, orders).to_numpy()
    for h, days in (("window", outcome_days), *((f"{h}d", h) for h in horizons)):
        complete = (sent_day + pd.Timedelta(days=days - 1) <= as_of).to_numpy()
        if h != "window":
            out[f"purchases_{h}"] = np.where(complete, per_row(elapsed < days), np.nan)
        else:
            for c in _SUM_COLUMNS:
                out[c] = out[c].where(complete)
    out.attrs.update(outcome_days=outcome_days, horizons=tuple(horizons), as_of=as_of)
    return out.drop(columns="_row")


def _ratio_interval(cost: float, low: float, high: float) -> tuple[float, float]:
    """Interval of ``cost / x`` from an interval of ``x`` (infinite when x may be <= 0)."""
    return (cost / high if high > 0 else np.inf, cost / low if low > 0 else np.inf)


def _bootstrap_diff(t: np.ndarray, c: np.ndarray, alpha: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(t) - mean(c) (scipy)."""
    if len(t) < 2 or len(c) < 2:
        return np.nan, np.nan
    res = stats.bootstrap((t, c), lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
                          confidence_level=1 - alpha, n_resamples=999, method="percentile",
                          vectorized=True, random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _welch(t: np.ndarray, c: np.ndarray, alpha: float) -> tuple[float, float, float]:
    t, c = t[~np.isnan(t)], c[~np.isnan(c)]
    if len(t) < 2 or len(c) < 2:
        return np.nan, np.nan, np.nan
    if t.var() == 0 and c.var() == 0:  # no spread at all: the difference is exact
        return float(t.mean() - c.mean()), float(t.mean() - c.mean()), float(t.mean() - c.mean())
    low, high = CompareMeans(DescrStatsW(t), DescrStatsW(c)).tconfint_diff(alpha=alpha, usevar="unequal")
    return float(t.mean() - c.mean()), float(low), float(high)


def _effects(est: float, low: float, high: float, n_treated: int, subsidy: float,
             rev: tuple[float, float, float], pulls: dict) -> dict:
    """The per-campaign figures derived from the rate and revenue effects."""
    inc = (est * n_treated, low * n_treated, high * n_treated)
    cost = _ratio_interval(subsidy, inc[1], inc[2])
    rev_total = tuple(v * n_treated for v in rev)
    return {
        "uplift": est, "uplift_low": low, "uplift_high": high,
        "incremental_members": inc[0], "incremental_members_low": inc[1],
        "incremental_members_high": inc[2],
        "subsidy": subsidy,
        "subsidy_per_incremental_member": subsidy / inc[0] if inc[0] > 0 else np.inf,
        "subsidy_per_incremental_member_low": cost[0],
        "subsidy_per_incremental_member_high": cost[1],
        "incremental_revenue": rev_total[0], "incremental_revenue_low": rev_total[1],
        "incremental_revenue_high": rev_total[2],
        "return_on_subsidy": rev_total[0] / subsidy if subsidy > 0 else np.nan,
        "return_on_subsidy_low": rev_total[1] / subsidy if subsidy > 0 else np.nan,
        "return_on_subsidy_high": rev_total[2] / subsidy if subsidy > 0 else np.nan,
        **pulls,
    }


def _check_min_members(min_members: int) -> None:
    if min_members < 2:  # one member a group has no spread: no interval can be drawn
        raise UpliftInputError(f"min_members must be at least 2, got {min_members}")


def _mean(values: np.ndarray) -> float:
    """The mean, NaN for no value (without numpy's warning about an empty slice)."""
    return float(values.mean()) if values.size else np.nan


def _keys(outcomes: pd.DataFrame, by) -> list[str]:
    keys = ["campaign_id", *([by] if isinstance(by, str) else list(by or []))]
    require_columns(outcomes, keys, "send outcomes", error=UpliftInputError)
    return keys


def randomized_uplift(
    outcomes: pd.DataFrame,
    *,
    by: str | Sequence[str] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    min_members: int = MIN_GROUP_MEMBERS,
) -> pd.DataFrame:
    """Incremental effect of each campaign with a control group: treated − control.

    Parameters
    ----------
    outcomes : DataFrame
        :func:`send_outcomes` of send lists with a control group (campaigns without one are
        left out; see :class:`MatchedUplift`).
    by : str or list of str, optional
        Further columns to split by, e.g. ``"subsidy_cohort"`` (:func:`pre_send_cohorts`),
        ``"channel"``.
    alpha : float
        1 − confidence level of the intervals.
    seed : int
        Seed of the bootstrap of the revenue interval.
    min_members : int
        Fewest treated and fewest control members a row's effect is measured on (at least 2).

    Returns
    -------
    DataFrame
        Per campaign (and ``by``): ``treatment, control, rate_treatment, rate_control``,
        ``uplift`` (difference in repurchase rate within the window) with ``uplift_low`` /
        ``_high`` (Newcombe interval, statsmodels ``confint_proportions_2indep``);
        ``incremental_members`` (uplift × treated) and interval; ``subsidy`` (spent on the
        treated); ``subsidy_per_incremental_member`` and interval (subsidy over the interval of
        incremental members; infinite when it may be zero); ``incremental_revenue`` (paid,
        already net of every discount; percentile bootstrap, scipy) and
        ``return_on_subsidy`` = incremental revenue / subsidy, with intervals;
        ``extra_purchases_window`` / ``_<h>d`` (net extra purchases per treated member within
        the window and each horizon, Welch interval) and ``control_redeemed`` (contamination).
        ``method`` is ``"randomized"``. Rows with follow-up shorter than the window are NaN.
        ``too_few_members`` marks rows with fewer than ``min_members`` treated or control
        members: their effects are NaN, not estimated.
    """
    _check_min_members(min_members)
    keys = _keys(outcomes, by)
    horizons = outcomes.attrs.get("horizons", HORIZONS)
    rows = []
    for key, g in outcomes.groupby(keys, sort=True, observed=True):
        t, c = g[g["group"] == "treatment"], g[g["group"] == "control"]
        if not len(c):
            continue
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update(method="randomized", treatment=len(t), control=len(c))
        complete = t["repurchased"].notna().all() and c["repurchased"].notna().all()
        row["rate_treatment"] = t["repurchased"].mean()
        row["rate_control"] = c["repurchased"].mean()
        row["too_few_members"] = min(len(t), len(c)) < min_members
        if complete and not row["too_few_members"]:
            ct, cc = int(t["repurchased"].sum()), int(c["repurchased"].sum())
            low, high = confint_proportions_2indep(ct, len(t), cc, len(c), method="newcomb",
                                                   compare="diff", alpha=alpha)
            est = ct / len(t) - cc / len(c)
            rev_t, rev_c = t["revenue_window"].to_numpy(float), c["revenue_window"].to_numpy(float)
            rev = (rev_t.mean() - rev_c.mean(), *_bootstrap_diff(rev_t, rev_c, alpha, seed))
        else:
            est = low = high = np.nan
            rev = (np.nan, np.nan, np.nan)
        pulls = {}
        for h in ("window", *(f"{h}d" for h in horizons)):
            e, lo, hi = ((np.nan,) * 3 if row["too_few_members"] else
                         _welch(t[f"purchases_{h}"].to_numpy(float), c[f"purchases_{h}"].to_numpy(float), alpha))
            pulls.update({f"extra_purchases_{h}": e, f"extra_purchases_{h}_low": lo,
                          f"extra_purchases_{h}_high": hi})
        row.update(_effects(est, float(low), float(high), len(t), float(t["subsidy"].sum()), rev, pulls))
        row["control_redeemed"] = int(c["contaminated"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _pre_send_behaviour(members: pd.DataFrame, purchases: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Recency, frequency and spend in the 365 days before ``day``, tier and home store."""
    before = purchases[(purchases["ordered_at"] < day)
                       & (purchases["ordered_at"] >= day - pd.Timedelta(days=365))]
    g = before.groupby("member_id", observed=True)
    last = purchases[purchases["ordered_at"] < day].groupby("member_id", observed=True)["ordered_at"].max()
    out = members[["member_id", "tier", "home_store_id"]].set_index("member_id")
    out["recency"] = (day - last.reindex(out.index)).dt.days.astype(float)
    out["frequency"] = g.size().reindex(out.index).fillna(0).astype(float)
    out["spend"] = g["paid_amount"].sum().reindex(out.index).fillna(0.0)
    return out.rename(columns={"home_store_id": "store"})


def _strata(x: pd.DataFrame, match_on: Sequence[str]) -> pd.Series:
    parts = []
    for col in match_on:
        if col == "recency":
            parts.append(pd.cut(x["recency"], _RECENCY_EDGES, right=False).cat.codes.astype(str))
        elif col == "frequency":
            parts.append(pd.cut(x["frequency"], _FREQUENCY_EDGES, right=False).cat.codes.astype(str))
        elif col == "spend":
            parts.append(pd.cut(x["spend"], _SPEND_EDGES, right=False).cat.codes.astype(str))
        else:
            parts.append(x[col].astype(str).fillna("?"))
    return pd.Series(["|".join(v) for v in zip(*parts, strict=True)], index=x.index) if parts else \
        pd.Series("", index=x.index)


class MatchedUplift:
    """Observational effect of a campaign without a control group (coarsened exact matching).

    Every sent member is compared with members who were *not* sent the campaign (nor another
    campaign in the ``exclude_days`` before it) and who, the day before the send, had the same
    coarsened recency (days since last purchase), frequency and spend over 365 days, the same
    tier and home store. Comparison members are weighted so that each stratum counts as many
    times as it has sent members (CEM weights, Iacus, King & Porro 2012); effects are the
    weighted differences, with intervals from a weighted least-squares regression with
    heteroskedasticity-robust (HC1) errors (statsmodels). Sent members with no comparison in
    their stratum are left out and counted (``unmatched``).

    **Assumption**: whom the chain sent depended on nothing that also drives repurchase beyond
    the matched behaviours. If staff picked members they expected to come back, the effect is
    overstated. Tier is the tier in the export (possibly after the campaign).

    Parameters
    ----------
    match_on : sequence of str
        Behaviours to match on, from :data:`MATCH_ON`.
    outcome_days, horizons, alpha
        As in :func:`send_outcomes` and :func:`randomized_uplift`.
    exclude_days : int
        Members listed in another campaign sent within this many days before the send (or
        during the longest horizon after it) are not used as comparisons.
    min_members : int
        Fewest matched sent and fewest matched comparison members the effect is measured on
        (at least 2); below it ``too_few_members`` is True and the effects are NaN.

    Attributes
    ----------
    effects_ : DataFrame
        One row, columns as :func:`randomized_uplift` (``method`` ``"observational (matched)"``,
        ``control`` = comparison members used), plus ``unmatched``.
    balance_ : DataFrame
        Per behaviour: mean of the sent, of all non-recipients, of the weighted comparison,
        and the standardized mean difference before and after matching.
    """

    @renamed_keywords(window_days="outcome_days")
    def __init__(self, match_on: Sequence[str] = MATCH_ON, *, outcome_days: int = 30,
                 horizons: Sequence[int] = HORIZONS, alpha: float = 0.05, exclude_days: int = 180,
                 min_members: int = MIN_GROUP_MEMBERS):
        unknown = sorted(set(match_on) - set(MATCH_ON))
        if unknown:
            raise UpliftInputError(f"match_on has unknown behaviour(s) {unknown}; choose from {MATCH_ON}")
        _check_min_members(min_members)
        self.min_members = min_members
        self.match_on = tuple(match_on)
        self.outcome_days = outcome_days
        self.horizons = tuple(horizons)
        self.alpha = alpha
        self.exclude_days = exclude_days

    def fit(self, campaign_id: str, campaign_members: pd.DataFrame, orders: pd.DataFrame,
            members: pd.DataFrame, *, as_of=None, recipients: pd.Series | None = None) -> MatchedUplift:
        """Estimate the effect of ``campaign_id`` (its send list must have no control group).

        ``recipients``: only these members' sends are measured (e.g. one store's members,
        dated from their first send); the campaign's other recipients are still kept out of
        the comparison, which would otherwise count members who got the same offer as members
        who did not.
        """
        require_columns(members, ["member_id", "tier", "home_store_id", "joined_on"], "members",
                        error=UpliftInputError)
        campaign_rows = campaign_members[campaign_members["campaign_id"] == campaign_id]
        if not len(campaign_rows):
            raise UpliftInputError(f"campaign_members has no row of campaign {campaign_id!r}")
        if (campaign_rows["group"] == "control").any():
            raise UpliftInputError(f"campaign {campaign_id!r} has a control group: use randomized_uplift")
        sent = campaign_rows[campaign_rows["group"] == "treatment"]
        if recipients is not None:
            sent = sent[sent["member_id"].isin(recipients)]
            if not len(sent):
                raise UpliftInputError(f"none of the given recipients was sent campaign {campaign_id!r}")
        day = sent["sent_at"].dt.normalize().min()
        p = _purchases(orders)
        other = campaign_members[campaign_members["campaign_id"] != campaign_id]
        other_day = other["sent_at"].dt.normalize()
        busy = other.loc[(other_day > day - pd.Timedelta(days=self.exclude_days))
                         & (other_day <= day + pd.Timedelta(days=max(self.horizons))), "member_id"]
        pool = members[(members["joined_on"] < day) & ~members["member_id"].isin(campaign_rows["member_id"])
                       & ~members["member_id"].isin(busy)]
        comparison = pd.DataFrame({
            "campaign_id": campaign_id, "member_id": pool["member_id"].to_numpy(),
            "group": "control", "sent_at": day,
        })
        listed = pd.concat([sent[["campaign_id", "member_id", "group", "sent_at"]], comparison],
                           ignore_index=True)
        out = send_outcomes(listed, orders, outcome_days=self.outcome_days, horizons=self.horizons,
                            as_of=as_of)
        x = _pre_send_behaviour(members, p, day).reindex(out["member_id"].to_numpy())
        x.index = out.index
        treated = (out["group"] == "treatment").to_numpy()
        strata = _strata(x, self.match_on)
        n_t = strata[treated].value_counts()
        n_c = strata[~treated].value_counts()
        matched = strata.isin(n_t.index.intersection(n_c.index)).to_numpy()
        # CEM weights: sent members 1; a comparison member stands for n_t / n_c of its stratum,
        # scaled so the comparison weights sum to the number of matched comparisons.
        w = np.where(treated, 1.0, 0.0)
        use = matched
        tw, cw = treated & use, ~treated & use
        if tw.any():
            ratio = (n_t / n_c).reindex(strata[cw]).to_numpy()
            w[cw] = ratio * cw.sum() / tw.sum()
        self.balance_ = self._balance(x, treated, w, use)
        too_few = min(int(tw.sum()), int(cw.sum())) < self.min_members
        row = {"campaign_id": campaign_id, "method": "observational (matched)",
               "treatment": int(tw.sum()), "control": int(cw.sum()),
               "unmatched": int((treated & ~use).sum()), "too_few_members": too_few}
        row["rate_treatment"] = out.loc[tw, "repurchased"].mean()
        row["rate_control"] = np.average(out.loc[cw, "repurchased"], weights=w[cw]) if cw.any() else np.nan

        def effect(y: pd.Series) -> tuple[float, float, float]:
            # Too few members: no regression (with as many rows as terms, HC1 divides by zero).
            return (np.nan,) * 3 if too_few else self._wls(y, treated, w, use)

        est = effect(out["repurchased"])
        rev = effect(out["revenue_window"])
        pulls = {}
        for h in ("window", *(f"{h}d" for h in self.horizons)):
            e = effect(out[f"purchases_{h}"])
            pulls.update({f"extra_purchases_{h}": e[0], f"extra_purchases_{h}_low": e[1],
                          f"extra_purchases_{h}_high": e[2]})
        row.update(_effects(*est, int(tw.sum()), float(out.loc[tw, "subsidy"].sum()), rev, pulls))
        row["control_redeemed"] = 0
        self.effects_ = pd.DataFrame([row])
        self.outcomes_ = out.assign(weight=w, matched=use, stratum=strata)
        return self

    def _wls(self, y: pd.Series, treated: np.ndarray, w: np.ndarray, use: np.ndarray) -> tuple[float, float, float]:
        keep = use & y.notna().to_numpy()
        if not (treated & keep).any() or not (~treated & keep).any():
            return np.nan, np.nan, np.nan
        design = sm.add_constant(treated[keep].astype(float))
        fit = sm.WLS(y[keep].to_numpy(float), design, weights=w[keep]).fit(cov_type="HC1")
        low, high = fit.conf_int(alpha=self.alpha)[1]
        return float(fit.params[1]), float(low), float(high)

    @staticmethod
    def _balance(x: pd.DataFrame, treated: np.ndarray, w: np.ndarray, use: np.ndarray) -> pd.DataFrame:
        num = x[["recency", "frequency", "spend"]].copy()
        num["recency"] = num["recency"].fillna(9999.0)  # never bought: as far back as can be
        num["never_bought"] = x["recency"].isna().astype(float)
        for tier in sorted(x["tier"].dropna().unique()):
            num[f"tier_{tier}"] = (x["tier"] == tier).astype(float)
        rows = []
        cw = ~treated & use
        for col in num.columns:
            v = num[col].to_numpy(float)
            t_mean, raw = _mean(v[treated]), _mean(v[~treated])
            adj = np.average(v[cw], weights=w[cw]) if cw.any() and w[cw].sum() > 0 else np.nan
            # No comparison member at all (a tiny chain): no spread to scale by, no difference.
            sd = np.sqrt((v[treated].var() + v[~treated].var()) / 2) if (~treated).any() else np.nan
            rows.append({"behaviour": col, "sent_mean": t_mean, "non_recipients_mean": raw,
                         "matched_comparison_mean": adj,
                         "smd_before": (t_mean - raw) / sd if sd > 0 else 0.0,
                         "smd_after": (_mean(v[treated & use]) - adj) / sd if sd > 0 else 0.0})
        return pd.DataFrame(rows)


def pre_send_cohorts(
    campaign_members: pd.DataFrame,
    orders: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    *,
    order_lines: pd.DataFrame | None = None,
    rules: CohortRules | None = None,
) -> pd.DataFrame:
    """Each listed member's subsidy cohort on the day before the campaign's first send.

    Returns
    -------
    DataFrame
        ``campaign_id, member_id, subsidy_cohort`` (``no_purchase`` for members who had not
        bought before the send).
    """
    out = []
    for campaign, sends in campaign_members.groupby("campaign_id", sort=True, observed=True):
        day = sends["sent_at"].dt.normalize().min()
        before = orders[orders["ordered_at"] < day]
        lines = None if order_lines is None else order_lines[order_lines["order_id"].isin(before["order_id"])]
        cohorts = classify_members(before, campaigns, order_lines=lines,
                                   as_of=day - pd.Timedelta(days=1), rules=rules)
        lookup = cohorts.set_index("member_id")["subsidy_cohort"]
        out.append(pd.DataFrame({
            "campaign_id": campaign, "member_id": sends["member_id"].to_numpy(),
            "subsidy_cohort": lookup.reindex(sends["member_id"].to_numpy()).fillna("no_purchase").to_numpy(),
        }))
    if not out:
        return pd.DataFrame(columns=["campaign_id", "member_id", "subsidy_cohort"])
    return pd.concat(out, ignore_index=True).astype("string")


def _twelve_month_value(sends: pd.DataFrame, purchases: pd.DataFrame) -> pd.Series:
    """Per campaign: mean paid amount over the 365 days before the send of the listed members
    who bought in that time (what a repurchasing member is worth in a year)."""
    out = {}
    for campaign, s in sends.groupby("campaign_id", sort=True, observed=True):
        day = s["sent_at"].dt.normalize().min()
        p = purchases[(purchases["ordered_at"] < day) & (purchases["ordered_at"] >= day - pd.Timedelta(days=365))
                      & purchases["member_id"].isin(s["member_id"])]
        spend = p.groupby("member_id", observed=True)["paid_amount"].sum()
        out[campaign] = float(spend.mean()) if len(spend) else np.nan
    return pd.Series(out, name="twelve_month_value", dtype=float)


@renamed_keywords(window_days="outcome_days")
def campaign_uplift(
    chain,
    *,
    outcome_days: int = 30,
    horizons: Sequence[int] = HORIZONS,
    alpha: float = 0.05,
    member_ids: pd.Series | None = None,
    seed: int = 0,
    min_members: int = MIN_GROUP_MEMBERS,
) -> pd.DataFrame:
    """The effect of every campaign with a send list: randomized where it has a control group,
    matched (observational) where not; numbered as waves in order of their first send.

    Parameters
    ----------
    chain : rxrepurchase.loading.Chain
        Needs ``campaign_members``.
    member_ids : Series, optional
        Only these members' sends (e.g. a store's members); comparisons still come from the
        whole chain, never from the campaign's other recipients.
    min_members : int
        Fewest sent and fewest control / comparison members a wave's effect is measured on:
        a small store's waves below it say ``too_few_members`` instead of giving noise.

    Returns
    -------
    DataFrame
        :func:`randomized_uplift` / :class:`MatchedUplift` rows plus ``wave``, ``name``,
        ``kind``, ``sent_on``, ``unmatched``, ``too_few_members`` and ``twelve_month_value``,
        sorted by wave.
    """
    sends = chain.campaign_members
    if sends is None:
        raise UpliftInputError("the chain has no campaign_members table (send lists with a "
                               "control group); see docs/uplift.md")
    sends = sends[sends["campaign_id"].notna()]
    # A campaign is randomized if it kept a control group anywhere in the chain.
    has_control = sends.groupby("campaign_id", observed=True)["group"].apply(lambda g: (g == "control").any())
    if member_ids is not None:
        sends = sends[sends["member_id"].isin(member_ids)]
        has_control = has_control[has_control.index.isin(sends["campaign_id"])]
    rows = []
    randomized = sends[sends["campaign_id"].isin(has_control[has_control].index)]
    if len(randomized):
        outcomes = send_outcomes(randomized, chain.orders, outcome_days=outcome_days, horizons=horizons,
                                 as_of=chain.as_of)
        rows.append(randomized_uplift(outcomes, alpha=alpha, seed=seed, min_members=min_members))
    for campaign in has_control[~has_control].index:
        fit = MatchedUplift(outcome_days=outcome_days, horizons=horizons, alpha=alpha,
                            min_members=min_members).fit(
            campaign, chain.campaign_members, chain.orders, chain.members, as_of=chain.as_of,
            recipients=member_ids)
        rows.append(fit.effects_)
    columns = ["wave", "campaign_id", "name", "kind", "sent_on", "method"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.concat(rows, ignore_index=True)
    first = sends.groupby("campaign_id", observed=True)["sent_at"].min().dt.normalize().rename("sent_on")
    info = chain.campaigns.set_index("campaign_id")[["name", "kind"]]
    table = (table.merge(first, left_on="campaign_id", right_index=True, how="left")
             .merge(info, left_on="campaign_id", right_index=True, how="left")
             .merge(_twelve_month_value(sends, _purchases(chain.orders)), left_on="campaign_id",
                    right_index=True, how="left"))
    table = table.sort_values(["sent_on", "campaign_id"], kind="stable").reset_index(drop=True)
    table.insert(0, "wave", np.arange(1, len(table) + 1))
    if "unmatched" not in table.columns:
        table["unmatched"] = 0
    table["unmatched"] = table["unmatched"].fillna(0).astype("int64")
    return table[columns + [c for c in table.columns if c not in columns]]
