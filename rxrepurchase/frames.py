"""Pandas helpers the analysis modules share: member columns looked up by ``member_id``, rates
that are undefined over nobody, and the local time whose date is a purchase day.

:mod:`rxrepurchase.metrics`, :mod:`rxrepurchase.cohorts` and :mod:`rxrepurchase.segments`
group by order columns and by member columns (``tier``, ``age_band`` ...) alike; a member column
is looked up here, with a named error for a grouping column found nowhere, a member listed twice
or an order whose member is unknown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rxrepurchase.contract import require_columns
from rxrepurchase.errors import DataContractError, MetricsInputError

__all__ = ["local_times", "lookup_member_columns", "member_positions", "ratio"]


def lookup_member_columns(
    frame: pd.DataFrame, by: list[str], members: pd.DataFrame | None
) -> pd.DataFrame:
    """Return ``frame`` with the ``by`` columns it lacks looked up in ``members``."""
    need = [c for c in by if c not in frame.columns]
    if not need:
        return frame
    pos = member_positions(frame["member_id"], need, members)
    out = frame.copy()
    for c in need:
        out[c] = members[c].take(pos).to_numpy()
    return out


def _check_member_columns(members: pd.DataFrame | None, need: list[str]) -> None:
    """``members`` exists and has ``member_id`` and the ``need`` columns, or a named error."""
    if members is None or any(c not in members.columns for c in need):
        have = [] if members is None else list(members.columns)
        missing = [c for c in need if c not in have]
        raise MetricsInputError(
            f"grouping column(s) {missing} are neither in orders nor in members "
            f"(members columns: {have}); derived member columns such as age_band, "
            "acquisition_month or tenure_band come from rxrepurchase.segments.member_attributes"
        )
    require_columns(members, ["member_id"], "members")


def member_positions(
    member_ids, need: list[str], members: pd.DataFrame | None, rows_per_id=None
) -> np.ndarray:
    """Row of ``members`` holding each of ``member_ids``, after checking that ``members`` has the
    ``need`` columns, unique ids and every id. ``rows_per_id`` (order rows behind each id, when
    the ids are distinct) makes the error count order rows."""
    _check_member_columns(members, need)
    # One factorization of both id lists finds duplicates and positions (faster than get_indexer).
    k = len(members)
    ids = pd.concat([members["member_id"], pd.Series(member_ids)], ignore_index=True)
    codes, distinct = pd.factorize(ids, use_na_sentinel=False)
    # Codes count up in order of appearance, so the members' ids hold max + 1 distinct codes.
    if k and codes[:k].max() + 1 < k:
        dup = members.loc[members["member_id"].duplicated(), "member_id"].iloc[0]
        raise DataContractError(f"members: member_id {dup!r} appears more than once")
    row_of_code = np.full(len(distinct), -1)
    row_of_code[codes[:k]] = np.arange(k)
    pos = row_of_code[codes[k:]]
    unknown = pos < 0
    if unknown.any():
        mid = member_ids.to_numpy()[np.flatnonzero(unknown)[0]]
        n_rows = int(unknown.sum() if rows_per_id is None else rows_per_id[unknown].sum())
        raise DataContractError(
            f"orders: member_id {mid!r} ({n_rows} order rows in all) is not in "
            "members, so its grouping column(s) "
            f"{need} are unknown"
        )
    return pos


def local_times(times: pd.Series) -> pd.Series:
    """Timestamps as the chain's wall-clock time, a time zone dropped: their date is the
    purchase day, whatever zone the export wrote."""
    return times.dt.tz_localize(None) if isinstance(times.dtype, pd.DatetimeTZDtype) else times


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den as float, NaN where den is 0 (a rate over nobody is undefined, not 0)."""
    den = den.astype("float64")
    return num.astype("float64") / den.where(den > 0)
