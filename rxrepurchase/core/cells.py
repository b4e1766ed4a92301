"""How a raw export cell becomes a value of its contract type: the one typing rule.

Every reader types cells here, as DuckDB SQL: the engine (:class:`rxrepurchase.engine.ChainSource`)
in its views over the export files, the loader (:func:`rxrepurchase.loading.load_chain`) over
the frame it has read, registered in DuckDB through Arrow (:func:`type_frame`), and
:func:`rxrepurchase.exports.parse_timestamps`. Only reading the files (encodings, headers)
stays with the readers. The rule, cell by cell:

text cells, every kind
    :data:`WHITESPACE` (ASCII and Unicode spaces, the full-width space U+3000 of Chinese
    exports, the no-break space, zero-width space and byte-order mark) is stripped from both
    ends; a cell that is then empty is missing.
``id``, ``text``
    The stripped text. A tier is translated by :data:`rxrepurchase.contract.TIER_ALIASES`
    (``金卡`` is ``gold``).
``money``, ``number``, ``integer``
    A decimal number: an optional sign, digits with an optional decimal point (``5``, ``+5``,
    ``.5``, ``5.``) and an optional exponent (``1e3``), ASCII digits only. Digit groups are not
    numbers: ``1,000``, ``1 000`` and ``1_000`` are ``unparseable`` (DuckDB's own cast would
    read ``1_000`` as 1000). ``inf``, ``infinity`` and ``nan`` in any case and with a sign,
    and numbers too large for a double (``1e400``), are ``non_finite``. An ``integer`` must be
    whole (``2.0`` is 2, ``2.5`` is ``unparseable``) and fit 64 bits. An empty
    ``stored_value_amount`` is 0 (no stored-value payment).
``flag``
    :data:`TRUE_WORDS` or :data:`FALSE_WORDS`, in any case; anything else is ``unparseable``.
``timestamp``, ``date``
    ISO 8601 read value by value: a year-first date (``2026-03-01``, ``2026/3/1``), optionally
    a time (``T`` or a space; hours and minutes, seconds and their fractions optional; ``24:00``
    is the next midnight) and a UTC offset (``Z``, ``+08:00``, ``+0800``, ``+08``, a space
    before it allowed). A value with an offset is converted to the chain's time zone, one
    without is taken as already in it. Other layouts are read only with a configured
    ``strptime`` format; without one, day-and-month-first values (``01/10/2025``) are
    ``ambiguous``. Values outside :data:`SPAN` (what pandas' nanosecond timestamps hold) are
    ``out_of_range``. Times are kept to the microsecond; a date is the day of its value.

A present cell that gives no value carries its reason (``unparseable``, ``non_finite``,
``ambiguous``, ``out_of_range``), which the type rules of :mod:`rxrepurchase.core.rules`
report as ``_problem_<column>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa

from rxrepurchase.contract import TIER_ALIASES, Column
from rxrepurchase.core.sql import sql_name, sql_string

__all__ = [
    "FALSE_WORDS",
    "SPAN",
    "TRUE_WORDS",
    "WHITESPACE",
    "Raw",
    "select_sql",
    "type_frame",
]

WHITESPACE = ("\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
              "\u2006\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff")
"""Stripped from both ends of a text cell: what Python's ``str.isspace`` calls whitespace
(U+3000, the full-width space, among them), the zero-width space and the byte-order mark."""
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t", "是", "y是"})
"""Flag cells read as true (in any case); :data:`FALSE_WORDS` as false; anything else is
unparseable."""
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f", "否"})
SPAN = (pd.Timestamp.min, pd.Timestamp.max)
"""The timestamps a reader keeps: pandas' (and DuckDB's TIMESTAMP_NS) nanoseconds since 1970
in 64 bits, 1677-09-21 00:12:43 to 2262-04-11 23:47:16."""

_DATE = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}"
_TIME = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?"
_ISO_START = rf"^{_DATE}([T ]\d{{1,2}}:\d{{2}}|$)"
"""A value starting like an ISO 8601 timestamp (a year-first date, then its end or a time)."""
_ISO_LOCAL = rf"{_DATE}({_TIME})?"
_ISO_OFFSET = rf"{_DATE}{_TIME} ?([Zz]|[+-]\d{{2}}(:?\d{{2}})?)"
# Day and month first (01/10/2025, 1.10.25): which is which only a configured format can say.
_DAY_MONTH = r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}(\s|T|$)"
_SQL_TYPES = {"money": "DOUBLE", "number": "DOUBLE", "integer": "BIGINT", "flag": "BOOLEAN",
              "timestamp": "TIMESTAMP", "date": "TIMESTAMP"}


@dataclass(frozen=True)
class Raw:
    """A contract column as a source holds it.

    Attributes
    ----------
    col : Column
        The contract column.
    name : str or None
        The source's column; None for an optional column the source lacks.
    sql_type : str
        DuckDB's type of the source column: ``VARCHAR`` (CSV, text Parquet columns) is read by
        the rule; a typed column (a Parquet ``DOUBLE``, ``TIMESTAMP WITH TIME ZONE``) is cast.
    """

    col: Column
    name: str | None
    sql_type: str = "VARCHAR"

    @property
    def absent(self) -> bool:  # or, from a frame, empty throughout
        return self.name is None or self.sql_type == '"NULL"'

    @property
    def text(self) -> bool:
        return self.sql_type == "VARCHAR"


def select_sql(columns: Sequence[Raw], source: str, *, clean: bool = True,
               problems: bool = False, time_zone: str = "Asia/Shanghai",
               formats: Mapping[str, str] | None = None,
               keep: Sequence[tuple[str, str]] = ()) -> str:
    """A SELECT giving the raw columns of ``source`` their contract values, by the rule.

    Parameters
    ----------
    columns : sequence of Raw
        The contract columns and where ``source`` holds them; each comes out under its
        contract name, NULL where a cell gives no value.
    source : str
        A table, view or parenthesised subquery.
    clean : bool
        False: cast only, no stripping and no blanking of empty text (files validated
        upstream, read for speed).
    problems : bool
        Also give ``_problem_<column>``: why a present cell gives no value (``unparseable``,
        ``non_finite``, ``ambiguous``, ``out_of_range``), NULL where it gives one.
    time_zone : str
        The chain's IANA time zone, for values with a UTC offset.
    formats : mapping, optional
        ``{"timestamp": layout, "date": layout}``: ``strptime`` layouts of values that are not
        ISO 8601.
    keep : sequence of (sql, name)
        Other columns to pass through: an expression over ``source`` and its name.

    Notes
    -----
    The query reads in three steps (the cell, its reading, the value), each a subquery over
    the last. Numbers, flags and timestamps are read from the raw cell first; the stripped
    cell (a look at both ends of every value) is made only for the cells that do not read as
    they are, which gives the same value. This also keeps cheap the filters on the values that
    DuckDB pushes down into the first step, where each reference becomes the whole expression
    again.
    """
    formats = formats or {}
    kept = [sql_name(name) for _, name in keep]
    cells = [f"{sql} AS {name}" for (sql, _), name in zip(keep, kept, strict=True)]
    parsed, values = list(kept), list(kept)
    for i, raw in enumerate(columns):
        col, cell, read, ref = raw.col, f"_c{i}", f"_p{i}", f"_r{i}"
        if raw.absent:
            value = f"CAST(NULL AS {_SQL_TYPES.get(col.kind, 'VARCHAR')})"
            values.append(f"{_default(col, value, 'NULL')} AS {sql_name(col.name)}")
            continue
        cells.append(f"{sql_name(raw.name)} AS {ref}")
        parsed.append(ref)
        if col.kind in ("id", "text"):  # the value is the stripped cell
            cells.append(f"{_cell(sql_name(raw.name), raw.text and clean)} AS {cell}")
            parsed.append(cell)
        else:  # stripped only where the raw cell does not read
            cell = _cell(ref, raw.text and clean)
        reading = _reading(raw, ref, cell, time_zone, formats.get(col.kind))
        if reading is not None:
            parsed.append(f"{reading} AS {read}")
        value = _value(raw, ref, cell, read)
        values.append(f"{_default(col, value, cell)} AS {sql_name(col.name)}")
        if problems and col.kind not in ("id", "text"):
            why = _why(raw, cell, read, formats.get(col.kind))
            values.append(f"CASE WHEN {value} IS NOT NULL THEN NULL WHEN {cell} IS NOT NULL "
                          f"THEN {why} END AS {sql_name('_problem_' + col.name)}")
    inner = f"SELECT {', '.join(cells) or 'NULL AS _none'} FROM {source}"
    middle = f"SELECT {', '.join(parsed) or '*'} FROM ({inner})"
    return f"SELECT {', '.join(values)} FROM ({middle})"


def _words(words) -> str:
    return ", ".join(map(sql_string, sorted(words)))


def _cell(ref: str, clean: bool) -> str:
    """The cell as the rule reads it: stripped, NULL when empty (text read as text)."""
    if not clean:
        return ref
    # Looking at the end characters first is cheaper than stripping every value; few need it.
    # An empty cell's ends are '', which WHITESPACE contains too.
    spaces = sql_string(WHITESPACE)
    return (f"CASE WHEN contains({spaces}, {ref}[1]) OR contains({spaces}, {ref}[-1]) "
            f"THEN NULLIF(trim({ref}, {spaces}), '') ELSE {ref} END")


def _reading(raw: Raw, ref: str, cell: str, time_zone: str, fmt: str | None) -> str | None:
    """Numbers and timestamps read before the range and finiteness checks; None for other
    kinds. The raw cell ``ref`` is tried first: where it reads, the stripped ``cell`` equals
    it (DuckDB's number cast itself skips ASCII spaces)."""
    kind, zone = raw.col.kind, sql_string(time_zone)
    if kind in ("money", "number", "integer"):
        if not raw.text:
            return f"CAST({cell} AS DOUBLE)"
        # DuckDB's cast reads digit groups with underscores (1_000); the contract does not.
        return (f"CASE WHEN NOT contains({ref}, '_') "
                f"THEN COALESCE(TRY_CAST({ref} AS DOUBLE), TRY_CAST({cell} AS DOUBLE)) END")
    if kind not in ("timestamp", "date"):
        return None
    if not raw.text:
        if "WITH TIME ZONE" in raw.sql_type or raw.sql_type.startswith("TIMESTAMPTZ"):
            return f"timezone({zone}, CAST({cell} AS TIMESTAMPTZ))"
        return f"CAST({cell} AS TIMESTAMP)"
    other = "NULL"
    if fmt:
        other = f"try_strptime({cell}, {sql_string(fmt)})"
        other = f"timezone({zone}, {other})" if "%z" in fmt else other
    # DuckDB's timestamp cast alone is lenient ('09:00 PM' reads as 09:00): the grammar first.
    offset = f"regexp_replace({cell}, ' ([Zz+-])', '\\1')"
    return (f"CASE WHEN regexp_full_match({ref}, {sql_string(_ISO_LOCAL)}) "
            f"THEN TRY_CAST({ref} AS TIMESTAMP) "
            f"WHEN regexp_full_match({cell}, {sql_string(_ISO_LOCAL)}) "
            f"THEN TRY_CAST({cell} AS TIMESTAMP) "
            f"WHEN regexp_full_match({cell}, {sql_string(_ISO_OFFSET)}) "
            f"THEN timezone({zone}, TRY_CAST({offset} AS TIMESTAMPTZ)) "
            f"WHEN regexp_matches({cell}, {sql_string(_ISO_START)}) THEN NULL "
            f"ELSE {other} END")


def _value(raw: Raw, ref: str, cell: str, read: str) -> str:
    """The typed value, NULL where the cell gives none (before the stored-value default)."""
    col = raw.col
    if col.kind in ("id", "text"):
        value = cell if raw.text else f"CAST({cell} AS VARCHAR)"
        if col.name == "tier":
            cases = " ".join(f"WHEN {sql_string(k)} THEN {sql_string(v)}" for k, v in TIER_ALIASES.items())
            value = f"CASE {value} {cases} ELSE {value} END"
        return value
    if col.kind == "flag":
        if not raw.text:
            return f"TRY_CAST({cell} AS BOOLEAN)"
        cases = [f"WHEN lower({c}) IN ({_words(TRUE_WORDS)}) THEN true "
                 f"WHEN lower({c}) IN ({_words(FALSE_WORDS)}) THEN false" for c in (ref, cell)]
        return f"CASE {' '.join(cases)} END"  # the raw cell first, as for _reading
    if col.kind in ("timestamp", "date"):
        value = f"CAST(TRY_CAST({read} AS TIMESTAMP_NS) AS TIMESTAMP)"  # NULL outside SPAN
        return f"date_trunc('day', {value})" if col.kind == "date" else value
    if col.kind in ("money", "number", "integer"):
        if col.kind == "integer":  # whole and within 64 bits (inf and NaN are not), or none
            return f"CASE WHEN {read} = floor({read}) THEN TRY_CAST({read} AS BIGINT) END"
        return f"CASE WHEN isfinite({read}) THEN {read} END"
    raise AssertionError(col.kind)  # pragma: no cover - the contract only uses the kinds above


def _default(col: Column, value: str, cell: str) -> str:
    if col.name == "stored_value_amount":  # empty: no stored-value payment
        return f"COALESCE({value}, CASE WHEN {cell} IS NULL THEN 0.0 END)"
    return value


def _why(raw: Raw, cell: str, read: str, fmt: str | None) -> str:
    """Why a present cell gives no value."""
    kind = raw.col.kind
    if kind in ("money", "number", "integer"):
        return f"CASE WHEN isfinite({read}) = false THEN 'non_finite' ELSE 'unparseable' END"
    if kind in ("timestamp", "date"):
        ambiguous = (f"WHEN regexp_matches({cell}, {sql_string(_DAY_MONTH)}) THEN 'ambiguous' "
                     if raw.text and not fmt else "")
        return f"CASE WHEN {read} IS NOT NULL THEN 'out_of_range' {ambiguous}ELSE 'unparseable' END"
    return "'unparseable'"


def type_frame(frame: pd.DataFrame, columns: Sequence[Column], *,
               time_zone: str = "Asia/Shanghai",
               formats: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame``'s raw columns typed by the rule, with a ``_problem_<column>`` code column for
    each column where some cell gives no value (the loader's typing; run in DuckDB).

    Parameters
    ----------
    frame : pandas.DataFrame
        Raw cells (text as read, or a Parquet file's typed columns); a column of ``columns``
        the frame lacks is absent from the source.
    columns : sequence of Column
        The contract columns to type.
    time_zone : str
        The chain's time zone.
    formats : mapping, optional
        ``{"timestamp": layout, "date": layout}`` for values that are not ISO 8601.

    Returns
    -------
    pandas.DataFrame
        On ``frame``'s index: ``string``, ``float64``, ``Int64``, ``boolean`` and
        ``datetime64[ns]`` columns by kind, and the problem codes as ``string``.
    """
    present = [c.name for c in columns if c.name in frame.columns]
    arrow = pa.Table.from_pandas(frame[present], preserve_index=False)
    con = _connection().cursor()
    try:
        con.register("_raw_cells", arrow)
        types = dict(con.execute("SELECT column_name, column_type FROM "
                                 "(DESCRIBE _raw_cells)").fetchall())
        raws = [Raw(c, c.name if c.name in types else None, types.get(c.name, "")) for c in columns]
        query = select_sql(raws, "_raw_cells", problems=True, time_zone=time_zone,
                           formats=formats)
        typed = con.sql(query).to_arrow_table()
    finally:
        con.close()
    return _pandas(typed, columns, frame.index)


_con: duckdb.DuckDBPyConnection | None = None


def _connection() -> duckdb.DuckDBPyConnection:
    """The process's DuckDB for typing frames, opened once. Unlike the aggregation backend
    (:mod:`rxrepurchase.core.backend`) it keeps rows in their order, which the loader's frames
    need, without sorting them."""
    global _con
    if _con is None:
        _con = duckdb.connect(config={"preserve_insertion_order": True, "threads": 1})
    return _con


_DTYPES = {"id": "string", "text": "string", "money": "float64", "number": "float64",
           "integer": "Int64", "flag": "boolean", "timestamp": "datetime64[ns]",
           "date": "datetime64[ns]"}
_MAPPED = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(),
           pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}


def _pandas(typed: pa.Table, columns: list[Column], index: pd.Index) -> pd.DataFrame:
    kinds = {c.name: c.kind for c in columns}
    # Only the columns where some cell gives no value get problem codes.
    keep = [name for name, values in zip(typed.column_names, typed.columns, strict=True)
            if not name.startswith("_problem_") or values.null_count < len(values)]
    frame = typed.select(keep).to_pandas(types_mapper=_MAPPED.get, date_as_object=False)
    frame.index = index
    return frame.astype({name: _DTYPES[kinds[name]] for name in frame.columns if name in kinds})
