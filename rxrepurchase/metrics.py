"""Repurchase metrics (复购率) on a chain's orders: plain functions, pandas in, pandas out.

Definitions (see ``docs/metrics.md`` for the full rules and worked examples):

- **user repurchase rate** (用户复购率) = members with two or more purchases in the window /
  members with at least one purchase in the window;
- **order repurchase rate** (订单复购率) = purchases that are a member's second or later in
  the window / all member purchases in the window.

Edge rules, the same in every function of this module:

- **Walk-in orders** (empty ``member_id``) are outside every member metric; their share of
  orders and of revenue is reported by :func:`walk_in_share`.
- **One purchase** is, by default, one member-day (``purchase_unit="day"``): several orders a
  member places on the same calendar day (a split ticket, a second trip for a forgotten item)
  count once. ``purchase_unit="order"`` counts every order.
- **Refunds and zero-paid orders**: an order with ``paid_amount < 0`` (a refund or reversal
  ticket) is never a purchase; an order with ``paid_amount == 0`` (a free gift pick-up, a fully
  subsidised order) is not a purchase unless ``zero_paid="include"``. Money measures (ARPU,
  Pareto shares) sum ``paid_amount`` as it is, so refunds reduce revenue. Rate tables report
  the member orders not counted as purchases in ``excluded_orders``.
- Purchases are counted **within the group**: by store, a member who bought once in store A
  and once in store B is a one-time buyer of each store (but a repeat buyer of the chain).

Windows (the ``window`` argument) are calendar periods (``"M"``/``"ME"``, ``"Q"``/``"QE"``,
``"Y"``/``"YE"``, ``"W"``), N-day windows (``90`` or ``"90D"``; with ``step=`` in days they
roll), one explicit ``(start, end)`` pair of inclusive dates, a list of pairs, or a dict of
named pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd

from rxrepurchase.arguments import as_list, default_as_of
from rxrepurchase.contract import require_columns
from rxrepurchase.core import backend
from rxrepurchase.core import purchases as core_purchases
from rxrepurchase.core import rates as core_rates
from rxrepurchase.core import revenue as core_revenue
from rxrepurchase.core.purchases import PurchaseUnit, ZeroPaid, check_options
from rxrepurchase.core.rates import CALENDAR_FREQ, period_freq
from rxrepurchase.errors import MetricsInputError
from rxrepurchase.frames import local_times, member_positions, ratio
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "MetricsInputError",
    "purchases",
    "repurchase_rates",
    "user_repurchase_rate",
    "order_repurchase_rate",
    "walk_in_share",
    "n_day_repurchase",
    "cohort_retention",
    "retention_matrix",
    "retention_curve",
    "inter_purchase_intervals",
    "arpu",
    "pareto_share",
]

_ORDER_COLUMNS = ("order_id", "member_id", "store_id", "ordered_at", "paid_amount")


# --------------------------------------------------------------------------- windows


def _window_table(window, first: pd.Timestamp, last: pd.Timestamp, step=None) -> pd.DataFrame:
    """Resolve a window spec into rows ``window, window_start, window_end`` (inclusive dates)."""
    if isinstance(window, str) and window.upper() in CALENDAR_FREQ:
        if step is not None:
            raise MetricsInputError("step= only applies to N-day windows, not calendar periods")
        periods = pd.period_range(first, last, freq=CALENDAR_FREQ[window.upper()])
        return pd.DataFrame(
            {
                "window": periods.astype(str),
                "window_start": periods.start_time.normalize(),
                "window_end": periods.end_time.normalize(),
            }
        )
    days = _n_days(window)
    if days is not None:
        step_days = days if step is None else _n_days(step)
        if step_days is None or step_days <= 0:
            raise MetricsInputError(f"step must be a positive number of days, got {step!r}")
        ends = []
        end = last
        # N-day windows tile back from the last date; a window reaching before the first date
        # would be partly empty, so the earliest window starts on or after it.
        while end - pd.Timedelta(days=days - 1) >= first:
            ends.append(end)
            end = end - pd.Timedelta(days=step_days)
        ends = pd.DatetimeIndex(sorted(ends))
        starts = ends - pd.Timedelta(days=days - 1)
        return pd.DataFrame(
            {
                "window": [
                    f"{s:%Y-%m-%d}..{e:%Y-%m-%d}" for s, e in zip(starts, ends, strict=True)
                ],
                "window_start": starts,
                "window_end": ends,
            }
        )
    if isinstance(window, dict):
        items = list(window.items())
    elif isinstance(window, tuple) and len(window) == 2 and not isinstance(window[0], tuple):
        items = [(None, window)]
    elif isinstance(window, list) and all(isinstance(w, tuple) and len(w) == 2 for w in window):
        items = [(None, w) for w in window]
    else:
        raise MetricsInputError(
            f"window {window!r} not understood: use 'M'/'ME', 'Q'/'QE', 'Y'/'YE', 'W', "
            "a number of days (90 or '90D'), a (start, end) pair, a list or a dict of pairs"
        )
    rows = []
    for name, (s, e) in items:
        s, e = pd.Timestamp(s).normalize(), pd.Timestamp(e).normalize()
        if e < s:
            raise MetricsInputError(f"window {name or (s, e)!r}: end {e:%Y-%m-%d} is before start")
        rows.append((name or f"{s:%Y-%m-%d}..{e:%Y-%m-%d}", s, e))
    return pd.DataFrame(rows, columns=["window", "window_start", "window_end"]).astype(
        {"window_start": "datetime64[ns]", "window_end": "datetime64[ns]"}
    )


def _n_days(spec) -> int | None:
    if isinstance(spec, bool):
        return None
    if isinstance(spec, (int, np.integer)):
        return int(spec) if spec > 0 else _bad_days(spec)
    if isinstance(spec, pd.Timedelta):
        return spec.days if spec.days > 0 else _bad_days(spec)
    if isinstance(spec, str) and spec[:-1].isdigit() and spec[-1] in "dD":
        return int(spec[:-1]) if int(spec[:-1]) > 0 else _bad_days(spec)
    return None


def _bad_days(spec) -> int:
    raise MetricsInputError(f"an N-day window needs a positive number of days, got {spec!r}")


# --------------------------------------------------------------------------- purchases


def purchases(
    orders: pd.DataFrame,
    *,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
    columns: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per member purchase, in time order per member.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders (contract table ``orders``).
    purchase_unit : {"day", "order"}
        ``"day"`` (default) merges a member's orders of one calendar day into one purchase;
        ``"order"`` keeps every order.
    zero_paid : {"exclude", "include"}
        Whether orders with ``paid_amount == 0`` are purchases. Refunds (``< 0``) never are.
    columns : sequence of str
        Further order columns to carry (with ``"day"``: the value on the day's first order).

    Returns
    -------
    DataFrame
        ``member_id, purchased_on`` (the date), ``ordered_at`` (first order's time),
        ``store_id``, ``order_id`` (of the first order that day), ``n_orders``, the summed money
        columns present (``gross_amount, discount_amount, paid_amount``) and ``purchase_number``
        (1 for the member's first purchase).
    """
    check_options(purchase_unit, zero_paid)
    require_columns(orders, [*_ORDER_COLUMNS, *columns], "orders")
    money = [c for c in ("gross_amount", "discount_amount", "paid_amount") if c in orders.columns]
    carried = list(dict.fromkeys(["ordered_at", "store_id", "order_id", *columns]))
    frame, ids = _member_orders_frame(orders, [*carried, *money])
    with backend.tables(frame) as (table,):
        p = core_purchases.purchases(table, purchase_unit=purchase_unit, zero_paid=zero_paid,
                                     amounts=money, carry=carried, numbered=True)  # fmt: skip
        out = backend.to_pandas(p.order_by(["member_id", "purchase_number"]))
    out = out.rename(columns={"day": "purchased_on"})
    out["member_id"] = ids.take(out["member_id"].to_numpy())
    out["purchased_on"] = out["purchased_on"].astype(frame["ordered_at"].dtype)
    for c in carried:
        out[c] = out[c].astype(orders[c].dtype)
    counts = ["n_orders", *money] if purchase_unit == "day" else [*money, "n_orders"]
    return out[["member_id", "purchased_on", *carried, *counts, "purchase_number"]]


def repurchase_rates(
    orders: pd.DataFrame,
    window="M",
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
    start=None,
    end=None,
    step=None,
) -> pd.DataFrame:
    """User and order repurchase rates per window and group, as a tidy table.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders; walk-in orders are ignored (see :func:`walk_in_share`).
    window : str, int, tuple, list or dict
        ``"M"``/``"ME"``, ``"Q"``/``"QE"``, ``"Y"``/``"YE"``, ``"W"`` calendar periods; ``90``
        or ``"90D"`` for N-day windows tiled back from ``end``; a ``(start, end)`` pair of
        inclusive dates, a list of pairs or a dict ``{name: (start, end)}``.
    by : str or list of str, optional
        Grouping columns of ``orders`` (``store_id``, ``channel`` ...) or of ``members``
        (``tier``, ``age_band`` ...), joined on ``member_id``.
    members : DataFrame, optional
        Needed when ``by`` names member columns.
    purchase_unit : {"day", "order"}
        What counts as one purchase (default: a member-day).
    zero_paid : {"exclude", "include"}
        Whether zero-paid orders count as purchases (refunds never do).
    start, end : date-like, optional
        Range the calendar / N-day windows cover (default: first and last order date).
    step : int or str, optional
        For N-day windows: days between window ends; smaller than N makes rolling windows.

    Returns
    -------
    DataFrame
        One row per window x group with ``window, window_start, window_end``, the ``by``
        columns, ``members`` (with ≥1 purchase), ``repeat_members`` (≥2), ``user_repurchase_rate``,
        ``purchases``, ``repeat_purchases`` (2nd or later), ``order_repurchase_rate`` and
        ``excluded_orders`` (member orders with ``paid_amount`` ≤ 0 not counted as purchases).
        Windows and groups without any purchase are absent.
    """
    check_options(purchase_unit, zero_paid)
    require_columns(orders, _ORDER_COLUMNS, "orders")
    by = as_list(by)
    member_cols = [c for c in by if c not in orders.columns]
    labels = _group_labels(orders, by)
    frame, ids = _member_orders_frame(orders, [c for c in by if c in orders.columns])
    with backend.tables(frame, *_members_frame(members, member_cols, frame, ids)) as tabs:
        return rates_table(tabs[0], window, by, members=tabs[1] if member_cols else None,
                           member_columns=member_cols, labels=labels, purchase_unit=purchase_unit,
                           zero_paid=zero_paid, start=start, end=end, step=step)  # fmt: skip


def _member_orders_frame(orders: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.Index]:
    """The member orders' columns the core needs (after checking that none lacks paid_amount),
    member ids as their rank (:func:`rxrepurchase.core.backend.ranked_ids`), and the ids."""
    is_member = orders["member_id"].notna().to_numpy()
    core_purchases.purchase_mask(orders)  # names a member order without paid_amount
    cols = list(dict.fromkeys(["order_id", "member_id", "ordered_at", "paid_amount", *columns]))
    frame = orders.loc[is_member, cols] if not is_member.all() else orders[cols]
    member, ids = backend.ranked_ids(frame["member_id"])
    frame = frame.assign(member_id=member, paid_amount=frame["paid_amount"].astype("float64"),
                         ordered_at=local_times(frame["ordered_at"]).array)  # fmt: skip
    return frame, ids


def _members_frame(
    members: pd.DataFrame | None, columns: list[str], frame: pd.DataFrame, ids: pd.Index
) -> list[pd.DataFrame]:
    """``[members[member_id, columns]]`` with ids coded as in ``frame`` when ``columns`` are
    needed, else ``[]``. Checks that every member of ``frame`` is in ``members`` once."""
    if not columns:
        return []
    rows_per_id = np.bincount(frame["member_id"].to_numpy(), minlength=len(ids))
    member_positions(ids, columns, members, rows_per_id)
    # Members without an order get -1, which no order has.
    return [members[columns].assign(member_id=ids.get_indexer(members["member_id"]))]


def _labelled(values: pd.Series, dtype) -> pd.Series:
    """Group labels in the caller's dtype (None: as Arrow gives them)."""
    return values if dtype is None else values.astype(dtype)


def rates_table(
    orders,
    window,
    by: list[str],
    *,
    members=None,
    member_columns: Sequence[str] = (),
    labels: dict | None = None,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
    start=None,
    end=None,
    step=None,
    con=None,
) -> pd.DataFrame:
    """:func:`repurchase_rates` of Ibis ``orders`` (and ``members``) tables with the contract's
    names: the one implementation behind it and :func:`rxrepurchase.engine.repurchase_rates`.
    ``labels`` give each ``by`` column its dtype (None: as Arrow gives it). ``members`` must
    hold each member of ``orders`` once: the pandas wrapper checks it, the engine's validated
    views guarantee it."""
    if "member_id" in by:  # a rate counts members: one member is not a group of them
        raise MetricsInputError("repurchase_rates by='member_id': a repurchase rate is a share of "
                                "members; group by an order or member column (store_id, tier, ...), "
                                "or see one member's purchases with rfm_summary")
    with _windows(orders, window, start, end, step, con) as (windows, w):
        table = backend.to_pandas(core_rates.repurchase_rates(
            orders, w, by=by, members=members, member_columns=member_columns,
            purchase_unit=purchase_unit, zero_paid=zero_paid, period=_period(window),
        ))  # fmt: skip
    out = _window_groups(windows, table, by, labels)
    out["members"] = table["members"]
    out["repeat_members"] = table["repeat_members"]
    out["user_repurchase_rate"] = ratio(out["repeat_members"], out["members"])
    out["purchases"] = table["purchases"]
    out["repeat_purchases"] = out["purchases"] - out["members"]
    out["order_repurchase_rate"] = ratio(out["repeat_purchases"], out["purchases"])
    out["excluded_orders"] = table["excluded_orders"]
    return _in_window_order(out, table, by)


def _period(window) -> str | None:
    """The calendar period a window spec names, if it names one."""
    return CALENDAR_FREQ.get(window.upper()) if isinstance(window, str) else None


@contextmanager
def _windows(orders, window, start, end, step, con=None, *, span=("first", "last")
             ) -> Iterator[tuple[pd.DataFrame, object]]:
    """The window table of ``window`` between ``start`` and ``end`` (default: the ``span``
    columns of :func:`rxrepurchase.core.rates.member_span`: the member orders' first and last,
    or ``("earliest", "latest")`` of all orders), and its ``window_id`` and dates as an Ibis
    table on the orders' backend for the ``with`` block."""
    if start is None or end is None:
        row = backend.to_pandas(core_rates.member_span(orders), con).iloc[0]
        if pd.isna(row[span[0]]):
            raise MetricsInputError("orders hold no member orders" if span[0] == "first"
                                    else "orders is empty")  # fmt: skip
    first = pd.Timestamp(start if start is not None else row[span[0]]).normalize()
    last = pd.Timestamp(end if end is not None else row[span[1]]).normalize()
    windows = _window_table(window, first, last, step)
    if windows.empty:
        raise MetricsInputError(
            f"window {window!r} yields no window between {first:%Y-%m-%d} and {last:%Y-%m-%d}"
        )
    dates = pd.DataFrame({
        "window_id": np.arange(len(windows)),
        "window_start": windows["window_start"].dt.date, "window_end": windows["window_end"].dt.date,
    })  # fmt: skip
    with backend.tables(dates, con=orders._find_backend()) as (w,):
        yield windows, w


def _window_groups(windows: pd.DataFrame, table: pd.DataFrame, by: list[str], labels) -> pd.DataFrame:
    """``window, window_start, window_end`` and the ``by`` columns (in their ``labels``
    dtypes) of each row of a core table keyed by ``window_id``."""
    out = windows.iloc[table["window_id"].to_numpy()].reset_index(drop=True)
    for c in by:
        out[c] = _labelled(table[c], (labels or {}).get(c))
    return out


def _in_window_order(out: pd.DataFrame, table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows by window dates, then groups; windows of the same dates in their given order."""
    keys = ["window_start", "window_end", *by, "_w"]
    out = out.assign(_w=table["window_id"].to_numpy())
    return out.sort_values(keys, kind="stable", ignore_index=True).drop(columns="_w")


def user_repurchase_rate(orders: pd.DataFrame, window=None, **kwargs) -> float:
    """The user repurchase rate (用户复购率) of one window as a number.

    ``window`` is a ``(start, end)`` pair (default: all orders); other keyword arguments as in
    :func:`repurchase_rates` (``purchase_unit``, ``zero_paid``). NaN when nobody purchased.
    """
    return _single(orders, window, "user_repurchase_rate", **kwargs)


def order_repurchase_rate(orders: pd.DataFrame, window=None, **kwargs) -> float:
    """The order repurchase rate (订单复购率) of one window as a number; see
    :func:`user_repurchase_rate`."""
    return _single(orders, window, "order_repurchase_rate", **kwargs)


def _single(orders: pd.DataFrame, window, column: str, **kwargs) -> float:
    if window is None:
        window = (orders["ordered_at"].min(), orders["ordered_at"].max())
    if not (isinstance(window, tuple) and len(window) == 2):
        raise MetricsInputError(f"window must be one (start, end) pair here, got {window!r}")
    table = repurchase_rates(orders, window, **kwargs)
    return float(table[column].iloc[0]) if len(table) else math.nan


def walk_in_share(
    orders: pd.DataFrame,
    window="M",
    by: str | Sequence[str] | None = None,
    *,
    start=None,
    end=None,
    step=None,
) -> pd.DataFrame:
    """Share of orders and of paid revenue from walk-in customers (orders without a member).

    Parameters are as in :func:`repurchase_rates`; ``by`` names order columns only (a walk-in
    has no member attributes).

    Returns
    -------
    DataFrame
        One row per window x group: ``orders, walk_in_orders, walk_in_order_share, revenue,
        walk_in_revenue, walk_in_revenue_share`` (revenue = ``paid_amount``, all orders).
    """
    require_columns(orders, _ORDER_COLUMNS, "orders")
    by = as_list(by)
    member = pd.arrays.IntegerArray(np.zeros(len(orders), "int64"), orders["member_id"].isna().to_numpy())
    frame = pd.DataFrame({"member_id": member, "ordered_at": local_times(orders["ordered_at"]).array,
                          "paid_amount": orders["paid_amount"].to_numpy("float64", na_value=np.nan),
                          **{c: orders[c].array for c in by if c in orders.columns}})  # fmt: skip
    with backend.tables(frame) as (table,):
        return walk_in_table(table, window, by, labels=_group_labels(orders, by),
                             start=start, end=end, step=step)  # fmt: skip


def walk_in_table(orders, window, by: list[str], *, labels: dict | None = None, start=None,
                  end=None, step=None, con=None) -> pd.DataFrame:
    """:func:`walk_in_share` of an Ibis ``orders`` table with the contract's names: the one
    implementation behind it and :func:`rxrepurchase.engine.walk_in_share` (``labels`` as in
    :func:`rates_table`)."""
    bad = [c for c in by if c not in orders.columns]
    if bad:
        raise MetricsInputError(f"walk_in_share groups by order columns only; not in orders: {bad}")
    with _windows(orders, window, start, end, step, con, span=("earliest", "latest")) as (windows, w):
        table = backend.to_pandas(core_revenue.walk_in_share(orders, w, by=by, period=_period(window)))
    out = _window_groups(windows, table, by, labels)
    out["orders"] = table["orders"].astype("int64")
    out["walk_in_orders"] = table["walk_in_orders"].astype("int64")
    out["walk_in_order_share"] = ratio(out["walk_in_orders"], out["orders"])
    out["revenue"] = table["revenue"].fillna(0.0)  # a sum over no amount is 0, as in pandas
    out["walk_in_revenue"] = table["walk_in_revenue"].fillna(0.0)
    out["walk_in_revenue_share"] = ratio(out["walk_in_revenue"], out["revenue"])
    return _in_window_order(out, table, by)


# --------------------------------------------------------------------------- after the first purchase


@renamed_keywords(days="outcome_days")
def n_day_repurchase(
    orders: pd.DataFrame,
    outcome_days: Sequence[int] = (30, 60, 90),
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    as_of=None,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
) -> pd.DataFrame:
    """Share of new buyers who purchase again within N days of their first purchase.

    A member's first purchase is their first in ``orders``. A member is *eligible* for N days
    when the first purchase is at least N days before ``as_of`` (otherwise we cannot know yet);
    they *repurchased* when their second purchase is at most N days after the first. With
    ``purchase_unit="order"`` a second order on the same day counts (0 days).

    Parameters
    ----------
    orders : DataFrame
        The chain's orders.
    outcome_days : sequence of int
        The N days after the first purchase, default 30, 60 and 90.
    by : str or list of str, optional
        Order columns (value on the first purchase), member columns, or ``cohort_month``.
    members : DataFrame, optional
        Needed when ``by`` names member columns.
    as_of : date-like, optional
        Analysis date (default: date of the last order).
    purchase_unit, zero_paid
        As in :func:`repurchase_rates`.

    Returns
    -------
    DataFrame
        One row per group x horizon: ``days, eligible_members, repurchased_members,
        n_day_repurchase_rate``.
    """
    check_options(purchase_unit, zero_paid)
    require_columns(orders, _ORDER_COLUMNS, "orders")
    by = as_list(by)
    order_cols = [c for c in by if c in orders.columns and c != "cohort_month"]
    member_cols = [c for c in by if c not in orders.columns and c != "cohort_month"]
    as_of = default_as_of(orders, as_of)
    frame, ids = _member_orders_frame(orders, order_cols)
    labels = {**_group_labels(orders, by), "cohort_month": "str", "member_id": None}
    with backend.tables(frame, *_members_frame(members, member_cols, frame, ids)) as tabs:
        out = n_day_table(tabs[0], outcome_days, by, members=tabs[1] if member_cols else None,
                          member_columns=member_cols, labels=labels, as_of=as_of,
                          purchase_unit=purchase_unit, zero_paid=zero_paid)  # fmt: skip
    if "member_id" in by:  # the core saw the ids as their ranks
        out["member_id"] = ids.take(out["member_id"].to_numpy())
    return out


def n_day_table(
    orders,
    outcome_days: Sequence[int],
    by: list[str],
    *,
    members=None,
    member_columns: Sequence[str] = (),
    labels: dict | None = None,
    as_of=None,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
    con=None,
) -> pd.DataFrame:
    """:func:`n_day_repurchase` of Ibis tables with the contract's names: the one
    implementation behind it and :func:`rxrepurchase.engine.n_day_repurchase` (``labels`` as
    in :func:`rates_table`; ``as_of`` default: the last order's date)."""
    horizons = [_n_days(d) for d in outcome_days]
    if not horizons or any(h is None for h in horizons):
        raise MetricsInputError(f"outcome_days must be positive whole numbers of days, got {outcome_days!r}")
    if len(set(horizons)) < len(horizons):  # each would be counted twice in one table
        raise MetricsInputError(f"outcome_days has a repeated value: {outcome_days!r}")
    check_options(purchase_unit, zero_paid)
    table = backend.to_pandas(core_rates.n_day_repurchase(
        orders, horizons, as_of=_analysis_day(orders, as_of, con).date(), by=by, members=members,
        member_columns=member_columns, purchase_unit=purchase_unit, zero_paid=zero_paid,
    ), con)  # fmt: skip
    out = pd.DataFrame({c: _labelled(table[c], (labels or {}).get(c)) for c in by})
    out["days"] = table["days"].astype("int64")
    out["eligible_members"] = table["eligible_members"].astype("int64")
    out["repurchased_members"] = table["repurchased_members"].astype("int64")
    out["n_day_repurchase_rate"] = ratio(out["repurchased_members"], out["eligible_members"])
    return out.sort_values([*by, "days"], kind="stable", ignore_index=True)


def _analysis_day(orders, as_of, con=None) -> pd.Timestamp:
    """``as_of``'s day, else the day of the last order of Ibis ``orders``."""
    if as_of is None:
        as_of = backend.to_pandas(core_rates.member_span(orders), con)["latest"].iloc[0]
        if pd.isna(as_of):
            raise MetricsInputError("orders is empty: pass as_of explicitly")
    return pd.Timestamp(as_of).normalize()


def _period_ordinal(dates: pd.Series, freq: str) -> np.ndarray:
    return pd.PeriodIndex(dates, freq=freq).asi8


def _last_complete_period(as_of: pd.Timestamp, freq: str) -> int:
    """Ordinal of the last period that has ended by ``as_of`` (inclusive)."""
    return pd.Period(as_of + pd.Timedelta(days=1), freq=freq).ordinal - 1


def cohort_retention(
    orders: pd.DataFrame,
    freq: str = "M",
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    as_of=None,
    zero_paid: ZeroPaid = "exclude",
) -> pd.DataFrame:
    """Acquisition-cohort retention as a tidy table.

    A member's cohort is the period of their first purchase; they are *active* in period k
    (``periods_since_first``) when they purchase in the k-th period after it. Only periods that
    have ended by ``as_of`` appear, so the last, partial period never drags retention down;
    members first buying in an unfinished period are not in any cohort yet.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders.
    freq : str
        Period length: ``"M"`` (default) / ``"ME"``, ``"Q"`` / ``"QE"``, ``"W"``, ``"Y"``.
    by : str or list of str, optional
        As in :func:`n_day_repurchase`.
    members : DataFrame, optional
        Needed when ``by`` names member columns.
    as_of : date-like, optional
        Analysis date (default: date of the last order).
    zero_paid : {"exclude", "include"}
        As in :func:`repurchase_rates`.

    Returns
    -------
    DataFrame
        ``by..., cohort, periods_since_first, cohort_members, active_members, retention``,
        with a row (possibly 0 active) for every observable cohort x period.
    """
    require_columns(orders, _ORDER_COLUMNS, "orders")
    by = as_list(by)
    member_cols = [c for c in by if c not in orders.columns]
    labels = _group_labels(orders, by)
    frame, ids = _member_orders_frame(orders, [c for c in by if c in orders.columns])
    as_of = default_as_of(orders, as_of)
    with backend.tables(frame, *_members_frame(members, member_cols, frame, ids)) as tabs:
        return cohort_table(tabs[0], freq, by, members=tabs[1] if member_cols else None,
                            member_columns=member_cols, labels=labels, as_of=as_of,
                            zero_paid=zero_paid)  # fmt: skip


def cohort_table(
    orders,
    freq: str,
    by: list[str],
    *,
    members=None,
    member_columns: Sequence[str] = (),
    labels: dict | None = None,
    as_of=None,
    zero_paid: ZeroPaid = "exclude",
    con=None,
) -> pd.DataFrame:
    """:func:`cohort_retention` of Ibis tables with the contract's names: the one implementation
    behind it and :func:`rxrepurchase.engine.cohort_retention` (``labels`` as in
    :func:`rates_table`; ``as_of`` default: the last order's date)."""
    freq = period_freq(freq)
    last = _last_complete_period(_analysis_day(orders, as_of, con), freq)
    sizes, active = core_rates.cohorts(orders, freq=freq, last=last, by=by, members=members,
                                       member_columns=member_columns, zero_paid=zero_paid)  # fmt: skip
    sizes = backend.to_pandas(sizes, con).sort_values([*by, "cohort"], ignore_index=True)
    active = backend.to_pandas(active, con)
    # Every observable (cohort, k) cell, zeros included.
    n_obs = (last - sizes["cohort"].to_numpy() + 1).astype("int64")
    rows = np.repeat(np.arange(len(sizes)), n_obs)
    grid = sizes.iloc[rows].reset_index(drop=True)
    grid["periods_since_first"] = np.arange(n_obs.sum()) - np.repeat(np.cumsum(n_obs) - n_obs, n_obs)
    grid = grid.merge(active, on=[*by, "cohort", "periods_since_first"], how="left", sort=False)
    out = pd.DataFrame({c: _labelled(grid[c], (labels or {}).get(c)) for c in by})
    out["cohort"] = pd.PeriodIndex.from_ordinals(grid["cohort"].to_numpy("int64"), freq=freq).astype(str)
    out["periods_since_first"] = grid["periods_since_first"].astype("int64")
    out["cohort_members"] = grid["cohort_members"].astype("int64")
    out["active_members"] = grid["active_members"].fillna(0).astype("int64")
    out["retention"] = ratio(out["active_members"], out["cohort_members"])
    return out


def retention_matrix(
    orders: pd.DataFrame,
    freq: str = "M",
    *,
    as_of=None,
    zero_paid: ZeroPaid = "exclude",
) -> pd.DataFrame:
    """Cohort x periods-since-first-purchase retention matrix (rows: cohorts, columns: k).

    Cells not observable yet are NaN. See :func:`cohort_retention` for the rules and for the
    cohort sizes.
    """
    long = cohort_retention(orders, freq, as_of=as_of, zero_paid=zero_paid)
    return long.pivot(index="cohort", columns="periods_since_first", values="retention")


def retention_curve(
    orders: pd.DataFrame,
    freq: str = "M",
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    as_of=None,
    zero_paid: ZeroPaid = "exclude",
) -> pd.DataFrame:
    """Retention k periods after the first purchase, pooled over cohorts, per group.

    At each k only cohorts old enough to observe k count (``eligible_members``), so younger
    cohorts do not bias the curve down.

    Returns
    -------
    DataFrame
        ``by..., periods_since_first, eligible_members, active_members, retention``.
    """
    by = as_list(by)
    long = cohort_retention(orders, freq, by, members=members, as_of=as_of, zero_paid=zero_paid)
    curve = (
        long.groupby([*by, "periods_since_first"], dropna=False, sort=True)[
            ["cohort_members", "active_members"]
        ]
        .sum()
        .rename(columns={"cohort_members": "eligible_members"})
        .reset_index()
    )
    curve["retention"] = ratio(curve["active_members"], curve["eligible_members"])
    return curve


def inter_purchase_intervals(
    orders: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    purchase_unit: PurchaseUnit = "day",
    zero_paid: ZeroPaid = "exclude",
) -> pd.DataFrame:
    """Days between each member's consecutive purchases.

    Returns
    -------
    DataFrame
        One row per repeat purchase: ``member_id, purchase_number`` (2 or more),
        ``previous_purchase_on, purchased_on, interval_days`` and the ``by`` columns (order
        columns take the value of the later purchase).
    """
    check_options(purchase_unit, zero_paid)
    by = as_list(by)
    order_cols = [c for c in by if c in orders.columns and c != "member_id"]
    require_columns(orders, [*_ORDER_COLUMNS, *order_cols], "orders")
    member_cols = [c for c in by if c not in orders.columns]
    frame, ids = _member_orders_frame(orders, order_cols)
    with backend.tables(frame, *_members_frame(members, member_cols, frame, ids)) as tabs:
        table = backend.to_pandas(core_rates.inter_purchase_intervals(
            tabs[0], by=by, members=tabs[1] if member_cols else None, member_columns=member_cols,
            purchase_unit=purchase_unit, zero_paid=zero_paid,
        ).order_by(["member_id", "purchase_number"]))  # fmt: skip
    days = frame["ordered_at"].dtype
    out = pd.DataFrame({
        "member_id": ids.take(table["member_id"].to_numpy()),
        "purchase_number": table["purchase_number"].astype("int64"),
        "previous_purchase_on": table["previous_purchase_on"].astype(days),
        "purchased_on": table["purchased_on"].astype(days),
        "interval_days": table["interval_days"].astype("int64"),
    })  # fmt: skip
    for c in by:
        if c != "member_id":
            out[c] = table[c].astype(orders[c].dtype) if c in order_cols else table[c]
    return out


def arpu(
    orders: pd.DataFrame,
    window="M",
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    zero_paid: ZeroPaid = "exclude",
    start=None,
    end=None,
    step=None,
) -> pd.DataFrame:
    """Average revenue per purchasing member (ARPU, 每用户平均收入) per window and group.

    Revenue is the members' ``paid_amount`` in the window, refunds netted; the denominator is
    the members with at least one purchase in it. Windows and ``by`` as in
    :func:`repurchase_rates`.

    Returns
    -------
    DataFrame
        ``window, window_start, window_end, by..., members, revenue, arpu`` and, when the
        orders have them, ``gross_amount, discount_amount`` (summed).
    """
    require_columns(orders, _ORDER_COLUMNS, "orders")
    by = as_list(by)
    money = [c for c in ("gross_amount", "discount_amount") if c in orders.columns]
    member_cols = [c for c in by if c not in orders.columns]
    frame, ids = _member_orders_frame(orders, [*money, *[c for c in by if c in orders.columns]])
    with backend.tables(frame, *_members_frame(members, member_cols, frame, ids)) as tabs:
        return arpu_table(tabs[0], window, by, members=tabs[1] if member_cols else None,
                          member_columns=member_cols, labels=_group_labels(orders, by),
                          zero_paid=zero_paid, amounts=money, start=start, end=end, step=step)  # fmt: skip


def arpu_table(orders, window, by: list[str], *, members=None, member_columns: Sequence[str] = (),
               labels: dict | None = None, zero_paid: ZeroPaid = "exclude",
               amounts: Sequence[str] = (), start=None, end=None, step=None, con=None
               ) -> pd.DataFrame:
    """:func:`arpu` of Ibis tables with the contract's names: the one implementation behind it
    and :func:`rxrepurchase.engine.arpu` (arguments as in :func:`rates_table`; ``amounts``:
    the further money columns summed)."""
    check_options("day", zero_paid)
    with _windows(orders, window, start, end, step, con) as (windows, w):
        table = backend.to_pandas(core_revenue.arpu(
            orders, w, by=by, members=members, member_columns=member_columns, zero_paid=zero_paid,
            amounts=amounts, period=_period(window),
        ))  # fmt: skip
    out = _window_groups(windows, table, by, labels)
    out["members"] = table["members"].astype("int64")
    out["revenue"] = table["revenue"]
    out["arpu"] = ratio(out["revenue"], out["members"])
    for a in amounts:
        out[a] = table[a].fillna(0.0)  # a sum over no amount is 0, as in pandas
    return _in_window_order(out, table, by)


def _group_labels(orders: pd.DataFrame, by: list[str]) -> dict:
    """The dtype each ``by`` column comes back in: an order column's own; a member column's as
    Arrow gives it (None), as in :func:`repurchase_rates`."""
    return {c: orders[c].dtype if c in orders.columns else None for c in by}


def pareto_share(
    orders: pd.DataFrame,
    top: float = 0.2,
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Share of revenue the top members bring (the operators' "top 20% carry the profit").

    Two measures, each ranking members by itself: ``revenue`` is sales at list price
    (``gross_amount``, 应收) and ``revenue_net_of_subsidy`` what members paid (``paid_amount``
    = gross - discount, 实付). Members bought with heavy subsidy rank high on the first and low
    on the second. The top group is ``ceil(top x members)`` members; ties at the cut are broken
    by member_id so the count is exact.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders; walk-ins are ignored, refunds netted.
    top : float
        Share of members in the top group, in (0, 1].
    by : str or list of str, optional
        Groups ranked separately (order or member columns).
    members : DataFrame, optional
        Needed when ``by`` names member columns.
    start, end : date-like, optional
        Inclusive date range of orders to use (default: all).

    Returns
    -------
    DataFrame
        ``by..., measure, members, top_members, total, top_total, top_share``.
    """
    require_columns(orders, [*_ORDER_COLUMNS, "gross_amount"], "orders")
    by = as_list(by)
    member_cols = [c for c in by if c not in orders.columns]
    is_member = orders["member_id"].notna().to_numpy()
    cols = ["member_id", "ordered_at", "gross_amount", "paid_amount", *[c for c in by if c in orders.columns]]
    frame = orders.loc[is_member, cols] if not is_member.all() else orders[cols]
    member, ids = backend.ranked_ids(frame["member_id"])
    frame = frame.assign(member_id=member, ordered_at=local_times(frame["ordered_at"]).array)
    with backend.tables(frame, *_members_frame(members, member_cols, frame, ids)) as tabs:
        return pareto_table(tabs[0], top, by, members=tabs[1] if member_cols else None,
                            member_columns=member_cols, labels=_group_labels(orders, by),
                            start=start, end=end)  # fmt: skip


def pareto_table(orders, top: float, by: list[str], *, members=None,
                 member_columns: Sequence[str] = (), labels: dict | None = None, start=None,
                 end=None, con=None) -> pd.DataFrame:
    """:func:`pareto_share` of Ibis tables with the contract's names: the one implementation
    behind it and :func:`rxrepurchase.engine.pareto_share` (arguments as in :func:`rates_table`)."""
    if not 0 < top <= 1:
        raise MetricsInputError(f"top must be a share in (0, 1], got {top!r}")
    day = {k: None if v is None else pd.Timestamp(v).normalize().date()
           for k, v in (("start", start), ("end", end))}  # fmt: skip
    table = backend.to_pandas(core_revenue.pareto_share(
        orders, float(top), by=by, members=members, member_columns=member_columns, **day
    ), con)  # fmt: skip
    table = table.sort_values(["measure", *by], kind="stable", ignore_index=True)
    out = pd.DataFrame({c: _labelled(table[c], (labels or {}).get(c)) for c in by})
    out["measure"] = [core_revenue.PARETO_MEASURES[i][0] for i in table["measure"]]
    out["members"] = table["members"].astype("int64")
    out["top_members"] = table["top_members"].astype("int64")
    out["total"] = table["total"].astype("float64")
    out["top_total"] = table["top_total"].astype("float64")
    out["top_share"] = ratio(out["top_total"], out["total"])
    return out


# --------------------------------------------------------------------------- plots
