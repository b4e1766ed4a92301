"""What a BG/NBD or Pareto/NBD fit needs of the members: the distinct (frequency, recency, T)
rows with how many members share each, as an Ibis expression.

The purchase models' likelihood depends on a member only through ``(frequency, recency, T)``,
so fitting on the distinct rows weighted by their member counts (lifetimes'
``fit(frequency, recency, T, weights=...)``) gives the parameters of the fit on every member.
Recency and T are whole days (or weeks), so a chain of millions of members has a few hundred
thousand distinct rows at most: on a Spark cluster the per-member RFM stays there and only
these rows come back to the machine that fits. Scores computed there once per distinct row
(P(alive), expected purchases) go back the same way, as a small table that
:func:`spread_to_members` joins to the members where they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis.expr.types as ir

__all__ = ["FIT_COLUMNS", "SPEND_COLUMNS", "fit_rows", "spend_rows", "spread_to_members"]

FIT_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T")
SPEND_COLUMNS: tuple[str, ...] = ("frequency", "monetary_value")


def fit_rows(rfm: ir.Table, *, by: Sequence[str] = ()) -> ir.Table:
    """Distinct ``(frequency, recency, T)`` rows of an RFM table and their member counts.

    Parameters
    ----------
    rfm : ibis.Table
        One row per member (per ``by`` x member), e.g.
        :func:`rxrepurchase.core.rfm.rfm_summary`.
    by : sequence of str
        Columns of ``rfm`` the rows are kept apart by (``["store_id"]`` for per-store fits).

    Returns
    -------
    ibis.Table
        ``by..., frequency, recency, T, members``, ordered by those columns.
    """
    keys = [*by, *FIT_COLUMNS]
    return rfm.group_by(keys).aggregate(members=rfm.count()).order_by(keys)


def spend_rows(rfm: ir.Table, *, by: Sequence[str] = ()) -> ir.Table:
    """What a Gamma-Gamma fit needs: the repeat buyers' distinct ``(frequency,
    monetary_value)`` rows and their member counts.

    The Gamma-Gamma likelihood depends on a member only through these two values, so the fit
    on these rows weighted by their counts (``GammaGammaModel().fit(rows, weights="members")``)
    is the fit on every repeat buyer. Mean spends are nearly distinct per member, so the rows
    are many (about one per repeat buyer), but 3 numbers each: on a Spark cluster this is what
    comes back for the fit instead of the members.

    Parameters
    ----------
    rfm : ibis.Table
        One row per member (per ``by`` x member) with ``frequency`` and ``monetary_value``.
    by : sequence of str
        As in :func:`fit_rows`.

    Returns
    -------
    ibis.Table
        ``by..., frequency, monetary_value, members`` of the members with ``frequency > 0``
        (those with a mean repeat value <= 0 included: the fit reports and leaves them out),
        ordered by those columns.
    """
    buyers = rfm.filter(rfm.frequency > 0)
    keys = [*by, *SPEND_COLUMNS]
    return buyers.group_by(keys).aggregate(members=buyers.count()).order_by(keys)


def spread_to_members(rfm: ir.Table, per_row: ir.Table, *, by: Sequence[str] = ()) -> ir.Table:
    """Values computed once per distinct row, given to every member with that row.

    Parameters
    ----------
    rfm : ibis.Table
        One row per member (per ``by`` x member) with ``frequency``, ``recency``, ``T``.
    per_row : ibis.Table
        ``by..., frequency, recency, T`` and the values (e.g. ``p_alive``), one row per
        distinct row of :func:`fit_rows`; on the backend of ``rfm`` (a memtable works on any).
    by : sequence of str
        As in :func:`fit_rows`.

    Returns
    -------
    ibis.Table
        ``rfm``'s columns and ``per_row``'s values; a member whose row ``per_row`` lacks keeps
        its row, with empty values.
    """
    keys = [*by, *FIT_COLUMNS]
    values = [c for c in per_row.columns if c not in keys]
    return rfm.left_join(per_row, keys).select(*rfm.columns, *values)
