"""Load a chain's export folder into validated, typed tables.

(Validation rules are being added; the API below is stable.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rxrepurchase.contract import TABLES
from rxrepurchase.errors import DataContractError

__all__ = ["Chain", "DataQualityReport", "load_chain"]


@dataclass
class DataQualityReport:
    """Every row the loader excluded or warned about, by table and rule."""

    issues: list = field(default_factory=list)


@dataclass
class Chain:
    """A chain's validated tables: ``stores``, ``members``, ``orders``, ``order_lines`` and
    ``campaigns`` (derived from orders when the export has none)."""

    stores: pd.DataFrame
    members: pd.DataFrame
    orders: pd.DataFrame
    order_lines: pd.DataFrame
    campaigns: pd.DataFrame
    as_of: pd.Timestamp
    quality: DataQualityReport
    source: Path | None = None


def _coerce(df: pd.DataFrame, table: str) -> pd.DataFrame:
    for col in TABLES[table].columns:
        if col.name not in df:
            continue
        s = df[col.name]
        if col.kind in ("id", "text"):
            df[col.name] = s.astype("string")
        elif col.kind in ("timestamp", "date"):
            df[col.name] = pd.to_datetime(s)
        elif col.kind in ("money", "number"):
            df[col.name] = pd.to_numeric(s).astype("float64")
        elif col.kind == "integer":
            df[col.name] = pd.to_numeric(s).astype("Int64")
        elif col.kind == "flag":
            df[col.name] = s.astype(str).str.lower().isin(["true", "1", "yes", "y"])
    return df


def load_chain(path, *, as_of=None, encoding=None, mapping=None, strict=False) -> Chain:
    folder = Path(path)
    tables = {}
    for name, spec in TABLES.items():
        csv, pq = folder / f"{name}.csv", folder / f"{name}.parquet"
        if pq.exists():
            df = pd.read_parquet(pq)
        elif csv.exists():
            df = pd.read_csv(csv, dtype=str, encoding=encoding or "utf-8")
        elif spec.required:
            raise DataContractError(f"{folder}: no {name}.csv or {name}.parquet")
        else:
            df = None
        tables[name] = _coerce(df, name) if df is not None else None
    return Chain(
        stores=tables["stores"],
        members=tables["members"],
        orders=tables["orders"],
        order_lines=tables["order_lines"],
        campaigns=tables["campaigns"],
        as_of=pd.Timestamp(as_of) if as_of else pd.Timestamp.today().normalize(),
        quality=DataQualityReport(),
        source=folder,
    )
