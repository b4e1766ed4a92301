"""Wall time of a full report run on the demo chain: total, per store, and where it goes.

    .venv/bin/python benchmarks/report_bench.py                      # default demo chain
    .venv/bin/python benchmarks/report_bench.py --members 5000 --stores 4 --jobs 2

Generates the demo chain (unless ``--data`` is given), runs
:func:`rxrepurchase.reporting.run_reports` and prints: the run's wall time, each notebook's
time, the time of every notebook cell (papermill records it) averaged over the stores, the
kernel start-up and papermill overhead (notebook time minus its cells), and the time of the HTML
conversion alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.reporting import notebook_to_html, run_reports


def _cell_label(source: str) -> str:
    """The cell's first assignment (``chain = load_chain(...)``), else its first line."""
    lines = [line for line in source.splitlines() if line.strip()]
    return next((line for line in lines if " = " in line), lines[0] if lines else "")[:60]


def cell_times(notebook: Path) -> tuple[float, list[tuple[str, float]]]:
    """(papermill's total seconds, [(cell label, seconds)]) of an executed notebook."""
    nb = nbformat.read(notebook, as_version=4)
    cells = [
        (_cell_label(c.source), float(c.metadata.get("papermill", {}).get("duration") or 0.0))
        for c in nb.cells
        if c.cell_type == "code"
    ]
    return float(nb.metadata["papermill"]["duration"]), cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an existing export folder (skips generating the demo)")
    parser.add_argument("--as-of", default=None, help="analysis date (default: demo end date)")
    parser.add_argument("--members", type=int, default=DemoConfig.n_members)
    parser.add_argument("--stores", type=int, default=DemoConfig.n_stores)
    parser.add_argument("--months", type=int, default=DemoConfig.months)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--lang", default="en")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rxrepurchase-bench-") as tmp:
        config = DemoConfig(n_members=args.members, n_stores=args.stores, months=args.months)
        if args.data:
            data = Path(args.data)
        else:
            data = Path(tmp) / "demo"
            started = time.perf_counter()
            write_demo_chain(data, config)
            print(f"demo chain: {args.members:,} members, {args.stores} stores, "
                  f"{args.months} months, written in {time.perf_counter() - started:.1f}s")
        as_of = args.as_of or (None if args.data else config.end_date)

        run = run_reports(data, out=Path(tmp) / "reports", jobs=args.jobs, as_of=as_of,
                          lang=args.lang, progress=None)
        stores = [r for r in run.results if r.ok]
        print(f"\nfull run ({len(run.results)} stores + chain overview, jobs={args.jobs}): "
              f"{run.seconds:.1f}s wall, {len(run.failures)} failed")
        for r in run.results + [run.chain]:
            print(f"  {r.store_id:6s} {r.seconds:6.1f}s  {'ok' if r.ok else r.error}")
        if stores:
            per_store = sum(r.seconds for r in stores) / len(stores)
            print(f"  mean per store notebook: {per_store:.1f}s "
                  f"(wall per store: {run.seconds / len(run.results):.1f}s)")

            totals: dict[str, float] = {}
            overhead = 0.0
            for r in stores:
                total, cells = cell_times(r.notebook)
                overhead += (r.seconds - sum(s for _, s in cells)) / len(stores)
                for label, seconds in cells:
                    totals[label] = totals.get(label, 0.0) + seconds / len(stores)
            started = time.perf_counter()
            notebook_to_html(stores[0].notebook, Path(tmp) / "again.html")
            html_seconds = time.perf_counter() - started
            print("\nwhere a store notebook's time goes (mean over stores):")
            print(f"  {overhead:6.1f}s  kernel start-up, papermill and HTML conversion")
            print(f"  {html_seconds:6.1f}s    of which HTML conversion alone")
            for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
                print(f"  {seconds:6.1f}s  {label}")


if __name__ == "__main__":
    main()
