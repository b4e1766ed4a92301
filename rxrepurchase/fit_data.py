"""The data a model fit takes, prepared apart from the models (as pymc-marketing's ``clv``
keeps data preparation apart from its models): an RFM table's columns as checked arrays, its
distinct rows with their member counts, fit weights, and a quiet call for the fitters' printed
dumps. Used by every fitter module (:mod:`rxrepurchase.models`, :mod:`rxrepurchase.mbgcnbd`).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd

from rxrepurchase.arguments import TIME_UNITS
from rxrepurchase.errors import RFMInputError

__all__ = ["compress", "distinct_rows", "rfm_arrays", "row_weights", "silenced", "time_unit_of"]


def rfm_arrays(rfm: pd.DataFrame, columns: tuple[str, ...]) -> list[np.ndarray]:
    """The RFM columns as float arrays, checked: present, finite, non-negative, consistent."""
    if not isinstance(rfm, pd.DataFrame):
        raise RFMInputError(f"expected an RFM summary DataFrame, got {type(rfm)}")
    missing = [c for c in columns if c not in rfm.columns]
    if missing:
        raise RFMInputError(
            f"RFM summary has no column {', '.join(map(repr, missing))} "
            "(make it with rxrepurchase.rfm.rfm_summary)"
        )
    arrays = []
    for col in columns:
        values = pd.to_numeric(rfm[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if col not in ("monetary_value", "litt"):  # a sum of logs may be negative
            bad |= values < 0
        if bad.any():
            raise RFMInputError(
                f"RFM column {col!r} is missing, negative or not finite for members "
                f"{', '.join(map(str, rfm.index[bad][:5]))}"
            )
        arrays.append(values)
    named = dict(zip(columns, arrays, strict=True))
    if "frequency" in named:
        freq = named["frequency"]
        if (freq != np.round(freq)).any():
            raise RFMInputError("RFM column 'frequency' must hold whole numbers of repeat purchases")
        if "recency" in named and "T" in named:
            bad = (named["recency"] > named["T"]) | ((freq == 0) & (named["recency"] != 0))
            if bad.any():
                raise RFMInputError(
                    "RFM rows need recency <= T, and recency 0 when frequency is 0; not so for "
                    f"members {', '.join(map(str, rfm.index[bad][:5]))}"
                )
    return arrays


def distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of ``columns``: ``(their columns, each input row's position in them)``.

    Members share few distinct ``(frequency, recency, T)`` rows (whole days or weeks), so
    fitting and predicting on those rows costs a fraction of doing it per member.
    """
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        codes, uniques = pd.factorize(col)
        # Re-factorizing keeps the combined key below len(rows) ** 2: no overflow.
        key = pd.factorize(key * len(uniques) + codes)[0]
    n_unique = int(key.max()) + 1 if len(key) else 0
    distinct = []
    for col in columns:
        values = np.empty(n_unique, dtype=np.float64)
        values[key] = col  # every row of a distinct key holds the same value
        distinct.append(values)
    return distinct, key


def compress(*columns: np.ndarray, weights: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of ``columns``: ``(their columns, number of rows of each)``, the rows
    counted with ``weights`` when given (rows that already stand for several members)."""
    distinct, key = distinct_rows(*columns)
    return distinct, np.bincount(key, weights=weights, minlength=len(distinct[0]))


def row_weights(rfm: pd.DataFrame, weights) -> np.ndarray | None:
    """``weights`` of a fit (None, a column name of ``rfm`` or one value per row), checked:
    finite and positive."""
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in rfm.columns:
            raise RFMInputError(f"weights: the RFM table has no column {weights!r}")
        weights = rfm[weights]
    values = np.asarray(pd.to_numeric(pd.Series(np.asarray(weights)), errors="coerce"), dtype=np.float64)
    if values.shape != (len(rfm),):
        raise RFMInputError(f"weights: {values.size} values for {len(rfm)} RFM rows")
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        raise RFMInputError(f"weights must be positive numbers; not so for rows "
                            f"{', '.join(map(str, rfm.index[bad][:5]))}")
    return values


def time_unit_of(rfm: pd.DataFrame) -> str | None:
    """The RFM table's time unit (``attrs["time_unit"]``), None when unknown."""
    unit = rfm.attrs.get("time_unit")
    return unit if unit in TIME_UNITS else None


def silenced(call, *args, **kwargs):
    """Run a lifetimes call without its printed optimizer dumps and numeric warnings."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return call(*args, **kwargs)
