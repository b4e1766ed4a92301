"""Store reports: main's way (every kernel unpickles the whole chain) against per-store slices.

    .venv/bin/python benchmarks/report_bench.py                   # all three measurements
    .venv/bin/python benchmarks/report_bench.py --skip-200        # per store figures only
    .venv/bin/python benchmarks/report_bench.py --baseline-200    # main on 200 stores as well

Prints, side by side in the same run, for the baseline (the ``main`` branch, exported with
``git archive`` into a temporary folder and run with this checkout's environment) and for this
checkout:

1. per store notebook, on a small chain and on a chain 4x larger with stores of the same size
   (4x the stores and members): wall seconds, CPU seconds (kernel, papermill and HTML
   conversion: the CPU of the run's notebook phase divided by its notebooks) and the peak RSS
   of each kernel. With slices the kernel's memory follows its store; with the pickled chain
   it follows the chain;
2. a 200-store chain's reports with ``--jobs 2`` (this checkout; main's too with
   ``--baseline-200``): wall seconds, CPU seconds, and how long preparing the run (loading,
   chain-wide figures, slices) took.

Each run is a separate Python process (``-X importtime`` style isolation: nothing is shared
between the two versions); kernels are sampled with psutil every 50 ms. The machine's load
is printed: on a shared machine wall times are inflated, CPU seconds much less.
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

    phase = {}
    execute_all = reporting._execute_all

    def timed(jobs_list, jobs, progress):
        phase["notebooks"] = len(jobs_list)
        phase["prepared_wall"] = time.perf_counter() - started
        phase["prepared_cpu"] = cpu() - cpu0
        c, w = cpu(), time.perf_counter()
        try:
            return execute_all(jobs_list, jobs, progress)
        finally:
            phase["cpu"], phase["wall"] = cpu() - c, time.perf_counter() - w

    reporting._execute_all = timed
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


def _row(label: str, r: dict) -> str:
    per_nb = r["phase"]["cpu"] / max(r["phase"]["notebooks"], 1)
    rss = sorted(k["rss"] for k in r["kernels"]) or [0]
    kcpu = sorted(k["cpu"] for k in r["kernels"]) or [0.0]
    return (f"  {label:30s} {r['store_wall']:8.1f} {per_nb:8.2f} {kcpu[len(kcpu) // 2]:8.2f} "
            f"{rss[len(rss) // 2] / 2**20:9.0f} {rss[-1] / 2**20:8.0f}")


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

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
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
        versions = {f"baseline ({args.baseline} {rev})": base, f"slices (HEAD {head})": None}

        results = {}
        if not args.only_200:
            print("\n1. per store notebook (the same stores of each chain; no chain overview)")
        for size, factor in (() if args.only_200 else (("small", 1), ("4x", 4))):
            data = demo(tmp / f"chain-{size}", args.members * factor, args.stores * factor,
                        args.months)
            stores = ",".join(f"S{i:02d}" for i in range(1, args.stores + 1))
            for label, version in versions.items():
                out = tmp / f"run-{size}-{len(results)}"
                out.mkdir()
                results[size, label] = measure(version, data, stores, out, jobs=args.jobs,
                                               as_of=as_of, chain=False)
                print(f"    {label} on {size}: done", flush=True)
        if results:
            print(f"\n  {'chain / version':30s} {'wall s':>8s} {'CPU s':>8s} {'kern CPU':>8s} "
                  f"{'RSS MB':>9s} {'max MB':>8s}")
        for (size, label), r in results.items():
            print(_row(f"{size}: {label}", r))
        if results:
            print("  wall s: mean notebook wall (two at a time); CPU s: the notebook phase's "
                  "CPU (kernels, papermill, HTML) per notebook; kern CPU: median kernel's CPU; "
                  "RSS MB: median kernel's peak resident memory")

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
                r = measure(version, data, stores, out, jobs=args.jobs, as_of=as_of, chain=True)
                p = r["phase"]
                per_nb = p["cpu"] / p["notebooks"]
                print(f"  {label}, {n} stores reported: {r['wall']:.0f}s wall, {r['cpu']:.0f} "
                      f"CPU-s in all; preparing (load, chain-wide figures, slices) "
                      f"{p['prepared_wall']:.0f}s wall / {p['prepared_cpu']:.0f} CPU-s; "
                      f"notebooks {p['wall']:.0f}s wall / {p['cpu']:.0f} CPU-s = {per_nb:.2f} "
                      f"CPU-s per notebook; {len(r['failures'])} failed", flush=True)
                print(_row("    notebooks", r))
                if n < 200:
                    # Preparing grows with the slices cut (all but the chain-wide part): scale
                    # it as a whole, an upper bound; notebooks by their count; on `jobs` cores.
                    cpu = p["prepared_cpu"] * 200 / n + per_nb * 201
                    print(f"    all 200 stores, from these parts: about {cpu:.0f} CPU-s, "
                          f"{cpu / args.jobs / 60:.1f} min of {args.jobs} cores (at the CPU "
                          "cost measured here)", flush=True)
        print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
