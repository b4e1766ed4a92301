"""The subsidy-cohort classifier on every demo chain shape: precision, recall, abstention and
label stability against the simulated ground truth.

Usage: ``python benchmarks/shapes_bench.py [--members N] [--stores K] [--months M] [--seed S]``
(default 20,000 members, 8 stores, 18 months). Members labelled ``new`` are left out;
``undetermined`` counts as a miss. The ``utc`` shape is written to CSV and read back with the
loader (its order times carry a ``+00:00`` offset); the others are classified in memory.
Stability: the share of members labelled subsidy-driven and loyal at the fitted thresholds and
with every threshold 20% lower / higher (the extremes of the per-threshold table that
:meth:`SubsidyCohortClassifier.stability` gives).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import pandas as pd

from rxrepurchase.cohorts import SubsidyCohortClassifier
from rxrepurchase.demo import (
    DEMO_SHAPES,
    DemoConfig,
    cohort_recovery,
    generate_demo_chain,
    write_demo_chain,
)
from rxrepurchase.loading import load_chain


def _classify(config: DemoConfig):
    chain = generate_demo_chain(config)
    if not config.utc_timestamps:
        return SubsidyCohortClassifier().fit(chain.orders, chain.campaigns, order_lines=chain.order_lines), chain
    with tempfile.TemporaryDirectory() as folder:
        write_demo_chain(folder, config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            loaded = load_chain(folder, as_of=config.end_date)
    return SubsidyCohortClassifier().fit(loaded.orders, loaded.campaigns, order_lines=loaded.order_lines,
                                         as_of=config.end_date), chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for shape in DEMO_SHAPES:
        started = time.perf_counter()
        config = DemoConfig(n_members=args.members, n_stores=args.stores, months=args.months, seed=args.seed,
                            shape=shape)
        clf, chain = _classify(config)
        score = cohort_recovery(clf.labels_, chain.truth).set_index("cohort")
        stab = clf.stability(0.2).set_index(["threshold", "factor"])
        row = {"shape": shape}
        for cohort, short in (("subsidy_driven", "sub"), ("loyal", "loyal")):
            row[f"{short}_P"] = score.loc[cohort, "precision"]
            row[f"{short}_R"] = score.loc[cohort, "recall"]
        row["undet"] = score["undetermined_share"].iloc[0]
        for cohort, short in (("subsidy_driven", "sub"), ("loyal", "loyal")):
            row[f"{short}_share"] = stab.loc[("none", 1.0), cohort]
            row[f"{short}_-20%"] = stab.loc[("all", 0.8), cohort]
            row[f"{short}_+20%"] = stab.loc[("all", 1.2), cohort]
            row[f"{short}_worst1"] = (stab[cohort] - stab.loc[("none", 1.0), cohort]).abs().max()
        row["campaign_signal"] = "on" if clf.calibration_.campaign_signal_on else "off"
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
    table = pd.DataFrame(rows).set_index("shape")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string())
    print("\nP/R: precision/recall (new left out, undetermined a miss); undet: undetermined share of "
          "judged members;\n*_share: label share at the fitted thresholds, -20%/+20%: every threshold "
          "moved together,\n*_worst1: largest change of the share over all single and joint ±20% moves.")


if __name__ == "__main__":
    main()
