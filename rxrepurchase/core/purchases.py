"""The one definition of a member purchase, as Ibis expressions on the contract's ``orders``.

Every aggregate of the library (repurchase rates, cohorts, RFM) counts purchases through
:func:`purchases`; nothing else restates these rules:

- **member orders**: orders with a ``member_id``; walk-in orders (no member) are never member
  purchases. With ``as_of``, orders after the end of that calendar day are left out too.
- **purchase day**: the calendar date of ``ordered_at`` (the chain's local wall-clock time).
- **purchase unit**: ``"day"`` (default) merges a member's orders of one calendar day into one
  purchase (a split ticket, a second trip); ``"order"`` keeps every order.
- **paid rule** (``zero_paid``): a refund (``paid_amount < 0``) is never a purchase; a
  zero-paid order (free gift pick-up, fully subsidised) is one only with ``"include"``. The
  RFM summaries take ``zero_paid=None``: every member order is part of that day's purchase and
  its amount is summed as it is (a refund lowers the day's value), as lifetimes'
  ``summary_data_from_transaction_data`` does.

The functions take an ``ibis.Table`` with the contract's column names and return lazy
``ibis.Table``s or columns, so they run unchanged on DuckDB and on PySpark. The pandas analyses
that filter orders row by row (cohort labels, uplift, ARPU) take the same paid rule as a numpy
mask, :func:`purchase_mask`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from rxrepurchase.errors import DataContractError, MetricsInputError

__all__ = [
    "PURCHASE_UNITS",
    "ZERO_PAID",
    "check_options",
    "is_purchase",
    "member_orders",
    "purchase_mask",
    "purchases",
]

PurchaseUnit = Literal["day", "order"]
ZeroPaid = Literal["exclude", "include"]
PURCHASE_UNITS: tuple[str, ...] = ("day", "order")
ZERO_PAID: tuple[str, ...] = ("exclude", "include")


def check_options(purchase_unit: str, zero_paid: str) -> None:
    """Raise :class:`~rxrepurchase.errors.MetricsInputError` unless ``purchase_unit`` is one of
    :data:`PURCHASE_UNITS` and ``zero_paid`` one of :data:`ZERO_PAID`."""
    if purchase_unit not in PURCHASE_UNITS:
        raise MetricsInputError(
            f"purchase_unit must be 'day' (same-day orders are one purchase) or 'order', "
            f"got {purchase_unit!r}"
        )
    if zero_paid not in ZERO_PAID:
        raise MetricsInputError(f"zero_paid must be 'exclude' or 'include', got {zero_paid!r}")


def member_orders(orders: ir.Table, *, as_of: dt.date | None = None) -> ir.Table:
    """Orders of members with their purchase ``day`` (the date of ``ordered_at``).

    Walk-in orders (empty ``member_id``) are left out; with ``as_of``, so are orders dated
    after that calendar day.
    """
    out = orders.filter(orders.member_id.notnull())
    if as_of is not None:
        out = out.filter(out.ordered_at.date() <= ibis.date(as_of))
    return out.mutate(day=out.ordered_at.date())


def is_purchase(paid, zero_paid: ZeroPaid):
    """Whether each order's payment makes it a purchase (refunds never; zero-paid on request).

    ``paid`` is the orders' ``paid_amount``: an Ibis column (the expressions) or a numpy array
    (:func:`purchase_mask`); the comparison is the same for both.
    """
    return paid >= 0 if zero_paid == "include" else paid > 0


def purchase_mask(orders: pd.DataFrame, zero_paid: ZeroPaid = "exclude") -> np.ndarray:
    """Which rows of a pandas ``orders`` frame are member purchases: a ``member_id`` and
    :func:`is_purchase`.

    Raises
    ------
    DataContractError
        A member order without ``paid_amount`` (the row is named).
    """
    member = orders["member_id"].notna().to_numpy()
    paid = orders["paid_amount"].to_numpy(dtype="float64", na_value=np.nan)
    empty = member & np.isnan(paid)
    if empty.any():
        raise DataContractError(f"orders: paid_amount is empty at row {orders.index[empty][0]}")
    return member & is_purchase(paid, zero_paid)


def purchases(
    orders: ir.Table,
    *,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid | None = "exclude",
    keys: Sequence[str] = (),
    amounts: Sequence[str] = ("paid_amount",),
    carry: Sequence[str] = (),
    numbered: bool = False,
    as_of: dt.date | None = None,
) -> ir.Table:
    """One row per member purchase.

    Parameters
    ----------
    orders : ibis.Table
        The contract's ``orders`` (``member_id``, ``ordered_at``, ``paid_amount`` ...).
    purchase_unit : {"day", "order"}
        ``"day"`` merges a member's orders of one calendar day; ``"order"`` keeps each order.
    zero_paid : {"exclude", "include"} or None
        The paid rule (see the module); ``None``: every member order counts (RFM).
    keys : sequence of str
        Order columns purchases are counted within (``store_id``: a member's purchases at
        each store are separate purchases of that store).
    amounts : sequence of str
        Money columns summed over the purchase's orders.
    carry : sequence of str
        Order columns to carry: with ``"day"``, their values on the day's first order (by
        ``ordered_at``, then ``order_id``).
    numbered : bool
        Add ``purchase_number``: 1 for a member's (key's) first purchase, 2 for the next ...
    as_of : date, optional
        Orders after this calendar day are left out.

    Returns
    -------
    ibis.Table
        ``keys..., member_id, day, n_orders, amounts..., carry...`` (with ``"order"`` also
        ``order_id`` and ``ordered_at``), unordered.
    """
    rows = member_orders(orders, as_of=as_of)
    if zero_paid is not None:
        rows = rows.filter(is_purchase(rows.paid_amount, zero_paid))
    group = [*keys, "member_id", "day"]
    carry = [c for c in carry if c not in group]
    if purchase_unit == "order":
        out = rows.select(
            *group, *dict.fromkeys(["order_id", "ordered_at", *carry]),
            n_orders=ibis.literal(1, "int64"), **{a: rows[a] for a in amounts},
        )  # fmt: skip
        order_by = ["ordered_at", "order_id"]
    else:
        out = rows.group_by(group).aggregate(
            n_orders=rows.count(), **{a: rows[a].sum() for a in amounts}
        )
        if carry:
            first = ibis.row_number().over(group_by=group, order_by=["ordered_at", "order_id"])
            firsts = rows.mutate(_n=first).filter(ibis._._n == 0).select(*group, *carry)
            out = out.join(firsts, group)
        order_by = ["day"]
    if numbered:
        number = ibis.row_number().over(group_by=[*keys, "member_id"], order_by=order_by) + 1
        out = out.mutate(purchase_number=number)
    return out
