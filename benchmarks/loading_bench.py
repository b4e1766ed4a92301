"""Speed of ``load_chain`` (reading + full validation) on a demo chain of a given size.

Usage: ``python benchmarks/loading_bench.py [--members N] [--format csv|parquet]``.
Writes the demo chain to a temporary folder, then times the load alone.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import warnings

from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.loading import load_chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=300_000)
    parser.add_argument("--stores", type=int, default=40)
    parser.add_argument("--format", choices=["csv", "parquet"], default="parquet")
    args = parser.parse_args()
    config = DemoConfig(n_members=args.members, n_stores=args.stores)
    with tempfile.TemporaryDirectory() as folder:
        write_demo_chain(folder, config, file_format=args.format)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu_started = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chain = load_chain(folder, as_of=config.end_date)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"format        {args.format}")
    print(f"orders        {len(chain.orders):>12,}")
    print(f"order lines   {len(chain.order_lines):>12,}")
    print(f"load seconds  {seconds:>12.1f}  (CPU {cpu:.1f} s)")
    print(f"orders/s      {len(chain.orders) / seconds:>12,.0f}")
    print(f"peak RSS GB   {peak_gb:>12.1f}  (generation included; before load {rss_before / 1024**2:.1f})")
    print(f"issues        {len(chain.quality.issues)}")


if __name__ == "__main__":
    main()
