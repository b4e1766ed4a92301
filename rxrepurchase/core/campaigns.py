"""Campaigns seen in the orders, for chains that export no ``campaigns`` table.

The contract's ``campaigns`` table is optional: without it, each ``campaign_id`` found on an
order becomes a campaign running from its first to its last order day, named by its id and of
unknown kind. Every path that opens a chain without the table (the DuckDB engine's views,
:class:`rxrepurchase.sources.ChainSource` on frames, files or Spark) derives it here.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from rxrepurchase.contract import TABLES

__all__ = ["derived_campaigns"]


def derived_campaigns(orders: ir.Table) -> ir.Table:
    """The ``campaigns`` table implied by ``orders`` (the contract's columns, in its order).

    Parameters
    ----------
    orders : ibis.Table
        The contract's orders (``campaign_id``, ``ordered_at``), already validated.

    Returns
    -------
    ibis.Table
        ``campaign_id, name`` (the id), ``starts_on`` / ``ends_on`` (the day of the first and
        last order carrying the id, as timestamps at midnight), ``kind`` (empty).
    """
    seen = orders.filter(orders.campaign_id.notnull())
    spans = seen.group_by("campaign_id").aggregate(
        starts_on=seen.ordered_at.min().truncate("D"), ends_on=seen.ordered_at.max().truncate("D")
    )
    return spans.mutate(name=spans.campaign_id, kind=ibis.literal(None, type="string")).select(
        *TABLES["campaigns"].column_names
    )
