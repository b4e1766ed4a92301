"""Load a chain's export folder into validated, typed tables.

``load_chain(folder)`` reads one file per table of the contract (:mod:`rxrepurchase.contract`):
``stores``, ``members``, ``orders``, ``order_lines`` and, optionally, ``campaigns``, each as
``<table>.csv`` (``.csv.gz``) or ``<table>.parquet``. Real exports are supported through an
encoding option (GBK is common) and a mapping of file names and headers; common Chinese headers
(会员编号, 门店编码, 下单时间, 实付金额, 优惠金额, ...) are recognised without one.

Validation explains itself and drops nothing silently:

- A problem with a whole file (missing file or required column, undecodable text, two files for
  one table) raises :class:`~rxrepurchase.errors.DataContractError` naming the file and column.
- A problem with rows either excludes them (the row cannot be used: unparseable timestamp,
  negative paid amount, discount larger than gross, duplicate key, unknown store or member,
  order line of an unknown or excluded order, timestamp after the analysis date) or keeps them
  with a warning (paid differs from gross − discount beyond the tolerance, order lines that do
  not add up to the order, unknown tier, ...). Every such issue is counted, with example rows,
  in :class:`DataQualityReport`, which the reports show. With ``strict=True`` any excluded row
  raises instead.
"""

from __future__ import annotations

import tomllib
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
    HEADER_ALIASES_ZH,
    SEND_CHANNELS,
    TABLES,
    TIER_ALIASES,
    TIERS,
    Table,
)
from rxrepurchase.errors import DataContractError

__all__ = [
    "Chain",
    "DataQualityReport",
    "QualityIssue",
    "control_redemptions",
    "isin",
    "load_chain",
    "read_mapping",
]

Action = Literal["excluded", "kept"]
_EXAMPLES = 5
_TRUE = {"true", "1", "yes", "y", "t", "是", "y是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}


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


def read_mapping(mapping: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read a mapping of file names, headers and encoding for a chain's real export.

    The TOML form::

        encoding = "gbk"                 # CSV encoding of every file
        [files]                          # table -> file name in the folder
        orders = "销售订单.csv"
        [columns.orders]                 # header in the file -> contract column
        "会员卡号" = "member_id"
        "交易时间" = "ordered_at"

    A dict of the same shape is accepted too.
    """
    if mapping is None:
        return {}
    if isinstance(mapping, Mapping):
        data = dict(mapping)
        source = "mapping"
    else:
        source = str(mapping)
        try:
            data = tomllib.loads(Path(mapping).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataContractError(f"mapping file {source} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise DataContractError(f"mapping file {source} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"encoding", "files", "columns"}
    if unknown:
        raise DataContractError(
            f"{source}: unknown key(s) {sorted(unknown)}; expected encoding, files, columns"
        )
    for key in ("files", "columns"):
        bad = set(data.get(key, {})) - set(TABLES)
        if bad:
            raise DataContractError(
                f"{source}: [{key}] names unknown table(s) {sorted(bad)}; "
                f"tables are {', '.join(TABLES)}"
            )
    for table, cols in data.get("columns", {}).items():
        bad = set(cols.values()) - set(TABLES[table].column_names)
        if bad:
            raise DataContractError(
                f"{source}: [columns.{table}] maps to unknown column(s) {sorted(bad)}; "
                f"{table} has {', '.join(TABLES[table].column_names)}"
            )
    return data


def load_chain(
    path: str | Path,
    *,
    as_of: str | pd.Timestamp | None = None,
    encoding: str | None = None,
    mapping: str | Path | Mapping[str, Any] | None = None,
    strict: bool = False,
    amount_tolerance: float = 0.01,
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

    Returns
    -------
    Chain
        The validated tables and their :class:`DataQualityReport`.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataContractError(f"data folder {folder} does not exist or is not a folder")
    spec = read_mapping(mapping)
    encoding = encoding or spec.get("encoding") or "utf-8-sig"
    as_of_day = (pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.today()).normalize()
    loader = _Loader(folder, spec, encoding, as_of_day, amount_tolerance)
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

    def __init__(self, folder, spec, encoding, as_of, tolerance):
        self.folder = folder
        self.spec = spec
        self.encoding = encoding
        self.as_of = as_of
        self.tol = tolerance
        self.report = DataQualityReport()
        self.files: dict[str, Path] = {}

    # -- files -------------------------------------------------------------------------
    def _find_file(self, table: Table) -> Path | None:
        named = self.spec.get("files", {}).get(table.name)
        if named:
            p = self.folder / named
            if not p.exists():
                raise DataContractError(
                    f"{p}: file for table '{table.name}' named in the mapping does not exist"
                )
            return p
        found = [
            self.folder / f"{table.name}{ext}"
            for ext in (".csv", ".csv.gz", ".parquet")
            if (self.folder / f"{table.name}{ext}").exists()
        ]
        if len(found) > 1:
            raise DataContractError(
                f"{self.folder}: table '{table.name}' has more than one file "
                f"({', '.join(p.name for p in found)}); keep one"
            )
        if not found and table.required:
            raise DataContractError(
                f"{self.folder}: no file for table '{table.name}' "
                f"(expected {table.name}.csv or {table.name}.parquet)"
            )
        return found[0] if found else None

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
        aliases = {**HEADER_ALIASES_ZH.get(table.name, {}), **self.spec.get("columns", {}).get(table.name, {})}
        renames = {c: aliases[c] for c in df.columns if c in aliases and aliases[c] != c}
        target = [renames.get(c, c) for c in df.columns]
        dupes = sorted({t for t in target if target.count(t) > 1})
        if dupes:
            raise DataContractError(
                f"{file}: more than one column maps to {dupes}; fix the export or the mapping"
            )
        if renames:
            self.report.renamed_columns[table.name] = renames
        df.columns = target
        missing = [c for c in table.required_columns if c not in df.columns]
        if missing:
            raise DataContractError(
                f"{file}: missing required column(s) {missing} for table '{table.name}'; "
                f"found {list(df.columns)}. Map the export's headers with a mapping file "
                f"(see docs/data-contract.md)."
            )
        for c in table.columns:
            if c.name not in df.columns:
                df[c.name] = pd.NA
        return df

    # -- issues ------------------------------------------------------------------------
    def _where(self, file: Path, positions: np.ndarray) -> str:
        # CSV rows are reported as file lines (header = line 1), Parquet rows from 1.
        if file.suffix == ".parquet":
            return "rows " + ", ".join(str(p + 1) for p in positions[:_EXAMPLES])
        return "lines " + ", ".join(str(p + 2) for p in positions[:_EXAMPLES])

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
        elif "_store_id" in bad.columns:
            by_store = bad["_store_id"].value_counts().astype(int).to_dict()
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
                failed = pd.Series(False, index=df.index)
            elif col.kind in ("timestamp", "date"):
                value = pd.to_datetime(raw, errors="coerce")
                if isinstance(value.dtype, pd.DatetimeTZDtype):
                    value = value.dt.tz_localize(None)
                value = value.astype("datetime64[ns]")
                if col.kind == "date":
                    value = value.dt.normalize()
                failed = present & value.isna()
            elif col.kind in ("money", "number", "integer"):
                value = _to_number(raw)
                failed = present & value.isna()
                if col.kind == "integer":
                    frac = value.notna() & (value != np.floor(value.fillna(0)))
                    failed |= frac
                    value = value.where(~frac).astype("Int64")
                else:
                    value = value.astype("float64")
            elif col.kind == "flag":
                text = raw.astype("string").str.lower()
                value = text.isin(_TRUE).astype(bool)
                failed = present & ~text.isin(_TRUE | _FALSE).fillna(False).astype(bool)
            else:  # pragma: no cover - the contract only uses the kinds above
                raise AssertionError(col.kind)
            kind_word = {"timestamp": "timestamp", "date": "date", "flag": "true/false value"}
            if failed.any():
                word = kind_word.get(col.kind, "number")
                if col.nullable:
                    self._issue(table.name, df, failed, col.name, f"unparseable_{col.kind}",
                                "kept", f"with an unparseable {word} (value blanked)")
                else:
                    self._issue(table.name, df, failed, col.name, f"unparseable_{col.kind}",
                                "excluded", f"with an unparseable {word}")
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
        elif table == "order_lines":
            rules = {
                "non_positive_quantity": ("quantity", "excluded", "with a quantity of zero or less (returns are not analysed)",
                                          ["sku", "quantity"], lambda d: d["quantity"] > 0),
                "negative_line_amount": ("line_amount", "excluded", "with a negative line amount",
                                         ["sku", "line_amount"], lambda d: d["line_amount"] >= 0),
                "non_positive_days_supply": (
                    "days_supply", "kept", "with days_supply of zero or less (value blanked)",
                    ["sku", "days_supply"], lambda d: d["days_supply"].isna() | (d["days_supply"] > 0),
                ),
            }
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
            file = self._find_file(table)
            if file is None:
                frames[name] = None
                continue
            self.files[name] = file
            df = self._read(table, file)
            df["_pos"] = np.arange(len(df))
            self.report.rows_read[name] = len(df)
            if name == "members":
                df["tier"] = df["tier"].astype("string").str.strip().replace(TIER_ALIASES)
            drop = self._coerce(table, df)
            if name == "orders":
                # Lines are checked against every order id in the file, so that a line of an
                # order excluded for its own reason is reported as such, not as unknown.
                all_order_ids = df["order_id"].dropna().unique()
                order_store = df.drop_duplicates("order_id").set_index("order_id")["store_id"]
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

        lines = lines.assign(_store_id=lines["order_id"].map(order_store))
        kept = isin(lines["order_id"], orders["order_id"])
        known = isin(lines["order_id"], all_order_ids)
        self._issue("order_lines", lines, ~known, "order_id", "unknown_order", "excluded",
                    "referencing an order not in the orders file")
        self._issue("order_lines", lines, known & ~kept, "order_id", "line_of_excluded_order",
                    "excluded", "belonging to an order that was excluded")
        lines = lines[kept]
        line_sum = lines.groupby("order_id", observed=True)["line_amount"].sum()
        has_lines = isin(orders["order_id"], line_sum.index.to_series())
        diff = (orders["order_id"].map(line_sum) - orders["paid_amount"]).abs()
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
