"""Recency-frequency-monetary (RFM) summaries of members' purchases, and calibration/holdout splits.

rxrepurchase owns this data preparation (``lifetimes.utils`` is not used): the same code reads a
chain's ``orders`` table and the published CDNOW sample, and a DuckDB engine can reproduce it
from the definitions below.

Definitions (see also ``docs/models.md``)
-----------------------------------------
purchase
    All of one customer's transactions on one calendar date (the date part of the local
    timestamp), merged into one purchase whose value is the sum of their amounts.
frequency
    Number of *repeat* purchases: purchases after the first one, up to and including the
    observation end date.
recency
    Days (or weeks) from the first purchase date to the last purchase date; 0 when
    ``frequency`` is 0.
T
    Days (or weeks) from the first purchase date to the observation end date: a member who
    first bought on the observation end date has ``T = 0``. Purchases *on* the observation end
    (cut) date are included.
monetary_value
    Mean value of the repeat purchases (the first purchase is excluded, as the Gamma-Gamma
    model asks); 0 when ``frequency`` is 0.
weeks
    ``days / 7``, counted from each member's own first purchase, never calendar weeks.

Transactions without a customer id (walk-in orders) are not member purchases: they are
excluded and counted in the result's metadata, as are transactions after the observation end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rxrepurchase.arguments import TIME_UNITS, as_date, check_unit
from rxrepurchase.core import backend
from rxrepurchase.core import rfm as core_rfm
from rxrepurchase.errors import RFMInputError
from rxrepurchase.frames import local_times

__all__ = [
    "TIME_UNITS",
    "CalibrationHoldout",
    "RFMInputError",
    "calibration_holdout",
    "rfm_summary",
    "summary_attrs",
    "transactions_after",
]

_MAX_EXAMPLES = 5


def _examples(index: pd.Index) -> str:
    shown = ", ".join(map(str, index[:_MAX_EXAMPLES]))
    more = f" and {len(index) - _MAX_EXAMPLES} more" if len(index) > _MAX_EXAMPLES else ""
    return f"{shown}{more}"


def _orders_frame(
    transactions: pd.DataFrame,
    customer_col: str,
    time_col: str,
    amount_col: str,
    by: str | None,
) -> tuple[pd.DataFrame, pd.Index]:
    """Check the transactions and return them under the contract's names (``member_id`` as
    the rank of the id among the sorted distinct ids, ``ordered_at`` as local wall-clock time,
    ``paid_amount`` holding ``amount_col``, ``by``), and the sorted distinct ids."""
    if not isinstance(transactions, pd.DataFrame):
        raise RFMInputError(f"transactions must be a pandas DataFrame, got {type(transactions)}")
    needed = [customer_col, time_col, amount_col] + ([by] if by else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise RFMInputError(
            f"transactions have no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, transactions.columns))})"
        )
    times = transactions[time_col]
    if not pd.api.types.is_datetime64_any_dtype(times):
        raise RFMInputError(
            f"column {time_col!r} must hold timestamps (datetime64), got {times.dtype}; "
            "parse it with pandas.to_datetime first"
        )
    times = local_times(times)
    amounts = transactions[amount_col]
    if not pd.api.types.is_numeric_dtype(amounts) or pd.api.types.is_bool_dtype(amounts):
        raise RFMInputError(f"column {amount_col!r} must be numeric, got {amounts.dtype}")
    is_member = transactions[customer_col].notna().to_numpy()
    amount = amounts.to_numpy(dtype=np.float64, na_value=np.nan)
    checks = [(time_col, times.isna().to_numpy()), (amount_col, ~np.isfinite(amount))]
    if by:
        checks.append((by, transactions[by].isna().to_numpy()))
    for col, bad in checks:
        bad = bad & is_member
        if bad.any():
            raise RFMInputError(
                f"column {col!r} is empty or not finite in {int(bad.sum())} member transactions "
                f"(rows {_examples(transactions.index[bad])})"
            )
    member, ids = backend.ranked_ids(transactions[customer_col])
    frame = {"member_id": member, "ordered_at": times.array, "paid_amount": amount}
    if by:
        frame = {by: transactions[by].array, **frame}
    return pd.DataFrame(frame, copy=False), ids


@dataclass(frozen=True)
class Keys:
    """How per-member results come back from the core: keyed by ``[by,] member_id``.

    Parameters
    ----------
    by : str, optional
        The orders column results are also keyed by (``store_id``).
    names : list of str, optional
        Names of the index levels (default: ``[by,] member_id``).
    dtypes : dict, optional
        Dtype per key column (the caller's id dtypes; default: as Arrow gives them).
    ids : Index, optional
        When given, the core's ``member_id`` holds positions in ``ids``.
    con : ibis backend, optional
        Where expressions on memtables run (default: the shared DuckDB).
    """

    by: str | None = None
    names: list[str] | None = None
    dtypes: dict | None = None
    ids: pd.Index | None = None
    con: object = None

    @property
    def columns(self) -> list[str]:
        return ["member_id"] if self.by is None else [self.by, "member_id"]

    def run(self, expr) -> pd.DataFrame:
        return backend.to_pandas(expr, self.con)

    def index(self, result: pd.DataFrame) -> pd.DataFrame:
        """``result`` indexed by its key columns."""
        dtypes = self.dtypes or {}
        if self.ids is not None:
            result = result.assign(member_id=self.ids.take(result["member_id"].to_numpy()))
        arrays = [
            result[k] if dtypes.get(k) is None else result[k].astype(dtypes[k])
            for k in self.columns
        ]
        names = self.names or self.columns
        index = (pd.Index(arrays[0], name=names[0]) if len(arrays) == 1
                 else pd.MultiIndex.from_arrays(arrays, names=names))  # fmt: skip
        return result.drop(columns=self.columns).set_axis(index, axis=0)

    def counts(self, orders, **after: pd.Timestamp) -> dict:
        """:func:`rxrepurchase.core.rfm.order_counts` as a dict."""
        row = self.run(core_rfm.order_counts(orders, **{k: v.date() for k, v in after.items()}))
        return {k: (None if pd.isna(v) else v) for k, v in row.iloc[0].items()}


def summarise(
    orders, keys: Keys, *, as_of=None, time_unit: str = "days", amount_col: str = "paid_amount"
) -> pd.DataFrame:
    """:func:`rfm_summary` of an Ibis ``orders`` table with the contract's column names: the
    one implementation behind it and :func:`rxrepurchase.engine.rfm_summary`."""
    unit_days = check_unit(time_unit)
    if as_of is None:
        counts = keys.counts(orders)
        if counts["last_day"] is None:
            raise RFMInputError("transactions hold no member purchases")
        as_of = pd.Timestamp(counts["last_day"])
        counts["after"] = 0
    else:
        as_of = as_date(as_of, "as_of")
        counts = keys.counts(orders, after=as_of)
    expr = core_rfm.rfm_summary(orders, as_of=as_of.date(), time_unit_days=unit_days,
                                amount=amount_col, by=keys.by)  # fmt: skip
    result = keys.run(expr)
    if result.empty:
        raise RFMInputError(f"no member purchase on or before {as_of.date()}")
    summary = keys.index(result)
    summary.attrs = summary_attrs(time_unit, as_of, amount_col, counts["walk_in_orders"],
                                  counts["after"])  # fmt: skip
    return summary


def summary_attrs(time_unit: str, as_of: pd.Timestamp, amount_col: str, walk_in_orders: int,
                  transactions_after_end: int) -> dict:
    """The ``attrs`` of an RFM summary (:func:`rfm_summary`, a calibration period): how it was
    measured and which transactions it left out (no customer id; dated after ``as_of``)."""
    return {
        "time_unit": time_unit,
        "as_of": as_of,
        "amount_col": amount_col,
        "walk_in_orders": int(walk_in_orders),
        "transactions_after_end": int(transactions_after_end),
    }


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    as_of=None,
    time_unit: str = "days",
    customer_col: str = "member_id",
    time_col: str = "ordered_at",
    amount_col: str = "paid_amount",
    by: str | None = None,
) -> pd.DataFrame:
    """Summarise each member's purchases into frequency, recency, T and monetary value.

    Parameters
    ----------
    transactions : DataFrame
        One row per transaction (order), e.g. ``Chain.orders``.
    as_of : date-like, optional
        Last calendar date observed (inclusive). Default: the last transaction date.
    time_unit : {"days", "weeks"}
        Unit of ``recency`` and ``T``; weeks are 7-day units from each member's first purchase.
    customer_col, time_col, amount_col : str
        Columns holding the customer id, the transaction timestamp and its value. Use
        ``amount_col="gross_amount"`` for spend at list price instead of the amount paid
        (net of subsidy).
    by : str, optional
        Summarise per group, e.g. ``"store_id"``: a member's purchases at each store are
        summarised separately and the index becomes ``(by, customer_col)``.

    Returns
    -------
    DataFrame
        Indexed by member (sorted), columns ``frequency`` (int), ``recency``, ``T``, ``litt``
        (sum of the logs of the times between purchases, in ``time_unit``: the regularity
        statistic of :class:`~rxrepurchase.mbgcnbd.MBGCNBDModel`), ``monetary_value`` (mean repeat-purchase value), ``first_purchase`` and
        ``last_purchase`` (dates). ``attrs`` record ``time_unit``, ``as_of``,
        ``amount_col``, ``walk_in_orders`` (excluded transactions without a customer id) and
        ``transactions_after_end`` (excluded transactions dated after ``as_of``).

    Raises
    ------
    RFMInputError
        Missing columns, non-timestamp times, empty or infinite values (rows are named), or no
        member purchase on or before ``as_of``.
    """
    check_unit(time_unit)
    frame, ids = _orders_frame(transactions, customer_col, time_col, amount_col, by)
    with backend.tables(frame) as (orders,):
        summary = summarise(orders, _keys(transactions, customer_col, by, ids),
                            as_of=as_of, time_unit=time_unit)  # fmt: skip
    summary.attrs["amount_col"] = amount_col
    return summary


def _keys(transactions: pd.DataFrame, customer_col: str, by: str | None, ids: pd.Index) -> Keys:
    """Results keyed as the caller's frame: its column names, ids and their dtypes."""
    dtypes = {by: transactions[by].dtype} if by else {}
    return Keys(by, [customer_col] if by is None else [by, customer_col], dtypes, ids)


def transactions_after(
    transactions: pd.DataFrame, end: pd.Timestamp, *, time_col: str = "ordered_at",
    customer_col: str = "member_id",
) -> int:
    """Member transactions dated after the calendar day ``end`` (counted before same-day
    merging): the ``transactions_after_end`` of :func:`summary_attrs`."""
    limit = end.normalize() + pd.Timedelta(days=1)
    times = local_times(transactions[time_col])
    return int(((times >= limit) & transactions[customer_col].notna()).sum())


@dataclass
class CalibrationHoldout:
    """Members' purchases split at a cut date into a calibration and a holdout period.

    Attributes
    ----------
    calibration : DataFrame
        :func:`rfm_summary` observed to ``calibration_end`` (purchases on the cut date included).
    holdout : DataFrame
        Same index as ``calibration``: ``frequency_holdout`` (purchases in the holdout
        period), ``monetary_holdout`` (their mean value, 0 if none) and ``duration_holdout``
        (holdout length in ``time_unit``).
    new_in_holdout : DataFrame
        Members whose first purchase falls in the holdout period (not in ``calibration``):
        ``first_purchase``, ``purchases`` and ``spend`` in the holdout period.
    first_purchases : Series
        Calibration members by first-purchase date (for tracking curves).
    repeat_purchases : Series
        Repeat purchases of calibration members per date, calibration and holdout periods.
    calibration_end, holdout_end : Timestamp
        Last date of the calibration and of the holdout period (both inclusive).
    time_unit : str
    walk_in_orders, transactions_after_holdout : int
        Transactions excluded: no customer id, or dated after ``holdout_end``.
    """

    calibration: pd.DataFrame
    holdout: pd.DataFrame
    new_in_holdout: pd.DataFrame
    first_purchases: pd.Series
    repeat_purchases: pd.Series
    calibration_end: pd.Timestamp
    holdout_end: pd.Timestamp
    time_unit: str
    walk_in_orders: int
    transactions_after_holdout: int

    @property
    def duration_holdout(self) -> float:
        """Holdout length in ``time_unit``: days after the cut date up to ``holdout_end``."""
        return (self.holdout_end - self.calibration_end).days / TIME_UNITS[self.time_unit]


def calibration_holdout(
    transactions: pd.DataFrame,
    calibration_end,
    *,
    holdout_end=None,
    time_unit: str = "days",
    customer_col: str = "member_id",
    time_col: str = "ordered_at",
    amount_col: str = "paid_amount",
    by: str | None = None,
) -> CalibrationHoldout:
    """Split members' purchases at ``calibration_end`` into calibration RFM and holdout outcomes.

    Parameters
    ----------
    transactions : DataFrame
        One row per transaction, as for :func:`rfm_summary`.
    calibration_end : date-like
        Last calendar date of the calibration period; purchases on it are calibration
        purchases, and calibration ``T`` is measured to it.
    holdout_end : date-like, optional
        Last calendar date of the holdout period (inclusive). Default: the last transaction.
    time_unit, customer_col, time_col, amount_col, by
        As for :func:`rfm_summary`; ``by="store_id"`` splits per store.

    Returns
    -------
    CalibrationHoldout
    """
    check_unit(time_unit)
    frame, ids = _orders_frame(transactions, customer_col, time_col, amount_col, by)
    with backend.tables(frame) as (orders,):
        split = split_at(orders, _keys(transactions, customer_col, by, ids), calibration_end,
                         holdout_end=holdout_end, time_unit=time_unit)  # fmt: skip
    split.calibration.attrs["amount_col"] = amount_col
    return split


def split_at(
    orders, keys: Keys, calibration_end, *, holdout_end=None, time_unit: str = "days",
    amount_col: str = "paid_amount",
) -> CalibrationHoldout:
    """:func:`calibration_holdout` of an Ibis ``orders`` table with the contract's names: the
    one implementation behind it and :func:`rxrepurchase.engine.calibration_holdout`."""
    unit_days = check_unit(time_unit)
    cut = as_date(calibration_end, "calibration_end")
    given = None if holdout_end is None else as_date(holdout_end, "holdout_end")
    counts = keys.counts(orders, after_cut=cut, after_end=cut if given is None else given)
    if counts["last_day"] is None:
        raise RFMInputError("transactions hold no member purchases")
    end = pd.Timestamp(counts["last_day"]) if given is None else given
    if end <= cut:
        raise RFMInputError(f"holdout_end {end.date()} must be after calibration_end {cut.date()}")
    members, repeat = core_rfm.calibration_holdout(
        orders, calibration_end=cut.date(), holdout_end=end.date(), time_unit_days=unit_days, amount=amount_col,
        by=keys.by,
    )
    members = keys.index(keys.run(members))
    repeat = keys.run(repeat)
    in_calibration = (members["first_purchase"] <= cut).to_numpy()
    if not in_calibration.any():
        raise RFMInputError(f"no member purchase on or before calibration_end {cut.date()}")
    cal = members.loc[in_calibration]
    calibration = cal[list(core_rfm.RFM_COLUMNS)]
    calibration.attrs = summary_attrs(time_unit, cut, amount_col, counts["walk_in_orders"],
                                      counts["after_cut"])  # fmt: skip
    count = cal["frequency_holdout"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_spend = np.where(count > 0, cal["spend_holdout"].to_numpy() / count, 0.0)
    holdout = pd.DataFrame(
        {
            "frequency_holdout": count,
            "monetary_holdout": mean_spend,
            "duration_holdout": (end - cut).days / unit_days,
        },
        index=calibration.index,
    )
    new = members.loc[~in_calibration]
    new_in_holdout = pd.DataFrame(
        {
            "first_purchase": new["first_purchase"],
            "purchases": new["frequency_holdout"],
            "spend": new["spend_holdout"],
        }
    )
    return CalibrationHoldout(
        calibration=calibration,
        holdout=holdout,
        new_in_holdout=new_in_holdout,
        first_purchases=_count_by_date(calibration["first_purchase"].to_numpy()),
        repeat_purchases=pd.Series(
            repeat["purchases"].to_numpy(np.int64),
            index=pd.DatetimeIndex(repeat["date"], name="date"),
            name="purchases",
        ),
        calibration_end=cut,
        holdout_end=end,
        time_unit=time_unit,
        walk_in_orders=int(counts["walk_in_orders"]),
        transactions_after_holdout=int(counts["after_end"]) if given is not None else 0,
    )


def _count_by_date(dates: np.ndarray) -> pd.Series:
    values, counts = np.unique(dates, return_counts=True)
    return pd.Series(counts, index=pd.DatetimeIndex(values, name="date"), name="purchases")
