"""Load a chain's export folder into validated, typed tables.

``load_chain(folder)`` reads one file per table of the contract (:mod:`rxrepurchase.contract`):
``stores``, ``members``, ``orders``, ``order_lines`` and, optionally, ``campaigns``, each as
``<table>.csv`` (``.csv.gz``) or ``<table>.parquet``. Real exports are supported through an
encoding option (GBK is common) and a mapping of file names and headers; common Chinese headers
(会员编号, 门店编码, 下单时间, 实付金额, 优惠金额, ...) are recognised without one.

Validation explains itself and drops nothing silently:

- A problem with a whole file (missing file or required column, undecodable text, two files for
  one table) raises :class:`~rxrepurchase.errors.DataContractError` naming the file and column.
- A problem with rows either excludes them (the row cannot be used: unparseable, ambiguous
  (day/month first) or out-of-range timestamp, ``inf``/``NaN`` amount, negative paid amount,
  discount larger than gross, duplicate key, unknown store or member, order line of an unknown
  or excluded order, timestamp after the analysis date) or keeps them with a warning (paid
  differs from gross − discount beyond the tolerance, order lines that do not add up to the
  order, implausibly large amount or old date, unknown tier, ...). Every such issue is
  counted, with example rows and their file lines, in :class:`DataQualityReport`, which the
  reports show; order-line issues count for their order's store. With ``strict=True`` any
  excluded row raises instead.

The loader reads the files with pandas and pyarrow (:mod:`rxrepurchase.exports`: files,
encodings, headers, time zone) and types their cells by the one rule every reader uses
(:mod:`rxrepurchase.core.cells`: whitespace stripped, the number grammar, flags, ISO 8601
timestamps value by value with UTC offsets converted to the chain's ``time_zone``, other
layouts only with a configured format), run in DuckDB on the frame read. The rules themselves
are data in :mod:`rxrepurchase.core.rules`, evaluated on the frames read, as the DuckDB engine
evaluates them on the files.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from rxrepurchase.contract import TABLES, Table
from rxrepurchase.core import backend
from rxrepurchase.core.campaigns import derived_campaigns
from rxrepurchase.core.cells import type_frame
from rxrepurchase.core.rules import (
    MAX_AMOUNT,
    MIN_YEAR,
    RULES,
    Context,
    Evaluator,
    Step,
    check_tables,
)
from rxrepurchase.errors import DataContractError
from rxrepurchase.exports import (
    DEFAULT_TIME_ZONE,
    check_time_zone,
    find_file,
    map_headers,
    parse_timestamps,
    read_mapping,
    record_lines,
)

__all__ = [
    "Chain",
    "DataQualityReport",
    "QualityIssue",
    "check_time_zone",
    "control_redemptions",
    "isin",
    "load_chain",
    "parse_timestamps",
    "read_mapping",
]

Action = Literal["excluded", "kept"]
_EXAMPLES = 5


@dataclass
class QualityIssue:
    """One validation finding: a rule broken by some rows of one table.

    Attributes
    ----------
    table, file, column : str
        Where: the contract table, the file it came from, and the column concerned.
    rule : str
        Machine-readable rule code, e.g. ``negative_paid_amount``.
    action : {"excluded", "kept"}
        ``excluded``: the rows were left out of the analysis. ``kept``: a warning only.
    rows : int
        Number of rows concerned.
    message : str
        Human-readable explanation, with example row locations and values.
    by_store : dict
        Rows concerned per store (orders and order lines), for per-store reports.
    """

    table: str
    file: str
    column: str
    rule: str
    action: Action
    rows: int
    message: str
    by_store: dict[str, int] = field(default_factory=dict)


@dataclass
class DataQualityReport:
    """What the loader read, loaded, excluded and warned about."""

    issues: list[QualityIssue] = field(default_factory=list)
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    renamed_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    ordered_range: tuple[pd.Timestamp, pd.Timestamp] | None = None
    """First and last readable order time in the orders file, before any row rule."""

    def summary(self, store_id: str | None = None) -> pd.DataFrame:
        """One row per issue: table, file, rule, column, action, rows, message.

        With ``store_id``, only the rows of that store are counted (issues that concern no
        store's rows, such as a bad member row, are left out).
        """
        records = []
        for i in self.issues:
            rows = i.rows if store_id is None else i.by_store.get(store_id, 0)
            if rows:
                records.append(
                    {
                        "table": i.table,
                        "file": i.file,
                        "rule": i.rule,
                        "column": i.column,
                        "action": i.action,
                        "rows": rows,
                        "message": i.message,
                    }
                )
        columns = ["table", "file", "rule", "column", "action", "rows", "message"]
        return pd.DataFrame(records, columns=columns)

    def excluded(self, table: str | None = None) -> int:
        """Number of rows excluded, in one table or in all."""
        return sum(
            i.rows for i in self.issues if i.action == "excluded" and table in (None, i.table)
        )

    @property
    def ok(self) -> bool:
        """True when nothing was excluded or warned about."""
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``metrics.json`` and run summaries)."""
        return {
            "rows_read": dict(self.rows_read),
            "rows_loaded": dict(self.rows_loaded),
            "rows_excluded": self.excluded(),
            "issues": self.summary().to_dict(orient="records"),
        }

    def __str__(self) -> str:
        lines = [
            f"{t}: {self.rows_read.get(t, 0):,} rows read, {self.rows_loaded.get(t, 0):,} loaded"
            for t in self.rows_read
        ]
        if not self.issues:
            lines.append("no data-quality issues")
        for i in self.issues:
            lines.append(f"[{i.action}] {i.message}")
        return "\n".join(lines)


@dataclass
class Chain:
    """A chain's validated tables.

    Attributes
    ----------
    stores, members, orders, order_lines, campaigns : pandas.DataFrame
        The contract's tables with proper dtypes. ``campaigns`` is derived from
        ``orders.campaign_id`` (first and last order date) when the export has none.
    campaign_members : pandas.DataFrame or None
        The campaigns' send lists (treatment and control groups), None when the export has
        none.
    as_of : pandas.Timestamp
        Analysis date (midnight); orders up to the end of this day are loaded.
    quality : DataQualityReport
        Everything that was excluded or warned about while loading.
    source : pathlib.Path or None
        The folder the tables came from.
    """

    stores: pd.DataFrame
    members: pd.DataFrame
    orders: pd.DataFrame
    order_lines: pd.DataFrame
    campaigns: pd.DataFrame
    as_of: pd.Timestamp
    quality: DataQualityReport
    source: Path | None = None
    campaign_members: pd.DataFrame | None = None

    @property
    def member_orders(self) -> pd.DataFrame:
        """Orders placed by members (walk-in orders left out)."""
        return self.orders[self.orders["member_id"].notna()]

    @property
    def store_ids(self) -> list[str]:
        return self.stores["store_id"].tolist()

    def for_store(self, store_id: str) -> Chain:
        """The slice of the chain one store's report needs.

        Orders placed at the store and their lines; members who ordered there or belong to
        it; the campaigns seen in those orders. The quality report stays chain-wide (use
        ``quality.summary(store_id)`` for the store's own rows).
        """
        if store_id not in set(self.store_ids):
            raise DataContractError(
                f"unknown store {store_id!r}; the stores table has "
                f"{', '.join(self.store_ids[:20])}"
            )
        orders = self.orders[self.orders["store_id"] == store_id]
        lines = self.order_lines[isin(self.order_lines["order_id"], orders["order_id"])]
        member_ids = pd.concat(
            [orders["member_id"], self.members.loc[self.members["home_store_id"] == store_id, "member_id"]]
        )
        sends = self.campaign_members
        if sends is not None:
            sends = sends[isin(sends["member_id"], member_ids)]
        return replace(
            self,
            campaign_members=sends,
            stores=self.stores[self.stores["store_id"] == store_id],
            members=self.members[isin(self.members["member_id"], member_ids)],
            orders=orders,
            order_lines=lines,
            campaigns=self.campaigns[isin(self.campaigns["campaign_id"], orders["campaign_id"])],
        )

    def nothing_to_analyse(self) -> str | None:
        """Why no analysis can run on this chain (no member orders left), or None if one can."""
        if len(self.member_orders):
            return None
        read = self.quality.rows_read.get("orders", 0)
        what = "no orders" if self.orders.empty else "no member orders (walk-in customers only)"
        reason = (f"{what} left to analyse: {read:,} orders read, "
                  f"{self.quality.excluded('orders'):,} excluded (see the data-quality report)")
        span = self.quality.ordered_range
        if span is not None and span[0] >= self.as_of + pd.Timedelta(days=1):
            reason += (f"; the analysis date {self.as_of.date()} is before the first order "
                       f"({span[0].date()}, last {span[1].date()}): choose a later analysis date")
        return reason

    def describe(self) -> str:
        """A short text summary: table sizes, date range, walk-in share and data quality."""
        o = self.orders
        walk_in = o["member_id"].isna().mean() if len(o) else float("nan")
        first, last = (o["ordered_at"].min(), o["ordered_at"].max()) if len(o) else (None, None)
        lines = [
            f"chain: {self.source}" if self.source else "chain",
            f"as of: {self.as_of.date()}",
            f"stores: {len(self.stores):,}   members: {len(self.members):,}   "
            f"orders: {len(o):,}   order lines: {len(self.order_lines):,}   "
            f"campaigns: {len(self.campaigns):,}",
            f"orders from {first} to {last}; walk-in share {walk_in:.1%}",
            "data quality:",
            "  " + str(self.quality).replace("\n", "\n  "),
        ]
        return "\n".join(lines)


def load_chain(
    path: str | Path,
    *,
    as_of: str | pd.Timestamp | None = None,
    encoding: str | None = None,
    mapping: str | Path | Mapping[str, Any] | None = None,
    strict: bool = False,
    amount_tolerance: float = 0.01,
    time_zone: str | None = DEFAULT_TIME_ZONE,
    timestamp_format: str | None = None,
    date_format: str | None = None,
    max_amount: float | None = MAX_AMOUNT,
    min_year: int | None = MIN_YEAR,
) -> Chain:
    """Read and validate a chain's export folder.

    Parameters
    ----------
    path : str or Path
        Folder holding one file per table (``orders.csv``, ``orders.parquet``, ...).
    as_of : date-like, optional
        Analysis date; orders after the end of this day are excluded as future rows.
        Default: today.
    encoding : str, optional
        Encoding of the CSV files, e.g. ``"gbk"``. Default: the mapping's, else UTF-8
        (a UTF-8 byte-order mark is accepted).
    mapping : path or dict, optional
        File-name and header mapping, see :func:`read_mapping`.
    strict : bool
        Raise :class:`DataContractError` instead of excluding bad rows.
    amount_tolerance : float
        CNY tolerance for ``paid = gross - discount`` and similar money checks.
    time_zone : str
        The chain's IANA time zone. Timestamps with a UTC offset (``Z``, ``+08:00``) are
        converted to it; timestamps without one are taken as already in it.
    timestamp_format, date_format : str, optional
        ``strptime`` layout of the timestamps (dates) that are not ISO 8601, e.g.
        ``"%d/%m/%Y %H:%M:%S"``; default: the mapping's. Without one, day-and-month-first
        values such as ``01/10/2025`` are excluded as ambiguous.
    max_amount : float or None
        Plausibility limit of an order's (or line's) amount, default 1,000,000 CNY; larger
        amounts are kept and flagged (``implausible_amount``). None: no limit.
    min_year : int or None
        Orders before 1 January of this year (default 2000), or before the first store's
        ``opened_on`` if later, are kept and flagged (``implausibly_old``). None: only the
        opening date counts.

    Returns
    -------
    Chain
        The validated tables and their :class:`DataQualityReport`.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataContractError(f"data folder {folder} does not exist or is not a folder")
    spec = read_mapping(mapping)
    spec.update({k: v for k, v in (("timestamp_format", timestamp_format),
                                   ("date_format", date_format)) if v})
    encoding = encoding or spec.get("encoding") or "utf-8-sig"
    as_of_day = (pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.today()).normalize()
    loader = _Loader(folder, spec, encoding, as_of_day, amount_tolerance, time_zone=time_zone,
                     max_amount=max_amount, min_year=min_year)
    chain = loader.run()
    if strict:
        excluded = [i for i in chain.quality.issues if i.action == "excluded"]
        if excluded:
            raise DataContractError(
                "rows break the data contract (strict mode):\n"
                + "\n".join(f"- {i.message}" for i in excluded)
            )
    for issue in chain.quality.issues:
        if issue.action == "excluded":
            warnings.warn(issue.message, stacklevel=2)
    return chain


class _Loader:
    """One load: reads each table, then checks rows within and across tables."""

    def __init__(self, folder, spec, encoding, as_of, tolerance, *, time_zone=DEFAULT_TIME_ZONE,
                 max_amount=MAX_AMOUNT, min_year=MIN_YEAR):
        self.folder = folder
        self.spec = spec
        self.encoding = encoding
        self.as_of = as_of
        self.time_zone = check_time_zone(time_zone)
        self.formats = {k: spec[f"{k}_format"] for k in ("timestamp", "date") if spec.get(f"{k}_format")}
        self.ctx = Context(as_of, tolerance, max_amount, min_year)
        self.evaluator = Evaluator(self.ctx)
        self._registered: list = []  # Ibis tables of the frames being checked
        self.frames: dict[str, pd.DataFrame] = {}  # each table's rows kept so far
        self.order_store: pd.Series | None = None  # order id -> store, for order-line issues
        self.report = DataQualityReport()
        self.files: dict[str, Path] = {}
        self._lines: dict[Path, np.ndarray | None] = {}

    # -- files -------------------------------------------------------------------------
    def _read(self, table: Table, file: Path) -> pd.DataFrame:
        try:
            if file.suffix == ".parquet":
                df = pd.read_parquet(file)
            else:
                # Arrow's CSV reader is several times faster than pandas' C parser; it skips
                # a UTF-8 byte-order mark by itself. Cells are stripped in _coerce.
                encoding = "utf-8" if self.encoding.lower() == "utf-8-sig" else self.encoding
                df = pd.read_csv(
                    file,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                    encoding=encoding,
                    engine="pyarrow",
                )
        except pd.errors.ParserError as exc:
            if "invalid UTF8" not in str(exc):
                raise DataContractError(f"{file}: cannot be read: {exc}") from exc
            raise DataContractError(
                f"{file}: cannot be read as {self.encoding} text ({exc}); "
                "pass encoding='gbk' (or the export's encoding)"
            ) from exc
        except UnicodeDecodeError as exc:
            raise DataContractError(
                f"{file}: cannot be read as {self.encoding} text ({exc.reason} at byte "
                f"{exc.start}); pass encoding='gbk' (or the export's encoding)"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DataContractError(f"{file}: cannot be read: {exc}") from exc
        df.columns = [str(c).strip() for c in df.columns]
        return self._rename(table, file, df)

    def _rename(self, table: Table, file: Path, df: pd.DataFrame) -> pd.DataFrame:
        df.columns, renames = map_headers(table, file, list(df.columns), self.spec)
        if renames:
            self.report.renamed_columns[table.name] = renames
        for c in table.columns:
            if c.name not in df.columns:
                df[c.name] = pd.NA
        return df

    # -- issues ------------------------------------------------------------------------
    def _where(self, file: Path, positions: np.ndarray) -> str:
        # CSV rows are reported as file lines (header = line 1), Parquet rows from 1.
        if file.suffix == ".parquet":
            return "rows " + ", ".join(str(p + 1) for p in positions[:_EXAMPLES])
        if file not in self._lines:
            self._lines[file] = record_lines(
                file, self.report.rows_read.get(self._table_of(file), -1), self.encoding)
        starts = self._lines[file]
        shown = positions[:_EXAMPLES]
        lines = shown + 2 if starts is None else starts[shown]
        return "lines " + ", ".join(str(n) for n in lines)

    def _table_of(self, file: Path) -> str:
        return next(t for t, f in self.files.items() if f == file)

    def _issue(
        self,
        table: str,
        df: pd.DataFrame,
        mask: pd.Series,
        column: str,
        rule: str,
        action: Action,
        what: str,
        show: list[str] | None = None,
    ) -> None:
        n = int(mask.sum())
        if not n:
            return
        file = self.files[table]
        bad = df[mask]
        key = TABLES[table].key or "order_id"
        show = show or [column]
        cols = [c for c in dict.fromkeys([key, *show]) if c in bad.columns]
        example = "; ".join(
            ", ".join(f"{c}={bad.iloc[i][c]!s}" for c in cols) for i in range(min(n, 3))
        )
        more = " ..." if n > _EXAMPLES else ""
        verb = "excluded" if action == "excluded" else "kept"
        message = (
            f"{file.name}: column '{column}': {n:,} row(s) {what} ({verb}); "
            f"{self._where(file, bad['_pos'].to_numpy())}{more}; e.g. {example}"
        )
        by_store: dict[str, int] = {}
        if "store_id" in bad.columns:
            by_store = bad["store_id"].value_counts().astype(int).to_dict()
        elif table == "order_lines" and self.order_store is not None:
            # A line belongs to its order's store, whether or not the order was kept.
            by_store = bad["order_id"].map(self.order_store).value_counts().astype(int).to_dict()
        self.report.issues.append(
            QualityIssue(table, file.name, column, rule, action, n, message, by_store)
        )

    # -- types -------------------------------------------------------------------------
    def _coerce(self, table: Table, df: pd.DataFrame) -> None:
        """Give the contract columns their types by the one typing rule
        (:func:`rxrepurchase.core.cells.type_frame`). A value that cannot be read is left
        empty, and why goes into ``_problem_<column>`` for the type rules
        (:mod:`rxrepurchase.core.rules`)."""
        typed = type_frame(df, list(table.columns), time_zone=self.time_zone,
                           formats=self.formats)
        for name in typed.columns:
            df[name] = typed[name]

    # -- rules -------------------------------------------------------------------------
    def _register(self, name: str, df: pd.DataFrame):
        """``df``'s contract columns, positions and problem codes as an Ibis table (released
        when the load ends)."""
        cols = [c for c in df.columns if c in TABLES[name].column_names or c.startswith("_")]
        self._registered.append(backend.table(df[cols]))
        return self._registered[-1]

    def _apply(self, table: str, df: pd.DataFrame, step: Step) -> pd.DataFrame:
        """Report the step's findings on ``df`` (rows in file order) and return the rows it
        keeps, with blanked values blanked."""
        drop = np.zeros(len(df), dtype=bool)
        pos = df["_pos"].to_numpy()
        for i, found in step.positions().items():
            rule = step.rules[i]
            mask = np.isin(pos, found.to_numpy(), assume_unique=True)
            if not mask.any():
                continue
            what = rule.what(self.ctx)
            self._issue(table, df, pd.Series(mask, index=df.index), rule.column, rule.rule,
                        rule.action, what, list(rule.show) or None)
            if rule.action == "excluded":
                drop |= mask
            elif rule.blank:
                df.loc[mask, rule.column] = pd.NA
        return df[~drop]

    def _found(self, name: str, stage: str, step: Step):
        """Report a validation step's findings (:func:`rxrepurchase.core.rules.check_tables`)
        and drop the rows it excludes; the kept frame is registered anew once its keys are
        checked and whenever rows go."""
        before = len(self.frames[name])
        df = self.frames[name] = self._apply(name, self.frames[name], step)
        if stage == "rows":
            if name == "stores":  # the first opening bounds plausible order dates
                opened = df["opened_on"].min()
                self.ctx.first_opened = None if pd.isna(opened) else opened
            return None  # the keys are looked for on the lazy kept rows
        if stage == "keys" or len(df) < before:
            return self._register(name, df)
        return self.ctx.kept[name]

    def _derived(self, orders):
        """The campaigns implied by the kept orders (:func:`core.campaigns.derived_campaigns`,
        as every reader derives them), ids and names as text like a read table's."""
        campaigns = backend.to_pandas(derived_campaigns(orders))
        self.frames["campaigns"] = campaigns.astype(
            {"campaign_id": "string", "name": "string", "kind": "string"})
        return self._register("campaigns", self.frames["campaigns"])

    # -- the load ------------------------------------------------------------------------
    def run(self) -> Chain:
        try:
            return self._run()
        finally:
            for tab in self._registered:
                backend.release(tab)

    def _run(self) -> Chain:
        read = {}
        self.ctx.campaigns_file = find_file(self.folder, TABLES["campaigns"], self.spec) is not None
        for name, table in TABLES.items():
            file = find_file(self.folder, table, self.spec)
            if file is None:
                continue
            self.files[name] = file
            df = self._read(table, file)
            if df.empty and name in ("stores", "orders"):
                raise DataContractError(
                    f"{file}: table '{name}' has a header but no rows; nothing can be analysed "
                    "without them (check the export's date range and filters)"
                )
            df["_pos"] = np.arange(len(df))
            self.report.rows_read[name] = len(df)
            self._coerce(table, df)
            if name == "orders":
                # A line belongs to its order's store, whether or not the order was kept.
                self.order_store = (df.dropna(subset=["order_id"]).drop_duplicates("order_id")
                                    .set_index("order_id")["store_id"])
                parsed = df["ordered_at"].dropna()
                if len(parsed):
                    self.report.ordered_range = (parsed.min(), parsed.max())
            self.frames[name] = df
            read[name] = self._register(name, df)
        check_tables(self.evaluator, read, on_step=self._found, derive_campaigns=self._derived)
        frames = self.frames

        out = {}
        for name, df in frames.items():
            cols = TABLES[name].column_names
            extra = [c for c in df.columns if c not in cols and not c.startswith("_")]
            out[name] = df[cols + extra].reset_index(drop=True)
            for c in TABLES[name].columns:
                if c.kind == "flag" and not c.nullable:  # rows with an empty flag are gone
                    out[name][c.name] = out[name][c.name].astype(bool)
            if name in self.report.rows_read:
                self.report.rows_loaded[name] = len(df)
        sends = out.pop("campaign_members", None)
        return Chain(**out, as_of=self.as_of, quality=self.report, source=self.folder,
                     campaign_members=sends)


def control_redemptions(sends: pd.DataFrame, orders: pd.DataFrame) -> pd.Series:
    """Which control-group rows of a send list redeemed the campaign's coupon (contamination).

    A control member redeemed it when one of their orders on or after ``sent_at`` carries the
    campaign's ``campaign_id`` and a ``coupon_id``: the coupon reached them although they
    were held out (a shared code, a cashier's coupon). This is the rule
    ``control_redeemed_coupon`` of :mod:`rxrepurchase.core.rules`, run on the two frames.

    Returns
    -------
    Series of bool
        Aligned on ``sends``.
    """
    rule = next(r for r in RULES if r.rule == "control_redeemed_coupon")
    pair = ["campaign_id", "member_id"]
    frames = (sends[[*pair, "group", "sent_at"]].assign(_pos=np.arange(len(sends))),
              orders[[*pair, "coupon_id", "ordered_at"]])
    with backend.tables(*frames) as (sent, bought):
        ctx = Context(pd.Timestamp.today().normalize(), kept={"orders": bought})
        found = backend.to_pandas(rule.check(sent, ctx).select("_pos"))["_pos"]
    return pd.Series(np.isin(np.arange(len(sends)), found.to_numpy()), index=sends.index)


def isin(values: pd.Series, allowed) -> pd.Series:
    """``values.isin(allowed)`` for id columns, fast on Arrow-backed strings.

    pandas' own ``isin`` on Arrow strings is several times slower than Arrow's hash lookup,
    which matters on tens of millions of order lines. Missing values are never "in".
    """
    try:
        found = pc.is_in(pyarrow.array(values), value_set=pyarrow.array(pd.Series(allowed).dropna()))
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, TypeError):
        return values.isin(allowed)
    return pd.Series(found.fill_null(False).to_numpy(zero_copy_only=False), index=values.index)
