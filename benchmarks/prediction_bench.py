"""Benchmark: refill lists and purchase models against naive rules, on the demo and CDNOW.

Prints tables:

1. Refill backtest on every demo shape (:data:`rxrepurchase.demo.DEMO_SHAPES`, and the
   standard chain with ``refill_dispersion`` 1.0): the lists that would have been sent at the
   cut (60 days before the end), followed 30 days: precision and recall of the default list
   (``p_refill >= MIN_P_REFILL``), the broad list (due within 14 days or overdue), the naive
   median-interval list, the naive list cut to the default list's size (nearest its naive
   due day first), the list that also names one-off buys and the regular-only list; the
   date's MAE / RMSE against the naive baseline on the pairs that came back; coverage of the
   80% due interval.
2. Purchase models on holdout (demo shapes standard and irregular: last 90 days; CDNOW: the
   published 39 + 39 weeks): MAE, RMSE, correlation, total error of BG/NBD, MBG/NBD,
   Pareto/NBD and MBG/CNBD-k (with its estimated k), the naive rate and predicting zero, and
   which model ``select_model`` keeps (the paired bootstrap test).

Usage::

    python benchmarks/prediction_bench.py                 # 5,000 members
    python benchmarks/prediction_bench.py --members 20000 --no-models
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from rxrepurchase.demo import DEMO_SHAPES, DemoConfig, generate_demo_chain
from rxrepurchase.holdout import select_model
from rxrepurchase.refill import backtest_refills, refill_fills
from rxrepurchase.rfm import calibration_holdout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cdnow import read_cdnow_sample  # noqa: E402  (the CDNOW reader the tests use)

LISTS = (("model", "refill_model"), ("broad", "broad_model"), ("naive", "naive_median"),
         ("naive same size", "naive_same_size"), ("one-offs", "all_pairs"),
         ("regular", "regular_model"))


def refill_row(shape: str, chain) -> dict:
    fills = refill_fills(chain.order_lines, chain.orders, chain.members)
    cut = chain.orders["ordered_at"].max().normalize() - pd.Timedelta(days=60)
    result = backtest_refills(fills, calibration_end=cut)
    lists, s = result.lists, result.summary
    row = {"shape": shape}
    for prefix, name in LISTS:
        row[f"{prefix} n"] = int(lists.at[name, "listed"])
        row[f"{prefix} P"] = lists.at[name, "precision"]
        row[f"{prefix} R"] = lists.at[name, "recall"]
    row["scored"] = int(s.at["refill_model", "scored"])
    for prefix, name in (("", "refill_model"), ("naive ", "product_median")):
        row[f"{prefix}MAE d"] = s.at[name, "mae_days"]
        row[f"{prefix}RMSE d"] = s.at[name, "rmse_days"]
    row["80% coverage"] = s.at["refill_model", "in_interval"]
    return row


def model_rows(data: str, calibration: pd.DataFrame, holdout: pd.DataFrame) -> tuple[list[dict], str]:
    start = time.perf_counter()
    selection = select_model(calibration, holdout)
    rows = []
    for name, row in selection.scores.iterrows():
        model = selection.models.get(name)
        k = f" (k={int(model.params_['k'])})" if model is not None and "k" in model.params_ else ""
        rows.append({"data": data, "model": f"{name}{k}", "MAE": row["mae"], "RMSE": row["rmse"],
                     "correlation": row["correlation"], "total error %": row["total_error_pct"],
                     "vs reference [95%]": "" if pd.isna(row.get("vs_reference_low")) else
                     f"{row['vs_reference']:+.4f} [{row['vs_reference_low']:+.4f}, "
                     f"{row['vs_reference_high']:+.4f}]",
                     "selected": bool(row["selected"])})
    failed = "".join(f"\n  {data}: {name} failed: {why}" for name, why in selection.failures.items())
    return rows, f"{data}: selection in {time.perf_counter() - start:.1f} s{failed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-models", action="store_true", help="refill lists only")
    args = parser.parse_args()

    shapes = [(name, DemoConfig(n_members=args.members, n_stores=4, months=18, seed=args.seed,
                                shape=name)) for name in DEMO_SHAPES]
    shapes.append(("irregular 1.0", DemoConfig(n_members=args.members, n_stores=4, months=18,
                                               seed=args.seed, refill_dispersion=1.0)))
    refills, models, notes = [], [], []
    for shape, config in shapes:
        chain = generate_demo_chain(config)
        refills.append(refill_row(shape, chain))
        if args.no_models or shape not in ("standard", "irregular_refill", "irregular 1.0"):
            continue
        as_of = chain.orders["ordered_at"].max().normalize()
        split = calibration_holdout(chain.orders, as_of - pd.Timedelta(days=90), holdout_end=as_of)
        rows, note = model_rows(f"demo {shape}", split.calibration, split.holdout)
        models += rows
        notes.append(note)
    print(f"## Refill lists and dates (demo, {args.members} members, seed {args.seed}, cut 60 days "
          "before the end, outcome 30 days; P precision, R recall, n listed)\n")
    table = pd.DataFrame(refills)
    print(table.to_string(index=False, float_format="{:.3f}".format))
    beaten = table[table["model P"] < table["naive P"]]["shape"].tolist()
    print(f"\ndefault list less precise than the naive list on: {beaten or 'no shape'}")
    if args.no_models:
        return
    cdnow = calibration_holdout(read_cdnow_sample(), "1997-09-30", time_unit="weeks",
                                customer_col="customer_id", time_col="date", amount_col="amount")
    rows, note = model_rows("CDNOW", cdnow.calibration, cdnow.holdout)
    models += rows
    notes.append(note)
    print("\n## Purchase models on holdout\n")
    print(pd.DataFrame(models).to_string(index=False, float_format="{:.4f}".format))
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
