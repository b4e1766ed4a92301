"""Store reports: CPU per store notebook after the batch, the batch itself, and 200 stores.

    .venv/bin/python benchmarks/report_bench.py                   # all measurements
    .venv/bin/python benchmarks/report_bench.py --skip-200        # per store figures only
    .venv/bin/python benchmarks/report_bench.py --only-200 --report-200 40 --baseline-200

Prints, side by side in the same run, for the baseline (``--baseline``, default the ``main``
branch, exported with ``git archive`` into a temporary folder and run with this checkout's
environment) and for this checkout:

1. per store notebook, on a small chain and on a chain 4x larger with stores of the same size
   (4x the stores and members), every store reported, no chain overview: CPU seconds per
   notebook (kernel, papermill and HTML conversion: the CPU of the run's notebook phase
   divided by its notebooks, including each worker's start), the median kernel's CPU seconds
   and peak RSS, and the slice step's (the batch: chain-wide figures, each store's slice and,
   in this checkout, its page) CPU seconds per store, so that "per store after the batch" is
   read beside what the batch costs;
2. a 200-store chain's reports with ``--jobs 2`` and the chain overview (this checkout; the
   baseline too with ``--baseline-200``): wall and CPU of the whole run, of the slice step
   and of the notebooks. ``--report-200 N`` reports the first N stores only and extrapolates
   to 200 from the measured parts.

Each run is a separate Python process (nothing is shared between the two versions); kernels
are sampled with psutil every 50 ms. The machine's load average is printed before and after
each run: on a shared machine wall times are inflated, CPU seconds much less. Python reads the
environment's bytecode if it has been compiled (``make setup`` does; with
``PYTHONDONTWRITEBYTECODE`` set and no ``.pyc`` files every kernel compiles its imports again,
which costs several CPU seconds per kernel): the line "bytecode" says which.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run inside each measured process: sample the kernels, time the notebook phase.
DRIVER = textwrap.dedent('''
    import json, resource, sys, threading, time
    import psutil
    from rxrepurchase import reporting

    args = json.loads(sys.argv[1])
    me = psutil.Process()
    kernels, stop = {}, threading.Event()

    def sample():
        while not stop.is_set():
            for p in me.children(recursive=True):
                try:
                    if "ipykernel" in " ".join(p.cmdline()):
                        k = kernels.setdefault(p.pid, {"rss": 0, "cpu": 0.0})
                        k["rss"] = max(k["rss"], p.memory_info().rss)
                        t = p.cpu_times()
                        k["cpu"] = max(k["cpu"], t.user + t.system)
                except psutil.Error:
                    pass
            time.sleep(0.05)

    def cpu():
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    phase = {"notebooks": 0, "cpu": 0.0, "wall": 0.0, "slices": 0, "slice_cpu": 0.0,
             "slice_wall": 0.0}
    execute_all, write_slices = reporting._execute_all, reporting._write_slices

    def timed(jobs_list, *args, **kwargs):
        if "prepared_wall" not in phase:
            phase["prepared_wall"] = time.perf_counter() - started
            phase["prepared_cpu"] = cpu() - cpu0
        phase["notebooks"] += len(jobs_list)
        c, w = cpu(), time.perf_counter()
        try:
            return execute_all(jobs_list, *args, **kwargs)
        finally:
            phase["cpu"] += cpu() - c
            phase["wall"] += time.perf_counter() - w

    def sliced(chain, folders, *args, **kwargs):
        # The slice step (the batch): chain-wide figures, each store's slice (and page).
        phase["slices"] = len(folders)
        c, w = cpu(), time.perf_counter()
        try:
            return write_slices(chain, folders, *args, **kwargs)
        finally:
            phase["slice_cpu"], phase["slice_wall"] = cpu() - c, time.perf_counter() - w

    reporting._execute_all, reporting._write_slices = timed, sliced
    threading.Thread(target=sample, daemon=True).start()
    cpu0, started = cpu(), time.perf_counter()
    run = reporting.run_reports(args["data"], stores=args["stores"], out=args["out"],
                                jobs=args["jobs"], as_of=args["as_of"],
                                include_chain=args["chain"], progress=None)
    stop.set()
    stores = [r for r in run.results if r.ok]
    print(json.dumps({
        "ok": run.ok, "failures": [r.error for r in run.failures],
        "wall": time.perf_counter() - started, "cpu": cpu() - cpu0,
        "store_wall": sum(r.seconds for r in stores) / max(len(stores), 1),
        "stores": len(run.results), "phase": phase,
        "kernels": list(kernels.values()),
    }))
''')


def measure(version: Path | None, data: Path, stores: str, out: Path, *, jobs: int, as_of: str,
            chain: bool) -> dict:
    """One report run in a fresh process: ``version`` None is this checkout, else the
    folder of another version of the package (put ahead of the editable install)."""
    env = dict(os.environ)
    if version is not None:
        shim = out / "shim"
        shim.mkdir(parents=True, exist_ok=True)
        # The editable install's import hook would win over PYTHONPATH: drop it.
        (shim / "sitecustomize.py").write_text(
            "import sys\nsys.meta_path[:] = [f for f in sys.meta_path "
            "if getattr(f, '__name__', '') != '_EditableFinder']\n")
        env["PYTHONPATH"] = os.pathsep.join([str(shim), str(version)])
    args = {"data": str(data), "stores": stores, "out": str(out / "reports"), "jobs": jobs,
            "as_of": as_of, "chain": chain}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], env=env,
                          cwd=out, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({version or 'this checkout'}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def demo(folder: Path, members: int, stores: int, months: int) -> Path:
    from rxrepurchase.demo import DemoConfig, write_demo_chain

    started = time.perf_counter()
    write_demo_chain(folder, DemoConfig(n_members=members, n_stores=stores, months=months,
                                        seed=11))
    print(f"  demo chain {folder.name}: {members:,} members, {stores} stores, {months} months "
          f"({time.perf_counter() - started:.0f}s to write)", flush=True)
    return folder


HEADER = (f"  {'chain / version':34s} {'stores':>6s} {'batch/st':>8s} {'CPU/nb':>8s} "
          f"{'kernel':>8s} {'RSS MB':>7s} {'max MB':>7s} {'nb wall':>8s}")
LEGEND = ("  batch/st: CPU-s of the slice step (chain-wide figures, slices, pages) per store; "
          "CPU/nb: CPU-s of the notebook phase (kernels, papermill, HTML, worker starts) per "
          "notebook; kernel: the median kernel's CPU-s; RSS MB / max MB: the median and largest "
          "kernel's peak resident memory; nb wall: mean wall seconds of a notebook (two at a "
          "time)")


def _row(label: str, r: dict) -> str:
    p = r["phase"]
    rss = sorted(k["rss"] for k in r["kernels"]) or [0]
    kcpu = sorted(k["cpu"] for k in r["kernels"]) or [0.0]
    return (f"  {label:34s} {p['slices']:6d} {p['slice_cpu'] / max(p['slices'], 1):8.2f} "
            f"{p['cpu'] / max(p['notebooks'], 1):8.2f} {kcpu[len(kcpu) // 2]:8.2f} "
            f"{rss[len(rss) // 2] / 2**20:7.0f} {rss[-1] / 2**20:7.0f} {r['store_wall']:8.1f}")


def _load() -> str:
    return "load average {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def _bytecode() -> str:
    import importlib.util

    import pandas

    cached = Path(importlib.util.cache_from_source(pandas.__file__)).is_file()
    return ("compiled (.pyc present)" if cached else
            "NOT compiled: every kernel compiles its imports (run `make setup`, or "
            "`python -m compileall` on the environment)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision of the baseline")
    parser.add_argument("--members", type=int, default=2_000,
                        help="members of the small chain (the large one has 4x)")
    parser.add_argument("--stores", type=int, default=2, help="stores of the small chain")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--members-200", type=int, default=20_000,
                        help="members of the 200-store chain")
    parser.add_argument("--report-200", type=int, default=200,
                        help="stores reported on the 200-store chain (fewer: the run is "
                             "extrapolated to 200 from its measured parts)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-200", action="store_true")
    parser.add_argument("--only-200", action="store_true", help="skip the per store figures")
    parser.add_argument("--baseline-200", action="store_true")
    args = parser.parse_args()
    as_of = "2026-09-30"  # the demo's end date

    print(f"{_load()} at start, on {os.cpu_count()} cores; bytecode: {_bytecode()}")
    with tempfile.TemporaryDirectory(prefix="rxrepurchase-report-bench-") as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.baseline],
                             capture_output=True, text=True, check=True).stdout.strip()
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        versions = {f"baseline ({args.baseline} {rev})": base, f"this (HEAD {head})": None}

        results = {}
        if not args.only_200:
            print("\n1. per store notebook (every store of each chain; no chain overview)")
        for size, factor in (() if args.only_200 else (("small", 1), ("4x", 4))):
            data = demo(tmp / f"chain-{size}", args.members * factor, args.stores * factor,
                        args.months)
            for label, version in versions.items():
                out = tmp / f"run-{size}-{len(results)}"
                out.mkdir()
                before = _load()
                started = time.perf_counter()
                results[size, label] = measure(version, data, "all", out, jobs=args.jobs,
                                               as_of=as_of, chain=False)
                print(f"    {label} on {size}: done in {time.perf_counter() - started:.0f}s "
                      f"({before} before, {_load()} after)", flush=True)
        if results:
            print(f"\n{HEADER}")
        for (size, label), r in results.items():
            print(_row(f"{size}: {label}", r))
        if results:
            print(LEGEND)

        if not args.skip_200:
            print(f"\n2. 200-store chain, {args.members_200:,} members, --jobs {args.jobs}, "
                  "with the chain overview")
            data = demo(tmp / "chain-200", args.members_200, 200, args.months)
            chosen = versions if args.baseline_200 else {k: v for k, v in versions.items()
                                                        if v is None}
            for label, version in chosen.items():
                out = tmp / f"run-200-{'base' if version else 'new'}"
                out.mkdir()
                n = min(args.report_200, 200)
                stores = "all" if n == 200 else ",".join(f"S{i:03d}" for i in range(1, n + 1))
                print(f"  {label}: {n} stores ... ({_load()})", flush=True)
                r = measure(version, data, stores, out, jobs=args.jobs, as_of=as_of, chain=True)
                p = r["phase"]
                per_nb = p["cpu"] / p["notebooks"]
                print(f"  {label}, {n} stores + overview: {r['wall']:.0f}s wall, {r['cpu']:.0f} "
                      f"CPU-s in all; before the slice step (load, validate) "
                      f"{p['prepared_wall'] - p['slice_wall']:.0f}s wall; slice step "
                      f"{p['slice_wall']:.0f}s wall / {p['slice_cpu']:.0f} CPU-s; notebooks "
                      f"{p['wall']:.0f}s wall / {p['cpu']:.0f} CPU-s = {per_nb:.2f} CPU-s per "
                      f"notebook; {len(r['failures'])} failed ({_load()})", flush=True)
                print(HEADER)
                print(_row("    200-store chain", r))
                if n < 200:
                    # The slice step scaled as a whole (its once-per-run part, the chain-wide
                    # figures and the overview's tables, too: an upper bound); notebooks by
                    # their count; on `jobs` cores.
                    rest = r["cpu"] - p["slice_cpu"] - p["cpu"]
                    cpu = rest + p["slice_cpu"] * 200 / n + per_nb * 201
                    print(f"    all 200 stores, from these parts: about {cpu:.0f} CPU-s, "
                          f"{cpu / args.jobs / 60:.1f} min of {args.jobs} cores (at the CPU "
                          "cost measured here)", flush=True)
        print(f"\n{_load()} at end")


if __name__ == "__main__":
    main()
