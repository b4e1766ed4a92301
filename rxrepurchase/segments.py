"""Member segmentation (用户分层): RFM scores and the dimensions pharmacy operators segment by.

- :func:`member_attributes` adds derived member columns (age band, acquisition month, tenure,
  stored-value holder) that every ``by=`` argument of :mod:`rxrepurchase.metrics` can use;
- :func:`rfm_segments` scores recency / frequency / monetary against visible, configurable
  thresholds (:class:`RFMConfig`) and names the segments;
- :func:`member_profile` puts every segmentation dimension on one row per member: spend band,
  product classes bought (chronic / acute / health), promotion activity, time-of-day habit;
- :func:`hour_of_day_profile` shows when each store's (or segment's) members shop, the
  evidence for an evening offer such as 超值晚8点;
- :func:`tier_transitions` compares two member snapshots for tier movement (the members table
  holds only the current tier, so movement needs an earlier export);
- :func:`member_tags` splits the free tag list into one row per tag.

Purchases follow :mod:`rxrepurchase.metrics` (member-days, walk-ins and paid <= 0 excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rxrepurchase.arguments import as_list, default_as_of
from rxrepurchase.contract import TAG_SEPARATOR, TIERS, require_columns
from rxrepurchase.errors import DataContractError, MetricsInputError
from rxrepurchase.frames import lookup_member_columns
from rxrepurchase.metrics import purchases

__all__ = [
    "AGE_BANDS",
    "TENURE_BANDS",
    "SPEND_BANDS",
    "HEALTH_CATEGORIES",
    "DAYPARTS",
    "RFMConfig",
    "member_attributes",
    "rfm_segments",
    "rfm_thresholds",
    "member_profile",
    "segment_summary",
    "hour_of_day_profile",
    "tier_transitions",
    "member_tags",
]

AGE_BANDS: tuple[int, ...] = (0, 18, 30, 40, 50, 60, 70)
"""Lower edges of the age bands: <18, 18-29, 30-39, ..., 70+."""

TENURE_BANDS: tuple[int, ...] = (0, 90, 365, 730)
"""Lower edges (days since joining) of tenure bands: <3 months, 3-12 months, 1-2 years, 2y+."""

SPEND_BANDS: tuple[float, ...] = (0.0, 200.0, 600.0, 2000.0, 5000.0)
"""Lower edges (CNY paid over the last 365 days) of spend bands."""

HEALTH_CATEGORIES: tuple[str, ...] = (
    "vitamins", "health_supplements", "tcm_tonic", "health_food", "nutrition", "personal_care",
    "medical_devices",
)  # fmt: skip
"""Categories counted as health products (保健/健康产品) rather than medication."""

DAYPARTS: tuple[tuple[str, int, int], ...] = (
    ("night", 0, 7),
    ("morning", 7, 11),
    ("midday", 11, 14),
    ("afternoon", 14, 18),
    ("evening", 18, 22),
    ("late", 22, 24),
)
"""Parts of the day as ``(name, first hour, end hour)``."""


def _bands(values: pd.Series, edges: Sequence[float], unit: str = "") -> pd.Series:
    """Label values by lower edges: ``[0, 18, 30]`` -> ``<18``, ``18-29``, ``30+``."""
    edges = list(edges)
    if sorted(edges) != edges or len(set(edges)) != len(edges):
        raise MetricsInputError(f"band edges must be strictly increasing, got {edges}")
    labels = [f"<{edges[1]:g}{unit}"] if len(edges) > 1 else []
    integer = all(float(e).is_integer() for e in edges)
    for lo, hi in zip(edges[1:-1], edges[2:], strict=True):
        labels.append(f"{lo:g}-{hi - 1:g}{unit}" if integer else f"{lo:g}-{hi:g}{unit}")
    labels.append(f"{edges[-1]:g}{unit}+")
    bins = [-np.inf, *edges[1:], np.inf]
    cat = pd.cut(values.astype("float64"), bins=bins, labels=labels, right=False)
    return cat.astype(pd.CategoricalDtype(labels, ordered=True))


def member_attributes(
    members: pd.DataFrame,
    as_of,
    *,
    orders: pd.DataFrame | None = None,
    age_bands: Sequence[int] = AGE_BANDS,
    tenure_bands: Sequence[int] = TENURE_BANDS,
) -> pd.DataFrame:
    """Members with derived columns for grouping.

    Adds ``age`` (as_of year - birth_year), ``age_band``, ``acquisition_month`` (month joined,
    ``YYYY-MM``), ``tenure_days`` and ``tenure_band`` (since joining), ``stored_value_holder``
    (a positive ``stored_value_balance``, or a stored-value payment in ``orders``), ``tier``
    as an ordered category, and with ``orders`` ``first_purchase_month``. Unknown birth years
    give an empty band, which group-bys keep as its own group.
    """
    require_columns(members, ["member_id", "joined_on", "tier", "birth_year"], "members")
    as_of = pd.Timestamp(as_of).normalize()
    out = members.copy()
    age = as_of.year - out["birth_year"].astype("Float64")
    out["age"] = age.astype("Int64")
    out["age_band"] = _bands(age.astype("float64"), age_bands)
    out["acquisition_month"] = out["joined_on"].dt.to_period("M").astype("string")
    out["tenure_days"] = (as_of - out["joined_on"]).dt.days.astype("Int64")
    out["tenure_band"] = _bands(out["tenure_days"].astype("float64"), tenure_bands, " days")
    holder = np.zeros(len(out), dtype=bool)
    if "stored_value_balance" in out.columns:
        holder |= out["stored_value_balance"].fillna(0).to_numpy(dtype="float64") > 0
    if orders is not None and "stored_value_amount" in orders.columns:
        used = orders.loc[orders["stored_value_amount"] > 0, "member_id"].dropna().unique()
        holder |= out["member_id"].isin(used).to_numpy()
    out["stored_value_holder"] = holder
    if orders is not None:
        first = orders.loc[orders["member_id"].notna()].groupby("member_id")["ordered_at"].min()
        month = out["member_id"].map(first).dt.to_period("M")
        out["first_purchase_month"] = month.astype("string")
    known = [t for t in TIERS if t in set(out["tier"].dropna())]
    others = sorted(set(out["tier"].dropna()) - set(TIERS))
    out["tier"] = pd.Categorical(out["tier"], categories=[*known, *others], ordered=True)
    return out


# --------------------------------------------------------------------------- RFM


def _default_segments() -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
    return (
        ("champions", (4, 5), (4, 5)),
        ("loyal_customers", (3, 3), (4, 5)),
        ("cant_lose", (1, 2), (5, 5)),
        ("at_risk", (1, 2), (3, 4)),
        ("potential_loyalists", (4, 5), (2, 3)),
        ("new_customers", (5, 5), (1, 1)),
        ("promising", (4, 4), (1, 1)),
        ("need_attention", (3, 3), (3, 3)),
        ("about_to_sleep", (3, 3), (1, 2)),
        ("hibernating", (2, 2), (1, 2)),
        ("lost", (1, 1), (1, 2)),
    )


@dataclass(frozen=True)
class RFMConfig:
    """Thresholds of the RFM scores and the segment names (all visible, all changeable).

    Scores run 1-5. Each ``*_edges`` tuple holds the four cut points between scores.

    Parameters
    ----------
    recency_edges : tuple of int, default (30, 60, 120, 240)
        Days since the last purchase: ``<= 30`` scores 5, ``<= 60`` 4, ``<= 120`` 3,
        ``<= 240`` 2, older 1.
    frequency_edges : tuple of int, default (2, 4, 7, 12)
        Purchases in the last ``lookback_days``: ``>= 12`` scores 5, ``>= 7`` 4, ``>= 4`` 3,
        ``>= 2`` 2, fewer 1 (a pharmacy member buying monthly makes 12 a year).
    monetary_edges : tuple of float or None, default None
        Paid CNY in the last ``lookback_days``, same reading as frequency. None takes the
        20/40/60/80% quantiles of the members scored (see :func:`rfm_thresholds`).
    lookback_days : int, default 365
        Window of frequency and monetary.
    segments : tuple
        ``(name, (R low, R high), (F low, F high))`` rules, first match wins; the default is
        the usual R x F grid (champions, loyal_customers, cant_lose, at_risk, ...). Every
        (R, F) pair must be covered.
    """

    recency_edges: tuple[int, int, int, int] = (30, 60, 120, 240)
    frequency_edges: tuple[int, int, int, int] = (2, 4, 7, 12)
    monetary_edges: tuple[float, float, float, float] | None = None
    lookback_days: int = 365
    segments: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = field(
        default_factory=_default_segments
    )

    def __post_init__(self) -> None:
        for name in ("recency_edges", "frequency_edges", "monetary_edges"):
            edges = getattr(self, name)
            if edges is None:
                continue
            if len(edges) != 4 or list(edges) != sorted(set(edges)):
                raise MetricsInputError(
                    f"RFMConfig.{name} needs 4 strictly increasing cut points, got {edges!r}"
                )
        grid = _segment_grid(self.segments)
        if (grid == "").any():
            r, f = np.argwhere(grid == "")[0] + 1
            raise MetricsInputError(f"RFMConfig.segments leave R={r}, F={f} without a segment")


def _segment_grid(segments) -> np.ndarray:
    grid = np.full((5, 5), "", dtype=object)
    for name, (r0, r1), (f0, f1) in reversed(segments):  # first rule wins
        grid[r0 - 1 : r1, f0 - 1 : f1] = name
    return grid


def rfm_thresholds(rfm: pd.DataFrame, config: RFMConfig | None = None) -> pd.DataFrame:
    """The cut points used by :func:`rfm_segments` (monetary quantiles included), as a table
    with one row per measure and score 2-5 columns giving the bound to reach that score."""
    config = config or RFMConfig()
    money = config.monetary_edges
    if money is None:
        money = tuple(rfm["monetary"].quantile([0.2, 0.4, 0.6, 0.8]).to_numpy())
    table = pd.DataFrame(
        [list(reversed(config.recency_edges)), list(config.frequency_edges), list(money)],
        index=["recency_days_at_most", "frequency_at_least", "monetary_at_least"],
        columns=["score_2", "score_3", "score_4", "score_5"],
    )
    return table


def rfm_segments(
    orders: pd.DataFrame,
    as_of=None,
    *,
    members: pd.DataFrame | None = None,
    config: RFMConfig | None = None,
) -> pd.DataFrame:
    """RFM scores (1-5) and named segment per member.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders.
    as_of : date-like, optional
        Analysis date (default: date of the last order); later orders are ignored.
    members : DataFrame, optional
        When given, members who never purchased are listed as segment ``never_purchased``.
    config : RFMConfig, optional
        Thresholds and segment rules.

    Returns
    -------
    DataFrame
        ``member_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm``
        (e.g. ``"545"``) and ``segment``.
    """
    config = config or RFMConfig()
    as_of = default_as_of(orders, as_of)
    p = purchases(orders.loc[orders["ordered_at"].dt.normalize() <= as_of])
    recent = p["purchased_on"] > as_of - pd.Timedelta(days=config.lookback_days)
    g = p.groupby("member_id", sort=True)
    table = pd.DataFrame({"last": g["purchased_on"].max()})
    table["recency_days"] = (as_of - table["last"]).dt.days
    rg = p.loc[recent].groupby("member_id")
    table["frequency"] = rg.size().reindex(table.index, fill_value=0)
    table["monetary"] = rg["paid_amount"].sum().reindex(table.index, fill_value=0.0)
    money = rfm_thresholds(table, config).loc["monetary_at_least"].to_numpy()
    r_edges = np.asarray(config.recency_edges)
    table["r_score"] = 5 - np.searchsorted(r_edges, table["recency_days"].to_numpy(), "left")
    table["f_score"] = 1 + np.searchsorted(
        np.asarray(config.frequency_edges), table["frequency"].to_numpy(), "right"
    )
    table["m_score"] = 1 + np.searchsorted(money, table["monetary"].to_numpy(), "right")
    for c in ("r_score", "f_score", "m_score"):
        table[c] = table[c].astype("int64")
    table["rfm"] = (
        table["r_score"].astype(str) + table["f_score"].astype(str) + table["m_score"].astype(str)
    )
    grid = _segment_grid(config.segments)
    table["segment"] = grid[table["r_score"] - 1, table["f_score"] - 1]
    out = table.drop(columns="last").reset_index()
    if members is not None:
        require_columns(members, ["member_id"], "members")
        never = members.loc[~members["member_id"].isin(out["member_id"]), ["member_id"]]
        out = pd.concat([out, never.assign(segment="never_purchased")], ignore_index=True)
    counts = ["recency_days", "frequency", "r_score", "f_score", "m_score"]
    out[counts] = out[counts].astype("Int64")  # members who never purchased have none
    out["segment"] = out["segment"].astype("string")
    return out


# --------------------------------------------------------------------------- profile


def _product_class(lines: pd.DataFrame, health: Sequence[str]) -> np.ndarray:
    is_health = lines["category"].isin(list(health)).to_numpy()
    chronic = lines["is_chronic"].to_numpy(dtype=bool)
    return np.where(is_health, "health", np.where(chronic, "chronic", "acute"))


def _daypart(hours: np.ndarray) -> np.ndarray:
    names = np.empty(24, dtype=object)
    for name, lo, hi in DAYPARTS:
        names[lo:hi] = name
    return names[hours]


def member_profile(
    orders: pd.DataFrame,
    order_lines: pd.DataFrame,
    members: pd.DataFrame,
    as_of=None,
    *,
    spend_bands: Sequence[float] = SPEND_BANDS,
    health_categories: Sequence[str] = HEALTH_CATEGORIES,
    promo_mostly: float = 0.5,
) -> pd.DataFrame:
    """One row per member with every segmentation dimension.

    On top of :func:`member_attributes`: ``purchases``, ``spend_365d`` (paid over the last
    365 days) and ``spend_band``; ``chronic_share``, ``acute_share``, ``health_share`` (share
    of line amount by product class: health categories by name, others chronic when
    ``is_chronic``, else acute) and ``main_product_class``; ``promo_order_share`` (orders with a
    coupon or campaign) and ``activity`` (``no_promotions`` / ``some_promotions`` /
    ``mostly_promotions`` at ``promo_mostly``); ``main_daypart`` (see :data:`DAYPARTS`) and
    ``evening_share`` (orders 18:00-22:00). Members without orders have empty behaviour
    columns and ``activity = "no_orders"``.
    """
    require_columns(order_lines, ["order_id", "category", "is_chronic", "line_amount"], "order_lines")
    as_of = default_as_of(orders, as_of)
    orders = orders.loc[orders["ordered_at"].dt.normalize() <= as_of]
    prof = member_attributes(members, as_of, orders=orders).set_index("member_id")
    mo = orders.loc[orders["member_id"].notna()]
    unknown = ~mo["member_id"].isin(prof.index)
    if unknown.any():
        raise DataContractError(
            f"orders: member_id {mo.loc[unknown, 'member_id'].iloc[0]!r} is not in members"
        )
    p = purchases(mo)
    prof["purchases"] = p.groupby("member_id").size().reindex(prof.index).fillna(0).astype("int64")
    recent = p["purchased_on"] > as_of - pd.Timedelta(days=365)
    spend = p.loc[recent].groupby("member_id")["paid_amount"].sum()
    prof["spend_365d"] = spend.reindex(prof.index).fillna(0.0)
    prof["spend_band"] = _bands(prof["spend_365d"], spend_bands)

    lines = order_lines.loc[order_lines["order_id"].isin(mo["order_id"])]
    owner = mo.set_index("order_id")["member_id"]
    mix = pd.DataFrame(
        {
            "member_id": lines["order_id"].map(owner).to_numpy(),
            "cls": _product_class(lines, health_categories),
            "amount": lines["line_amount"].to_numpy(dtype="float64"),
        }
    ).pivot_table(index="member_id", columns="cls", values="amount", aggfunc="sum", fill_value=0)
    mix = mix.reindex(columns=["chronic", "acute", "health"], fill_value=0.0)
    total = mix.sum(axis=1)
    for c in mix.columns:
        prof[f"{c}_share"] = (mix[c] / total.where(total > 0)).reindex(prof.index)
    prof["main_product_class"] = mix.idxmax(axis=1).where(total > 0).reindex(prof.index)

    promo = mo["coupon_id"].notna() | mo["campaign_id"].notna()
    share = promo.groupby(mo["member_id"]).mean().reindex(prof.index)
    prof["promo_order_share"] = share
    prof["activity"] = np.select(
        [share.isna(), share == 0, share < promo_mostly],
        ["no_orders", "no_promotions", "some_promotions"],
        default="mostly_promotions",
    )
    hours = mo["ordered_at"].dt.hour.to_numpy()
    part = pd.Series(_daypart(hours), index=mo.index)
    counts = pd.crosstab(mo["member_id"], part)
    prof["main_daypart"] = counts.idxmax(axis=1).reindex(prof.index)
    evening = pd.Series((hours >= 18) & (hours < 22), index=mo.index)
    prof["evening_share"] = evening.groupby(mo["member_id"]).mean().reindex(prof.index)
    return prof.reset_index()


def segment_summary(
    profile: pd.DataFrame, by: str | Sequence[str], *, value: str = "spend_365d"
) -> pd.DataFrame:
    """Members, their share, and mean / total ``value`` per segment of a profile table.

    ``by`` is any column(s) of :func:`member_profile` or :func:`rfm_segments` output (e.g.
    ``"age_band"``, ``["store_id", "segment"]``). Empty values form their own group.
    """
    by = as_list(by)
    missing = [c for c in [*by, value] if c not in profile.columns]
    if missing:
        raise MetricsInputError(f"profile has no column(s) {missing}")
    g = profile.groupby(by, dropna=False, observed=True, sort=True)[value]
    out = pd.DataFrame({"members": g.size(), f"{value}_mean": g.mean(), f"{value}_total": g.sum()})
    out.insert(1, "member_share", out["members"] / out["members"].sum())
    return out.reset_index()


def hour_of_day_profile(
    orders: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    members: pd.DataFrame | None = None,
    include_walk_ins: bool = False,
) -> pd.DataFrame:
    """When customers shop: orders per hour of day (0-23), per group, with shares.

    Parameters
    ----------
    orders : DataFrame
        The chain's orders.
    by : str or list of str, optional
        Order columns (``store_id``) or member columns (``segment``, ``subsidy_cohort`` from a
        ``members`` table that carries them).
    members : DataFrame, optional
        Needed when ``by`` names member columns.
    include_walk_ins : bool
        Count walk-in orders too (only possible when ``by`` names order columns).

    Returns
    -------
    DataFrame
        ``by..., hour, orders, share`` (share of the group's orders), all 24 hours per group.
    """
    require_columns(orders, ["member_id", "ordered_at"], "orders")
    by = as_list(by)
    frame = orders if include_walk_ins else orders.loc[orders["member_id"].notna()]
    if include_walk_ins and any(c not in orders.columns for c in by):
        raise MetricsInputError("walk-in orders have no member columns: group by order columns")
    frame = frame[["member_id", "ordered_at", *[c for c in by if c in orders.columns]]]
    frame = lookup_member_columns(frame, by, members)
    frame = frame.assign(hour=frame["ordered_at"].dt.hour)
    keys = [*by, "hour"]
    counts = frame.groupby(keys, dropna=False, observed=True).size()
    if by:
        table = counts.unstack("hour", fill_value=0)
    else:
        table = counts.to_frame().T
    table = table.reindex(columns=range(24), fill_value=0)
    long = table.stack().rename("orders").reset_index()
    long = long[[*by, "hour", "orders"]] if by else long[["hour", "orders"]]
    total = (
        long.groupby(by, dropna=False)["orders"].transform("sum") if by else long["orders"].sum()
    )
    long["share"] = long["orders"] / total
    return long


def tier_transitions(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Tier movement between two member snapshots (e.g. last quarter's and today's export).

    Returns
    -------
    DataFrame
        Members per ``tier_before`` x ``tier_after`` (tiers in :data:`TIERS` order), with
        ``moved`` = ``up`` / ``down`` / ``same``; members in only one snapshot appear with an
        empty tier on the other side (joined or left).
    """
    for name, df in (("before", before), ("after", after)):
        require_columns(df, ["member_id", "tier"], f"members ({name})")
    both = before[["member_id", "tier"]].merge(
        after[["member_id", "tier"]], on="member_id", how="outer", suffixes=("_before", "_after")
    )
    rank = {t: i for i, t in enumerate(TIERS)}
    rb = both["tier_before"].map(rank).astype("float64")
    ra = both["tier_after"].map(rank).astype("float64")
    both["moved"] = np.select(
        [rb.isna() | ra.isna(), ra > rb, ra < rb], ["joined_or_left", "up", "down"], "same"
    )
    out = (
        both.groupby(["tier_before", "tier_after", "moved"], dropna=False)
        .size()
        .rename("members")
        .reset_index()
    )
    order = out["tier_before"].map(rank).fillna(-1) * 10 + out["tier_after"].map(rank).fillna(-1)
    return out.assign(_o=order).sort_values("_o").drop(columns="_o").reset_index(drop=True)


def member_tags(members: pd.DataFrame) -> pd.DataFrame:
    """One row per member and tag of ``members.tags`` (separator ``;``), blanks removed."""
    require_columns(members, ["member_id", "tags"], "members")
    tags = members[["member_id", "tags"]].dropna(subset=["tags"])
    tags = tags.assign(tag=tags["tags"].str.split(TAG_SEPARATOR)).explode("tag")
    tags["tag"] = tags["tag"].str.strip()
    return tags.loc[tags["tag"].fillna("") != "", ["member_id", "tag"]].reset_index(drop=True)


# --------------------------------------------------------------------------- plots
