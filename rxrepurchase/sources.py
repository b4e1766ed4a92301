"""Where a chain's tables come from: the contract's tables as Ibis tables, on any backend.

The aggregation core (:mod:`rxrepurchase.core`) takes Ibis tables with the contract's column
names (:data:`rxrepurchase.contract.TABLES`) and does not care where they live. This module
opens them from what a chain has:

=====================================  ==============================================  ========
source                                 function                                        backend
=====================================  ==============================================  ========
a folder of export files               :func:`from_files`                              DuckDB
pandas frames, a loaded ``Chain``      :func:`from_frames`                             DuckDB
Spark tables or DataFrames             :func:`from_spark` (``tables=``)                PySpark
a Spark catalog / Hive metastore db    :func:`from_spark` (``database=``)              PySpark
=====================================  ==============================================  ========

:func:`open_tables` picks the right one from the source's type. Each returns a
:class:`ChainTables`: the five tables ``stores``, ``members``, ``orders``, ``order_lines`` and
``campaigns`` (derived from the orders when a chain has none, as the loader does), with the
contract's columns in its order and types. Headers are mapped as for files
(:func:`rxrepurchase.exports.map_headers`: the Chinese headers of
:data:`rxrepurchase.contract.HEADER_ALIASES_ZH`, then the mapping's ``[columns.<table>]``,
see :func:`rxrepurchase.exports.read_mapping`).

Times: the contract's timestamps are the chain's local wall-clock time. A Spark ``TIMESTAMP``
column is an instant and is converted to ``time_zone``; a ``TIMESTAMP_NTZ`` column (and a
naive pandas column) is taken as already local, as the loader takes a value without a UTC
offset. Ibis runs Spark in the UTC session time zone and sets it on the session it is given.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

from rxrepurchase.contract import TABLES, Column
from rxrepurchase.core import backend as core_backend
from rxrepurchase.core.campaigns import derived_campaigns
from rxrepurchase.core.rules import Context, Evaluator, check_tables
from rxrepurchase.errors import DataContractError, SourceError
from rxrepurchase.exports import DEFAULT_TIME_ZONE, check_time_zone, map_headers, read_mapping
from rxrepurchase.loading import Chain

if TYPE_CHECKING:  # pyspark is the optional ``spark`` extra
    from ibis.backends import BaseBackend
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

__all__ = [
    "CONTRACT_TABLES",
    "ChainTables",
    "from_files",
    "from_frames",
    "from_spark",
    "open_tables",
]

CONTRACT_TABLES: tuple[str, ...] = ("stores", "members", "orders", "order_lines", "campaigns")
"""The tables the core aggregates read; ``campaigns`` is optional in a chain's data."""

# Contract kinds as Ibis types; dates are timestamps at midnight, as the loader gives them.
_TYPES: dict[str, dt.DataType] = {
    "id": dt.string,
    "text": dt.string,
    "timestamp": dt.timestamp,
    "date": dt.timestamp,
    "money": dt.float64,
    "number": dt.float64,
    "integer": dt.int64,
    "flag": dt.boolean,
}


@dataclass
class ChainTables:
    """The contract's tables of one chain as Ibis tables bound to one backend.

    Attributes
    ----------
    backend : ibis backend
        DuckDB for files and frames, PySpark for Spark sources; run expressions with
        ``backend.to_pandas(expr)``.
    tables : dict of str to ibis.Table
        ``stores``, ``members``, ``orders``, ``order_lines``, ``campaigns``.
    origin : str
        Where the tables came from, for messages (``folder exports/2026-09``,
        ``Spark database chain_dw``).
    as_of : pandas.Timestamp
        Analysis date (midnight): orders after the end of this day are left out.
    """

    backend: BaseBackend
    tables: dict[str, ibis.Table]
    origin: str
    as_of: pd.Timestamp
    _close: Callable[[], None] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"<ChainTables from {self.origin}: {', '.join(self.tables)}; {self.backend.name}>"

    def __getitem__(self, name: str) -> ibis.Table:
        if name not in self.tables:
            raise SourceError(
                f"{self.origin}: no table {name!r}; the tables are {', '.join(self.tables)}"
            )
        return self.tables[name]

    stores = property(lambda self: self["stores"], doc="The ``stores`` table.")
    members = property(lambda self: self["members"], doc="The ``members`` table.")
    orders = property(lambda self: self["orders"], doc="The ``orders`` table.")
    order_lines = property(lambda self: self["order_lines"], doc="The ``order_lines`` table.")
    campaigns = property(lambda self: self["campaigns"], doc="The ``campaigns`` table.")

    def to_pandas(self, expr: ibis.Expr) -> pd.DataFrame:
        """Run ``expr`` (built on these tables) on their backend
        (:func:`rxrepurchase.core.backend.to_pandas`)."""
        return core_backend.to_pandas(expr, self.backend)

    def close(self) -> None:
        """Close what the source opened (its DuckDB connection); a Spark session is the
        caller's and stays open."""
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> ChainTables:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- the sources


def from_files(
    data: str | os.PathLike,
    *,
    as_of=None,
    mapping=None,
    **options: Any,
) -> ChainTables:
    """A chain's export folder, read and validated by DuckDB.

    Parameters
    ----------
    data : path
        Folder with one file per table (``orders.parquet``, ``orders.csv`` ...).
    as_of : date-like, optional
        Analysis date (default: today, as for the loader).
    mapping : path or dict, optional
        File-name and header mapping, see :func:`rxrepurchase.exports.read_mapping`.
    **options
        ``encoding``, ``time_zone``, ``validate``, ``memory_limit``, ``threads``,
        ``temp_directory`` ... as for :class:`rxrepurchase.engine.ChainSource`.
    """
    from rxrepurchase.engine import ChainSource  # the engine imports the analysis modules

    src = ChainSource(data, as_of=as_of, mapping=mapping, **options)
    # The contract's columns only (the engine's views carry helper columns such as _line).
    tables = {name: src.table(name).select(*TABLES[name].column_names) for name in CONTRACT_TABLES}
    return ChainTables(src.backend, tables, f"folder {src.folder}", src.as_of, src.close)


def from_frames(
    frames: Chain | Mapping[str, pd.DataFrame] | Any,
    *,
    as_of=None,
    mapping=None,
    time_zone: str | None = DEFAULT_TIME_ZONE,
    validate: Literal["full", "rows", "none"] = "full",
    backend: BaseBackend | None = None,
) -> ChainTables:
    """Pandas frames (a loaded :class:`~rxrepurchase.loading.Chain`, a demo chain, or a dict
    of frames by table name) as tables of an in-memory DuckDB.

    Parameters
    ----------
    frames : Chain, DemoChain or dict of DataFrame
        The contract's tables; ``campaigns`` may be absent.
    as_of : date-like, optional
        Analysis date (default: the chain's ``as_of`` for a Chain, else today).
    mapping : path or dict, optional
        Header mapping (``[columns.<table>]``), see :func:`rxrepurchase.exports.read_mapping`.
    time_zone : str
        The chain's time zone: time-zone-aware columns are converted to it.
    validate : {"full", "rows", "none"}
        Which of the contract's rules (:mod:`rxrepurchase.core.rules`) leave rows out, as for
        :class:`rxrepurchase.engine.ChainSource`: every rule, the rules on single rows, or
        only orders after ``as_of``.
    backend : ibis backend, optional
        Default: a new in-memory DuckDB (:func:`rxrepurchase.core.backend.connect`), closed
        with the source.
    """
    if isinstance(frames, Chain):
        as_of = frames.as_of if as_of is None else as_of
        found = {name: getattr(frames, name) for name in CONTRACT_TABLES}
    elif hasattr(frames, "tables") and callable(frames.tables):  # a DemoChain
        found = dict(frames.tables())
    elif isinstance(frames, Mapping):
        found = dict(frames)
    else:
        raise SourceError(
            f"from_frames takes a Chain, a DemoChain or a dict of DataFrames by table name, "
            f"got {type(frames).__name__}"
        )
    zone = check_time_zone(time_zone)
    owned = backend is None
    backend = core_backend.connect() if owned else backend
    raw = {}
    for name in CONTRACT_TABLES:
        frame = found.get(name)
        if frame is None:
            continue
        if not isinstance(frame, pd.DataFrame):
            raise SourceError(f"frames[{name!r}] is a {type(frame).__name__}, not a DataFrame")
        raw[name] = core_backend.table(_local_times(frame, zone), backend)
    where = {name: f"frame {name!r}" for name in raw}
    as_of = _day(as_of)
    tables = _conformed(raw, _materializer(backend), where, mapping, as_of, validate)
    return ChainTables(backend, tables, "frames", as_of, backend.disconnect if owned else None)


def from_spark(
    session: SparkSession,
    tables: Mapping[str, str | SparkFrame] | None = None,
    *,
    database: str | None = None,
    as_of=None,
    mapping=None,
    time_zone: str | None = DEFAULT_TIME_ZONE,
    validate: Literal["full", "rows", "none"] = "full",
) -> ChainTables:
    """A chain's tables in Spark: named tables, Spark DataFrames, or a catalog database.

    Parameters
    ----------
    session : pyspark.sql.SparkSession
        The chain's session (a cluster, or ``local[*]``). Ibis sets its session time zone
        to UTC.
    tables : dict, optional
        Contract table name -> the chain's table name (``"dw.sales_orders"``) or a Spark
        DataFrame. Tables not named are looked up under their contract name.
    database : str, optional
        Catalog (Hive metastore) database holding the tables, as ``spark.table(f"{database}.{name}")``
        reads them; default: the session's current database.
    as_of : date-like, optional
        Analysis date: orders after the end of this day are left out (default: today).
    mapping : path or dict, optional
        Header mapping (``[columns.<table>]``), see :func:`rxrepurchase.exports.read_mapping`;
        the table names go in ``tables``.
    time_zone : str
        The chain's time zone: ``TIMESTAMP`` columns (instants) are converted to it;
        ``TIMESTAMP_NTZ`` columns are taken as local time already.
    validate : {"full", "rows", "none"}
        As for :func:`from_frames`. Keys seen twice and unknown references are looked for
        once, when the source opens (a few Spark jobs, results cached); the rules on single
        rows are filters of every query. Tables the chain's ETL has validated can skip them
        with ``"none"``.
    """
    try:
        from pyspark.sql import DataFrame as SparkFrame
        from pyspark.sql import functions as F
        from pyspark.sql.types import TimestampType
    except ImportError as exc:  # pragma: no cover - the spark extra is in the lock
        raise SourceError("Spark sources need PySpark: pip install 'rxrepurchase[spark]'") from exc
    zone = check_time_zone(time_zone)
    if mapping is not None and read_mapping(mapping).get("files"):
        raise SourceError(
            "the mapping's [files] names export files; for Spark, name the chain's tables "
            "with tables={'orders': 'dw.sales_orders', ...}"
        )
    named = dict(tables or {})
    unknown = sorted(set(named) - set(CONTRACT_TABLES))
    if unknown:
        raise SourceError(
            f"tables names unknown contract table(s) {unknown}; the tables are "
            f"{', '.join(CONTRACT_TABLES)}"
        )
    backend = ibis.pyspark.connect(session)  # sets the session time zone to UTC
    run = uuid.uuid4().hex[:8]  # temporary view names of this source, unique in the session
    raw, where = {}, {}
    for name in CONTRACT_TABLES:
        given = named.get(name, name)
        if isinstance(given, SparkFrame):
            frame, where[name] = given, f"Spark DataFrame for {name}"
        else:
            qualified = f"{database}.{given}" if database and "." not in given else given
            where[name] = f"Spark table {qualified}"
            if not session.catalog.tableExists(qualified):
                if name == "campaigns" and name not in named:  # optional: derived from orders
                    continue
                raise DataContractError(
                    f"{where[name]} does not exist (contract table {name!r}); "
                    + (f"name the chain's table with tables={{'{name}': ...}}"
                       if name not in named else "check the name")
                )
            frame = session.table(qualified)
        instants = [f.name for f in frame.schema.fields if isinstance(f.dataType, TimestampType)]
        if instants:
            frame = frame.withColumns({c: F.from_utc_timestamp(c, zone) for c in instants})
        view = f"rxrepurchase_{run}_{name}"
        frame.createOrReplaceTempView(view)
        raw[name] = backend.table(view)
    origin = f"Spark database {database}" if database else "Spark session"
    as_of = _day(as_of)
    tables = _conformed(raw, _materializer(backend, session), where, mapping, as_of, validate)
    return ChainTables(backend, tables, origin, as_of)


def open_tables(source, **options: Any) -> ChainTables:
    """The contract's tables from ``source``, by its type.

    A path opens :func:`from_files`; a SparkSession :func:`from_spark`; a Chain, demo chain
    or dict of DataFrames :func:`from_frames`. ``options`` go to that function.
    """
    if isinstance(source, str | os.PathLike):
        return from_files(source, **options)
    if type(source).__name__ == "SparkSession":  # no pyspark import without Spark
        return from_spark(source, **options)
    return from_frames(source, **options)


# --------------------------------------------------------------------------- conformance


def _day(as_of) -> pd.Timestamp:
    """The analysis date at midnight; default today, as for the loader."""
    return (pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.today()).normalize()


def _local_times(frame: pd.DataFrame, zone: str) -> pd.DataFrame:
    """``frame`` with its time-zone-aware columns as naive local times of ``zone``."""
    aware = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return frame
    return frame.assign(**{c: frame[c].dt.tz_convert(zone).dt.tz_localize(None) for c in aware})


def _conformed(
    raw: dict[str, ibis.Table], materialize: Callable[[ibis.Table], ibis.Table],
    where: dict[str, str], mapping, as_of: pd.Timestamp, validate: str,
) -> dict[str, ibis.Table]:
    """The raw tables with the contract's names, columns and types, and the rows the rules
    keep; ``campaigns`` derived from the kept orders when absent (the loader's rule)."""
    if validate not in ("full", "rows", "none"):
        raise SourceError(f"validate must be 'full', 'rows' or 'none', got {validate!r}")
    spec = read_mapping(mapping)
    missing = [name for name in CONTRACT_TABLES if name not in raw and TABLES[name].required]
    if missing:
        raise DataContractError(
            f"no table(s) {', '.join(missing)} among {', '.join(where.values()) or 'none'}; "
            f"the contract needs {', '.join(n for n in CONTRACT_TABLES if TABLES[n].required)}"
        )
    typed = {name: _contract_columns(name, table, spec, where[name]) for name, table in raw.items()}
    return _validated(typed, materialize, as_of, validate)


def _contract_columns(name: str, table: ibis.Table, spec: Mapping[str, Any], where: str) -> ibis.Table:
    """``table`` with the contract's headers (:func:`rxrepurchase.exports.map_headers`), its
    columns in contract order and type; absent optional columns empty
    (``stored_value_amount`` 0, as the loader fills it)."""
    target, _ = map_headers(TABLES[name], where, list(table.columns), spec)
    source = dict(zip(target, table.columns, strict=True))
    return table.select(**{c.name: _typed(c, table, source.get(c.name), where)
                           for c in TABLES[name].columns})


def _typed(col: Column, table: ibis.Table, source: str | None, where: str) -> ibis.Value:
    want = _TYPES[col.kind]
    if source is None:  # an optional column the chain does not have
        return ibis.literal(0.0 if col.name == "stored_value_amount" else None, type=want)
    value = table[source]
    have = value.type()
    if want.is_string():
        fits = have.is_string()
    elif want.is_timestamp():
        fits = have.is_timestamp() or have.is_date()
    elif want.is_boolean():
        fits = have.is_boolean()
    else:
        fits = have.is_numeric()
    if not (fits or have.is_null()):  # an all-empty column has no type of its own
        raise DataContractError(
            f"{where}: column {source!r} ({col.name}) is {have}; the contract wants "
            f"{col.kind} ({want}). Cast it in the chain's table or view."
        )
    value = value.cast(want) if have != want else value
    return value.truncate("D") if col.kind == "date" else value


def _validated(
    tables: dict[str, ibis.Table], materialize: Callable[[ibis.Table], ibis.Table],
    as_of: pd.Timestamp, validate: str,
) -> dict[str, ibis.Table]:
    """The rows of ``tables`` the contract's rules keep (:mod:`rxrepurchase.core.rules`, the
    loader's and the engine's rules): ``"full"`` every rule, ``"rows"`` the rules on single
    rows, ``"none"`` only orders after ``as_of`` left out.

    Keys seen twice and unknown references are found once, here (usually none); the tables
    stay lazy filters of the source, so later queries pay for the row rules only.
    """
    ctx = Context(as_of=as_of, campaigns_file="campaigns" in tables)
    return check_tables(Evaluator(ctx, materialize), tables, validate,
                        derive_campaigns=derived_campaigns)


def _materializer(backend: BaseBackend, session: SparkSession | None = None) -> Callable[[ibis.Table], ibis.Table]:
    """``materialize(expr)``: ``expr`` computed once into a table of ``backend`` (a temporary
    DuckDB table; with a Spark ``session``, a cached view, as Ibis makes no temporary Spark
    tables)."""
    names = (f"rxrepurchase_{uuid.uuid4().hex[:8]}_{i}" for i in itertools.count())

    def materialize(expr: ibis.Table) -> ibis.Table:
        name = next(names)
        if session is None:
            return backend.create_table(name, expr, temp=True)
        session.sql(str(backend.compile(expr))).cache().createOrReplaceTempView(name)
        return backend.table(name)

    return materialize
