"""Recovery of the demo's true campaign effects by rxrepurchase.uplift, over many seeds.

Usage: ``python benchmarks/uplift_recovery.py [--seeds 20] [--members 20000] [--months 18]``

Each seed generates a demo chain whose wake-up waves 1 and 3 keep a random control group and
waves 2 and 4 are targeted at lapsing members without one (docs/demo-chain.md). For every wave
the script compares the estimate of :func:`rxrepurchase.uplift.campaign_uplift` with the
simulated truth: the sample average effect over the listed members (randomized waves) or over
the sent members (observational waves), of the repurchase rate within 30 days and of the net
extra purchases over 180 days. It prints, per wave and estimator: mean true effect, mean
estimate, mean interval, bias, coverage of the 95% interval over seeds, and, for the
observational waves, the bias of the naive comparison (sent vs every non-recipient).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from rxrepurchase.demo import DemoConfig, generate_demo_chain
from rxrepurchase.loading import Chain, DataQualityReport
from rxrepurchase.uplift import MatchedUplift, campaign_uplift


def one_seed(seed: int, members: int, months: int) -> list[dict]:
    demo = generate_demo_chain(DemoConfig(n_members=members, n_stores=4, months=months, seed=seed))
    chain = Chain(stores=demo.stores, members=demo.members, orders=demo.orders,
                  order_lines=demo.order_lines, campaigns=demo.campaigns,
                  as_of=pd.Timestamp(demo.config.end_date), quality=DataQualityReport(),
                  campaign_members=demo.campaign_members)
    table = campaign_uplift(chain).set_index("campaign_id")
    rows = []
    for w in demo.truth_params["send_waves"]:
        est = table.loc[w["campaign_id"]]
        target = "listed" if w["randomized"] else "treated"
        naive = np.nan
        if not w["randomized"]:
            o = MatchedUplift().fit(w["campaign_id"], chain.campaign_members, chain.orders,
                                    chain.members, as_of=chain.as_of).outcomes_
            naive = (o.loc[o["group"] == "treatment", "repurchased"].mean()
                     - o.loc[o["group"] == "control", "repurchased"].mean())
        for outcome, truth_key, col in (
            ("repurchase rate, 30 days", f"repurchase_effect_{target}", "uplift"),
            ("net extra purchases, 180 days", f"purchases_effect_180d_{target}", "extra_purchases_180d"),
        ):
            rows.append({
                "seed": seed, "wave": w["wave"],
                "estimator": "randomized" if w["randomized"] else "observational (matched)",
                "outcome": outcome, "truth": w[truth_key], "estimate": est[col],
                "low": est[f"{col}_low"], "high": est[f"{col}_high"],
                "naive": naive if col == "uplift" else np.nan,
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=18)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [r for seed in range(1, args.seeds + 1) for r in one_seed(seed, args.members, args.months)]
    df = pd.DataFrame(rows)
    df["covered"] = (df["low"] <= df["truth"]) & (df["truth"] <= df["high"])
    df["error"] = df["estimate"] - df["truth"]
    df["naive_error"] = df["naive"] - df["truth"]
    table = df.groupby(["outcome", "wave", "estimator"], sort=True).agg(
        true_effect=("truth", "mean"), estimate=("estimate", "mean"), low=("low", "mean"),
        high=("high", "mean"), bias=("error", "mean"), coverage=("covered", "mean"),
        naive_bias=("naive_error", "mean"),
    ).reset_index()
    pd.set_option("display.width", 200)
    print(f"{args.seeds} seeds, {args.members:,} members, {args.months} months; "
          f"{time.perf_counter() - started:.0f} s\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\ncoverage over every wave and seed:")
    print(df.groupby(["outcome", "estimator"])["covered"].mean().to_string(float_format=lambda v: f"{v:.0%}"))


if __name__ == "__main__":
    main()
