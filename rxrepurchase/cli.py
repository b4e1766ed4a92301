"""Command line: ``rxrepurchase <command> ...``. Thin: every command calls the library."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from rxrepurchase.demo import DemoConfig, write_demo_chain

    config = DemoConfig(
        n_members=args.members, n_stores=args.stores, months=args.months, seed=args.seed,
        shape=args.shape,
    )
    paths = write_demo_chain(args.out, config, file_format=args.format, overwrite=args.overwrite)
    for table, path in paths.items():
        print(f"{table:12s} {path}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from rxrepurchase.loading import load_chain

    with warnings.catch_warnings():  # the exclusions are printed once, in the quality report
        warnings.simplefilter("ignore", UserWarning)
        chain = load_chain(args.data, **_load_args(args))
    print(chain.describe())
    reason = chain.nothing_to_analyse()
    if reason:
        print(f"rxrepurchase summary: {reason}", file=sys.stderr)
        return 2
    return 0


def _load_args(args: argparse.Namespace) -> dict:
    """The loader's options of the data arguments (see _add_data_args)."""
    return {"as_of": args.as_of, "encoding": args.encoding, "mapping": args.mapping,
            "time_zone": args.time_zone}


def _cmd_refills(args: argparse.Namespace) -> int:
    from rxrepurchase.loading import load_chain
    from rxrepurchase.refill import chain_refill_targets, export_target_list

    chain = load_chain(args.data, **_load_args(args))
    targets = chain_refill_targets(
        chain, horizon_days=args.horizon_days, group_by=args.group_by, show_phone=args.show_phone,
        first_refill=args.first_refill, select=args.select,
    )
    path = export_target_list(targets, args.out, overwrite=args.overwrite)
    counts = ", ".join(f"{k} {v}" for k, v in targets.attrs["status_counts"].items())
    what = "first-refill reminders" if args.first_refill else "refill reminders"
    print(f"{len(targets)} {what} as of {targets.attrs['as_of']:%Y-%m-%d} "
          f"({args.select}, within {args.horizon_days} days: {counts or 'none'}) -> {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rxrepurchase.reporting import run_reports

    run = run_reports(
        args.data,
        stores=args.stores,
        out=args.out,
        jobs=args.jobs,
        as_of=args.as_of,
        lang=args.lang,
        currency=args.currency,
        calibration_end=args.calibration_end,
        encoding=args.encoding,
        mapping=args.mapping,
        time_zone=args.time_zone,
        notebook=args.notebook,
        chain_notebook=args.chain_notebook,
        include_chain=not args.no_chain,
    )
    return 0 if run.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from rxrepurchase.scheduled import run_scheduled

    return run_scheduled(args.config, dry_run=args.dry_run, echo=print, resend=args.resend).exit_code


def _cmd_precompute(args: argparse.Namespace) -> int:
    from rxrepurchase.batch import precompute_chain

    manifest = precompute_chain(
        args.data, args.out, as_of=args.as_of, calibration_end=args.calibration_end, time_unit=args.time_unit,
        memory_limit=args.memory_limit, threads=args.threads, overwrite=args.overwrite,
        time_zone=args.time_zone,
        progress=lambda step, seconds: print(f"precompute: {step} {seconds:.1f} s", file=sys.stderr),
    )
    loaded = manifest["rows_loaded"]
    excluded = sum(manifest["rows_read"].values()) - sum(loaded.values())
    print(f"{len(manifest['stores'])} stores, {loaded.get('orders', 0):,} orders "
          f"({excluded:,} rows excluded by the data contract) in {manifest['seconds']} s -> {args.out}")
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with the chain's export files")
    p.add_argument("--as-of", default=None, help="analysis date YYYY-MM-DD (default: today)")
    p.add_argument("--encoding", default=None, help="CSV encoding, e.g. gbk (default: utf-8)")
    p.add_argument("--mapping", default=None, help="TOML file mapping file names and headers")
    _add_time_zone(p)


def _add_time_zone(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-zone", default=None,
                   help="the chain's time zone; timestamps with a UTC offset are converted to it "
                   "(default Asia/Shanghai)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxrepurchase",
        description="Member repurchase analytics and reports for pharmacy chains.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-data", help="write a realistic demo pharmacy chain")
    p.add_argument("--out", required=True, help="folder to write the tables into")
    p.add_argument("--members", type=int, default=20_000)
    p.add_argument("--stores", type=int, default=8)
    p.add_argument("--months", type=int, default=18)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--shape", default="standard",
                   help="kind of chain: standard, member_price, campaigns_most_of_year, "
                        "multi_store, discount_only, utc, irregular_refill, tiny_stores "
                        "(docs/demo-chain.md)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("summary", help="load, validate and summarise a chain's export")
    _add_data_args(p)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("report", help="per-store HTML reports, chain overview and index")
    _add_data_args(p)
    p.add_argument("--stores", default="all", help="all (default) or a list like S01,S02")
    p.add_argument("--out", default="reports", help="parent folder of the dated run folders")
    p.add_argument("--jobs", type=int, default=2, help="notebooks executed in parallel")
    p.add_argument("--lang", default="en", help="report language: en or zh")
    p.add_argument("--currency", default="CNY",
                   help="ISO 4217 code of the export's amounts, e.g. USD (default: CNY)")
    p.add_argument("--calibration-end", default=None, help="end of the models' calibration")
    p.add_argument("--notebook", default=None, help="store notebook to run instead of ours")
    p.add_argument("--chain-notebook", default=None, help="chain overview notebook to run")
    p.add_argument("--no-chain", action="store_true", help="skip the chain overview")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("refills", help="export the refill reminder list (members due soon)")
    _add_data_args(p)
    p.add_argument("--horizon-days", "--within", dest="horizon_days", type=int, default=14,
                   help="days ahead: the list has as many rows as are due within them (default "
                        "14; --within is its old name)")
    p.add_argument("--select", choices=["chance", "due"], default="chance",
                   help="chance: those most likely to refill (default); due: those due within "
                        "--horizon-days days")
    p.add_argument("--out", required=True, help="output file, .csv (Excel-ready) or .parquet")
    p.add_argument("--group-by", choices=["sku", "category"], default="sku",
                   help="product grouping for refills (default sku)")
    p.add_argument("--show-phone", action="store_true", help="show full phone numbers")
    p.add_argument("--first-refill", action="store_true",
                   help="list first chronic purchases (one fill, known days supply) instead of "
                        "members with a refill rhythm")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_cmd_refills)

    p = sub.add_parser(
        "run",
        help="scheduled run: reports, PDFs and emails as configured (cron / systemd timer)",
        description="Exit codes: 0 all done, 1 some reports/PDFs/emails failed, 2 bad config "
        "or data (nothing sent), 3 another run holds the lock, 4 unexpected error. "
        "See docs/scheduled-runs.md.",
    )
    p.add_argument("--config", required=True, help="the run's TOML file (see examples/chain.toml)")
    p.add_argument("--dry-run", action="store_true",
                   help="write the emails as .eml files into <run folder>/outbox/ instead of sending")
    p.add_argument("--resend", action="store_true",
                   help="email every report again, also to recipients the delivery ledger says "
                   "have it (by default a rerun on the same data and date sends only the rest)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("precompute", help="per-store slices, metrics and model inputs in one "
                       "pass (DuckDB), for large chains; see docs/scale.md")
    p.add_argument("--data", required=True, help="folder with the chain's export files")
    p.add_argument("--out", required=True, help="folder to write the per-store Parquet files")
    p.add_argument("--as-of", default=None, help="analysis date YYYY-MM-DD (default: today)")
    p.add_argument("--calibration-end", "--cut", dest="calibration_end", default=None,
                   help="last day of the calibration period YYYY-MM-DD, holdout to --as-of "
                        "(--cut is its old name)")
    p.add_argument("--time-unit", choices=["days", "weeks"], default="days")
    _add_time_zone(p)
    p.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit (default 4GB)")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier batch in --out")
    p.set_defaults(func=_cmd_precompute)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rxrepurchase.errors import RxRepurchaseError

    try:
        return args.func(args)
    except RxRepurchaseError as exc:
        print(f"rxrepurchase {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
