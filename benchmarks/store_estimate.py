"""Estimate a large chain's batch, fits, scores and store reports from measured parts.

    python benchmarks/end_to_end_bench.py --rows 10M,50M --work /tmp/e2e --json /tmp/e2e.json
    python benchmarks/store_estimate.py --e2e /tmp/e2e.json --report-cpu-s 6.3 \\
        --stores 10000 --rows 500M --cores 16 --spark-cores 256

Parts and how each is scaled from the end-to-end benchmark's two chains (CPU seconds, which the
machine's other jobs inflate much less than wall time):

- the batch (validation, slices, RFM tables, repurchase, cohorts): CPU-s of the larger chain,
  grown as the power of the order rows seen between the two chains (above 1: sorts and hash
  tables spill to disk once they outgrow the memory limit);
- the fits: CPU-s per distinct row of the larger chain, times the distinct rows expected,
  which grow as a power of the order rows fitted on the two chains (``(f, r, T)`` rows are
  bounded by the days of history, so they grow slower than members);
- the scores: CPU-s per member (a join of every member with its distinct row);
- the store reports: ``--report-cpu-s`` per store (``benchmarks/report_bench.py``), one fresh
  kernel each, spread over the cores.

On one machine everything shares ``--cores``; on a Spark cluster the batch and the scores run on
``--spark-cores`` executor cores at ``--spark-overhead`` times DuckDB's CPU per row (an
assumption: Spark's per-row cost was not measured on a cluster here), the fits on the driver
(one core), and the reports on ``--cores`` cores of report machines.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import parse_size  # noqa: E402


def _cpu(result: dict, prefix: str = "", names: tuple[str, ...] = ()) -> float:
    return sum(r["cpu_seconds"] for r in result["steps"]
               if r["step"].startswith(prefix) and (not names or r["step"] in names))


def estimate(runs: dict, *, stores: int, rows: int, report_cpu_s: float, cores: int,
             spark_cores: int, spark_overhead: float) -> list[tuple[str, str, float, float, float]]:
    """Rows ``(part, scaling, CPU-s, minutes on one machine, minutes with Spark)``."""
    (small_rows, small), (big_rows, big) = sorted((parse_size(k), v["ours"]) for k, v in runs.items())
    scale = rows / big_rows
    growth = math.log(big["fit_rows"] / small["fit_rows"]) / math.log(big_rows / small_rows)
    spend_growth = math.log(big["spend_rows"] / small["spend_rows"]) / math.log(big_rows / small_rows)
    fit_rows = big["fit_rows"] * scale**growth
    spend_rows = big["spend_rows"] * scale**spend_growth
    batch_growth = math.log(_cpu(big, "batch: ") / _cpu(small, "batch: ")) / math.log(big_rows / small_rows)
    batch = _cpu(big, "batch: ") * scale**batch_growth
    fit_cpu = _cpu(big, names=("fit rows: distinct (f, r, T) and (f, m) rows",))
    bgnbd = _cpu(big, names=("BG/NBD fit (weighted)",)) * fit_rows / big["fit_rows"]
    gamma = _cpu(big, names=("Gamma-Gamma fit (weighted)",)) * spend_rows / big["spend_rows"]
    scores = (_cpu(big, names=("scores for every member -> Parquet",)) + fit_cpu) * scale
    reports = report_cpu_s * stores
    minute = 60.0
    return [
        ("batch", f"{_cpu(big, 'batch: '):,.0f} CPU-s at {big_rows / 1e6:.0f}M rows (grow as rows^{batch_growth:.2f})",
         batch, batch / cores / minute, batch * spark_overhead / spark_cores / minute),
        ("BG/NBD fit", f"{fit_rows:,.0f} distinct rows (grow as rows^{growth:.2f})",
         bgnbd, bgnbd / minute, bgnbd / minute),
        ("Gamma-Gamma fit", f"{spend_rows:,.0f} spend rows (grow as rows^{spend_growth:.2f})",
         gamma, gamma / minute, gamma / minute),
        ("fit rows + scores", f"per member, x {scale:g}",
         scores, scores / cores / minute, scores * spark_overhead / spark_cores / minute),
        ("store reports", f"{report_cpu_s:g} CPU-s x {stores:,} stores",
         reports, reports / cores / minute, reports / cores / minute),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--e2e", type=Path, required=True, help="JSON of end_to_end_bench.py (two sizes)")
    parser.add_argument("--report-cpu-s", type=float, required=True, help="CPU-s of one store report")
    parser.add_argument("--stores", type=int, default=10_000)
    parser.add_argument("--rows", type=parse_size, default=parse_size("500M"), help="the chain's order rows")
    parser.add_argument("--cores", type=int, default=16, help="cores of the one machine (and report machines)")
    parser.add_argument("--spark-cores", type=int, default=256, help="executor cores of the Spark cluster")
    parser.add_argument("--spark-overhead", type=float, default=3.0,
                        help="Spark's CPU per row over DuckDB's (assumed, default 3)")
    args = parser.parse_args(argv)
    runs = json.loads(args.e2e.read_text())
    parts = estimate(runs, stores=args.stores, rows=args.rows, report_cpu_s=args.report_cpu_s,
                     cores=args.cores, spark_cores=args.spark_cores, spark_overhead=args.spark_overhead)
    print(f"{args.stores:,} stores, {args.rows / 1e6:,.0f}M order rows; one machine: {args.cores} cores; "
          f"Spark: {args.spark_cores} executor cores at {args.spark_overhead:g}x DuckDB's CPU per row, "
          f"fits on the driver, reports on {args.cores} cores\n")
    print("| part | scaled from | CPU-s | one machine, min | Spark cluster, min |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, how, cpu, one, spark in parts:
        print(f"| {name} | {how} | {cpu:,.0f} | {one:,.1f} | {spark:,.1f} |")
    one, spark = sum(p[3] for p in parts), sum(p[4] for p in parts)
    print(f"| **total** | | {sum(p[2] for p in parts):,.0f} | {one:,.0f} | {spark:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
