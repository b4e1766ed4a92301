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

from rxrepurchase.errors import RFMInputError

__all__ = [
    "TIME_UNITS",
    "CalibrationHoldout",
    "RFMInputError",
    "calibration_holdout",
    "rfm_summary",
]

TIME_UNITS: dict[str, int] = {"days": 1, "weeks": 7}
"""Time units of recency and T, as their length in days."""

_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class _Purchases:
    """Member purchases, merged by calendar date, sorted by member then date.

    ``member`` indexes ``members``; ``day`` counts days since 1970-01-01.
    """

    members: pd.Index
    member: np.ndarray
    day: np.ndarray
    amount: np.ndarray
    walk_in_orders: int


def _examples(index: pd.Index) -> str:
    shown = ", ".join(map(str, index[:_MAX_EXAMPLES]))
    more = f" and {len(index) - _MAX_EXAMPLES} more" if len(index) > _MAX_EXAMPLES else ""
    return f"{shown}{more}"


def _as_date(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise RFMInputError(f"{name} {value!r} is not a date") from exc
    if ts is pd.NaT:
        raise RFMInputError(f"{name} is missing")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    if ts != ts.normalize():
        raise RFMInputError(
            f"{name} {ts} has a time of day; give a calendar date (purchases on that date count)"
        )
    return ts


def _day_number(ts: pd.Timestamp) -> int:
    return int(np.datetime64(ts, "D").astype(np.int64))


def _check_unit(time_unit: str) -> int:
    if time_unit not in TIME_UNITS:
        raise RFMInputError(f"time_unit must be one of {sorted(TIME_UNITS)}, got {time_unit!r}")
    return TIME_UNITS[time_unit]


def _member_purchases(
    transactions: pd.DataFrame,
    customer_col: str,
    time_col: str,
    amount_col: str,
    by: str | None,
) -> _Purchases:
    """Validate transactions and merge each member's same-day transactions into purchases."""
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
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_localize(None)  # the local wall-clock date is the purchase day
    amounts = transactions[amount_col]
    if not pd.api.types.is_numeric_dtype(amounts) or pd.api.types.is_bool_dtype(amounts):
        raise RFMInputError(f"column {amount_col!r} must be numeric, got {amounts.dtype}")

    # Factorizing unsorted and then sorting only the distinct ids is much faster than
    # factorize(sort=True) on millions of string ids; missing ids (walk-ins) get code -1.
    codes, members = pd.factorize(transactions[customer_col], sort=False)
    order = np.argsort(members)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    members = members.take(order)
    is_member = codes >= 0
    walk_in_orders = int(len(codes) - is_member.sum())
    codes = rank[codes[is_member]]
    row_labels = transactions.index[is_member] if walk_in_orders else transactions.index

    day = times.to_numpy()[is_member]
    amount = amounts.to_numpy(dtype=np.float64, na_value=np.nan)[is_member]
    for col, bad in ((time_col, np.isnat(day)), (amount_col, ~np.isfinite(amount))):
        if bad.any():
            raise RFMInputError(
                f"column {col!r} is empty or not finite in {int(bad.sum())} member transactions "
                f"(rows {_examples(row_labels[bad])})"
            )
    day = day.astype("datetime64[D]").astype(np.int64)

    if by:
        group_codes, groups = pd.factorize(transactions[by], sort=True)
        group_codes = group_codes[is_member]
        if (group_codes < 0).any():
            raise RFMInputError(
                f"column {by!r} is empty in {int((group_codes < 0).sum())} member transactions "
                f"(rows {_examples(row_labels[group_codes < 0])})"
            )
        pairs, codes = np.unique(group_codes * len(members) + codes, return_inverse=True)
        members = pd.MultiIndex.from_arrays(
            [groups[pairs // len(members)], members[pairs % len(members)]],
            names=[by, customer_col],
        )
    else:
        members = pd.Index(members, name=customer_col)

    # One integer key per (member, day); sorting it orders purchases by member, then day.
    first_day = int(day.min()) if len(day) else 0
    span = int(day.max()) - first_day + 1 if len(day) else 1
    keys = codes * span + (day - first_day)
    order, keys = _sort_with_order(keys)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
    return _Purchases(
        members=members,
        member=keys[starts] // span,
        day=keys[starts] % span + first_day,
        amount=np.add.reduceat(amount[order], starts) if len(keys) else amount,
        walk_in_orders=walk_in_orders,
    )


def _sort_with_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(argsort(keys), sorted keys)`` for non-negative int64 keys.

    When key and row number fit together in 63 bits, one plain sort of the packed values
    replaces the argsort, which is several times slower on millions of rows.
    """
    row_bits = max(len(keys) - 1, 1).bit_length()
    if len(keys) and int(keys.max()) < 2 ** (63 - row_bits):
        packed = (keys << row_bits) | np.arange(len(keys), dtype=np.int64)
        packed.sort()
        return packed & ((1 << row_bits) - 1), packed >> row_bits
    order = np.argsort(keys, kind="stable")
    return order, keys[order]


def _summarise(p: _Purchases, keep: np.ndarray, end_day: int, unit_days: int) -> pd.DataFrame:
    """RFM of the purchases selected by ``keep`` (a mask on ``p``), observed to ``end_day``."""
    if keep.all():
        member, day, amount = p.member, p.day, p.amount
    else:
        member, day, amount = p.member[keep], p.day[keep], p.amount[keep]
    # Purchases are sorted by member, then day: each member's purchases are one run.
    first = np.flatnonzero(np.r_[True, member[1:] != member[:-1]])
    last = np.r_[first[1:], len(member)] - 1
    frequency = last - first
    repeat_total = np.add.reduceat(amount, first) - amount[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_total / frequency, 0.0)
    first_day, last_day = day[first], day[last]
    # Sum of log inter-purchase times (the MBG/CNBD-k regularity statistic): same-day
    # purchases are merged, so every gap is at least one day.
    gap = np.diff(day, prepend=day[0]) / unit_days if len(day) else day.astype(np.float64)
    log_gap = np.log(np.where(gap > 0, gap, 1.0))
    log_gap[first] = 0.0
    litt = np.add.reduceat(log_gap, first) if len(first) else log_gap
    return pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": (last_day - first_day) / unit_days,
            "T": (end_day - first_day) / unit_days,
            "litt": litt,
            "monetary_value": monetary,
            "first_purchase": _dates(first_day),
            "last_purchase": _dates(last_day),
        },
        # Taking millions of string ids costs more than the rest: skip it when all are present.
        index=p.members if len(first) == len(p.members) else p.members[member[first]],
    )


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    observation_end=None,
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
    observation_end : date-like, optional
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
        ``last_purchase`` (dates). ``attrs`` record ``time_unit``, ``observation_end``,
        ``amount_col``, ``walk_in_orders`` (excluded transactions without a customer id) and
        ``transactions_after_end`` (excluded transactions dated after ``observation_end``).

    Raises
    ------
    RFMInputError
        Missing columns, non-timestamp times, empty or infinite values (rows are named), or no
        member purchase on or before ``observation_end``.
    """
    unit_days = _check_unit(time_unit)
    purchases = _member_purchases(transactions, customer_col, time_col, amount_col, by)
    if observation_end is None:
        if not len(purchases.day):
            raise RFMInputError("transactions hold no member purchases")
        end_day = int(purchases.day.max())
    else:
        end_day = _day_number(_as_date(observation_end, "observation_end"))
    keep = purchases.day <= end_day
    if not keep.any():
        raise RFMInputError(f"no member purchase on or before {_day_date(end_day).date()}")
    summary = _summarise(purchases, keep, end_day, unit_days)
    summary.attrs = {
        "time_unit": time_unit,
        "observation_end": _day_date(end_day),
        "amount_col": amount_col,
        "walk_in_orders": purchases.walk_in_orders,
        "transactions_after_end": _transactions_after(transactions, time_col, customer_col, end_day),
    }
    return summary


def _dates(days: np.ndarray) -> np.ndarray:
    """Day numbers (days since 1970-01-01) as datetime64[ns] dates."""
    return days.astype("datetime64[D]").astype("datetime64[ns]")


def _day_date(day: int) -> pd.Timestamp:
    return pd.Timestamp(np.datetime64(day, "D"))


def _transactions_after(
    transactions: pd.DataFrame, time_col: str, customer_col: str, end_day: int
) -> int:
    """Member transactions dated after ``end_day`` (counted before same-day merging)."""
    limit = _day_date(end_day + 1)
    times = transactions[time_col]
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_localize(None)
    return int(((times >= limit) & transactions[customer_col].notna()).sum())


@dataclass
class CalibrationHoldout:
    """Members' purchases split at a cut date into a calibration and a holdout period.

    Attributes
    ----------
    calibration : DataFrame
        :func:`rfm_summary` observed to ``cut_date`` (purchases on the cut date included).
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
    cut_date, holdout_end : Timestamp
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
    cut_date: pd.Timestamp
    holdout_end: pd.Timestamp
    time_unit: str
    walk_in_orders: int
    transactions_after_holdout: int

    @property
    def duration_holdout(self) -> float:
        """Holdout length in ``time_unit``: days after the cut date up to ``holdout_end``."""
        return (self.holdout_end - self.cut_date).days / TIME_UNITS[self.time_unit]


def calibration_holdout(
    transactions: pd.DataFrame,
    cut_date,
    *,
    holdout_end=None,
    time_unit: str = "days",
    customer_col: str = "member_id",
    time_col: str = "ordered_at",
    amount_col: str = "paid_amount",
    by: str | None = None,
) -> CalibrationHoldout:
    """Split members' purchases at ``cut_date`` into calibration RFM and holdout outcomes.

    Parameters
    ----------
    transactions : DataFrame
        One row per transaction, as for :func:`rfm_summary`.
    cut_date : date-like
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
    unit_days = _check_unit(time_unit)
    purchases = _member_purchases(transactions, customer_col, time_col, amount_col, by)
    cut = _as_date(cut_date, "cut_date")
    cut_day = _day_number(cut)
    if not len(purchases.day):
        raise RFMInputError("transactions hold no member purchases")
    end_day = (
        int(purchases.day.max())
        if holdout_end is None
        else _day_number(_as_date(holdout_end, "holdout_end"))
    )
    if end_day <= cut_day:
        raise RFMInputError(
            f"holdout_end {_day_date(end_day).date()} must be after cut_date {cut.date()}"
        )
    in_calibration = purchases.day <= cut_day
    if not in_calibration.any():
        raise RFMInputError(f"no member purchase on or before cut_date {cut.date()}")
    calibration = _summarise(purchases, in_calibration, cut_day, unit_days)
    calibration.attrs = {
        "time_unit": time_unit,
        "observation_end": cut,
        "amount_col": amount_col,
        "walk_in_orders": purchases.walk_in_orders,
        "transactions_after_end": _transactions_after(
            transactions, time_col, customer_col, cut_day
        ),
    }

    n = len(purchases.members)
    # Every member code has at least one purchase; purchases are sorted by member, then day.
    first_of_member = np.r_[True, purchases.member[1:] != purchases.member[:-1]]
    member_first_day = purchases.day[first_of_member]
    cal_member = member_first_day <= cut_day
    known = cal_member[purchases.member]
    in_window = purchases.day <= end_day
    in_holdout = in_window & ~in_calibration

    holdout_count = np.bincount(purchases.member[in_holdout], minlength=n)
    holdout_spend = np.bincount(
        purchases.member[in_holdout], weights=purchases.amount[in_holdout], minlength=n
    )
    cal_rows = np.flatnonzero(cal_member)
    count = holdout_count[cal_rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_spend = np.where(count > 0, holdout_spend[cal_rows] / count, 0.0)
    holdout = pd.DataFrame(
        {
            "frequency_holdout": count.astype(np.int64),
            "monetary_holdout": mean_spend,
            "duration_holdout": (end_day - cut_day) / unit_days,
        },
        index=calibration.index,
    )

    new_rows = np.flatnonzero(~cal_member & (member_first_day <= end_day))
    new_in_holdout = pd.DataFrame(
        {
            "first_purchase": _dates(member_first_day[new_rows]),
            "purchases": holdout_count[new_rows].astype(np.int64),
            "spend": holdout_spend[new_rows],
        },
        index=purchases.members[new_rows],
    )

    repeat = known & in_window & ~first_of_member
    return CalibrationHoldout(
        calibration=calibration,
        holdout=holdout,
        new_in_holdout=new_in_holdout,
        first_purchases=_count_by_date(calibration["first_purchase"].to_numpy()),
        repeat_purchases=_count_by_date(_dates(purchases.day[repeat])),
        cut_date=cut,
        holdout_end=_day_date(end_day),
        time_unit=time_unit,
        walk_in_orders=purchases.walk_in_orders,
        transactions_after_holdout=_transactions_after(
            transactions, time_col, customer_col, end_day
        ),
    )


def _count_by_date(dates: np.ndarray) -> pd.Series:
    values, counts = np.unique(dates, return_counts=True)
    return pd.Series(counts, index=pd.DatetimeIndex(values, name="date"), name="purchases")
