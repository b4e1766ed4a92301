"""CPU cost of reading an export: ``load_chain`` and the engine's validated views, which both
type the cells by :mod:`rxrepurchase.core.cells`.

Usage::

    python benchmarks/typing_bench.py --members 11000 --format csv --work /tmp/typing
    # the same with another version of the package, for a before/after table:
    git archive <commit> rxrepurchase | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/typing_bench.py --members 11000 --format csv --work /tmp/typing

The demo chain is written once into ``--work`` and reused. Each figure is the best of
``--repeat`` runs in this process, in CPU seconds (the machine is shared; wall time is noisy).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from rxrepurchase import engine
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.loading import load_chain


def best_cpu(run, repeat: int) -> float:
    spent = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        spent.append(time.process_time() - started)
    return min(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=11_000)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--work", type=Path, required=True, help="folder for the demo chains")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = DemoConfig(n_members=args.members, n_stores=args.stores)
    folder = args.work / f"chain_{args.format}_{args.members}"
    if not folder.exists():
        write_demo_chain(folder, config, file_format=args.format)

    def load():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_chain(folder, as_of=config.end_date)

    def views():
        with engine.ChainSource(folder, as_of=config.end_date, threads=2) as src:
            engine.rfm_summary(src)
            src.row_counts()

    chain = load()
    print(f"chain         {args.format}, {len(chain.orders):,} orders, "
          f"{len(chain.order_lines):,} lines")
    print(f"load_chain    {best_cpu(load, args.repeat):6.2f} CPU-s")
    print(f"engine        {best_cpu(views, args.repeat):6.2f} CPU-s "
          "(open with full validation, rfm_summary, row_counts)")


if __name__ == "__main__":
    main()
