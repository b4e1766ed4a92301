"""DuckDB engine: the heavy aggregations as SQL over a chain's export files, out of core.

The pandas path (:func:`rxrepurchase.loading.load_chain` and the analysis modules) holds the
whole chain in memory. For a large chain -- thousands of stores, hundreds of millions of order
rows -- this module runs the same aggregations as SQL in DuckDB directly over the export's
Parquet or CSV files. DuckDB streams the files, spills to ``temp_directory`` when a hash table
outgrows ``memory_limit``, and hands back only the aggregated result as a pandas DataFrame.

Every function here returns exactly what its pandas counterpart returns on the loaded chain
(same columns, dtypes, index and order; the tests compare them):

================================  ==================================================
engine                            pandas path (on ``load_chain(data).orders``)
================================  ==================================================
:func:`rfm_summary`               :func:`rxrepurchase.rfm.rfm_summary`
:func:`calibration_holdout`       :func:`rxrepurchase.rfm.calibration_holdout`
:func:`repurchase_rates`          :func:`rxrepurchase.metrics.repurchase_rates`
                                  (calendar windows)
:func:`cohort_retention`          :func:`rxrepurchase.metrics.cohort_retention`
:func:`refill_fills`              :func:`rxrepurchase.refill.refill_fills` with the
                                  days since the previous fill
================================  ==================================================

Rows are validated by the loader's rules (:mod:`rxrepurchase.loading`): a row the loader would
exclude -- unparseable or empty required value, negative amount, discount above gross, order
after ``as_of``, duplicate key, unknown store or member, line of an excluded order -- is left
out here too, and :meth:`ChainSource.row_counts` tells how many rows each table lost. Warnings
that keep a row (``paid_mismatch`` ...) change nothing in the aggregates and are only reported
by the loader. ``ChainSource(validate=...)`` trades these checks for speed on files validated
upstream. Timestamps are read as the loader reads them (ISO 8601 value by value, offsets
converted to the chain's time zone, other layouts only with the mapping's format). Differences
from the loader, documented in ``docs/scale.md``: ids are trimmed of spaces only (the loader
strips tabs and full-width spaces too), and CSV files must be UTF-8 (convert a GBK export once
with ``iconv``, or use the loader).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from rxrepurchase import metrics, rfm
from rxrepurchase.contract import TABLES, TIER_ALIASES, Column, Table
from rxrepurchase.errors import DataContractError, EngineError
from rxrepurchase.exports import (
    DEFAULT_TIME_ZONE,
    FALSE_WORDS,
    ISO_START,
    OFFSET_TAIL,
    TRUE_WORDS,
    check_time_zone,
    find_file,
    map_headers,
    read_mapping,
)

__all__ = [
    "ChainSource",
    "EngineError",
    "calibration_holdout",
    "cohort_retention",
    "connect",
    "refill_fills",
    "repurchase_rates",
    "rfm_summary",
]

_MONEY = ("paid_amount", "gross_amount", "discount_amount", "stored_value_amount")
_DAY = "(CAST(ordered_at AS DATE) - DATE '1970-01-01')"
# Calendar periods: DuckDB's date_trunc unit and the period's ordinal as pandas numbers it
# (Period.ordinal) from a DATE ``{d}``; pandas "W" weeks run Monday to Sunday, as ISO weeks.
_PERIODS = {
    "W": ("week", "CAST(floor(({d} - DATE '1970-01-01' + 10) / 7) AS BIGINT)"),
    "M": ("month", "((year({d}) - 1970) * 12 + month({d}) - 1)"),
    "Q": ("quarter", "((year({d}) - 1970) * 4 + quarter({d}) - 1)"),
    "Y": ("year", "(year({d}) - 1970)"),
}


def connect(
    *,
    memory_limit: str = "4GB",
    threads: int | None = None,
    temp_directory: str | os.PathLike | None = None,
    database: str | os.PathLike = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for out-of-core aggregation.

    Parameters
    ----------
    memory_limit : str
        DuckDB's memory cap (``"4GB"``, ``"500MB"``); hash tables and sorts beyond it spill to
        ``temp_directory``, so the peak memory stays near this figure whatever the data size.
    threads : int, optional
        Worker threads (default: DuckDB's, one per core).
    temp_directory : path, optional
        Where spilled data goes (default: DuckDB's ``.tmp`` next to the database, or the
        system temp folder for an in-memory database).
    database : path
        ``":memory:"`` (default) or a database file, which lets big intermediate tables live
        on disk (the batch step uses one).
    """
    con = duckdb.connect(str(database))
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    tmp = Path(temp_directory) if temp_directory is not None else Path(
        os.environ.get("TMPDIR", "/tmp")
    ) / "rxrepurchase-duckdb"
    con.execute(f"SET temp_directory = {_quote(str(tmp))}")
    # Result order comes from explicit ORDER BY; not keeping scan order saves memory.
    con.execute("SET preserve_insertion_order = false")
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- the source


class ChainSource:
    """A chain's export folder opened in DuckDB as validated views.

    The views ``stores``, ``members``, ``orders``, ``order_lines`` and ``campaigns`` hold the
    contract's columns with the loader's types and only the rows the loader keeps
    (:func:`rxrepurchase.loading.load_chain`); nothing is read until a query runs.

    Parameters
    ----------
    data : path
        Folder with one file per table (``orders.parquet``, ``orders.csv``, ``orders.csv.gz``).
    as_of : date-like, optional
        Analysis date; orders after the end of this day are excluded (default: today, as for
        the loader).
    mapping : path or dict, optional
        File-name and header mapping, see :func:`rxrepurchase.exports.read_mapping`.
    encoding : str, optional
        CSV encoding; DuckDB reads ``utf-8`` (default) and ``latin-1``/``utf-16``.
    amount_tolerance : float
        CNY tolerance of the ``discount <= gross`` rule, as for the loader.
    time_zone : str
        The chain's time zone, as for the loader: timestamps with a UTC offset are converted
        to it.
    memory_limit, threads, temp_directory, database
        See :func:`connect`.
    validate : {"full", "rows", "none"}
        ``"full"`` (default): every exclusion rule of the loader, including key uniqueness
        and references between tables, which cost one pass over each keyed table when the
        source opens. ``"rows"``: the rules on single rows only (empty or unparseable values,
        amounts, dates). ``"none"``: the files are taken as valid (validated upstream: a
        previous load, the chain's ETL); values are only cast, ids not trimmed. Orders after
        ``as_of`` are left out in every mode.

    Examples
    --------
    >>> with ChainSource("data/big_chain", as_of="2026-09-30") as src:   # doctest: +SKIP
    ...     summary = rfm_summary(src, by="store_id")
    """

    def __init__(
        self,
        data: str | os.PathLike,
        *,
        as_of=None,
        mapping=None,
        encoding: str | None = None,
        amount_tolerance: float = 0.01,
        time_zone: str | None = DEFAULT_TIME_ZONE,
        memory_limit: str = "4GB",
        threads: int | None = None,
        temp_directory: str | os.PathLike | None = None,
        database: str | os.PathLike = ":memory:",
        validate: Literal["full", "rows", "none"] = "full",
    ):
        self.folder = Path(data)
        if not self.folder.is_dir():
            raise DataContractError(f"data folder {self.folder} does not exist or is not a folder")
        spec = read_mapping(mapping)
        self.encoding = (encoding or spec.get("encoding") or "utf-8").lower().replace("_", "-")
        if self.encoding in ("utf-8-sig", "utf8"):
            self.encoding = "utf-8"
        self.as_of = (pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.today()).normalize()
        self.tolerance = float(amount_tolerance)
        self.spec = spec
        self.time_zone = check_time_zone(time_zone)
        self.formats = {k: spec[f"{k}_format"] for k in ("timestamp", "date") if spec.get(f"{k}_format")}
        self.con = connect(
            memory_limit=memory_limit, threads=threads, temp_directory=temp_directory,
            database=database,
        )
        if validate not in ("full", "rows", "none"):
            raise EngineError(f"validate must be 'full', 'rows' or 'none', got {validate!r}")
        self.validate = validate
        self.files: dict[str, Path] = {}
        self._expressions: dict[str, dict[str, str]] = {}  # table -> column -> SQL on the raw file
        self._sources: dict[str, dict[str, str]] = {}  # table -> column -> raw column name
        for table in TABLES.values():
            file = find_file(self.folder, table, spec)
            if file is not None:
                self.files[table.name] = file
                self._create_views(table, file)
        for name in TABLES:  # contract order: referenced tables come first
            if name in self.files:
                self._create_checked_view(name)
        if "campaigns" not in self.files:
            self._derive_campaigns()

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> ChainSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # -- queries --------------------------------------------------------------------------
    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run SQL against the validated views (``orders``, ``members`` ...)."""
        return self.con.sql(query)

    def scalar(self, query: str):
        """The single value ``query`` returns."""
        return self.con.execute(query).fetchall()[0][0]

    def materialize(self, *names: str) -> None:
        """Read the named validated tables (default: all) once into DuckDB tables.

        Later queries read those instead of re-reading and re-validating the files, so a batch
        of aggregations costs one pass over the export. With a database file (``database=``)
        the tables live on disk and only ``memory_limit`` of them is held in memory.
        """
        for name in names or tuple(self.files) + (("campaigns",) if "campaigns" not in self.files else ()):
            self.con.execute(f"CREATE TABLE _valid_{name} AS SELECT * FROM {name}")
            # Views bind by name when queried, so views built on this one now read the table.
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _valid_{name}")

    def row_counts(self) -> pd.DataFrame:
        """Rows read and loaded per table, as the loader's ``rows_read`` / ``rows_loaded``.

        Scans every file; ``excluded`` = read - loaded is what the loader's quality report
        lists rule by rule.
        """
        rows = []
        for name in self.files:
            read = self.scalar(f"SELECT count(*) FROM _raw_{name}")
            loaded = self.scalar(f"SELECT count(*) FROM {name}")
            rows.append((name, str(self.files[name]), read, loaded, read - loaded))
        return pd.DataFrame(rows, columns=["table", "file", "rows_read", "rows_loaded", "excluded"])

    # -- views ----------------------------------------------------------------------------
    def _scan(self, file: Path) -> str:
        path = _quote(str(file))
        if file.suffix == ".parquet":
            # The row number orders a member's same-time lines as the loader keeps them.
            return f"read_parquet({path}, file_row_number = true)"
        return (
            f"read_csv({path}, all_varchar = true, header = true, "
            f"encoding = {_quote(self.encoding)})"
        )

    def _create_views(self, table: Table, file: Path) -> None:
        """``_raw_<table>`` (the file) and ``_typed_<table>`` (contract types, row rules)."""
        try:
            self.con.execute(f"CREATE VIEW _raw_{table.name} AS SELECT * FROM {self._scan(file)}")
            described = self.con.execute(f"DESCRIBE _raw_{table.name}").fetchall()
        except duckdb.Error as exc:
            raise DataContractError(f"{file}: cannot be read: {exc}") from exc
        raw_names = [row[0] for row in described if row[0] != "file_row_number"]
        raw_types = {row[0]: row[1] for row in described}
        # The loader's header mapping (Chinese headers, mapping file) names the columns.
        names, _ = map_headers(table, file, [n.strip() for n in raw_names], self.spec)
        source = dict(zip(names, raw_names, strict=True))
        clean = self.validate != "none"
        self._sources[table.name] = source
        self._expressions[table.name] = {
            col.name: _typed(col, source.get(col.name), raw_types.get(source.get(col.name), ""), clean,
                             time_zone=self.time_zone,
                             fmt=self.formats.get(col.kind))
            for col in table.columns
        }
        typed = ",\n  ".join(f"{sql} AS {_ident(col)}" for col, sql in self._expressions[table.name].items())
        if table.name == "order_lines":
            position = "file_row_number" if "file_row_number" in raw_types else "NULL"
            typed += f",\n  CAST({position} AS BIGINT) AS _line"
        keep = " AND ".join(self._row_rules(table)) or "true"
        self.con.execute(
            f"CREATE VIEW _typed_{table.name} AS SELECT * FROM "
            f"(SELECT {typed}\nFROM _raw_{table.name}) WHERE {keep}"
        )

    def _create_checked_view(self, name: str) -> None:
        """The view ``<name>``: typed rows less duplicate keys and unknown references.

        The keys and references are checked once, here, into a small table of problem keys
        (usually empty); the view then only filters on it, so later queries pay nothing.
        """
        table = TABLES[name]
        cross = self._cross_rules(name)
        full = self.validate == "full"
        if not full or table.key is None:
            where = " AND ".join(cross) if (cross and full) else "true"
            self.con.execute(f"CREATE VIEW {name} AS SELECT * FROM _typed_{name} WHERE {where}")
            return
        key, expr = table.key, self._expressions[name]
        # Candidates come from the raw file one column at a time, far cheaper than whole
        # typed rows: keys seen more than once, and keys of rows referring to a value the other
        # table lacks. A candidate that turns out fine (its other rows broke row rules) is
        # kept by the resolution below, so candidates may be a superset.
        self.con.execute(
            f"CREATE TEMP TABLE _problem_{name} AS SELECT k AS {key} FROM "
            f"(SELECT {expr[key]} AS k FROM _raw_{name}) WHERE k IS NOT NULL "
            f"GROUP BY k HAVING count(*) > 1"
        )
        for col, ref in self._references(name):
            unknown = f"_unknown_{name}_{col}"
            raw = _ident(self._sources[name][col])
            self.con.execute(
                f"CREATE TEMP TABLE {unknown} AS SELECT DISTINCT v FROM "
                f"(SELECT {expr[col]} AS v FROM (SELECT DISTINCT {raw} FROM _raw_{name})) "
                f"WHERE v IS NOT NULL AND v NOT IN (SELECT {col} FROM {ref})"
            )
            if self.scalar(f"SELECT count(*) FROM {unknown}"):
                self.con.execute(
                    f"INSERT INTO _problem_{name} SELECT DISTINCT {expr[key]} FROM _raw_{name} "
                    f"WHERE {expr[col]} IN (SELECT v FROM {unknown}) AND {expr[key]} IS NOT NULL"
                )
        if not self.scalar(f"SELECT count(*) FROM _problem_{name}"):
            self.con.execute(f"CREATE VIEW {name} AS SELECT * FROM _typed_{name}")
            return
        # An exact copy of a row is dropped; a key repeated with different content cannot be
        # resolved, so all its versions go; then rows with unknown references go (the loader's
        # rules, in its order).
        problem = f"{key} IN (SELECT {key} FROM _problem_{name})"
        resolved = (
            f"SELECT * FROM (SELECT DISTINCT * FROM _typed_{name} WHERE {problem}) "
            f"QUALIFY count(*) OVER (PARTITION BY {key}) = 1"
        )
        if cross:
            resolved = f"SELECT * FROM ({resolved}) WHERE {' AND '.join(cross)}"
        self.con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM _typed_{name} WHERE NOT ({problem}) "
            f"UNION ALL {resolved}"
        )

    def _row_rules(self, table: Table) -> list[str]:
        """Conditions a row must meet to be kept (the loader's exclusion rules)."""
        end = self.as_of + pd.Timedelta(days=1)
        future = f"ordered_at < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'"
        if self.validate == "none":
            return [future] if table.name == "orders" else []
        rules = [f"{_ident(c.name)} IS NOT NULL" for c in table.columns if not c.nullable]
        tol = self.tolerance
        if table.name == "orders":
            rules += [
                "paid_amount >= 0",
                "gross_amount >= 0",
                "discount_amount >= 0",
                f"discount_amount <= gross_amount + {tol!r}",
                future,
            ]
        elif table.name == "order_lines":
            rules += ["quantity > 0", "line_amount >= 0"]
        elif table.name == "campaigns":
            rules += ["ends_on >= starts_on"]
        return rules

    def _references(self, name: str) -> list[tuple[str, str]]:
        """``(column, referenced table)`` pairs checked after the table's own rules; the
        referenced table's key has the column's name; an empty member_id is a walk-in."""
        return {
            "orders": [("store_id", "stores"), ("member_id", "members")],
            "order_lines": [("order_id", "orders")],
        }.get(name, [])

    def _cross_rules(self, name: str) -> list[str]:
        """The references as SQL conditions."""
        return [
            f"({col} IS NULL OR {col} IN (SELECT {col} FROM {ref}))" if col == "member_id"
            else f"{col} IN (SELECT {col} FROM {ref})"
            for col, ref in self._references(name)
        ]

    def _derive_campaigns(self) -> None:
        """Campaigns seen in orders, first to last order day (the loader's rule)."""
        self.con.execute(
            "CREATE VIEW campaigns AS SELECT campaign_id, campaign_id AS name, "
            "date_trunc('day', min(ordered_at)) AS starts_on, "
            "date_trunc('day', max(ordered_at)) AS ends_on, CAST(NULL AS VARCHAR) AS kind "
            "FROM orders WHERE campaign_id IS NOT NULL GROUP BY campaign_id"
        )


def _typed(col: Column, name: str | None, raw_type: str, clean: bool = True, *,
           time_zone: str = DEFAULT_TIME_ZONE, fmt: str | None = None) -> str:
    """SQL giving a raw column the contract type the loader gives it (NULL when unparseable,
    non-finite or, for timestamps, out of range).

    ``clean=False`` casts only: no trimming of text, no blanking of empty strings. Timestamps
    follow :func:`rxrepurchase.exports.parse_timestamps`: ISO 8601 value by value, a UTC offset
    converted to ``time_zone``, other layouts only with ``fmt``."""
    if name is None:  # optional column absent from the file
        sql_type = {"money": "DOUBLE", "number": "DOUBLE", "integer": "BIGINT", "flag": "BOOLEAN",
                    "timestamp": "TIMESTAMP", "date": "TIMESTAMP"}.get(col.kind, "VARCHAR")
        value = f"CAST(NULL AS {sql_type})"
        return "0.0" if col.name == "stored_value_amount" else value
    ref = _ident(name)
    text = raw_type == "VARCHAR"
    cell = ref
    if text and clean:
        # Trimming every value costs twice as much as looking at its ends; few need it.
        cell = (f"CASE WHEN {ref} LIKE ' %' OR {ref} LIKE '% ' THEN NULLIF(trim({ref}), '') "
                f"WHEN {ref} = '' THEN NULL ELSE {ref} END")
    if col.kind in ("id", "text"):
        value = cell if text else f"CAST({ref} AS VARCHAR)"
        if col.name == "tier":
            cases = " ".join(f"WHEN {_quote(k)} THEN {_quote(v)}" for k, v in TIER_ALIASES.items())
            value = f"CASE {value} {cases} ELSE {value} END"
    elif col.kind in ("timestamp", "date"):
        zone = _quote(time_zone)
        if text:
            other = "NULL"
            if fmt:
                other = f"try_strptime({cell}, {_quote(fmt)})"
                other = f"timezone({zone}, {other})" if "%z" in fmt else other
            value = (
                f"CASE WHEN NOT regexp_matches({cell}, {_quote(ISO_START)}) THEN {other} "
                f"WHEN contains({cell}, ':') AND regexp_matches(right({cell}, 7), {_quote(OFFSET_TAIL)}) "
                f"THEN timezone({zone}, TRY_CAST({cell} AS TIMESTAMPTZ)) "
                f"ELSE TRY_CAST({cell} AS TIMESTAMP) END"
            )
        elif "WITH TIME ZONE" in raw_type or raw_type.startswith("TIMESTAMPTZ"):
            value = f"timezone({zone}, CAST({ref} AS TIMESTAMPTZ))"
        else:
            value = f"CAST({ref} AS TIMESTAMP)"
        # NULL outside the nanosecond range, as the loader (cheaper than comparing twice).
        value = f"CAST(TRY_CAST({value} AS TIMESTAMP_NS) AS TIMESTAMP)"
        if col.kind == "date":
            value = f"date_trunc('day', {value})"
    elif col.kind in ("money", "number", "integer"):
        number = f"TRY_CAST({cell} AS DOUBLE)"
        value = f"CASE WHEN isfinite({number}) THEN {number} END"  # inf and NaN are no amounts
        if col.kind == "integer":
            value = f"CASE WHEN {value} = floor({value}) THEN CAST({value} AS BIGINT) END"
            if col.name == "days_supply":  # kept, but a supply of zero or less is blanked
                value = f"CASE WHEN {value} > 0 THEN CAST({value} AS BIGINT) END"
        elif col.name == "stored_value_amount":  # empty means no stored-value payment
            value = f"CASE WHEN {cell} IS NULL THEN 0.0 ELSE {value} END"
    elif col.kind == "flag":
        if text:
            low = f"lower({cell})"
            true_ = ", ".join(map(_quote, sorted(TRUE_WORDS)))
            false_ = ", ".join(map(_quote, sorted(FALSE_WORDS)))
            value = f"CASE WHEN {low} IN ({true_}) THEN true WHEN {low} IN ({false_}) THEN false END"
        else:
            value = f"CAST({ref} AS BOOLEAN)"
    else:  # pragma: no cover - the contract only uses the kinds above
        raise AssertionError(col.kind)
    return value


def _open(data, as_of) -> tuple[ChainSource, bool]:
    """The source for ``data`` and whether this call opened it (and must close it)."""
    if isinstance(data, ChainSource):
        if as_of is not None and pd.Timestamp(as_of).normalize() != data.as_of:
            raise EngineError(
                f"as_of {as_of} differs from the source's as_of {data.as_of.date()}; "
                "open a ChainSource with that as_of"
            )
        return data, False
    return ChainSource(data, as_of=as_of), True


# --------------------------------------------------------------------------- conversion


def _strings(values) -> pd.arrays.ArrowStringArray:
    """Arrow or Python strings as the loader's ``string`` dtype (missing values as NA)."""
    return pd.array(values, dtype="string")


def _fetch(src: ChainSource, query: str) -> dict[str, np.ndarray]:
    """Run ``query`` and return its columns (strings kept as Arrow arrays)."""
    table = src.con.sql(query).to_arrow_table()
    out = {}
    for name in table.column_names:
        column = table[name]
        if str(column.type) in ("string", "large_string"):
            out[name] = _strings(column)
        else:
            out[name] = column.to_numpy()
    return out


def _day_sql(ts) -> int:
    return rfm._day_number(pd.Timestamp(ts))


def _group_columns(by: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``by`` as a list, and the member columns among it (looked up in ``members``)."""
    by = metrics._as_list(by)
    order_cols = set(TABLES["orders"].column_names)
    member_cols = set(TABLES["members"].column_names) - {"member_id"}
    unknown = [c for c in by if c not in order_cols | member_cols]
    if unknown:
        raise EngineError(
            f"grouping column(s) {unknown} are neither order nor member columns of the contract "
            f"(orders: {', '.join(TABLES['orders'].column_names)}; members: "
            f"{', '.join(sorted(member_cols))})"
        )
    return by, [c for c in by if c not in order_cols]


def _member_orders(by: list[str], member_cols: list[str]) -> str:
    """Member orders with the ``by`` columns (member columns joined from ``members``)."""
    cols = "".join(f", o.{c}" if c not in member_cols else f", m.{c}" for c in by)
    join = " JOIN members m ON m.member_id = o.member_id" if member_cols else ""
    day = _DAY.replace("ordered_at", "o.ordered_at")
    return (
        f"SELECT o.member_id, o.ordered_at, o.order_id, o.paid_amount, {day} AS day{cols} "
        f"FROM orders o{join} WHERE o.member_id IS NOT NULL"
    )


# --------------------------------------------------------------------------- RFM


def _amount(amount_col: str) -> str:
    if amount_col not in _MONEY:
        raise EngineError(f"amount_col must be one of the orders' money columns {_MONEY}, got {amount_col!r}")
    return amount_col


def _rfm_keys(by: str | None) -> list[str]:
    if by is None:
        return ["member_id"]
    if by not in TABLES["orders"].column_names or by == "member_id":
        raise EngineError(f"by must be an orders column such as 'store_id', got {by!r}")
    return [by, "member_id"]


def _days_sql(keys: list[str], amount_col: str) -> str:
    """Orders merged per key and calendar day: ``keys, day, orders, amount``. Walk-in orders
    stay in, under an empty member_id, so one pass also counts them."""
    cols = ", ".join(keys)
    return (
        f"SELECT {cols}, {_DAY} AS day, count(*) AS orders, sum({amount_col}) AS amount "
        f"FROM orders GROUP BY ALL"
    )


def _per_member_sql(keys: list[str], days: str, end_day: int | None) -> str:
    """Per key: orders, purchases, first/last day and repeat spend up to ``end_day`` (all days
    if None), and orders after it. ``days`` is a query or table of :func:`_days_sql` rows."""
    upto = "true" if end_day is None else f"day <= {end_day}"
    key_list = ", ".join(keys)
    return (
        f"SELECT {key_list}, sum(orders) AS orders, "
        f"count(*) FILTER (WHERE {upto}) AS n, min(day) FILTER (WHERE {upto}) AS first_day, "
        f"max(day) FILTER (WHERE {upto}) AS last_day, "
        f"sum(amount) FILTER (WHERE {upto}) - arg_min(amount, day) FILTER (WHERE {upto}) "
        f"  AS repeat_total, "
        f"coalesce(sum(ln(gap)) FILTER (WHERE {upto}), 0) AS log_gaps, "
        f"coalesce(sum(orders) FILTER (WHERE NOT ({upto})), 0) AS orders_after "
        f"FROM ({_with_gaps(keys, days)}) GROUP BY ALL ORDER BY {key_list}"
    )


def _with_gaps(keys: list[str], days: str) -> str:
    """``days`` rows with ``gap``: days since the key's previous purchase day (NULL at the
    first), for the sum of log inter-purchase times (``litt``)."""
    return (f"SELECT *, day - lag(day) OVER (PARTITION BY {', '.join(keys)} ORDER BY day) AS gap "
            f"FROM ({days})")


def _index(keys: list[str], columns: dict[str, np.ndarray], rows=slice(None)) -> pd.Index:
    if len(keys) == 1:
        return pd.Index(columns[keys[0]][rows], name=keys[0])
    return pd.MultiIndex.from_arrays([columns[k][rows] for k in keys], names=keys)


def _rfm_frame(
    keys: list[str], cols: dict, n: np.ndarray, first: np.ndarray, last: np.ndarray,
    repeat_total: np.ndarray, log_gaps: np.ndarray, end_day: int, unit_days: int, rows,
) -> pd.DataFrame:
    """The RFM table from per-member purchase count, first/last day, repeat spend and sum of
    log gaps in days."""
    frequency = (n[rows] - 1).astype(np.int64)
    first_day, last_day = first[rows].astype(np.int64), last[rows].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_total[rows].astype(np.float64) / frequency, 0.0)
    return pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (last_day - first_day) / unit_days,
            "T": (end_day - first_day) / unit_days,
            "litt": log_gaps[rows].astype(np.float64) - frequency * np.log(unit_days),
            "monetary_value": monetary,
            "first_purchase": rfm._dates(first_day),
            "last_purchase": rfm._dates(last_day),
        },
        index=_index(keys, cols, rows),
    )


def rfm_summary(
    data,
    *,
    observation_end=None,
    time_unit: str = "days",
    amount_col: str = "paid_amount",
    by: str | None = None,
    as_of=None,
) -> pd.DataFrame:
    """Each member's frequency, recency, T and monetary value, computed in DuckDB.

    The result equals :func:`rxrepurchase.rfm.rfm_summary` on ``load_chain(data).orders``
    with the same arguments (definitions in :mod:`rxrepurchase.rfm`). One pass over the
    orders.

    Parameters
    ----------
    data : path or ChainSource
        The chain's export folder, or an open :class:`ChainSource`.
    observation_end : date-like, optional
        Last calendar date observed (inclusive); default: the last member purchase date.
    time_unit : {"days", "weeks"}
    amount_col : str
        ``paid_amount`` (default) or another money column of orders.
    by : str, optional
        An orders column, e.g. ``"store_id"``: one row per store x member.
    as_of : date-like, optional
        Analysis date when ``data`` is a folder (see :class:`ChainSource`).

    Returns
    -------
    DataFrame
        As :func:`rxrepurchase.rfm.rfm_summary`, ``attrs`` included.
    """
    unit_days = rfm._check_unit(time_unit)
    amount_col = _amount(amount_col)
    keys = _rfm_keys(by)
    end_day = None if observation_end is None else _day_sql(rfm._as_date(observation_end, "observation_end"))
    src, owned = _open(data, as_of)
    try:
        cols = _fetch(src, _per_member_sql(keys, _days_sql(keys, amount_col), end_day))
    finally:
        if owned:
            src.close()
    member = ~np.asarray(cols["member_id"].isna(), dtype=bool)
    if end_day is None:
        if not member.any():
            raise rfm.RFMInputError("transactions hold no member purchases")
        end_day = int(cols["last_day"][member].max())
    rows = np.flatnonzero(member & (cols["n"] > 0))
    if not len(rows):
        raise rfm.RFMInputError(f"no member purchase on or before {rfm._day_date(end_day).date()}")
    summary = _rfm_frame(keys, cols, cols["n"], cols["first_day"], cols["last_day"],
                         cols["repeat_total"], cols["log_gaps"], end_day, unit_days, rows)
    summary.attrs = {
        "time_unit": time_unit,
        "observation_end": rfm._day_date(end_day),
        "amount_col": amount_col,
        "walk_in_orders": int(cols["orders"][~member].sum()),
        "transactions_after_end": int(cols["orders_after"][member].sum()),
    }
    return summary


def calibration_holdout(
    data,
    cut_date,
    *,
    holdout_end=None,
    time_unit: str = "days",
    amount_col: str = "paid_amount",
    by: str | None = None,
    as_of=None,
) -> rfm.CalibrationHoldout:
    """Calibration RFM and holdout outcomes split at ``cut_date``, computed in DuckDB.

    Equals :func:`rxrepurchase.rfm.calibration_holdout` on ``load_chain(data).orders``; the
    arguments are the same, plus ``data`` and ``as_of`` as in :func:`rfm_summary`. One pass
    over the orders (into a temporary table of member-days).
    """
    unit_days = rfm._check_unit(time_unit)
    amount_col = _amount(amount_col)
    keys = _rfm_keys(by)
    key_list = ", ".join(keys)
    cut = rfm._as_date(cut_date, "cut_date")
    cut_day = _day_sql(cut)
    given_end = None if holdout_end is None else _day_sql(rfm._as_date(holdout_end, "holdout_end"))
    src, owned = _open(data, as_of)
    try:
        src.con.execute(f"CREATE OR REPLACE TEMP TABLE _days AS {_days_sql(keys, amount_col)}")
        try:
            walk_in, last_day, after_cut, after_given = src.con.execute(
                f"SELECT sum(orders) FILTER (WHERE member_id IS NULL), "
                f"max(day) FILTER (WHERE member_id IS NOT NULL), "
                f"sum(orders) FILTER (WHERE member_id IS NOT NULL AND day > {cut_day}), "
                f"sum(orders) FILTER (WHERE member_id IS NOT NULL AND day > {given_end or cut_day}) "
                f"FROM _days"
            ).fetchall()[0]
            if last_day is None:
                raise rfm.RFMInputError("transactions hold no member purchases")
            end_day = int(last_day) if given_end is None else given_end
            if end_day <= cut_day:
                raise rfm.RFMInputError(
                    f"holdout_end {rfm._day_date(end_day).date()} must be after cut_date {cut.date()}"
                )
            purchases = f"SELECT * FROM _days WHERE member_id IS NOT NULL AND day <= {end_day}"
            cal = f"day <= {cut_day}"
            cols = _fetch(
                src,
                f"SELECT {key_list}, min(day) AS first_day, "
                f"count(*) FILTER (WHERE {cal}) AS n_cal, max(day) FILTER (WHERE {cal}) AS last_cal, "
                f"coalesce(sum(amount) FILTER (WHERE {cal}), 0) - arg_min(amount, day) AS repeat_cal, "
                f"coalesce(sum(ln(gap)) FILTER (WHERE {cal}), 0) AS log_gaps_cal, "
                f"count(*) FILTER (WHERE NOT {cal}) AS n_hold, "
                f"coalesce(sum(amount) FILTER (WHERE NOT {cal}), 0) AS spend_hold "
                f"FROM ({_with_gaps(keys, purchases)}) GROUP BY ALL ORDER BY {key_list}",
            )
            repeat = src.con.execute(
                f"SELECT p.day, count(*) AS n FROM ({purchases}) p JOIN ("
                f"SELECT {key_list}, min(day) AS first_day FROM ({purchases}) GROUP BY ALL "
                f"HAVING min(day) <= {cut_day}) f USING ({key_list}) "
                f"WHERE p.day > f.first_day GROUP BY p.day ORDER BY p.day"
            ).fetchnumpy()
        finally:
            src.con.execute("DROP TABLE IF EXISTS _days")
    finally:
        if owned:
            src.close()
    first_day = cols["first_day"].astype(np.int64)
    cal_rows = np.flatnonzero(first_day <= cut_day)
    if not len(cal_rows):
        raise rfm.RFMInputError(f"no member purchase on or before cut_date {cut.date()}")
    calibration = _rfm_frame(keys, cols, cols["n_cal"], first_day, cols["last_cal"],
                             cols["repeat_cal"], cols["log_gaps_cal"], cut_day, unit_days, cal_rows)
    calibration.attrs = {
        "time_unit": time_unit,
        "observation_end": cut,
        "amount_col": amount_col,
        "walk_in_orders": int(walk_in or 0),
        "transactions_after_end": int(after_cut or 0),
    }
    count = cols["n_hold"][cal_rows].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_spend = np.where(count > 0, cols["spend_hold"][cal_rows] / count, 0.0)
    holdout = pd.DataFrame(
        {
            "frequency_holdout": count,
            "monetary_holdout": mean_spend,
            "duration_holdout": (end_day - cut_day) / unit_days,
        },
        index=calibration.index,
    )
    new_rows = np.flatnonzero(first_day > cut_day)
    new_in_holdout = pd.DataFrame(
        {
            "first_purchase": rfm._dates(first_day[new_rows]),
            "purchases": cols["n_hold"][new_rows].astype(np.int64),
            "spend": cols["spend_hold"][new_rows].astype(np.float64),
        },
        index=_index(keys, cols, new_rows),
    )
    repeat_purchases = pd.Series(
        repeat["n"].astype(np.int64),
        index=pd.DatetimeIndex(rfm._dates(repeat["day"].astype(np.int64)), name="date"),
        name="purchases",
    )
    return rfm.CalibrationHoldout(
        calibration=calibration,
        holdout=holdout,
        new_in_holdout=new_in_holdout,
        first_purchases=rfm._count_by_date(calibration["first_purchase"].to_numpy()),
        repeat_purchases=repeat_purchases,
        cut_date=cut,
        holdout_end=rfm._day_date(end_day),
        time_unit=time_unit,
        walk_in_orders=int(walk_in or 0),
        transactions_after_holdout=int(after_given or 0) if given_end is not None else 0,
    )


# --------------------------------------------------------------------------- repurchase rates


def _calendar(window) -> str:
    freq = metrics._CALENDAR_FREQ.get(str(window).upper()) if isinstance(window, str) else None
    if freq not in _PERIODS:
        raise EngineError(
            f"the engine computes calendar windows 'W', 'M', 'Q' and 'Y', got {window!r}; "
            "use rxrepurchase.metrics.repurchase_rates on a loaded chain for N-day or custom "
            "windows"
        )
    return freq


def _labelled(values, kind: str) -> pd.Series:
    """Group labels in the dtype the pandas path gives them: order columns keep the loader's
    ``string`` dtype; member columns come through numpy, so text becomes ``str``."""
    if kind == "order":
        return pd.Series(values)
    if isinstance(values, pd.arrays.ArrowStringArray):
        return pd.Series(np.asarray(values, dtype=object), dtype="str")
    return pd.Series(values)


def _by_dtypes(by: list[str]) -> dict[str, str]:
    order_cols = set(TABLES["orders"].column_names)
    return {c: "order" if c in order_cols else "member" for c in by}


def repurchase_rates(
    data,
    window: str = "M",
    by: str | Sequence[str] | None = "store_id",
    *,
    purchase_unit: metrics.PurchaseUnit = "day",
    zero_paid: metrics.ZeroPaid = "exclude",
    start=None,
    end=None,
    as_of=None,
) -> pd.DataFrame:
    """User and order repurchase rates per calendar period and group, computed in DuckDB.

    Equals :func:`rxrepurchase.metrics.repurchase_rates` on the loaded chain's orders (and
    members, for member columns in ``by``) with the same arguments.

    Parameters
    ----------
    data : path or ChainSource
    window : {"M", "Q", "Y", "W"}
        Calendar periods (``"ME"``, ``"QE"``, ``"YE"`` too).
    by : str or list of str, optional
        Order columns (default ``"store_id"``) or member columns (``tier`` ...).
    purchase_unit, zero_paid, start, end
        As in :func:`rxrepurchase.metrics.repurchase_rates`.
    as_of : date-like, optional
        Analysis date when ``data`` is a folder.
    """
    metrics._check_options(purchase_unit, zero_paid)
    freq = _calendar(window)
    src, owned = _open(data, as_of)
    try:
        by, member_cols = _group_columns(by)
        first, last = src.con.execute(
            "SELECT min(ordered_at), max(ordered_at) FROM orders WHERE member_id IS NOT NULL"
        ).fetchall()[0]
        if first is None:
            raise metrics.MetricsInputError("orders hold no member orders")
        first = pd.Timestamp(start).normalize() if start is not None else pd.Timestamp(first)
        last = pd.Timestamp(end).normalize() if end is not None else pd.Timestamp(last)
        windows = metrics._window_table(window, first.normalize(), last.normalize())
        if windows.empty:
            raise metrics.MetricsInputError(
                f"window {window!r} yields no window between {first:%Y-%m-%d} and {last:%Y-%m-%d}"
            )
        lo, hi = windows["window_start"].min(), windows["window_end"].max()
        bought = "paid_amount >= 0" if zero_paid == "include" else "paid_amount > 0"
        count = "count(DISTINCT day)" if purchase_unit == "day" else "count(*)"
        keys = ", ".join(["window_start", *by])
        cols = _fetch(
            src,
            f"SELECT {keys}, count(*) FILTER (WHERE n > 0) AS members, "
            f"count(*) FILTER (WHERE n >= 2) AS repeat_members, sum(n) AS purchases, "
            f"sum(excluded) AS excluded_orders FROM ("
            f"  SELECT {keys}, member_id, {count} FILTER (WHERE {bought}) AS n, "
            f"  count(*) FILTER (WHERE NOT ({bought})) AS excluded FROM ("
            f"    SELECT *, CAST(date_trunc('{_PERIODS[freq][0]}', ordered_at) AS DATE) AS window_start "
            f"    FROM ({_member_orders(by, member_cols)}) "
            f"    WHERE day BETWEEN {_day_sql(lo)} AND {_day_sql(hi)}) GROUP BY ALL) "
            f"GROUP BY ALL ORDER BY {', '.join(f'{k} NULLS LAST' for k in ['window_start', *by])}",
        )
    finally:
        if owned:
            src.close()
    start_day = cols["window_start"].astype("datetime64[D]").astype(np.int64)
    starts = windows["window_start"].to_numpy("datetime64[D]").astype(np.int64)
    w = windows.iloc[np.searchsorted(starts, start_day)].reset_index(drop=True)
    out = w.copy()
    for c, kind in _by_dtypes(by).items():
        out[c] = _labelled(cols[c], kind)
    n = {k: cols[k].astype(np.int64) for k in ("members", "repeat_members", "purchases", "excluded_orders")}
    out["members"] = n["members"]
    out["repeat_members"] = n["repeat_members"]
    out["user_repurchase_rate"] = metrics._ratio(out["repeat_members"], out["members"])
    out["purchases"] = n["purchases"]
    out["repeat_purchases"] = n["purchases"] - n["members"]
    out["order_repurchase_rate"] = metrics._ratio(out["repeat_purchases"], out["purchases"])
    out["excluded_orders"] = n["excluded_orders"]
    return out


# --------------------------------------------------------------------------- cohorts


def cohort_retention(
    data,
    freq: str = "M",
    by: str | Sequence[str] | None = None,
    *,
    as_of=None,
    zero_paid: metrics.ZeroPaid = "exclude",
) -> pd.DataFrame:
    """Acquisition-cohort retention as a tidy table, computed in DuckDB.

    Equals :func:`rxrepurchase.metrics.cohort_retention` on the loaded chain with the same
    arguments: cohorts are the period of each member's first purchase, order columns in
    ``by`` take their value on that purchase (``store_id``: the acquiring store), and only
    periods that have ended by ``as_of`` appear.

    Parameters
    ----------
    data : path or ChainSource
    freq : {"M", "Q", "Y", "W"}
    by : str or list of str, optional
        Order or member columns.
    as_of : date-like, optional
        Analysis date (default: the source's ``as_of`` cut to the last order date, as the
        pandas path's default of the last order date).
    zero_paid : {"exclude", "include"}
    """
    metrics._check_options("order", zero_paid)
    freq = metrics._period_freq(freq)
    if freq not in _PERIODS:
        raise EngineError(f"freq must be 'W', 'M', 'Q' or 'Y', got {freq!r}")
    src, owned = _open(data, None)
    try:
        by, member_cols = _group_columns(by)
        if as_of is None:
            latest = src.scalar("SELECT max(ordered_at) FROM orders")
            if latest is None:
                raise metrics.MetricsInputError("orders is empty: pass as_of explicitly")
            as_of = pd.Timestamp(latest)
        last = metrics._last_complete_period(pd.Timestamp(as_of).normalize(), freq)
        bought = "paid_amount >= 0" if zero_paid == "include" else "paid_amount > 0"
        period = _PERIODS[freq][1].format(d="CAST(ordered_at AS DATE)")
        first_by = "".join(f", arg_min({c}, (ordered_at, order_id)) AS {c}" for c in by)
        group = ", ".join([*by, "c"])
        order = ", ".join(f"{k} NULLS LAST" for k in [*by, "c"])
        src.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _bought AS SELECT * , {period} AS per "
            f"FROM ({_member_orders(by, member_cols)}) WHERE {bought}"
        )
        try:
            cols = _fetch(
                src,
                f"WITH first AS (SELECT member_id, min(per) AS c{first_by} FROM _bought "
                f"  GROUP BY member_id HAVING min(per) <= {last}), "
                f"g AS (SELECT *, row_number() OVER (ORDER BY {order}) AS g FROM ("
                f"  SELECT {group}, count(*) AS cohort_members FROM first GROUP BY ALL)), "
                f"fg AS (SELECT f.member_id, f.c, g.g FROM first f JOIN g ON "
                + " AND ".join(f"f.{k} IS NOT DISTINCT FROM g.{k}" for k in [*by, "c"])
                + "), "
                f"act AS (SELECT fg.g, b.per - fg.c AS k, count(DISTINCT b.member_id) AS active "
                f"  FROM _bought b JOIN fg USING (member_id) WHERE b.per <= {last} GROUP BY ALL), "
                f"grid AS (SELECT *, unnest(range(0, {last} - c + 1)) AS k FROM g) "
                f"SELECT grid.*, coalesce(act.active, 0) AS active_members FROM grid "
                f"LEFT JOIN act USING (g, k) ORDER BY grid.g, grid.k",
            )
        finally:
            src.con.execute("DROP TABLE IF EXISTS _bought")
    finally:
        if owned:
            src.close()
    out = pd.DataFrame({c: _labelled(cols[c], kind) for c, kind in _by_dtypes(by).items()})
    out["cohort"] = pd.PeriodIndex.from_ordinals(cols["c"].astype(np.int64), freq=freq).astype(str)
    out["periods_since_first"] = cols["k"].astype(np.int64)
    out["cohort_members"] = cols["cohort_members"].astype(np.int64)
    out["active_members"] = cols["active_members"].astype(np.int64)
    out["retention"] = metrics._ratio(out["active_members"], out["cohort_members"])
    return out


# --------------------------------------------------------------------------- refills


def refill_fills(
    data,
    *,
    group_by: str = "sku",
    chronic_only: bool = True,
    with_members: bool = True,
    as_of=None,
) -> pd.DataFrame:
    """Member fills (one per member, product group and day) with the refill intervals.

    Equals :func:`rxrepurchase.refill.refill_fills` on the loaded chain (``members`` given when
    ``with_members``), followed by the interval columns the refill prediction uses:
    ``interval_days`` (days since the member's previous fill of the product, NaN for the first)
    and ``supply_ratio`` (that interval / the previous fill's days supply).

    Parameters
    ----------
    data : path or ChainSource
    group_by : str
        An order-lines column naming the product group: ``"sku"`` (default), ``"category"``.
    chronic_only : bool
        Keep only lines flagged ``is_chronic`` (default).
    with_members : bool
        Add each member's ``home_store_id``.
    as_of : date-like, optional
        Analysis date when ``data`` is a folder.

    Notes
    -----
    Within a day, the fill's store, channel and product name are those of the line that
    :data:`rxrepurchase.refill.FILL_NAMING_ORDER` puts first (largest amount, latest order
    time, then smallest SKU, order id and product name).
    """
    line_cols = set(TABLES["order_lines"].column_names) - {"order_id"}
    if group_by not in line_cols:
        raise EngineError(
            f"group_by must be an order_lines column ({', '.join(sorted(line_cols))}), got "
            f"{group_by!r}; map SKUs to groups with rxrepurchase.refill.refill_fills instead"
        )
    src, owned = _open(data, as_of)
    try:
        chronic = "l.is_chronic AND " if chronic_only else ""
        # refill.FILL_NAMING_ORDER: largest amount, latest time, then smallest sku, order, name.
        last = "(-l.line_amount, -epoch_us(o.ordered_at), l.sku, o.order_id, l.product_name)"
        walk_in = src.scalar(
            f"SELECT count(*) FROM order_lines l JOIN orders o USING (order_id) "
            f"WHERE {chronic}o.member_id IS NULL"
        )
        home = ", m.home_store_id" if with_members else ""
        join = " JOIN members m USING (member_id)" if with_members else ""
        cols = _fetch(
            src,
            f"SELECT f.*{home}, "
            f"  date_diff('day', lag(filled_on) OVER w, filled_on) AS interval_days, "
            f"  date_diff('day', lag(filled_on) OVER w, filled_on) / lag(days_supply) OVER w "
            f"    AS supply_ratio "
            f"FROM (SELECT o.member_id, CAST(l.{group_by} AS VARCHAR) AS product, "
            f"  date_trunc('day', o.ordered_at) AS filled_on, "
            f"  arg_min(o.store_id, {last}) AS store_id, arg_min(o.channel, {last}) AS channel, "
            f"  arg_min(l.product_name, {last}) AS product_name, "
            f"  sum(l.quantity) AS quantity, sum(l.line_amount) AS line_amount, "
            f"  CASE WHEN count(l.days_supply) = count(*) THEN sum(l.days_supply) END AS days_supply, "
            f"  count(*) AS n_lines "
            f"  FROM order_lines l JOIN orders o USING (order_id) "
            f"  WHERE {chronic}o.member_id IS NOT NULL GROUP BY ALL) f{join} "
            f"WINDOW w AS (PARTITION BY f.member_id, f.product ORDER BY f.filled_on) "
            f"ORDER BY f.member_id, f.product, f.filled_on",
        )
    finally:
        if owned:
            src.close()
    if cols["product"].isna().any():
        raise EngineError(f"order_lines.{group_by} is empty on some member lines; cannot group products by it")
    fills = pd.DataFrame(
        {
            "member_id": cols["member_id"],
            "product": cols["product"],
            "filled_on": cols["filled_on"].astype("datetime64[ns]"),
            "store_id": cols["store_id"],
            "channel": cols["channel"],
            "product_name": cols["product_name"],
            "quantity": cols["quantity"].astype(np.float64),
            "line_amount": cols["line_amount"].astype(np.float64),
            "days_supply": pd.array(cols["days_supply"], dtype="Float64").to_numpy(np.float64, na_value=np.nan),
            "n_lines": pd.array(cols["n_lines"], dtype="Int64"),
        }
    )
    if with_members:
        fills["home_store_id"] = cols["home_store_id"]
    fills["interval_days"] = pd.array(cols["interval_days"], dtype="Float64").to_numpy(np.float64, na_value=np.nan)
    fills["supply_ratio"] = pd.array(cols["supply_ratio"], dtype="Float64").to_numpy(np.float64, na_value=np.nan)
    fills.attrs = {"walk_in_lines": int(walk_in), "return_lines": 0, "group_by": group_by}
    return fills
