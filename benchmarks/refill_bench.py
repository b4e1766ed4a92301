"""Benchmark: refill prediction and PDC / MPR on a large synthetic fills table.

Run ``.venv/bin/python benchmarks/refill_bench.py [n_fills]`` (default 3,000,000). Prints the
table size and the time of :func:`rxrepurchase.refill.predict_refills` and
:func:`rxrepurchase.refill.adherence`. Figures, not assertions: the machine is shared and
timings vary.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from rxrepurchase.refill import adherence, predict_refills


def synthetic_fills(n_fills: int, seed: int = 0) -> pd.DataFrame:
    """Fills in the shape :func:`rxrepurchase.refill.refill_fills` returns: 1-15 fills per
    member x product, 30 products, 28-90 day supplies refilled every 0.9-1.3 supplies."""
    rng = np.random.default_rng(seed)
    n_pairs = max(n_fills // 8, 1)
    per_pair = rng.integers(1, 16, n_pairs)
    pair = np.repeat(np.arange(n_pairs), per_pair)[:n_fills]
    supply = rng.choice([28.0, 30.0, 60.0, 90.0], n_pairs)[pair]
    gap = supply * rng.uniform(0.9, 1.3, len(pair))
    first = np.r_[True, pair[1:] != pair[:-1]]
    # Days since the pair's first fill: cumulative gaps restarted at each pair.
    cum = np.cumsum(np.where(first, 0.0, gap))
    since_first = cum - np.maximum.accumulate(np.where(first, cum, 0.0))
    span = pd.Series(since_first).groupby(pair).transform("max").to_numpy()
    # Most pairs' last fill falls in the last 60 days of the 2 years; 20% stopped earlier.
    stopped = np.where(rng.random(n_pairs) < 0.2, rng.uniform(60, 300, n_pairs), 0.0)
    last = 730 - rng.uniform(0, 60, n_pairs) - stopped
    day = last[pair] - span + since_first
    members = pd.array([f"M{i:08d}" for i in range(n_pairs)], dtype="string")
    products = pd.array([f"SKU{i:02d}" for i in range(30)], dtype="string")
    return pd.DataFrame({
        "member_id": members.take(pair),
        "product": products.take(pair % 30),
        "filled_on": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.floor(day), unit="D"),
        "store_id": pd.array(["S001"] * len(pair), dtype="string"),
        "days_supply": supply,
    }).drop_duplicates(["member_id", "product", "filled_on"], ignore_index=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000
    fills = synthetic_fills(n)
    as_of = fills["filled_on"].max()
    print(f"{len(fills):,} fills, {fills[['member_id', 'product']].drop_duplicates().shape[0]:,}"
          " member x products")
    t = time.perf_counter()
    predictions = predict_refills(fills, as_of=as_of)
    print(f"predict_refills: {time.perf_counter() - t:6.1f} s "
          f"({predictions['status'].value_counts().to_dict()})")
    t = time.perf_counter()
    adh = adherence(fills, end=as_of)
    print(f"adherence (365 d): {time.perf_counter() - t:6.1f} s "
          f"(mean PDC of eligible {adh.loc[adh['eligible'], 'pdc'].mean():.3f})")


if __name__ == "__main__":
    main()
