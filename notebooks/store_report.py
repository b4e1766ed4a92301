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
# (`rxrepurchase.report_data.store_page`, computed by the run's slice step before this
# notebook starts); this notebook only chooses what to show and in which order. Cells tagged
# `remove_cell` (like this one) are left out of the HTML. A store with no member orders gets a
# one-line note (`thin`) instead of the analysis sections.

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
refill_horizon_days = 14  # refill reminders: due within this many days
metrics_path = ""  # where to write metrics.json (empty: not written)
actions_dir = ""  # folder for the wake-up and refill reminder lists (empty: not written)
targets = None  # this store's targets, e.g. {"user_repurchase_rate": 0.6} (None: none)

# %% tags=["remove_cell"]
from pathlib import Path

from IPython.display import HTML, Markdown, display

from rxrepurchase import report_data as rd
from rxrepurchase.i18n import set_currency, t
from rxrepurchase.plotting import configure_matplotlib
from rxrepurchase.rendering import ALONE_CHART_SIZE, chart_axes, charts_html
from rxrepurchase.report_slices import load_store_page
from rxrepurchase.targets import target_progress

configure_matplotlib()
set_currency(currency)
# Every figure of the page: computed by the run's slice step and read from the store's slice
# (or, with no slice, computed here from the export folder). This notebook only shows them.
page = load_store_page(data, store_id, slice_folder=store_slice, as_of=as_of,
                       encoding=encoding, mapping=mapping, time_zone=time_zone, lang=lang,
                       currency=currency, actions_dir=actions_dir, period_days=period_days,
                       min_active_members=min_active_members, gross_margin=gross_margin,
                       clv_horizon_months=clv_horizon_months,
                       refill_horizon_days=refill_horizon_days, calibration_end=calibration_end)
headline, thin = page.headline, page.thin  # thin: None, or why there is nothing to analyse

# %%
display(HTML(rd.report_title(headline, lang)))
if thin:
    display(HTML(rd.note_html(thin)))

# %% [markdown] tags=["remove_cell"]
# ## This week (first: what to do; the sections below explain)

# %%
if not thin:
    display(Markdown(f"## {t('section_this_week', lang)}"))
    display(HTML(rd.this_week_html(page.this_week, lang)))

# %% [markdown] tags=["remove_cell"]
# ## 1. Headline

# %%
if not thin:
    display(Markdown(f"## {t('section_headline', lang)}"))
    display(HTML(rd.headline_html(headline, lang)))
    display(HTML(rd.targets_html([(store_id, target_progress(headline, targets or {}))], lang,
                                 start=headline["period_start"], end=headline["period_end"])))
    (trend,) = chart_axes(1, size=ALONE_CHART_SIZE)  # fits a phone: no sideways scroll
    rd.plot_monthly_repurchase(page.monthly, lang, ax=trend)
    display(HTML(charts_html([trend])))

# %% [markdown] tags=["remove_cell"]
# ## 2. Subsidy-driven vs loyal members

# %%
if not thin:
    cohorts = page.cohorts
    display(Markdown(f"## {t('section_cohorts', lang)}"))
    display(Markdown(rd.cohort_summary(cohorts["comparison"], lang)))
    display(Markdown(page.calibration_text))
    display(HTML(rd.cohort_table_html(cohorts["comparison"], lang)))
    left, right = chart_axes(2)
    rd.plot_cohort_retention(cohorts["retention"], lang, ax=left)
    rd.plot_cohort_spend(cohorts["spend"], lang, ax=right)
    display(HTML(charts_html([left, right])))

# %%
if not thin:
    display(Markdown(page.waves_text))
    left, right = chart_axes(2)
    rd.plot_post_subsidy(cohorts["post_subsidy"], lang, ax=left)
    rd.plot_waves(cohorts["waves"], lang, ax=right)
    display(HTML(charts_html([left, right])))
    display(Markdown(rd.post_subsidy_note(90, page.as_of, lang)))
    display(HTML(rd.waves_table_html(cohorts["waves"], lang)))

# %% [markdown] tags=["remove_cell"]
# ### Did the subsidy pay? (what the campaigns caused, from their send lists)

# %%
display(Markdown(f"### {t('section_uplift', lang)}"))
display(HTML(rd.uplift_html(page.effects, lang)))

# %% [markdown] tags=["remove_cell"]
# ## 3. Member value (BG/NBD, Gamma-Gamma, CLV, holdout check)

# %%
if not thin:
    models = page.models
    display(Markdown(f"## {t('section_value', lang)}"))
    if models.ok:
        display(Markdown(rd.model_summary(models, lang)))
        display(HTML(rd.value_table_html(page.value_by["subsidy_cohort"], "subsidy_cohort",
                                         lang)))
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
        display(HTML(rd.value_table_html(page.value_by["tier"], "tier", lang)))
    else:
        display(HTML(rd.note_html(t("not_modelled", lang, reason=models.reason))))

# %% [markdown] tags=["remove_cell"]
# ## 4. Segments

# %%
if not thin:
    segments = page.segments
    display(Markdown(f"## {t('section_segments', lang)}"))
    display(Markdown(rd.segments_summary(segments, lang)))
    display(Markdown(page.hours_text))
    display(Markdown(rd.tags_reading(page.tags, lang, period_days=period_days)))
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
    refills = page.refills
    display(Markdown(f"## {t('section_refills', lang)}"))
    display(Markdown(rd.refills_summary(refills, lang)))
    (due,) = chart_axes(1, size=ALONE_CHART_SIZE)
    rd.plot_refills_due(refills, lang, ax=due)
    display(HTML(charts_html([due])))
    display(HTML(rd.adherence_table_html(refills, lang)))

# %% [markdown] tags=["remove_cell"]
# ## 6. Actions

# %%
if not thin:
    display(Markdown(f"## {t('section_actions', lang)}"))
    display(HTML(rd.actions_html(page.actions, lang,
                                 relative_to=Path(metrics_path).parent if metrics_path else None)))

# %% [markdown] tags=["remove_cell"]
# ## 7. Data quality

# %%
display(Markdown(f"## {t('section_quality', lang)}"))
display(HTML(rd.quality_table_html(page.quality, lang)))

# %%
display(Markdown(f"## {t('section_glossary', lang)}"))
display(HTML(rd.glossary_html(lang)))

# %% tags=["remove_cell"]
if metrics_path:
    rd.write_metrics(page.metrics, metrics_path)
