"""Benchmark: RFM summary and BG/NBD fitting at chain scale.

Simulates members from a BG/NBD model (days), turns them into order rows, and prints:

- rxrepurchase's ``rfm_summary`` time vs ``lifetimes.utils.summary_data_from_transaction_data``
  (``freq="D"``) on the same orders, and whether they agree;
- BG/NBD fit time on unique (frequency, recency, T) rows with ``weights=`` (``BGNBDModel``) vs
  plain ``lifetimes.BetaGeoFitter`` on every member, and the largest parameter difference.

Usage::

    python benchmarks/models_bench.py --members 1000000
    python benchmarks/models_bench.py --members 5000000 --skip-lifetimes-summary
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data

from rxrepurchase.models import BGNBDModel, simulate_bgnbd
from rxrepurchase.rfm import rfm_summary

TRUTH = {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.5}  # alpha in days
END = pd.Timestamp("2025-12-31")


def simulated_orders(n_members: int, seed: int) -> pd.DataFrame:
    """Order rows whose member histories follow the BG/NBD model, observed for up to 2 years."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, 731, n_members)
    sim = simulate_bgnbd(n_members, T=T, seed=seed, **TRUTH)
    frequency = sim["frequency"].to_numpy()
    recency = np.floor(sim["recency"].to_numpy()).astype(np.int64)
    first_day = (END - pd.to_timedelta(T, unit="D")).to_numpy()
    # Rows per member: the first purchase, x - 1 purchases inside (0, recency), the last one.
    per_member = 1 + frequency
    member = np.repeat(np.arange(n_members), per_member)
    position = np.arange(len(member)) - np.repeat(np.cumsum(per_member) - per_member, per_member)
    last = position == np.repeat(per_member - 1, per_member)
    offset = np.floor(rng.random(len(member)) * np.repeat(recency, per_member)).astype(np.int64)
    offset = np.where(position == 0, 0, np.where(last, np.repeat(recency, per_member), offset))
    seconds = rng.integers(8 * 3600, 22 * 3600, len(member))
    ids = np.char.add("M", np.char.zfill(member.astype(str), 8))
    return pd.DataFrame(
        {
            "member_id": pd.array(ids, dtype="string"),
            "ordered_at": first_day[member]
            + offset.astype("timedelta64[D]")
            + seconds.astype("timedelta64[s]"),
            "paid_amount": rng.gamma(2.0, 40.0, len(member)).round(2),
        }
    )


class Clock:
    """Wall time and this process's CPU time of one call (CPU time is what a busy shared
    machine does not inflate)."""

    def __init__(self, call):
        wall, cpu = time.perf_counter(), time.process_time()
        self.result = call()
        self.wall = time.perf_counter() - wall
        self.cpu = time.process_time() - cpu

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s (CPU {self.cpu:6.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--skip-lifetimes-summary",
        action="store_true",
        help="do not time lifetimes' summary_data_from_transaction_data (slow at millions)",
    )
    args = parser.parse_args()

    simulation = Clock(lambda: simulated_orders(args.members, args.seed))
    orders = simulation.result
    print(f"simulated {args.members:,} members, {len(orders):,} order rows in {simulation}")

    ours = Clock(lambda: rfm_summary(orders, as_of=END))
    rfm = ours.result
    print(f"rfm_summary (rxrepurchase):              {ours}")
    if not args.skip_lifetimes_summary:
        try:
            theirs = Clock(
                lambda: summary_data_from_transaction_data(
                    orders, "member_id", "ordered_at", "paid_amount", observation_period_end=END, freq="D"
                )
            )
        except Exception as exc:  # report what breaks on current pandas instead of stopping
            print(f"lifetimes summary_data_from_transaction_data failed: {type(exc).__name__}: {exc}")
        else:
            reference = theirs.result.reindex(rfm.index)
            same = all(
                np.allclose(rfm[c].to_numpy(float), reference[c].to_numpy(float))
                for c in ["frequency", "recency", "T", "monetary_value"]
            )
            print(
                f"summary_data_from_transaction_data (D): {theirs}  "
                f"ratio {theirs.wall / ours.wall:.1f}x, same result: {same}"
            )

    compressed = Clock(lambda: BGNBDModel().fit(rfm))
    model = compressed.result
    print(
        f"BG/NBD fit on {model.n_unique_rows_:,} unique rows (weights=): {compressed}  "
        f"params {model.params_.round(4).to_dict()}"
    )
    f, r, T = (rfm[c].to_numpy() for c in ["frequency", "recency", "T"])
    uncompressed = Clock(lambda: BetaGeoFitter().fit(f, r, T))
    difference = np.max(np.abs(uncompressed.result.params_.to_numpy() / model.params_.to_numpy() - 1))
    print(
        f"BG/NBD fit, plain lifetimes on {len(rfm):,} members: {uncompressed}  "
        f"ratio {uncompressed.wall / compressed.wall:.1f}x, "
        f"max relative parameter difference {difference:.1e}"
    )
    print(f"true parameters (days): {TRUTH}")


if __name__ == "__main__":
    main()
