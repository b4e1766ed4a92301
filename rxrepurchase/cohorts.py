"""Subsidy-driven vs loyal members: a transparent classifier calibrated on the chain's own data.

Pharmacy chains buy new members with coupons and low prices (薅羊毛 coupon hunters come for
the subsidy and leave when it stops); loyal members, often chronic-disease patients, come back
at the chain's ordinary member price. :func:`classify_members` puts every member in one
*subsidy cohort*:

``new``
    First purchase less than ``rules.new_member_days`` before ``as_of``: too early to tell.
``undetermined``
    The evidence sits on a threshold: the member is ``subsidy_driven`` when every threshold is
    ``rules.undetermined_margin`` (10%) looser, and not when it is 10% stricter.
``subsidy_driven``
    Otherwise, when at least ``rules.min_subsidy_signals`` of the subsidy signals fire (one
    fewer while the campaign-window signal is switched off).
``occasional``
    Otherwise, when the member is not a *regular* buyer: buys when ill (acute medication).
``loyal``
    A regular buyer with at most ``rules.loyal_max_subsidized_share`` of purchases subsidised.
``mixed``
    A regular buyer with more subsidy than that, but too little to call subsidy-driven.

**What counts as a subsidy is measured against the chain's own routine price.** The *routine
discount* is the median discount (share of list price) of member orders without a coupon or a
campaign, per store and month (:class:`SubsidyCalibration`; a store-month with fewer than
``rules.routine_min_orders`` such orders uses the chain's month, then the whole chain). A
purchase is *subsidised* when its discount *beyond* the routine reaches the chain's excess
threshold: ``rules.excess_noise_multiple`` robust standard deviations of routine orders around
their routine, at least ``rules.subsidized_min_excess``. A loyalty-card price of 15% off every
order is then routine, not a subsidy.

The five signals are: the first purchase was subsidised; the share of purchases subsidised
(from ``rules.share_min_purchases``, 3, purchases: the share of two only repeats the first and
last purchase's flags); the discount beyond routine over the member's list-price spend; the
share of purchases made inside campaign windows; and buying stopped after the last subsidised
purchase. The three share thresholds are *fitted* to the chain (a two-group split, k-means
with k = 2, of the members' values, kept within sane bounds) unless the chain has fewer than
``rules.calibration_min_members`` members to judge, when the documented defaults apply. The
campaign-window signal is switched off when short campaigns cover more than
``rules.campaign_max_calendar_share`` of the calendar: then buying "in a campaign" says nothing.
The calibration (:class:`SubsidyCalibration`, also in ``classified.attrs["calibration"]``) says
which thresholds were fitted, which defaulted and whether the campaign signal is on;
:meth:`SubsidyCohortClassifier.stability` gives the label shares when every threshold moves by
±20%.

Purchases follow the rules of :mod:`rxrepurchase.metrics` (one purchase per member-day,
walk-ins and zero-paid / refund orders excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd
from scipy.cluster.vq import kmeans2

from rxrepurchase.arguments import as_list, default_as_of
from rxrepurchase.contract import TARGETED_CAMPAIGN_KINDS, require_columns
from rxrepurchase.core import backend
from rxrepurchase.core import purchases as core_purchases
from rxrepurchase.core.purchases import purchase_mask
from rxrepurchase.errors import DataContractError, MetricsInputError
from rxrepurchase.frames import local_times, lookup_member_columns, ratio
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "COHORTS",
    "SIGNALS",
    "THRESHOLDS",
    "CohortRules",
    "SubsidyCalibration",
    "SubsidyCohortClassifier",
    "subsidized_purchases",
    "classify_members",
    "explain_member",
    "compare_cohorts",
    "post_subsidy_repurchase",
    "promotion_waves",
    "wave_response",
]

COHORTS: tuple[str, ...] = (
    "loyal", "mixed", "occasional", "subsidy_driven", "undetermined", "new",
)  # fmt: skip
"""The subsidy cohorts, in the order tables and plots show them."""

_ORDER_COLUMNS = (
    "order_id", "member_id", "ordered_at", "gross_amount", "discount_amount", "paid_amount",
    "coupon_id", "campaign_id",
)  # fmt: skip


@dataclass(frozen=True)
class CohortRules:
    """Settings of the subsidy-cohort classifier (all in one place, all documented).

    Parameters
    ----------
    routine_min_orders : int, default 20
        Fewest member orders without coupon or campaign a store-month needs for its own
        routine discount; with fewer the chain's month is used, then the whole chain.
    routine_member_days : int, default 60
        Only orders placed this many days or more after the member's first order show the
        routine price (new members' welcome offers do not).
    subsidized_min_excess : float, default 0.08
        Smallest excess threshold: a purchase is never subsidised by less than this share of
        list price beyond the routine discount.
    excess_noise_multiple : float, default 3.0
        Excess threshold = this many robust standard deviations (1.4826 x median absolute
        deviation) of routine orders' discount around their routine, if above the floor.
    new_member_days : int, default 30
        Members whose first purchase is fewer days than this before ``as_of`` are ``new``.
    subsidized_share_high : float, default 0.5
        Signal: at least this share of the member's purchases are subsidised (default; fitted).
    share_min_purchases : int, default 3
        ... among at least this many purchases. With two, the share only repeats the
        first-purchase flag and the last purchase's (one of two subsidised is 50% whenever the
        first was): the same evidence would count twice.
    discount_depth_high : float, default 0.15
        Signal: the member's discount beyond routine is at least this share of their list-price
        spend (default; fitted).
    campaign_window_share_high : float, default 0.8
        Signal: at least this share of purchases fall on days a campaign was running
        (default; fitted).
    campaign_window_max_days : int, default 62
        Campaigns running longer than this are standing programmes (birthday gifts, member
        days all year), not promotion windows, and do not count for the signal above.
    campaign_max_calendar_share : float, default 0.35
        The campaign-window signal is switched off when short campaigns run on more than this
        share of the days from the first order to ``as_of``.
    lapse_days : int, default 90
        Signal "stopped after subsidy": the last purchase was subsidised and nothing was bought
        in the ``lapse_days`` days since (up to ``as_of``).
    min_subsidy_signals : int, default 3
        A member is ``subsidy_driven`` when at least this many signals fire.
    calibrate : bool, default True
        Fit the three share thresholds to the chain; False keeps the defaults above.
    calibration_min_members : int, default 200
        Fewest members to judge (not new) for fitting; with fewer the defaults apply.
    undetermined_margin : float, default 0.1
        A member is ``undetermined`` when thresholds this much looser make them
        ``subsidy_driven`` and this much stricter do not. 0 switches abstention off.
    loyal_min_purchases : int, default 2
        Fewest purchases of a regular buyer (``loyal`` or ``mixed``).
    loyal_min_monthly_purchases : float, default 1.0
        A regular buyer purchases at least this often per 30 days since the first purchase
        (the first 30 days count as 30) ...
    loyal_min_regular_purchases : int, default 2
        ... or made at least this many purchases with a chronic / regularly taken product.
    loyal_max_subsidized_share : float, default 0.35
        Largest share of subsidised purchases a ``loyal`` member may have.
    """

    routine_min_orders: int = 20
    routine_member_days: int = 60
    subsidized_min_excess: float = 0.08
    excess_noise_multiple: float = 3.0
    new_member_days: int = 30
    subsidized_share_high: float = 0.5
    share_min_purchases: int = 3
    discount_depth_high: float = 0.15
    campaign_window_share_high: float = 0.8
    campaign_window_max_days: int = 62
    campaign_max_calendar_share: float = 0.35
    lapse_days: int = 90
    min_subsidy_signals: int = 3
    calibrate: bool = True
    calibration_min_members: int = 200
    undetermined_margin: float = 0.1
    loyal_min_purchases: int = 2
    loyal_min_monthly_purchases: float = 1.0
    loyal_min_regular_purchases: int = 2
    loyal_max_subsidized_share: float = 0.35

    def __post_init__(self) -> None:
        for name in ("subsidized_min_excess", "subsidized_share_high", "discount_depth_high",
                     "campaign_window_share_high", "campaign_max_calendar_share",
                     "undetermined_margin", "loyal_max_subsidized_share"):  # fmt: skip
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise MetricsInputError(
                    f"CohortRules.{name} must be a share in [0, 1], got {value!r}"
                )
        for name in ("routine_min_orders", "routine_member_days", "excess_noise_multiple", "new_member_days",
                     "campaign_window_max_days", "lapse_days", "calibration_min_members",
                     "loyal_min_purchases", "loyal_min_monthly_purchases",
                     "loyal_min_regular_purchases"):  # fmt: skip
            if getattr(self, name) < 0:
                raise MetricsInputError(f"CohortRules.{name} must not be negative")
        if self.share_min_purchases < 2:
            raise MetricsInputError(
                "CohortRules.share_min_purchases must be at least 2 (the share of one purchase "
                f"is the first-purchase signal), got {self.share_min_purchases!r}"
            )
        if not 1 <= self.min_subsidy_signals <= len(SIGNALS):
            raise MetricsInputError(
                f"CohortRules.min_subsidy_signals must be 1..{len(SIGNALS)}, "
                f"got {self.min_subsidy_signals!r}"
            )

    def to_frame(self) -> pd.DataFrame:
        """The settings as a table (``rule, value, meaning``) for reports."""
        doc = {f.name: _RULE_MEANING[f.name] for f in fields(self)}
        return pd.DataFrame(
            [(k, v, doc[k]) for k, v in asdict(self).items()], columns=["rule", "value", "meaning"]
        )


_RULE_MEANING = {
    "routine_min_orders": "orders a store-month needs for its own routine discount",
    "routine_member_days": "routine price: orders this many days after the member's first",
    "subsidized_min_excess": "smallest discount beyond routine that makes a purchase subsidised",
    "excess_noise_multiple": "excess threshold in robust SDs of routine orders' discount",
    "new_member_days": "first purchase fewer days ago than this: new",
    "subsidized_share_high": "signal: share of purchases subsidised at least (default)",
    "share_min_purchases": "signal on the subsidised share: purchases at least",
    "discount_depth_high": "signal: discount beyond routine / list-price spend at least (default)",
    "campaign_window_share_high": "signal: share of purchases inside campaign windows (default)",
    "campaign_window_max_days": "campaigns longer than this are standing programmes, not windows",
    "campaign_max_calendar_share": "campaign signal off when windows cover more of the calendar",
    "lapse_days": "signal: last purchase subsidised and none for this many days",
    "min_subsidy_signals": "signals needed for subsidy_driven",
    "calibrate": "fit the share thresholds to the chain",
    "calibration_min_members": "members to judge needed for fitting",
    "undetermined_margin": "undetermined: subsidy_driven only with thresholds this much looser",
    "loyal_min_purchases": "regular buyer: purchases at least",
    "loyal_min_monthly_purchases": "regular buyer: purchases per 30 days at least, or",
    "loyal_min_regular_purchases": "regular buyer: purchases with chronic / regular products",
    "loyal_max_subsidized_share": "loyal: share of purchases subsidised at most",
}

SIGNALS: tuple[str, ...] = (
    "first_purchase_subsidized",
    "mostly_subsidized",
    "deep_discount",
    "campaign_window_buyer",
    "stopped_after_subsidy",
)
"""The five subsidy signals, as boolean columns of :func:`classify_members`."""

THRESHOLDS: tuple[str, ...] = (
    "excess_threshold", "subsidized_share_high", "discount_depth_high",
    "campaign_window_share_high", "lapse_days",
)  # fmt: skip
"""The thresholds behind the signals (:attr:`SubsidyCalibration.thresholds`)."""

# Fitted share thresholds stay within these bounds: a split outside them is no split.
_FIT_BOUNDS = {
    "subsidized_share_high": (0.3, 0.8),
    "discount_depth_high": (0.05, 0.3),
    "campaign_window_share_high": (0.5, 0.95),
}
_FEATURE_OF = {
    "subsidized_share_high": "subsidized_share",
    "discount_depth_high": "discount_depth",
    "campaign_window_share_high": "campaign_window_share",
}


# --------------------------------------------------------------------------- calibration


@dataclass
class SubsidyCalibration:
    """What a subsidy is on this chain: routine discounts and the thresholds of the signals.

    Attributes
    ----------
    routine : DataFrame
        ``store_id`` (when the orders have one), ``month`` (period start), ``orders`` (member
        orders without coupon or campaign), ``routine_discount`` (their median discount share)
        and ``level`` (``store_month``, ``chain_month`` or ``chain``: where it came from).
    chain_routine : float
        Median discount share of all such orders (the last fallback).
    excess_threshold : float
        Discount beyond routine (share of list price) from which a purchase is subsidised.
    thresholds : dict
        The value of every threshold in :data:`THRESHOLDS`.
    sources : dict
        Per threshold ``"fitted"``, ``"default"`` or ``"rule"`` (set by a :class:`CohortRules`
        field) and, for the excess threshold, ``"noise"`` or ``"floor"``.
    campaign_calendar_share : float
        Share of days (first order to ``as_of``) inside a short campaign window.
    campaign_signal_on : bool
        Whether ``campaign_window_buyer`` can fire (windows cover a small part of the calendar).
    members_judged : int
        Members (not new) the share thresholds were fitted on.
    signals_needed : int
        Signals a subsidy-driven member shows: ``min_subsidy_signals``, one fewer while the
        campaign-window signal is off (at most ``5 - min_subsidy_signals`` may fail either way).
    """

    routine: pd.DataFrame
    chain_routine: float
    excess_threshold: float
    thresholds: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    campaign_calendar_share: float = 0.0
    campaign_signal_on: bool = True
    members_judged: int = 0
    signals_needed: int = 3

    def routine_for(self, orders: pd.DataFrame) -> np.ndarray:
        """The routine discount share of every order (by its store and month)."""
        month = orders["ordered_at"].dt.to_period("M").dt.start_time.to_numpy("datetime64[ns]")
        by_month = self.routine.groupby("month")["chain_month_routine"].first()
        out = pd.Series(month).map(by_month).to_numpy("float64", na_value=np.nan)
        if "store_id" in self.routine.columns and "store_id" in orders.columns:
            own = self.routine.loc[self.routine["level"] == "store_month"]
            key = pd.MultiIndex.from_arrays([own["store_id"].astype(str), own["month"]])
            s = pd.Series(own["routine_discount"].to_numpy(), index=key)
            look = pd.MultiIndex.from_arrays(
                [orders["store_id"].astype(str).to_numpy(), month]
            )  # fmt: skip
            hit = s.reindex(look).to_numpy("float64", na_value=np.nan)
            out = np.where(np.isnan(hit), out, hit)
        return np.where(np.isnan(out), self.chain_routine, out)

    def to_frame(self) -> pd.DataFrame:
        """The thresholds as a table (``threshold, value, source, meaning``) for reports."""
        rows = [(k, self.thresholds[k], self.sources.get(k, ""), _THRESHOLD_MEANING[k])
                for k in THRESHOLDS]  # fmt: skip
        rows.append(("campaign_signal", float(self.campaign_signal_on),
                     "on" if self.campaign_signal_on else "off",
                     f"campaign windows cover {self.campaign_calendar_share:.0%} of the calendar"))
        return pd.DataFrame(rows, columns=["threshold", "value", "source", "meaning"])

    def describe(self) -> str:
        """The calibration in a few plain lines (printed with the labels)."""
        r = self.routine
        share = r["routine_discount"] if len(r) else pd.Series([self.chain_routine])
        th = self.thresholds
        lines = [
            f"routine member discount: {self.chain_routine:.1%} of list price chain-wide "
            f"(store-months {share.min():.1%}–{share.max():.1%}); a purchase is subsidised from "
            f"{th['excess_threshold']:.1%} beyond routine ({self.sources['excess_threshold']})",
            f"subsidised share >= {th['subsidized_share_high']:.0%} "
            f"({self.sources['subsidized_share_high']}); discount beyond routine >= "
            f"{th['discount_depth_high']:.1%} ({self.sources['discount_depth_high']}); "
            f"stopped: none for >= {th['lapse_days']:.0f} days",
        ]
        if self.campaign_signal_on:
            lines.append(f"campaign windows cover {self.campaign_calendar_share:.0%} of the "
                         f"calendar: signal on at >= {th['campaign_window_share_high']:.0%} "
                         f"({self.sources['campaign_window_share_high']})")  # fmt: skip
        else:
            lines.append(f"campaign windows cover {self.campaign_calendar_share:.0%} of the "
                         "calendar: the campaign-window signal is switched off")
        lines.append(f"subsidy-driven: at least {self.signals_needed} of the "
                     f"{len(SIGNALS) - (not self.campaign_signal_on)} signals that can fire")
        return "\n".join(lines)


_THRESHOLD_MEANING = {
    "excess_threshold": "discount beyond routine (share of list price) making a purchase subsidised",
    "subsidized_share_high": "signal: share of purchases subsidised at least",
    "discount_depth_high": "signal: discount beyond routine / list-price spend at least",
    "campaign_window_share_high": "signal: share of purchases inside campaign windows at least",
    "lapse_days": "signal: last purchase subsidised and none for this many days",
}


def _routine_sample(orders: pd.DataFrame,
                    routine_member_days: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Member purchase orders that show the routine price, and their discount shares.

    Orders of established members (placed at least ``routine_member_days`` after the member's
    first order: welcome offers are not the routine), without a coupon or campaign when the
    chain records them (when it records none the discount is the only trace of a subsidy, and
    the median still finds the routine while subsidised orders are the minority).
    """
    keep = purchase_mask(orders)
    member = orders.loc[keep]
    since = member["ordered_at"] - member.groupby("member_id")["ordered_at"].transform("min")
    keep[keep] = (since >= pd.Timedelta(days=routine_member_days)).to_numpy(dtype=bool)
    ids = orders["coupon_id"].notna().to_numpy() | orders["campaign_id"].notna().to_numpy()
    if ids.any():
        keep &= ~ids
    o = orders.loc[keep]
    gross = o["gross_amount"].to_numpy("float64")
    depth = np.divide(o["discount_amount"].to_numpy("float64"), gross, out=np.zeros(len(o)),
                      where=gross > 0)  # fmt: skip
    return o, depth


def fit_routine(orders: pd.DataFrame, rules: CohortRules | None = None) -> SubsidyCalibration:
    """Estimate the chain's routine discount and excess threshold (thresholds at defaults).

    See :class:`SubsidyCalibration`; :class:`SubsidyCohortClassifier` fits the rest.
    """
    rules = rules or CohortRules()
    require_columns(orders, list(_ORDER_COLUMNS), "orders")
    o, depth = _routine_sample(orders, rules.routine_member_days)
    month = o["ordered_at"].dt.to_period("M").dt.start_time
    frame = pd.DataFrame({"month": month.to_numpy("datetime64[ns]"), "depth": depth})
    chain = float(np.median(depth)) if len(depth) else 0.0
    by_month = frame.groupby("month")["depth"].agg(["median", "size"])
    month_routine = by_month["median"].where(by_month["size"] >= rules.routine_min_orders, chain)
    keys = ["month"]
    if "store_id" in o.columns:
        frame["store_id"] = o["store_id"].astype(str).to_numpy()
        keys = ["store_id", "month"]
    routine = frame.groupby(keys)["depth"].agg(["median", "size"]).reset_index()
    routine = routine.rename(columns={"median": "routine_discount", "size": "orders"})
    routine["chain_month_routine"] = routine["month"].map(month_routine).astype("float64")
    own = routine["orders"] >= rules.routine_min_orders
    month_ok = routine["month"].map(by_month["size"] >= rules.routine_min_orders).astype(bool)
    routine["level"] = np.where(own & (len(keys) == 2), "store_month",
                                np.where(month_ok, "chain_month", "chain"))  # fmt: skip
    routine["routine_discount"] = routine["routine_discount"].where(
        routine["level"] == "store_month", routine["chain_month_routine"]
    )
    cal = SubsidyCalibration(routine=routine, chain_routine=chain, excess_threshold=0.0)
    resid = depth - cal.routine_for(o)
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) if len(resid) else 0.0
    by_noise = rules.excess_noise_multiple * noise
    cal.excess_threshold = max(rules.subsidized_min_excess, by_noise)
    cal.thresholds = {
        "excess_threshold": cal.excess_threshold,
        **{k: float(getattr(rules, k)) for k in _FIT_BOUNDS},
        "lapse_days": float(rules.lapse_days),
    }
    cal.sources = {
        "excess_threshold": "noise" if by_noise > rules.subsidized_min_excess else "floor",
        **dict.fromkeys(_FIT_BOUNDS, "default"),
        "lapse_days": "rule",
    }
    return cal


def _two_group_split(values: np.ndarray) -> float | None:
    """Where the chain's ordinary members end: split ``values`` in two groups (k-means, k = 2)
    and take the 95th percentile of the lower group, or the groups' midpoint when lower
    (None when the values do not split).

    The midpoint alone sits too high when the upper group is wide (subsidy hunters' values
    spread far) and the lower one tight (ordinary members all look alike).
    """
    values = values[np.isfinite(values)].astype("float64")
    if len(values) < 2:
        return None
    lo, hi = np.percentile(values, [10, 90])
    if hi - lo < 1e-9:
        return None
    centres, _ = kmeans2(values, np.array([lo, hi]), minit="matrix", seed=0)
    midpoint = float(centres.mean())
    lower = values[values < midpoint]
    top = float(np.percentile(lower, 95)) if len(lower) else midpoint
    return min(midpoint, top)


# --------------------------------------------------------------------------- purchases


def _campaign_days(
    orders: pd.DataFrame, campaigns: pd.DataFrame | None, max_days: int
) -> np.ndarray:
    """Sorted, merged ``[start, end]`` day-number intervals when any campaign of at most
    ``max_days`` days ran.

    Without a campaigns table the windows come from the orders: each campaign id runs from its
    first to its last order. Campaigns sent to a list of members
    (:data:`~rxrepurchase.contract.TARGETED_CAMPAIGN_KINDS`) are left out: their window is
    open to the list only.
    """
    if campaigns is not None:
        require_columns(campaigns, ["campaign_id", "starts_on", "ends_on"], "campaigns")
        if "kind" in campaigns:
            campaigns = campaigns[~campaigns["kind"].isin(TARGETED_CAMPAIGN_KINDS).fillna(False)
                                  .astype(bool)]
        if campaigns[["starts_on", "ends_on"]].isna().any().any():
            row = campaigns.index[campaigns[["starts_on", "ends_on"]].isna().any(axis=1)][0]
            raise DataContractError(f"campaigns: starts_on / ends_on empty at row {row}")
        spans = campaigns[["starts_on", "ends_on"]]
    else:
        tagged = orders.loc[orders["campaign_id"].notna()]
        g = tagged.groupby("campaign_id")["ordered_at"]
        spans = pd.DataFrame({"starts_on": g.min(), "ends_on": g.max()})
    s = spans["starts_on"].to_numpy("datetime64[D]").astype("int64")
    e = spans["ends_on"].to_numpy("datetime64[D]").astype("int64")
    short = e - s + 1 <= max_days
    if not short.any():
        return np.empty((0, 2), dtype="int64")
    s, e = s[short], e[short]
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    # A new merged interval starts where a campaign begins after everything before has ended.
    new = np.r_[True, s[1:] > e[:-1] + 1]
    ends = np.r_[e[np.flatnonzero(new)[1:] - 1], e[-1]]
    return np.column_stack([s[new], ends])


def _in_intervals(days: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    if len(intervals) == 0:
        return np.zeros(len(days), dtype=bool)
    i = np.searchsorted(intervals[:, 0], days, side="right") - 1
    return (i >= 0) & (days <= intervals[np.clip(i, 0, None), 1])


def _calendar_share(intervals: np.ndarray, first: int, last: int) -> float:
    """Share of the days ``first..last`` inside the merged ``intervals``."""
    if last < first or len(intervals) == 0:
        return 0.0
    covered = np.clip(np.minimum(intervals[:, 1], last) - np.maximum(intervals[:, 0], first) + 1,
                      0, None)  # fmt: skip
    return float(covered.sum() / (last - first + 1))


def _has_regular_product(orders: pd.DataFrame, order_lines: pd.DataFrame | None) -> np.ndarray:
    if order_lines is None:
        return np.zeros(len(orders), dtype=bool)
    require_columns(order_lines, ["order_id", "is_chronic"], "order_lines")
    regular = order_lines.loc[order_lines["is_chronic"].to_numpy(dtype=bool), "order_id"]
    return orders["order_id"].isin(regular.unique()).to_numpy()


@renamed_keywords(within="by")
def subsidized_purchases(
    orders: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    *,
    order_lines: pd.DataFrame | None = None,
    rules: CohortRules | None = None,
    by: Sequence[str] = (),
    calibration: SubsidyCalibration | None = None,
) -> pd.DataFrame:
    """Member purchases (one per member-day) with their subsidy flags.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders.
    campaigns : DataFrame, optional
        Campaign windows; derived from the orders when absent.
    order_lines : DataFrame, optional
        When given, ``regular_product`` flags purchases with a chronic / regularly taken
        product line (``is_chronic``); without it the column is all False.
    rules : CohortRules, optional
        ``campaign_window_max_days`` applies (and the routine settings without
        ``calibration``).
    by : sequence of str
        Order columns (``store_id``, ``channel``) that split a member's history: a purchase is
        one member-day *per group*, and ``purchase_number`` counts within the group (a member
        buying first in store A, then in store B, makes a first purchase in each).
    calibration : SubsidyCalibration, optional
        The chain's routine discounts and excess threshold (pass the chain's when ``orders`` is
        a part of it, e.g. one store); estimated from ``orders`` when absent.

    Returns
    -------
    DataFrame
        ``member_id``, the ``by`` columns, ``purchased_on, gross_amount, discount_amount,
        paid_amount, excess_amount`` (discount beyond routine, may be negative),
        ``excess_depth`` (its share of list price), ``subsidized`` (excess depth at least the
        excess threshold), ``in_campaign_window, regular_product, purchase_number``, sorted by
        member, group and date.
    """
    rules = rules or CohortRules()
    by = list(by)
    require_columns(orders, [*_ORDER_COLUMNS, *by], "orders")
    calibration = calibration or fit_routine(orders, rules)
    purchase_mask(orders)  # names a member order without paid_amount
    # Which orders make a purchase and how they add up is core.purchases' rule; the excess
    # over routine and the regular-product flag are per order, summed with the amounts.
    o = orders.loc[orders["member_id"].notna().to_numpy()]
    gross = o["gross_amount"].to_numpy("float64")
    discount = o["discount_amount"].to_numpy("float64")
    member, ids = backend.ranked_ids(o["member_id"])
    frame = pd.DataFrame({
        "member_id": member, **{c: o[c].array for c in by},
        "ordered_at": local_times(o["ordered_at"]).array,
        "paid_amount": o["paid_amount"].to_numpy("float64"), "gross_amount": gross,
        "discount_amount": discount, "excess_amount": discount - calibration.routine_for(o) * gross,
        "regular_product": _has_regular_product(o, order_lines).astype("float64"),
    })  # fmt: skip
    amounts = ["gross_amount", "discount_amount", "paid_amount", "excess_amount", "regular_product"]
    with backend.tables(frame) as (table,):
        p = backend.to_pandas(core_purchases.purchases(table, keys=by, amounts=amounts, numbered=True))
    for c in by:
        p[c] = p[c].astype(orders[c].dtype)
    p = p.sort_values(["member_id", *by, "day"], kind="stable", ignore_index=True)
    p = pd.DataFrame({
        "member_id": ids.take(p["member_id"].to_numpy()).to_numpy(), **{c: p[c] for c in by},
        "purchased_on": p["day"].astype(frame["ordered_at"].dtype).to_numpy(), **{a: p[a] for a in amounts[:4]},
        "regular_product": p["regular_product"].to_numpy() > 0,
        "purchase_number": p["purchase_number"].astype("int64"),
    })  # fmt: skip
    p["excess_depth"] = ratio(p["excess_amount"], p["gross_amount"]).fillna(0.0)
    p["subsidized"] = p["excess_depth"] >= calibration.excess_threshold - 1e-12
    days = p["purchased_on"].to_numpy("datetime64[D]").astype("int64")
    p["in_campaign_window"] = _in_intervals(
        days, _campaign_days(orders, campaigns, rules.campaign_window_max_days)
    )
    return p[["member_id", *by, "purchased_on", *amounts[:4], "regular_product", "excess_depth",
              "subsidized", "in_campaign_window", "purchase_number"]]


# --------------------------------------------------------------------------- classifier


def _member_features(p: pd.DataFrame, excess_threshold: float, as_of: pd.Timestamp,
                     rules: CohortRules) -> pd.DataFrame:
    """Per member the values the signals compare, with purchases subsidised from
    ``excess_threshold`` beyond routine."""
    sub = p["excess_depth"] >= excess_threshold - 1e-12
    g = p.assign(subsidized=sub).groupby("member_id", sort=True)
    m = g.agg(
        first_purchase_on=("purchased_on", "first"),
        last_purchase_on=("purchased_on", "last"),
        purchases=("purchased_on", "size"),
        subsidized_purchases=("subsidized", "sum"),
        gross=("gross_amount", "sum"),
        excess=("excess_amount", "sum"),
        in_window=("in_campaign_window", "sum"),
        first_sub=("subsidized", "first"),
        last_sub=("subsidized", "last"),
        regular_purchases=("regular_product", "sum"),
    )
    m["subsidized_share"] = m["subsidized_purchases"] / m["purchases"]
    m["discount_depth"] = ratio(m["excess"], m["gross"]).fillna(0.0).clip(lower=0.0)
    m["campaign_window_share"] = m["in_window"] / m["purchases"]
    m["first_purchase_subsidized"] = m["first_sub"].astype(bool)
    m["idle_days"] = (as_of - m["last_purchase_on"]).dt.days
    m["tenure"] = (as_of - m["first_purchase_on"]).dt.days
    m["monthly_purchases"] = m["purchases"] / np.maximum(m["tenure"], 30) * 30
    m["regular_purchases"] = m["regular_purchases"].astype("int64")
    m["regular_buyer"] = (m["purchases"] >= rules.loyal_min_purchases) & (
        (m["monthly_purchases"] >= rules.loyal_min_monthly_purchases)
        | (m["regular_purchases"] >= rules.loyal_min_regular_purchases)
    )
    return m


def _signals(m: pd.DataFrame, th: dict[str, float], campaign_on: bool,
             rules: CohortRules) -> pd.DataFrame:
    """The five boolean signals of members ``m`` at thresholds ``th``."""
    return pd.DataFrame(
        {
            "first_purchase_subsidized": m["first_purchase_subsidized"],
            # The share of one or two purchases is the first (and last) purchase's flag again:
            # not counted twice.
            "mostly_subsidized": (m["subsidized_share"] >= th["subsidized_share_high"])
            & (m["purchases"] >= rules.share_min_purchases),
            "deep_discount": m["discount_depth"] >= th["discount_depth_high"],
            "campaign_window_buyer": (m["campaign_window_share"] >= th["campaign_window_share_high"])
            & campaign_on,
            "stopped_after_subsidy": m["last_sub"].astype(bool) & (m["idle_days"] >= th["lapse_days"]),
        },
        index=m.index,
    )


def _cohorts(m: pd.DataFrame, sig: pd.DataFrame, rules: CohortRules, needed: int) -> np.ndarray:
    return np.select(
        [
            m["tenure"] < rules.new_member_days,
            sig.sum(axis=1) >= needed,
            ~m["regular_buyer"],
            m["subsidized_share"] <= rules.loyal_max_subsidized_share,
        ],
        ["new", "subsidy_driven", "occasional", "loyal"],
        default="mixed",
    )


class SubsidyCohortClassifier:
    """Fit the subsidy calibration to a chain and label its members (see the module docs).

    Parameters
    ----------
    rules : CohortRules, optional
        Settings (default :class:`CohortRules`).

    Attributes
    ----------
    calibration_ : SubsidyCalibration
        Routine discounts and every threshold, fitted or defaulted.
    purchases_ : DataFrame
        :func:`subsidized_purchases` of the chain.
    labels_ : DataFrame
        :func:`classify_members` output.
    as_of_ : Timestamp
        Analysis date.
    """

    def __init__(self, rules: CohortRules | None = None) -> None:
        self.rules = rules or CohortRules()

    def fit(self, orders: pd.DataFrame, campaigns: pd.DataFrame | None = None, *,
            order_lines: pd.DataFrame | None = None, members: pd.DataFrame | None = None,
            as_of=None) -> SubsidyCohortClassifier:
        """Calibrate on ``orders`` (all up to ``as_of``) and label every member."""
        rules = self.rules
        self.as_of_ = as_of = default_as_of(orders, as_of)
        orders = orders.loc[orders["ordered_at"].dt.normalize() <= as_of]
        cal = fit_routine(orders, rules)
        p = subsidized_purchases(orders, campaigns, order_lines=order_lines, rules=rules,
                                 calibration=cal)  # fmt: skip
        windows = _campaign_days(orders, campaigns, rules.campaign_window_max_days)
        first = orders["ordered_at"].min()
        first_day = int(first.to_datetime64().astype("datetime64[D]").astype("int64")) if len(
            orders) else 0  # fmt: skip
        last_day = int(np.datetime64(as_of, "D").astype("int64"))
        cal.campaign_calendar_share = _calendar_share(windows, first_day, last_day)
        # No windows at all (no campaigns recorded) is as uninformative as windows everywhere.
        cal.campaign_signal_on = 0 < cal.campaign_calendar_share <= rules.campaign_max_calendar_share
        # A switched-off signal lowers the bar by one: "at most 5 - min_subsidy_signals of the
        # signals fail" holds whatever the number of signals that can fire.
        cal.signals_needed = max(rules.min_subsidy_signals - (not cal.campaign_signal_on), 1)
        m = _member_features(p, cal.excess_threshold, as_of, rules)
        judged = m.loc[m["tenure"] >= rules.new_member_days]
        cal.members_judged = len(judged)
        if rules.calibrate and len(judged) >= rules.calibration_min_members:
            for name, (lo, hi) in _FIT_BOUNDS.items():
                if name == "campaign_window_share_high" and not cal.campaign_signal_on:
                    continue
                split = _two_group_split(judged[_FEATURE_OF[name]].to_numpy())
                if split is not None:
                    cal.thresholds[name] = float(np.clip(split, lo, hi))
                    cal.sources[name] = "fitted"
        self.calibration_, self.purchases_ = cal, p
        self.labels_ = self._label(orders, members)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "calibration_"):
            raise MetricsInputError("call fit() before using the classifier")

    def _labels_at(self, th: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        m = _member_features(self.purchases_, th["excess_threshold"], self.as_of_, self.rules)
        sig = _signals(m, th, self.calibration_.campaign_signal_on, self.rules)
        return m, sig, _cohorts(m, sig, self.rules, self.calibration_.signals_needed)

    def predict(self, thresholds: dict[str, float] | None = None) -> pd.Series:
        """Cohort per member (indexed by ``member_id``) at ``thresholds`` (default: fitted),
        before abstention: what the labels would be with other thresholds."""
        self._check_fitted()
        th = {**self.calibration_.thresholds, **(thresholds or {})}
        m, _, labels = self._labels_at(th)
        return pd.Series(labels, index=m.index, name="subsidy_cohort")

    def _label(self, orders: pd.DataFrame, members: pd.DataFrame | None) -> pd.DataFrame:
        rules, cal = self.rules, self.calibration_
        m, sig, labels = self._labels_at(cal.thresholds)
        margin = rules.undetermined_margin
        if margin > 0:
            loose = self.predict(_scaled(cal.thresholds, 1 - margin, _MARGIN_THRESHOLDS)).to_numpy()
            strict = self.predict(_scaled(cal.thresholds, 1 + margin, _MARGIN_THRESHOLDS)).to_numpy()
            unsure = (loose == "subsidy_driven") != (strict == "subsidy_driven")
            labels = np.where(unsure & (labels != "new"), "undetermined", labels)
        m = m.drop(columns="first_purchase_subsidized").join(sig)
        m["subsidy_signals"] = sig.sum(axis=1).astype("int64")
        m["subsidy_cohort"] = labels
        cols = [
            "subsidy_cohort", "first_purchase_on", "last_purchase_on", "purchases",
            "subsidized_purchases", "subsidized_share", "discount_depth", "campaign_window_share",
            *SIGNALS, "subsidy_signals", "monthly_purchases", "regular_purchases", "regular_buyer",
        ]  # fmt: skip
        out = m[cols].reset_index()
        if members is not None:
            require_columns(members, ["member_id"], "members")
            never = members.loc[~members["member_id"].isin(out["member_id"]), ["member_id"]]
            out = pd.concat([out, never.assign(subsidy_cohort="no_purchase")], ignore_index=True)
        counts = ["purchases", "subsidized_purchases", "subsidy_signals", "regular_purchases"]
        out[counts] = out[counts].astype("Int64")  # Int64: members without purchases have none
        out["member_id"] = out["member_id"].astype("string")
        out["subsidy_cohort"] = out["subsidy_cohort"].astype("string")
        out.attrs["calibration"] = cal
        out.attrs["rules"] = rules
        return out

    def stability(self, change: float = 0.2) -> pd.DataFrame:
        """Label shares when each threshold (and all together) moves by ``±change``.

        Returns
        -------
        DataFrame
            One row per variant (``threshold``: a name of :data:`THRESHOLDS` or ``"all"``,
            ``factor``: 1 - change or 1 + change; the first row is the fitted thresholds,
            ``"none"``, 1.0) and one column per cohort: its share of members (not ``new``,
            before abstention).
        """
        self._check_fitted()
        th = self.calibration_.thresholds
        variants = [("none", 1.0, th)]
        for factor in (1 - change, 1 + change):
            for name in THRESHOLDS:
                variants.append((name, factor, {**th, name: th[name] * factor}))
            variants.append(("all", factor, _scaled(th, factor)))
        rows = []
        for name, factor, values in variants:
            labels = self.predict(values)
            labels = labels[labels != "new"]
            shares = labels.value_counts(normalize=True)
            rows.append({"threshold": name, "factor": factor,
                         **{c: float(shares.get(c, 0.0)) for c in COHORTS if c not in
                            ("new", "undetermined")}})  # fmt: skip
        return pd.DataFrame(rows)


def _scaled(th: dict[str, float], factor: float,
            names: Sequence[str] = THRESHOLDS) -> dict[str, float]:
    """Thresholds ``names`` times ``factor``: every signal fires at or above its threshold, so
    a factor below 1 loosens them."""
    return {k: v * factor if k in names else v for k, v in th.items()}


# Abstention moves the amounts and days, not the share thresholds: a share is a count of
# purchases, and a member with 2 or 3 purchases sits exactly on 50% or 67% for a whole
# purchase, not for want of evidence.
_MARGIN_THRESHOLDS = ("excess_threshold", "discount_depth_high", "lapse_days")


def classify_members(
    orders: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    *,
    order_lines: pd.DataFrame | None = None,
    members: pd.DataFrame | None = None,
    as_of=None,
    rules: CohortRules | None = None,
) -> pd.DataFrame:
    """Assign every purchasing member to a subsidy cohort, with the signals behind it.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders (needs ``coupon_id``, ``campaign_id`` and the money columns).
    campaigns : DataFrame, optional
        Campaign windows (``starts_on``/``ends_on``); derived from the orders when absent.
    order_lines : DataFrame, optional
        Lets chronic / regularly taken products (``is_chronic``) mark a regular buyer; without
        it only the purchase frequency does (recommended: pass it).
    members : DataFrame, optional
        When given, members without any purchase are listed too, as ``no_purchase``.
    as_of : date-like, optional
        Analysis date (default: date of the last order).
    rules : CohortRules, optional
        Settings (default :class:`CohortRules`).

    Returns
    -------
    DataFrame
        One row per member: ``member_id, subsidy_cohort, first_purchase_on, last_purchase_on,
        purchases, subsidized_purchases, subsidized_share, discount_depth`` (discount beyond
        routine over list-price spend), ``campaign_window_share``, the five boolean signals
        (:data:`SIGNALS`), ``subsidy_signals`` (how many fired), ``monthly_purchases``,
        ``regular_purchases`` (with a chronic / regular product) and ``regular_buyer``.
        ``attrs["calibration"]`` holds the :class:`SubsidyCalibration` (print its
        :meth:`~SubsidyCalibration.describe` with the labels) and ``attrs["rules"]`` the rules.
    """
    return SubsidyCohortClassifier(rules).fit(
        orders, campaigns, order_lines=order_lines, members=members, as_of=as_of
    ).labels_


def explain_member(
    classified: pd.DataFrame, member_id: str, rules: CohortRules | None = None
) -> str:
    """Say in plain words why a member got their subsidy cohort.

    Parameters
    ----------
    classified : DataFrame
        Output of :func:`classify_members`; its ``attrs["calibration"]`` gives the thresholds.
    member_id : str
        The member.
    rules : CohortRules, optional
        The rules the classification used (default: ``classified.attrs["rules"]``).

    Returns
    -------
    str
        One line for the verdict, one per signal (value, threshold, fired or not) and one for
        the deciding rule.
    """
    rules = rules or classified.attrs.get("rules") or CohortRules()
    cal = classified.attrs.get("calibration")
    if cal is None:
        raise MetricsInputError("classified has no calibration: pass the output of "
                                "classify_members (attrs['calibration'])")
    th, src = cal.thresholds, cal.sources
    hit = classified.loc[classified["member_id"] == member_id]
    if hit.empty:
        raise MetricsInputError(f"member_id {member_id!r} is not in the classified members")
    r = hit.iloc[0]
    label = r["subsidy_cohort"]
    if label == "no_purchase":
        return f"member {member_id}: no_purchase — no counted purchase in the orders."
    mark = {True: "YES", False: "no "}
    campaign = (
        f"share bought inside campaign windows {r['campaign_window_share']:.0%} (signal at >= "
        f"{th['campaign_window_share_high']:.0%}, {src['campaign_window_share_high']})"
        if cal.campaign_signal_on
        else f"campaign windows cover {cal.campaign_calendar_share:.0%} of the calendar: "
        "signal switched off"
    )
    lines = [
        f"member {member_id}: {label} — {r['purchases']} purchases from "
        f"{r['first_purchase_on']:%Y-%m-%d} to {r['last_purchase_on']:%Y-%m-%d}, "
        f"{r['subsidized_purchases']} subsidised (>= {th['excess_threshold']:.1%} of list price "
        f"beyond the routine member discount)",
        f"  [{mark[bool(r['first_purchase_subsidized'])]}] first purchase subsidised",
        f"  [{mark[bool(r['mostly_subsidized'])]}] subsidised share {r['subsidized_share']:.0%} "
        f"(signal at >= {th['subsidized_share_high']:.0%}, {src['subsidized_share_high']}, "
        f"from {rules.share_min_purchases} purchases)",
        f"  [{mark[bool(r['deep_discount'])]}] discount beyond routine {r['discount_depth']:.0%} "
        f"(signal at >= {th['discount_depth_high']:.0%}, {src['discount_depth_high']})",
        f"  [{mark[bool(r['campaign_window_buyer'])]}] {campaign}",
        f"  [{mark[bool(r['stopped_after_subsidy'])]}] last purchase subsidised and none for "
        f">= {th['lapse_days']:.0f} days",
        f"  regular buyer: {'YES' if r['regular_buyer'] else 'no'} — {r['purchases']} purchases "
        f"(needs >= {rules.loyal_min_purchases}) and {r['monthly_purchases']:.2f} per 30 days "
        f"(needs >= {rules.loyal_min_monthly_purchases}) or {r['regular_purchases']} with a "
        f"chronic / regular product (needs >= {rules.loyal_min_regular_purchases})",
    ]
    n = int(r["subsidy_signals"])
    few = f"{n} of {len(SIGNALS)} signals (< {cal.signals_needed})"
    margin = f"{rules.undetermined_margin:.0%}"
    reason = {
        "new": f"first purchase fewer than {rules.new_member_days} days before the analysis date",
        "undetermined": f"{n} of {len(SIGNALS)} signals: subsidy-driven with every threshold "
        f"{margin} looser but not {margin} stricter — too close to call",
        "subsidy_driven": f"{n} of {len(SIGNALS)} signals fired (>= {cal.signals_needed})",
        "occasional": f"{few} and not a regular buyer",
        "loyal": f"{few}, a regular buyer, subsidised share "
        f"<= {rules.loyal_max_subsidized_share:.0%}",
        "mixed": f"{few}, a regular buyer, but subsidised share above "
        f"{rules.loyal_max_subsidized_share:.0%}",
    }[label]
    lines.append(f"  => {label}: {reason}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- comparisons


def _cohort_lookup(cohorts: pd.DataFrame | pd.Series, members: pd.DataFrame | None) -> pd.DataFrame:
    """Member table with ``subsidy_cohort`` (and the members' columns when given)."""
    if isinstance(cohorts, pd.Series):
        cohorts = cohorts.rename("subsidy_cohort").rename_axis("member_id").reset_index()
    require_columns(cohorts, ["member_id", "subsidy_cohort"], "cohorts")
    table = cohorts[["member_id", "subsidy_cohort"]]
    if members is not None:
        require_columns(members, ["member_id"], "members")
        extra = members.drop(columns=[c for c in members.columns if c == "subsidy_cohort"])
        table = table.merge(extra, on="member_id", how="left")
    return table


@renamed_keywords(days="outcome_days")
def compare_cohorts(
    orders: pd.DataFrame,
    cohorts: pd.DataFrame | pd.Series,
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
    as_of=None,
    outcome_days: int = 90,
    rules: CohortRules | None = None,
    calibration: SubsidyCalibration | None = None,
) -> pd.DataFrame:
    """The cohort comparison table: repurchase, spend, subsidy and what is left of it.

    Over all orders up to ``as_of``, per subsidy cohort (and ``by`` group, e.g. ``store_id``):
    ``members`` (with a purchase), ``user_repurchase_rate`` and ``order_repurchase_rate``
    (see :mod:`rxrepurchase.metrics`), ``repurchase_within_days`` (N-day repurchase after the
    first purchase, N = ``outcome_days``), ``repurchase_after_last_subsidy`` (bought again
    within ``outcome_days`` of the last subsidised purchase: the drop when the subsidy stops), and per member
    ``spend_per_member`` (list price, 应收), ``subsidy_per_member`` (discount, 优惠),
    ``revenue_net_of_subsidy_per_member`` (paid, 实付), plus ``subsidy_per_retained_member``
    (subsidy over members who purchased twice or more) and ``subsidy_rate`` (subsidy / spend).

    Parameters
    ----------
    orders : DataFrame
        The chain's orders.
    cohorts : DataFrame or Series
        :func:`classify_members` output, or a Series of cohort names indexed by member_id.
    by : str or list of str, optional
        Further grouping: order columns such as ``store_id`` (every figure counted within the
        group, as if ``orders`` held only that group's orders) or member columns.
    members : DataFrame, optional
        Needed when ``by`` names member columns.
    campaigns : DataFrame, optional
        As in :func:`classify_members`.
    as_of : date-like, optional
        Analysis date (default: date of the last order); later orders are ignored.
    outcome_days : int
        Days after the first / last subsidised purchase the two repurchase-within columns
        watch.
    rules : CohortRules, optional
        Only ``campaign_window_max_days`` matters here.
    calibration : SubsidyCalibration, optional
        What counts as a subsidised purchase (default: the one ``cohorts`` was labelled with).

    ``repurchase_within_days`` counts every member whose first purchase is at least
    ``outcome_days`` old; ``repurchase_after_last_subsidy`` counts the members with a subsidised purchase at
    least ``outcome_days`` old (see :func:`post_subsidy_repurchase`).
    """
    from rxrepurchase.metrics import repurchase_rates

    by = as_list(by)
    as_of = default_as_of(orders, as_of)
    orders = orders.loc[orders["ordered_at"].dt.normalize() <= as_of]
    lookup = _cohort_lookup(cohorts, members)
    keys = [*by, "subsidy_cohort"]
    first = orders["ordered_at"].min().normalize()
    rates = repurchase_rates(orders, (first, as_of), keys, members=lookup)
    rates = rates.set_index(keys)[
        ["members", "repeat_members", "user_repurchase_rate", "order_repurchase_rate"]
    ]
    # The N-day repurchase after the first purchase, counted within order-column groups
    # (metrics.n_day_repurchase keys those on the first purchase), and after the last subsidy.
    post = _repurchase_pairs(
        orders, cohorts, [outcome_days], by, members=members, campaigns=campaigns, as_of=as_of,
        rules=rules, calibration=calibration,
    ).droplevel("days")  # fmt: skip
    member_orders = orders.loc[orders["member_id"].notna()]
    money_cols = ["gross_amount", "discount_amount", "paid_amount"]
    frame = member_orders[["member_id", *money_cols, *[c for c in by if c in orders.columns]]]
    frame = lookup_member_columns(frame, keys, lookup)
    money = frame.groupby(keys, dropna=False)[money_cols].sum()
    table = rates.join(money, how="left")
    table["repurchase_within_days"] = post["after_first_rate"]
    table["repurchase_after_last_subsidy"] = post["after_last_subsidy_rate"]
    table["spend_per_member"] = table["gross_amount"] / table["members"]
    table["subsidy_per_member"] = table["discount_amount"] / table["members"]
    table["revenue_net_of_subsidy_per_member"] = table["paid_amount"] / table["members"]
    table["subsidy_per_retained_member"] = ratio(table["discount_amount"], table["repeat_members"])
    table["subsidy_rate"] = ratio(table["discount_amount"], table["gross_amount"])
    table = table.rename(
        columns={"gross_amount": "spend", "discount_amount": "subsidy",
                 "paid_amount": "revenue_net_of_subsidy"}
    ).reset_index()  # fmt: skip
    table.insert(len(keys), "days", outcome_days)
    return _sort_cohorts(table, by)


def _sort_cohorts(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rank = {c: i for i, c in enumerate(COHORTS)}
    order = table["subsidy_cohort"].map(rank).fillna(len(COHORTS))
    return (
        table.assign(_r=order)
        .sort_values([*by, "_r"], kind="stable")
        .drop(columns="_r")
        .reset_index(drop=True)
    )


def _chain_calibration(cohorts, calibration: SubsidyCalibration | None):
    """The calibration to judge subsidies by: given, or the one the cohorts were labelled with
    (None: estimated from the orders at hand)."""
    if calibration is not None:
        return calibration
    return getattr(cohorts, "attrs", {}).get("calibration")


def _repurchase_pairs(
    orders: pd.DataFrame, cohorts, horizons: list[int], by: list[str], *,
    members: pd.DataFrame | None, campaigns: pd.DataFrame | None, as_of: pd.Timestamp,
    rules: CohortRules | None, calibration: SubsidyCalibration | None,
) -> pd.DataFrame:
    """Long table of per member (and group) and horizon: ``kind`` (``after_first`` over every
    member whose first purchase is old enough; ``same_first`` and ``after_last_subsidy`` over
    the members with a subsidised purchase at least N days old), ``eligible`` and
    ``repurchased``."""
    within = [c for c in by if c in orders.columns]
    p = subsidized_purchases(orders.loc[orders["ordered_at"].dt.normalize() <= as_of], campaigns,
                             rules=rules, by=within,
                             calibration=_chain_calibration(cohorts, calibration))  # fmt: skip
    lookup = _cohort_lookup(cohorts, members)
    history = ["member_id", *within]
    p["next_on"] = p.groupby(history, sort=False, dropna=False)["purchased_on"].shift(-1)
    cols = [*history, "purchased_on", "next_on"]
    first = p.loc[p["purchase_number"] == 1, cols]
    keys = [*by, "subsidy_cohort"]
    parts = []
    for h in horizons:
        cutoff = as_of - pd.Timedelta(days=h)
        # The last subsidised purchase with its whole N-day window observed: every member
        # subsidised before the cutoff counts, whether or not they were subsidised since.
        last_sub = p.loc[p["subsidized"] & (p["purchased_on"] <= cutoff)]
        last_sub = last_sub.groupby(history, sort=False, dropna=False).tail(1)[cols]
        same_first = first.merge(last_sub[history], on=history, how="inner")
        all_first = first.loc[first["purchased_on"] <= cutoff]
        for kind, frame in (("after_first", all_first), ("same_first", same_first),
                            ("after_last_subsidy", last_sub)):  # fmt: skip
            frame = lookup_member_columns(frame.reset_index(drop=True), keys, lookup)
            gap = (frame["next_on"] - frame["purchased_on"]).dt.days.to_numpy()
            parts.append(frame[keys].assign(days=h, kind=kind, eligible=1,
                                            repurchased=(gap <= h).astype("int64")))
    long = pd.concat(parts, ignore_index=True)
    agg = long.groupby([*keys, "days", "kind"], dropna=False)[["eligible", "repurchased"]].sum()
    wide = agg.unstack("kind")
    out = pd.DataFrame(index=wide.index)
    for kind in ("after_first", "same_first", "after_last_subsidy"):
        e = wide.get(("eligible", kind), pd.Series(0, index=wide.index)).fillna(0).astype("int64")
        r = wide.get(("repurchased", kind), pd.Series(0, index=wide.index)).fillna(0)
        out[f"{kind}_eligible"] = e
        out[f"{kind}_rate"] = ratio(r, e)
    return out


@renamed_keywords(days="outcome_days")
def post_subsidy_repurchase(
    orders: pd.DataFrame,
    cohorts: pd.DataFrame | pd.Series,
    outcome_days: Sequence[int] = (30, 60, 90),
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
    as_of=None,
    rules: CohortRules | None = None,
    calibration: SubsidyCalibration | None = None,
) -> pd.DataFrame:
    """Repurchase after the first purchase vs after the last subsidised one, same members.

    For each cohort and N in ``outcome_days``, the members counted (``eligible``) are those with a
    subsidised purchase at least N days before ``as_of``. For each of them the *last* such
    purchase (the last one whose N following days are observed) is the anchor:
    ``after_last_subsidy_rate`` is the share who bought anything within N days after it, and
    ``after_first_rate`` the share of *the same members* who bought again within N days of their
    first purchase. ``drop`` = after first - after last subsidy: how much repurchase falls once
    the subsidy stops. Members subsidised only in the last N days are not counted yet (their
    window is not over); members never subsidised are not counted; a cohort (or group) with
    nobody counted has no row.

    ``by`` names member columns (``tier``; looked up in ``members``) or order columns
    (``store_id``, ``channel``): these split each member's history, so a member's first
    purchase, last subsidised purchase and the purchase after it are all counted within the
    group, as if ``orders`` held only that group's orders. Subsidies are judged with
    ``calibration`` (default: the one ``cohorts`` was labelled with).
    """
    by = as_list(by)
    as_of = default_as_of(orders, as_of)
    horizons = [int(d) for d in outcome_days]
    if not horizons or min(horizons) <= 0:
        raise MetricsInputError(f"outcome_days must be positive whole numbers, got {outcome_days!r}")
    pairs = _repurchase_pairs(orders, cohorts, horizons, by, members=members,
                              campaigns=campaigns, as_of=as_of, rules=rules,
                              calibration=calibration)  # fmt: skip
    out = pd.DataFrame({
        "eligible": pairs["after_last_subsidy_eligible"],
        "after_first_rate": pairs["same_first_rate"],
        "after_last_subsidy_rate": pairs["after_last_subsidy_rate"],
    })  # fmt: skip
    out["drop"] = out["after_first_rate"] - out["after_last_subsidy_rate"]
    return _sort_cohorts(out.loc[out["eligible"] > 0].reset_index(), [*by, "days"])


def promotion_waves(
    campaigns: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    *,
    kinds: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The promotion campaigns as numbered waves (1 = earliest start).

    Parameters
    ----------
    campaigns : DataFrame, optional
        The campaigns table; when absent, campaigns are derived from ``orders.campaign_id``
        (first to last order date).
    orders : DataFrame, optional
        Needed when ``campaigns`` is absent.
    kinds : sequence of str, optional
        Keep only campaigns of these ``kind`` values (e.g. ``["new_member", "wake_up"]``).

    Returns
    -------
    DataFrame
        ``wave, campaign_id, name, kind, starts_on, ends_on``.
    """
    if campaigns is None:
        if orders is None:
            raise MetricsInputError("promotion_waves needs campaigns or orders")
        tagged = orders.loc[orders["campaign_id"].notna()]
        g = tagged.groupby("campaign_id")["ordered_at"]
        campaigns = pd.DataFrame(
            {"starts_on": g.min().dt.normalize(), "ends_on": g.max().dt.normalize()}
        ).reset_index()
        campaigns["name"] = campaigns["campaign_id"]
        campaigns["kind"] = pd.NA
    require_columns(campaigns, ["campaign_id", "starts_on", "ends_on"], "campaigns")
    waves = campaigns.copy()
    for c in ("name", "kind"):
        if c not in waves.columns:
            waves[c] = pd.NA
    if kinds is not None:
        unknown = sorted(set(kinds) - set(waves["kind"].dropna()))
        if unknown:
            raise MetricsInputError(f"campaigns have no kind {unknown}; kinds: "
                                    f"{sorted(waves['kind'].dropna().unique())}")  # fmt: skip
        waves = waves.loc[waves["kind"].isin(list(kinds))]
    waves = waves.sort_values(["starts_on", "campaign_id"], kind="stable").reset_index(drop=True)
    waves.insert(0, "wave", np.arange(1, len(waves) + 1))
    return waves[["wave", "campaign_id", "name", "kind", "starts_on", "ends_on"]]


@renamed_keywords(days="outcome_days")
def wave_response(
    orders: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    cohorts: pd.DataFrame | pd.Series | None = None,
    *,
    kinds: Sequence[str] | None = None,
    outcome_days: int = 90,
    as_of=None,
    rules: CohortRules | None = None,
    calibration: SubsidyCalibration | None = None,
) -> pd.DataFrame:
    """How members respond to successive promotion waves (the "spiral down").

    For every wave (see :func:`promotion_waves`): ``participants`` (members with a purchase
    carrying the campaign), ``new_members`` (their first purchase falls in the wave),
    ``reactivated_members`` (had bought before but not in the ``rules.lapse_days`` days before
    the wave), ``subsidy`` and ``revenue_net_of_subsidy`` on the wave's orders, and after the
    wave ends: ``repurchase_rate`` (any purchase within ``outcome_days``) and
    ``full_price_repurchase_rate`` (an unsubsidised purchase within
    ``outcome_days``: what the wave
    left behind), with ``subsidy_per_retained_member`` = subsidy / full-price repurchasers.
    Rates are NaN for waves that ended fewer than ``outcome_days`` days before ``as_of``.

    With ``cohorts`` (as in :func:`compare_cohorts`) the figures are per subsidy cohort too.
    Waves nobody in ``orders`` took part in (a store that did not run them) have zero counts
    and NaN rates; per cohort they have no rows.
    """
    rules = rules or CohortRules()
    as_of = default_as_of(orders, as_of)
    orders = orders.loc[orders["ordered_at"].dt.normalize() <= as_of]
    waves = promotion_waves(campaigns, orders, kinds=kinds)
    p = subsidized_purchases(orders, campaigns, rules=rules,
                             calibration=_chain_calibration(cohorts, calibration))
    keep = purchase_mask(orders)
    wo = orders.loc[keep & orders["campaign_id"].isin(waves["campaign_id"]).to_numpy()]
    part = (
        wo.assign(day=wo["ordered_at"].dt.normalize())
        .groupby(["campaign_id", "member_id"], sort=False)
        .agg(subsidy=("discount_amount", "sum"), revenue_net_of_subsidy=("paid_amount", "sum"))
        .reset_index()
        .merge(waves[["wave", "campaign_id", "starts_on", "ends_on"]], on="campaign_id")
    )
    first = p.loc[p["purchase_number"] == 1].set_index("member_id")["purchased_on"]
    f = pd.Series(first.reindex(part["member_id"]).to_numpy(), index=part.index)
    part["new"] = (f >= part["starts_on"]) & (f <= part["ends_on"])
    before = _adjacent_purchase(part, p, part["starts_on"], "backward")
    part["reactivated"] = ~part["new"] & (
        before.isna() | ((part["starts_on"] - before).dt.days > rules.lapse_days)
    )
    after = _adjacent_purchase(part, p, part["ends_on"], "forward")
    full = _adjacent_purchase(part, p.loc[~p["subsidized"]], part["ends_on"], "forward")
    eligible = (as_of - part["ends_on"]).dt.days >= outcome_days
    part["repurchased"] = ((after - part["ends_on"]).dt.days <= outcome_days) & eligible
    part["full_price"] = ((full - part["ends_on"]).dt.days <= outcome_days) & eligible
    keys = ["wave"]
    if cohorts is not None:
        part = lookup_member_columns(part, ["subsidy_cohort"], _cohort_lookup(cohorts, None))
        keys.append("subsidy_cohort")
    agg = part.groupby(keys, sort=True).agg(
        participants=("member_id", "size"), new_members=("new", "sum"),
        reactivated_members=("reactivated", "sum"), subsidy=("subsidy", "sum"),
        revenue_net_of_subsidy=("revenue_net_of_subsidy", "sum"),
        repurchased=("repurchased", "sum"), repurchased_full_price=("full_price", "sum"),
    ).reset_index()  # fmt: skip
    agg = waves.merge(agg, on="wave", how="left" if cohorts is None else "inner")
    counts = ["participants", "new_members", "reactivated_members", "repurchased",
              "repurchased_full_price"]  # fmt: skip
    agg[counts] = agg[counts].fillna(0).astype("int64")
    agg[["subsidy", "revenue_net_of_subsidy"]] = agg[["subsidy", "revenue_net_of_subsidy"]].fillna(
        0.0
    )
    complete = ((as_of - agg["ends_on"]).dt.days >= outcome_days).to_numpy()
    agg["days"] = outcome_days
    agg["repurchase_rate"] = ratio(agg["repurchased"], agg["participants"]).where(complete)
    agg["full_price_repurchase_rate"] = ratio(
        agg["repurchased_full_price"], agg["participants"]
    ).where(complete)
    agg["subsidy_per_participant"] = ratio(agg["subsidy"], agg["participants"])
    agg["subsidy_per_retained_member"] = ratio(
        agg["subsidy"], agg["repurchased_full_price"]
    ).where(complete)
    return agg


def _adjacent_purchase(
    part: pd.DataFrame, p: pd.DataFrame, at: pd.Series, direction: str
) -> pd.Series:
    """Per participant row, the member's nearest purchase strictly before (``backward``) or
    strictly after (``forward``) the date ``at``; NaT when none."""
    left = pd.DataFrame(
        {
            "_row": np.arange(len(part)),
            # Same id dtype on both sides: merge_asof refuses an empty column of another one.
            "member_id": part["member_id"].astype(p["member_id"].dtype).array,
            "at": at.to_numpy(),
        }
    ).sort_values("at", kind="stable")
    right = p[["member_id", "purchased_on"]].sort_values("purchased_on", kind="stable")
    right = right.assign(found=right["purchased_on"])
    hit = pd.merge_asof(
        left, right, left_on="at", right_on="purchased_on", by="member_id",
        direction=direction, allow_exact_matches=False,
    )  # fmt: skip
    return pd.Series(hit.sort_values("_row")["found"].to_numpy(), index=part.index)


# --------------------------------------------------------------------------- plots
