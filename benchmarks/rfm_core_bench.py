"""Benchmark: RFM through the core against bare DuckDB SQL and lifetimes, on distinct members.

    python benchmarks/rfm_core_bench.py --rows 10M --work /tmp/rfm10m
    python benchmarks/rfm_core_bench.py --rows 50M --work /tmp/rfm50m --lifetimes-sample 0.2

The chain is made by :func:`rxrepurchase.demo.write_demo_chain` with as many distinct members
as the size needs (about 9.3 order rows per member; never a copied chain), as Parquet, and kept
in ``--work`` for reruns (``--reuse``). Each measurement runs in a fresh child process; its peak
memory is that process's peak resident set during the timed part (imports included). Rows:

- ours: ``engine.ChainSource(validate="full")`` (every exclusion rule of the loader, keys and
  references included) and ``engine.rfm_summary`` -- the core's Ibis expressions on DuckDB;
- ours, files trusted: the same with ``validate="none"``;
- ours, pandas in/out: the orders read from Parquet into pandas, then ``rfm.rfm_summary``;
- bare DuckDB SQL: one hand-written query over the Parquet file giving the same columns
  (frequency, recency, T, litt, monetary value, first and last purchase), no validation;
- bare DuckDB SQL + the same checks by hand: the floor of full validation. Before the RFM
  query, the work no validation can skip, written as plain SQL: the required columns of every
  keyed table read once (empty values counted), each key grouped for repeats, the orders'
  members and stores looked up; order lines are left out, as RFM does not read them and
  ``ChainSource`` checks them only when queried;
- lifetimes: ``summary_data_from_transaction_data`` on the member orders read into pandas
  (frequency, recency, T, monetary value only), on all members or a share of them
  (``--lifetimes-sample``), as the table says.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import AS_OF, ROWS_PER_MEMBER, Timed, machine, parse_size  # noqa: E402

MEMORY_LIMIT = "4GB"


class Measured(Timed):
    """:class:`run.Timed` plus the process's CPU seconds (all threads): the fair comparison
    on a machine other work also loads."""

    def __enter__(self) -> Measured:
        self.cpu_start = time.process_time()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.cpu = time.process_time() - self.cpu_start

    def result(self, **more) -> dict:
        return {"seconds": self.seconds, "cpu": self.cpu, "peak_mb": self.peak_mb, **more}

BARE_SQL = """
WITH days AS (
    SELECT member_id, CAST(ordered_at AS DATE) AS day, sum(paid_amount) AS amount
    FROM read_parquet('{orders}')
    WHERE member_id IS NOT NULL AND CAST(ordered_at AS DATE) <= DATE '{end}'
    GROUP BY ALL
), gaps AS (
    SELECT *, day - lag(day) OVER (PARTITION BY member_id ORDER BY day) AS gap FROM days
)
SELECT member_id, count(*) - 1 AS frequency, max(day) - min(day) AS recency,
    DATE '{end}' - min(day) AS T, coalesce(sum(ln(gap)), 0) AS litt,
    CASE WHEN count(*) > 1
        THEN (sum(amount) - sum(amount) FILTER (WHERE gap IS NULL)) / (count(*) - 1)
        ELSE 0 END AS monetary_value,
    min(day) AS first_purchase, max(day) AS last_purchase
FROM gaps GROUP BY member_id ORDER BY member_id
"""


def checks_sql(data: Path) -> list[str]:
    """Hand-written SQL doing the work full validation cannot skip before an RFM query."""
    from rxrepurchase.contract import TABLES

    def scan(name: str) -> str:
        return f"read_parquet('{data / (name + '.parquet')}')"

    out = []
    for name, table in TABLES.items():
        if table.key is None or not (data / f"{name}.parquet").exists():
            continue
        empty = " OR ".join(f'"{c.name}" IS NULL' for c in table.columns if not c.nullable)
        out.append(f"SELECT count(*) FILTER (WHERE {empty}) FROM {scan(name)}")
        out.append(f'SELECT count(*) FROM (SELECT "{table.key}" FROM {scan(name)} '
                   f'GROUP BY ALL HAVING count(*) > 1)')
    for col, ref in (("member_id", "members"), ("store_id", "stores")):
        out.append(f"SELECT count(*) FROM (SELECT DISTINCT {col} FROM {scan('orders')} "
                   f"WHERE {col} IS NOT NULL) ANTI JOIN {scan(ref)} USING ({col})")
    return out


def generate(data: Path, rows: int) -> dict:
    from rxrepurchase.demo import DemoConfig, write_demo_chain

    config = DemoConfig(n_members=max(1000, round(rows / ROWS_PER_MEMBER)), n_stores=200,
                        months=18, seed=11, end_date=AS_OF)  # fmt: skip
    with Measured() as t:
        write_demo_chain(data, config, file_format="parquet", overwrite=True)
    return t.result(members=config.n_members)


def ours(data: Path, validate: str) -> dict:
    from rxrepurchase import engine

    with Measured() as t:
        with engine.ChainSource(data, as_of=AS_OF, memory_limit=MEMORY_LIMIT, threads=2,
                                validate=validate, temp_directory=data / "duckdb_tmp") as src:  # fmt: skip
            summary = engine.rfm_summary(src, as_of=AS_OF)
    return t.result(members=len(summary), repeat_purchases=int(summary["frequency"].sum()))


def ours_pandas(data: Path) -> dict:
    import pandas as pd

    from rxrepurchase import rfm

    with Measured() as t:
        orders = pd.read_parquet(data / "orders.parquet", columns=["member_id", "ordered_at", "paid_amount"])
        summary = rfm.rfm_summary(orders, as_of=AS_OF)
    return t.result(members=len(summary), repeat_purchases=int(summary["frequency"].sum()))


def bare_sql(data: Path, checks: bool = False) -> dict:
    import duckdb
    import pandas  # noqa: F401  (imported before timing, as the other rows import it)

    queries = checks_sql(data) if checks else []
    with Measured() as t:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 2,
                                     "preserve_insertion_order": False})  # fmt: skip
        for query in queries:
            con.execute(query).fetchall()
        summary = con.sql(BARE_SQL.format(orders=data / "orders.parquet", end=AS_OF)).to_arrow_table().to_pandas()
    return t.result(members=len(summary), repeat_purchases=int(summary["frequency"].sum()))


def plain_lifetimes(data: Path, sample: float) -> dict:
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from lifetimes.utils import summary_data_from_transaction_data

    with Measured() as t:
        table = pq.read_table(data / "orders.parquet", columns=["member_id", "ordered_at", "paid_amount"])
        orders = table.filter(pc.is_valid(table["member_id"])).to_pandas()
        if sample < 1:  # a share of members with all their orders
            bucket = pd.util.hash_pandas_object(orders["member_id"], index=False) % 1000
            orders = orders[(bucket < sample * 1000).to_numpy()]
        summary = summary_data_from_transaction_data(
            orders, "member_id", "ordered_at", monetary_value_col="paid_amount",
            observation_period_end=pd.Timestamp(AS_OF), freq="D",
        )
    return t.result(members=len(summary), repeat_purchases=int(summary["frequency"].sum()),
                    rows=len(orders))


def measure(func, *args) -> dict:
    """``func(*args)`` in a fresh Python process (its own peak memory); errors as results."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(func, *args).result()
        except Exception as exc:  # a failed baseline is a line of the table, not the end
            return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_size, default=parse_size("10M"),
                        help="order rows of the demo chain (default 10M)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the chain")
    parser.add_argument("--reuse", action="store_true", help="reuse the chain already in --work")
    parser.add_argument("--lifetimes-sample", type=float, default=1.0,
                        help="share of members lifetimes summarises (default 1: all)")
    args = parser.parse_args(argv)
    data = args.work / "chain"
    print(machine())
    if not (args.reuse and (data / "orders.parquet").exists()):
        made = measure(generate, data, args.rows)
        print(f"generated the demo chain: {made}")
        if "error" in made:
            return 1
    import duckdb

    n_rows, n_members = duckdb.sql(
        f"SELECT count(*), count(DISTINCT member_id) FROM read_parquet('{data / 'orders.parquet'}')"
    ).fetchall()[0]
    print(f"orders.parquet: {n_rows:,} order rows, {n_members:,} distinct members; "
          f"DuckDB memory_limit {MEMORY_LIMIT}, 2 threads\n")  # fmt: skip
    share = args.lifetimes_sample
    runs = [
        ("ours: full validation + RFM (core on DuckDB)", ours, data, "full"),
        ("ours: files trusted (validate='none') + RFM", ours, data, "none"),
        ("ours: pandas in/out (read Parquet + rfm_summary)", ours_pandas, data),
        ("bare DuckDB SQL on the Parquet file", bare_sql, data),
        ("bare DuckDB SQL + the same checks by hand (floor)", bare_sql, data, True),
        (f"lifetimes summary_data_from_transaction_data ({share:.0%} of members)",
         plain_lifetimes, data, share),
    ]  # fmt: skip
    results = {}
    print(f"| {'what':62s} | seconds | CPU s | peak MB |    members | repeat purchases |")
    print(f"|{'-' * 64}|---------|-------|---------|------------|------------------|")
    for name, func, *call in runs:
        result = results[name] = measure(func, *call)
        if "error" in result:
            print(f"| {name:62s} | failed: {result['error'][:80]} |")
            continue
        print(f"| {name:62s} | {result['seconds']:7.1f} | {result['cpu']:5.1f} | {result['peak_mb']:7,.0f} | "
              f"{result['members']:10,} | {result['repeat_purchases']:16,} |", flush=True)  # fmt: skip
    full = results[runs[0][0]]
    print()
    for base, label in ((results[runs[3][0]], "bare DuckDB SQL"), (results[runs[4][0]], "the floor")):
        if "error" not in full and "error" not in base:
            print(f"ours (full validation) / {label}: {full['seconds'] / base['seconds']:.2f}x time, "
                  f"{full['cpu'] / base['cpu']:.2f}x CPU, {full['peak_mb'] / base['peak_mb']:.2f}x peak memory")
    print(f"load average after: {machine().split('load average ')[1].split(';')[0]}")
    if args.rows < parse_size("50M"):
        print("50M rows (written in parts, about 15 min and 2 GB): python benchmarks/rfm_core_bench.py "
              "--rows 50M --work /tmp/rfm50m --lifetimes-sample 0.2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
