"""Reading a chain's export folder: the pieces every reader shares.

The pandas loader (:mod:`rxrepurchase.loading`) and the DuckDB engine
(:mod:`rxrepurchase.engine`) read the same files the same way: which file holds a table
(:func:`find_file`), which header names which contract column (:func:`map_headers`, with the
common Chinese headers and a chain's mapping file, :func:`read_mapping`), the chain's time zone
(:func:`check_time_zone`) and on which file line a record starts (:func:`record_lines`). How a
cell becomes its contract type (timestamps, numbers, flags, whitespace) is the one rule of
:mod:`rxrepurchase.core.cells`; what a row must satisfy once read is in
:mod:`rxrepurchase.core.rules`.
"""

from __future__ import annotations

import csv
import gzip
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rxrepurchase.contract import HEADER_ALIASES_ZH, TABLES, Column, Table
from rxrepurchase.core.cells import type_frame
from rxrepurchase.errors import DataContractError

__all__ = [
    "DEFAULT_TIME_ZONE",
    "check_time_zone",
    "find_file",
    "map_headers",
    "parse_timestamps",
    "read_mapping",
    "record_lines",
]

DEFAULT_TIME_ZONE = "Asia/Shanghai"


def read_mapping(mapping: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read a mapping of file names, headers and encoding for a chain's real export.

    The TOML form::

        encoding = "gbk"                 # CSV encoding of every file
        timestamp_format = "%d/%m/%Y %H:%M:%S"   # layout of timestamps that are not ISO 8601
        date_format = "%d/%m/%Y"                 # same for dates
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
    keys = ("encoding", "timestamp_format", "date_format", "files", "columns")
    unknown = set(data) - set(keys)
    if unknown:
        raise DataContractError(
            f"{source}: unknown key(s) {sorted(unknown)}; expected {', '.join(keys)}"
        )
    for key in ("timestamp_format", "date_format"):
        if key in data and not (isinstance(data[key], str) and "%" in data[key]):
            raise DataContractError(
                f"{source}: {key} must be a strptime layout such as \"%d/%m/%Y %H:%M:%S\", "
                f"got {data[key]!r}"
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


def check_time_zone(time_zone: str | None) -> str:
    """``time_zone`` if it is an IANA time-zone name (``Asia/Shanghai``, ``UTC``); None gives
    the default, Asia/Shanghai.

    Raises
    ------
    DataContractError
        For an unknown name, before any file is read.
    """
    if time_zone is None:
        return DEFAULT_TIME_ZONE
    try:
        zoneinfo.ZoneInfo(str(time_zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise DataContractError(
            f"unknown time zone {time_zone!r}; name the chain's time zone as in the IANA "
            "database, e.g. Asia/Shanghai or UTC"
        ) from exc
    return str(time_zone)


def parse_timestamps(
    raw: pd.Series, *, time_zone: str = DEFAULT_TIME_ZONE, fmt: str | None = None
) -> tuple[pd.Series, pd.Series]:
    """Parse timestamps value by value into the chain's local time, by the readers' one rule
    (:mod:`rxrepurchase.core.cells`).

    Each value is read on its own, never by the layout of the first one. A value is ISO 8601
    when it is a year-first date (``2026-03-01``, ``2026/3/1``), optionally followed by a time
    (``T`` or a space; hours and minutes, seconds and their fractions optional) and a UTC
    offset (``Z``, ``+08:00``, ``+0800``, ``+08``). A value with an offset is converted to
    ``time_zone``; a value without one is taken as already in it. Other layouts are read only
    with ``fmt`` (``strptime`` codes, e.g. ``"%d/%m/%Y %H:%M:%S"``). Surrounding whitespace
    is stripped; times are kept to the microsecond.

    Parameters
    ----------
    raw : pandas.Series
        Text, missing values as NA (or timestamps, converted from their zone if they have one).
    time_zone : str
        The chain's IANA time zone.
    fmt : str, optional
        Layout of the values that are not ISO 8601.

    Returns
    -------
    values : pandas.Series
        ``datetime64[ns]``, naive local time; NaT where a value cannot be used.
    problem : pandas.Series
        Why a present value gave NaT: ``out_of_range`` (outside 1677-09-21 to 2262-04-11),
        ``ambiguous`` (day and month first, ``01/10/2025``, and no ``fmt``) or
        ``unparseable``; NA elsewhere.
    """
    column = Column("value", "timestamp", "")
    formats = {"timestamp": fmt} if fmt else None
    typed = type_frame(pd.DataFrame({"value": raw}), [column], time_zone=time_zone, formats=formats)
    problem = typed.get("_problem_value", pd.Series(pd.NA, index=raw.index, dtype="string"))
    return typed["value"].rename(None), problem.rename(None)


def find_file(folder: Path, table: Table, spec: Mapping[str, Any] | None = None) -> Path | None:
    """The file holding ``table`` in ``folder``: the mapping's ``[files]`` entry, else
    ``<table>.csv``, ``.csv.gz`` or ``.parquet``; None for an optional table without one.

    Raises
    ------
    DataContractError
        A file named in the mapping is missing, a table has two files, or a required table
        has none.
    """
    named = (spec or {}).get("files", {}).get(table.name)
    if named:
        p = folder / named
        if not p.exists():
            raise DataContractError(
                f"{p}: file for table '{table.name}' named in the mapping does not exist"
            )
        return p
    found = [
        folder / f"{table.name}{ext}"
        for ext in (".csv", ".csv.gz", ".parquet")
        if (folder / f"{table.name}{ext}").exists()
    ]
    if len(found) > 1:
        raise DataContractError(
            f"{folder}: table '{table.name}' has more than one file "
            f"({', '.join(p.name for p in found)}); keep one"
        )
    if not found and table.required:
        raise DataContractError(
            f"{folder}: no file for table '{table.name}' "
            f"(expected {table.name}.csv or {table.name}.parquet)"
        )
    return found[0] if found else None


def map_headers(
    table: Table, where: str | Path, headers: list[str], spec: Mapping[str, Any] | None = None
) -> tuple[list[str], dict[str, str]]:
    """Contract names for a source's (stripped) headers, and the renames made.

    The chain's mapping (``[columns.<table>]``) overrides the common Chinese headers
    (:data:`rxrepurchase.contract.HEADER_ALIASES_ZH`); other headers keep their names.

    Parameters
    ----------
    table : Table
        The contract table the headers are for.
    where : str or Path
        What the headers come from, named in errors: a file, or a label such as
        ``Spark table dw.orders`` or ``frame 'orders'``.
    headers : list of str
    spec : mapping, optional
        The mapping (:func:`read_mapping`).

    Raises
    ------
    DataContractError
        Two headers map to one column, or a required column is missing; the message names
        ``where`` and the columns.
    """
    aliases = {**HEADER_ALIASES_ZH.get(table.name, {}),
               **(spec or {}).get("columns", {}).get(table.name, {})}
    renames = {c: aliases[c] for c in headers if c in aliases and aliases[c] != c}
    target = [renames.get(c, c) for c in headers]
    dupes = sorted({t for t in target if target.count(t) > 1})
    if dupes:
        raise DataContractError(
            f"{where}: more than one column maps to {dupes}; fix the export or the mapping"
        )
    missing = [c for c in table.required_columns if c not in target]
    if missing:
        raise DataContractError(
            f"{where}: missing required column(s) {missing} for table '{table.name}'; "
            f"found {target}. Map the export's headers with a mapping file "
            f"(see docs/data-contract.md)."
        )
    return target, renames


def record_lines(file: Path, records: int, encoding: str = "utf-8") -> np.ndarray | None:
    """The file line each data record of a CSV file starts on, or None when record i is on
    line i + 2 (header = line 1).

    Quoted fields may hold line breaks, and blank lines are skipped, so record and line
    numbers can part. Counting line breaks tells cheaply whether they do; only then is the
    file read again as CSV, once.
    """
    opener = gzip.open if file.name.endswith(".gz") else open
    with opener(file, "rb") as f:
        breaks, last = 0, b"\n"
        while chunk := f.read(1 << 24):
            breaks += chunk.count(b"\n")
            last = chunk[-1:]
    lines = breaks + (last != b"\n")
    if lines == records + 1:
        return None
    encoding = "utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding
    starts = []
    with opener(file, "rt", encoding=encoding, newline="") as f:
        reader = csv.reader(f)
        next(reader, None)  # header
        line = reader.line_num
        for record in reader:
            if record:  # blank lines are no records
                starts.append(line + 1)
            line = reader.line_num
    return np.asarray(starts)
