"""Where the core's Ibis expressions run: an embedded DuckDB by default, PySpark when asked.

Expressions in :mod:`rxrepurchase.core` never name a backend; they take ``ibis.Table``s and
return lazy ``ibis.Table``s. This module makes the tables and runs the expressions:

- :func:`connect` opens the default backend, an in-process DuckDB with a memory cap, a thread
  count and a spill folder, so an aggregation larger than memory spills instead of failing;
- :func:`table` turns a pandas frame into an Ibis table through Arrow (no copy of numeric or
  Arrow-backed string columns);
- :func:`to_pandas` runs an expression and hands back pandas;
- a Spark backend is ``ibis.pyspark.connect(session)``: the same expressions run there.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from ibis.backends import BaseBackend

__all__ = [
    "connect",
    "default_backend",
    "ranked_ids",
    "release",
    "table",
    "tables",
    "to_pandas",
]

_default: BaseBackend | None = None
_names = itertools.count()


def connect(
    *,
    memory_limit: str = "4GB",
    threads: int | None = None,
    temp_directory: str | os.PathLike | None = None,
    database: str | os.PathLike = ":memory:",
) -> BaseBackend:
    """An Ibis DuckDB backend set up for out-of-core aggregation.

    Parameters
    ----------
    memory_limit : str
        DuckDB's memory cap (``"4GB"``, ``"500MB"``); hash tables and sorts beyond it spill to
        ``temp_directory``, so the peak memory stays near this figure whatever the data size.
    threads : int, optional
        Worker threads (default: DuckDB's, one per core).
    temp_directory : path, optional
        Where spilled data goes (default: ``$TMPDIR/rxrepurchase-duckdb``).
    database : path
        ``":memory:"`` (default) or a database file, which lets big intermediate tables live
        on disk.
    """
    tmp = Path(temp_directory) if temp_directory is not None else Path(
        os.environ.get("TMPDIR", "/tmp")
    ) / "rxrepurchase-duckdb"
    config = {
        "memory_limit": memory_limit,
        "temp_directory": str(tmp),
        # Result order comes from explicit order_by; not keeping scan order saves memory.
        "preserve_insertion_order": False,
    }
    if threads is not None:
        config["threads"] = int(threads)
    return ibis.duckdb.connect(str(database), **config)


def default_backend() -> BaseBackend:
    """The process's shared DuckDB backend for pandas-in, pandas-out calls (opened once)."""
    global _default
    if _default is None:
        _default = connect()
    return _default


def table(frame: pd.DataFrame, con: BaseBackend | None = None) -> ibis.Table:
    """``frame`` as an Ibis table on ``con`` (default: :func:`default_backend`).

    The frame goes through Arrow; on DuckDB the Arrow table is registered as a view, so numeric
    and Arrow-backed string columns are not copied. The index is dropped: pass the columns the
    expression needs. On other backends (PySpark) the frame becomes a temporary view.
    """
    con = default_backend() if con is None else con
    if frame.attrs:  # the caller's metadata (rules, calibrations), not data: Arrow would try
        frame = frame.copy(deep=False)  # to store it as JSON and warn on every call
        frame.attrs = {}
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    name = f"_rx_frame_{os.getpid()}_{next(_names)}"
    if con.name == "duckdb":
        con.con.register(name, arrow)
    elif con.name == "pyspark":  # Spark reads Arrow itself; ibis' memtable route garbles pd.NA
        con._session.createDataFrame(arrow).createOrReplaceTempView(name)
    else:
        con.create_view(name, ibis.memtable(arrow))
    return con.table(name)


def ranked_ids(values: pd.Series) -> tuple[pd.arrays.IntegerArray, pd.Index]:
    """Ids as their rank among the sorted distinct ids (missing ids stay missing), and those
    sorted ids: ``ids.take(rank)`` gives the ids back.

    DuckDB groups, joins and sorts integers about twice as fast as strings, so the pandas
    wrappers hand member ids to the core this way; the rank keeps the ids' sort order.
    Factorizing unsorted and sorting only the distinct ids beats ``factorize(sort=True)``.
    """
    codes, ids = pd.factorize(values, sort=False)
    order = np.argsort(ids)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    missing = codes < 0
    ranks = np.zeros(len(codes), dtype=np.int64)
    ranks[~missing] = rank[codes[~missing]]
    return pd.arrays.IntegerArray(ranks, missing), pd.Index(ids.take(order), name=values.name)


def release(tab: ibis.Table) -> None:
    """Drop a table made by :func:`table` from its backend (frees DuckDB's hold on the frame)."""
    con = tab._find_backend()
    name = tab.get_name()
    if con.name == "duckdb":
        con.con.unregister(name)
    else:
        con.drop_view(name, force=True)


@contextmanager
def tables(*frames: pd.DataFrame, con: BaseBackend | None = None) -> Iterator[list[ibis.Table]]:
    """:func:`table` of each frame for the duration of a ``with`` block, released after it."""
    made = [table(frame, con) for frame in frames]
    try:
        yield made
    finally:
        for tab in made:
            release(tab)


def to_pandas(expr: ibis.Expr, con: BaseBackend | None = None):
    """Run ``expr`` and return pandas: a DataFrame for a table, a Series for a column, a Python
    scalar for a scalar (a ``pd.Timestamp`` for dates and timestamps, ``None`` / ``pd.NaT``
    when empty). Dates and timestamps come back as ``datetime64[ns]``.

    Expressions bound to a backend run there; ``con`` is for unbound ones (memtables).
    """
    try:
        backend = expr._find_backend(use_default=False)
    except Exception:  # an expression of memtables only
        backend = default_backend() if con is None else con
    result = backend.to_pyarrow(expr)
    if isinstance(result, pa.Table):
        return _from_arrow(result)
    if isinstance(result, pa.ChunkedArray | pa.Array):
        name = expr.get_name()
        return _from_arrow(pa.table({name: result}))[name]
    if pa.types.is_timestamp(result.type) or pa.types.is_date(result.type):
        return pd.Timestamp(result.as_py()) if result.is_valid else pd.NaT
    return result.as_py()


def _from_arrow(result: pa.Table) -> pd.DataFrame:
    frame = result.to_pandas(date_as_object=False)
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_datetime64_dtype(dtype) and dtype != "datetime64[ns]":
            frame[name] = frame[name].astype("datetime64[ns]")
    return frame
