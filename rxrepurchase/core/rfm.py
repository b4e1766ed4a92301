"""RFM summaries and calibration / holdout splits as Ibis expressions.

The definitions are those of :mod:`rxrepurchase.rfm` (and of lifetimes'
``summary_data_from_transaction_data``): a purchase is all of a member's orders of one calendar
day (:func:`rxrepurchase.core.purchases.purchases` with ``zero_paid=None``); ``frequency``
counts the purchases after the first up to the observation end (inclusive); ``recency`` runs
from the first to the last purchase, ``T`` from the first purchase to the end; ``monetary_value``
is the mean value of the repeat purchases; ``litt`` sums the logs of the times between
purchases. Days are whole calendar days; weeks are ``days / 7``.
"""

from __future__ import annotations

import datetime as dt
import math

import ibis
import ibis.expr.types as ir

from rxrepurchase.core.purchases import purchases

__all__ = ["RFM_COLUMNS", "calibration_holdout", "order_counts", "rfm_summary"]

RFM_COLUMNS = ("frequency", "recency", "T", "litt", "monetary_value", "first_purchase", "last_purchase")


def _keys(by: str | None) -> list[str]:
    return ["member_id"] if by is None else [by, "member_id"]


def _days(orders: ir.Table, amount: str, by: str | None) -> ir.Table:
    """Member purchase days with ``amount_`` and ``gap`` (days since the key's previous
    purchase; null on the key's first, which is how the first purchase is found)."""
    keys = _keys(by)
    p = purchases(orders, zero_paid=None, keys=keys[:-1], amounts=(amount,)).rename(amount_=amount)
    previous = p.day.lag().over(ibis.window(group_by=keys, order_by="day"))
    return p.mutate(gap=p.day.delta(previous, unit="day"))


def _rfm_columns(
    first_day, last_day, n, total, first_amount, log_gaps, end: dt.date, unit_days: int
) -> dict[str, ir.Value]:
    """The RFM columns from per-key aggregates (``n`` purchases, ``total`` spend ...)."""
    frequency = (n - 1).cast("int64")
    return {
        "frequency": frequency,
        "recency": last_day.delta(first_day, unit="day") / unit_days,
        "T": ibis.date(end).delta(first_day, unit="day") / unit_days,
        "litt": log_gaps.fill_null(0.0) - frequency * math.log(unit_days),
        "monetary_value": ibis.ifelse(
            frequency > 0, (total - first_amount) / frequency.cast("float64"), 0.0
        ),
        "first_purchase": first_day,
        "last_purchase": last_day,
    }


def rfm_summary(
    orders: ir.Table,
    *,
    as_of: dt.date,
    time_unit_days: int = 1,
    amount: str = "paid_amount",
    by: str | None = None,
) -> ir.Table:
    """Per member (per ``by`` x member): frequency, recency, T, litt, monetary value.

    Parameters
    ----------
    orders : ibis.Table
        The contract's orders (walk-ins are left out here).
    as_of : date
        Last calendar date observed (inclusive).
    time_unit_days : int
        Length of the time unit of recency, T and litt in days (1, or 7 for weeks).
    amount : str
        The money column summed into each purchase's value.
    by : str, optional
        An orders column: a member's purchases at each value are summarised separately.

    Returns
    -------
    ibis.Table
        ``[by,] member_id`` and the RFM columns, ordered by the keys; members without a purchase
        on or before ``as_of`` are absent.
    """
    keys = _keys(by)
    p = _days(orders, amount, by)
    p = p.filter(p.day <= ibis.date(as_of))
    agg = p.group_by(keys).aggregate(
        n=p.count(), first_day=p.day.min(), last_day=p.day.max(), total=p.amount_.sum(),
        first_amount=p.amount_.sum(where=p.gap.isnull()), log_gaps=p.gap.log().sum(),
    )  # fmt: skip
    columns = _rfm_columns(agg.first_day, agg.last_day, agg.n, agg.total, agg.first_amount,
                           agg.log_gaps, as_of, time_unit_days)  # fmt: skip
    return agg.select(*keys, **columns).order_by(keys)


def order_counts(orders: ir.Table, **after: dt.date) -> ir.Table:
    """One row: ``walk_in_orders``, ``last_day`` (of a member order) and, per keyword
    ``name=date``, ``name`` = member orders dated after that calendar day."""
    member = orders.member_id.notnull()
    day = orders.ordered_at.date()
    return orders.aggregate(
        walk_in_orders=orders.count(where=~member),
        last_day=day.max(where=member),
        **{name: orders.count(where=member & (day > ibis.date(d))) for name, d in after.items()},
    )


def calibration_holdout(
    orders: ir.Table,
    *,
    calibration_end: dt.date,
    holdout_end: dt.date,
    time_unit_days: int = 1,
    amount: str = "paid_amount",
    by: str | None = None,
) -> tuple[ir.Table, ir.Table]:
    """Calibration RFM to ``calibration_end`` and holdout outcomes after it, to ``holdout_end``.

    Returns
    -------
    members : ibis.Table
        One row per key with a purchase on or before ``holdout_end``: ``first_purchase``, the RFM
        columns over calibration purchases (meaningful when ``first_purchase <= calibration_end``),
        ``frequency_holdout`` and ``spend_holdout`` (holdout purchases and their value);
        ordered by the keys.
    repeat_purchases : ibis.Table
        ``date, purchases``: repeat purchases (not a key's first) up to ``holdout_end`` of the keys
        whose first purchase is on or before ``calibration_end``, per date.
    """
    keys = _keys(by)
    p = _days(orders, amount, by)
    p = p.filter(p.day <= ibis.date(holdout_end))
    cal = p.day <= ibis.date(calibration_end)
    agg = p.group_by(keys).aggregate(
        first_day=p.day.min(), n_cal=p.count(where=cal), last_cal=p.day.max(where=cal),
        total_cal=p.amount_.sum(where=cal), first_amount=p.amount_.sum(where=p.gap.isnull()),
        log_gaps=p.gap.log().sum(where=cal), frequency_holdout=p.count(where=~cal),
        spend_holdout=p.amount_.sum(where=~cal),
    )  # fmt: skip
    columns = _rfm_columns(agg.first_day, agg.last_cal, agg.n_cal, agg.total_cal.fill_null(0.0),
                           agg.first_amount, agg.log_gaps, calibration_end, time_unit_days)  # fmt: skip
    members = agg.select(
        *keys, **columns, frequency_holdout=agg.frequency_holdout.cast("int64"),
        spend_holdout=agg.spend_holdout.fill_null(0.0),
    ).order_by(keys)  # fmt: skip
    first = p.day.min().over(ibis.window(group_by=keys))
    repeat = p.mutate(first=first)
    repeat = repeat.filter((repeat.first <= ibis.date(calibration_end)) & (repeat.day > repeat.first))
    per_day = repeat.group_by(date=repeat.day).aggregate(purchases=repeat.count())
    return members, per_day.order_by("date")
