"""Money measures per window and group as Ibis expressions: ARPU, the walk-in share and the
top members' share of revenue (Pareto).

Revenue is ``paid_amount`` summed as it is (refunds net it); the definitions are those of
:mod:`rxrepurchase.metrics` (and ``docs/metrics.md``). Windows are the caller's small table,
joined on the order's day as for the repurchase rates (:func:`rxrepurchase.core.rates.in_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from rxrepurchase.core.purchases import ZeroPaid, is_purchase, member_orders
from rxrepurchase.core.rates import in_windows, with_member_columns

__all__ = ["PARETO_MEASURES", "arpu", "pareto_share", "walk_in_share"]

PARETO_MEASURES: tuple[tuple[str, str], ...] = (
    ("revenue", "gross_amount"),
    ("revenue_net_of_subsidy", "paid_amount"),
)
"""Each Pareto measure and the order column it sums: sales at list price, and what members paid."""


def arpu(
    orders: ir.Table,
    windows: ir.Table,
    *,
    by: Sequence[str] = (),
    members: ir.Table | None = None,
    member_columns: Sequence[str] = (),
    zero_paid: ZeroPaid = "exclude",
    amounts: Sequence[str] = (),
    period: str | None = None,
) -> ir.Table:
    """Purchasing members and their revenue per window and group.

    Parameters
    ----------
    orders, windows, by, members, member_columns, period
        As in :func:`rxrepurchase.core.rates.repurchase_rates`.
    zero_paid : {"exclude", "include"}
        Which members count as purchasing (the paid rule); revenue sums every member order.
    amounts : sequence of str
        Further money columns summed (``gross_amount``, ``discount_amount``).

    Returns
    -------
    ibis.Table
        ``window_id, by..., members, revenue, amounts...`` for every window x group with a
        member order (``members`` may be 0: no purchase, only refunds or zero-paid orders).
    """
    rows = in_windows(with_member_columns(member_orders(orders), members, member_columns),
                      windows, period)  # fmt: skip
    return rows.group_by(["window_id", *by]).aggregate(
        members=rows.member_id.nunique(where=is_purchase(rows.paid_amount, zero_paid)),
        revenue=rows.paid_amount.sum(),
        **{a: rows[a].sum() for a in amounts},
    )


def walk_in_share(
    orders: ir.Table, windows: ir.Table, *, by: Sequence[str] = (), period: str | None = None
) -> ir.Table:
    """All orders and walk-in orders (no ``member_id``), and their ``paid_amount``, per window
    and group of order columns ``by``.

    Returns
    -------
    ibis.Table
        ``window_id, by..., orders, walk_in_orders, revenue, walk_in_revenue`` for every
        window x group with an order.
    """
    rows = in_windows(orders.mutate(day=orders.ordered_at.date()), windows, period)
    walk_in = rows.member_id.isnull()
    return rows.group_by(["window_id", *by]).aggregate(
        orders=rows.count(),
        walk_in_orders=rows.count(where=walk_in),
        revenue=rows.paid_amount.sum(),
        walk_in_revenue=rows.paid_amount.sum(where=walk_in),
    )


def pareto_share(
    orders: ir.Table,
    top: float,
    *,
    by: Sequence[str] = (),
    members: ir.Table | None = None,
    member_columns: Sequence[str] = (),
    start=None,
    end=None,
) -> ir.Table:
    """The top members' share of each :data:`PARETO_MEASURES` measure, per group.

    Members are ranked within their group by the measure (largest first, ties by
    ``member_id``); the top group is ``ceil(top x members)`` of them. Walk-ins are left out,
    refunds netted; ``start`` / ``end`` (dates) bound the orders' days.

    Returns
    -------
    ibis.Table
        ``measure, by..., members, top_members, total, top_total``, one row per measure and
        group; ``measure`` as its position in :data:`PARETO_MEASURES`.
    """
    rows = member_orders(orders)
    if start is not None:
        rows = rows.filter(rows.day >= ibis.literal(start, "date"))
    if end is not None:
        rows = rows.filter(rows.day <= ibis.literal(end, "date"))
    rows = with_member_columns(rows, members, member_columns)
    keys = list(by)
    totals = rows.group_by([*keys, "member_id"]).aggregate(
        **{col: rows[col].sum().fill_null(0.0) for _, col in PARETO_MEASURES}
    )
    group = ibis.window(group_by=keys) if keys else ibis.window()
    # Float literals typed as doubles: Spark reads a bare 0.2 as a DECIMAL and rounds.
    n_top = (totals.count().over(group).cast("float64") * ibis.literal(top, "float64")
             - ibis.literal(1e-9, "float64")).ceil().cast("int64")  # fmt: skip
    parts = []
    for i, (_, col) in enumerate(PARETO_MEASURES):
        rank = ibis.row_number().over(group_by=keys or None,
                                      order_by=[totals[col].desc(), totals.member_id])  # fmt: skip
        ranked = totals.mutate(_rank=rank, _n=totals.count().over(group), _top=n_top)
        summary = ranked.group_by(keys) if keys else ranked
        parts.append(summary.aggregate(
            measure=ibis.literal(i, "int64"),
            members=ranked._n.max(),
            top_members=ranked._top.max(),
            total=ranked[col].sum(),
            top_total=ranked[col].sum(where=ranked._rank < ranked._top).fill_null(0.0),
        ))  # fmt: skip
    return ibis.union(*parts)
