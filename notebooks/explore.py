# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring a chain's member repurchase
#
# The analyst's starting point: load a chain (set `data` to a real export folder, or leave it
# empty for the seeded demo chain), then repurchase rates, subsidy-driven vs loyal cohorts,
# segments, member value (BG/NBD + Gamma-Gamma) and refills. Every step is one call into the
# package; definitions and edge rules are in `docs/metrics.md`, `docs/models.md` and
# `docs/refills.md`.

# %% tags=["parameters"]
data = None  # a chain's export folder; None: a seeded demo chain in a temporary folder
as_of = None  # analysis date YYYY-MM-DD; None: the demo's last day, or today for real data
n_members = 5000  # size of the demo chain

# %%
import tempfile

import matplotlib.pyplot as plt
import pandas as pd

from rxrepurchase import cohorts, holdout, load_chain, metrics, models, plots, refill, segments
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.rfm import calibration_holdout, rfm_summary

if data is None:
    config = DemoConfig(n_members=n_members, n_stores=4, months=18, seed=7)
    data = tempfile.mkdtemp(prefix="rxrepurchase-demo-")
    write_demo_chain(data, config)
    as_of = as_of or config.end_date
chain = load_chain(data, as_of=as_of)
print(chain.describe())
orders, members, lines, campaigns = chain.orders, chain.members, chain.order_lines, chain.campaigns
as_of = chain.as_of

# %% [markdown]
# ## Repurchase rates (用户复购率 / 订单复购率)
#
# One row per window x group; numerators and denominators are in the table. Windows: `"M"`,
# `"Q"`, `90` (N-day), `("2026-01-01", "2026-03-31")`, or a dict of named windows.

# %%
monthly = metrics.repurchase_rates(orders, "M", by="store_id")
monthly.tail(8)

# %%
plots.plot_repurchase_rates(monthly, by="store_id")
plt.title("User repurchase rate by store and month");

# %%
# Grouping by member attributes: derive them once, pass them as members=.
attrs = segments.member_attributes(members, as_of, orders=orders)
metrics.repurchase_rates(orders, "Q", by="age_band", members=attrs).tail(7)

# %%
metrics.walk_in_share(orders, "Q", by="store_id").tail(4)

# %%
metrics.n_day_repurchase(orders, outcome_days=(30, 60, 90), as_of=as_of)

# %%
fig, ax = plt.subplots(figsize=(10, 6))
plots.plot_retention_matrix(metrics.retention_matrix(orders, as_of=as_of), ax=ax);

# %%
intervals = metrics.inter_purchase_intervals(orders)
plots.plot_inter_purchase_intervals(intervals)
intervals["interval_days"].describe()

# %%
metrics.pareto_share(orders, top=0.2)

# %% [markdown]
# ## Subsidy-driven vs loyal members (薅羊毛 vs 忠诚会员)
#
# Rule-based and transparent: the settings are one `CohortRules` object; what a subsidy is on
# this chain (routine member discount, fitted thresholds, campaign signal on or off) is learned
# from the chain and printed with the labels; every member's signals are in the table, and
# `explain_member` says why a member got its label.

# %%
rules = cohorts.CohortRules()
rules.to_frame()

# %%
labels = cohorts.classify_members(orders, campaigns, order_lines=lines, as_of=as_of, rules=rules)
print(labels.attrs["calibration"].describe())
labels["subsidy_cohort"].value_counts()

# %%
print(cohorts.explain_member(labels, labels.loc[labels["subsidy_cohort"] == "subsidy_driven", "member_id"].iloc[0], rules))

# %%
comparison = cohorts.compare_cohorts(orders, labels, campaigns=campaigns, as_of=as_of)
comparison.set_index("subsidy_cohort").T

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
plots.plot_cohort_comparison(comparison, "repurchase_after_last_subsidy", ax=axes[0])
plots.plot_retention_curves(
    metrics.retention_curve(orders, by="subsidy_cohort", members=labels, as_of=as_of),
    by="subsidy_cohort", ax=axes[1],
);

# %%
waves = cohorts.wave_response(orders, campaigns, kinds=["new_member"], as_of=as_of)
plots.plot_wave_response(waves)
waves[["wave", "name", "participants", "new_members", "repurchase_rate", "subsidy_per_retained_member"]]

# %% [markdown]
# ## Segments (用户分层)

# %%
rfm = segments.rfm_segments(orders, as_of, members=members)
plots.plot_rfm_segments(rfm)
segments.rfm_thresholds(rfm.dropna(subset=["monetary"]))

# %%
profile = segments.member_profile(orders, lines, members, as_of)
segments.segment_summary(profile, ["main_product_class", "activity"])

# %%
# Time-of-day habit per store: is there an evening crowd for an 8 pm offer (超值晚8点)?
hours = segments.hour_of_day_profile(orders, "store_id")
plots.plot_hour_of_day_profile(hours, "store_id");

# %% [markdown]
# ## Member value: BG/NBD and Gamma-Gamma (会员价值)
#
# First check that the model earns trust: fit on everything before the last 90 days, predict
# those 90 days, compare with what happened and with a naive "same rate as before" forecast.
# `select_model` also tries MBG/NBD, Pareto/NBD and MBG/CNBD-k (regular buyers) and keeps BG/NBD
# unless another is better
# by more than noise (a paired bootstrap of members); it prints the test. Read MAE beside
# RMSE, correlation and total error: predicting zero for everyone (`zero` row) often has an
# MAE close to the models'.

# %%
split = calibration_holdout(orders, as_of - pd.Timedelta(days=90), holdout_end=as_of)
selection = holdout.select_model(split.calibration, split.holdout)
print(selection)
selection.scores

# %%
checked = models.BGNBDModel().fit(split.calibration)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
plots.plot_holdout_by_frequency(
    holdout.holdout_by_frequency(checked, split.calibration, split.holdout), ax=axes[0]
)
plots.plot_tracking(holdout.tracking_curves(checked, split), ax=axes[1]);

# %%
# Then fit on all the history and score every member: P(alive), purchases in the next 30 days,
# spend per purchase (Gamma-Gamma, on paid amounts: net of subsidy), 12-month CLV.
summary = rfm_summary(orders, as_of=as_of)
purchase_model = models.BGNBDModel().fit(summary)
spend_model = models.GammaGammaModel().fit(summary)
scores = models.score_members(purchase_model, spend_model, summary, gross_margin=0.3)
purchase_model.summary()

# %%
# Subsidy-driven vs loyal members, fitted separately and side by side.
fits = models.fit_by_group(summary, labels.set_index("member_id")["subsidy_cohort"], gross_margin=0.3)
plots.plot_clv_by_group(fits, log_scale=True)
fits.params

# %%
# Wake-up list: valuable members whose probability of still being active is falling.
models.wake_up_list(orders, purchase_model, spend_model, as_of=as_of, gross_margin=0.3).head(10)

# %% [markdown]
# ## Refills of chronic and regularly taken products (慢病复购提醒)

# %%
overview = refill.refill_overview(chain, as_of=as_of, horizon_days=14)
plots.plot_refills_due_by_week(overview.predictions)
overview.headline

# %%
overview.targets.head(10)
