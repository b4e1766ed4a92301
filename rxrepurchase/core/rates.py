"""Repurchase rates per window and cohort retention as Ibis expressions.

Purchases come from :func:`rxrepurchase.core.purchases.purchases`; the definitions of the rates
are those of :mod:`rxrepurchase.metrics` (and ``docs/metrics.md``). Windows and calendar
periods are small tables made by the caller; the expressions join them on the purchase day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from rxrepurchase.core.purchases import (
    PurchaseUnit,
    ZeroPaid,
    is_purchase,
    member_orders,
    purchases,
)
from rxrepurchase.errors import MetricsInputError

__all__ = [
    "CALENDAR_FREQ",
    "cohorts",
    "in_windows",
    "inter_purchase_intervals",
    "member_span",
    "n_day_repurchase",
    "period_freq",
    "period_ordinal",
    "repurchase_rates",
    "with_member_columns",
]

CALENDAR_FREQ = {
    "D": "D",
    "W": "W",
    "M": "M",
    "ME": "M",
    "MS": "M",
    "Q": "Q",
    "QE": "Q",
    "QS": "Q",
    "Y": "Y",
    "YE": "Y",
    "YS": "Y",
    "A": "Y",
}
"""Calendar-period names pandas knows (end / start anchored, ``A``) to the period they mean."""

_COUNTS = ("members", "repeat_members", "purchases", "excluded_orders")
_UNITS = {"D": "D", "W": "W", "M": "M", "Q": "Q", "Y": "Y"}  # ibis truncate units


def with_member_columns(rows: ir.Table, members: ir.Table | None, columns: Sequence[str]) -> ir.Table:
    """``rows`` with the member ``columns`` joined from ``members`` on ``member_id``."""
    if not columns:
        return rows
    return rows.join(members.select("member_id", *columns), "member_id")


def in_windows(rows: ir.Table, windows: ir.Table, period: str | None = None) -> ir.Table:
    """``rows`` (with a purchase ``day``) joined to each window holding their day: a row of
    overlapping windows appears once per window.

    ``windows`` has ``window_id`` and inclusive dates ``window_start``, ``window_end``; with
    ``period`` (``"D"``, ``"W"``, ``"M"``, ``"Q"``, ``"Y"``) they are these calendar periods,
    each starting on its period's first day.
    """
    if period is not None:  # an equi-join on the period's start beats a range join
        rows = rows.mutate(_start=rows.day.truncate(_UNITS[period]))
        return rows.join(windows, rows._start == windows.window_start).drop("_start")
    return rows.join(windows, [rows.day >= windows.window_start, rows.day <= windows.window_end])


def member_span(orders: ir.Table) -> ir.Table:
    """One row: ``first`` and ``last`` ``ordered_at`` of member orders, ``earliest`` and
    ``latest`` of all orders."""
    member = orders.member_id.notnull()
    return orders.aggregate(
        first=orders.ordered_at.min(where=member),
        last=orders.ordered_at.max(where=member),
        earliest=orders.ordered_at.min(),
        latest=orders.ordered_at.max(),
    )


def repurchase_rates(
    orders: ir.Table,
    windows: ir.Table,
    *,
    by: Sequence[str] = (),
    members: ir.Table | None = None,
    member_columns: Sequence[str] = (),
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
    period: str | None = None,
) -> ir.Table:
    """Members, repeat members, purchases and excluded orders per window and group.

    Parameters
    ----------
    orders : ibis.Table
        The contract's orders.
    windows : ibis.Table
        ``window_id`` and inclusive dates ``window_start``, ``window_end``; windows may overlap
        (a purchase then counts in each).
    by : sequence of str
        Grouping columns: order columns, or ``member_columns`` looked up in ``members``.
        Purchases are counted within the group.
    purchase_unit, zero_paid
        The purchase definition (:func:`rxrepurchase.core.purchases.purchases`).
    period : {"D", "W", "M", "Q", "Y"}, optional
        When the windows are these calendar periods, each starting on its period's first day.

    Returns
    -------
    ibis.Table
        ``window_id, by..., members, repeat_members, purchases, excluded_orders`` for every
        window x group with a member order (``members`` may be 0: only excluded orders).
    """
    order_keys = [c for c in by if c not in member_columns]
    keys = ["window_id", *by]

    def windowed(rows: ir.Table) -> ir.Table:
        return in_windows(with_member_columns(rows, members, member_columns), windows, period)

    bought = windowed(purchases(orders, purchase_unit=purchase_unit, zero_paid=zero_paid,
                                keys=order_keys, amounts=()))  # fmt: skip
    per_member = bought.group_by([*keys, "member_id"]).aggregate(n=bought.count())
    zero = ibis.literal(0, "int64")
    counted = per_member.group_by(keys).aggregate(
        members=per_member.count(), repeat_members=per_member.count(where=per_member.n >= 2),
        purchases=per_member.n.sum().cast("int64"), excluded_orders=zero,
    )  # fmt: skip
    rows = member_orders(orders)
    excluded = windowed(rows.filter(~is_purchase(rows.paid_amount, zero_paid)))
    excluded = excluded.group_by(keys).aggregate(
        members=zero, repeat_members=zero, purchases=zero, excluded_orders=excluded.count()
    )
    both = counted.union(excluded)
    return both.group_by(keys).aggregate(**{c: both[c].sum().cast("int64") for c in _COUNTS})


def _with_neighbour(orders: ir.Table, by: Sequence[str], member_columns: Sequence[str],
                    purchase_unit: PurchaseUnit, zero_paid: ZeroPaid, name: str, *,
                    following: bool) -> ir.Table:
    """Numbered purchases carrying the order columns of ``by``, with the day of the member's
    next (``following``) or previous purchase as column ``name``."""
    order_keys = [c for c in by if c not in member_columns and c != "cohort_month"]
    p = purchases(orders, purchase_unit=purchase_unit, zero_paid=zero_paid, amounts=(),
                  carry=order_keys, numbered=True)  # fmt: skip
    step = p.day.lead() if following else p.day.lag()
    return p.mutate(**{name: step.over(group_by="member_id", order_by="purchase_number")})


def n_day_repurchase(
    orders: ir.Table,
    outcome_days: Sequence[int],
    *,
    as_of: dt.date,
    by: Sequence[str] = (),
    members: ir.Table | None = None,
    member_columns: Sequence[str] = (),
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
) -> ir.Table:
    """New buyers eligible for, and repurchasing within, N days of their first purchase.

    A member is *eligible* for N days when the first purchase is at least N days before
    ``as_of``; they *repurchased* when the second purchase is at most N days after the first.
    Order columns in ``by`` take their value on the first purchase (the acquiring store);
    ``cohort_month`` is the first purchase's month (``"2024-01"``).

    Returns
    -------
    ibis.Table
        ``by..., days, eligible_members, repurchased_members`` for every group of a first
        purchase x each of ``outcome_days`` (0 eligible when nobody is yet).
    """
    p = _with_neighbour(orders, by, member_columns, purchase_unit, zero_paid, "second",
                        following=True)  # fmt: skip
    first = p.filter(p.purchase_number == 1)
    first = first.mutate(gap=first.second.delta(first.day, unit="day"),
                         age=ibis.literal(as_of, "date").delta(first.day, unit="day"))  # fmt: skip
    if "cohort_month" in by:
        first = first.mutate(cohort_month=first.day.strftime("%Y-%m"))
    first = with_member_columns(first, members, member_columns)
    rows = first.cross_join(ibis.memtable({"days": [int(d) for d in outcome_days]}))
    eligible = rows.age >= rows.days
    return rows.group_by([*by, "days"]).aggregate(
        eligible_members=rows.count(where=eligible),
        repurchased_members=rows.count(where=eligible & (rows.gap <= rows.days)),
    )


def inter_purchase_intervals(
    orders: ir.Table,
    *,
    by: Sequence[str] = (),
    members: ir.Table | None = None,
    member_columns: Sequence[str] = (),
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
) -> ir.Table:
    """Days between each member's consecutive purchases.

    Returns
    -------
    ibis.Table
        One row per repeat purchase: ``member_id, purchase_number`` (2 or more),
        ``previous_purchase_on, purchased_on, interval_days`` and the ``by`` columns (order
        columns with their value on the later purchase), unordered.
    """
    by = [c for c in by if c != "member_id"]
    p = _with_neighbour(orders, by, member_columns, purchase_unit, zero_paid,
                        "previous_purchase_on", following=False)  # fmt: skip
    p = p.filter(p.purchase_number >= 2)
    p = with_member_columns(p, members, member_columns)
    return p.select("member_id", "purchase_number", "previous_purchase_on", *by, purchased_on=p.day,
                    interval_days=p.day.delta(p.previous_purchase_on, unit="day"))  # fmt: skip


def period_freq(freq: str) -> str:
    """The calendar period ``freq`` names (``"W"``, ``"M"``, ``"Q"`` or ``"Y"``), or a
    :class:`~rxrepurchase.errors.MetricsInputError`."""
    f = CALENDAR_FREQ.get(str(freq).upper())
    if f not in ("W", "M", "Q", "Y"):
        raise MetricsInputError(
            f"freq must be a calendar period 'W', 'M'/'ME', 'Q'/'QE' or 'Y'/'YE', got {freq!r}"
        )
    return f


def period_ordinal(day: ir.DateValue, freq: str) -> ir.IntegerValue:
    """The ordinal pandas gives the calendar period ``freq`` (``W``, ``M``, ``Q``, ``Y``) holding
    ``day`` (``Period.ordinal``: periods since 1970; ISO weeks run Monday to Sunday)."""
    years = day.year() - 1970
    if freq == "M":
        return years * 12 + day.month() - 1
    if freq == "Q":
        return years * 4 + day.quarter() - 1
    if freq == "Y":
        return years
    if freq == "W":  # 1970-01-01 is a Thursday, in pandas' week 1
        return (day.delta(ibis.date(1970, 1, 1), unit="day") + 10) // 7
    raise ValueError(f"unknown period {freq!r}")


def cohorts(
    orders: ir.Table,
    *,
    freq: str,
    last: int,
    by: Sequence[str] = (),
    members: ir.Table | None = None,
    member_columns: Sequence[str] = (),
    zero_paid: ZeroPaid = "exclude",
) -> tuple[ir.Table, ir.Table]:
    """Acquisition cohorts (period of each member's first purchase) and their activity.

    Order columns in ``by`` take their value on the member's first purchase (``store_id``: the
    acquiring store); only periods up to the ordinal ``last`` count.

    Returns
    -------
    sizes : ibis.Table
        ``by..., cohort, cohort_members``.
    active : ibis.Table
        ``by..., cohort, periods_since_first, active_members``: members of the cohort
        purchasing in its k-th period (k = 0 is the first period), where any did.
    """
    order_keys = [c for c in by if c not in member_columns]
    p = purchases(orders, purchase_unit="order", zero_paid=zero_paid, amounts=(),
                  carry=order_keys, numbered=True)  # fmt: skip
    p = p.mutate(period=period_ordinal(p.day, freq))
    first = p.filter(p.purchase_number == 1)
    first = first.filter(first.period <= last).select("member_id", *order_keys, cohort=first.period)
    first = with_member_columns(first, members, member_columns)
    sizes = first.group_by([*by, "cohort"]).aggregate(cohort_members=first.count())
    act = p.filter(p.period <= last).select("member_id", "period").join(first, "member_id")
    act = act.mutate(periods_since_first=act.period - act.cohort)
    active = act.group_by([*by, "cohort", "periods_since_first"]).aggregate(
        active_members=act.member_id.nunique()
    )
    return sizes, active
