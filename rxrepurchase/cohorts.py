"""Subsidy-driven vs loyal members: a transparent rule-based classifier and cohort comparisons.

Pharmacy chains buy new members with coupons and low prices (薅羊毛 coupon hunters come for
the subsidy and leave when it stops); loyal members, often chronic-disease patients, come back
at full price. :func:`classify_members` puts every member in one *subsidy cohort*:

``new``
    First purchase less than ``rules.new_member_days`` before ``as_of``: too early to tell.
``subsidy_driven``
    Otherwise, when at least ``rules.min_subsidy_signals`` of the five subsidy signals fire.
``occasional``
    Otherwise, when the member is not a *regular* buyer: buys when ill (acute medication).
``loyal``
    A regular buyer with at most ``rules.loyal_max_subsidized_share`` of purchases subsidised.
``mixed``
    A regular buyer with more subsidy than that, but too little to call subsidy-driven.

A *regular* buyer has at least ``rules.loyal_min_purchases`` purchases and either buys at least
``rules.loyal_min_monthly_purchases`` times per 30 days since the first purchase, or made at
least ``rules.loyal_min_regular_purchases`` purchases of chronic-disease medication or
regularly taken health products (``order_lines.is_chronic``; needs ``order_lines``).

The five signals (each member's values are in the classifier's output, and
:func:`explain_member` spells them out) are: the first purchase was subsidised; the share of
purchases subsidised; the average discount depth; the share of purchases made inside campaign
windows; and buying stopped after the last subsidised purchase. Every threshold is a field of
:class:`CohortRules` with its default documented there and in ``docs/metrics.md``.

Purchases follow the rules of :mod:`rxrepurchase.metrics` (one purchase per member-day,
walk-ins and zero-paid / refund orders excluded); a purchase is *subsidised* when any of its
orders carries a coupon or a campaign, or its discount depth reaches
``rules.subsidized_min_discount``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.errors import DataContractError
from rxrepurchase.metrics import (
    MetricsInputError,
    _as_list,
    _default_as_of,
    _is_purchase,
    _lookup_member_columns,
    _ratio,
)

__all__ = [
    "COHORTS",
    "CohortRules",
    "subsidized_purchases",
    "classify_members",
    "explain_member",
    "compare_cohorts",
    "post_subsidy_repurchase",
    "promotion_waves",
    "wave_response",
    "plot_cohort_comparison",
    "plot_wave_response",
]

COHORTS: tuple[str, ...] = ("loyal", "mixed", "occasional", "subsidy_driven", "new")
"""The subsidy cohorts, in the order tables and plots show them."""

_ORDER_COLUMNS = (
    "order_id", "member_id", "ordered_at", "gross_amount", "discount_amount", "paid_amount",
    "coupon_id", "campaign_id",
)  # fmt: skip


@dataclass(frozen=True)
class CohortRules:
    """Thresholds of the subsidy-cohort classifier (all in one place, all documented).

    Parameters
    ----------
    subsidized_min_discount : float, default 0.15
        A purchase without coupon or campaign still counts as subsidised when its discount is at
        least this share of the list price. Routine member prices (a few percent) stay below.
    new_member_days : int, default 30
        Members whose first purchase is fewer days than this before ``as_of`` are ``new``.
    subsidized_share_high : float, default 0.5
        Signal: at least this share of the member's purchases are subsidised.
    discount_depth_high : float, default 0.15
        Signal: the member's total discount is at least this share of their total list-price
        spend.
    campaign_window_share_high : float, default 0.8
        Signal: at least this share of purchases fall on days a campaign was running.
    campaign_window_max_days : int, default 62
        Campaigns running longer than this are standing programmes (birthday gifts, member
        days all year), not promotion windows, and do not count for the signal above.
    lapse_days : int, default 90
        Signal "stopped after subsidy": the last purchase was subsidised and nothing was bought
        in the ``lapse_days`` days since (up to ``as_of``).
    min_subsidy_signals : int, default 3
        A member is ``subsidy_driven`` when at least this many of the five signals fire.
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

    subsidized_min_discount: float = 0.15
    new_member_days: int = 30
    subsidized_share_high: float = 0.5
    discount_depth_high: float = 0.15
    campaign_window_share_high: float = 0.8
    campaign_window_max_days: int = 62
    lapse_days: int = 90
    min_subsidy_signals: int = 3
    loyal_min_purchases: int = 2
    loyal_min_monthly_purchases: float = 1.0
    loyal_min_regular_purchases: int = 2
    loyal_max_subsidized_share: float = 0.35

    def __post_init__(self) -> None:
        for name in ("subsidized_min_discount", "subsidized_share_high", "discount_depth_high",
                     "campaign_window_share_high", "loyal_max_subsidized_share"):  # fmt: skip
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise MetricsInputError(
                    f"CohortRules.{name} must be a share in [0, 1], got {value!r}"
                )
        for name in ("new_member_days", "campaign_window_max_days", "lapse_days",
                     "loyal_min_purchases", "loyal_min_monthly_purchases",
                     "loyal_min_regular_purchases"):  # fmt: skip
            if getattr(self, name) < 0:
                raise MetricsInputError(f"CohortRules.{name} must not be negative")
        if not 1 <= self.min_subsidy_signals <= len(SIGNALS):
            raise MetricsInputError(
                f"CohortRules.min_subsidy_signals must be 1..{len(SIGNALS)}, "
                f"got {self.min_subsidy_signals!r}"
            )

    def to_frame(self) -> pd.DataFrame:
        """The thresholds as a table (``rule, value, meaning``) for reports."""
        doc = {f.name: _RULE_MEANING[f.name] for f in fields(self)}
        return pd.DataFrame(
            [(k, v, doc[k]) for k, v in asdict(self).items()], columns=["rule", "value", "meaning"]
        )


_RULE_MEANING = {
    "subsidized_min_discount": "discount share of list price that makes a purchase subsidised",
    "new_member_days": "first purchase fewer days ago than this: new",
    "subsidized_share_high": "signal: share of purchases subsidised at least",
    "discount_depth_high": "signal: total discount / list-price spend at least",
    "campaign_window_share_high": "signal: share of purchases inside campaign windows at least",
    "campaign_window_max_days": "campaigns longer than this are standing programmes, not windows",
    "lapse_days": "signal: last purchase subsidised and none for this many days",
    "min_subsidy_signals": "signals needed for subsidy_driven",
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


# --------------------------------------------------------------------------- purchases


def _campaign_days(
    orders: pd.DataFrame, campaigns: pd.DataFrame | None, max_days: int
) -> np.ndarray:
    """Sorted, merged ``[start, end]`` day-number intervals when any campaign of at most
    ``max_days`` days ran.

    Without a campaigns table the windows come from the orders: each campaign id runs from its
    first to its last order.
    """
    if campaigns is not None:
        require_columns(campaigns, ["campaign_id", "starts_on", "ends_on"], "campaigns")
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


def _has_regular_product(orders: pd.DataFrame, order_lines: pd.DataFrame | None) -> np.ndarray:
    if order_lines is None:
        return np.zeros(len(orders), dtype=bool)
    require_columns(order_lines, ["order_id", "is_chronic"], "order_lines")
    regular = order_lines.loc[order_lines["is_chronic"].to_numpy(dtype=bool), "order_id"]
    return orders["order_id"].isin(regular.unique()).to_numpy()


def subsidized_purchases(
    orders: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    *,
    order_lines: pd.DataFrame | None = None,
    rules: CohortRules | None = None,
    within: Sequence[str] = (),
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
        ``subsidized_min_discount`` and ``campaign_window_max_days`` apply.
    within : sequence of str
        Order columns (``store_id``, ``channel``) that split a member's history: a purchase is
        one member-day *per group*, and ``purchase_number`` counts within the group (a member
        buying first in store A, then in store B, makes a first purchase in each).

    Returns
    -------
    DataFrame
        ``member_id``, the ``within`` columns, ``purchased_on, gross_amount, discount_amount,
        paid_amount, subsidized, in_campaign_window, regular_product, purchase_number``, sorted
        by member, group and date.
    """
    rules = rules or CohortRules()
    within = list(within)
    require_columns(orders, [*_ORDER_COLUMNS, *within], "orders")
    keep = orders["member_id"].notna().to_numpy() & _is_purchase(orders, "exclude")
    o = orders.loc[keep]
    gross = o["gross_amount"].to_numpy("float64")
    depth = np.divide(
        o["discount_amount"].to_numpy("float64"), gross, out=np.zeros(len(o)), where=gross > 0
    )
    flag = (
        o["coupon_id"].notna().to_numpy()
        | o["campaign_id"].notna().to_numpy()
        | (depth >= rules.subsidized_min_discount)
    )
    frame = pd.DataFrame(
        {
            "member_id": o["member_id"].to_numpy(),
            **{c: o[c].array for c in within},
            "purchased_on": o["ordered_at"].dt.normalize().to_numpy(),
            "gross_amount": gross,
            "discount_amount": o["discount_amount"].to_numpy("float64"),
            "paid_amount": o["paid_amount"].to_numpy("float64"),
            "subsidized": flag,
            "regular_product": _has_regular_product(o, order_lines),
        }
    )
    p = (
        frame.groupby(["member_id", *within, "purchased_on"], sort=True, dropna=False)
        .agg(
            gross_amount=("gross_amount", "sum"),
            discount_amount=("discount_amount", "sum"),
            paid_amount=("paid_amount", "sum"),
            subsidized=("subsidized", "any"),
            regular_product=("regular_product", "any"),
        )
        .reset_index()
    )
    days = p["purchased_on"].to_numpy("datetime64[D]").astype("int64")
    p["in_campaign_window"] = _in_intervals(
        days, _campaign_days(orders, campaigns, rules.campaign_window_max_days)
    )
    member = p.groupby(["member_id", *within], sort=False, dropna=False)
    p["purchase_number"] = member.cumcount() + 1
    return p


# --------------------------------------------------------------------------- classifier


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
        Thresholds (default :class:`CohortRules`).

    Returns
    -------
    DataFrame
        One row per member: ``member_id, subsidy_cohort, first_purchase_on, last_purchase_on,
        purchases, subsidized_purchases, subsidized_share, discount_depth,
        campaign_window_share``, the five boolean signals (:data:`SIGNALS`),
        ``subsidy_signals`` (how many fired), ``monthly_purchases``, ``regular_purchases``
        (with a chronic / regular product) and ``regular_buyer``.
    """
    rules = rules or CohortRules()
    as_of = _default_as_of(orders, as_of)
    p = subsidized_purchases(orders, campaigns, order_lines=order_lines, rules=rules)
    g = p.groupby("member_id", sort=True)
    m = g.agg(
        first_purchase_on=("purchased_on", "first"),
        last_purchase_on=("purchased_on", "last"),
        purchases=("purchased_on", "size"),
        subsidized_purchases=("subsidized", "sum"),
        gross=("gross_amount", "sum"),
        discount=("discount_amount", "sum"),
        in_window=("in_campaign_window", "sum"),
        first_sub=("subsidized", "first"),
        last_sub=("subsidized", "last"),
        regular_purchases=("regular_product", "sum"),
    )
    m["subsidized_share"] = m["subsidized_purchases"] / m["purchases"]
    m["discount_depth"] = _ratio(m["discount"], m["gross"]).fillna(0.0)
    m["campaign_window_share"] = m["in_window"] / m["purchases"]
    m["first_purchase_subsidized"] = m["first_sub"].astype(bool)
    m["mostly_subsidized"] = m["subsidized_share"] >= rules.subsidized_share_high
    m["deep_discount"] = m["discount_depth"] >= rules.discount_depth_high
    m["campaign_window_buyer"] = m["campaign_window_share"] >= rules.campaign_window_share_high
    idle = (as_of - m["last_purchase_on"]).dt.days
    m["stopped_after_subsidy"] = m["last_sub"].astype(bool) & (idle >= rules.lapse_days)
    m["subsidy_signals"] = m[list(SIGNALS)].sum(axis=1).astype("int64")
    tenure = (as_of - m["first_purchase_on"]).dt.days
    m["monthly_purchases"] = m["purchases"] / np.maximum(tenure, 30) * 30
    m["regular_purchases"] = m["regular_purchases"].astype("int64")
    m["regular_buyer"] = (m["purchases"] >= rules.loyal_min_purchases) & (
        (m["monthly_purchases"] >= rules.loyal_min_monthly_purchases)
        | (m["regular_purchases"] >= rules.loyal_min_regular_purchases)
    )
    m["subsidy_cohort"] = np.select(
        [
            tenure < rules.new_member_days,
            m["subsidy_signals"] >= rules.min_subsidy_signals,
            ~m["regular_buyer"],
            m["subsidized_share"] <= rules.loyal_max_subsidized_share,
        ],
        ["new", "subsidy_driven", "occasional", "loyal"],
        default="mixed",
    )
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
    return out


def explain_member(
    classified: pd.DataFrame, member_id: str, rules: CohortRules | None = None
) -> str:
    """Say in plain words why a member got their subsidy cohort.

    Parameters
    ----------
    classified : DataFrame
        Output of :func:`classify_members` (with the same ``rules``).
    member_id : str
        The member.
    rules : CohortRules, optional
        The thresholds the classification used (default :class:`CohortRules`).

    Returns
    -------
    str
        One line for the verdict, one per signal (value, threshold, fired or not) and one for
        the deciding rule.
    """
    rules = rules or CohortRules()
    hit = classified.loc[classified["member_id"] == member_id]
    if hit.empty:
        raise MetricsInputError(f"member_id {member_id!r} is not in the classified members")
    r = hit.iloc[0]
    label = r["subsidy_cohort"]
    if label == "no_purchase":
        return f"member {member_id}: no_purchase — no counted purchase in the orders."
    mark = {True: "YES", False: "no "}
    lines = [
        f"member {member_id}: {label} — {r['purchases']} purchases from "
        f"{r['first_purchase_on']:%Y-%m-%d} to {r['last_purchase_on']:%Y-%m-%d}, "
        f"{r['subsidized_purchases']} subsidised",
        f"  [{mark[bool(r['first_purchase_subsidized'])]}] first purchase subsidised",
        f"  [{mark[bool(r['mostly_subsidized'])]}] subsidised share {r['subsidized_share']:.0%} "
        f"(signal at >= {rules.subsidized_share_high:.0%})",
        f"  [{mark[bool(r['deep_discount'])]}] discount depth {r['discount_depth']:.0%} "
        f"(signal at >= {rules.discount_depth_high:.0%})",
        f"  [{mark[bool(r['campaign_window_buyer'])]}] share bought inside campaign windows "
        f"{r['campaign_window_share']:.0%} (signal at >= {rules.campaign_window_share_high:.0%})",
        f"  [{mark[bool(r['stopped_after_subsidy'])]}] last purchase subsidised and none for "
        f">= {rules.lapse_days} days",
        f"  regular buyer: {'YES' if r['regular_buyer'] else 'no'} — {r['purchases']} purchases "
        f"(needs >= {rules.loyal_min_purchases}) and {r['monthly_purchases']:.2f} per 30 days "
        f"(needs >= {rules.loyal_min_monthly_purchases}) or {r['regular_purchases']} with a "
        f"chronic / regular product (needs >= {rules.loyal_min_regular_purchases})",
    ]
    n = int(r["subsidy_signals"])
    few = f"{n} of {len(SIGNALS)} signals (< {rules.min_subsidy_signals})"
    reason = {
        "new": f"first purchase fewer than {rules.new_member_days} days before the analysis date",
        "subsidy_driven": f"{n} of {len(SIGNALS)} signals fired (>= {rules.min_subsidy_signals})",
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


def compare_cohorts(
    orders: pd.DataFrame,
    cohorts: pd.DataFrame | pd.Series,
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
    as_of=None,
    days: int = 90,
    rules: CohortRules | None = None,
) -> pd.DataFrame:
    """The cohort comparison table: repurchase, spend, subsidy and what is left of it.

    Over all orders up to ``as_of``, per subsidy cohort (and ``by`` group, e.g. ``store_id``):
    ``members`` (with a purchase), ``user_repurchase_rate`` and ``order_repurchase_rate``
    (see :mod:`rxrepurchase.metrics`), ``repurchase_within_days`` (N-day repurchase after the
    first purchase, N = ``days``), ``repurchase_after_last_subsidy`` (bought again within
    ``days`` of the last subsidised purchase: the drop when the subsidy stops), and per member
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
    days : int
        Horizon of the two repurchase-within columns.
    rules : CohortRules, optional
        Only ``subsidized_min_discount`` matters here (what counts as a subsidised purchase).
    """
    from rxrepurchase.metrics import repurchase_rates

    by = _as_list(by)
    as_of = _default_as_of(orders, as_of)
    orders = orders.loc[orders["ordered_at"].dt.normalize() <= as_of]
    lookup = _cohort_lookup(cohorts, members)
    keys = [*by, "subsidy_cohort"]
    first = orders["ordered_at"].min().normalize()
    rates = repurchase_rates(orders, (first, as_of), keys, members=lookup)
    rates = rates.set_index(keys)[
        ["members", "repeat_members", "user_repurchase_rate", "order_repurchase_rate"]
    ]
    # The post-subsidy step also gives the N-day repurchase after the first purchase, counted
    # within order-column groups (metrics.n_day_repurchase keys those on the first purchase).
    post = post_subsidy_repurchase(
        orders, cohorts, [days], by, members=members, campaigns=campaigns, as_of=as_of,
        rules=rules,
    ).set_index(keys)  # fmt: skip
    member_orders = orders.loc[orders["member_id"].notna()]
    money_cols = ["gross_amount", "discount_amount", "paid_amount"]
    frame = member_orders[["member_id", *money_cols, *[c for c in by if c in orders.columns]]]
    frame = _lookup_member_columns(frame, keys, lookup)
    money = frame.groupby(keys, dropna=False)[money_cols].sum()
    table = rates.join(money, how="left")
    table["repurchase_within_days"] = post["after_first_rate"]
    table["repurchase_after_last_subsidy"] = post["after_last_subsidy_rate"]
    table["spend_per_member"] = table["gross_amount"] / table["members"]
    table["subsidy_per_member"] = table["discount_amount"] / table["members"]
    table["revenue_net_of_subsidy_per_member"] = table["paid_amount"] / table["members"]
    table["subsidy_per_retained_member"] = _ratio(table["discount_amount"], table["repeat_members"])
    table["subsidy_rate"] = _ratio(table["discount_amount"], table["gross_amount"])
    table = table.rename(
        columns={"gross_amount": "spend", "discount_amount": "subsidy",
                 "paid_amount": "revenue_net_of_subsidy"}
    ).reset_index()  # fmt: skip
    table.insert(len(keys), "days", days)
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


def post_subsidy_repurchase(
    orders: pd.DataFrame,
    cohorts: pd.DataFrame | pd.Series,
    days: Sequence[int] = (30, 60, 90),
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
    as_of=None,
    rules: CohortRules | None = None,
) -> pd.DataFrame:
    """Repurchase after the first purchase vs after the last subsidised one (the subsidy drop).

    For each cohort and horizon N: among members whose first purchase is at least N days old,
    the share who bought again within N days (``after_first_rate``); among members with a
    subsidised purchase whose *last* subsidised purchase is at least N days old, the share who
    bought anything within N days after it (``after_last_subsidy_rate``). ``drop`` is the
    difference: how much repurchase falls once the subsidy stops.

    ``by`` names member columns (``tier``; looked up in ``members``) or order columns
    (``store_id``, ``channel``): these split each member's history, so a member's first
    purchase, last subsidised purchase and the purchase after it are all counted within the
    group, as if ``orders`` held only that group's orders.
    """
    by = _as_list(by)
    as_of = _default_as_of(orders, as_of)
    horizons = [int(d) for d in days]
    if not horizons or min(horizons) <= 0:
        raise MetricsInputError(f"days must be positive whole numbers, got {days!r}")
    within = [c for c in by if c in orders.columns]
    p = subsidized_purchases(orders.loc[orders["ordered_at"].dt.normalize() <= as_of], campaigns,
                             rules=rules, within=within)  # fmt: skip
    lookup = _cohort_lookup(cohorts, members)
    history = ["member_id", *within]
    p["next_on"] = p.groupby(history, sort=False, dropna=False)["purchased_on"].shift(-1)
    cols = [*history, "purchased_on", "next_on"]
    first = p.loc[p["purchase_number"] == 1, cols]
    last_sub = p.loc[p["subsidized"]].groupby(history, sort=False, dropna=False).tail(1)[cols]
    keys = [*by, "subsidy_cohort"]
    parts = []
    for kind, frame in (("after_first", first), ("after_last_subsidy", last_sub)):
        frame = _lookup_member_columns(frame.reset_index(drop=True), keys, lookup)
        age = (as_of - frame["purchased_on"]).dt.days.to_numpy()
        gap = (frame["next_on"] - frame["purchased_on"]).dt.days.to_numpy()
        for h in horizons:
            eligible = age >= h
            parts.append(
                frame[keys].assign(
                    days=h,
                    kind=kind,
                    eligible=eligible.astype("int64"),
                    repurchased=(eligible & (gap <= h)).astype("int64"),
                )  # fmt: skip
            )
    long = pd.concat(parts, ignore_index=True)
    agg = long.groupby([*keys, "days", "kind"], dropna=False)[["eligible", "repurchased"]].sum()
    wide = agg.unstack("kind")
    out = pd.DataFrame(index=wide.index)
    for kind in ("after_first", "after_last_subsidy"):
        e = wide.get(("eligible", kind), pd.Series(0, index=wide.index)).fillna(0).astype("int64")
        r = wide.get(("repurchased", kind), pd.Series(0, index=wide.index)).fillna(0)
        out[f"{kind}_eligible"] = e
        out[f"{kind}_rate"] = _ratio(r, e)
    out["drop"] = out["after_first_rate"] - out["after_last_subsidy_rate"]
    return _sort_cohorts(out.reset_index(), [*by, "days"])


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


def wave_response(
    orders: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    cohorts: pd.DataFrame | pd.Series | None = None,
    *,
    kinds: Sequence[str] | None = None,
    days: int = 90,
    as_of=None,
    rules: CohortRules | None = None,
) -> pd.DataFrame:
    """How members respond to successive promotion waves (the "spiral down").

    For every wave (see :func:`promotion_waves`): ``participants`` (members with a purchase
    carrying the campaign), ``new_members`` (their first purchase falls in the wave),
    ``reactivated_members`` (had bought before but not in the ``rules.lapse_days`` days before
    the wave), ``subsidy`` and ``revenue_net_of_subsidy`` on the wave's orders, and after the
    wave ends: ``repurchase_rate`` (any purchase within ``days``) and
    ``full_price_repurchase_rate`` (an unsubsidised purchase within ``days``: what the wave
    left behind), with ``subsidy_per_retained_member`` = subsidy / full-price repurchasers.
    Rates are NaN for waves that ended fewer than ``days`` days before ``as_of``.

    With ``cohorts`` (as in :func:`compare_cohorts`) the figures are per subsidy cohort too.
    Waves nobody in ``orders`` took part in (a store that did not run them) have zero counts
    and NaN rates; per cohort they have no rows.
    """
    rules = rules or CohortRules()
    as_of = _default_as_of(orders, as_of)
    orders = orders.loc[orders["ordered_at"].dt.normalize() <= as_of]
    waves = promotion_waves(campaigns, orders, kinds=kinds)
    p = subsidized_purchases(orders, campaigns, rules=rules)
    keep = orders["member_id"].notna().to_numpy() & _is_purchase(orders, "exclude")
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
    eligible = (as_of - part["ends_on"]).dt.days >= days
    part["repurchased"] = ((after - part["ends_on"]).dt.days <= days) & eligible
    part["full_price"] = ((full - part["ends_on"]).dt.days <= days) & eligible
    keys = ["wave"]
    if cohorts is not None:
        part = _lookup_member_columns(part, ["subsidy_cohort"], _cohort_lookup(cohorts, None))
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
    complete = ((as_of - agg["ends_on"]).dt.days >= days).to_numpy()
    agg["days"] = days
    agg["repurchase_rate"] = _ratio(agg["repurchased"], agg["participants"]).where(complete)
    agg["full_price_repurchase_rate"] = _ratio(
        agg["repurchased_full_price"], agg["participants"]
    ).where(complete)
    agg["subsidy_per_participant"] = _ratio(agg["subsidy"], agg["participants"])
    agg["subsidy_per_retained_member"] = _ratio(
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
