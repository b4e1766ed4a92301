# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: rxrepurchase
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   rxrepurchase:
#     title: Store repurchase report
# ---

# %% [markdown] tags=["remove_cell"]
# # Store report
#
# Executed once per store by `rxrepurchase report` (papermill) and published as HTML with the
# code hidden; see `docs/reports.md`. Every figure comes from a function of the package
# (mostly `rxrepurchase.report_data`); this notebook only chooses what to show and in which
# order. Cells tagged `remove_cell` (like this one) are left out of the HTML. A store with no
# member orders gets a one-line note (`thin`) instead of the analysis sections.

# %% tags=["parameters"]
store_id = "S01"  # store to report on
data = "../data/demo"  # export folder of the chain
as_of = None  # analysis date YYYY-MM-DD (None: today, as the loader does)
calibration_end = None  # end of the models' calibration period (None: as_of minus holdout)
lang = "en"  # report language: en or zh
currency = "CNY"  # ISO 4217 code of the export's amounts (CNY shown as ¥, USD as $ ...)
min_active_members = 30  # stores with fewer active members are left out of the chain median
encoding = None  # encoding of the export's CSV files, e.g. "gbk" (None: the loader's default)
mapping = None  # file-name and header mapping of the export (TOML path or dict; None: none)
time_zone = None  # the chain's time zone, e.g. "Asia/Shanghai" (None: the loader's default)
store_slice = ""  # the store's slice written by the runner (empty: read the export folder)
period_days = 90  # length of "this period" for the headline figures
gross_margin = 0.3  # gross margin on sales, for customer lifetime value (CLV)
clv_horizon_months = 12  # CLV horizon
refill_within_days = 14  # refill reminders: due within this many days
metrics_path = ""  # where to write metrics.json (empty: not written)
actions_dir = ""  # folder for the wake-up and refill reminder lists (empty: not written)
targets = None  # this store's targets, e.g. {"user_repurchase_rate": 0.6} (None: none)

# %% tags=["remove_cell"]
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import HTML, Markdown, display

from rxrepurchase import report_data as rd
from rxrepurchase.i18n import set_currency, t
from rxrepurchase.plotting import configure_matplotlib
from rxrepurchase.rendering import chart_axes, charts_html
from rxrepurchase.report_slices import load_store
from rxrepurchase.targets import target_progress

configure_matplotlib()
set_currency(currency)
# The store's slice and its share of the chain-wide figures (shared None: the whole export,
# every figure computed here).
chain, shared = load_store(data, store_id, slice_folder=store_slice, as_of=as_of,
                           encoding=encoding, mapping=mapping, time_zone=time_zone)
headline = rd.store_headline(chain, store_id, period_days=period_days,
                            min_active_members=min_active_members, shared=shared)
metrics = dict(headline)

# %%
display(HTML(rd.report_title(headline, lang)))
thin = rd.thin_data_reason(chain, store_id, lang)  # None, or why there is nothing to analyse
if thin:
    display(HTML(rd.note_html(thin)))

# %% [markdown] tags=["remove_cell"]
# ## This week (first: what to do; the sections below explain)

# %%
if not thin:
    cohorts = rd.store_cohorts(chain, store_id, shared=shared)
    models = rd.store_models(chain, store_id, cohorts["members"], gross_margin=gross_margin,
                             horizon_months=clv_horizon_months, calibration_end=calibration_end)
    refills = rd.store_refills(chain, store_id, horizon_days=refill_within_days, shared=shared)
    this_week = rd.store_this_week(chain, store_id, cohorts["members"], models, refills,
                                   gross_margin=gross_margin, period_days=period_days,
                                   shared=shared)
    metrics.update(rd.this_week_metrics(this_week))
    display(Markdown(f"## {t('section_this_week', lang)}"))
    display(HTML(rd.this_week_html(this_week, lang)))

# %% [markdown] tags=["remove_cell"]
# ## 1. Headline

# %%
if not thin:
    display(Markdown(f"## {t('section_headline', lang)}"))
    display(HTML(rd.headline_html(headline, lang)))
    display(HTML(rd.targets_html([(store_id, target_progress(headline, targets or {}))], lang,
                                 start=headline["period_start"], end=headline["period_end"])))
    rd.plot_monthly_repurchase(rd.monthly_repurchase(chain, store_id, shared=shared,
                                                     min_active_members=min_active_members), lang)

# %% [markdown] tags=["remove_cell"]
# ## 2. Subsidy-driven vs loyal members

# %%
if not thin:
    display(Markdown(f"## {t('section_cohorts', lang)}"))
    display(Markdown(rd.cohort_summary(cohorts["comparison"], lang)))
    display(Markdown(rd.calibration_note(cohorts["members"], lang)))
    display(HTML(rd.cohort_table_html(cohorts["comparison"], lang)))
    left, right = chart_axes(2)
    rd.plot_cohort_retention(cohorts["retention"], lang, ax=left)
    rd.plot_cohort_spend(cohorts["spend"], lang, ax=right)
    display(HTML(charts_html([left, right])))

# %%
if not thin:
    display(Markdown(rd.waves_reading(cohorts["waves"], lang)))
    left, right = chart_axes(2)
    rd.plot_post_subsidy(cohorts["post_subsidy"], lang, ax=left)
    rd.plot_waves(cohorts["waves"], lang, ax=right)
    display(HTML(charts_html([left, right])))
    display(Markdown(rd.post_subsidy_note(90, chain.as_of, lang)))
    display(HTML(rd.waves_table_html(cohorts["waves"], lang)))

# %% [markdown] tags=["remove_cell"]
# ### Did the subsidy pay? (what the campaigns caused, from their send lists)

# %%
display(Markdown(f"### {t('section_uplift', lang)}"))
display(HTML(rd.uplift_html(rd.campaign_effects(chain, store_id, shared=shared), lang)))

# %% [markdown] tags=["remove_cell"]
# ## 3. Member value (BG/NBD, Gamma-Gamma, CLV, holdout check)

# %%
if not thin:
    metrics.update(rd.section_metrics(cohorts, models))
    display(Markdown(f"## {t('section_value', lang)}"))
    if models.ok:
        display(Markdown(rd.model_summary(models, lang)))
        display(HTML(rd.value_table_html(rd.value_by(models.scores, "subsidy_cohort",
                                                     models.value_ranges["subsidy_cohort"]),
                                         "subsidy_cohort", lang)))
        axes = chart_axes(1 if models.holdout is None else 2)
        rd.plot_clv_by_cohort(models.scores, lang, ax=axes[0])
        if models.holdout is not None:
            rd.plot_holdout_check(models.holdout, lang, ax=axes[1])
        display(HTML(charts_html(axes)))
        if models.holdout is not None:
            display(Markdown(rd.holdout_summary(models.holdout, lang)))
        else:
            display(HTML(rd.note_html(t("holdout_failed", lang, reason=models.holdout_reason))))
        display(Markdown(f"### {t('value_by_tier', lang)}"))
        display(HTML(rd.value_table_html(rd.value_by(models.scores, "tier", models.value_ranges["tier"]),
                                         "tier", lang)))
    else:
        display(HTML(rd.note_html(t("not_modelled", lang, reason=models.reason))))

# %% [markdown] tags=["remove_cell"]
# ## 4. Segments

# %%
if not thin:
    segments = rd.store_segments(chain, store_id, cohorts["members"], period_days=period_days)
    display(Markdown(f"## {t('section_segments', lang)}"))
    display(Markdown(rd.segments_summary(segments, lang)))
    display(Markdown(rd.hours_reading(chain, store_id, lang, period_days=period_days)))
    display(Markdown(rd.tags_reading(rd.store_tags(chain, store_id, period_days=period_days,
                                                   min_members=min_active_members),
                                      lang, period_days=period_days)))
    display(HTML(rd.tiers_table_html(segments["tiers"], lang, period_days=period_days)))
    left, right = chart_axes(2)
    rd.plot_rfm(segments["rfm"], lang, ax=left)
    rd.plot_hours(segments["hours"], lang, ax=right)
    display(HTML(charts_html([left, right])))
    display(HTML(rd.channels_table_html(segments["channels"], lang, period_days=period_days)))
    display(HTML(rd.rfm_actions_html(segments["rfm"], lang)))

# %% [markdown] tags=["remove_cell"]
# ## 5. Refills

# %%
if not thin:
    metrics.update({f"refill_{k}": v for k, v in refills.headline.items() if k != "as_of"})
    display(Markdown(f"## {t('section_refills', lang)}"))
    display(Markdown(rd.refills_summary(refills, lang)))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    rd.plot_refills_due(refills, lang, ax=ax)
    plt.show()
    display(HTML(rd.adherence_table_html(refills, lang)))

# %% [markdown] tags=["remove_cell"]
# ## 6. Actions

# %%
if not thin:
    actions = rd.write_action_lists(chain, store_id, models, refills, actions_dir,
                                    gross_margin=gross_margin, lang=lang, shared=shared)
    metrics.update(rd.action_list_metrics(actions))
    display(Markdown(f"## {t('section_actions', lang)}"))
    display(HTML(rd.actions_html(actions, lang, relative_to=Path(metrics_path).parent if metrics_path else None)))

# %% [markdown] tags=["remove_cell"]
# ## 7. Data quality

# %%
display(Markdown(f"## {t('section_quality', lang)}"))
display(HTML(rd.quality_html(chain, store_id, lang)))

# %%
display(Markdown(f"## {t('section_glossary', lang)}"))
display(HTML(rd.glossary_html(lang)))

# %% tags=["remove_cell"]
if metrics_path:
    rd.write_metrics(metrics, metrics_path)
