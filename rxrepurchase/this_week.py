""""This week": the short list of actions that opens every store report.

Each action says whom, how many, through which channel and with which kind of offer. The
figures come from the analysis the report's sections already hold (refill predictions, the
wake-up list, the subsidy cohorts, the orders); this module only chooses and counts.

Rules (one place each):

- **Channel**: WeChat when the member has a ``wechat_id``, else SMS when they have a ``phone``,
  else in store (:func:`contact_channel`).
- **Offer**: members the subsidy cohorts call ``subsidy_driven`` (they buy almost only on
  coupons) never get a coupon here; a refill reminder to a chronic patient comes with a coupon
  otherwise; the top tier gets member care (a call or a service, not a discount).
- **Top members**: not the whole top 20% (hundreds of members a store) but those of them
  whose visits slowed (:func:`slowed_top_members`), largest spenders first.
- **Evening offer**: proposed only when the store's busiest two-hour window of the last
  ``period_days`` starts at or after 17 h and carries at least ``peak_ratio`` times the
  average two-hour share of the hours the store sells in (:func:`evening_peak`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.errors import ThisWeekError
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "ACTIONS",
    "CHANNELS",
    "ThisWeekError",
    "WIN_BACK_MIN_DAYS",
    "contact_channel",
    "SLOWED_FACTOR",
    "evening_peak",
    "slowed_top_members",
    "this_week_actions",
    "top_members",
]

ACTIONS: tuple[str, ...] = ("refill_reminder", "win_back", "top_care", "evening_offer")
"""The actions, in the order the page lists them."""

CHANNELS: tuple[str, ...] = ("wechat", "sms", "in_store")

WIN_BACK_MIN_DAYS = 14
"""Members who bought more recently than this many days are not won back."""

NO_COUPON_COHORT = "subsidy_driven"
"""Subsidy cohort that is never offered a (deep) coupon."""


def _require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    require_columns(frame, columns, name, error=ThisWeekError)


def _filled(values: pd.Series) -> pd.Series:
    return values.notna() & (values.astype("string").str.strip().fillna("") != "")


def contact_channel(members: pd.DataFrame) -> pd.Series:
    """Channel per member (indexed by ``member_id``): ``wechat``, ``sms`` or ``in_store``."""
    _require(members, "members", ["member_id"])
    wechat = _filled(members["wechat_id"]) if "wechat_id" in members else False
    phone = _filled(members["phone"]) if "phone" in members else False
    channel = np.where(wechat, "wechat", np.where(phone, "sms", "in_store"))
    return pd.Series(channel, index=pd.Index(members["member_id"], name="member_id"),
                     name="channel")


@renamed_keywords(end="as_of")
def top_members(orders: pd.DataFrame, top: float = 0.2, *, as_of=None) -> pd.Index:
    """The top ``top`` share of members by what they paid (``paid_amount``) up to ``as_of``
    (its whole day included; every order when None).

    The same ranking as :func:`rxrepurchase.metrics.pareto_share`'s
    ``revenue_net_of_subsidy`` measure: ``ceil(top x members)`` members, ties broken by
    member_id, so the list's size is the top group the report's segment section counts.
    """
    _require(orders, "orders", ["member_id", "ordered_at", "paid_amount"])
    frame = orders.loc[orders["member_id"].notna()]
    if as_of is not None:
        frame = frame.loc[frame["ordered_at"].dt.normalize() <= pd.Timestamp(as_of).normalize()]
    paid = frame.groupby("member_id", observed=True)["paid_amount"].sum().reset_index()
    paid = paid.sort_values(["paid_amount", "member_id"], ascending=[False, True])
    n_top = int(np.ceil(len(paid) * top - 1e-9))
    return pd.Index(paid["member_id"].iloc[:n_top], name="member_id")


SLOWED_FACTOR = 1.5
"""A top member has slowed when their last purchase is longer ago than this many times their
usual (median) interval between purchases."""


@renamed_keywords(active_days="period_days")
def slowed_top_members(orders: pd.DataFrame, as_of, *, top: float = 0.2,
                       factor: float = SLOWED_FACTOR, period_days: int = 90) -> pd.DataFrame:
    """The top ``top`` members (:func:`top_members`) whose visits slowed: at least two
    purchases (member-days, :func:`rxrepurchase.metrics.purchases`) up to ``as_of``, the days
    since the last one more than ``factor`` times their median interval between purchases, and
    the last one within the ``period_days`` days ending ``as_of`` (the report period). A member
    with one purchase has no rhythm to fall behind; one gone longer than ``period_days`` has
    lapsed and is the wake-up lists' to win back, not a call about a slower rhythm.

    Returns
    -------
    DataFrame
        ``member_id, paid`` (what they paid up to ``as_of``), ``purchases``, ``usual_gap_days``
        (median interval), ``days_since_last``, ordered by ``paid``, largest first (ties by
        member id). ``attrs["top_members"]`` is the size of the top group.
    """
    from rxrepurchase.metrics import purchases

    if factor <= 0:
        raise ThisWeekError(f"factor must be positive, got {factor}")
    best = top_members(orders, top, as_of=as_of)
    end = pd.Timestamp(as_of).normalize()
    mine = orders.loc[orders["member_id"].isin(best) & (orders["ordered_at"].dt.normalize() <= end)]
    bought = purchases(mine)
    gaps = bought.groupby("member_id", observed=True)["purchased_on"].agg(
        purchases="size", last="max",
        usual_gap_days=lambda d: d.diff().dt.days.median())
    paid = mine.groupby("member_id", observed=True)["paid_amount"].sum().rename("paid")
    table = gaps.join(paid).reset_index()
    table["days_since_last"] = (end - table["last"]).dt.days
    slowed = table.loc[(table["purchases"] >= 2)
                       & (table["days_since_last"] > factor * table["usual_gap_days"])
                       & (table["days_since_last"] < period_days)]
    slowed = slowed.sort_values(["paid", "member_id"], ascending=[False, True])
    out = slowed[["member_id", "paid", "purchases", "usual_gap_days", "days_since_last"]]
    out = out.reset_index(drop=True)
    out.attrs = {"top_members": len(best), "factor": factor}
    return out


def evening_peak(orders: pd.DataFrame, as_of, *, period_days: int = 90, width: int = 2,
                 evening_from: int = 17, peak_ratio: float = 1.5) -> dict | None:
    """The store's evening peak over the last ``period_days``, or None when there is none.

    The busiest ``width``-hour window of member orders
    (:func:`rxrepurchase.readings.busiest_hours`) is an evening peak when it starts at or after
    ``evening_from`` and its share of orders is at least ``peak_ratio`` times the mean share of
    a ``width``-hour window over the hours with any order.

    Returns
    -------
    dict or None
        ``start`` and ``end`` hour (end exclusive), ``share`` of orders in the window,
        ``ratio`` to the mean window, ``members`` (distinct members who ordered in the window)
        and ``member_ids``.
    """
    # Imported here: readings loads the core (Ibis), which a report kernel that only words a
    # computed "This week" (report_data.this_week_html) does not need.
    from rxrepurchase.readings import busiest_hours

    peak = busiest_hours(orders, as_of, period_days=period_days, width=width)
    if peak is None or peak["start"] < evening_from or peak["ratio"] < peak_ratio:
        return None
    return {**peak, "members": len(peak["member_ids"])}


def _row(action: str, offer: str, ids: pd.Index, channel: pd.Series, **extra) -> dict:
    by_channel = channel.reindex(ids).fillna("in_store").value_counts()
    return {"action": action, "offer": offer, "members": len(ids),
            **{c: int(by_channel.get(c, 0)) for c in CHANNELS}, **extra}


@renamed_keywords(horizons=("soon_days", "horizon_days"))
def this_week_actions(
    *,
    predictions: pd.DataFrame,
    members: pd.DataFrame,
    cohorts: pd.DataFrame,
    orders: pd.DataFrame,
    as_of,
    wake_up: pd.DataFrame | None = None,
    refill_list: pd.DataFrame | None = None,
    soon_days: int = 7,
    horizon_days: int = 14,
    top: float = 0.2,
    win_back_min_days: int = WIN_BACK_MIN_DAYS,
    period_days: int = 90,
) -> pd.DataFrame:
    """The store's actions for this week, one row per action and offer.

    Parameters
    ----------
    predictions : DataFrame
        :func:`rxrepurchase.refill.predict_refills` rows of the store's members
        (``member_id, rhythm, days_until_due``).
    members : DataFrame
        Members table (``member_id``; ``wechat_id``, ``phone`` when present).
    cohorts : DataFrame
        :func:`rxrepurchase.cohorts.classify_members` output (``member_id, subsidy_cohort``).
    orders : DataFrame
        The store's orders (``member_id, ordered_at, paid_amount``).
    as_of : date-like
    wake_up : DataFrame, optional
        :func:`rxrepurchase.models.wake_up_list` with ``member_id`` as a column
        (``value_at_risk, p_alive_now, days_since_last_purchase``); None when the store could
        not be modelled (no win-back row then).
    refill_list : DataFrame, optional
        The store's refill reminder list (:func:`rxrepurchase.refill.refill_targets` rows,
        ``member_id, days_until_due``). When given, the reminders are exactly its rows, so
        the page counts what the list file holds (the default list picks by chance of a
        refill, so it can hold pairs due after ``horizon_days`` days and overdue ones);
        otherwise the predictions' repeat pairs due within ``horizon_days`` days.
    soon_days : int
        Refill reminders due within this many days are counted apart (``members_soon``).
    horizon_days : int
        The look-ahead of the refill reminders made from the predictions (when no
        ``refill_list`` is given).
    top : float
        Share of members by what they paid whose slowed members are looked after.
    win_back_min_days : int
        Members who bought more recently than this are not won back.
    period_days : int
        Window of the evening peak; top members not seen for this long are not "slowed" but
        lapsed (:func:`slowed_top_members`).

    Returns
    -------
    DataFrame
        ``action`` (:data:`ACTIONS`), ``offer``, ``members`` (distinct members), ``wechat``,
        ``sms``, ``in_store`` (members per channel), and per action: ``members_soon``
        (refills: due within ``soon_days`` days), ``items`` (refills: member x products),
        ``expected_value`` (win back: sum of value at risk x probability still active),
        ``top_members`` (top care: the size of the top group; ``members`` are those of it
        whose visits slowed, :func:`slowed_top_members`),
        ``hours``, ``share``, ``ratio`` (evening offer: ``"19–21"``, its share of orders and
        ratio to the mean window, see :func:`evening_peak`). Ordered as :data:`ACTIONS`; an action the data
        does not support has no row. ``attrs["top_members"]``: the size of the top group.
    """
    _require(predictions, "predictions", ["member_id", "rhythm", "days_until_due"])
    _require(cohorts, "cohorts", ["member_id", "subsidy_cohort"])
    if not 0 < soon_days <= horizon_days:
        raise ThisWeekError(f"soon_days and horizon_days must be 0 < soon_days <= horizon_days, "
                            f"got {soon_days} and {horizon_days}")
    channel = contact_channel(members)
    no_coupon = set(cohorts.loc[cohorts["subsidy_cohort"] == NO_COUPON_COHORT, "member_id"])
    rows = []

    if refill_list is not None:
        _require(refill_list, "refill_list", ["member_id", "days_until_due"])
        due = refill_list
    else:
        due = predictions.loc[(predictions["rhythm"] == "repeat")
                              & predictions["days_until_due"].between(0, horizon_days)]
    for offer, keep in (("reminder_coupon", False), ("reminder_only", True)):
        part = due.loc[due["member_id"].isin(no_coupon) == keep]
        ids = pd.Index(part["member_id"].unique(), name="member_id")
        if len(ids):
            soon_ids = part.loc[part["days_until_due"] <= soon_days, "member_id"].nunique()
            rows.append(_row("refill_reminder", offer, ids, channel, members_soon=soon_ids,
                             items=len(part)))

    if wake_up is not None and not wake_up.empty:
        _require(wake_up, "wake_up", ["member_id", "value_at_risk", "p_alive_now",
                                      "days_since_last_purchase"])
        lapsing = wake_up.loc[(wake_up["value_at_risk"] > 0)
                              & (wake_up["days_since_last_purchase"] >= win_back_min_days)]
        lapsing = lapsing.assign(_expected=lapsing["value_at_risk"] * lapsing["p_alive_now"])
        lapsing = lapsing.sort_values(["_expected", "member_id"], ascending=[False, True])
        for offer, keep in (("win_back_coupon", False), ("win_back_no_coupon", True)):
            part = lapsing.loc[lapsing["member_id"].isin(no_coupon) == keep]
            if len(part):
                rows.append(_row("win_back", offer, pd.Index(part["member_id"]), channel,
                                 expected_value=float(part["_expected"].sum())))

    slowed = slowed_top_members(orders, as_of, top=top, period_days=period_days)
    if len(slowed):
        rows.append(_row("top_care", "member_care", pd.Index(slowed["member_id"]), channel,
                         top_members=slowed.attrs["top_members"]))

    peak = evening_peak(orders, as_of, period_days=period_days)
    if peak is not None:
        rows.append(_row("evening_offer", "evening_offer", peak["member_ids"], channel,
                         hours=f"{peak['start']}–{peak['end']}", share=peak["share"],
                         ratio=peak["ratio"]))

    columns = ["action", "offer", "members", *CHANNELS, "members_soon", "items",
               "expected_value", "top_members", "hours", "share", "ratio"]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs = {"top_members": slowed.attrs["top_members"]}
    return out
