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
#     title: Chain overview
# ---

# %% [markdown] tags=["remove_cell"]
# # Chain overview
#
# All stores compared in one report; executed by `rxrepurchase report` (see
# `docs/reports.md`). Every figure comes from `rxrepurchase.report_data`.

# %% tags=["parameters"]
data = "../data/demo"  # export folder of the chain
as_of = None  # analysis date YYYY-MM-DD (None: today, as the loader does)
lang = "en"  # report language: en or zh
currency = "CNY"  # ISO 4217 code of the export's amounts (CNY shown as ¥, USD as $ ...)
min_active_members = 30  # fewest active members for a store to be ranked and compared
encoding = None  # encoding of the export's CSV files, e.g. "gbk" (None: the loader's default)
mapping = None  # file-name and header mapping of the export (TOML path or dict; None: none)
time_zone = None  # the chain's time zone, e.g. "Asia/Shanghai" (None: the loader's default)
chain_tables = ""  # the chain's tables written by the runner (empty: read the export folder)
period_days = 90  # length of "this period" for the headline figures
gross_margin = 0.3  # gross margin on sales, for customer lifetime value (CLV)
store_results = ""  # the stores' outcomes and metrics written by the runner (empty: none)
targets = None  # targets of the chain and stores, as rxrepurchase.targets.read_targets gives

# %% tags=["remove_cell"]
from IPython.display import HTML, Markdown, display

from rxrepurchase import report_data as rd
from rxrepurchase.chain_view import read_store_results
from rxrepurchase.i18n import set_currency, t
from rxrepurchase.plotting import configure_matplotlib
from rxrepurchase.report_slices import load_chain_tables
from rxrepurchase.targets import chain_and_store_progress

configure_matplotlib()
set_currency(currency)
# Computed on the whole chain by the runner (or here from the export, run by hand).
chain = load_chain_tables(data, tables_folder=chain_tables, as_of=as_of, encoding=encoding,
                          mapping=mapping, time_zone=time_zone, period_days=period_days,
                          gross_margin=gross_margin, min_active_members=min_active_members)
stores = chain.stores

# %%
display(Markdown(rd.chain_title(chain, lang, period_days=period_days)))

# %%
display(Markdown(f"## {t('section_chain_totals', lang)}"))
display(HTML(rd.chain_totals_html(chain.totals, lang)))
display(Markdown(rd.chain_vs_stores_reading(chain.vs_stores, lang)))
results = read_store_results(store_results) if store_results else None
this = chain.totals.set_index("period").loc["this"]
display(HTML(rd.targets_html(chain_and_store_progress(
    targets, this, {s["store_id"]: s["metrics"] for s in (results or {"stores": []})["stores"]}),
    lang, start=this["start"], end=this["end"])))
rd.plot_chain_trend(chain.trend, lang);

# %%
display(Markdown(f"## {t('section_attention', lang)}"))
display(HTML(rd.attention_html(chain.attention, lang, min_active_members=min_active_members)))

# %%
display(Markdown(f"## {t('section_lists', lang)}"))
display(HTML(rd.list_sizes_html(results, lang)))

# %%
display(Markdown(f"## {t('section_store_ranking', lang)}"))
display(HTML(rd.chain_ranking_html(stores, lang)))
rd.plot_store_rates(stores, lang);

# %%
display(Markdown(f"## {t('section_store_value', lang)}"))
display(HTML(rd.chain_value_html(stores, lang)))
display(Markdown(t("chain_value_note", lang, margin=f"{gross_margin:.0%}")))
if (stores["model_error"] != "").any():
    unmodelled = stores.loc[stores["model_error"] != "", "store_id"]
    display(HTML(rd.note_html(t("not_modelled_stores", lang, stores=", ".join(unmodelled)))))
rd.plot_subsidy_efficiency(stores, lang);

# %%
effects = chain.effects
display(Markdown(f"## {t('section_uplift', lang)}"))
display(HTML(rd.uplift_html(effects, lang)))
if effects is not None and not effects.empty:
    display(Markdown(f"### {t('uplift_ranking', lang)}"))
    display(HTML(rd.uplift_ranking_html(effects, lang)))
