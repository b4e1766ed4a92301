"""The core's backend helpers and the small shared expressions, on hand-built frames."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from rxrepurchase.core import backend


def test_to_pandas_gives_frames_series_and_python_scalars():
    frame = pd.DataFrame({
        "amount": [1.5, 2.0, None],
        "at": pd.to_datetime(["2024-01-01 09:00", "2024-01-03 18:30", None]),
    })  # fmt: skip
    with backend.tables(frame) as (t,):
        assert backend.to_pandas(t.amount.sum()) == 3.5 and type(backend.to_pandas(t.amount.sum())) is float
        count = backend.to_pandas(t.count())
        assert count == 3 and type(count) is int
        assert backend.to_pandas(t.at.max()) == pd.Timestamp("2024-01-03 18:30")
        day = backend.to_pandas(t.at.max().date())
        assert isinstance(day, pd.Timestamp) and day == pd.Timestamp("2024-01-03")
        none = t.filter(t.amount > 5)  # empty: no sum, no latest time
        assert backend.to_pandas(none.amount.sum()) is None
        assert backend.to_pandas(none.at.max()) is pd.NaT
        column = backend.to_pandas(t.at.date())
        assert isinstance(column, pd.Series) and column.dtype == "datetime64[ns]"
        assert column.iloc[1] == pd.Timestamp(dt.date(2024, 1, 3)) and pd.isna(column.iloc[2])
        table = backend.to_pandas(t)
        assert list(table.columns) == ["amount", "at"] and table["amount"].sum() == 3.5
