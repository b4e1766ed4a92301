"""Chain-level batch step: every store's slice, metrics and model inputs in one pass.

A report run over hundreds of stores should not have each store's notebook re-read and
re-aggregate the whole chain. :func:`precompute_chain` reads the export once with the DuckDB
engine (:mod:`rxrepurchase.engine`), validates it by the contract's rules
(:mod:`rxrepurchase.core.rules`, as the loader does), computes the
chain's per-store tables and writes them as Parquet; :func:`load_store_slice` then loads one
store's rows only (Parquet row-group statistics skip the rest of each file).

Layout of ``out`` (see ``docs/scale.md``)::

    manifest.json            as_of, calibration_end, time unit, source files, rows read/loaded, stores
    stores.parquet           the stores table
    orders/                  validated orders, a folder per store (see below)
    order_lines/             their lines, with the order's store_id and _line (position in the
                             export), a folder per store
    members/                 per store_id: members who ordered there or belong to it, a
                             folder per store
    campaigns.parquet        per store_id: campaigns seen in the store's orders
    rfm.parquet              store x member RFM at as_of (rfm_summary(..., by="store_id"))
    rfm_chain.parquet        member RFM at as_of over the whole chain (rfm_summary(...)), by member_id
    calibration.parquet      store x member calibration RFM at calibration_end + holdout to as_of
    repurchase_monthly.parquet  repurchase_rates(..., "M", "store_id")
    cohorts.parquet          cohort_retention(..., "M", "store_id") (acquiring store)

The three large per-store tables are written by one partitioned ``COPY`` each, unsorted:
``<table>/store_part=<n>/data_<i>.parquet``, where ``n`` is the store's position in the
stores table sorted by id (``manifest.json``'s ``store_parts``), never the id itself (a path is
not built from data); beyond :data:`MAX_STORE_FOLDERS` stores, consecutive stores share a
folder. ``store_part=0`` holds rows of store ids the stores table lacks (members of an unknown
home store), which no slice reads. A slice reads its store's rows of its folder and sorts them
(:data:`_SLICE_ORDER`). Every other per-store file is sorted by ``store_id`` in row groups
of :data:`ROW_GROUP_ROWS` rows.
The per-member tables (``rfm``, ``rfm_chain``) are written by DuckDB from the core's
expressions, never through pandas, so memory stays within the DuckDB limit whatever the
chain's size.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from rxrepurchase import engine, rfm
from rxrepurchase.arguments import as_date, check_unit
from rxrepurchase.contract import TABLES
from rxrepurchase.core import rfm as core_rfm
from rxrepurchase.core.sql import sql_string
from rxrepurchase.errors import BatchError, OutputError
from rxrepurchase.loading import Chain, DataQualityReport
from rxrepurchase.outputs import write_atomic
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "BatchError",
    "DUCKDB_SHARE",
    "LAYOUT_VERSION",
    "MAX_STORE_FOLDERS",
    "ROW_GROUP_ROWS",
    "StoreSlice",
    "load_store_slice",
    "memory_bytes",
    "precompute_chain",
    "read_manifest",
]

LAYOUT_VERSION = 3
"""Version of the output layout; :func:`load_store_slice` refuses other versions (3: orders,
order_lines and members in a folder per store; 2 had them in one file sorted by store)."""

ROW_GROUP_ROWS = 50_000
"""Rows per Parquet row group: a store's slice reads only the groups holding it."""

MAX_STORE_FOLDERS = 1000
"""Folders per table written by store at most: with more stores, consecutive stores share a
folder, as each file written costs milliseconds (10,000 stores x 3 tables would be 30,000)."""

DUCKDB_SHARE = 0.8
"""Share of ``memory_limit`` that DuckDB may use; the rest is the Python process's own (the
interpreter and libraries, about 0.5 GB, and buffers DuckDB does not count), so that the
process's peak memory stays within ``memory_limit``."""

MANIFEST = "manifest.json"
_TABLE_FILES = ("stores", "orders", "order_lines", "members", "campaigns")
_PARTITIONED = ("orders", "order_lines", "members")
"""Tables written in a folder per store: sorting them by store cost a third more at 10M rows
and spilled at 50M (docs/scale.md)."""
# The order of a store's rows, restored when its slice is read (the loader's order); ``_line``
# is a line's position in the export.
_SLICE_ORDER = {"orders": ["ordered_at", "order_id"], "order_lines": ["order_id", "_line"],
                "members": ["member_id"]}


# --------------------------------------------------------------------------- writing


def _copy(src: engine.ChainSource, query: str, path: Path) -> None:
    src.con.execute(
        f"COPY ({query}) TO {sql_string(str(path))} "
        f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
    )


def _copy_by_store(src: engine.ChainSource, query: str, folder: Path) -> None:
    """``query``'s rows in a folder per store (``store_part=<n>``, n from ``_store_parts``;
    0 for a store id the stores table lacks). DuckDB keeps at most
    ``partitioned_write_max_open_files`` files open, so thousands of stores are fine."""
    src.con.execute("SET preserve_insertion_order = false")  # rows are sorted when read
    try:
        src.con.execute(
            f"COPY (SELECT q.*, coalesce(p.store_part, 0) AS store_part FROM ({query}) q "
            "LEFT JOIN _store_parts p USING (store_id)) "
            f"TO {sql_string(str(folder))} (FORMAT parquet, PARTITION_BY (store_part))"
        )
    finally:
        src.con.execute("RESET preserve_insertion_order")


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    out = df.reset_index() if df.index.name or df.index.nlevels > 1 else df
    out = out.copy()
    out.attrs = {}  # attrs hold Timestamps Parquet metadata cannot take; the manifest has them
    out.to_parquet(path, index=False, row_group_size=ROW_GROUP_ROWS)


@renamed_keywords(cut="calibration_end")
def precompute_chain(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    as_of=None,
    calibration_end=None,
    time_unit: str = "days",
    memory_limit: str = "4GB",
    threads: int | None = None,
    overwrite: bool = False,
    time_zone: str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """Compute every store's slice, metrics and model inputs and write them to ``out``.

    Parameters
    ----------
    data : path
        The chain's export folder (Parquet or CSV, as for :func:`rxrepurchase.loading.load_chain`).
    out : path
        Output folder: new, empty, or (with ``overwrite``) one whose files may be replaced;
        never the export folder ``data``. The files are written to a work folder and moved
        into ``out`` only when all are complete, ``manifest.json`` last; a failed run leaves
        ``out`` as it was.
    as_of : date-like, optional
        Analysis date: orders after it are excluded; RFM is observed to it. Default: today.
    calibration_end : date-like, optional
        Last day of the calibration period for ``calibration.parquet`` (holdout to ``as_of``).
        Default: no calibration file.
    time_unit : {"days", "weeks"}
        Unit of recency and T in the RFM files.
    memory_limit : str
        Memory for the whole step, e.g. ``"4GB"`` (1000**3 bytes) or ``"4GiB"``: DuckDB gets
        :data:`DUCKDB_SHARE` of it; intermediate tables live in a database file inside
        ``out`` while the step runs and sorts spill to disk, so memory stays bounded.
    threads : int, optional
        DuckDB threads (default: one per core).
    overwrite : bool
        Replace files of the same names in a folder that holds files already.
    time_zone : str, optional
        The chain's time zone (default Asia/Shanghai), as for the loader.
    progress : callable, optional
        Called with each step's name and seconds when the step ends (the CLI prints them);
        the manifest's ``steps`` records them too.

    Returns
    -------
    dict
        The manifest, also written to ``out/manifest.json``.

    Raises
    ------
    OutputError
        ``out`` is ``data``, is a file, or holds files and ``overwrite`` is False.
    """
    out = Path(out)
    duckdb_limit = f"{int(memory_bytes(memory_limit) * DUCKDB_SHARE) // 2**20}MiB"
    check_unit(time_unit)
    as_of = as_date(pd.Timestamp.today().normalize() if as_of is None else as_of, "as_of")
    calibration_end = None if calibration_end is None else as_date(calibration_end, "calibration_end")
    if calibration_end is not None and calibration_end >= as_of:
        raise BatchError(f"calibration_end {calibration_end.date()} must be before as_of {as_of.date()}")
    _check_output_folder(Path(data), out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    staged = work / "staged"
    staged.mkdir(parents=True)
    started = dt.datetime.now()
    steps: dict[str, float] = {}

    @contextmanager
    def step(name: str):
        start = time.perf_counter()
        yield
        steps[name] = round(time.perf_counter() - start, 2)
        if progress is not None:
            progress(name, steps[name])

    try:
        with engine.ChainSource(
            data, as_of=as_of, memory_limit=duckdb_limit, threads=threads,
            temp_directory=work / "spill", database=work / "batch.duckdb", time_zone=time_zone,
        ) as src:
            with step("read and validate"):
                src.materialize()
                counts = src.row_counts()  # the loaded rows are counted in the tables just made
            files = _write_tables(src, staged, step)
            files |= _write_aggregates(src, staged, as_of, calibration_end, time_unit, step)
            stores = src.con.execute(
                "SELECT s.store_id, count(o.order_id) AS orders, any_value(p.store_part) FROM stores s "
                "JOIN _store_parts p USING (store_id) "
                "LEFT JOIN orders o USING (store_id) GROUP BY s.store_id ORDER BY s.store_id"
            ).fetchall()
        # Complete: the files replace any earlier batch's; the manifest (written last) then
        # says a batch is there.
        (out / MANIFEST).unlink(missing_ok=True)
        for name in files.values():
            if (out / name).is_dir():  # an earlier batch's folder: os.replace cannot overwrite it
                shutil.rmtree(out / name)
            os.replace(staged / name, out / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = {
        "layout_version": LAYOUT_VERSION,
        "source": str(Path(data).resolve()),
        "as_of": f"{as_of:%Y-%m-%d}",
        "calibration_end": None if calibration_end is None else f"{calibration_end:%Y-%m-%d}",
        "time_unit": time_unit,
        "amount_col": "paid_amount",
        "created_at": started.isoformat(timespec="seconds"),
        "seconds": round((dt.datetime.now() - started).total_seconds(), 2),
        "steps": steps,
        "rows_read": dict(zip(counts["table"], counts["rows_read"].astype(int).tolist(), strict=True)),
        "rows_loaded": dict(zip(counts["table"], counts["rows_loaded"].astype(int).tolist(), strict=True)),
        "stores": {sid: int(n) for sid, n, _ in stores},
        "store_parts": {sid: int(part) for sid, _, part in stores},
        "files": files,
    }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


def memory_bytes(memory_limit: str) -> int:
    """Bytes of a memory size as DuckDB writes it: ``"4GB"`` is 4 * 1000**3, ``"4GiB"``
    4 * 1024**3 (units KB, MB, GB, TB and KiB ... TiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt])(i?)b\s*", str(memory_limit).lower())
    if not match:
        raise BatchError(f"memory limit {memory_limit!r} is not a size such as 4GB, 500MB or 4GiB")
    base = 1024 if match[3] else 1000
    return int(float(match[1]) * base ** ("kmgt".index(match[2]) + 1))


def _check_output_folder(data: Path, out: Path, overwrite: bool) -> None:
    """Refuse an output folder that is the export folder, a file, or (without ``overwrite``)
    holds files."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"precompute --out {out} is a file, not a folder; it is left as it is")
    if out.exists() and data.exists() and out.resolve() == data.resolve():
        raise OutputError(f"precompute --out {out} is the export folder (--data); write the "
                          "batch to another folder (the export is never replaced)")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:5]) + (" ..." if len(held) > 5 else "")
        raise OutputError(f"precompute --out {out} holds files already ({shown}); name a new "
                          "or empty folder, or pass --overwrite to replace the batch files there")


def _write_tables(src: engine.ChainSource, out: Path, step) -> dict[str, str]:
    """The contract tables, each store's rows together (a store's slice of the chain)."""
    per_folder = max(1, -(-src.scalar("SELECT count(*) FROM stores") // MAX_STORE_FOLDERS))
    src.con.execute("CREATE TEMP TABLE _store_parts AS SELECT store_id, (row_number() OVER "
                    f"(ORDER BY store_id) - 1) // {per_folder} + 1 AS store_part FROM stores")
    lines = ", ".join(f"l.{c}" for c in TABLES["order_lines"].column_names)
    members = ", ".join(f"m.{c}" for c in TABLES["members"].column_names)
    campaigns = ", ".join(f"c.{c}" for c in TABLES["campaigns"].column_names)
    queries = {
        "stores": "SELECT * FROM stores ORDER BY store_id",
        # Unsorted, a folder per store; a slice is put in order when it is read (_SLICE_ORDER).
        "orders": "SELECT * FROM orders",
        "order_lines": (
            f"SELECT o.store_id, {lines}, l._line FROM order_lines l JOIN orders o USING (order_id)"
        ),
        # Chain.for_store: members who ordered at the store or belong to it.
        "members": (
            f"SELECT s.store_id, {members} FROM (SELECT store_id, member_id FROM orders "
            "WHERE member_id IS NOT NULL UNION SELECT home_store_id, member_id FROM members) s "
            "JOIN members m USING (member_id)"
        ),
        "campaigns": (
            f"SELECT s.store_id, {campaigns} FROM (SELECT DISTINCT store_id, campaign_id "
            "FROM orders WHERE campaign_id IS NOT NULL) s JOIN campaigns c USING (campaign_id) "
            "ORDER BY s.store_id, c.campaign_id"
        ),
    }
    files = {name: name if name in _PARTITIONED else f"{name}.parquet" for name in queries}
    for name, query in queries.items():
        with step(f"{name} by store"):
            (_copy_by_store if name in _PARTITIONED else _copy)(src, query, out / files[name])
    return files


def _write_aggregates(src, out: Path, as_of, calibration_end, time_unit: str, step) -> dict[str, str]:
    """Per-store metrics and model inputs, and the chain's member RFM, from the materialized
    tables."""
    files = {}
    unit_days = check_unit(time_unit)
    orders = src.table("orders")
    for name, by in (("rfm", "store_id"), ("rfm_chain", None)):
        with step("store x member RFM" if by else "chain RFM"):
            summary = core_rfm.rfm_summary(orders, as_of=as_of.date(), time_unit_days=unit_days, by=by)
            src.backend.to_parquet(summary, out / f"{name}.parquet", row_group_size=ROW_GROUP_ROWS)
        files[name] = f"{name}.parquet"
    if calibration_end is not None:
        with step("calibration / holdout"):
            split = engine.calibration_holdout(src, calibration_end, holdout_end=as_of, time_unit=time_unit,
                                               by="store_id")
            _write_frame(split.calibration.join(split.holdout), out / "calibration.parquet")
        files["calibration"] = "calibration.parquet"
    with step("repurchase by store and month"):
        _write_frame(engine.repurchase_rates(src, "M", "store_id"), out / "repurchase_monthly.parquet")
    files["repurchase_monthly"] = "repurchase_monthly.parquet"
    with step("cohorts by store"):
        _write_frame(engine.cohort_retention(src, "M", "store_id", as_of=as_of), out / "cohorts.parquet")
    files["cohorts"] = "cohorts.parquet"
    return files


# --------------------------------------------------------------------------- reading


@dataclass
class StoreSlice:
    """One store's precomputed slice, as the store's report notebook needs it.

    Attributes
    ----------
    store_id : str
    chain : Chain
        The store's slice of the chain: equal to ``load_chain(data, as_of=as_of)
        .for_store(store_id)`` (orders sorted by time; the quality report holds the chain's
        rows read and loaded, not the per-rule details: run the loader for those).
    rfm : DataFrame
        The store's members' RFM at ``as_of``, indexed by member: equal to
        ``rfm_summary(chain.orders, as_of=as_of, time_unit=...)``.
    calibration, holdout : DataFrame or None
        Calibration RFM at ``calibration_end`` and holdout outcomes to ``as_of`` (as
        :func:`rxrepurchase.rfm.calibration_holdout` with ``holdout_end=as_of``); None when
        the batch ran without ``calibration_end``.
    repurchase_monthly : DataFrame
        The store's rows of ``repurchase_rates(orders, "M", "store_id")`` on the chain.
    cohorts : DataFrame
        The store's rows of ``cohort_retention(orders, "M", "store_id", as_of=as_of)``.
    manifest : dict
    """

    store_id: str
    chain: Chain
    rfm: pd.DataFrame
    calibration: pd.DataFrame | None
    holdout: pd.DataFrame | None
    repurchase_monthly: pd.DataFrame
    cohorts: pd.DataFrame
    manifest: dict = field(repr=False)


def read_manifest(out: str | os.PathLike) -> dict:
    """The manifest of a batch folder, checked."""
    path = Path(out) / MANIFEST
    if not path.exists():
        raise BatchError(f"{path} does not exist: run `rxrepurchase precompute` first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("layout_version") != LAYOUT_VERSION:
        raise BatchError(
            f"{path}: layout version {manifest.get('layout_version')} is not {LAYOUT_VERSION}; "
            "rerun `rxrepurchase precompute`"
        )
    return manifest


def _read(out: Path, name: str, store_id: str, manifest: dict) -> pd.DataFrame:
    if name in _PARTITIONED:
        path = out / name / f"store_part={manifest['store_parts'][store_id]}"
        if not path.is_dir():  # the store has no rows in this table
            extra = {"orders": [], "order_lines": ["store_id", "_line"], "members": ["store_id"]}[name]
            return pd.DataFrame(columns=extra + TABLES[name].column_names)
    else:
        path = out / f"{name}.parquet"
    try:
        table = pq.read_table(path, filters=[("store_id", "=", store_id)])
    except (OSError, ValueError) as exc:
        raise BatchError(f"{path}: cannot be read: {exc}") from exc
    return table.to_pandas()


def _contract_types(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The loader's dtypes for a contract table read back from Parquet."""
    out = df[TABLES[table].column_names].copy()
    for col in TABLES[table].columns:
        kind, values = col.kind, out[col.name]
        if kind in ("id", "text"):
            out[col.name] = values.astype("string")
        elif kind in ("timestamp", "date"):
            out[col.name] = values.astype("datetime64[ns]")
        elif kind in ("money", "number"):
            out[col.name] = values.astype("float64")
        elif kind == "integer":
            out[col.name] = values.astype("Int64")
        elif kind == "flag":  # a flag that may be empty (unknown) stays nullable
            out[col.name] = values.astype("boolean" if col.nullable else bool)
    return out.reset_index(drop=True)


def _rfm_frame(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    df = df.drop(columns="store_id")
    df["member_id"] = df["member_id"].astype("string")
    for col in ("first_purchase", "last_purchase"):
        df[col] = df[col].astype("datetime64[ns]")
    return df.set_index("member_id")[columns]


def _rfm_attrs(orders: pd.DataFrame, manifest: dict, end: pd.Timestamp) -> dict:
    """``attrs`` of :func:`rxrepurchase.rfm.rfm_summary` on the store's orders, observed to
    ``end``."""
    return rfm.summary_attrs(
        manifest["time_unit"], end, manifest["amount_col"],
        walk_in_orders=orders["member_id"].isna().sum(),
        transactions_after_end=rfm.transactions_after(orders, end),
    )


def load_store_slice(out: str | os.PathLike, store_id: str) -> StoreSlice:
    """Load one store's precomputed slice written by :func:`precompute_chain`.

    Reads the store's folder of each partitioned table and only the row groups of each
    other file that hold ``store_id``.

    Raises
    ------
    BatchError
        No batch in ``out``, or an unknown ``store_id`` (the message lists known stores).
    """
    out = Path(out)
    manifest = read_manifest(out)
    if store_id not in manifest["stores"]:
        known = ", ".join(list(manifest["stores"])[:20])
        raise BatchError(f"unknown store {store_id!r} in {out}; stores: {known}")
    as_of = pd.Timestamp(manifest["as_of"])
    tables = {}
    for name in _TABLE_FILES:
        rows = _read(out, name, store_id, manifest)
        if name in _SLICE_ORDER:
            rows = rows.sort_values(_SLICE_ORDER[name], kind="stable")
        tables[name] = _contract_types(rows, name)
    quality = DataQualityReport(rows_read=dict(manifest["rows_read"]),
                                rows_loaded=dict(manifest["rows_loaded"]))
    chain = Chain(**tables, as_of=as_of, quality=quality, source=Path(manifest["source"]))

    rfm_cols = ["frequency", "recency", "T", "litt", "monetary_value", "first_purchase", "last_purchase"]
    summary = _rfm_frame(_read(out, "rfm", store_id, manifest), rfm_cols)
    summary.attrs = _rfm_attrs(chain.orders, manifest, as_of)
    calibration = holdout = None
    if "calibration" in manifest["files"]:
        both = _rfm_frame(_read(out, "calibration", store_id, manifest),
                          rfm_cols + ["frequency_holdout", "monetary_holdout", "duration_holdout"])
        calibration = both[rfm_cols]
        holdout = both.drop(columns=rfm_cols)
        calibration.attrs = _rfm_attrs(chain.orders, manifest, pd.Timestamp(manifest["calibration_end"]))
    monthly = _read(out, "repurchase_monthly", store_id, manifest)
    monthly["store_id"] = monthly["store_id"].astype("string")
    cohorts = _read(out, "cohorts", store_id, manifest)
    cohorts["store_id"] = cohorts["store_id"].astype("string")
    return StoreSlice(
        store_id=store_id,
        chain=chain,
        rfm=summary,
        calibration=calibration,
        holdout=holdout,
        repurchase_monthly=monthly,
        cohorts=cohorts,
        manifest=manifest,
    )
