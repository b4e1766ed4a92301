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

Timestamps are parsed value by value (:func:`parse_timestamps`): ISO 8601 in any of its
common forms, UTC offsets converted to the chain's ``time_zone``, other layouts only with a
configured format.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from rxrepurchase.contract import (
    CAMPAIGN_GROUPS,
    SEND_CHANNELS,
    TABLES,
    TIER_ALIASES,
    TIERS,
    Table,
)
from rxrepurchase.errors import DataContractError
from rxrepurchase.exports import (
    DEFAULT_TIME_ZONE,
    FALSE_WORDS,
    SPAN,
    TRUE_WORDS,
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
MAX_AMOUNT = 1_000_000.0
"""Default plausibility limit of one order's (or line's) amount, CNY: far above any pharmacy
sale (the dearest specialty drugs sold over the counter cost a few hundred thousand yuan)."""
MIN_YEAR = 2000
"""Default first plausible year of an order: older orders are flagged (kept)."""
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


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
        self.tol = tolerance
        self.time_zone = check_time_zone(time_zone)
        self.formats = {k: spec[f"{k}_format"] for k in ("timestamp", "date") if spec.get(f"{k}_format")}
        self.max_amount = max_amount
        self.min_year = min_year
        self.first_opened: pd.Timestamp | None = None  # the chain's first store opening
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
    def _coerce(self, table: Table, df: pd.DataFrame) -> pd.Series:
        """Convert columns to their contract types; return the mask of rows to exclude."""
        drop = pd.Series(False, index=df.index)
        for col in table.columns:
            raw = df[col.name]
            present = raw.notna()
            if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype) or raw.dtype == "str":
                stripped = raw.astype("string").str.strip()
                present = stripped.notna() & (stripped != "")
                raw = stripped.where(present)
            if col.kind in ("id", "text"):
                value = raw.astype("string")
                failures = []
            elif col.kind in ("timestamp", "date"):
                value, problem = parse_timestamps(
                    raw, time_zone=self.time_zone, fmt=self.formats.get(col.kind)
                )
                if col.kind == "date":
                    value = value.dt.normalize()
                setting = f"{col.kind}_format"
                codes = problem.fillna("").to_numpy(str)
                failures = [
                    (f"out_of_range_{col.kind}", pd.Series(codes == "out_of_range", index=df.index),
                     f"outside the dates that can be held ({SPAN[0]:%Y-%m-%d} to {SPAN[1]:%Y-%m-%d})"),
                    (f"ambiguous_{col.kind}", pd.Series(codes == "ambiguous", index=df.index),
                     f"written day and month first (e.g. 01/10/2025), which could be either; set "
                     f"{setting} in the mapping (e.g. \"%d/%m/%Y %H:%M:%S\")"),
                    (f"unparseable_{col.kind}", pd.Series(codes == "unparseable", index=df.index),
                     f"with an unparseable {col.kind} (expected ISO 8601 such as "
                     f"2026-03-01 14:05:00, or the mapping's {setting})"),
                ]
            elif col.kind in ("money", "number", "integer"):
                value = _to_number(raw)
                # inf, -inf, NaN and their spellings parse as numbers but are none.
                non_finite = present & value.isna()
                if non_finite.any():  # few cells: only those that did not parse are looked at
                    non_finite[non_finite] = raw[non_finite].astype("string").str.lower().isin(_NON_FINITE)
                non_finite |= present & np.isinf(value)
                value = value.where(~non_finite)
                failed = present & value.isna() & ~non_finite
                if col.kind == "integer":
                    frac = value.notna() & (value != np.floor(value.fillna(0)))
                    failed |= frac
                    value = value.where(~frac).astype("Int64")
                else:
                    value = value.astype("float64")
                failures = [
                    (f"non_finite_{col.kind}", non_finite, "with a non-finite number (inf or NaN)"),
                    (f"unparseable_{col.kind}", failed, "with an unparseable number"),
                ]
            elif col.kind == "flag":
                text = raw.astype("string").str.lower()
                value = text.isin(TRUE_WORDS).astype(bool)
                failed = present & ~text.isin(TRUE_WORDS | FALSE_WORDS).fillna(False).astype(bool)
                if col.nullable:  # empty is unknown, not False (is_prescription)
                    value = value.astype("boolean").where(present & ~failed)
                failures = [(f"unparseable_{col.kind}", failed, "with an unparseable true/false value")]
            else:  # pragma: no cover - the contract only uses the kinds above
                raise AssertionError(col.kind)
            for rule, failed, what in failures:
                if col.nullable:
                    self._issue(table.name, df, failed, col.name, rule, "kept", f"{what} (value blanked)")
                else:  # a row is counted once, under the first column that excludes it
                    self._issue(table.name, df, failed & ~drop, col.name, rule, "excluded", what)
                    drop |= failed
            if not col.nullable:
                empty = ~present & ~drop
                if col.kind == "money" and col.name == "stored_value_amount":
                    value = value.fillna(0.0)  # no stored-value payment
                elif empty.any():
                    self._issue(table.name, df, empty, col.name, "missing_value", "excluded",
                                "with an empty required value")
                    drop |= empty
            df[col.name] = value
        return drop

    # -- row rules (pandera) -------------------------------------------------------------
    def _checks(self, table: str) -> tuple[pa.DataFrameSchema, dict[str, tuple]]:
        """Value rules per table: pandera schema plus, per check name, (column, action, what)."""
        tol = self.tol
        end_of_day = self.as_of + pd.Timedelta(days=1)
        rules: dict[str, tuple[str, Action, str, list[str], Any]] = {}
        if table == "orders":
            rules = {
                "negative_paid_amount": ("paid_amount", "excluded", "with a negative paid amount",
                                         ["paid_amount"], lambda d: d["paid_amount"] >= 0),
                "negative_gross_amount": ("gross_amount", "excluded", "with a negative gross amount",
                                          ["gross_amount"], lambda d: d["gross_amount"] >= 0),
                "negative_discount_amount": ("discount_amount", "excluded", "with a negative discount",
                                             ["discount_amount"], lambda d: d["discount_amount"] >= 0),
                "discount_exceeds_gross": (
                    "discount_amount", "excluded", "with a discount larger than the gross amount",
                    ["gross_amount", "discount_amount"],
                    lambda d: d["discount_amount"] <= d["gross_amount"] + tol,
                ),
                "paid_mismatch": (
                    "paid_amount", "kept",
                    f"where paid_amount differs from gross_amount - discount_amount by more than {tol} CNY",
                    ["gross_amount", "discount_amount", "paid_amount"],
                    lambda d: (d["paid_amount"] - (d["gross_amount"] - d["discount_amount"])).abs() <= tol,
                ),
                "stored_value_exceeds_paid": (
                    "stored_value_amount", "kept", "where the stored-value payment exceeds the paid amount",
                    ["paid_amount", "stored_value_amount"],
                    lambda d: d["stored_value_amount"] <= d["paid_amount"] + tol,
                ),
                "after_as_of": (
                    "ordered_at", "excluded", f"dated after the analysis date {self.as_of.date()}",
                    ["ordered_at"], lambda d: d["ordered_at"] < end_of_day,
                ),
            }
            floor, why = self._plausible_start()
            if floor is not None:
                rules["implausibly_old"] = (
                    "ordered_at", "kept", f"dated before {floor.date()} ({why})",
                    ["ordered_at"], lambda d: d["ordered_at"] >= floor,
                )
            if self.max_amount is not None:
                limit = self.max_amount
                money = ["gross_amount", "discount_amount", "paid_amount", "stored_value_amount"]
                rules["implausible_amount"] = (
                    "paid_amount", "kept", f"with an amount above the plausibility limit of {limit:,.0f}",
                    ["gross_amount", "paid_amount"], lambda d: d[money].max(axis=1) <= limit,
                )
        elif table == "order_lines":
            rules = {
                "negative_quantity": ("quantity", "excluded",
                                      "with a negative quantity (returns or corrections are not analysed)",
                                      ["sku", "quantity"], lambda d: d["quantity"] >= 0),
                "zero_quantity": ("quantity", "excluded",
                                  "with a quantity of zero (no pack sold: coupon, service or other "
                                  "pseudo-item lines)",
                                  ["sku", "quantity"], lambda d: d["quantity"] != 0),
                "negative_line_amount": ("line_amount", "excluded",
                                         "with a negative line amount (discount or coupon lines)",
                                         ["sku", "line_amount"], lambda d: d["line_amount"] >= 0),
                "non_positive_days_supply": (
                    "days_supply", "kept", "with days_supply of zero or less (value blanked)",
                    ["sku", "days_supply"], lambda d: d["days_supply"].isna() | (d["days_supply"] > 0),
                ),
            }
            if self.max_amount is not None:
                limit = self.max_amount
                rules["implausible_amount"] = (
                    "line_amount", "kept", f"with an amount above the plausibility limit of {limit:,.0f}",
                    ["sku", "line_amount"], lambda d: d["line_amount"] <= limit,
                )
        elif table == "members":
            year = self.as_of.year
            rules = {
                "implausible_birth_year": (
                    "birth_year", "kept", f"with a birth year outside 1900-{year} (value blanked)",
                    ["birth_year"],
                    lambda d: d["birth_year"].isna() | d["birth_year"].between(1900, year),
                ),
                "unknown_tier": (
                    "tier", "kept", f"with a tier other than {', '.join(TIERS)}",
                    ["tier"], lambda d: d["tier"].isin(TIERS),
                ),
                "joined_after_as_of": (
                    "joined_on", "kept", f"who joined after the analysis date {self.as_of.date()}",
                    ["joined_on"], lambda d: d["joined_on"] < end_of_day,
                ),
            }
        elif table == "campaign_members":
            rules = {
                "unknown_group": (
                    "group", "excluded", f"with a group other than {' / '.join(CAMPAIGN_GROUPS)}",
                    ["member_id", "group"], lambda d: d["group"].isin(CAMPAIGN_GROUPS),
                ),
                "sent_after_as_of": (
                    "sent_at", "excluded", f"sent after the analysis date {self.as_of.date()}",
                    ["member_id", "sent_at"], lambda d: d["sent_at"] < end_of_day,
                ),
                "unknown_send_channel": (
                    "channel", "kept", f"with a channel other than {', '.join(SEND_CHANNELS)}",
                    ["member_id", "channel"], lambda d: d["channel"].isin(SEND_CHANNELS),
                ),
            }
        elif table == "campaigns":
            rules = {
                "campaign_ends_before_start": (
                    "ends_on", "excluded", "ending before they start",
                    ["starts_on", "ends_on"], lambda d: d["ends_on"] >= d["starts_on"],
                ),
            }
        checks = [
            pa.Check(lambda d, f=fn: f(d).fillna(False).astype(bool), name=name)
            for name, (_, _, _, _, fn) in rules.items()
        ]
        return pa.DataFrameSchema(checks=checks), {k: v[:4] for k, v in rules.items()}

    def _plausible_start(self) -> tuple[pd.Timestamp | None, str]:
        """The earliest plausible order time, and why: the configured year or the opening of
        the chain's first store, whichever is later."""
        year = pd.Timestamp(self.min_year, 1, 1) if self.min_year is not None else None
        opened = self.first_opened
        if opened is not None and (year is None or opened > year):
            return opened, "when the chain's first store opened"
        return year, f"the first plausible year, min_year={self.min_year}"

    def _check_values(self, table: str, df: pd.DataFrame, drop: pd.Series) -> pd.Series:
        """Apply the value rules to rows not yet excluded; return the grown exclusion mask."""
        schema, rules = self._checks(table)
        if not rules:
            return drop
        try:
            schema.validate(df[~drop], lazy=True)
            return drop
        except pa.errors.SchemaErrors as err:
            cases = err.failure_cases
        # Exclusions first, so that a row already excluded draws no further warnings.
        ordered = sorted(rules.items(), key=lambda kv: kv[1][1] != "excluded")
        for name, (column, action, what, show) in ordered:
            idx = cases.loc[cases["check"] == name, "index"].dropna().unique()
            mask = pd.Series(df.index.isin(idx), index=df.index) & ~drop
            if not mask.any():
                continue
            self._issue(table, df, mask, column, name, action, what, show)
            if action == "excluded":
                drop = drop | mask
            elif "value blanked" in what:
                df.loc[mask, column] = pd.NA
        return drop

    def _check_duplicates(self, table: str, df: pd.DataFrame) -> pd.Series:
        key = TABLES[table].key
        if key is None:
            return pd.Series(False, index=df.index)
        dup_key = df.duplicated(key, keep=False)
        if not dup_key.any():
            return dup_key
        cols = TABLES[table].column_names
        exact_copy = df.duplicated(cols, keep="first")
        # A key repeated with different content cannot be resolved: all its rows go.
        n_versions = df[dup_key].drop_duplicates(cols).groupby(key, observed=True).size()
        conflicting = isin(df[key], n_versions[n_versions > 1].index.to_series()) & dup_key
        self._issue(table, df, exact_copy & ~conflicting, key, f"duplicate_{key}", "excluded",
                    f"repeating an earlier row with the same {key} (copy dropped)")
        self._issue(table, df, conflicting, key, f"conflicting_{key}", "excluded",
                    f"sharing a {key} with different content (all versions excluded)")
        return exact_copy | conflicting

    # -- the load ------------------------------------------------------------------------
    def run(self) -> Chain:
        frames: dict[str, pd.DataFrame | None] = {}
        for name, table in TABLES.items():
            file = find_file(self.folder, table, self.spec)
            if file is None:
                frames[name] = None
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
            if name == "members":
                df["tier"] = df["tier"].astype("string").str.strip().replace(TIER_ALIASES)
            drop = self._coerce(table, df)
            if name == "stores":
                opened = df.loc[~drop, "opened_on"].min()
                self.first_opened = None if pd.isna(opened) else opened
            if name == "orders":
                # Lines are checked against every order id in the file, so that a line of an
                # order excluded for its own reason is reported as such, not as unknown.
                all_order_ids = df["order_id"].dropna().unique()
                self.order_store = (df.dropna(subset=["order_id"]).drop_duplicates("order_id")
                                    .set_index("order_id")["store_id"])
                parsed = df.loc[~drop, "ordered_at"]
                if parsed.notna().any():
                    self.report.ordered_range = (parsed.min(), parsed.max())
            drop = self._check_values(name, df, drop)
            drop |= self._check_duplicates(name, df[~drop]).reindex(df.index, fill_value=False)
            frames[name] = df[~drop]

        stores, members, orders, lines = (frames[t] for t in ("stores", "members", "orders", "order_lines"))
        self._issue("members", members, ~isin(members["home_store_id"], stores["store_id"]),
                    "home_store_id", "unknown_home_store", "kept", "belonging to a store not in the stores table")

        unknown_store = ~isin(orders["store_id"], stores["store_id"])
        self._issue("orders", orders, unknown_store, "store_id", "unknown_store", "excluded",
                    "referencing a store not in the stores table")
        unknown_member = orders["member_id"].notna() & ~isin(orders["member_id"], members["member_id"])
        self._issue("orders", orders, unknown_member & ~unknown_store, "member_id", "unknown_member",
                    "excluded", "referencing a member not in the members table")
        orders = orders[~(unknown_store | unknown_member)]

        kept = isin(lines["order_id"], orders["order_id"])
        known = isin(lines["order_id"], all_order_ids)
        self._issue("order_lines", lines, ~known, "order_id", "unknown_order", "excluded",
                    "referencing an order not in the orders file")
        self._issue("order_lines", lines, known & ~kept, "order_id", "line_of_excluded_order",
                    "excluded", "belonging to an order that was excluded")
        lines = lines[kept]
        line_sum = lines.groupby("order_id", observed=True)["line_amount"].sum()
        has_lines = isin(orders["order_id"], line_sum.index.to_series())
        diff = (orders["order_id"].map(line_sum).astype("float64") - orders["paid_amount"]).abs()
        self._issue("orders", orders, has_lines & (diff > self.tol * 10), "paid_amount",
                    "lines_do_not_sum_to_paid", "kept",
                    "whose order lines do not add up to paid_amount", ["paid_amount"])
        self._issue("orders", orders, ~has_lines, "order_id", "order_without_lines", "kept",
                    "with no order lines (product analyses leave them out)")

        campaigns = frames["campaigns"]
        if campaigns is None:
            campaigns = _derive_campaigns(orders)
        else:
            in_orders = orders["campaign_id"].notna()
            self._issue("orders", orders, in_orders & ~isin(orders["campaign_id"], campaigns["campaign_id"]),
                        "campaign_id", "unknown_campaign", "kept",
                        "referencing a campaign not in the campaigns table")
        sends = frames["campaign_members"]
        if sends is not None:
            sends = self._check_campaign_members(sends, campaigns, members, orders)
            self.report.rows_loaded["campaign_members"] = len(sends)
            extra = [c for c in sends.columns if c not in TABLES["campaign_members"].column_names
                     and not c.startswith("_")]
            sends = sends[TABLES["campaign_members"].column_names + extra].reset_index(drop=True)

        out = {}
        for name, df in (("stores", stores), ("members", members), ("orders", orders),
                         ("order_lines", lines), ("campaigns", campaigns)):
            cols = TABLES[name].column_names
            extra = [c for c in df.columns if c not in cols and not c.startswith("_")]
            out[name] = df[cols + extra].reset_index(drop=True)
            if name in self.report.rows_read:
                self.report.rows_loaded[name] = len(df)
        return Chain(**out, as_of=self.as_of, quality=self.report, source=self.folder,
                     campaign_members=sends)

    def _check_campaign_members(self, sends: pd.DataFrame, campaigns: pd.DataFrame,
                                members: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
        """Send-list rules across tables: duplicates, unknown references, contamination."""
        table, pair = "campaign_members", ["campaign_id", "member_id"]
        cols = TABLES[table].column_names
        dup = sends.duplicated(pair, keep=False)
        copy = sends.duplicated(cols, keep="first")
        # A member listed twice in one campaign with different content (e.g. in both groups)
        # cannot be placed in either group: all their rows go.
        versions = sends[dup].drop_duplicates(cols).groupby(pair, observed=True).size()
        conflicting = dup & pd.MultiIndex.from_frame(sends[pair]).isin(versions[versions > 1].index)
        self._issue(table, sends, copy & ~conflicting, "member_id", "duplicate_send", "excluded",
                    "repeating an earlier row of the same campaign and member (copy dropped)", pair)
        self._issue(table, sends, conflicting, "member_id", "conflicting_send", "excluded",
                    "listing a member twice in one campaign with different group, time or "
                    "channel (all versions excluded)", [*pair, "group"])
        sends = sends[~(copy | conflicting)]
        unknown_campaign = ~isin(sends["campaign_id"], campaigns["campaign_id"])
        self._issue(table, sends, unknown_campaign, "campaign_id", "unknown_campaign", "excluded",
                    "referencing a campaign not in the campaigns table (or in no order)", pair)
        unknown_member = ~isin(sends["member_id"], members["member_id"]) & ~unknown_campaign
        self._issue(table, sends, unknown_member, "member_id", "unknown_member", "excluded",
                    "referencing a member not in the members table", pair)
        sends = sends[~(unknown_campaign | unknown_member)]
        ends = sends["campaign_id"].map(campaigns.set_index("campaign_id")["ends_on"])
        late = sends["sent_at"].dt.normalize() > ends
        self._issue(table, sends, late.fillna(False).astype(bool), "sent_at",
                    "sent_after_campaign_end", "kept", "sent after the campaign's last day",
                    [*pair, "sent_at"])
        self._issue(table, sends, control_redemptions(sends, orders), "group",
                    "control_redeemed_coupon", "kept",
                    "in the control group who nevertheless redeemed the campaign's coupon "
                    "(contamination: the measured effect is diluted)", [*pair, "group"])
        return sends

def control_redemptions(sends: pd.DataFrame, orders: pd.DataFrame) -> pd.Series:
    """Which control-group rows of a send list redeemed the campaign's coupon (contamination).

    A control member redeemed it when one of their orders on or after ``sent_at`` carries the
    campaign's ``campaign_id`` and a ``coupon_id``: the coupon reached them although they
    were held out (a shared code, a cashier's coupon).

    Returns
    -------
    Series of bool
        Aligned on ``sends``.
    """
    coupon = orders[orders["coupon_id"].notna() & orders["campaign_id"].notna()]
    last = (coupon.groupby(["campaign_id", "member_id"], observed=True)["ordered_at"].max()
             .rename("_last_redeemed"))
    found = sends[["campaign_id", "member_id"]].merge(
        last.reset_index(), on=["campaign_id", "member_id"], how="left"
    )["_last_redeemed"].to_numpy()
    redeemed = pd.Series(found, index=sends.index) >= sends["sent_at"]
    return (sends["group"] == "control") & redeemed.fillna(False).astype(bool)


def _to_number(raw: pd.Series) -> pd.Series:
    """Parse numbers; unparseable cells become NaN (and are reported by the caller)."""
    if raw.dtype.kind in "biuf":
        return raw.astype("float64")
    try:  # Arrow's cast is much faster than pd.to_numeric and fails as a whole on a bad cell
        parsed = pc.cast(pyarrow.array(raw, from_pandas=True), pyarrow.float64())
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(raw, errors="coerce").astype("float64")
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=raw.index, dtype="float64")


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


def _derive_campaigns(orders: pd.DataFrame) -> pd.DataFrame:
    """Campaigns seen in orders, spanning their first to last order day."""
    with_campaign = orders[orders["campaign_id"].notna()]
    days = with_campaign["ordered_at"].dt.normalize()
    g = days.groupby(with_campaign["campaign_id"], observed=True)
    df = pd.DataFrame({"starts_on": g.min(), "ends_on": g.max()}).reset_index()
    df["name"] = df["campaign_id"]
    df["kind"] = pd.Series(pd.NA, index=df.index, dtype="string")
    df["campaign_id"] = df["campaign_id"].astype("string")
    df["name"] = df["name"].astype("string")
    return df[TABLES["campaigns"].column_names]
