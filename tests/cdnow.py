"""lifetimes' raw CDNOW 1/10 sample, the published benchmark the model tests reproduce."""

from __future__ import annotations

import importlib.resources

import pandas as pd


def read_cdnow_sample() -> pd.DataFrame:
    """Columns: master id, sample customer id, date (YYYYMMDD), number of CDs, dollar value.

    Read with importlib.resources: ``import lifetimes.datasets`` needs pkg_resources.
    """
    path = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    with importlib.resources.as_file(path) as file:
        raw = pd.read_csv(
            file,
            sep=r"\s+",
            header=None,
            names=["master_id", "customer_id", "date", "cds", "amount"],
            dtype={"master_id": str, "customer_id": str, "date": str},
        )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw
