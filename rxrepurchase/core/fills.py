"""Refill fills as Ibis expressions: a member's lines of one product group on one day are one fill.

:func:`rxrepurchase.refill.refill_fills` (pandas frames) and
:func:`rxrepurchase.engine.refill_fills` (an export's validated views) both run these; the
definitions are those of ``docs/refills.md``:

- a fill's lines are the (chronic) order lines of member orders with a positive quantity;
  walk-in lines and returns (quantity <= 0 or empty) are left out and counted;
- lines of one member, product group (the lines' ``product`` column) and calendar day
  (``filled_on``, the day of ``ordered_at``) are one fill: quantities, amounts and days supply
  are summed, the supply is unknown when any line's is;
- the fill takes its store, channel and product name from the line that
  :data:`FILL_NAMING_ORDER` puts first (largest amount, latest order time, then smallest SKU,
  order id and product name), so no row order can change them.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

__all__ = ["FILL_KEYS", "FILL_NAMING_ORDER", "fill_lines", "fills", "line_counts"]

FILL_KEYS: tuple[str, ...] = ("member_id", "product", "filled_on")
FILL_NAMING_ORDER: tuple[tuple[str, bool], ...] = (
    ("line_amount", False), ("ordered_at", False), ("sku", True), ("order_id", True),
    ("product_name", True),
)
"""Which line names a fill when several lines of one product group fall on one member-day:
(column, ascending) pairs, the first line in this order wins. Decided by the data alone, so
that the row order of an export (or a library's sort) cannot change a fill's name."""
_ORDER_COLUMNS = ("order_id", "member_id", "store_id", "ordered_at", "channel")


def fill_lines(lines: ir.Table, orders: ir.Table, *, chronic_only: bool = True) -> ir.Table:
    """The order lines (only ``is_chronic`` ones with ``chronic_only``) with their order's
    ``member_id``, ``store_id``, ``ordered_at`` and ``channel``, and ``used``: whether the line
    goes into a fill (a member's line with a positive quantity).

    ``lines`` needs ``order_id, sku, product_name, is_chronic, quantity, line_amount,
    days_supply`` and ``product`` (its product group); lines whose order is not in ``orders``
    drop out of the join (the callers check or exclude them first).
    """
    rows = lines.filter(lines.is_chronic) if chronic_only else lines
    rows = rows.join(orders.select(*_ORDER_COLUMNS), "order_id")
    return rows.mutate(used=rows.member_id.notnull() & (rows.quantity > 0).fill_null(False))


def line_counts(rows: ir.Table) -> ir.Table:
    """One row counting the lines of :func:`fill_lines` that no fill holds (``walk_in_lines``:
    no member; ``return_lines``: a member's line with quantity <= 0 or empty) and the used lines
    a fill cannot take (``bad_supply``: days supply <= 0; ``no_product``: empty product)."""
    walk_in = rows.member_id.isnull()
    return rows.aggregate(
        walk_in_lines=rows.count(where=walk_in),
        return_lines=rows.count(where=~walk_in & ~rows.used),
        bad_supply=rows.count(where=rows.used & (rows.days_supply <= 0)),
        no_product=rows.count(where=rows.used & rows["product"].isnull()),
    )


def fills(rows: ir.Table) -> ir.Table:
    """One row per member, product group and day from the used lines of :func:`fill_lines`.

    Returns
    -------
    ibis.Table
        ``member_id, product, filled_on`` (a timestamp at midnight), ``store_id, channel,
        product_name`` (of the naming line), ``quantity, line_amount, days_supply`` (summed;
        empty when any line's supply is), ``n_lines``; unordered.
    """
    keys = list(FILL_KEYS)
    used = rows.filter(rows.used)
    used = used.mutate(filled_on=used.ordered_at.truncate("D"))
    naming = [ibis.asc(c) if up else ibis.desc(c) for c, up in FILL_NAMING_ORDER]
    first = ibis.row_number().over(group_by=keys, order_by=naming)
    names = used.mutate(_n=first).filter(ibis._._n == 0)
    sums = used.group_by(keys).aggregate(
        quantity=used.quantity.sum(),
        line_amount=used.line_amount.sum(),
        days_supply=ibis.ifelse(used.days_supply.count() == used.count(),
                                used.days_supply.sum(), ibis.null("float64")),  # fmt: skip
        n_lines=used.count(),
    )
    out = sums.join(names.select(*keys, "store_id", "channel", "product_name"), keys)
    return out.select(*keys, "store_id", "channel", "product_name", "quantity", "line_amount",
                      "days_supply", "n_lines")  # fmt: skip
