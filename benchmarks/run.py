"""Benchmark rxrepurchase against the plain lifetimes + pandas route, stage by stage.

    python benchmarks/run.py --rows 10M          # or: make bench (1M rows)
    python benchmarks/run.py --rows 50M --skip-lifetimes

For each stage the script prints wall time and peak memory of the rxrepurchase route and of
the plain route (``lifetimes.utils.summary_data_from_transaction_data``, an uncompressed
``BetaGeoFitter().fit``, lifetimes' own predictions), measured side by side in the same run,
and the ratio plain / rxrepurchase. Each measurement runs in its own child process, and its
peak memory is the peak resident set of that process during the timed part only (the kernel's
high-water mark is reset first), so stages do not contaminate each other.

Data: the demo chain (:func:`rxrepurchase.demo.write_demo_chain`, Parquet), about 9.3 order
rows per member, every member distinct at any size (written in parts). ``--fit-members`` /
``--score-members`` above the chain's members resample its RFM rows, which repeats rows and
flatters the compressed fit and scoring: use them to time pandas, not for figures.
The whole chain end to end: ``benchmarks/end_to_end_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS_PER_MEMBER = 9.3  # demo chain: order rows (walk-ins included) per member
AS_OF = "2026-09-30"
GROSS_MARGIN = 0.3


def parse_size(text: str) -> int:
    """``"10M"``, ``"500k"``, ``"2_000"`` -> an integer."""
    text = str(text).strip().replace("_", "").lower()
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "kmg" else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 10M, 500k)") from None


# --------------------------------------------------------------------------- measuring


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux; no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    """Peak resident memory (MB) since the last reset; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timed:
    """Context manager: wall time and peak memory of the block."""

    def __enter__(self) -> Timed:
        _reset_peak()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.peak_mb = _peak_mb()


# --------------------------------------------------------------------------- stages (children)


def _orders_frame(data: Path, members_only: bool):
    import pandas as pd

    orders = pd.read_parquet(data / "orders.parquet", columns=["member_id", "ordered_at", "paid_amount"])
    if members_only:
        orders = orders[orders["member_id"].notna()]
    return orders


def _rfm_input(work: Path, n_members: int):
    """The chain's RFM summary (days), resampled with replacement to ``n_members`` rows."""
    import numpy as np
    import pandas as pd

    rfm = pd.read_parquet(work / "rfm_engine.parquet")
    if n_members and n_members != len(rfm):
        rows = np.random.default_rng(1).integers(0, len(rfm), n_members)
        rfm = rfm.iloc[rows].reset_index(drop=True)
    rfm.attrs["time_unit"] = "days"
    return rfm


def stage_generate(data: Path, work: Path, opts: dict) -> dict:
    from rxrepurchase.demo import DemoConfig, write_demo_chain

    config = DemoConfig(
        n_members=max(1000, round(opts["rows"] / ROWS_PER_MEMBER)),
        n_stores=opts["stores"], months=18, seed=11, end_date=AS_OF,
    )
    with Timed() as t:  # written in parts: every member distinct at any size
        write_demo_chain(data, config, file_format="parquet", overwrite=True)
    return {"seconds": t.seconds, "peak_mb": t.peak_mb}


def stage_rfm_engine(data: Path, work: Path, opts: dict) -> dict:
    from rxrepurchase import engine

    with Timed() as t:
        with engine.ChainSource(
            data, as_of=AS_OF, memory_limit=opts["memory_limit"], validate=opts["validate"],
            temp_directory=work / "duckdb_tmp",
        ) as src:
            rfm = engine.rfm_summary(src, as_of=AS_OF)
    if opts["validate"] == "full":
        rfm.attrs = {}  # Parquet metadata cannot hold the Timestamp attrs
        rfm.to_parquet(work / "rfm_engine.parquet")
    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(rfm)}


def stage_rfm_pandas(data: Path, work: Path, opts: dict) -> dict:
    from rxrepurchase import rfm

    with Timed() as t:
        summary = rfm.rfm_summary(_orders_frame(data, False), as_of=AS_OF)
    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(summary)}


def stage_rfm_lifetimes(data: Path, work: Path, opts: dict) -> dict:
    import numpy as np
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    with Timed() as t:
        summary = summary_data_from_transaction_data(
            _orders_frame(data, True), "member_id", "ordered_at", monetary_value_col="paid_amount",
            observation_period_end=AS_OF, freq="D",
        )
    ours = pd.read_parquet(work / "rfm_engine.parquet")
    summary = summary.reindex(ours.index)
    diff = {
        c: float(np.nanmax(np.abs(summary[c].to_numpy() - ours[c].to_numpy())))
        for c in ("frequency", "recency", "T", "monetary_value")
    }
    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(summary),
            "max_abs_diff_vs_engine": diff}


def stage_fit_rx(data: Path, work: Path, opts: dict) -> dict:
    from rxrepurchase.models import BGNBDModel, GammaGammaModel

    rfm = _rfm_input(work, opts["fit_members"])
    with Timed() as t:
        bgf = BGNBDModel().fit(rfm)
    with Timed() as g:
        ggf = GammaGammaModel().fit(rfm)
    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(rfm),
            "unique_rows": bgf.n_unique_rows_, "params": bgf.params_.tolist(),
            "gg_seconds": g.seconds, "gg_peak_mb": g.peak_mb, "gg_params": ggf.params_.tolist()}


def stage_fit_lifetimes(data: Path, work: Path, opts: dict) -> dict:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    rfm = _rfm_input(work, opts["fit_members"])
    f, r, T = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    with Timed() as t:
        bgf = BetaGeoFitter().fit(f, r, T)
    repeat = (rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)
    with Timed() as g:
        ggf = GammaGammaFitter().fit(rfm.loc[repeat, "frequency"], rfm.loc[repeat, "monetary_value"])
    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(rfm),
            "params": [float(bgf.params_[k]) for k in ("r", "alpha", "a", "b")],
            "gg_seconds": g.seconds, "gg_peak_mb": g.peak_mb,
            "gg_params": [float(ggf.params_[k]) for k in ("p", "q", "v")]}


def _fitted(rfm):
    from rxrepurchase.models import BGNBDModel, GammaGammaModel

    return BGNBDModel().fit(rfm), GammaGammaModel().fit(rfm)


def stage_score_rx(data: Path, work: Path, opts: dict) -> dict:
    from rxrepurchase.models import score_members

    rfm = _rfm_input(work, opts["score_members"])
    bgf, ggf = _fitted(rfm)
    with Timed() as t:
        scores = score_members(bgf, ggf, rfm, gross_margin=GROSS_MARGIN, horizon_days=30, horizon_months=12)
    scores[["p_alive", "expected_purchases", "clv"]].to_parquet(work / "scores_rx.parquet")
    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(scores)}


def stage_score_lifetimes(data: Path, work: Path, opts: dict) -> dict:
    import numpy as np
    import pandas as pd

    rfm = _rfm_input(work, opts["score_members"])
    bgf, ggf = _fitted(rfm)  # lifetimes' fitters, fitted as above
    f, r, T, m = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
    with Timed() as t:
        p_alive = bgf.fitter_.conditional_probability_alive(f, r, T)
        expected = bgf.fitter_.conditional_expected_number_of_purchases_up_to_time(30, f, r, T)
        clv = ggf.fitter_.customer_lifetime_value(
            bgf.fitter_, pd.Series(f), pd.Series(r), pd.Series(T), pd.Series(m), time=12,
            discount_rate=0.01, freq="D",
        )
    ours = pd.read_parquet(work / "scores_rx.parquet")

    def rel(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        return float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))

    return {"seconds": t.seconds, "peak_mb": t.peak_mb, "members": len(rfm),
            "max_rel_diff": {"p_alive": rel(p_alive, ours["p_alive"]),
                             "expected_purchases": rel(expected, ours["expected_purchases"]),
                             "clv": rel(GROSS_MARGIN * np.asarray(clv), ours["clv"])}}


def stage_report(data: Path, work: Path, opts: dict) -> dict:
    """A report run on a few stores of a chain, and where a store's time goes."""
    import pickle
    import statistics

    import nbformat
    import papermill as pm

    from rxrepurchase import batch, rfm
    from rxrepurchase.demo import DemoConfig, write_demo_chain
    from rxrepurchase.loading import load_chain
    from rxrepurchase.models import BGNBDModel, GammaGammaModel
    from rxrepurchase.reporting import (
        KERNEL_NAME,
        _private_kernel_config,
        notebook_to_html,
        run_reports,
    )

    chain_dir = work / "report_chain"
    config = DemoConfig(n_members=max(2000, round(opts["report_rows"] / ROWS_PER_MEMBER)),
                        n_stores=opts["stores"], months=18, seed=5, end_date=AS_OF)
    write_demo_chain(chain_dir, config, file_format="parquet", overwrite=True)
    out = {"stores_in_chain": opts["stores"], "stores_run": opts["report_stores"]}

    with Timed() as t:
        chain = load_chain(chain_dir, as_of=AS_OF)
    out["load_chain_s"] = t.seconds
    out["orders"] = len(chain.orders)
    cache = work / "chain.pickle"
    with open(cache, "wb") as f:
        pickle.dump(chain, f, protocol=pickle.HIGHEST_PROTOCOL)
    with Timed() as t:
        with open(cache, "rb") as f:
            pickle.load(f)
    out["unpickle_chain_s"] = t.seconds
    with Timed() as t:
        batch.precompute_chain(chain_dir, work / "batch", as_of=AS_OF, overwrite=True,
                               memory_limit=opts["memory_limit"])
    out["precompute_s"] = t.seconds
    stores = chain.store_ids[: opts["report_stores"]]
    with Timed() as t:
        for store_id in stores:
            batch.load_store_slice(work / "batch", store_id)
    out["load_store_slice_s"] = t.seconds / len(stores)

    fits = []
    for store_id in stores:
        with Timed() as t:
            summary = rfm.rfm_summary(chain.for_store(store_id).orders, as_of=AS_OF)
            BGNBDModel().fit(summary)
            GammaGammaModel().fit(summary)
        fits.append(t.seconds)
    out["model_fit_s"] = statistics.median(fits)

    empty = work / "empty.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1")]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, empty)
    with Timed() as t:
        pm.execute_notebook(empty, work / "empty.out.ipynb", kernel_name=KERNEL_NAME,
                            config=_private_kernel_config(), progress_bar=False)
    out["kernel_start_s"] = t.seconds

    with Timed() as t:
        run = run_reports(chain_dir, stores=stores, out=work / "reports", jobs=2, as_of=AS_OF,
                          include_chain=False, progress=None)
    out["run_s"] = t.seconds
    out["run_peak_mb"] = t.peak_mb
    out["ok"] = run.ok
    per_store = [r.seconds for r in run.results if getattr(r, "seconds", None)]
    out["notebook_s"] = statistics.median(per_store) if per_store else None
    executed = next(r.notebook for r in run.results if r.ok)
    with Timed() as t:
        notebook_to_html(executed, work / "one.html")
    out["html_s"] = t.seconds
    # papermill records each cell's duration: the slowest cells say where a notebook's time goes.
    cells = [
        (c.metadata.get("papermill", {}).get("duration") or 0.0,
         next((line for line in c.source.splitlines() if line and not line.startswith("#")), ""))
        for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"
    ]
    out["slowest_cells"] = sorted(cells, reverse=True)[:5]
    out["seconds"], out["peak_mb"] = out["run_s"], out["run_peak_mb"]
    return out


STAGES = {
    "generate": stage_generate,
    "rfm-engine": stage_rfm_engine,
    "rfm-pandas": stage_rfm_pandas,
    "rfm-lifetimes": stage_rfm_lifetimes,
    "fit-rx": stage_fit_rx,
    "fit-lifetimes": stage_fit_lifetimes,
    "score-rx": stage_score_rx,
    "score-lifetimes": stage_score_lifetimes,
    "report": stage_report,
}


# --------------------------------------------------------------------------- parent


def run_child(stage: str, data: Path, work: Path, opts: dict) -> dict:
    """Run one stage in a fresh Python process and return its JSON result."""
    cmd = [sys.executable, __file__, "--child", stage, "--data", str(data), "--work", str(work),
           "--opts", json.dumps(opts)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(result: dict | None, key: str = "seconds", peak: str = "peak_mb") -> tuple[str, str]:
    if result is None:
        return "-", "-"
    if "error" in result:
        return "failed", "-"
    return f"{result[key]:.2f}", f"{result[peak]:,.0f}"


def _ratio(ours: dict | None, theirs: dict | None, key: str = "seconds") -> str:
    if not ours or not theirs or "error" in ours or "error" in theirs:
        return "-"
    return f"{theirs[key] / ours[key]:.1f}x"


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024**2:.0f} GiB RAM"
    except OSError:
        pass
    import duckdb
    import lifetimes
    import numpy
    import pandas

    return (f"{platform.node()}: {os.cpu_count()} cores{mem}, load average {load}; "
            f"Python {platform.python_version()}, pandas {pandas.__version__}, numpy "
            f"{numpy.__version__}, duckdb {duckdb.__version__}, lifetimes {lifetimes.__version__}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_size, default=parse_size("1M"),
                        help="order rows of the demo chain, e.g. 10M (default 1M)")
    parser.add_argument("--stores", type=int, default=200, help="stores in the chain (default 200)")
    parser.add_argument("--fit-members", type=parse_size, default=0,
                        help="members to fit on (default: the chain's); more are resampled")
    parser.add_argument("--score-members", type=parse_size, default=0,
                        help="members to score (default: the chain's); more are resampled")
    parser.add_argument("--report-stores", type=int, default=4,
                        help="stores whose reports are run to time the report stage (0: skip)")
    parser.add_argument("--report-rows", type=parse_size, default=parse_size("1M"),
                        help="order rows of the chain the report stage runs on (default 1M)")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit (default 4GB)")
    parser.add_argument("--skip-lifetimes", action="store_true",
                        help="measure only rxrepurchase (for sizes the plain route cannot do)")
    parser.add_argument("--skip-pandas", action="store_true", help="skip the in-memory pandas RFM")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the generated chain (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse the chain already in --work")
    parser.add_argument("--stages", type=lambda text: set(text.split(",")),
                        default={"rfm", "fit", "score", "report"},
                        help="stages to run, e.g. fit,score (default: rfm,fit,score,report)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = STAGES[args.child](args.data, args.work, json.loads(args.opts))
        print(json.dumps(result))
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="rxrepurchase-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "chain"
    opts = {"rows": args.rows, "stores": args.stores, "memory_limit": args.memory_limit,
            "fit_members": args.fit_members, "score_members": args.score_members,
            "report_stores": args.report_stores, "report_rows": args.report_rows,
            "validate": "full"}
    print(machine())
    print(f"chain: ~{args.rows:,} order rows, {args.stores} stores; work folder {work}\n")
    results: dict[str, dict | None] = {}
    try:
        if not (args.reuse and (data / "orders.parquet").exists()):
            results["generate"] = run_child("generate", data, work, opts)
            if "error" in results["generate"]:
                print(results["generate"]["error"])
                return 1
        import duckdb

        n_rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{data / 'orders.parquet'}')").fetchall()[0][0]
        print(f"orders.parquet: {n_rows:,} rows\n")

        plain = not args.skip_lifetimes
        if "rfm" in args.stages or not (work / "rfm_engine.parquet").exists():
            results["rfm-engine"] = run_child("rfm-engine", data, work, opts)
        if "rfm" in args.stages:
            for mode in ("rows", "none"):
                results[f"rfm-engine-{mode}"] = run_child("rfm-engine", data, work, {**opts, "validate": mode})
            results["rfm-pandas"] = None if args.skip_pandas else run_child("rfm-pandas", data, work, opts)
            results["rfm-lifetimes"] = run_child("rfm-lifetimes", data, work, opts) if plain else None
        if "fit" in args.stages:
            results["fit-rx"] = run_child("fit-rx", data, work, opts)
            results["fit-lifetimes"] = run_child("fit-lifetimes", data, work, opts) if plain else None
        if "score" in args.stages:
            results["score-rx"] = run_child("score-rx", data, work, opts)
            results["score-lifetimes"] = run_child("score-lifetimes", data, work, opts) if plain else None
        if "report" in args.stages and args.report_stores:
            results["report"] = run_child("report", data, work, opts)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    report(results, n_rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": n_rows, "results": results},
                                        indent=2))
    return 0


def report(results: dict, n_rows: int) -> None:
    """Print the side-by-side table and the equivalence checks."""
    lt = results.get("rfm-lifetimes")
    head = f"{'stage':44s} {'rx s':>8s} {'rx MB':>8s} {'plain s':>8s} {'plain MB':>9s} {'ratio':>7s}"
    print(head)
    print("-" * len(head))

    def row(label, ours, theirs=None, key="seconds", peak="peak_mb"):
        s, m = _fmt(ours, key, peak)
        ps, pm = _fmt(theirs, key, peak)
        print(f"{label:44s} {s:>8s} {m:>8s} {ps:>8s} {pm:>9s} {_ratio(ours, theirs, key):>7s}")

    gen = results.get("generate")
    if gen:
        row(f"generate demo chain ({n_rows / 1e6:.1f}M rows)", gen)
    if "rfm-engine-rows" in results:
        row("RFM: engine, validate=full vs lifetimes.utils", results["rfm-engine"], lt)
        row("RFM: engine, validate=rows vs lifetimes.utils", results["rfm-engine-rows"], lt)
        row("RFM: engine, validate=none vs lifetimes.utils", results["rfm-engine-none"], lt)
        row("RFM: pandas rfm_summary vs lifetimes.utils", results.get("rfm-pandas"), lt)
    fit, fit_lt = results.get("fit-rx"), results.get("fit-lifetimes")
    if "fit-rx" in results:
        n_fit = fit.get("members", 0) if fit and "error" not in fit else 0
        row(f"BG/NBD fit, {n_fit:,} members (compressed)", fit, fit_lt)
        row(f"Gamma-Gamma fit, {n_fit:,} members", fit, fit_lt, "gg_seconds", "gg_peak_mb")
    score = results.get("score-rx")
    if "score-rx" in results:
        n_score = score.get("members", 0) if score and "error" not in score else 0
        row(f"score {n_score:,}: P(alive), E[purchases], CLV", score, results.get("score-lifetimes"))

    rep = results.get("report")
    if rep and "error" not in rep:
        n, k = rep["stores_in_chain"], rep["stores_run"]
        # Two notebooks run at a time; the rest of the wall time is paid once per run.
        per_store = rep["notebook_s"] / 2
        once = max(0.0, rep["run_s"] - k * per_store)
        print()
        print(f"Report run: {k} of {n} stores of a {rep['orders']:,}-order chain, 2 kernels in "
              f"parallel: {rep['run_s']:.1f} s wall (peak {rep['run_peak_mb']:,.0f} MB in the "
              f"runner) = about {once:.0f} s once per run + {per_store:.1f} s a store, so about "
              f"{(once + per_store * n) / 60:.0f} min for all {n} stores.")
        print(f"  once per run: load_chain {rep['load_chain_s']:.1f} s (or precompute "
              f"{rep['precompute_s']:.1f} s)")
        print(f"  per store (one notebook, {rep['notebook_s']:.1f} s median): kernel start "
              f"{rep['kernel_start_s']:.1f} s, data load {rep['unpickle_chain_s']:.2f} s "
              f"(unpickling the chain; load_store_slice {rep['load_store_slice_s']:.2f} s), model "
              f"fit {rep['model_fit_s']:.2f} s, HTML {rep['html_s']:.2f} s, the rest the "
              f"notebook's other analyses and figures; slowest cells:")
        for seconds, line in rep["slowest_cells"]:
            print(f"    {seconds:6.2f} s  {line[:80]}")
    print()
    for name, result in results.items():
        if result and "error" in result:
            print(f"{name} failed: {result['error']}")
    if fit and "error" not in fit:
        print(f"BG/NBD fit on {fit['unique_rows']:,} unique (frequency, recency, T) rows of "
              f"{fit['members']:,}; params r, alpha, a, b = {_num(fit['params'])}")
        if fit_lt and "error" not in fit_lt:
            print(f"  plain lifetimes params {_num(fit_lt['params'])}; max relative difference "
                  f"{_max_rel(fit['params'], fit_lt['params']):.1e}")
            print(f"  Gamma-Gamma p, q, v = {_num(fit['gg_params'])} vs plain "
                  f"{_num(fit_lt['gg_params'])}; max relative difference "
                  f"{_max_rel(fit['gg_params'], fit_lt['gg_params']):.1e}")
    if lt and "error" not in lt:
        print(f"RFM: lifetimes.utils vs engine, max |difference| per column: "
              f"{ {k: float(f'{v:.3g}') for k, v in lt['max_abs_diff_vs_engine'].items()} }")
    sl = results.get("score-lifetimes")
    if sl and "error" not in sl:
        print(f"scores: lifetimes vs rxrepurchase, max relative difference: "
              f"{ {k: float(f'{v:.3g}') for k, v in sl['max_rel_diff'].items()} }")


def _num(values) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _max_rel(a, b) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


if __name__ == "__main__":
    sys.exit(main())
