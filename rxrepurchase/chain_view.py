"""Chain-level figures for the chain overview: totals with their change, trend, attention list.

An operations director reads the overview to run the chain: what the period is, how the chain
as a whole did against the previous period (and the same period a year before, where the data
reaches back that far), and which stores need attention first. Plain functions on the orders
table; :mod:`rxrepurchase.report_data` words and draws them.
"""

from __future__ import annotations

import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.errors import ChainViewError
from rxrepurchase.i18n import format_count, format_text, t
from rxrepurchase.metrics import purchases, repurchase_rates

__all__ = [
    "ChainViewError",
    "PERIODS",
    "TOTALS",
    "chain_periods",
    "chain_vs_store_rates",
    "chain_totals",
    "chain_trend",
    "LIST_SIZES",
    "NOTHING_REASONS",
    "list_sizes_line",
    "nothing_received_line",
    "read_store_results",
    "store_list_sizes",
    "stores_needing_attention",
]

PERIODS: tuple[str, ...] = ("this", "previous", "year_before")
"""The compared periods: the headline period, the one just before it, a year before it."""

TOTALS: tuple[str, ...] = ("active_members", "user_repurchase_rate", "order_repurchase_rate",
                           "orders", "revenue", "subsidy")
"""Chain totals per period; the two rates change in points, the others in per cent."""

RATES = ("user_repurchase_rate", "order_repurchase_rate")


def chain_periods(as_of, period_days: int = 90) -> pd.DataFrame:
    """Start and end (inclusive days) of :data:`PERIODS` for the headline period ending
    ``as_of``: ``previous`` ends the day before it starts, ``year_before`` is the same dates one
    calendar year earlier."""
    if period_days < 1:
        raise ChainViewError(f"period_days must be at least 1, got {period_days}")
    end = pd.Timestamp(as_of).normalize()
    start = end - pd.Timedelta(days=period_days - 1)
    year = pd.DateOffset(years=1)
    return pd.DataFrame({
        "period": list(PERIODS),
        "start": [start, start - pd.Timedelta(days=period_days), start - year],
        "end": [end, start - pd.Timedelta(days=1), end - year],
    })


def chain_totals(orders: pd.DataFrame, as_of, *, period_days: int = 90) -> pd.DataFrame:
    """The chain's totals over each of :data:`PERIODS` and the change of this period.

    Returns
    -------
    DataFrame
        One row per period: ``period, start, end, available`` (the orders reach back to the
        period's start; figures of an unavailable period are NaN), :data:`TOTALS` (members
        and rates pooled over all stores; orders, revenue = ``paid_amount`` and subsidy =
        ``discount_amount`` over all orders, walk-ins included, as
        :func:`rxrepurchase.report_data.store_headline` counts them) and, for the two earlier
        periods, ``change_<total>``: this period's figure against theirs (rates: difference
        in points as a fraction; others: relative change).
    """
    require_columns(orders, ["member_id", "ordered_at", "paid_amount", "discount_amount"],
                    "orders", error=ChainViewError)
    periods = chain_periods(as_of, period_days)
    first_day = orders["ordered_at"].min().normalize() if len(orders) else pd.NaT
    day = orders["ordered_at"].dt.normalize()
    rows = []
    for p in periods.itertuples():
        row = {"period": p.period, "start": p.start, "end": p.end,
               "available": bool(pd.notna(first_day) and first_day <= p.start)}
        figures = dict.fromkeys(TOTALS, float("nan"))
        if row["available"]:
            inside = orders.loc[(day >= p.start) & (day <= p.end)]
            rates = repurchase_rates(orders, (p.start, p.end))
            if len(rates):
                r = rates.iloc[0]
                figures.update(active_members=int(r["members"]),
                               user_repurchase_rate=float(r["user_repurchase_rate"]),
                               order_repurchase_rate=float(r["order_repurchase_rate"]))
            else:
                figures.update(active_members=0)
            figures.update(orders=len(inside), revenue=float(inside["paid_amount"].sum()),
                           subsidy=float(inside["discount_amount"].sum()))
        rows.append({**row, **figures})
    table = pd.DataFrame(rows)
    now = table.iloc[0]
    for total in TOTALS:
        before = table[total].astype("float64")
        if total in RATES:
            change = now[total] - before
        else:
            change = (now[total] - before) / before.where(before != 0)
        table[f"change_{total}"] = change.where(table["period"] != "this")
    return table


def chain_trend(orders: pd.DataFrame, as_of, *, months: int = 12) -> pd.DataFrame:
    """The chain's user and order repurchase rates per calendar month, the last ``months`` up
    to ``as_of`` (members pooled over all stores), with ``partial`` for a month not over."""
    end = pd.Timestamp(as_of).normalize()
    start = (end.to_period("M") - (months - 1)).to_timestamp()
    rates = repurchase_rates(orders, "M", start=start, end=end)
    table = rates[["window_start", "members", *RATES]].rename(columns={"window_start": "month"})
    table["partial"] = (table["month"] + pd.offsets.MonthEnd(0)) > end
    return table.reset_index(drop=True)


def chain_vs_store_rates(orders: pd.DataFrame, as_of, *, period_days: int = 90,
                         min_active_members: int = 30) -> dict:
    """Why the chain's user repurchase rate differs from its stores': the chain counts each
    member once over all stores, a store only the purchases made there, so a member with one
    purchase at each of two stores is a repeat buyer for the chain and at neither store.

    Purchases are those of :func:`rxrepurchase.metrics.purchases` (a member-day), over the
    period of ``period_days`` days ending ``as_of`` (:func:`chain_periods`), as
    :func:`chain_totals` and the store pages count them.

    Returns
    -------
    dict
        ``chain_rate``, ``members`` (active members of the chain), ``repeat_members``;
        ``multi_store_members`` (bought at two or more stores); ``store_members`` (member x
        store pairs with a purchase: the members counted store by store) and
        ``pooled_store_rate`` (the share of those pairs with two or more purchases at that
        store); ``once_here`` (pairs with one purchase at the store whose member is a repeat
        buyer for the chain: one-time buyers at that store, repeat buyers for the chain);
        ``cross_store_only`` (repeat buyers for the chain who repeat at no store);
        ``store_low`` and ``store_high`` (lowest and highest store rate among stores with at
        least ``min_active_members`` active members; NaN when none), ``stores`` (how many such
        stores).
    """
    require_columns(orders, ["member_id", "store_id", "ordered_at"], "orders",
                    error=ChainViewError)
    p = chain_periods(as_of, period_days).set_index("period").loc["this"]
    day = orders["ordered_at"].dt.normalize()
    inside = orders.loc[(day >= p["start"]) & (day <= p["end"])]
    chain_count = purchases(inside).groupby("member_id", observed=True).size()
    # Each store on its own: a member's purchases there only (one per day and store).
    at_store = pd.concat(
        [purchases(part).groupby("member_id", observed=True).size().rename(store)
         for store, part in inside.groupby("store_id", observed=True)], axis=1
    ) if len(inside) else pd.DataFrame(index=chain_count.index)
    at_store = at_store.reindex(chain_count.index)
    stores_bought = at_store.notna().sum(axis=1)
    repeats_somewhere = (at_store >= 2).any(axis=1)
    members = len(chain_count)
    repeat = chain_count >= 2
    cross_only = int((repeat & ~repeats_somewhere).sum())
    per_store = repurchase_rates(orders, (p["start"], p["end"]), by="store_id")
    per_store = per_store.loc[per_store["members"] >= min_active_members, "user_repurchase_rate"]
    nan = float("nan")
    pairs = int(stores_bought.sum())
    return {
        "chain_rate": float(repeat.mean()) if members else nan,
        "members": members,
        "repeat_members": int(repeat.sum()),
        "multi_store_members": int((stores_bought >= 2).sum()),
        "store_members": pairs,
        "pooled_store_rate": int((at_store >= 2).sum().sum()) / pairs if pairs else nan,
        "once_here": int((at_store == 1).loc[repeat].sum().sum()),
        "cross_store_only": cross_only,
        "store_low": float(per_store.min()) if len(per_store) else nan,
        "store_high": float(per_store.max()) if len(per_store) else nan,
        "stores": len(per_store),
    }


def stores_needing_attention(orders: pd.DataFrame, stores: pd.DataFrame, as_of, *,
                             period_days: int = 90, min_active_members: int = 30,
                             top: int = 3) -> pd.DataFrame:
    """The stores to look at first, among those with at least ``min_active_members`` active
    members in both this and the previous period.

    Two lists, in this order: the ``top`` largest falls of the user repurchase rate against
    the previous period (falls only), then the ``top`` highest subsidy per retained member
    (``stores["subsidy_per_retained_member"]``, the lowest subsidy efficiency) among the stores
    above these stores' median (so a small chain does not list every store). A store can be on
    both.

    Returns
    -------
    DataFrame
        ``reason`` (``repurchase_fall`` or ``subsidy_efficiency``), ``store_id``,
        ``active_members``, ``user_repurchase_rate``, ``previous_user_repurchase_rate``,
        ``change`` (points as a fraction), ``subsidy_per_retained_member``.
    """
    require_columns(stores, ["store_id", "subsidy_per_retained_member"], "stores",
                    error=ChainViewError)
    periods = chain_periods(as_of, period_days).set_index("period")
    rates = {}
    for name in ("this", "previous"):
        p = periods.loc[name]
        rates[name] = repurchase_rates(orders, (p["start"], p["end"]), by="store_id").set_index(
            "store_id")[["members", "user_repurchase_rate"]]
    both = rates["this"].merge(rates["previous"], left_index=True, right_index=True,
                               suffixes=("", "_previous"))
    both = both[(both["members"] >= min_active_members)
                & (both["members_previous"] >= min_active_members)]
    table = pd.DataFrame({
        "store_id": both.index,
        "active_members": both["members"].astype("int64").to_numpy(),
        "user_repurchase_rate": both["user_repurchase_rate"].to_numpy(),
        "previous_user_repurchase_rate": both["user_repurchase_rate_previous"].to_numpy(),
    })
    table["change"] = table["user_repurchase_rate"] - table["previous_user_repurchase_rate"]
    by_store = stores.set_index("store_id")["subsidy_per_retained_member"]
    table["subsidy_per_retained_member"] = by_store.reindex(table["store_id"]).to_numpy()
    falls = table[table["change"] < 0].sort_values(["change", "store_id"]).head(top)
    cost = table["subsidy_per_retained_member"]
    costly = table[cost > cost.median()].sort_values(
        ["subsidy_per_retained_member", "store_id"], ascending=[False, True]).head(top)
    out = pd.concat([falls.assign(reason="repurchase_fall"),
                     costly.assign(reason="subsidy_efficiency")], ignore_index=True)
    return out[["reason", *table.columns]]


LIST_SIZES: tuple[str, ...] = ("refill_reminder_members", "refill_reminder_rows",
                               "wake_up_members", "lapsed_refill_members", "top_members",
                               "this_week_member_care_members")
"""Per-store list sizes the overview shows, read from each store's ``metrics.json``: the same
lists its page and files hold (``top_members``: the top 20% of members by what they paid;
``this_week_member_care_members``: those of them whose visits slowed, "This week"'s action)."""

NOTHING_REASONS: tuple[str, ...] = ("report_failed", "no_manager_address", "pdf_failed",
                                    "email_failed")
"""Why a store's manager receives nothing. The overview knows the first two (it is written
before the PDFs and emails); head office's email knows all four."""


def read_store_results(path) -> dict:
    """The stores' outcomes the report runner writes for the chain overview (``stores.json``):
    ``{"stores": [{store_id, ok, error, metrics}], "undelivered": {store_id: [reason, detail]},
    "sends_email": bool}`` (see :func:`store_list_sizes`).

    Raises
    ------
    ChainViewError
        The file is missing, not JSON, or lacks ``stores``; the message names the file.
    """
    import json
    from pathlib import Path

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChainViewError(f"{path}: the stores' results file does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChainViewError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("stores"), list):
        raise ChainViewError(f"{path}: expected an object with a 'stores' list")
    for i, store in enumerate(doc["stores"]):
        if not isinstance(store, dict) or "store_id" not in store or "ok" not in store:
            raise ChainViewError(f"{path}: stores[{i}] needs 'store_id' and 'ok'")
    doc.setdefault("sends_email", False)
    doc["undelivered"] = {k: tuple(v) for k, v in doc.get("undelivered", {}).items()}
    return doc


def store_list_sizes(stores, undelivered=None) -> pd.DataFrame:
    """List sizes per store and why a store's manager receives nothing.

    Parameters
    ----------
    stores : iterable of mapping
        ``store_id, ok, error, metrics`` per store (the runner's results; ``metrics`` is the
        store's ``metrics.json``, None when not written).
    undelivered : mapping, optional
        ``store_id -> (reason, detail)`` with a reason of :data:`NOTHING_REASONS`, for stores
        whose report was produced but does not reach the manager (no usable address, see
        :func:`rxrepurchase.delivery.store_managers`; PDF or email failed).

    Returns
    -------
    DataFrame
        ``store_id``, :data:`LIST_SIZES` (missing where the report did not count the list),
        ``nothing_reason`` (``report_failed`` for a failed report, else the ``undelivered``
        reason, else ``""``: the manager gets the report) and ``nothing_detail`` (the error or
        the address problem).

    Raises
    ------
    ChainViewError
        An ``undelivered`` reason not in :data:`NOTHING_REASONS`.
    """
    undelivered = dict(undelivered or {})
    for store_id, (reason, _) in undelivered.items():
        if reason not in NOTHING_REASONS:
            raise ChainViewError(f"store {store_id}: unknown reason {reason!r}; one of "
                                 f"{', '.join(NOTHING_REASONS)}")
    rows = []
    for store in stores:
        metrics = store.get("metrics") or {}
        row = {"store_id": str(store["store_id"])}
        for key in LIST_SIZES:
            value = metrics.get(key)
            row[key] = None if value is None or pd.isna(value) else int(value)
        if not store["ok"]:
            row.update(nothing_reason="report_failed", nothing_detail=str(store.get("error") or ""))
        elif row["store_id"] in undelivered:
            reason, detail = undelivered[row["store_id"]]
            row.update(nothing_reason=reason, nothing_detail=str(detail))
        else:
            row.update(nothing_reason="", nothing_detail="")
        rows.append(row)
    table = pd.DataFrame(rows, columns=["store_id", *LIST_SIZES, "nothing_reason",
                                        "nothing_detail"])
    for key in LIST_SIZES:
        table[key] = table[key].astype("Int64")
    return table


def nothing_received_line(table: pd.DataFrame, lang: str = "en", *, sends_email: bool = True,
                          limit: int = 200) -> str:
    """One sentence naming the stores whose manager receives nothing, each with its reason
    (:func:`store_list_sizes`' ``nothing_reason`` and ``nothing_detail``, shortened to
    ``limit`` characters), or saying that every manager receives theirs. ``sends_email``:
    the run emails the stores (else, with no failed report, it says that no email is sent)."""
    nothing = table[table["nothing_reason"] != ""]
    if nothing.empty:
        return t("nothing_none" if sends_email else "nothing_none_sent", lang)
    stores = [t("nothing_store", lang, store=format_text(row.store_id),
                reason=t(f"nothing_{row.nothing_reason}", lang,
                         detail=format_text(row.nothing_detail, limit)))
              for row in nothing.itertuples()]
    return t("nothing_stores", lang, stores="; ".join(stores))


def list_sizes_line(row, lang: str = "en") -> str:
    """One store's list sizes as a line of text (a row of :func:`store_list_sizes`), for
    head office's email."""
    sizes = {k: format_count(None if pd.isna(row[k]) else row[k], lang) for k in LIST_SIZES}
    return t("ho_list_line", lang, store=format_text(row["store_id"]), **sizes)
