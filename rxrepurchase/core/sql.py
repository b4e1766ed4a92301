"""SQL text, for the few statements written as text rather than Ibis expressions (file paths
in DuckDB's ``read_csv`` / ``read_parquet`` / ``COPY``, the typing rule of
:mod:`rxrepurchase.core.cells`): quoting done in one place, so a value or a column named by a
file can never end a literal early."""

from __future__ import annotations

__all__ = ["sql_name", "sql_string"]


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (quotes doubled), for the few statements written as
    SQL text (file paths in DuckDB's ``read_parquet`` / ``COPY``, values in typing rules)."""
    return "'" + text.replace("'", "''") + "'"


def sql_name(name: str) -> str:
    """``name`` as a quoted SQL identifier (double quotes doubled): a column named by a file."""
    return '"' + name.replace('"', '""') + '"'
