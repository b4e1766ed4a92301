"""Checks of the arguments the analysis functions share, each written once.

Every public function of :mod:`rxrepurchase.rfm`, :mod:`rxrepurchase.metrics`,
:mod:`rxrepurchase.cohorts`, :mod:`rxrepurchase.segments`, :mod:`rxrepurchase.engine` and
:mod:`rxrepurchase.batch` reads ``by``, ``as_of`` and ``time_unit`` through these, so the same
argument means the same thing and fails with the same message everywhere. The purchase options
(``purchase_unit``, ``zero_paid``) are checked by :func:`rxrepurchase.core.purchases.check_options`,
calendar periods by :func:`rxrepurchase.core.rates.period_freq`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from rxrepurchase.errors import MetricsInputError, RFMInputError

__all__ = ["TIME_UNITS", "as_date", "as_list", "check_unit", "default_as_of"]

TIME_UNITS: dict[str, int] = {"days": 1, "weeks": 7}
"""Time units of recency and T, as their length in days."""


def check_unit(time_unit: str) -> int:
    """The length in days of ``time_unit`` (``"days"`` or ``"weeks"``).

    Raises
    ------
    RFMInputError
        Any other unit.
    """
    if time_unit not in TIME_UNITS:
        raise RFMInputError(f"time_unit must be one of {sorted(TIME_UNITS)}, got {time_unit!r}")
    return TIME_UNITS[time_unit]


def as_date(value, name: str) -> pd.Timestamp:
    """``value`` as a calendar date (a midnight ``Timestamp`` without time zone; a zone is
    dropped, the wall-clock date kept).

    Raises
    ------
    RFMInputError
        Not a date, missing, or with a time of day (``name`` is the argument named).
    """
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


def as_list(by: str | Sequence[str] | None) -> list[str]:
    """Grouping columns as a list: ``None`` is no grouping, a string one column."""
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def default_as_of(orders: pd.DataFrame, as_of) -> pd.Timestamp:
    """The analysis date: ``as_of`` (its day), else the day of the last order.

    Raises
    ------
    MetricsInputError
        ``orders`` is empty and no ``as_of`` is given.
    """
    if as_of is not None:
        return pd.Timestamp(as_of).normalize()
    if len(orders) == 0:
        raise MetricsInputError("orders is empty: pass as_of explicitly")
    return orders["ordered_at"].max().normalize()
