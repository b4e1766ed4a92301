"""Benchmark: user / order repurchase rates by store x month on a large synthetic order table.

Run ``.venv/bin/python benchmarks/metrics_bench.py [n_orders]`` (default 10,000,000). Prints the
table size, the machine's load average and the time of
:func:`rxrepurchase.metrics.repurchase_rates` by store x month with the default same-day merge
and with ``purchase_unit="order"``, then by member tier x month (a column looked up in the
members table). Figures, not assertions: the machine is shared and timings vary.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd

from rxrepurchase.metrics import repurchase_rates


def synthetic_members(n_orders: int) -> pd.DataFrame:
    """The members of :func:`synthetic_orders` with a tier (``普通/金卡/钻石/PLUS``)."""
    n_members = max(n_orders // 5, 1)
    tiers = pd.array(["普通", "金卡", "钻石", "PLUS"], dtype="string")
    return pd.DataFrame(
        {
            "member_id": pd.array([f"M{i:08d}" for i in range(n_members)], dtype="string"),
            "tier": tiers.take(np.arange(n_members) % 7 % 4),
        }
    )


def synthetic_orders(n_orders: int, seed: int = 0) -> pd.DataFrame:
    """Orders in the contract's dtypes: 30% walk-ins, ~5 orders per member, 200 stores, 24
    months, 2% zero-paid or refund tickets."""
    rng = np.random.default_rng(seed)
    n_members = max(n_orders // 5, 1)
    member = rng.integers(0, n_members, n_orders)
    walk_in = rng.random(n_orders) < 0.3
    ids = pd.array([f"M{i:08d}" for i in range(n_members)], dtype="string")
    member_id = ids.take(member)
    member_id[walk_in] = pd.NA
    stores = pd.array([f"S{i:03d}" for i in range(200)], dtype="string")
    start = np.datetime64("2024-01-01T00:00", "s")
    seconds = rng.integers(0, 730 * 86400, n_orders)
    paid = np.round(rng.gamma(2.0, 60.0, n_orders), 2)
    paid[rng.random(n_orders) < 0.02] *= -1
    return pd.DataFrame(
        {
            "order_id": pd.array(np.arange(n_orders).astype(str), dtype="string"),
            "member_id": member_id,
            "store_id": stores.take(member % 200),
            "ordered_at": (start + seconds).astype("datetime64[ns]"),
            "paid_amount": paid,
        }
    )


def main(n_orders: int) -> None:
    t0 = time.perf_counter()
    orders = synthetic_orders(n_orders)
    members = synthetic_members(n_orders)
    print(f"generated {len(orders):,} orders in {time.perf_counter() - t0:.1f} s")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    runs = [("store_id", "day"), ("store_id", "order"), ("tier", "day")]
    for by, unit in runs:
        t0 = time.perf_counter()
        rates = repurchase_rates(orders, "M", by=by, members=members, purchase_unit=unit)
        took = time.perf_counter() - t0
        print(
            f"repurchase_rates(window='M', by={by!r}, purchase_unit={unit!r}): "
            f"{took:.1f} s -> {len(rates):,} {by} x month rows"
        )
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
