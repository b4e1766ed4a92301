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
:func:`cohort_retention`          :func:`rxrepurchase.metrics.cohort_retention`
:func:`arpu`                      :func:`rxrepurchase.metrics.arpu`
:func:`walk_in_share`             :func:`rxrepurchase.metrics.walk_in_share`
:func:`pareto_share`              :func:`rxrepurchase.metrics.pareto_share`
:func:`refill_fills`              :func:`rxrepurchase.refill.refill_fills` with the
                                  days since the previous fill
================================  ==================================================

Rows are validated by the contract's rules (:mod:`rxrepurchase.core.rules`), the same rule
table and evaluator the loader uses: a row the loader excludes -- unparseable or empty required
value, negative amount, discount above gross, order after ``as_of``, duplicate key, unknown
store or member, line of an excluded order -- is left out here too, and
:meth:`ChainSource.row_counts` tells how many rows each table lost. Warnings that keep a row
(``paid_mismatch`` ...) change nothing in the aggregates and are only reported by the loader.
``ChainSource(validate=...)`` trades these checks for speed on files validated upstream. Files
are found and headers mapped by :mod:`rxrepurchase.exports`, as by the loader, and cells are
typed by the loader's one rule (:mod:`rxrepurchase.core.cells`: whitespace stripped, numbers,
flags, ISO 8601 timestamps with offsets converted to the chain's time zone, other layouts only
with the mapping's format). The difference from the loader, documented in ``docs/scale.md``:
CSV files must be UTF-8 (convert a GBK export once with ``iconv``, or use the loader).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from rxrepurchase import metrics, refill, rfm
from rxrepurchase.arguments import as_list
from rxrepurchase.contract import TABLES, Table
from rxrepurchase.core import backend
from rxrepurchase.core.campaigns import derived_campaigns
from rxrepurchase.core.cells import Raw, select_sql
from rxrepurchase.core.purchases import check_options
from rxrepurchase.core.rates import period_freq
from rxrepurchase.core.rules import Context, Evaluator, check_tables
from rxrepurchase.core.sql import sql_name, sql_string
from rxrepurchase.errors import DataContractError, EngineError
from rxrepurchase.exports import (
    DEFAULT_TIME_ZONE,
    check_time_zone,
    find_file,
    map_headers,
    read_mapping,
)

__all__ = [
    "ChainSource",
    "EngineError",
    "arpu",
    "calibration_holdout",
    "cohort_retention",
    "connect",
    "pareto_share",
    "refill_fills",
    "repurchase_rates",
    "rfm_summary",
    "walk_in_share",
]

_MONEY = ("paid_amount", "gross_amount", "discount_amount", "stored_value_amount")


def connect(**settings) -> duckdb.DuckDBPyConnection:
    """The raw DuckDB connection of :func:`rxrepurchase.core.backend.connect` (same keyword
    arguments: ``memory_limit``, ``threads``, ``temp_directory``, ``database``)."""
    return backend.connect(**settings).con


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
        previous load, the chain's ETL); values are only cast, no whitespace stripped. Orders after
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
        # The Ibis backend runs the core's expressions; its DuckDB connection holds the views.
        self.backend = backend.connect(
            memory_limit=memory_limit, threads=threads, temp_directory=temp_directory,
            database=database,
        )
        self.con = self.backend.con
        if validate not in ("full", "rows", "none"):
            raise EngineError(f"validate must be 'full', 'rows' or 'none', got {validate!r}")
        self.validate = validate
        self.files: dict[str, Path] = {}
        self._checks = itertools.count()  # names of the small tables validation makes
        self._columns: dict[str, list[Raw]] = {}  # table -> where its columns are read
        for table in TABLES.values():
            file = find_file(self.folder, table, spec)
            if file is not None:
                self.files[table.name] = file
                self._create_views(table, file)
        self._validate()

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

    def table(self, name: str):
        """The validated view ``name`` as an Ibis table, for the core's expressions."""
        return self.backend.table(name)

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
        path = sql_string(str(file))
        if file.suffix == ".parquet":
            # The row number orders a member's same-time lines as the loader keeps them.
            return f"read_parquet({path}, file_row_number = true)"
        return (
            f"read_csv({path}, all_varchar = true, header = true, "
            f"encoding = {sql_string(self.encoding)})"
        )

    def _create_views(self, table: Table, file: Path) -> None:
        """``_raw_<table>`` (the file) and ``_read_<table>`` (its columns in the contract's types)."""
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
        self._columns[table.name] = [
            Raw(col, source.get(col.name), raw_types.get(source.get(col.name), ""))
            for col in table.columns]
        keep = []
        if table.name == "order_lines":
            position = "file_row_number" if "file_row_number" in raw_types else "NULL"
            keep.append((f"CAST({position} AS BIGINT)", "_line"))
        if "file_row_number" in raw_types and self.validate != "none" and table.key is not None:
            # Rows the row rules exclude are found once by their number (core.rules).
            keep.append(("file_row_number", "_row"))
        typed = self._typed(self._columns[table.name], f"_raw_{table.name}", keep)
        self.con.execute(f"CREATE VIEW _read_{table.name} AS {typed}")

    def _typed(self, columns: list[Raw], source: str, keep=()) -> str:
        """The contract's values of ``source``'s raw columns (:func:`core.cells.select_sql`)."""
        return select_sql(columns, source, clean=self.validate != "none", keep=keep,
                          time_zone=self.time_zone, formats=self.formats)

    def _validate(self) -> None:
        """The views ``<table>``: the rows of ``_read_<table>`` that the contract's rules
        (:mod:`rxrepurchase.core.rules`) keep, as the loader keeps them.

        Keys seen twice and unknown references of keyed tables are looked for once, here, into
        small tables (usually empty); the views then only filter on them, so later queries
        pay little. Order lines are checked against the kept orders when queried.
        """
        ctx = Context(self.as_of, self.tolerance, campaigns_file="campaigns" in self.files)
        read = {name: self.backend.table(f"_read_{name}") for name in self.files}
        check_tables(Evaluator(ctx, materialize=self._materialize, values=self._values), read,
                     self.validate, publish=self._publish,
                     derive_campaigns=self._derived)

    def _publish(self, name: str, kept):
        """The view ``name``; later tables refer to it by name, so that materialize() reaches
        them. The file's row number (``_row``) served the rules only."""
        self.backend.create_view(name, kept.drop("_row") if "_row" in kept.columns else kept)
        return self.backend.table(name)

    def _derived(self, orders):
        """The view ``campaigns`` of a chain without a campaigns file."""
        self.backend.create_view("campaigns", derived_campaigns(orders))
        return self.backend.table("campaigns")

    def _values(self, table: str, col: str):
        """Distinct values of a column: the distinct raw cells first, then typed (cheaper
        than typing every row)."""
        raw = next(r for r in self._columns[table] if r.col.name == col)
        cells = f"(SELECT DISTINCT {sql_name(raw.name)} FROM _raw_{table})"
        view = f"_values_{table}_{col}"
        self.con.execute(f"CREATE VIEW {view} AS SELECT DISTINCT * FROM ({self._typed([raw], cells)})")
        return self.backend.table(view)

    def _materialize(self, expr):
        name = f"_check_{next(self._checks)}"
        return self.backend.create_table(name, expr, temp=True)


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


@contextmanager
def _opened(data, as_of) -> Iterator[ChainSource]:
    """:func:`_open` for a ``with`` block: a source this call opened is closed after it."""
    src, owned = _open(data, as_of)
    try:
        yield src
    finally:
        if owned:
            src.close()


def _group_columns(by: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``by`` as a list, and the member columns among it (looked up in ``members``)."""
    by = as_list(by)
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


def _keys(by: str | None) -> rfm.Keys:
    """Results keyed by ``[by,] member_id``, text ids in the loader's ``string`` dtype."""
    keys = _rfm_keys(by)
    text = {c.name for c in TABLES["orders"].columns if c.kind in ("id", "text")}
    return rfm.Keys(by, keys, {k: "string" for k in keys if k in text})


def rfm_summary(
    data,
    *,
    as_of=None,
    time_unit: str = "days",
    amount_col: str = "paid_amount",
    by: str | None = None,
) -> pd.DataFrame:
    """Each member's frequency, recency, T and monetary value, computed in DuckDB.

    :func:`rxrepurchase.rfm.rfm_summary` on the source's validated orders (the same
    expressions run on both; definitions in :mod:`rxrepurchase.rfm`).

    Parameters
    ----------
    data : path or ChainSource
        The chain's export folder, or an open :class:`ChainSource`.
    as_of : date-like, optional
        The analysis date: last calendar date observed (inclusive), and, when ``data`` is a
        folder, orders after it are left out (see :class:`ChainSource`); default: the last
        member purchase date (a folder is then read as of today).
    time_unit : {"days", "weeks"}
    amount_col : str
        ``paid_amount`` (default) or another money column of orders.
    by : str, optional
        An orders column, e.g. ``"store_id"``: one row per store x member.

    Returns
    -------
    DataFrame
        As :func:`rxrepurchase.rfm.rfm_summary`, ``attrs`` included.
    """
    amount_col = _amount(amount_col)
    keys = _keys(by)
    # An open source may be observed to an earlier day than its own as_of, not a later one.
    if isinstance(data, ChainSource) and as_of is not None \
            and pd.Timestamp(as_of).normalize() > data.as_of:
        raise EngineError(f"as_of {as_of} is after the source's as_of {data.as_of.date()}; "
                          "open a ChainSource with that as_of")
    src, owned = _open(data, None if isinstance(data, ChainSource) else as_of)
    try:
        return rfm.summarise(src.table("orders"), keys, as_of=as_of,
                             time_unit=time_unit, amount_col=amount_col)  # fmt: skip
    finally:
        if owned:
            src.close()


def calibration_holdout(
    data,
    calibration_end,
    *,
    holdout_end=None,
    time_unit: str = "days",
    amount_col: str = "paid_amount",
    by: str | None = None,
    as_of=None,
) -> rfm.CalibrationHoldout:
    """Calibration RFM and holdout outcomes split at ``calibration_end``, computed in DuckDB.

    :func:`rxrepurchase.rfm.calibration_holdout` on the source's validated orders; the
    arguments are the same, plus ``data`` and ``as_of`` as in :func:`rfm_summary`.
    """
    amount_col = _amount(amount_col)
    keys = _keys(by)
    src, owned = _open(data, as_of)
    try:
        return rfm.split_at(src.table("orders"), keys, calibration_end, holdout_end=holdout_end,
                            time_unit=time_unit, amount_col=amount_col)  # fmt: skip
    finally:
        if owned:
            src.close()


# --------------------------------------------------------------------------- repurchase rates


def _grouping(src: ChainSource, by) -> dict:
    """The core's grouping arguments for ``by``: member columns come from ``members``; text
    order columns come back in the loader's ``string`` dtype."""
    by, member_cols = _group_columns(by)
    text = {c.name for c in TABLES["orders"].columns if c.kind in ("id", "text")}
    return {
        "by": by,
        "members": src.table("members") if member_cols else None,
        "member_columns": member_cols,
        "labels": {c: "string" if c in text else None for c in by},
    }


def repurchase_rates(
    data,
    window: str = "M",
    by: str | Sequence[str] | None = "store_id",
    *,
    purchase_unit: metrics.PurchaseUnit = "day",
    zero_paid: metrics.ZeroPaid = "exclude",
    start=None,
    end=None,
    step=None,
    as_of=None,
) -> pd.DataFrame:
    """User and order repurchase rates per window and group, computed in DuckDB.

    :func:`rxrepurchase.metrics.repurchase_rates` on the source's validated orders (and
    members, for member columns in ``by``), through the same expressions.

    Parameters
    ----------
    data : path or ChainSource
    window : str, int, tuple, list or dict
        As in :func:`rxrepurchase.metrics.repurchase_rates`: calendar periods (``"M"``,
        ``"Q"``, ``"Y"``, ``"W"``), N-day windows (``90``, ``"90D"``; rolling with ``step``),
        ``(start, end)`` pairs, a list or a dict of named pairs.
    by : str or list of str, optional
        Order columns (default ``"store_id"``) or member columns (``tier`` ...).
    purchase_unit, zero_paid, start, end, step
        As in :func:`rxrepurchase.metrics.repurchase_rates`.
    as_of : date-like, optional
        Analysis date when ``data`` is a folder.
    """
    check_options(purchase_unit, zero_paid)
    src, owned = _open(data, as_of)
    try:
        return metrics.rates_table(src.table("orders"), window, **_grouping(src, by),
                                   purchase_unit=purchase_unit, zero_paid=zero_paid,
                                   start=start, end=end, step=step)  # fmt: skip
    finally:
        if owned:
            src.close()


def arpu(
    data,
    window: str = "M",
    by: str | Sequence[str] | None = "store_id",
    *,
    zero_paid: metrics.ZeroPaid = "exclude",
    start=None,
    end=None,
    step=None,
    as_of=None,
) -> pd.DataFrame:
    """:func:`rxrepurchase.metrics.arpu` on the source's validated orders (and members),
    through the same expressions; arguments as in :func:`repurchase_rates`."""
    check_options("day", zero_paid)
    with _opened(data, as_of) as src:
        return metrics.arpu_table(src.table("orders"), window, **_grouping(src, by),
                                  zero_paid=zero_paid, amounts=("gross_amount", "discount_amount"),
                                  start=start, end=end, step=step)  # fmt: skip


def walk_in_share(
    data, window: str = "M", by: str | Sequence[str] | None = "store_id", *, start=None,
    end=None, step=None, as_of=None,
) -> pd.DataFrame:
    """:func:`rxrepurchase.metrics.walk_in_share` on the source's validated orders, through
    the same expressions; ``by`` names order columns only."""
    with _opened(data, as_of) as src:
        grouping = _grouping(src, by)
        return metrics.walk_in_table(src.table("orders"), window, grouping["by"],
                                     labels=grouping["labels"], start=start, end=end, step=step)  # fmt: skip


def pareto_share(
    data, top: float = 0.2, by: str | Sequence[str] | None = None, *, start=None, end=None,
    as_of=None,
) -> pd.DataFrame:
    """:func:`rxrepurchase.metrics.pareto_share` on the source's validated orders (and
    members), through the same expressions."""
    with _opened(data, as_of) as src:
        return metrics.pareto_table(src.table("orders"), top, **_grouping(src, by), start=start,
                                    end=end)  # fmt: skip


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

    :func:`rxrepurchase.metrics.cohort_retention` on the source's validated orders, through
    the same expressions: cohorts are the period of each member's first purchase, order
    columns in ``by`` take their value on that purchase (``store_id``: the acquiring store),
    and only periods that have ended by ``as_of`` appear.

    Parameters
    ----------
    data : path or ChainSource
    freq : {"M", "Q", "Y", "W"}
    by : str or list of str, optional
        Order or member columns.
    as_of : date-like, optional
        Analysis date (default: the last order date).
    zero_paid : {"exclude", "include"}
    """
    check_options("order", zero_paid)
    period_freq(freq)
    src, owned = _open(data, None)
    try:
        return metrics.cohort_table(src.table("orders"), freq, **_grouping(src, by), as_of=as_of,
                                    zero_paid=zero_paid)  # fmt: skip
    finally:
        if owned:
            src.close()


def n_day_repurchase(
    data,
    outcome_days: Sequence[int] = (30, 60, 90),
    by: str | Sequence[str] | None = None,
    *,
    as_of=None,
    purchase_unit: metrics.PurchaseUnit = "day",
    zero_paid: metrics.ZeroPaid = "exclude",
) -> pd.DataFrame:
    """:func:`rxrepurchase.metrics.n_day_repurchase` on the source's validated orders (and
    members), through the same expressions; ``by`` also takes ``cohort_month``, and ``as_of``
    (default: the last order date) is the analysis date, as in :func:`cohort_retention`."""
    check_options(purchase_unit, zero_paid)
    by = as_list(by)
    with _opened(data, None) as src:
        grouping = _grouping(src, [c for c in by if c != "cohort_month"])
        return metrics.n_day_table(src.table("orders"), outcome_days, **{**grouping, "by": by},
                                   as_of=as_of, purchase_unit=purchase_unit, zero_paid=zero_paid)  # fmt: skip


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

    :func:`rxrepurchase.refill.refill_fills` on the source's validated tables (``members``
    given when ``with_members``), through the same expressions
    (:func:`rxrepurchase.refill.fills_table`), followed by
    :func:`rxrepurchase.refill.fill_intervals` (``interval_days``, ``supply_ratio``).

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
    """
    line_cols = set(TABLES["order_lines"].column_names) - {"order_id"}
    if group_by not in line_cols:
        raise EngineError(
            f"group_by must be an order_lines column ({', '.join(sorted(line_cols))}), got "
            f"{group_by!r}; map SKUs to groups with rxrepurchase.refill.refill_fills instead"
        )
    src, owned = _open(data, as_of)
    try:
        lines = src.table("order_lines")
        fills = refill.fills_table(
            lines.mutate(product=lines[group_by].cast("string")), src.table("orders"),
            src.table("members") if with_members else None, group_by=group_by,
            chronic_only=chronic_only,
        )
    finally:
        if owned:
            src.close()
    return refill.fill_intervals(fills)
