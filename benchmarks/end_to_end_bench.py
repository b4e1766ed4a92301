"""Benchmark: a chain end to end (validate, batch, chain RFM, BG/NBD + Gamma-Gamma fits, scores
for every member), with bare DuckDB and lifetimes side by side, on chains of distinct members.

    python benchmarks/end_to_end_bench.py --rows 10M,50M --work /tmp/e2e
    python benchmarks/end_to_end_bench.py --rows 50M --work /tmp/e2e --reuse --memory-limit 2GB

The chains are made by :func:`rxrepurchase.demo.write_demo_chain` (Parquet, 200 stores, 18
months, about 9.3 order rows per member, every member distinct; written in parts, so a 50M-row
chain needs about 2 GB), kept in ``--work/c<rows>`` for reruns (``--reuse``). Each route runs in
a fresh child process and prints a progress line when each of its steps ends (step, seconds,
CPU seconds, peak resident memory of the step, load average). Routes:

- ours: :func:`rxrepurchase.batch.precompute_chain` (full validation by the contract's rules,
  every store's slice, store x member and chain member RFM, repurchase and cohort tables; its
  own steps are the rows), then the distinct ``(frequency, recency, T)`` rows and the repeat
  buyers' ``(frequency, monetary_value)`` rows from the chain RFM
  (:mod:`rxrepurchase.core.fit_rows`), the weighted BG/NBD and Gamma-Gamma fits, and
  :func:`rxrepurchase.models.score_table` (P(alive), expected purchases in 30 days, 12-month
  CLV for every member) written to Parquet by DuckDB;
- bare DuckDB: one hand-written RFM query over the orders file (no validation) written to
  Parquet, with the same memory limit and threads;
- lifetimes: ``summary_data_from_transaction_data``, ``BetaGeoFitter().fit``,
  ``GammaGammaFitter().fit`` and its ``customer_lifetime_value`` on a share of the members
  (``--lifetimes-sample``, all their orders); the table also gives those seconds divided by the
  share (all members, assuming linear cost, which holds for each of these steps).

CPU seconds are the process's (all its threads); the machine's other jobs inflate wall times,
so the load average is printed with every step.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rfm_core_bench import BARE_SQL, generate  # noqa: E402
from run import AS_OF, GROSS_MARGIN, _peak_mb, _reset_peak, machine, parse_size  # noqa: E402


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class Steps:
    """Times the steps of one route: wall and CPU seconds, peak memory since the last step."""

    def __init__(self, route: str) -> None:
        self.route, self.rows = route, []
        self._mark()

    def _mark(self) -> None:
        _reset_peak()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def done(self, name: str, seconds: float | None = None) -> None:
        """Record the step that ends now (``seconds``: its own figure when it reports one)."""
        row = {"step": name, "seconds": time.perf_counter() - self.wall if seconds is None else seconds,
               "cpu_seconds": time.process_time() - self.cpu, "peak_mb": _peak_mb()}
        self.rows.append(row)
        print(f"  [{self.route}] {name}: {row['seconds']:.1f} s, {row['cpu_seconds']:.1f} CPU-s, "
              f"peak {row['peak_mb']:,.0f} MB (load {_load()})", flush=True)
        self._mark()

    def result(self, **extra) -> dict:
        return {"steps": self.rows, "seconds": sum(r["seconds"] for r in self.rows),
                "cpu_seconds": sum(r["cpu_seconds"] for r in self.rows),
                "peak_mb": max(r["peak_mb"] for r in self.rows), **extra}


def ours(data: Path, out: Path, memory_limit: str, threads: int) -> dict:
    from rxrepurchase import batch
    from rxrepurchase.core import backend
    from rxrepurchase.core.fit_rows import fit_rows, spend_rows
    from rxrepurchase.models import BGNBDModel, GammaGammaModel, score_table

    steps = Steps("ours")
    batch.precompute_chain(data, out / "batch", as_of=AS_OF, memory_limit=memory_limit,
                           threads=threads, overwrite=True,
                           progress=lambda name, seconds: steps.done(f"batch: {name}"))
    duckdb_limit = f"{int(batch.memory_bytes(memory_limit) * batch.DUCKDB_SHARE) // 2**20}MiB"
    con = backend.connect(memory_limit=duckdb_limit, threads=threads, temp_directory=out / "spill")
    rfm = con.read_parquet(out / "batch" / "rfm_chain.parquet")
    rows, spend = fit_rows(rfm).execute(), spend_rows(rfm).execute()
    rows.attrs["time_unit"] = "days"
    steps.done("fit rows: distinct (f, r, T) and (f, m) rows")
    bgnbd = BGNBDModel().fit(rows, weights="members")
    steps.done("BG/NBD fit (weighted)")
    gamma = GammaGammaModel().fit(spend, weights="members")
    steps.done("Gamma-Gamma fit (weighted)")
    scores = score_table(bgnbd, gamma, rfm, gross_margin=GROSS_MARGIN, horizon_days=30, horizon_months=12)
    con.to_parquet(scores, out / "member_scores.parquet")
    steps.done("scores for every member -> Parquet")
    scored = con.read_parquet(out / "member_scores.parquet")
    check = scored.aggregate(members=scored.count(), clv=scored.clv.sum(),
                             no_score=scored.p_alive.isnull().sum()).execute().iloc[0]
    return steps.result(members=int(check["members"]), members_without_score=int(check["no_score"]),
                        clv_total=float(check["clv"]), fit_rows=len(rows), spend_rows=len(spend),
                        repeat_buyers=int(spend["members"].sum()),
                        bgnbd=bgnbd.params_.round(6).tolist(), gamma_gamma=gamma.params_.round(6).tolist())


def bare_duckdb(data: Path, out: Path, memory_limit: str, threads: int) -> dict:
    import duckdb

    steps = Steps("bare DuckDB")
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads,
                                 "preserve_insertion_order": False,
                                 "temp_directory": str(out / "spill")})  # fmt: skip
    query = BARE_SQL.format(orders=data / "orders.parquet", end=AS_OF)
    con.execute(f"COPY ({query}) TO '{out / 'bare_rfm.parquet'}' (FORMAT parquet)")
    steps.done("RFM query -> Parquet")
    members = con.execute(f"SELECT count(*) FROM '{out / 'bare_rfm.parquet'}'").fetchall()[0][0]
    return steps.result(members=int(members))


def plain_lifetimes(data: Path, out: Path, sample: float) -> dict:
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    steps = Steps(f"lifetimes {sample:.0%}")
    table = pq.read_table(data / "orders.parquet", columns=["member_id", "ordered_at", "paid_amount"])
    orders = table.filter(pc.is_valid(table["member_id"])).to_pandas()
    del table
    bucket = pd.util.hash_pandas_object(orders["member_id"], index=False) % 1000
    orders = orders[(bucket < sample * 1000).to_numpy()]  # a share of members, all their orders
    steps.done("read member orders, sample members")
    rfm = summary_data_from_transaction_data(orders, "member_id", "ordered_at", monetary_value_col="paid_amount",
                                             observation_period_end=pd.Timestamp(AS_OF), freq="D")
    del orders
    steps.done("summary_data_from_transaction_data")
    bgf = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
    steps.done("BetaGeoFitter fit")
    buyers = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(buyers["frequency"], buyers["monetary_value"])
    steps.done("GammaGammaFitter fit")
    f, r, T, m = (rfm[c] for c in ("frequency", "recency", "T", "monetary_value"))
    scores = pd.DataFrame({
        "p_alive": bgf.conditional_probability_alive(f, r, T),
        "expected_purchases": bgf.conditional_expected_number_of_purchases_up_to_time(30, f, r, T),
        "clv": GROSS_MARGIN * ggf.customer_lifetime_value(bgf, f, r, T, m, time=12, discount_rate=0.01,
                                                          freq="D").to_numpy(),
    }, index=rfm.index)
    scores.to_parquet(out / "lifetimes_scores.parquet")
    steps.done("scores -> Parquet")
    return steps.result(members=len(rfm), share=sample,
                        bgnbd=[round(float(bgf.params_[k]), 6) for k in ("r", "alpha", "a", "b")],
                        gamma_gamma=[round(float(ggf.params_[k]), 6) for k in ("p", "q", "v")])


def measure(func, *args) -> dict:
    """``func(*args)`` in a fresh Python process; an error is a result, not the end."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(func, *args).result()
        except Exception as exc:  # a failed route is a line of the table
            return {"error": f"{type(exc).__name__}: {exc}"}


def _size_label(rows: int) -> str:
    return f"{rows // 10**6}M" if rows % 10**6 == 0 else f"{rows // 1000}k"


def _print_table(label: str, results: dict, memory_limit: str, n_rows: int, n_members: int) -> None:
    print(f"\n### {label}: {n_rows:,} order rows, {n_members:,} distinct members; DuckDB "
          f"memory_limit {memory_limit}\n")
    print(f"| {'route / step':58s} | seconds | CPU-s | peak MB |")
    print(f"|{'-' * 60}|--------:|------:|--------:|")
    for route, result in results.items():
        if "error" in result:
            print(f"| {route:58s} | failed: {result['error'][:120]} |")
            continue
        for row in result["steps"]:
            print(f"| {'  ' + row['step']:58s} | {row['seconds']:7.1f} | {row['cpu_seconds']:5.1f} | "
                  f"{row['peak_mb']:7,.0f} |")
        print(f"| {'**' + route + ' total**':58s} | {result['seconds']:7.1f} | {result['cpu_seconds']:5.1f} | "
              f"{result['peak_mb']:7,.0f} |")
        if "share" in result and result["share"] < 1:
            # Reading the orders is the same for any share; the other steps grow with it.
            share, (read, *rest) = result["share"], result["steps"]
            seconds = read["seconds"] + sum(r["seconds"] for r in rest) / share
            cpu = read["cpu_seconds"] + sum(r["cpu_seconds"] for r in rest) / share
            print(f"| {f'  {route}, all members (steps after reading / {share:g})':58s} | "
                  f"{seconds:7.0f} | {cpu:5.0f} |       - |")
    mine = results.get("ours", {})
    if "error" not in mine and mine:
        from rxrepurchase.batch import DUCKDB_SHARE, memory_bytes

        limit_mb = memory_bytes(memory_limit) / 2**20
        print(f"\nours: {mine['members']:,} members scored ({mine['members_without_score']} without a "
              f"score), {mine['fit_rows']:,} distinct (f, r, T) rows, {mine['spend_rows']:,} spend rows "
              f"for {mine['repeat_buyers']:,} repeat buyers; BG/NBD {mine['bgnbd']}, Gamma-Gamma "
              f"{mine['gamma_gamma']}")
        print(f"peak RSS {mine['peak_mb']:,.0f} MB against --memory-limit {memory_limit} "
              f"({limit_mb:,.0f} MB, of which DuckDB {DUCKDB_SHARE:.0%}): {mine['peak_mb'] / limit_mb:.2f}x")
    bare = results.get("bare DuckDB", {})
    if "error" not in bare and "error" not in mine and bare and mine:
        rfm_steps = [r["seconds"] for r in mine["steps"] if r["step"] in ("batch: read and validate",
                                                                          "batch: chain RFM")]
        print(f"ours, read and validate + chain RFM: {sum(rfm_steps):.1f} s; bare DuckDB RFM: "
              f"{bare['seconds']:.1f} s ({sum(rfm_steps) / bare['seconds']:.1f}x)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10M,50M", help="order rows of the chains, comma-separated")
    parser.add_argument("--work", type=Path, required=True, help="folder for the chains and outputs")
    parser.add_argument("--reuse", action="store_true", help="reuse chains already in --work")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit (default 4GB)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--lifetimes-sample", type=float, default=0.1,
                        help="share of members lifetimes runs on (default 0.1)")
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    print(machine())
    everything = {}
    for rows in (parse_size(r) for r in args.rows.split(",")):
        label = _size_label(rows)
        data, out = args.work / f"c{label.lower()}", args.work / f"out{label.lower()}"
        out.mkdir(parents=True, exist_ok=True)
        results: dict[str, dict] = {}
        if not (args.reuse and (data / "orders.parquet").exists()):
            made = measure(generate, data, rows)
            print(f"{label}: generated the chain (not part of any total): {made}", flush=True)
            if "error" in made:
                return 1
        import duckdb

        n_rows, n_members = duckdb.sql(f"SELECT count(*), count(DISTINCT member_id) "
                                       f"FROM read_parquet('{data / 'orders.parquet'}')").fetchall()[0]
        print(f"{label}: {n_rows:,} order rows, {n_members:,} distinct members", flush=True)
        results["ours"] = measure(ours, data, out, args.memory_limit, args.threads)
        if not args.skip_bare:
            results["bare DuckDB"] = measure(bare_duckdb, data, out, args.memory_limit, args.threads)
        if not args.skip_lifetimes:
            results[f"lifetimes ({args.lifetimes_sample:.0%} of members)"] = measure(
                plain_lifetimes, data, out, args.lifetimes_sample)
        _print_table(label, results, args.memory_limit, n_rows, n_members)
        everything[label] = results
    print(f"\nload average at the end: {_load()}")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
