"""Speed of the demo chain generator: rows per second at a given size.

Usage: ``python benchmarks/demo_bench.py [--members N] [--stores K] [--months M]``
(default 1,000,000 members, about 10 million orders).
"""

from __future__ import annotations

import argparse
import resource
import time

from rxrepurchase.demo import DemoConfig, generate_demo_chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=40)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config = DemoConfig(n_members=args.members, n_stores=args.stores, months=args.months, seed=args.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    chain = generate_demo_chain(config)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    n_orders, n_lines = len(chain.orders), len(chain.order_lines)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"members      {args.members:>12,}")
    print(f"orders       {n_orders:>12,}")
    print(f"order lines  {n_lines:>12,}")
    print(f"seconds      {seconds:>12.1f}")
    print(f"CPU seconds  {cpu:>12.1f}  (wall time suffers when other jobs share the cores)")
    print(f"orders/s     {n_orders / seconds:>12,.0f}")
    print(f"lines/s      {n_lines / seconds:>12,.0f}")
    print(f"peak RSS GB  {peak_gb:>12.1f}")


if __name__ == "__main__":
    main()
