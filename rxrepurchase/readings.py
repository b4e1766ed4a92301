"""One-line readings of a report's sections, computed from the section's own tables.

Each function returns the figures of one reading (a dict, or None when the data says nothing
worth a sentence); :mod:`rxrepurchase.report_data` words them in the report's language.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.errors import ReadingError
from rxrepurchase.metrics import repurchase_rates
from rxrepurchase.segments import member_tags

__all__ = ["ReadingError", "busiest_hours", "tag_repurchase", "wave_decline"]


def busiest_hours(orders: pd.DataFrame, as_of, *, period_days: int = 90,
                  width: int = 2) -> dict | None:
    """The busiest ``width``-hour window of member orders over the last ``period_days``.

    Windows do not wrap past midnight. None when there is no member order in the period.

    Returns
    -------
    dict
        ``start``, ``end`` (hours, end exclusive), ``share`` (of the period's member orders),
        ``ratio`` (share over the mean share of a ``width``-hour window across the hours with
        any order) and ``member_ids`` (members who ordered in the window, sorted).
    """
    require_columns(orders, ["member_id", "ordered_at"], "orders", error=ReadingError)
    end = pd.Timestamp(as_of).normalize()
    day = orders["ordered_at"].dt.normalize()
    recent = orders.loc[orders["member_id"].notna() & (day <= end)
                        & (day > end - pd.Timedelta(days=period_days))]
    if recent.empty:
        return None
    hour = recent["ordered_at"].dt.hour
    counts = hour.value_counts().reindex(range(24), fill_value=0).to_numpy()
    windows = np.array([counts[h:h + width].sum() for h in range(24 - width + 1)])
    start = int(windows.argmax())
    share = float(windows[start] / counts.sum())
    ratio = share / (width / int((counts > 0).sum()))
    ids = recent.loc[(hour >= start) & (hour < start + width), "member_id"].unique()
    return {"start": start, "end": start + width, "share": share, "ratio": float(ratio),
            "member_ids": pd.Index(sorted(ids), name="member_id")}


def wave_decline(waves: pd.DataFrame) -> dict | None:
    """First and last promotion wave whose after-wave repurchase is measured.

    Returns
    -------
    dict or None
        ``first``, ``last`` (wave numbers), ``participants``, ``repurchase_rate``,
        ``subsidy_per_retained_member`` as ``(first, last)`` pairs; None with fewer than two
        measured waves.
    """
    require_columns(waves, ["wave", "participants", "repurchase_rate",
                            "subsidy_per_retained_member"], "waves", error=ReadingError)
    measured = waves.loc[waves["repurchase_rate"].notna() & (waves["participants"] > 0)]
    measured = measured.sort_values("wave")
    if len(measured) < 2:
        return None
    a, b = measured.iloc[0], measured.iloc[-1]
    pair = {c: (float(a[c]), float(b[c]))
            for c in ("participants", "repurchase_rate", "subsidy_per_retained_member")}
    return {"first": int(a["wave"]), "last": int(b["wave"]), **pair}


def tag_repurchase(orders: pd.DataFrame, members: pd.DataFrame, period, *,
                   min_members: int = 30, by: str | None = None) -> pd.DataFrame:
    """User repurchase rate over ``period`` per member tag (``members.tags``).

    A member with several tags counts under each. Tags with fewer than ``min_members``
    active members in the period are left out (their rate says little). With ``by`` (an
    order column such as ``store_id``), every group's tags at once, each counted within its
    group as if ``orders`` held only that group's orders.

    Returns
    -------
    DataFrame
        ``tag, members, user_repurchase_rate`` (after ``by`` when given), highest rate first
        (ties by tag; within each ``by`` group).
    """
    keys = [] if by is None else [by]
    columns = [*keys, "tag", "members", "user_repurchase_rate"]
    # One grouped query: each order once per tag of its member.
    tagged = orders.merge(member_tags(members), on="member_id", how="inner")
    rates = repurchase_rates(tagged, period, by=[*keys, "tag"]) if len(tagged) else tagged
    rows = [] if rates.empty else [  # empty: no purchase of a tagged member (in the period)
        {**{c: r[c] for c in (*keys, "tag")}, "members": int(r["members"]),
         "user_repurchase_rate": float(r["user_repurchase_rate"])}
        for r in rates[rates["members"] >= min_members].to_dict("records")]
    out = pd.DataFrame(rows, columns=columns).astype(
        {"members": "int64", "user_repurchase_rate": "float64"})  # typed when empty too
    return out.sort_values([*keys, "user_repurchase_rate", "tag"],
                           ascending=[*(True for _ in keys), False, True], ignore_index=True)
