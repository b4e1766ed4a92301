"""The lists a store manager acts on: who to wake up, from the member models and from lapsed
refills, made safe and readable (see ``docs/refills.md``, "Action lists").

The rules, each kept here once:

- no one who bought in the last ``quiet_days`` (14) days is on a wake-up list: they are not
  lost, whatever a model says;
- value at risk is never negative: a member whose predicted value rose since the comparison
  date has nothing at risk (0), not a negative amount;
- a refill more than ``max_overdue_days`` (30) past its expected day leaves the refill
  reminder list (:func:`rxrepurchase.refill.refill_targets`) for the wake-up list of lapsed
  refills (:func:`lapsed_refill_list`);
- figures are rounded (money to 0.01 CNY, probabilities to 0.01), each row carries the
  member's tier, masked contact and a ``suggested_action`` code;
- every list counts its rows (member x product for refills) and its distinct members under
  different names (:func:`list_sizes`).

:func:`write_lists_workbook` writes a store's lists as one Excel workbook, headers and codes
in the report's language, for the store's email.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.i18n import STRINGS, label, t
from rxrepurchase.outputs import atomic_path
from rxrepurchase.refill import RefillError, member_details
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "LISTS_WORKBOOK",
    "MAX_LAPSED_DAYS",
    "QUIET_DAYS",
    "bought_recently",
    "lapsed_refill_list",
    "list_sizes",
    "wake_up_targets",
    "write_lists_workbook",
]

LISTS_WORKBOOK = "lists.xlsx"
"""File name of a store's lists' workbook in its ``actions`` folder."""

QUIET_DAYS = 14
"""Members who bought within this many days (the as-of day and the 13 before) are never on a
wake-up list."""

MAX_LAPSED_DAYS = 90
"""A refill overdue by more than this many days leaves the lapsed-refills list: three monthly
refills missed, the patient most likely fills the prescription elsewhere now, and a list of
every refill that ever stopped (hundreds of rows a store) hides the few worth a call. The
page and ``metrics.json`` count what was left out."""

# Top tiers get personal member care rather than a coupon (issue 15: "member care for the top
# tier").
_CARE_TIERS = frozenset({"diamond", "plus"})


@renamed_keywords(days="period_days")
def bought_recently(orders: pd.DataFrame, as_of: str | pd.Timestamp, *,
                    period_days: int = QUIET_DAYS) -> pd.Index:
    """Members with an order on one of the ``period_days`` days ending ``as_of`` (inclusive)."""
    require_columns(orders, ["member_id", "ordered_at"], "orders", error=RefillError)
    if period_days < 0:
        raise RefillError(f"period_days must be >= 0, got {period_days}")
    end = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=period_days)
    when = orders["ordered_at"]
    recent = orders.loc[(when >= start) & (when < end), "member_id"].dropna()
    return pd.Index(recent.unique(), name="member_id")


def _suggested_action(table: pd.DataFrame, default: str) -> pd.Series:
    action = pd.Series(default, index=table.index, dtype="string")
    if "tier" in table:
        action = action.mask(table["tier"].isin(_CARE_TIERS).fillna(False).astype(bool), "member_care")
    return action


def wake_up_targets(wake: pd.DataFrame, members: pd.DataFrame, orders: pd.DataFrame, *,
                    as_of: str | pd.Timestamp, quiet_days: int = QUIET_DAYS,
                    show_phone: bool = False) -> pd.DataFrame:
    """The wake-up list a store acts on, from :func:`rxrepurchase.models.wake_up_list`.

    Members who bought in the last ``quiet_days`` days are left out (``attrs["recent_buyers_removed"]``
    counts them). ``value_at_risk`` is clipped at 0: it is ``clv_before - clv_now``, and a
    member the model values more now than before (they bought) has nothing at risk
    (``attrs["value_at_risk_clipped"]`` counts those). Money is rounded to 0.01 CNY and
    probabilities to 0.01; the member's tier, masked phone and WeChat id are added, and a
    ``suggested_action``: ``member_care`` for diamond / PLUS members, ``wake_up_offer``
    otherwise. Sorted by value at risk x probability still active, largest first.

    Parameters
    ----------
    wake : DataFrame
        :func:`~rxrepurchase.models.wake_up_list` rows, indexed by member id.
    members, orders : DataFrame
        The chain's tables.
    """
    wake = wake.rename_axis("member_id").reset_index()
    recent = wake["member_id"].isin(bought_recently(orders, as_of, period_days=quiet_days))
    if "days_since_last_purchase" in wake:  # the model's own view of the last purchase
        recent |= wake["days_since_last_purchase"] < quiet_days
    listed = wake[~recent].copy()
    negative = listed["value_at_risk"] < 0
    listed["value_at_risk"] = listed["value_at_risk"].clip(lower=0.0)
    priority = listed["value_at_risk"] * listed["p_alive_now"]
    listed = listed.assign(_priority=priority).sort_values(
        ["_priority", "member_id"], ascending=[False, True], kind="stable").drop(columns="_priority")
    money = [c for c in listed if c.startswith(("clv_", "value_at_risk"))]
    shares = [c for c in listed if c.startswith("p_alive")]
    listed[money] = listed[money].round(2)
    listed[shares] = listed[shares].round(2)
    listed = member_details(listed, members, show_phone=show_phone)
    listed["suggested_action"] = _suggested_action(listed, "wake_up_offer")
    listed = listed.reset_index(drop=True)
    listed.attrs = {**wake.attrs, "quiet_days": quiet_days,
                    "recent_buyers_removed": int(recent.sum()),
                    "value_at_risk_clipped": int(negative.sum())}
    return listed


def lapsed_refill_list(predictions: pd.DataFrame, members: pd.DataFrame, orders: pd.DataFrame, *,
                       max_overdue_days: int = 30, max_lapsed_days: int | None = MAX_LAPSED_DAYS,
                       quiet_days: int = QUIET_DAYS, show_phone: bool = False) -> pd.DataFrame:
    """The wake-up list of lapsed refills: member x products on a refill rhythm more than
    ``max_overdue_days`` past their expected day (the rows
    :func:`~rxrepurchase.refill.refill_targets` leaves out) and at most ``max_lapsed_days``
    past it (:data:`MAX_LAPSED_DAYS`; None: no limit), except members who bought anything in
    the last ``quiet_days`` days. Longest overdue last: the most recent lapses, the likeliest
    to come back, first.

    Returns
    -------
    DataFrame
        ``member_id, home_store_id, tier, product, product_name, status, last_fill,
        expected_on, due_low, due_high, days_overdue, suggested_action`` (``refill_wake_up``,
        or ``member_care`` for diamond / PLUS members), contacts. ``attrs`` counts the rows
        left out: ``too_old_rows`` and ``too_old_members`` (overdue beyond
        ``max_lapsed_days``, recent buyers excluded), ``recent_buyers_removed``.

    Raises
    ------
    RefillError
        ``max_lapsed_days`` below ``max_overdue_days``, or predictions without ``as_of``.
    """
    if max_lapsed_days is not None and max_lapsed_days < max_overdue_days:
        raise RefillError(f"max_lapsed_days ({max_lapsed_days}) must be at least "
                          f"max_overdue_days ({max_overdue_days})")
    require_columns(predictions, ["member_id", "product", "days_overdue", "status"], "predictions",
                    error=RefillError)
    as_of = predictions.attrs.get("as_of")
    if as_of is None:
        raise RefillError("predictions have no attrs['as_of']; make them with predict_refills")
    late = (predictions["days_overdue"] > max_overdue_days).fillna(False)
    if "rhythm" in predictions:
        late &= (predictions["rhythm"] == "repeat").fillna(False)
    recent = predictions["member_id"].isin(bought_recently(orders, as_of, period_days=quiet_days))
    too_old = late & ~recent & (predictions["days_overdue"] > max_lapsed_days).fillna(False) \
        if max_lapsed_days is not None else pd.Series(False, index=predictions.index)
    listed = member_details(predictions[late & ~recent & ~too_old], members, show_phone=show_phone)
    listed["suggested_action"] = _suggested_action(listed, "refill_wake_up")
    columns = ["member_id", "home_store_id", "tier", "product", "product_name", "status",
               "last_fill", "expected_on", "due_low", "due_high", "days_overdue",
               "suggested_action", "phone", "wechat_id"]
    listed = listed[[c for c in columns if c in listed]]
    listed = listed.sort_values(["days_overdue", "member_id", "product"], kind="stable")
    listed = listed.reset_index(drop=True)
    listed["status"] = listed["status"].astype("string")
    listed.attrs = {"as_of": as_of, "max_overdue_days": max_overdue_days, "quiet_days": quiet_days,
                    "max_lapsed_days": max_lapsed_days,
                    "recent_buyers_removed": int((late & recent).sum()),
                    "too_old_rows": int(too_old.sum()),
                    "too_old_members": int(predictions.loc[too_old, "member_id"].nunique())}
    return listed


def list_sizes(name: str, table: pd.DataFrame | None) -> dict[str, int | None]:
    """``{name}_rows`` (list rows: member x product on refill lists) and ``{name}_members``
    (distinct members) of a list; both None when the list could not be made."""
    if table is None:
        return {f"{name}_rows": None, f"{name}_members": None}
    return {f"{name}_rows": len(table), f"{name}_members": int(table["member_id"].nunique())}


# Columns holding codes (tier, refill status, action, channel) shown as words in a workbook.
_CODE_COLUMNS = ("tier", "status", "suggested_action", "acquisition_channel", "last_channel")


def write_lists_workbook(lists: Mapping[str, pd.DataFrame | None], path: str | Path, *,
                         lang: str = "en", overwrite: bool = False) -> Path:
    """Write action lists as one ``.xlsx`` workbook: a sheet per list (lists that are None
    are left out; an empty list keeps its sheet with its header), header row frozen, headers
    and codes (tier, refill status, suggested action, channel) in ``lang``.

    Parameters
    ----------
    lists : mapping
        List name (``refill_reminder``, ``wake_up``, ``lapsed_refill``) -> its table.
    path : path
        The workbook (``.xlsx``); an existing file is only replaced with ``overwrite=True``.

    Raises
    ------
    RefillError
        Not an ``.xlsx`` path, or the file exists.
    """
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise RefillError(f"{path}: the lists' workbook is written as .xlsx, not {path.suffix!r}")
    if path.exists() and not overwrite:
        raise RefillError(f"{path} exists; pass overwrite=True to replace it")
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as writer:
        for name, table in lists.items():
            if table is None:
                continue
            shown = table.copy()
            for col in _CODE_COLUMNS:
                if col in shown:
                    shown[col] = shown[col].map(lambda v: label(v, lang) if isinstance(v, str) else v)
            shown = shown.rename(columns=lambda c: t(f"col_{c}", lang) if f"col_{c}" in STRINGS else c)
            sheet = t(f"sheet_{name}", lang) if f"sheet_{name}" in STRINGS else name[:31]
            shown.to_excel(writer, sheet_name=sheet, index=False, freeze_panes=(1, 0))
    return path
