"""Refill prediction, adherence (PDC / MPR) and reminder target lists.

Members on chronic medication (blood pressure, diabetes, lipids ...) or regular health
products come back on a cycle. This module turns order lines into *fills* (one per member,
product group and day), predicts each member's next fill with a due window, classifies the
refill status as of a date, measures adherence and builds the WeChat / SMS reminder lists.

The pipeline, each step a plain function on DataFrames::

    fills = refill_fills(chain.order_lines, chain.orders, chain.members)
    due = predict_refills(fills, as_of=chain.as_of)          # one row per member x product
    adh = adherence(fills, end=chain.as_of)                  # PDC and MPR over 365 days
    lift = co_purchase_lift(chain.order_lines, chain.orders)  # "also recommend"
    targets = refill_targets(due, chain.members, horizon_days=14, lift=lift)
    export_target_list(targets, "reminders.csv")

:func:`chain_refill_targets` runs the whole list-building pipeline on a loaded chain (the
``rxrepurchase refills`` command). See ``docs/refills.md`` for the method and definitions.

Dates are whole days: a fill on day *d* with *n* days supply covers days *d* ... *d+n-1*.
"As of" a date means the history includes every fill on or before that date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
from scipy import optimize, sparse, special, stats

from rxrepurchase.contract import TAG_SEPARATOR, require_columns
from rxrepurchase.core import backend
from rxrepurchase.core import fills as core_fills
from rxrepurchase.core.fills import FILL_NAMING_ORDER
from rxrepurchase.errors import RefillError
from rxrepurchase.outputs import atomic_path
from rxrepurchase.renames import renamed_attribute, renamed_keywords

__all__ = [
    "FILL_NAMING_ORDER",
    "REFILL_STATUSES",
    "RefillBacktest",
    "RefillError",
    "RefillOverview",
    "adherence",
    "adherence_by_store",
    "backtest_refills",
    "chain_refill_targets",
    "co_purchase_lift",
    "export_target_list",
    "fill_intervals",
    "list_check",
    "list_outcomes",
    "list_precision",
    "mask_phone",
    "member_details",
    "predict_refills",
    "refill_due_counts",
    "refill_fills",
    "refill_rhythm",
    "refill_spread",
    "refill_overview",
    "refill_status",
    "refill_targets",
]

REFILL_STATUSES: tuple[str, ...] = ("not_due", "due_soon", "due_now", "overdue", "lapsed", "unknown")
"""Refill statuses from earliest to latest; ``unknown`` when nothing predicts the interval."""

_KEYS = ["member_id", "product"]

_DAY = np.timedelta64(1, "D")
_ORDER_COLUMNS = ("order_id", "member_id", "store_id", "ordered_at", "channel")


def _require_columns(df: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    require_columns(df, columns, table, error=RefillError)


# --------------------------------------------------------------------------------------------
# Fills
# --------------------------------------------------------------------------------------------


def _examples(values: pd.Series | pd.Index, n: int = 5) -> str:
    values = pd.Series(values).drop_duplicates()
    shown = ", ".join(map(str, values.iloc[:n]))
    return shown + (f" ... ({len(values)} in all)" if len(values) > n else "")


def _product_key(lines: pd.DataFrame, group_by: str | Mapping | pd.Series,
                 *, missing: bool = False) -> pd.Series:
    """The product group of each line: a column of the lines or a mapping from SKU. Lines
    without a group raise, unless ``missing`` (then they are NA)."""
    if isinstance(group_by, str):
        _require_columns(lines, "order_lines", [group_by])
        key = lines[group_by].astype("string")
    else:
        mapping = group_by if isinstance(group_by, pd.Series) else pd.Series(dict(group_by))
        key = lines["sku"].map(mapping).astype("string")
    empty = key.isna()
    if empty.any() and not missing:
        raise _no_product(group_by, int(empty.sum()), lines.loc[empty, "sku"],
                          f"rows {_examples(lines.index[empty])}")
    return key


def _no_product(group_by, n: int, skus: pd.Series, where: str) -> RefillError:
    if isinstance(group_by, str):
        return RefillError(f"order_lines.{group_by} is empty on {n} line(s) ({where}); "
                           "cannot group products by it")
    return RefillError(f"group_by mapping has no product group for SKU(s) {_examples(skus)}")


def refill_fills(
    order_lines: pd.DataFrame,
    orders: pd.DataFrame,
    members: pd.DataFrame | None = None,
    *,
    group_by: str | Mapping[str, str] | pd.Series = "sku",
    chronic_only: bool = True,
    pack_days: Mapping[str, float] | pd.Series | None = None,
) -> pd.DataFrame:
    """Member fills: one row per member, product group and day.

    Parameters
    ----------
    order_lines, orders : DataFrame
        The chain's tables (see :mod:`rxrepurchase.contract`).
    members : DataFrame, optional
        When given, each fill carries the member's ``home_store_id``.
    group_by : str, mapping or Series
        ``"sku"`` (default), another column of the order lines (``"category"``, an active
        ingredient column ...) or a mapping SKU -> product group.
    chronic_only : bool
        Keep only lines flagged ``is_chronic`` (default).
    pack_days : mapping or Series, optional
        Days one pack of a SKU lasts; used as ``quantity x pack_days`` where a line's
        ``days_supply`` is empty.

    Returns
    -------
    DataFrame
        ``member_id, product, filled_on, store_id, channel, product_name, quantity,
        line_amount, days_supply, n_lines`` (+ ``home_store_id``), sorted by member, product
        and date. Several lines of the same product group on the same day are one fill; their
        days supply is summed (empty if any line's supply is unknown), and the fill takes its
        store, channel and product name from its line with the largest amount (then the latest
        order time, the smallest SKU, order id and product name). ``attrs`` counts the
        lines left out: ``walk_in_lines`` (no member), ``return_lines`` (quantity <= 0), and
        records ``group_by``. The fills are computed by :func:`fills_table` (the expressions of
        :mod:`rxrepurchase.core.fills`).

    Raises
    ------
    RefillError
        Missing columns, lines whose order is not in ``orders``, empty product groups,
        non-positive ``days_supply``, members missing from ``members``.
    """
    _require_columns(
        order_lines, "order_lines", ["order_id", "sku", "product_name", "is_chronic", "quantity",
                                     "line_amount", "days_supply"]
    )
    _require_columns(orders, "orders", list(_ORDER_COLUMNS))
    lines = order_lines[order_lines["is_chronic"]] if chronic_only else order_lines
    _check_orders(lines, orders)
    supply = lines["days_supply"].astype("Float64").astype("float64")
    if pack_days is not None:
        per_pack = lines["sku"].map(pd.Series(pack_days, dtype="float64")).astype("float64")
        supply = supply.fillna(lines["quantity"] * per_pack)
    line_frame = lines[["order_id", "sku", "product_name", "quantity", "line_amount"]].assign(
        product=_product_key(lines, group_by, missing=True), days_supply=supply,
        quantity=lines["quantity"].astype("float64"), line_amount=lines["line_amount"].astype("float64"),
        is_chronic=True,
    )  # fmt: skip
    order_frame = orders[list(_ORDER_COLUMNS)]
    if isinstance(order_frame["ordered_at"].dtype, pd.DatetimeTZDtype):  # the local day
        order_frame = order_frame.assign(ordered_at=order_frame["ordered_at"].dt.tz_localize(None))
    frames = [line_frame, order_frame]
    if members is not None:
        _require_columns(members, "members", ["member_id", "home_store_id"])
        frames.append(members[["member_id", "home_store_id"]])
    dtypes = {"member_id": orders["member_id"].dtype, "store_id": orders["store_id"].dtype,
              "channel": orders["channel"].dtype, "product_name": order_lines["product_name"].dtype}  # fmt: skip
    with backend.tables(*frames) as tabs:
        return fills_table(tabs[0], tabs[1], tabs[2] if members is not None else None,
                           group_by=group_by, chronic_only=False, dtypes=dtypes)  # fmt: skip


def fills_table(
    lines, orders, members=None, *, group_by: str | Mapping | pd.Series = "sku",
    chronic_only: bool = True, dtypes: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """:func:`refill_fills` of Ibis tables with the contract's names, ``lines`` carrying each
    line's product group as ``product``: the one implementation behind it and
    :func:`rxrepurchase.engine.refill_fills`. ``group_by`` names the groups in errors and
    ``attrs``; ``dtypes`` give text columns their dtype (default ``string``)."""
    rows = core_fills.fill_lines(lines, orders, chronic_only=chronic_only)
    counts = backend.to_pandas(core_fills.line_counts(rows)).iloc[0]
    used = rows.filter(rows.used)
    if counts["bad_supply"]:
        bad = backend.to_pandas(used.filter(used.days_supply <= 0).select("order_id"))
        raise RefillError(
            f"order_lines.days_supply must be positive; {int(counts['bad_supply'])} line(s) have "
            f"<= 0 (orders {_examples(bad['order_id'].sort_values())})"
        )
    if counts["no_product"]:
        empty = backend.to_pandas(used.filter(used["product"].isnull()).select("order_id", "sku"))
        raise _no_product(group_by, int(counts["no_product"]), empty["sku"].sort_values(),
                          f"orders {_examples(empty['order_id'].sort_values())}")
    out = core_fills.fills(rows)
    if members is not None:
        home = members.select("member_id", "home_store_id", _known=ibis.literal(True))
        out = out.left_join(home, "member_id").drop("member_id_right")
    fills = backend.to_pandas(out.order_by(list(core_fills.FILL_KEYS)))
    if members is not None:
        unknown = fills.pop("_known").isna()
        if unknown.any():
            raise RefillError(f"orders.member_id not in members: {_examples(fills.loc[unknown, 'member_id'])}")
        fills["home_store_id"] = fills.pop("home_store_id").astype("string")
    dtypes = dtypes or {}
    for col in ("member_id", "product", "store_id", "channel", "product_name"):
        fills[col] = fills[col].astype(dtypes.get(col, "string"))
    fills["n_lines"] = fills["n_lines"].astype("Int64")
    fills.attrs = {
        "walk_in_lines": int(counts["walk_in_lines"]),
        "return_lines": int(counts["return_lines"]),
        "group_by": group_by if isinstance(group_by, str) else "mapping",
    }
    return fills


def _check_orders(lines: pd.DataFrame, orders: pd.DataFrame) -> None:
    orphan = ~lines["order_id"].isin(orders["order_id"])
    if orphan.any():
        raise RefillError(
            f"order_lines.order_id not in orders on {int(orphan.sum())} line(s): "
            f"{_examples(lines.loc[orphan, 'order_id'])}"
        )


def _with_orders(lines: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    _check_orders(lines, orders)
    return lines.merge(orders[list(_ORDER_COLUMNS)], on="order_id", how="left", validate="many_to_one")


# --------------------------------------------------------------------------------------------
# Prediction and status
# --------------------------------------------------------------------------------------------


def fill_intervals(fills: pd.DataFrame) -> pd.DataFrame:
    """Fills (:func:`refill_fills`) sorted by member, product and date, with
    ``interval_days`` (days since the member's previous fill of the product, NaN for the
    first) and ``supply_ratio`` (that interval / the previous fill's days supply)."""
    hist = fills.sort_values([*_KEYS, "filled_on"], kind="stable").reset_index(drop=True)
    g = hist.groupby(_KEYS, sort=False, observed=True)
    hist["interval_days"] = (hist["filled_on"] - g["filled_on"].shift()) / _DAY
    hist["supply_ratio"] = hist["interval_days"] / g["days_supply"].shift()
    return hist


def _typical(values: pd.Series, product: pd.Series, min_count: int) -> pd.Series:
    """Per product median of ``values``; products with fewer than ``min_count`` values get the
    median over all products (NaN if there are no values at all)."""
    stats = values.groupby(product, observed=True).agg(["median", "count"])
    overall = values.median()
    return stats["median"].where(stats["count"] >= min_count, overall)


def _supply_predicts_timing(hist: pd.DataFrame) -> pd.Series:
    """Per product: does days supply explain when members come back? True when the refill
    ratio (interval / supply) varies no more, relatively, than the interval itself over the
    product's intervals with known supply (mean absolute relative deviation from the
    product's median)."""
    known = hist.dropna(subset=["supply_ratio"])

    def relative_spread(x: pd.Series) -> pd.Series:
        typical = x.groupby(known["product"], observed=True).transform("median")
        return (x / typical - 1).abs().groupby(known["product"], observed=True).mean()

    return relative_spread(known["supply_ratio"]) <= relative_spread(known["interval_days"])


def _shrinkage_weight(values: pd.Series, hist: pd.DataFrame, min_members: int,
                      bounds: tuple[float, float] = (0.5, 50.0)) -> pd.Series:
    """Per product, how many observations the product's typical value is worth against a
    member's own: the empirical-Bayes weight within-member variance / between-member variance
    of ``values`` (one-way random-effects moment estimates over members with 2+ values).

    Products with fewer than ``min_members`` such members get the median weight of the others
    (2 if there are none)."""
    v = values.dropna()
    g = v.groupby([hist.loc[v.index, "member_id"], hist.loc[v.index, "product"]], observed=True)
    per_member = g.agg(["mean", "var", "count"])
    per_member = per_member[per_member["count"] >= 2]
    of = per_member.index.get_level_values(1)
    by_product = per_member.groupby(of, observed=True)
    within = by_product["var"].mean()
    # Variance of member means = between + within / n (on average over members).
    noise = (within.reindex(of).to_numpy() / per_member["count"]).groupby(of, observed=True).mean()
    between = (by_product["mean"].var() - noise).clip(lower=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = (within / between).fillna(bounds[0]).clip(*bounds)
    enough = by_product.size().reindex(weight.index).fillna(0) >= min_members
    fallback = weight[enough].median() if enough.any() else 2.0
    return weight.where(enough, fallback)


def _prior_df(log_var: np.ndarray, dof: np.ndarray, group: np.ndarray) -> float:
    """Degrees of freedom of the scaled-inverse-chi-square prior on members' variances, from
    how much their sample log-variances spread beyond sampling noise (Smyth 2004, limma's
    moment estimate); ``inf`` when they do not spread more than noise."""
    e = log_var - special.digamma(dof / 2) + np.log(dof / 2)
    centred = e - pd.Series(e).groupby(group).transform("mean").to_numpy()
    excess = centred.var() - special.polygamma(1, dof / 2).mean() if len(e) > 1 else 0.0
    if not excess > 0:
        return np.inf
    # Solve trigamma(d0 / 2) = excess; trigamma decreases from inf to 0.
    half = optimize.brentq(lambda x: special.polygamma(1, x) - excess, 1e-8, 1e8)
    return 2 * half


@dataclass
class _Dispersion:
    """Per member x product: shrunk and prior variance of log intervals (or ratios), and the
    product's quantiles of a member's log deviations from their own mean."""

    posterior: np.ndarray
    prior: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def bounds(self, log_days: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval around ``log_days``: the product's deviation quantiles, scaled by the
        member's own regularity (shrunk sd / product sd) and by the uncertainty of a mean of
        ``n`` values."""
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.sqrt(self.posterior / self.prior * (1 + 1 / np.maximum(n, 1)))
        return log_days + self.low * scale, log_days + self.high * scale


def _log_dispersion(values: pd.Series, hist: pd.DataFrame, index: pd.MultiIndex,
                    min_count: int, prior_df: float | None, level: float) -> _Dispersion:
    """Each member x product's (rows of ``index``) variance of log ``values`` around their own
    mean, shrunk toward the product's (empirical Bayes as in limma): a scaled-inverse-chi-square
    prior centred on the product's pooled within-member variance (the pooled variance over
    all products where a product has fewer than ``min_count`` degrees of freedom), of
    ``prior_df`` degrees of freedom (estimated by :func:`_prior_df` when None). With it, the
    product's empirical ``level`` quantiles of members' log deviations from their own mean
    (skewed and heavy-tailed: refills are late more often and by more than early).

    Whole days put a floor under a variance: a sample variance is at least the rounding
    noise ``1 / (12 x mean^2)`` of its log values."""
    logv = np.log(values.where(values > 0)).dropna()
    keys = [hist.loc[logv.index, "member_id"], hist.loc[logv.index, "product"]]
    g = logv.groupby(keys, observed=True)
    deviation = logv - g.transform("mean")
    squares = (deviation ** 2).groupby(keys, observed=True).sum()
    dof = (g.size() - 1).astype("float64")
    rounding = 1 / (12 * values.loc[logv.index].groupby(keys, observed=True).mean() ** 2)
    squares = np.maximum(squares, rounding * dof)
    of = squares.index.get_level_values(1)
    dof_by_product = dof.groupby(of, observed=True).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = squares.sum() / dof.sum() if dof.sum() > 0 else np.nan
        pooled = squares.groupby(of, observed=True).sum() / dof_by_product
    prior = pooled.where(dof_by_product >= min_count, overall)
    if prior_df is None:
        has = (dof > 0).to_numpy()
        prior_df = _prior_df(np.log((squares / dof).to_numpy()[has]), dof.to_numpy()[has],
                             np.asarray(of)[has])
    at = index.get_level_values("product")
    prior_at = prior.reindex(at).fillna(overall).to_numpy()
    own_squares = squares.reindex(index).fillna(0.0).to_numpy()
    own_dof = dof.reindex(index).fillna(0.0).to_numpy()
    if np.isinf(prior_df):  # no spread beyond noise: every member has the product's variance
        posterior = prior_at
    else:
        posterior = (prior_df * prior_at + own_squares) / (prior_df + own_dof)

    repeated = g.transform("size") >= 2
    deviation, product = deviation[repeated], keys[1][repeated]
    probs = [(1 - level) / 2, (1 + level) / 2]
    overall_q = deviation.quantile(probs).to_numpy() if len(deviation) else np.full(2, np.nan)
    q = deviation.groupby(product, observed=True).quantile(probs).unstack().reindex(columns=probs)
    enough = deviation.groupby(product, observed=True).size() >= min_count
    low = q[probs[0]].where(enough, overall_q[0]).reindex(at).fillna(overall_q[0]).to_numpy()
    high = q[probs[1]].where(enough, overall_q[1]).reindex(at).fillna(overall_q[1]).to_numpy()
    return _Dispersion(posterior=posterior, prior=prior_at, low=low, high=high)


def _stop_probability(product: np.ndarray, n_fills: np.ndarray, survival: np.ndarray,
                      prior_count: float, iterations: int = 200) -> np.ndarray:
    """Per pair, the chance that its last fill was the last one for good (the member stopped
    the product): each fill is followed by another with probability ``1 - pi``, ``pi`` one
    value after a first fill and one after later fills, per product (a geometric number of
    fills with a separate first step, as BG/NBD's dropout after each purchase).

    Estimated by EM on what the history shows: every fill but the last was followed by
    another; the last one, ``survival`` (the chance its interval is longer than the time
    since) says how likely a member who will still come back is not back yet. A product's
    estimate is shrunk toward the chain's by a beta prior worth ``prior_count`` fills.
    """
    codes, product = pd.factorize(product)
    first = n_fills == 1
    # Trials after a first fill: every pair; after later fills: n_fills - 1 per repeat pair.
    trials = [np.bincount(codes, minlength=len(product)).astype("float64"),
              np.bincount(codes, weights=np.where(first, 0.0, n_fills - 1.0), minlength=len(product))]
    censored = [first, ~first]
    pi = [np.full(len(product), 0.5), np.full(len(product), 0.5)]
    for _ in range(iterations):
        new = []
        for stage in (0, 1):
            at = pi[stage][codes]
            with np.errstate(invalid="ignore", divide="ignore"):
                stopped = np.where(censored[stage], at / (at + (1 - at) * survival), 0.0)
            stops = np.bincount(codes, weights=np.nan_to_num(stopped), minlength=len(product))
            overall = stops.sum() / trials[stage].sum() if trials[stage].sum() > 0 else 0.5
            new.append((stops + prior_count * overall) / (trials[stage] + prior_count))
        if max(np.abs(new[0] - pi[0]).max(), np.abs(new[1] - pi[1]).max()) < 1e-6:
            pi = new
            break
        pi = new
    return np.where(first, pi[0][codes], pi[1][codes])


def predict_refills(
    fills: pd.DataFrame,
    *,
    as_of: str | pd.Timestamp,
    recent: int = 3,
    prior_weight: float | None = None,
    min_product_intervals: int = 5,
    min_window_days: int = 3,
    soon_days: int = 14,
    lapse_factor: float = 1.0,
    lapse_min_days: int = 30,
    interval_level: float = 0.8,
    regularity_prior_df: float | None = None,
    p_refill_days: int = 30,
) -> pd.DataFrame:
    """Predict each member's next fill of each product group, with a due window and status.

    Method (what a pharmacist does, written down):

    1. The member's own rhythm: the median of their last ``recent`` intervals between fills
       (median, so one late refill after a holiday does not move the estimate much).
    2. The product's typical rhythm: the median interval of all members on the product
       (products with fewer than ``min_product_intervals`` intervals use the median over all
       products).
    3. Few observations are shrunk toward the product:
       ``interval = (n x member + w x product) / (n + w)``, ``n`` the number of member
       intervals used (0 for a single fill: the product's rhythm alone). The weight ``w`` is
       how many intervals the product's rhythm is worth. By default (``prior_weight=None``)
       it is estimated per product, empirical-Bayes style, as within-member variance /
       between-member variance of the intervals (members with 2+ intervals; kept within
       0.5 ... 50; products with fewer than ``min_product_intervals`` such members take the
       median weight of the others): regular members who differ from each other keep their
       own rhythm, erratic buyers are pulled to the product's.
    4. Days supply, when the last fill has it and it explains the product's timing (the
       *refill ratio*, interval / days supply of the fill it started from, varies less than
       the interval itself): the same shrinkage is done on the ratio (1.0 = refills exactly
       when the supply runs out) and the predicted interval is ``ratio x last days supply``.
       So a member who bought a 60-day supply this time is expected in ~60 days, not in
       their usual 30, and a member who habitually refills 3 days early keeps doing so.
       Products bought at random whatever the pack count (a vitamin bought 1-3 boxes at a
       time) stay on intervals.

    The due window is ``expected_on +/- half-width``, the half-width being the product's
    typical deviation of a member's intervals from their own median (relative, times the
    predicted interval), at least ``min_window_days``.

    Parameters
    ----------
    fills : DataFrame
        From :func:`refill_fills`. Fills after ``as_of`` are ignored.
    as_of : date
        Predict as of this day (history = fills on or before it).
    recent, prior_weight, min_product_intervals, min_window_days : see the method.
    soon_days, lapse_factor, lapse_min_days : passed to :func:`refill_status`.

    Returns
    -------
    DataFrame
        One row per member x product group: ``member_id, product, product_name, n_fills,
        first_fill, last_fill, last_store_id, last_channel, last_days_supply, member_interval,
        n_intervals, product_interval, method, predicted_interval, expected_on,
        window_start, window_end, rhythm`` (+ ``home_store_id``) and the status columns of
        :func:`refill_status`. ``method`` is ``days_supply`` or ``intervals``; ``rhythm``
        (:func:`refill_rhythm`) is ``repeat``, ``first_refill`` or ``none`` (a one-off buy,
        whose status is ``unknown``: it is never called due); ``attrs``
        carries the fills' attrs (``walk_in_lines`` ...) and ``as_of``.
    """
    _require_columns(fills, "fills", [*_KEYS, "filled_on", "days_supply", "store_id"])
    if recent < 1 or (prior_weight is not None and prior_weight < 0):
        raise RefillError("recent must be >= 1 and prior_weight >= 0 (or None: estimated)")
    as_of = pd.Timestamp(as_of).normalize()
    hist = fill_intervals(fills[fills["filled_on"] <= as_of])
    if hist.empty:
        raise RefillError(f"no fills on or before {as_of.date()}")

    product_interval = _typical(hist["interval_days"], hist["product"], min_product_intervals)
    product_ratio = _typical(hist["supply_ratio"], hist["product"], min_product_intervals).fillna(1.0)
    # How far members stray from their own median interval, typically, per product.
    own_median = hist.groupby(_KEYS, observed=True)["interval_days"].transform("median")
    rel_dev = (hist["interval_days"] / own_median - 1).abs()
    rel_dev = rel_dev.where(hist.groupby(_KEYS, observed=True)["interval_days"].transform("count") >= 2)
    product_spread = _typical(rel_dev, hist["product"], min_product_intervals).fillna(0.0)

    g = hist.groupby(_KEYS, sort=False, observed=True)
    last = g.tail(1).set_index(_KEYS)
    out = pd.DataFrame(
        {
            "product_name": last["product_name"] if "product_name" in last else pd.NA,
            "n_fills": g.size().astype("Int64"),
            "first_fill": g["filled_on"].min(),
            "last_fill": last["filled_on"],
            "last_store_id": last["store_id"],
            "last_channel": last["channel"] if "channel" in last else pd.NA,
            "last_days_supply": last["days_supply"],
        }
    )
    if "home_store_id" in hist:
        out.insert(0, "home_store_id", last["home_store_id"])

    recent_iv = hist.dropna(subset=["interval_days"]).groupby(_KEYS, observed=True).tail(recent)
    member_iv = recent_iv.groupby(_KEYS, observed=True)["interval_days"].agg(["median", "count"])
    recent_ratio = hist.dropna(subset=["supply_ratio"]).groupby(_KEYS, observed=True).tail(recent)
    member_ratio = recent_ratio.groupby(_KEYS, observed=True)["supply_ratio"].agg(["median", "count"])

    out["member_interval"] = member_iv["median"].reindex(out.index)
    out["n_intervals"] = member_iv["count"].reindex(out.index).fillna(0).astype("Int64")
    products = out.index.get_level_values("product")
    out["product_interval"] = product_interval.reindex(products).to_numpy()

    def shrink(member: pd.Series, n: pd.Series, prior: pd.Series, values: pd.Series,
               dispersion: tuple) -> np.ndarray:
        if prior_weight is None:
            weight = _shrinkage_weight(values, hist, min_product_intervals)
            weight = weight.reindex(products).fillna(2.0).to_numpy()
            # Regularity: a member more erratic than the product's members is pulled harder
            # toward the product's rhythm, a more regular one keeps their own.
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.where(dispersion.prior > 0, dispersion.posterior / dispersion.prior, 1.0)
            weight = weight * np.nan_to_num(relative, nan=1.0)
        else:
            weight = prior_weight
        n = n.fillna(0).to_numpy(dtype="float64")
        own = member.fillna(0).to_numpy(dtype="float64")
        prior = prior.reindex(products).to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):  # 0/0: no history and no prior weight: unknown
            return (n * own + weight * prior) / (n + weight)

    interval_spread = _log_dispersion(hist["interval_days"], hist, out.index,
                                      min_product_intervals, regularity_prior_df, interval_level)
    ratio_spread = _log_dispersion(hist["supply_ratio"], hist, out.index,
                                   min_product_intervals, regularity_prior_df, interval_level)
    by_interval = shrink(out["member_interval"], out["n_intervals"].astype("float64"),
                         product_interval, hist["interval_days"], interval_spread)
    n_ratios = member_ratio["count"].reindex(out.index).astype("float64")
    ratio = shrink(member_ratio["median"].reindex(out.index), n_ratios,
                   product_ratio, hist["supply_ratio"], ratio_spread)
    by_supply = ratio * out["last_days_supply"].to_numpy(dtype="float64")
    supply_fits = _supply_predicts_timing(hist).reindex(products).fillna(False).to_numpy()
    use_supply = ~np.isnan(by_supply) & supply_fits
    out["method"] = pd.Series(np.where(use_supply, "days_supply", "intervals"),
                              index=out.index, dtype="string")
    out["predicted_interval"] = np.where(use_supply, by_supply, by_interval)

    # The due interval, in log days around the prediction.
    with np.errstate(invalid="ignore", divide="ignore"):
        log_days = np.log(out["predicted_interval"].to_numpy(dtype="float64"))
    by_ratio = ratio_spread.bounds(log_days, n_ratios.fillna(0).to_numpy())
    by_days = interval_spread.bounds(log_days, out["n_intervals"].to_numpy(dtype="float64"))
    low = np.round(np.exp(np.where(use_supply, by_ratio[0], by_days[0])))
    high = np.round(np.exp(np.where(use_supply, by_ratio[1], by_days[1])))
    out["due_low"] = out["last_fill"] + pd.to_timedelta(low, unit="D")
    out["due_high"] = out["last_fill"] + pd.to_timedelta(high, unit="D")

    days = np.round(out["predicted_interval"].to_numpy())
    half = np.maximum(min_window_days,
                      np.round(product_spread.reindex(products).to_numpy() * days))
    out["expected_on"] = out["last_fill"] + pd.to_timedelta(days, unit="D")
    out["window_start"] = out["expected_on"] - pd.to_timedelta(half, unit="D")
    out["window_end"] = out["expected_on"] + pd.to_timedelta(half, unit="D")
    out["rhythm"] = refill_rhythm(out["n_fills"], out["last_days_supply"])

    # How likely the next fill falls in the next ``p_refill_days``: the member's log interval
    # is normal around the prediction with the member's shrunk variance (plus the mean's),
    # given that the fill has not come yet and that the member may have stopped.
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.where(
            use_supply,
            ratio_spread.posterior * (1 + 1 / np.maximum(n_ratios.fillna(0).to_numpy(), 1)),
            interval_spread.posterior * (1 + 1 / np.maximum(out["n_intervals"].to_numpy(dtype="float64"), 1))))
        elapsed = ((as_of - out["last_fill"]) / _DAY).to_numpy(dtype="float64")

        def survival(days: np.ndarray) -> np.ndarray:
            return stats.norm.sf((np.log(days + 0.5) - log_days) / sd)

        not_yet = survival(elapsed)
        in_horizon = not_yet - survival(elapsed + p_refill_days)
        stop = _stop_probability(products.to_numpy(), out["n_fills"].to_numpy(dtype="float64"),
                                 not_yet, prior_count=min_product_intervals)
        out["p_active"] = (1 - stop) * not_yet / (stop + (1 - stop) * not_yet)
        out["p_refill"] = (1 - stop) * in_horizon / (stop + (1 - stop) * not_yet)
    out = out.reset_index()
    out.attrs = {**fills.attrs, "as_of": as_of, "p_refill_days": p_refill_days}
    return refill_status(
        out, as_of=as_of, soon_days=soon_days, lapse_factor=lapse_factor,
        lapse_min_days=lapse_min_days,
    )


def refill_rhythm(n_fills: pd.Series, last_days_supply: pd.Series) -> pd.Series:
    """Whether a member x product has a rhythm to remind on.

    - ``repeat``: two fills or more, so the member has shown a cycle;
    - ``first_refill``: one fill with a known days supply (a first chronic purchase: its
      supply says when it runs out), for the separate first-refill list;
    - ``none``: one fill and no days supply: a one-off buy, never called due.
    """
    n = n_fills.astype("float64").to_numpy()
    supply = last_days_supply.astype("float64").notna().to_numpy()
    rhythm = np.select([n >= 2, supply], ["repeat", "first_refill"], default="none")
    return pd.Series(rhythm, index=n_fills.index, dtype="string")


def refill_status(
    predictions: pd.DataFrame,
    *,
    as_of: str | pd.Timestamp,
    soon_days: int = 14,
    lapse_factor: float = 1.0,
    lapse_min_days: int = 30,
) -> pd.DataFrame:
    """Refill status of each prediction as of a day.

    - ``not_due``: the due window opens more than ``soon_days`` after ``as_of``;
    - ``due_soon``: the window opens within ``soon_days``;
    - ``due_now``: ``as_of`` is inside the due window;
    - ``overdue``: past the window, overdue by at most
      ``max(lapse_min_days, lapse_factor x predicted interval)`` days;
    - ``lapsed``: overdue by more than that (a 30-day refiller who missed two cycles): treat
      as likely lost and hand to the wake-up list rather than a refill reminder;
    - ``unknown``: no interval could be predicted (no intervals and no days supply anywhere),
      or, where ``predictions`` has a ``rhythm`` column (:func:`refill_rhythm`), the member
      x product has no rhythm (``none``: a one-off buy).

    Returns a copy with ``status`` (ordered categorical), ``days_until_due`` (negative when
    past the expected day) and ``days_overdue`` (0 unless overdue or lapsed).
    """
    _require_columns(predictions, "predictions",
                     ["expected_on", "window_start", "window_end", "predicted_interval"])
    as_of = pd.Timestamp(as_of).normalize()
    out = predictions.copy()
    until = (out["expected_on"] - as_of) / _DAY
    lapse_after = np.maximum(lapse_min_days, lapse_factor * out["predicted_interval"])
    # A one-off buy has no rhythm: whatever the product's cycle says, it is not "due".
    no_rhythm = (out["rhythm"] == "none").fillna(False) if "rhythm" in out else False
    conditions = [
        out["expected_on"].isna() | no_rhythm,
        as_of < out["window_start"] - pd.Timedelta(days=soon_days),
        as_of < out["window_start"],
        as_of <= out["window_end"],
        -until <= lapse_after,
    ]
    choices = ["unknown", "not_due", "due_soon", "due_now", "overdue"]
    status = np.select(conditions, choices, default="lapsed")
    out["status"] = pd.Categorical(status, categories=REFILL_STATUSES, ordered=True)
    out["days_until_due"] = until.round().astype("Int64")
    past = out["status"].isin(["overdue", "lapsed"])
    out["days_overdue"] = (-out["days_until_due"]).where(past, 0).astype("Int64")
    out.attrs = {**predictions.attrs, "as_of": as_of}
    return out


def refill_due_counts(predictions: pd.DataFrame, *, by: str = "home_store_id") -> pd.DataFrame:
    """Member x product counts per status, one row per ``by`` value (e.g. store)."""
    _require_columns(predictions, "predictions", [by, "status"])
    return pd.crosstab(predictions[by], predictions["status"], dropna=False)


# --------------------------------------------------------------------------------------------
# Adherence
# --------------------------------------------------------------------------------------------


def adherence(
    fills: pd.DataFrame,
    *,
    end: str | pd.Timestamp,
    start: str | pd.Timestamp | None = None,
    threshold: float = 0.8,
    min_period_days: int = 91,
) -> pd.DataFrame:
    """Proportion of days covered (PDC) and medication possession ratio (MPR).

    The measurement follows the pharmacy-quality (PQA) definition: over the window
    ``start`` ... ``end`` (inclusive; default the 365 days ending at ``end``), each member x
    product's period runs from its first fill in the window (the index date) to ``end``.

    - PDC = days covered / days in the period. A fill covers ``days_supply`` days from its
      date, but when the member still has supply left from earlier fills it starts the day
      after that supply runs out (overlapping supply is shifted forward); coverage after
      ``end`` is not counted. PDC is at most 1.
    - MPR = total days supply dispensed in the window / days in the period (not shifted, not
      truncated, so it can exceed 1 with stockpiling).
    - ``adherent``: PDC >= ``threshold`` (0.8 by convention).
    - ``eligible`` marks the PQA denominator: at least two fills and a period of at least
      ``min_period_days`` days, with every fill's days supply known. Summaries use only
      eligible rows; PDC is empty where a fill's days supply is unknown.

    The shift is sequential (``covered_until_i = max(covered_until_{i-1}, start_i) +
    supply_i``) but has a closed form: with ``S_i`` the cumulative supply,
    ``covered_until_i = S_i + max_{k<=i}(start_k - S_{k-1})``, a grouped running max.

    Returns
    -------
    DataFrame
        One row per member x product with fills in the window: ``member_id, product,
        (home_store_id,) product_name, n_fills, period_start, period_days, days_supply,
        days_covered, pdc, mpr, adherent, eligible``.
    """
    _require_columns(fills, "fills", [*_KEYS, "filled_on", "days_supply"])
    end = pd.Timestamp(end).normalize()
    start = end - pd.Timedelta(days=364) if start is None else pd.Timestamp(start).normalize()
    if start > end:
        raise RefillError(f"adherence window starts {start.date()} after it ends {end.date()}")
    window = fills[(fills["filled_on"] >= start) & (fills["filled_on"] <= end)]
    window = window.sort_values([*_KEYS, "filled_on"], kind="stable").reset_index(drop=True)
    g = window.groupby(_KEYS, sort=False, observed=True)

    day = ((window["filled_on"] - start) / _DAY).to_numpy()
    supply = window["days_supply"].to_numpy(dtype="float64")
    cum = g["days_supply"].cumsum().to_numpy(dtype="float64")
    offset = pd.Series(day - (cum - supply)).groupby(
        [window["member_id"], window["product"]], sort=False, observed=True
    ).cummax().to_numpy()
    covered_until = offset + cum  # exclusive day number
    period_start = g["filled_on"].transform("min")
    period_day = ((period_start - start) / _DAY).to_numpy()
    end_day = (end - start) / _DAY + 1
    covered = np.clip(
        np.minimum(covered_until, end_day) - np.maximum(covered_until - supply, period_day),
        0, None,
    )
    window["days_covered"] = covered
    window["supply_unknown"] = window["days_supply"].isna()

    out = g.agg(
        n_fills=("filled_on", "size"),
        period_start=("filled_on", "min"),
        days_supply=("days_supply", "sum"),
        days_covered=("days_covered", "sum"),
        supply_unknown=("supply_unknown", "any"),
    )
    if "product_name" in window:
        out.insert(0, "product_name", g["product_name"].last())
    if "home_store_id" in window:
        out.insert(0, "home_store_id", g["home_store_id"].last())
    out["n_fills"] = out["n_fills"].astype("Int64")
    out["period_days"] = ((end - out["period_start"]) / _DAY + 1).astype("Int64")
    unknown = out.pop("supply_unknown").astype(bool)
    period = out["period_days"].astype("float64")
    out["pdc"] = (out["days_covered"] / period).where(~unknown)
    out["mpr"] = (out["days_supply"] / period).where(~unknown)
    out["days_supply"] = out["days_supply"].where(~unknown)
    out["days_covered"] = out["days_covered"].where(~unknown)
    out["adherent"] = (out["pdc"] >= threshold).fillna(False).astype(bool)
    out["eligible"] = (
        (out["n_fills"] >= 2) & (out["period_days"] >= min_period_days) & ~unknown
    ).astype(bool)
    out = out.reset_index()
    out.attrs = {
        **fills.attrs, "start": start, "end": end, "threshold": threshold,
        "supply_unknown": int(unknown.sum()),
    }
    return out


def adherence_by_store(
    adherence_table: pd.DataFrame, *, by: str | Sequence[str] = ("home_store_id", "product")
) -> pd.DataFrame:
    """Adherence summary of the eligible member x products, per store and product group.

    Returns ``members`` (eligible count), ``pdc_mean``, ``pdc_median``, ``adherent_share``
    (PDC >= threshold) and ``mpr_mean`` (each MPR capped at 1 so a few stockpilers do not
    hide the others' gaps).
    """
    by = [by] if isinstance(by, str) else list(by)
    _require_columns(adherence_table, "adherence table", [*by, "pdc", "mpr", "adherent", "eligible"])
    eligible = adherence_table[adherence_table["eligible"]].assign(
        mpr_capped=lambda d: d["mpr"].clip(upper=1.0)
    )
    return eligible.groupby(by, observed=True).agg(
        members=("pdc", "size"),
        pdc_mean=("pdc", "mean"),
        pdc_median=("pdc", "median"),
        adherent_share=("adherent", "mean"),
        mpr_mean=("mpr_capped", "mean"),
    ).reset_index()


# --------------------------------------------------------------------------------------------
# Co-purchase ("also recommend")
# --------------------------------------------------------------------------------------------


def co_purchase_lift(
    order_lines: pd.DataFrame,
    orders: pd.DataFrame,
    *,
    group_by: str | Mapping[str, str] | pd.Series = "sku",
    min_members: int = 10,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    prescription: Mapping[str, bool] | pd.Series | None = None,
) -> pd.DataFrame:
    """What members on a chronic product also buy, by lift over the member base.

    For each chronic product group A (any line flagged ``is_chronic``) and any other product
    group B, over the members who bought anything in the window (``start`` ... ``end``,
    inclusive, default all history):

    - ``confidence`` = P(B | A) = members who bought both / members who bought A;
    - ``lift`` = confidence / P(B): how much likelier a member on A buys B than members in
      general (> 1: a relevant offer for A's reminder).

    Pairs bought by fewer than ``min_members`` members are left out (too few to trust).
    Computed as a sparse member x product incidence product, so it scales to millions of
    members.

    Each consequent carries ``consequent_is_prescription``: True when any of its lines is a
    prescription drug, False when all of them are known not to be, unknown (NA) otherwise.
    The flag comes from ``prescription`` (SKU -> flag, e.g. a product master's column) where it
    names the SKU, else from the lines' ``is_prescription`` column where the export has one.

    Returns
    -------
    DataFrame
        ``antecedent, consequent, consequent_name, consequent_is_prescription, members_both,
        members_antecedent, members_consequent, confidence, lift``, sorted by antecedent and
        descending lift; ``attrs["members"]`` is the member base.
    """
    _require_columns(order_lines, "order_lines", ["order_id", "sku", "product_name", "is_chronic", "quantity"])
    lines = _with_orders(order_lines, orders)
    keep = lines["member_id"].notna() & (lines["quantity"] > 0)
    if start is not None:
        keep &= lines["ordered_at"] >= pd.Timestamp(start).normalize()
    if end is not None:
        keep &= lines["ordered_at"] < pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
    lines = lines[keep]
    product = _product_key(lines, group_by)
    member_code, members = pd.factorize(lines["member_id"])
    product_code, products = pd.factorize(product)
    incidence = sparse.csr_matrix(
        (np.ones(len(lines), dtype=np.int32), (member_code, product_code)),
        shape=(len(members), len(products)),
    )
    incidence.data[:] = 1  # duplicates were summed: a member either bought a product or not
    chronic = np.unique(product_code[lines["is_chronic"].to_numpy(dtype=bool)])
    both = (incidence[:, chronic].T @ incidence).tocoo()
    buyers = np.asarray(incidence.sum(axis=0)).ravel()
    a, b, n_ab = chronic[both.row], both.col, both.data
    keep = (a != b) & (n_ab >= min_members)
    a, b, n_ab = a[keep], b[keep], n_ab[keep]
    names = lines.groupby(product_code)["product_name"].last()
    rx = _prescription_by_product(lines, product_code, prescription)
    out = pd.DataFrame(
        {
            "antecedent": pd.array(products[a], dtype="string"),
            "consequent": pd.array(products[b], dtype="string"),
            "consequent_name": pd.array(names.reindex(b).to_numpy(), dtype="string"),
            "consequent_is_prescription": pd.array(rx.reindex(b).to_numpy(), dtype="boolean"),
            "members_both": n_ab.astype("int64"),
            "members_antecedent": buyers[a].astype("int64"),
            "members_consequent": buyers[b].astype("int64"),
        }
    )
    out["confidence"] = out["members_both"] / out["members_antecedent"]
    out["lift"] = out["confidence"] / (out["members_consequent"] / len(members))
    out = out.sort_values(["antecedent", "lift", "confidence"], ascending=[True, False, False])
    out = out.reset_index(drop=True)
    out.attrs = {"members": len(members), "min_members": min_members}
    return out


def _prescription_by_product(lines: pd.DataFrame, product_code: np.ndarray,
                             prescription: Mapping[str, bool] | pd.Series | None) -> pd.Series:
    """Per product code: True if any line is a prescription drug, False if every line is
    known not to be, NA if any line is unknown (and none is a prescription drug)."""
    flag = pd.Series(pd.NA, index=lines.index, dtype="boolean")
    if "is_prescription" in lines:
        flag = lines["is_prescription"].astype("boolean")
    if prescription is not None:
        given = lines["sku"].map(pd.Series(prescription).astype("boolean")).astype("boolean")
        flag = given.fillna(flag)
    by_product = pd.DataFrame({"rx": flag.fillna(False), "unknown": flag.isna()}).groupby(product_code)
    anyrx, unknown = by_product["rx"].any(), by_product["unknown"].any()
    return anyrx.astype("boolean").where(anyrx | ~unknown)


def _recommendations(targets: pd.DataFrame, lift: pd.DataFrame, refills: pd.DataFrame,
                     n: int) -> tuple[pd.Series, pd.Series]:
    """Add-ons for each target: the top ``n`` consequents (lift > 1) of its product that the
    member does not already refill and that are not prescription drugs, joined with ``;``
    (empty string when none). Returns the add-ons known not to be prescription drugs and,
    separately, those whose prescription status is unknown (for a pharmacist to review; a
    lift table without ``consequent_is_prescription`` makes every add-on unknown). A
    prescription drug is never suggested."""
    _require_columns(lift, "lift table", ["antecedent", "consequent", "consequent_name", "lift"])
    rx = (lift["consequent_is_prescription"].astype("boolean") if "consequent_is_prescription" in lift
          else pd.Series(pd.NA, index=lift.index, dtype="boolean"))
    offers = lift.assign(_rx=rx)
    offers = offers[(offers["lift"] > 1) & ~offers["_rx"].fillna(False)]
    offers = offers.sort_values("lift", ascending=False, kind="stable")
    cand = targets[_KEYS].reset_index().merge(
        offers[["antecedent", "consequent", "consequent_name", "_rx"]],
        left_on="product", right_on="antecedent",
    )
    own = refills[_KEYS].rename(columns={"product": "consequent"}).assign(_own=True)
    cand = cand.merge(own, on=["member_id", "consequent"], how="left")
    cand = cand[cand["_own"].isna()]
    unknown = cand["_rx"].isna().to_numpy()
    return (_joined(cand[~unknown], targets.index, n), _joined(cand[unknown], targets.index, n))


def _joined(cand: pd.DataFrame, index: pd.Index, n: int) -> pd.Series:
    """The first ``n`` candidate labels of each target row, joined with ``;``."""
    cand = cand.assign(rank=cand.groupby("index").cumcount())
    cand = cand[cand["rank"] < n]
    if cand.empty:
        return pd.Series("", index=index, dtype="string")
    label = cand["consequent_name"].fillna(cand["consequent"])
    wide = label.set_axis(pd.MultiIndex.from_frame(cand[["index", "rank"]])).unstack()
    joined = wide[0]
    for col in wide.columns[1:]:
        joined = joined.str.cat(wide[col], sep=TAG_SEPARATOR, na_rep="").str.rstrip(TAG_SEPARATOR)
    return joined.reindex(index).fillna("").astype("string")


# --------------------------------------------------------------------------------------------
# Target lists
# --------------------------------------------------------------------------------------------


def mask_phone(phone: pd.Series) -> pd.Series:
    """Mask phone numbers for lists: ``13812345678`` -> ``138****5678``.

    Numbers of 11 characters or more keep their first 3 and last 4; shorter ones keep only
    their last 2 (``****78``). Empty stays empty.
    """
    s = phone.astype("string").str.strip()
    long = s.str[:3] + "****" + s.str[-4:]
    short = "****" + s.str[-2:].where(s.str.len() > 4, "")
    return long.where(s.str.len() >= 11, short).where(s.notna() & (s != ""), s)


LIST_SELECTIONS = ("chance", "due")
"""How a reminder list picks its pairs (:func:`refill_targets`' ``select``)."""


def _on_list(predictions: pd.DataFrame, *, horizon_days: int, include_overdue: bool = True,
             include_lapsed: bool = False, first_refill: bool = False,
             max_spread: float | None = None, select: str = "due",
             min_probability: float | None = None) -> pd.Series:
    """Which predictions the reminder list takes (the rule of :func:`refill_targets`)."""
    if select not in LIST_SELECTIONS:
        raise RefillError(f"select must be one of {LIST_SELECTIONS}, got {select!r}")
    excluded = ["unknown"]
    if not include_overdue:
        excluded.append("overdue")
    if not include_lapsed:
        excluded.append("lapsed")
    eligible = ~predictions["status"].isin(excluded)
    if "rhythm" in predictions:
        eligible &= (predictions["rhythm"] == ("first_refill" if first_refill else "repeat")).fillna(False)
    if max_spread is not None:
        eligible &= (refill_spread(predictions) <= max_spread).fillna(False)
    pick = eligible & (predictions["days_until_due"] <= horizon_days).fillna(False)
    if select == "chance":
        pick = _most_likely(predictions, eligible, pick)
    if min_probability is not None:
        pick &= (predictions["p_refill"] >= min_probability).fillna(False)
    return pick


def _most_likely(predictions: pd.DataFrame, eligible: pd.Series, due: pd.Series) -> pd.Series:
    """As many eligible pairs as ``due`` names, per home store (where known), those with the
    highest ``p_refill`` (ties: member, product)."""
    group = (predictions["home_store_id"] if "home_store_id" in predictions
             else pd.Series(0, index=predictions.index))
    ranked = predictions.loc[eligible, ["p_refill", *_KEYS]].assign(group=group[eligible])
    ranked = ranked.sort_values(["p_refill", *_KEYS], ascending=[False, True, True],
                                na_position="last", kind="stable")
    quota = due.groupby(group, dropna=False).sum()
    rank = ranked.groupby("group", dropna=False, sort=False).cumcount()
    keep = rank < ranked["group"].map(quota).fillna(0)
    return pd.Series(predictions.index.isin(keep[keep].index), index=predictions.index)


def refill_spread(predictions: pd.DataFrame) -> pd.Series:
    """Width of each prediction's due interval relative to its predicted interval: how
    regular the member's rhythm is. Clockwork refills are well below 1; a member buying at
    random (exponential gaps) has about 3.2 for an 80% interval."""
    width = (predictions["due_high"] - predictions["due_low"]) / _DAY
    return width / predictions["predicted_interval"].astype("float64")


@renamed_keywords(within="horizon_days")
def refill_targets(
    predictions: pd.DataFrame,
    members: pd.DataFrame,
    *,
    horizon_days: int = 14,
    include_overdue: bool = True,
    include_lapsed: bool = False,
    show_phone: bool = False,
    lift: pd.DataFrame | None = None,
    n_recommend: int = 2,
    first_refill: bool = False,
    max_spread: float | None = None,
    max_overdue_days: int | None = 30,
    select: str = "chance",
    min_probability: float | None = None,
) -> pd.DataFrame:
    """The reminder list: member x products to remind of their refill.

    Only member x products with a rhythm are listed: by default those with two fills or more
    (``rhythm == "repeat"``); with ``first_refill=True``, the separate first-refill list of
    first chronic purchases whose days supply says when they run out
    (``rhythm == "first_refill"``). One-off buys are never listed.

    ``horizon_days`` sets the list's size, ``select`` who is on it:

    - ``"chance"`` (default): as many pairs as are expected within ``horizon_days`` days or overdue
      (per home store), but those most likely to refill: the highest ``p_refill`` of
      :func:`predict_refills` (the chance of a fill in the next ``p_refill_days``, 30: the
      member's own rhythm and regularity, the time since the last fill and the product's
      stop rate). The same workload as the broad list, better picks: measured on every demo
      shape (:func:`backtest_refills`, 5,000 members, ``docs/refills.md``) its precision
      and recall are above the naive median-interval list's;
    - ``"due"``: the broad list: every pair *expected* within ``horizon_days`` days or overdue,
      however erratic its rhythm (no more precise than the naive list on the demo shapes).

    ``min_probability`` (e.g. 0.5) also leaves out pairs less likely than that to refill: a
    shorter, more precise list. ``max_spread`` (e.g. 2) leaves out members whose rhythm is
    irregular (:func:`refill_spread` above it).

    Parameters
    ----------
    predictions : DataFrame
        From :func:`predict_refills` (its ``attrs["as_of"]`` is the list's day).
    members : DataFrame
        The members table; tier, acquisition channel, tags and the contact columns present
        (``phone``, ``wechat_id``) are copied to the list.
    horizon_days : int
        Days ahead: the broad list names the rows expected on or before ``as_of + horizon_days``
        (and overdue ones); the default list has as many rows.
    select : {"chance", "due"}
        Pick the pairs most likely to refill (default) or those due (the broad list).
    min_probability : float or None
        Least ``p_refill`` listed (None: no limit).
    include_overdue, include_lapsed : bool
        Also list overdue (default) / lapsed (default not: those belong to the wake-up list).
    show_phone : bool
        Show full phone numbers; by default they are masked (``138****5678``).
    max_overdue_days : int or None
        Rows more than this many days past their expected day are left out even when their
        status is still ``overdue`` (a 90-day refill is "lapsed" only after 90 days): they
        are lapsing, not due, and belong to the wake-up list
        (:func:`rxrepurchase.actionlists.lapsed_refill_list`). Their count is
        ``attrs["moved_to_wake_up"]``. None keeps them.
    lift : DataFrame, optional
        From :func:`co_purchase_lift`: fills ``also_recommend`` with up to ``n_recommend``
        products members on the same product commonly buy (lift > 1) and the member does not
        already refill. Prescription drugs are never suggested; products whose prescription
        status the data cannot tell go to ``pharmacist_review`` instead (to be checked by a
        pharmacist before they are offered).

    Returns
    -------
    DataFrame
        One row per reminder (member x product), sorted by home store and expected date
        (soonest first), with the prediction's interval (``due_low``, ``due_high``) and a
        ``suggested_action`` code (``refill_reminder``); ``attrs`` holds ``as_of``,
        ``horizon_days``, ``select``, ``min_probability``, ``status_counts``, ``phone_masked``,
        ``first_refill``, ``max_overdue_days`` and ``moved_to_wake_up``.
    """
    _require_columns(predictions, "predictions",
                     [*_KEYS, "status", "days_until_due", "expected_on", "last_fill"])
    if horizon_days < 0:
        raise RefillError(f"horizon_days must be >= 0 days, got {horizon_days}")
    if max_overdue_days is not None and max_overdue_days < 0:
        raise RefillError(f"max_overdue_days must be >= 0 days or None, got {max_overdue_days}")
    if min_probability is not None and not 0 <= min_probability <= 1:
        raise RefillError(f"min_probability must be within 0 ... 1 or None, got {min_probability}")
    if select == "chance" or min_probability is not None:
        _require_columns(predictions, "predictions", ["p_refill"])
    rule = {"horizon_days": horizon_days, "include_overdue": include_overdue, "include_lapsed": include_lapsed,
            "first_refill": first_refill, "max_spread": max_spread}
    too_late = pd.Series(False, index=predictions.index)
    if max_overdue_days is not None:
        too_late = (predictions["days_overdue"] > max_overdue_days).fillna(False)
    # Too late rows leave before the pick, so the list keeps its size without them.
    pick = _on_list(predictions[~too_late], select=select, min_probability=min_probability,
                    **rule).reindex(predictions.index, fill_value=False)
    moved = _on_list(predictions, select="due", **rule) & too_late
    targets = member_details(predictions[pick], members, show_phone=show_phone)
    if lift is not None:
        targets["also_recommend"], targets["pharmacist_review"] = _recommendations(
            targets, lift, predictions, n_recommend)

    targets["suggested_action"] = pd.array(["refill_reminder"] * len(targets), dtype="string")
    columns = [
        "member_id", "home_store_id", "last_store_id", "tier", "acquisition_channel",
        "last_channel", "tags", "product", "product_name", "status", "last_fill",
        "expected_on", "due_low", "due_high", "window_start", "window_end", "days_until_due",
        "days_overdue", "p_refill", "suggested_action",
        "also_recommend", "pharmacist_review", "phone", "wechat_id",
    ]
    targets = targets[[c for c in columns if c in targets.columns]]
    sort = [c for c in ("home_store_id", "expected_on", "member_id") if c in targets]
    targets = targets.sort_values(sort, kind="stable").reset_index(drop=True)
    targets["status"] = targets["status"].astype("string")
    targets.attrs = {
        **predictions.attrs,
        "horizon_days": horizon_days,
        "select": select,
        "min_probability": min_probability,
        "status_counts": targets["status"].value_counts().to_dict(),
        "phone_masked": not show_phone,
        "first_refill": first_refill,
        "max_overdue_days": max_overdue_days,
        "moved_to_wake_up": int(moved.sum()),
    }
    return targets


def member_details(table: pd.DataFrame, members: pd.DataFrame, *,
                   show_phone: bool = False) -> pd.DataFrame:
    """``table`` (with a ``member_id`` column) joined with the member's home store, tier,
    acquisition channel, tags and contacts (the columns of these ``members`` has), phone
    masked unless ``show_phone``: what a list needs to reach the member.

    Raises
    ------
    RefillError
        A ``member_id`` that is not in ``members``.
    """
    _require_columns(members, "members", ["member_id"])
    table = table.drop(columns=["home_store_id"], errors="ignore")
    member_cols = [c for c in ("home_store_id", "tier", "acquisition_channel", "tags", "phone",
                               "wechat_id") if c in members.columns]
    info = members.set_index("member_id")[member_cols]
    missing = ~table["member_id"].isin(info.index)
    if missing.any():
        raise RefillError(f"member_id not in members: {_examples(table.loc[missing, 'member_id'])}")
    table = table.join(info, on="member_id")
    if "phone" in table and not show_phone:
        table["phone"] = mask_phone(table["phone"])
    return table


def export_target_list(targets: pd.DataFrame, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a target list as CSV (UTF-8 with BOM, so Excel shows Chinese text) or Parquet,
    chosen by the file suffix. An existing file is only replaced with ``overwrite=True``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise RefillError(f"{path}: target lists are written as .csv or .parquet, not {suffix!r}")
    if path.exists() and not overwrite:
        raise RefillError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    with atomic_path(path) as tmp:  # a reader never sees half a list
        if suffix == ".csv":
            targets.to_csv(tmp, index=False, encoding="utf-8-sig", date_format="%Y-%m-%d")
        else:
            # Parquet keeps attrs as JSON metadata: dates as ISO text.
            targets = targets.copy()
            targets.attrs = json.loads(json.dumps(targets.attrs, default=str))
            targets.to_parquet(tmp, index=False)
    return path


@renamed_keywords(within="horizon_days")
def chain_refill_targets(
    chain,
    *,
    as_of: str | pd.Timestamp | None = None,
    horizon_days: int = 14,
    group_by: str | Mapping[str, str] | pd.Series = "sku",
    show_phone: bool = False,
    include_lapsed: bool = False,
    pack_days: Mapping[str, float] | pd.Series | None = None,
    first_refill: bool = False,
    select: str = "chance",
) -> pd.DataFrame:
    """The reminder list of a loaded :class:`~rxrepurchase.loading.Chain`: fills, predictions
    as of ``as_of`` (default ``chain.as_of``), co-purchase offers and the list (the
    first-refill list with ``first_refill=True``; ``select``: see :func:`refill_targets`)."""
    as_of = pd.Timestamp(as_of if as_of is not None else chain.as_of).normalize()
    fills = refill_fills(chain.order_lines, chain.orders, chain.members, group_by=group_by,
                         pack_days=pack_days)
    predictions = predict_refills(fills, as_of=as_of)
    lift = co_purchase_lift(chain.order_lines, chain.orders, group_by=group_by, end=as_of)
    return refill_targets(predictions, chain.members, horizon_days=horizon_days, show_phone=show_phone,
                          include_lapsed=include_lapsed, lift=lift, first_refill=first_refill,
                          select=select)


@dataclass
class RefillOverview:
    """Refill figures of a chain or one store, for reports (see :func:`refill_overview`).

    Attributes
    ----------
    predictions : DataFrame
        :func:`predict_refills` rows (member x product) of the store's members.
    adherence : DataFrame
        :func:`adherence` rows over the 365 days ending ``as_of``.
    targets : DataFrame
        The reminder list (:func:`refill_targets`, due within ``horizon_days`` days or overdue).
    as_of : Timestamp
    horizon_days : int
        The list's look-ahead in days (``within`` is its old name, read-only).
    list_check : DataFrame
        :func:`list_outcomes` of the list as it would have been sent ``outcome_days`` before
        ``as_of``: its measured precision is shown beside today's list.
    """

    predictions: pd.DataFrame
    adherence: pd.DataFrame
    targets: pd.DataFrame
    as_of: pd.Timestamp
    horizon_days: int
    list_check: pd.DataFrame

    within = renamed_attribute("within", "horizon_days")

    @property
    def list_precision(self) -> pd.DataFrame:
        """:func:`list_precision` of ``list_check``: the list's and the naive list's measured
        precision and recall."""
        return list_precision(self.list_check)

    @property
    def status_counts(self) -> pd.Series:
        """Member x products per refill status."""
        return self.predictions["status"].value_counts().reindex(REFILL_STATUSES, fill_value=0)

    @property
    def adherence_by_product(self) -> pd.DataFrame:
        """:func:`adherence_by_store` per product group (eligible rows), most members first."""
        table = adherence_by_store(self.adherence, by=["product"])
        names = self.adherence.groupby("product", observed=True)["product_name"].last()
        table.insert(1, "product_name", table["product"].map(names))
        return table.sort_values("members", ascending=False, ignore_index=True)

    @property
    def headline(self) -> dict:
        """Plain numbers: list sizes and adherence. ``*_members`` count distinct members,
        ``*_rows`` member x product rows (a member due for two products is two rows)."""
        eligible = self.adherence[self.adherence["eligible"]]
        status = self.targets["status"]
        return {
            "as_of": self.as_of.date().isoformat(),
            "horizon_days": self.horizon_days,
            "refill_members": int(self.predictions["member_id"].nunique()),
            "reminder_rows": len(self.targets),
            "reminder_members": int(self.targets["member_id"].nunique()),
            "reminder_rows_due": int(status.isin(["due_soon", "due_now"]).sum()),
            "reminder_rows_overdue": int((status == "overdue").sum()),
            # The default list picks by chance of a refill: some not due within the days.
            "reminder_rows_later": int((status == "not_due").sum()),
            "lapsed_rows": int((self.predictions["status"] == "lapsed").sum()),
            "pdc_eligible": len(eligible),
            "pdc_mean": float(eligible["pdc"].mean()) if len(eligible) else None,
            "adherent_share": float(eligible["adherent"].mean()) if len(eligible) else None,
            "walk_in_lines": self.predictions.attrs.get("walk_in_lines"),
            **self._list_check_headline(),
        }

    def _list_check_headline(self) -> dict:
        table = self.list_precision

        def share(value) -> float | None:
            return None if pd.isna(value) else float(value)

        return {
            "list_check_as_of": self.list_check.attrs["as_of"].date().isoformat(),
            "list_check_outcome_days": self.list_check.attrs["outcome_days"],
            "list_check_listed": int(table.loc["refill_model", "listed"]),
            "list_precision": share(table.loc["refill_model", "precision"]),
            "list_precision_low": share(table.loc["refill_model", "precision_low"]),
            "list_precision_high": share(table.loc["refill_model", "precision_high"]),
            "naive_list_precision": share(table.loc["naive_median", "precision"]),
        }


@renamed_keywords(within="horizon_days", check_days="outcome_days")
def refill_overview(
    chain,
    *,
    store_id: str | None = None,
    as_of: str | pd.Timestamp | None = None,
    horizon_days: int = 14,
    group_by: str | Mapping[str, str] | pd.Series = "sku",
    chain_predictions: pd.DataFrame | None = None,
    chain_adherence: pd.DataFrame | None = None,
    chain_lift: pd.DataFrame | None = None,
    chain_list_check: pd.DataFrame | None = None,
    outcome_days: int = 30,
) -> RefillOverview:
    """Refill predictions, adherence and the reminder list of a loaded chain, restricted to
    the members whose home store is ``store_id`` (all members by default), as of ``as_of``
    (default ``chain.as_of``). Phones in the list are masked; ``walk_in_lines`` in the
    headline is chain-wide (walk-ins have no home store).

    ``chain_predictions``, ``chain_adherence`` and ``chain_lift`` are the chain-wide
    :func:`predict_refills`, :func:`adherence` and :func:`co_purchase_lift` tables of this
    chain as of ``as_of`` with this ``group_by``, computed here when not given: a report run
    computes them once and slices them for every store (same figures, much less work).

    ``list_check`` measures the list: the reminder list as it would have been sent
    ``outcome_days`` before ``as_of`` and which of its members refilled since
    (:func:`list_outcomes`; ``chain_list_check`` is the chain-wide table, computed here when
    not given)."""
    as_of = pd.Timestamp(as_of if as_of is not None else chain.as_of).normalize()
    if store_id is not None and store_id not in set(chain.stores["store_id"]):
        raise RefillError(f"store_id {store_id!r} is not in the stores table")
    for name, table, key in (("chain_predictions", chain_predictions, "as_of"),
                             ("chain_adherence", chain_adherence, "end")):
        if table is not None and table.attrs.get(key) != as_of:
            raise RefillError(f"{name} is as of {table.attrs.get(key)}, not {as_of.date()}; "
                              "compute it as of the overview's day or leave it out")
    check_cut = as_of - pd.Timedelta(days=outcome_days)
    if chain_list_check is not None and (chain_list_check.attrs.get("as_of") != check_cut
                                         or chain_list_check.attrs.get("horizon_days") != horizon_days):
        raise RefillError(
            f"chain_list_check is of the list as of {chain_list_check.attrs.get('as_of')} within "
            f"{chain_list_check.attrs.get('horizon_days')} days, not {check_cut.date()} within {horizon_days}; "
            "compute it with list_check(fills, as_of=..., horizon_days=..., outcome_days=...)")
    # Predict chain-wide, so a store's figures use the chain's product rhythms and match
    # the chain's list.
    if chain_predictions is None or chain_adherence is None or chain_list_check is None:
        fills = refill_fills(chain.order_lines, chain.orders, chain.members, group_by=group_by)
    predictions = chain_predictions if chain_predictions is not None else predict_refills(
        fills, as_of=as_of)
    adh = chain_adherence if chain_adherence is not None else adherence(fills, end=as_of)
    check = chain_list_check if chain_list_check is not None else list_check(
        fills, as_of=as_of, horizon_days=horizon_days, outcome_days=outcome_days)
    if store_id is not None:
        predictions = predictions[predictions["home_store_id"] == store_id].reset_index(drop=True)
        adh = adh[adh["home_store_id"] == store_id].reset_index(drop=True)
        attrs = check.attrs
        check = check[check["home_store_id"] == store_id].reset_index(drop=True)
        check.attrs = attrs
    lift = chain_lift if chain_lift is not None else co_purchase_lift(
        chain.order_lines, chain.orders, group_by=group_by, end=as_of)
    return RefillOverview(
        predictions=predictions,
        adherence=adh,
        targets=refill_targets(predictions, chain.members, horizon_days=horizon_days, lift=lift),
        as_of=as_of,
        horizon_days=horizon_days,
        list_check=check,
    )


@renamed_keywords(within="horizon_days", days="outcome_days")
def list_check(fills: pd.DataFrame, *, as_of: str | pd.Timestamp, horizon_days: int = 14,
               outcome_days: int = 30, **predict_kwargs) -> pd.DataFrame:
    """:func:`list_outcomes` of the list that would have been sent ``outcome_days`` before
    ``as_of``, followed for those days: the measured precision shown beside a list."""
    cut = pd.Timestamp(as_of).normalize() - pd.Timedelta(days=outcome_days)
    before = predict_refills(fills, as_of=cut, **predict_kwargs)
    return list_outcomes(before, fills[fills["filled_on"] <= pd.Timestamp(as_of)], horizon_days=horizon_days,
                         outcome_days=outcome_days)


# --------------------------------------------------------------------------------------------
# Backtest
# --------------------------------------------------------------------------------------------


@dataclass
class RefillBacktest:
    """Result of :func:`backtest_refills`.

    Attributes
    ----------
    summary : DataFrame
        One row per method (``refill_model``, ``product_median``): ``scored``, ``mae_days``,
        ``rmse_days``, ``median_abs_error_days``, ``within_7_days``, ``in_window`` (share of
        actual fills in the predicted due window; model only), ``in_interval`` (coverage of
        the ``due_low`` ... ``due_high`` interval, 80% by default: the share of the pairs
        whose whole interval lies in the observed period that filled within it; those who
        did not come back, dropouts included, count as misses; model only).
    detail : DataFrame
        One row per active member x product: predictions, the actual next fill (empty when
        the member did not come back by the end of the data or horizon) and both errors.
    calibration_end : Timestamp
    lists : DataFrame
        :func:`list_precision` of the lists at the calibration_end: precision and recall.
    list_detail : DataFrame
        :func:`list_outcomes`: the pairs each list named and whether they refilled.
    """

    summary: pd.DataFrame
    detail: pd.DataFrame
    calibration_end: pd.Timestamp
    lists: pd.DataFrame
    list_detail: pd.DataFrame

    @property
    def headline(self) -> dict:
        """What an operator needs: the list's precision and recall against the naive list's,
        and model against baseline MAE on the pairs that came back."""
        lists, s = self.lists, self.summary
        return {
            "calibration_end": self.calibration_end.date().isoformat(),
            "outcome_days": lists.attrs["outcome_days"],
            "listed": int(lists.loc["refill_model", "listed"]),
            "precision": float(lists.loc["refill_model", "precision"]),
            "recall": float(lists.loc["refill_model", "recall"]),
            "naive_listed": int(lists.loc["naive_median", "listed"]),
            "naive_precision": float(lists.loc["naive_median", "precision"]),
            "naive_recall": float(lists.loc["naive_median", "recall"]),
            "naive_same_size_precision": float(lists.loc["naive_same_size", "precision"]),
            "broad_listed": int(lists.loc["broad_model", "listed"]),
            "broad_precision": float(lists.loc["broad_model", "precision"]),
            "broad_recall": float(lists.loc["broad_model", "recall"]),
            "scored": int(s.loc["refill_model", "scored"]),
            "mae_days": float(s.loc["refill_model", "mae_days"]),
            "baseline_mae_days": float(s.loc["product_median", "mae_days"]),
            "not_returned": int(s.attrs["not_returned"]),
        }


@renamed_keywords(within="horizon_days")
def list_outcomes(
    predictions: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    horizon_days: int = 14,
    outcome_days: int = 30,
    baseline_interval: pd.Series | None = None,
    regular_spread: float = 2.0,
) -> pd.DataFrame:
    """Which member x products each list would have named at the prediction day, and whether
    they refilled within ``outcome_days`` after it.

    Lists compared (``list`` column):

    - ``refill_model``: the default reminder list (:func:`refill_targets`: as many pairs
      with a rhythm as ``broad_model``, those with the highest ``p_refill``);
    - ``broad_model``: the broad list (``refill_targets(select="due")``: pairs with a rhythm
      expected within ``horizon_days`` days or overdue, not lapsed);
    - ``naive_median``: the same pairs with a rhythm, due at *last fill + the product's median
      interval* (``baseline_interval``, per product; computed from the history when not
      given), listed by the broad rule (due within ``horizon_days`` days, overdue but not lapsed);
    - ``naive_same_size``: the naive list cut to the size of ``refill_model`` by its own
      rule: the pairs nearest their naive due day first (smallest ``|days_until_due|``,
      then member and product);
    - ``all_pairs``: the broad list when one-off buys are not left out (the list before
      rhythm was required);
    - ``regular_model``: the broad list of the members with a regular rhythm only
      (:func:`refill_spread` at most ``regular_spread``; ``refill_targets(max_spread=,
      select="due")``).

    Returns one row per listed pair and list: ``list, member_id, product, refilled`` (+
    ``home_store_id`` when the predictions have it); ``attrs`` holds ``as_of``,
    ``outcome_days`` and ``refills`` (pairs with history that refilled in the window: the
    recall denominator).
    """
    as_of = pd.Timestamp(predictions.attrs["as_of"]).normalize()
    later = fills[(fills["filled_on"] > as_of)
                  & (fills["filled_on"] <= as_of + pd.Timedelta(days=outcome_days))]
    came = pd.MultiIndex.from_frame(later[_KEYS].drop_duplicates())
    if baseline_interval is None:
        hist = fill_intervals(fills[fills["filled_on"] <= as_of])
        baseline_interval = _product_median_interval(hist)

    naive = predictions.copy()
    days = np.round(naive["product"].map(baseline_interval).astype("float64").to_numpy())
    naive["predicted_interval"] = days
    naive["expected_on"] = naive["last_fill"] + pd.to_timedelta(days, unit="D")
    naive["window_start"] = naive["window_end"] = naive["expected_on"]
    # The same status rule (lapse after max(30 days, one interval)) on the naive dates.
    naive = refill_status(naive, as_of=as_of)
    any_rhythm = refill_status(predictions.drop(columns="rhythm"), as_of=as_of)
    keep = [*(["home_store_id"] if "home_store_id" in predictions else []), *_KEYS]
    lists = {
        "refill_model": predictions[_on_list(predictions, horizon_days=horizon_days, select="chance")],
        "broad_model": predictions[_on_list(predictions, horizon_days=horizon_days)],
        "naive_median": naive[_on_list(naive, horizon_days=horizon_days)],
    }
    ranked = lists["naive_median"].assign(distance=lists["naive_median"]["days_until_due"].abs())
    lists["naive_same_size"] = ranked.sort_values(["distance", *_KEYS], kind="stable").head(
        len(lists["refill_model"]))
    lists["all_pairs"] = any_rhythm[_on_list(any_rhythm, horizon_days=horizon_days)]
    lists["regular_model"] = predictions[_on_list(predictions, horizon_days=horizon_days,
                                                  max_spread=regular_spread)]
    parts = []
    for name, table in lists.items():
        picked = table[keep].copy()
        picked.insert(0, "list", name)
        picked["refilled"] = pd.MultiIndex.from_frame(picked[_KEYS]).isin(came)
        parts.append(picked)
    out = pd.concat(parts, ignore_index=True)
    out["list"] = out["list"].astype("string")
    with_history = pd.MultiIndex.from_frame(predictions[_KEYS])
    out.attrs = {"as_of": as_of, "outcome_days": outcome_days, "horizon_days": horizon_days,
                 "refills": int(came.isin(with_history).sum())}
    return out


def list_precision(outcomes: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Per list of :func:`list_outcomes`: ``listed``, ``refilled``, ``precision`` (share of
    listed pairs that refilled) with its Wilson interval (``precision_low``,
    ``precision_high``) and ``recall`` (share of all refills in the window the list caught)."""
    from statsmodels.stats.proportion import proportion_confint

    order = ["refill_model", "broad_model", "naive_median", "naive_same_size", "all_pairs",
             "regular_model"]
    g = outcomes.groupby("list", observed=True)["refilled"]
    table = pd.DataFrame({"listed": g.size(), "refilled": g.sum()}).reindex(order, fill_value=0)
    table = table.astype("int64")
    n, k = table["listed"], table["refilled"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["precision"] = k / n.where(n > 0)
        low, high = proportion_confint(k, n.where(n > 0), alpha=1 - confidence, method="wilson")
        table["precision_low"], table["precision_high"] = low, high
        refills = outcomes.attrs["refills"]
        table["recall"] = k / refills if refills else np.nan
    table.index.name = "list"
    table.attrs = {**outcomes.attrs, "confidence": confidence}
    return table


def _product_median_interval(hist: pd.DataFrame) -> pd.Series:
    """The naive rhythm: each product's median interval (the overall median where a product
    has none)."""
    median = hist.groupby("product", observed=True)["interval_days"].median()
    return median.fillna(hist["interval_days"].median())


@renamed_keywords(within="horizon_days")
def backtest_refills(
    fills: pd.DataFrame,
    *,
    calibration_end: str | pd.Timestamp,
    score_days: int | None = None,
    horizon_days: int = 14,
    outcome_days: int = 30,
    **predict_kwargs,
) -> RefillBacktest:
    """Cut the history at ``calibration_end``, predict, and compare with the fills that followed.

    Two questions are answered.

    *Is the list worth sending?* (``lists``, :func:`list_precision`): of the pairs the reminder
    list would have named at the calibration_end (due within ``horizon_days`` days or overdue), the share that
    refilled within ``outcome_days`` (precision), and the share of all refills in those days
    the list caught (recall), beside the naive median-interval list and the list that also
    names one-off buys. ``list_detail`` has the pairs (:func:`list_outcomes`).

    *How good is the date?* (``summary``): every member x product with a rhythm and not lapsed
    (nor unknown) at the calibration_end is predicted; those who filled again after the calibration_end (within
    ``score_days``, default to the end of the data) are scored by the absolute error in days
    of the predicted next fill, against the naive baseline *last fill + the product's median
    interval*. A prediction before the calibration_end (overdue) can only come true the day after the
    calibration_end, so both methods' predictions are moved to ``calibration_end + 1`` at the earliest.
    ``summary.attrs["not_returned"]`` counts the predicted pairs that did not come back.
    """
    calibration_end = pd.Timestamp(calibration_end).normalize()
    predictions = predict_refills(fills, as_of=calibration_end, **predict_kwargs)
    active = predictions[~predictions["status"].isin(["lapsed", "unknown"])]
    future = fills[fills["filled_on"] > calibration_end]
    if score_days is not None:
        future = future[future["filled_on"] <= calibration_end + pd.Timedelta(days=score_days)]
    actual = future.groupby(_KEYS, observed=True)["filled_on"].min().rename("actual_next")

    median = _product_median_interval(fill_intervals(fills[fills["filled_on"] <= calibration_end]))
    detail = active.join(actual, on=_KEYS)
    earliest = calibration_end + pd.Timedelta(days=1)
    baseline_days = np.round(detail["product"].map(median).astype("float64").to_numpy())
    detail["baseline_on"] = (detail["last_fill"] + pd.to_timedelta(baseline_days, unit="D")).clip(lower=earliest)
    detail["model_on"] = detail["expected_on"].clip(lower=earliest)
    detail["model_error"] = ((detail["model_on"] - detail["actual_next"]) / _DAY).abs()
    detail["baseline_error"] = ((detail["baseline_on"] - detail["actual_next"]) / _DAY).abs()
    scored = detail.dropna(subset=["actual_next", "baseline_error"])
    in_window = scored["actual_next"].between(
        scored["window_start"].clip(lower=earliest), scored["window_end"].clip(lower=earliest)
    )
    # Coverage over the pairs whose whole interval was observed, returned or not: counting
    # only those who came back would leave out the late tail.
    seen_until = (calibration_end + pd.Timedelta(days=score_days) if score_days is not None
                  else fills["filled_on"].max())
    observed = detail[detail["due_high"] <= seen_until]
    in_interval = observed["actual_next"].between(
        observed["due_low"].clip(lower=earliest), observed["due_high"].clip(lower=earliest)
    )
    rows = []
    for method, error, coverage, interval in (
        ("refill_model", scored["model_error"], in_window.mean(), in_interval.mean()),
        ("product_median", scored["baseline_error"], np.nan, np.nan),
    ):
        rows.append({
            "method": method,
            "scored": len(scored),
            "mae_days": error.mean(),
            "rmse_days": np.sqrt((error**2).mean()),
            "median_abs_error_days": error.median(),
            "within_7_days": (error <= 7).mean(),
            "in_window": coverage,
            "in_interval": interval,
        })
    summary = pd.DataFrame(rows).set_index("method")
    summary.attrs = {
        "calibration_end": calibration_end,
        "active": len(active),
        "not_returned": int(detail["actual_next"].isna().sum()),
    }
    outcomes = list_outcomes(predictions, fills, horizon_days=horizon_days, outcome_days=outcome_days,
                             baseline_interval=median)
    return RefillBacktest(summary=summary, detail=detail.reset_index(drop=True), calibration_end=calibration_end,
                          lists=list_precision(outcomes), list_detail=outcomes)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
