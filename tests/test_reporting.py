"""The report runner on a small demo chain: notebooks executed per store, offline HTML, index.

One session-scoped run executes the store notebook for three stores (one of them unknown, so
it fails) and the chain overview with two parallel kernels; a second, Chinese run goes through
the CLI on the same chain exported the way a Chinese POS system does (GBK, Chinese headers, its
own file names). Everything else reads their output.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest

from rxrepurchase import report_data as rd
from rxrepurchase import reporting
from rxrepurchase.actionlists import MAX_LAPSED_DAYS, bought_recently
from rxrepurchase.chain_view import chain_totals, chain_trend, chain_vs_store_rates
from rxrepurchase.cli import main
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.i18n import UnknownLanguageError, format_count, format_money, format_rate, t
from rxrepurchase.loading import load_chain
from rxrepurchase.report_data import store_headline
from rxrepurchase.report_slices import SliceError, load_store, load_store_page
from rxrepurchase.reporting import ReportError, new_run_folder, run_reports, write_index

pytestmark = pytest.mark.slow

AS_OF = "2026-09-30"
NOTEBOOKS = Path(reporting.CHECKOUT_NOTEBOOK_DIR)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo-chain")
    write_demo_chain(folder, DemoConfig(n_members=1500, n_stores=3, months=12, seed=3, end_date=AS_OF))
    return folder


# Order headers as a Chinese POS export writes them (all in contract.HEADER_ALIASES_ZH).
ZH_ORDER_HEADERS = {
    "order_id": "订单号", "member_id": "会员编号", "store_id": "门店编码", "ordered_at": "下单时间",
    "paid_amount": "实付金额", "discount_amount": "优惠金额", "gross_amount": "应收金额",
    "stored_value_amount": "储值支付",
}  # fmt: skip


@pytest.fixture(scope="session")
def gbk_export(demo_data, tmp_path_factory) -> tuple[Path, Path]:
    """The demo chain re-encoded to GBK, with Chinese order headers and the orders in
    销售订单.csv, plus the mapping file that names it."""
    folder = tmp_path_factory.mktemp("gbk-chain")
    for path in demo_data.glob("*.csv"):
        text, name = path.read_text(encoding="utf-8-sig"), path.name
        if name == "orders.csv":
            header, rows = text.split("\n", 1)
            text = ",".join(ZH_ORDER_HEADERS.get(c, c) for c in header.split(",")) + "\n" + rows
            name = "销售订单.csv"
        (folder / name).write_bytes(text.encode("gbk"))
    mapping = tmp_path_factory.mktemp("mapping") / "export-mapping.toml"
    mapping.write_text('[files]\norders = "销售订单.csv"\n', encoding="utf-8")
    return folder, mapping


@pytest.fixture(scope="session")
def chain(demo_data):
    return load_chain(demo_data, as_of=AS_OF)


@pytest.fixture(scope="session")
def reports_out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reports")


TARGETS = {"chain": {"user_repurchase_rate": 0.9}, "store": {"user_repurchase_rate": 0.5},
           "stores": {"S01": {"active_members": 10}}}


@pytest.fixture(scope="session")
def run(demo_data, reports_out):
    # Relative paths, as a user types them (`--out reports`): the notebooks run in folders of
    # their own, so the runner must resolve every path it hands them.
    lines: list[str] = []
    cwd = os.getcwd()
    os.chdir(reports_out.parent)
    try:
        result = run_reports(
            os.path.relpath(demo_data), stores="S01,S02,S99", out=reports_out.name, jobs=2,
            as_of=AS_OF, progress=lines.append, targets=TARGETS,
        )
    finally:
        os.chdir(cwd)
    result.progress_lines = lines
    return result


@pytest.fixture(scope="session")
def zh_cli_run(gbk_export, reports_out, run):
    # `run` first: this second run in the same --out must get a folder of its own.
    data, mapping = gbk_export
    code = main(["report", "--data", str(data), "--encoding", "gbk", "--mapping",
                 os.path.relpath(mapping), "--stores", "S03,S99", "--out", str(reports_out),
                 "--as-of", AS_OF, "--lang", "zh", "--no-chain", "--jobs", "2",
                 "--currency", "USD",
                 "--time-zone", "UTC"])  # naive demo times: the same figures in any zone
    folders = sorted(p for p in reports_out.iterdir() if p != run.folder)
    assert len(folders) == 1
    return code, folders[0]


def _ok(run, store_id):
    return next(r for r in run.results if r.store_id == store_id)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _words(page: str) -> str:
    """The text of an HTML fragment, tags removed and entities resolved."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# --- the run folder -----------------------------------------------------------------------


def test_run_folder_layout(run, reports_out):
    assert run.folder.parent == reports_out
    assert re.fullmatch(r"\d{8}-\d{6}(-\d+)?", run.folder.name)
    for store_id in ("S01", "S02"):
        r = _ok(run, store_id)
        assert r.ok, r.error
        assert r.html == run.folder / "stores" / store_id / "report.html"
        assert r.notebook == run.folder / "stores" / store_id / "report.ipynb"
        assert r.html.is_file() and r.notebook.is_file()
        assert (run.folder / "stores" / store_id / "metrics.json").is_file()
    assert run.chain_html == run.folder / "chain" / "chain_overview.html"
    assert run.chain_html.is_file() and (run.folder / "chain" / "chain_overview.ipynb").is_file()
    assert run.index_html == run.folder / "index.html" and run.index_html.is_file()


def test_executed_notebook_carries_the_store_parameters(run):
    nb = nbformat.read(_ok(run, "S02").notebook, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "store_id = \"S02\"" in injected[0].source
    assert f'as_of = "{AS_OF}"' in injected[0].source
    # The store reads its own slice, kept in its folder (so the notebook can be run again).
    folder = re.search(r'\bstore_slice = "([^"]+)"', injected[0].source).group(1)
    assert Path(folder) == run.folder / "stores" / "S02" / "slice"
    assert (Path(folder) / "slice.json").is_file()
    nb = nbformat.read(run.chain.notebook, as_version=4)
    [injected] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f'chain_tables = "{run.folder / "chain" / "tables"}"' in injected.source


def test_failing_store_does_not_stop_the_others(run):
    assert [r.store_id for r in run.results] == ["S01", "S02", "S99"]
    assert not run.ok
    [failure] = run.failures
    assert failure.store_id == "S99" and failure.html is None
    assert "DataContractError" in failure.error and "S99" in failure.error
    assert failure.notebook.is_file()  # the partial notebook shows the failing cell
    partial = nbformat.read(failure.notebook, as_version=4)
    assert any(o.get("output_type") == "error" for c in partial.cells for o in c.get("outputs", []))
    assert all(_ok(run, s).ok for s in ("S01", "S02")) and run.chain.ok


def test_progress_lines_and_summary(run):
    done = [line for line in run.progress_lines if line.startswith("[")]
    assert len(done) == 4  # three stores and the chain overview
    assert {re.match(r"\[(\d)/4\]", line).group(1) for line in done} == {"1", "2", "3", "4"}
    assert any(re.search(r"S99 FAILED \(DataContractError: .*\) in \d+\.\ds", s) for s in done)
    assert any(re.search(r"S01 done in \d+\.\ds", s) for s in done)
    summary = run.progress_lines[-1]
    assert "2/3 store reports" in summary and "S99" in summary
    assert str(run.failures[0].notebook) in summary


def test_run_json_records_parameters_status_and_failures(run):
    doc = json.loads(_text(run.folder / "run.json"))
    assert doc["parameters"]["as_of"] == AS_OF and doc["parameters"]["lang"] == "en"
    assert doc["parameters"]["stores"] == ["S01", "S02", "S99"]
    by_id = {s["store_id"]: s for s in doc["stores"]}
    assert by_id["S01"]["ok"] and by_id["S01"]["html"] == "stores/S01/report.html"
    assert by_id["S01"]["metrics"] == json.loads(_text(run.folder / "stores/S01/metrics.json"))
    assert doc["failures"] == [
        {"store_id": "S99", "error": by_id["S99"]["error"], "notebook": "stores/S99/report.ipynb"}
    ]
    assert doc["chain"]["ok"] and doc["chain"]["html"] == "chain/chain_overview.html"


# --- the HTML reports ---------------------------------------------------------------------


def _html_pages(run) -> list[Path]:
    return [_ok(run, "S01").html, _ok(run, "S02").html, run.chain_html, run.index_html]


def test_html_loads_nothing_from_outside(run):
    for page in _html_pages(run):
        text = _text(page)
        assert not re.search(r"<script[^>]*\bsrc=", text, re.I), page
        assert not re.search(r"""\b(src|href)=["']?(https?:)?//""", text, re.I), page
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", text, re.I), page
        assert "require.js" not in text and "mathjax" not in text.lower(), page


def test_html_has_no_code_cells(run):
    for page in (_ok(run, "S01").html, run.chain_html):
        text = _text(page)
        assert 'class="jp-InputArea' not in text
        assert not re.search(r"class=\"[^\"]*jp-(Input|Output)Prompt", text)
        assert "configure_matplotlib" not in text and "import " not in text
        assert "<img" in text and 'src="data:image/png;base64,' in text  # charts embedded


def test_store_html_shows_the_headline_figures_the_package_computes(run, chain):
    for store_id in ("S01", "S02"):
        expected = store_headline(chain, store_id)
        text = _text(_ok(run, store_id).html)
        tiles = re.findall(r'<div class="rx-value">([^<]*)</div>', text)
        assert tiles == [
            format_rate(expected["user_repurchase_rate"]),
            format_rate(expected["order_repurchase_rate"]),
            format_count(expected["active_members"]),
            format_money(expected["revenue"]),
            format_money(expected["subsidy"]),
        ]
        assert expected["store_name"] in text
        assert format_rate(expected["chain_median_user_repurchase_rate"]) in text


def test_metrics_json_equals_the_package_figures(run, chain):
    for store_id in ("S01", "S02"):
        cohorts = rd.store_cohorts(chain, store_id)
        models = rd.store_models(chain, store_id, cohorts["members"])
        expected = {**store_headline(chain, store_id), **rd.section_metrics(cohorts, models)}
        written = _ok(run, store_id).metrics
        # JSON round-trips floats exactly: the notebook's figures are the package's.
        assert {k: written.get(k) for k in expected} == expected
        assert 0 < written["user_repurchase_rate"] < 1 and written["active_members"] > 0
        assert written["modelled"] and written["clv_total"] > 0
        assert written["loyal_members"] + written["subsidy_driven_members"] <= written["cohort_members"]


def test_this_week_opens_the_store_page_with_the_package_counts(run, chain):
    r = _ok(run, "S01")
    text = _text(r.html)
    cohorts = rd.store_cohorts(chain, "S01")
    models = rd.store_models(chain, "S01", cohorts["members"])
    actions = rd.store_this_week(chain, "S01", cohorts["members"], models,
                                 rd.store_refills(chain, "S01"))
    expected = rd.this_week_metrics(actions)
    assert {k: r.metrics.get(k) for k in expected} == expected
    assert expected["this_week_reminder_coupon_members"] > 0
    assert expected["this_week_member_care_members"] > 0
    # First, before the headline, and the same words as the package renders (the page's HTML
    # is re-serialised by nbconvert: compare the text).
    assert text.index(">This week<") < text.index(">1. Headline<")
    assert _words(rd.this_week_html(actions, "en")) in _words(text)


def test_every_repurchase_rate_on_the_page_names_its_window(run):
    r = _ok(run, "S01")
    text = _text(r.html)
    tiles = dict(re.findall(r'<div class="rx-label">([^<]*)</div>\s*<div class="rx-value">([^<]*)<',
                            text))
    # The tile figures are metrics.json's, under labels that say over which days.
    assert tiles["User repurchase rate, last 90 days"] == format_rate(r.metrics["user_repurchase_rate"])
    assert tiles["Order repurchase rate, last 90 days"] == format_rate(r.metrics["order_repurchase_rate"])
    assert "User repurchase rate, whole history" in text  # the cohort table
    assert ">User repurchase rate<" not in text and ">Order repurchase rate<" not in text


def test_value_and_tier_tables_show_their_ranges(run, chain):
    text = _text(_ok(run, "S01").html)
    cohorts = rd.store_cohorts(chain, "S01")
    models = rd.store_models(chain, "S01", cohorts["members"])
    # Model-based ranges (parameter uncertainty) around each group's total CLV.
    for by in ("subsidy_cohort", "tier"):
        table = rd.value_by(models.scores, by, models.value_ranges[by])
        assert (table["clv_total_low"] < table["clv_total"]).all()
        assert (table["clv_total"] < table["clv_total_high"]).all()
        assert rd.value_table_html(table, by, "en").count("CLV total, 80% range") == 1
    assert "CLV total, 80% range" in text and "Expected purchases, 80% range" in text
    # Ranges of other members than the scores' are refused.
    with pytest.raises(rd.ReportDataError, match="other members"):
        rd.value_by(models.scores.iloc[5:], "tier", models.value_ranges["tier"])
    # The tier table's repurchase rate with its Wilson interval.
    tiers = rd.store_segments(chain, "S01", cohorts["members"])["tiers"]
    low, high = rd.repurchase_interval(tiers["repeat_members"], tiers["period_members"])
    assert ((low <= tiers["user_repurchase_rate"]) & (tiers["user_repurchase_rate"] <= high)).all()
    assert "Repurchase rate, 95% interval" in text


def test_sections_open_with_readings_and_the_page_ends_with_a_glossary(run, chain):
    text = _text(_ok(run, "S01").html)
    cohorts = rd.store_cohorts(chain, "S01")
    reading = rd.waves_reading(cohorts["waves"])
    assert reading.startswith("From wave 1 to wave ") and html.escape(reading) in text
    assert html.escape(rd.hours_reading(chain, "S01")) in text
    tags = rd.store_tags(chain, "S01")
    assert len(tags) >= 2 and html.escape(rd.tags_reading(tags)) in text
    assert "Lost: long gone, bought once or twice" in text and "What to do" in text
    # Plain words for store managers: no model names; the glossary closes the page.
    assert "BG/NBD" not in text and "Gamma-Gamma" not in text
    assert text.index(">Glossary<") > text.index(">7. Data quality<")


def _store_figures(chain, store_id, shared) -> dict:
    """Every table and figure a store page is built from."""
    cohorts = rd.store_cohorts(chain, store_id, shared=shared)
    models = rd.store_models(chain, store_id, cohorts["members"])
    refills = rd.store_refills(chain, store_id, shared=shared)
    lists = rd.write_action_lists(chain, store_id, models, refills, None, shared=shared)
    figures = {
        "headline": rd.store_headline(chain, store_id, shared=shared),
        "monthly": rd.monthly_repurchase(chain, store_id, shared=shared),
        "calibration": rd.calibration_note(cohorts["members"], "en"),
        "sections": rd.section_metrics(cohorts, models),
        "scores": models.scores,
        "refill_headline": refills.headline,
        "this_week": rd.store_this_week(chain, store_id, cohorts["members"], models, refills,
                                        shared=shared),
        "lists": lists.drop(columns="path"),
        "uplift": rd.campaign_effects(chain, store_id, shared=shared),
        "quality": rd.quality_table(chain, store_id),
        **{f"cohorts_{k}": v for k, v in cohorts.items() if k != "members"},
        **{f"refills_{k}": getattr(refills, k)
           for k in ("predictions", "adherence", "targets", "list_check")},
        **{f"list_{k}": v for k, v in lists.attrs["tables"].items()},
        **{f"segments_{k}": v
           for k, v in rd.store_segments(chain, store_id, cohorts["members"],
                                         shared=shared).items()},
        "tags": rd.store_tags(chain, store_id, shared=shared),
    }
    # A slice blanks other stores' ids: a member's home store, a refill's last store.
    return {k: v.drop(columns=["home_store_id", "last_store_id"], errors="ignore")
            if isinstance(v, pd.DataFrame) else v for k, v in figures.items()}


def _same(a, b, what: str) -> None:
    if isinstance(a, pd.DataFrame):
        # Parquet reads text columns back as str where pandas may have left object.
        pd.testing.assert_frame_equal(b, a, check_dtype=not what.endswith(".uplift"), obj=what)
        assert repr(b.attrs) == repr(a.attrs), what
    elif isinstance(a, dict):
        assert b.keys() == a.keys(), what
        for k in a:
            _same(a[k], b[k], f"{what}.{k}")
    elif isinstance(a, float) and a != a:
        assert b != b, what
    else:
        assert b == a, what


def test_store_figures_from_the_store_slice_are_the_same(chain, tmp_path):
    # What a run writes once for each store (its slice, through Parquet and back) gives
    # exactly the figures the store computes on its own from the whole chain.
    from rxrepurchase.report_slices import read_store_slice, store_slice, write_store_slice

    shared = rd.chain_wide(chain)
    for store_id in chain.stores["store_id"]:
        write_store_slice(*store_slice(chain, shared, store_id), tmp_path / store_id)
        mine, part = read_store_slice(tmp_path / store_id)
        assert mine.store_ids == [store_id] and part.store_id == store_id
        alone, sliced = _store_figures(chain, store_id, None), _store_figures(mine, store_id, part)
        _same(alone, sliced, store_id)
        assert sliced["refill_headline"]["refill_members"] > 0


def test_chain_wide_figures_of_other_data_are_refused(chain, demo_data):
    shared = rd.chain_wide(chain)
    later = dataclasses.replace(chain, as_of=chain.as_of + pd.Timedelta(days=1))
    with pytest.raises(rd.ReportDataError, match="as of 2026-09-30, not of .* as of 2026-10-01"):
        rd.store_refills(later, "S01", shared=shared)
    with pytest.raises(rd.ReportDataError, match="as of 2026-09-30"):
        rd.store_cohorts(later, "S01", shared=shared)
    strict = dataclasses.replace(shared.rules, subsidized_min_excess=0.5)
    with pytest.raises(rd.ReportDataError, match="other cohort rules"):
        rd.store_cohorts(chain, "S01", rules=strict, shared=shared)


def test_model_section_shows_the_holdout_check(run, chain):
    cohorts = rd.store_cohorts(chain, "S01")
    models = rd.store_models(chain, "S01", cohorts["members"])
    errors = models.holdout.attrs["errors"]
    text = _text(_ok(run, "S01").html)
    assert rd.holdout_summary(models.holdout, "en") in text
    # The store's total CLV with its range from parameter uncertainty.
    s = models.scores
    assert s.attrs["clv_total_low"] < s["clv"].sum() < s.attrs["clv_total_high"]
    assert (s["p_alive_low"] <= s["p_alive_high"]).all()
    assert "(80% range from the models' parameter uncertainty: " in rd.model_summary(models, "en")
    assert "模型参数不确定性下的 80% 区间" in rd.model_summary(models, "zh")
    assert f"it predicted {errors.at['model', 'total_predicted']:,.0f} repeat purchases" in text


def test_action_lists_are_written_next_to_the_report(run, chain):
    r = _ok(run, "S01")
    # Beside the list, its measured precision: the list of 30 days ago and who refilled.
    refills = rd.store_refills(chain, "S01")
    sentence = rd.refills_summary(refills, "en")
    assert "How good is this list? Of the " in sentence and sentence in _text(r.html)
    assert r.metrics["refill_list_precision"] == pytest.approx(refills.headline["list_precision"])
    folder = r.html.parent / "actions"
    for name in ("wake_up", "refill_reminder", "lapsed_refill"):
        listed = pd.read_csv(folder / f"{name}.csv", encoding="utf-8-sig")
        # metrics.json: rows and distinct members of the very file, under different names.
        assert len(listed) == r.metrics[f"{name}_rows"]
        assert listed["member_id"].nunique() == r.metrics[f"{name}_members"]
        assert f'href="actions/{name}.csv"' in _text(r.html)
        assert "member_id" in listed and "suggested_action" in listed
    # (The default list, the likeliest member x products, may name each member once.)
    assert r.metrics["refill_reminder_members"] <= r.metrics["refill_reminder_rows"]
    # Lapsed refills older than the limit are left out, and the page says how many.
    lapsed = pd.read_csv(folder / "lapsed_refill.csv", encoding="utf-8-sig")
    assert lapsed["days_overdue"].max() <= MAX_LAPSED_DAYS
    too_old = refills.predictions.loc[
        (refills.predictions["rhythm"] == "repeat")
        & (refills.predictions["days_overdue"] > MAX_LAPSED_DAYS)
        & ~refills.predictions["member_id"].isin(bought_recently(chain.orders, chain.as_of))]
    assert r.metrics["lapsed_refill_too_old_rows"] == len(too_old) > 0
    assert t("lapsed_too_old", "en", rows=format_count(len(too_old)),
             members=format_count(too_old["member_id"].nunique()),
             days=MAX_LAPSED_DAYS) in _words(_text(r.html))
    # The refill section's count is the list's: one list, one figure.
    assert r.metrics["refill_reminder_rows"] == refills.headline["reminder_rows"]


def test_a_store_too_small_to_model_is_said_plainly(chain):
    # 40 members: S01 keeps fewer repeat buyers than models.MIN_REPEAT_BUYERS.
    few = chain.orders["member_id"].isin(chain.members["member_id"].iloc[:40])
    small = dataclasses.replace(chain, orders=chain.orders[few | chain.orders["member_id"].isna()])
    cohorts = rd.store_cohorts(small, "S01")
    models = rd.store_models(small, "S01", cohorts["members"])
    assert not models.ok and "made a repeat purchase" in models.reason
    assert rd.section_metrics(cohorts, models)["modelled"] is False
    note = rd.note_html(t("not_modelled", "en", reason=models.reason))
    assert "could not be modelled" in note and html.escape(models.reason) in note


def test_index_links_every_store_and_marks_the_failure(run, chain):
    text = _text(run.index_html)
    for store_id in ("S01", "S02"):
        assert f'href="stores/{store_id}/report.html"' in text
        h = store_headline(chain, store_id)
        row = re.search(rf"<tr><td>{store_id}</td>(.*?)</tr>", text, re.S).group(1)
        for figure in (format_rate(h["user_repurchase_rate"]), format_rate(h["order_repurchase_rate"]),
                       format_count(h["active_members"]), format_money(h["revenue"]),
                       format_money(h["subsidy"])):
            assert f"<td>{figure}</td>" in row
    assert 'href="chain/chain_overview.html"' in text
    failed = re.search(r'<tr class="failed-row"><td>S99</td>(.*?)</tr>', text, re.S).group(1)
    assert "DataContractError" in failed and 'href="stores/S99/report.ipynb"' in failed


def test_printed_index_names_the_files_instead_of_linking(run, chain, tmp_path):
    # The emailed index.pdf: its reader has no HTML pages, so nothing is a link.
    documents = {"S01": run.folder / "stores/S01/report.pdf",
                 "chain": run.folder / "chain/chain_overview.pdf"}  # S02: its PDF failed
    path = write_index(run, documents=documents, path=tmp_path / "index_print.html")
    text = _text(path)
    assert "<a " not in text and "href" not in text
    assert t("open_report", "en") not in text
    row = re.search(r"<tr><td>S01</td>(.*?)</tr>", text, re.S).group(1)
    assert "<td>stores/S01/report.pdf</td>" in row
    h = store_headline(chain, "S01")
    assert f"<td>{format_rate(h['user_repurchase_rate'])}</td>" in row
    row = re.search(r"<tr><td>S02</td>(.*?)</tr>", text, re.S).group(1)
    assert f"<td>{t('no_document', 'en')}</td>" in row
    failed = re.search(r'<tr class="failed-row"><td>S99</td>(.*?)</tr>', text, re.S).group(1)
    assert "DataContractError" in failed and "partial notebook — stores/S99/report.ipynb" in failed
    assert f"{t('chain_overview', 'en')} — chain/chain_overview.pdf" in text
    # Where the files are kept: the run folder's name, not a path on the reporting machine.
    assert f"run folder {run.folder.name} on the reporting server" in text
    assert str(run.folder.parent) not in text
    assert 'href="stores/S01/report.html"' in _text(run.index_html)  # the screen page keeps its links


def test_chain_overview_ranks_every_store(run, chain):
    text = _text(run.chain_html).split(">Stores ranked by user repurchase rate<", 1)[1]
    rates = {s: store_headline(chain, s)["user_repurchase_rate"] for s in chain.store_ids}
    best_first = sorted(rates, key=rates.get, reverse=True)
    positions = [text.index(f"<td>{s}</td>") for s in best_first]
    assert positions == sorted(positions)
    for rate in rates.values():
        assert format_rate(rate) in text


def test_chain_overview_states_its_period_totals_and_stores_to_watch_first(run, chain):
    text = _text(run.chain_html)
    h = store_headline(chain, "S01")
    assert f"period {h['period_start']} to {h['period_end']} (90 days)" in text
    totals = chain_totals(chain.orders, chain.as_of).set_index("period")
    assert format_money(totals.at["this", "revenue"]) in text
    assert text.index(">The chain this period<") < text.index(">Stores needing attention first<")
    assert text.index(">Stores needing attention first<") < text.index(
        ">Stores ranked by user repurchase rate<")


def test_chain_overview_lists_each_store_list_sizes_and_who_receives_nothing(run):
    # The overview runs after the stores and shows the sizes their metrics.json count.
    text = _text(run.chain_html).split(">List sizes per store<", 1)[1].split("</table>")[0]
    sizes = _ok(run, "S01").metrics
    cells = ["S01", *(format_count(sizes[k]) for k in (
        "refill_reminder_members", "refill_reminder_rows", "wake_up_members",
        "lapsed_refill_members", "top_members", "this_week_member_care_members"))]
    assert "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" in text
    assert sizes["top_members"] > 0
    page = _words(_text(run.chain_html))
    assert "Managers who receive nothing: S99 (report failed: DataContractError" in page
    stores_json = json.loads(_text(run.chain_html.parent / "stores.json"))
    assert [s["store_id"] for s in stores_json["stores"]] == ["S01", "S02", "S99"]
    assert stores_json["sends_email"] is False


def test_targets_show_their_progress_on_the_store_page_and_the_overview(run, chain):
    h = store_headline(chain, "S01")
    page = _text(_ok(run, "S01").html)
    rate = h["user_repurchase_rate"]
    # The store's own target (active members) and every store's (user repurchase rate).
    row = ("<td>S01</td><td>User repurchase rate, last 90 days</td><td>50.0%</td>"
           f"<td>{format_rate(rate)}</td><td>{format_rate(rate / 0.5, digits=0)}</td>")
    assert row in page
    assert (f"<td>S01</td><td>Active members</td><td>10</td><td>{format_count(h['active_members'])}</td>"
            in page)
    assert "Chain (all stores together)" not in page
    assert page.index("rx-tiles") < page.index("rx-targets")  # right under the tiles
    overview = _text(run.chain_html)
    totals = chain_totals(chain.orders, chain.as_of).set_index("period")
    gap = 0.9 - totals.at["this", "user_repurchase_rate"]
    assert (f"<td>Chain (all stores together)</td><td>User repurchase rate, last 90 days</td>"
            f"<td>90.0%</td><td>{format_rate(totals.at['this', 'user_repurchase_rate'])}</td>"
            in overview)
    assert f"{100 * gap:.1f} pts to go" in overview
    assert "<td>S02</td><td>User repurchase rate, last 90 days</td><td>50.0%</td>" in overview
    assert "<td>S99</td>" in overview.split('class="rx-targets"')[1]  # failed: figure missing


def test_chain_overview_explains_why_the_chain_rate_is_not_a_store_rate(run, chain):
    page = _words(_text(run.chain_html))
    figures = chain_vs_store_rates(chain.orders, chain.as_of)
    assert rd.chain_vs_stores_reading(figures) in page
    # Hand check of the demo's figures: the chain's rate is above every compared store's,
    # and the members who repeat only across stores close (part of) the gap.
    assert figures["chain_rate"] > figures["store_high"] >= figures["store_low"]
    assert figures["cross_store_only"] > 0
    assert figures["pooled_store_rate"] < figures["chain_rate"]
    assert figures["store_members"] > figures["members"]
    # Each label says whom it counts.
    assert "User repurchase rate, last 90 days, each member once over all stores" in page
    assert "User repurchase rate, last 90 days, purchases at the store" in page


def test_subsidy_section_tells_each_wave_and_ranks_the_campaigns(run, chain):
    effects = rd.campaign_effects(chain)
    assert set(effects["method"]) == {"randomized", "observational (matched)"}
    text = _text(run.chain_html)
    section = text[text.index("Did the subsidy pay?"):]
    for r in effects.itertuples():
        assert f"Wave {r.wave} (" in section and f"cost {format_money(r.subsidy)}" in section
    assert "Campaigns ranked by cost per extra member" in section
    store = rd.campaign_effects(chain, "S01")
    page = _text(_ok(run, "S01").html)
    assert "Did the subsidy pay?" in page
    assert all(f"cost {format_money(v)}" in page for v in store["subsidy"])


# --- the CLI, Chinese reports, a second run -------------------------------------------------


def test_cli_exits_non_zero_when_a_store_fails_and_writes_a_new_folder(zh_cli_run, run):
    code, folder = zh_cli_run
    assert code == 1
    assert folder != run.folder and run.folder.is_dir()  # the first run is untouched
    doc = json.loads(_text(folder / "run.json"))
    assert [f["store_id"] for f in doc["failures"]] == ["S99"]
    assert (folder / "stores/S03/report.html").is_file() and not (folder / "chain").exists()


def test_chinese_report_is_in_chinese(zh_cli_run, chain):
    _, folder = zh_cli_run
    text = _text(folder / "stores/S03/report.html")
    assert "核心指标" in text and "用户复购率" in text and "会员复购分析报告" in text
    assert "Headline" not in text and "User repurchase rate" not in text
    assert text.index("本周行动") < text.index("核心指标") and "This week" not in text
    assert "渠道：微信" in text and "Channel:" not in text
    assert "补贴值不值？" in text and "第1波" in text and "Did the subsidy pay?" not in text
    h = store_headline(chain, "S03")
    # The run said the amounts are US dollars (--currency USD): every amount shows $.
    assert f'<div class="rx-value">{format_money(h["revenue"], "zh", "USD")}</div>' in text
    assert format_money(h["revenue"], "zh", "USD").startswith("$")
    assert "万" in format_money(h["revenue"], "zh")
    assert "¥" not in text
    index = _text(folder / "index.html")
    assert "用户复购率" in index and 'lang="zh-CN"' in index
    assert format_money(h["revenue"], "zh", "USD") in index and "¥" not in index


def test_gbk_export_with_chinese_headers_gives_the_same_figures(zh_cli_run, gbk_export, chain):
    _, folder = zh_cli_run
    data, mapping = gbk_export
    params = json.loads(_text(folder / "run.json"))["parameters"]
    assert (params["data"], params["encoding"], params["time_zone"]) == (str(data), "gbk", "UTC")
    assert params["mapping"] == str(mapping.resolve())  # given relative, handed on absolute
    metrics = json.loads(_text(folder / "stores/S03/metrics.json"))
    expected = store_headline(chain, "S03")  # the same chain read from the UTF-8 export
    assert {k: metrics[k] for k in expected} == expected
    # The executed notebook says how to read the export, so it can be re-run without the cache.
    nb = nbformat.read(folder / "stores/S03/report.ipynb", as_version=4)
    [injected] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'encoding = "gbk"' in injected.source and str(mapping.resolve()) in injected.source
    assert 'time_zone = "UTC"' in injected.source
    again, shared = load_store(data, "S03", as_of=AS_OF, encoding="gbk", mapping=str(mapping))
    pd.testing.assert_frame_equal(again.orders, chain.orders)
    assert shared is None  # no slice: every figure is computed on the whole export


def test_gbk_export_without_its_encoding_is_a_clear_error(gbk_export, tmp_path, capsys):
    data, mapping = gbk_export
    args = ["report", "--data", str(data), "--out", str(tmp_path), "--as-of", AS_OF]
    assert main([*args, "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert "cannot be read as utf-8" in err and "encoding='gbk'" in err
    assert main([*args, "--encoding", "gbk"]) == 2  # no mapping: no orders.csv
    assert "orders" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# Latin letters allowed in a Chinese chart: acronyms the Chinese texts use as they are.
_ACRONYMS = {"CLV", "RFM", "PDC", "BG", "NBD", "O2O", "B2C", "PLUS"}


def test_every_chart_of_a_chinese_report_is_in_chinese(chain):
    import matplotlib
    import matplotlib.pyplot as plt

    from rxrepurchase.plotting import configure_matplotlib

    s, lang = "S01", "zh"
    cohorts = rd.store_cohorts(chain, s)
    models = rd.store_models(chain, s, cohorts["members"])
    segments = rd.store_segments(chain, s, cohorts["members"])
    stores = rd.chain_comparison(chain)
    charts = {
        "plot_monthly_repurchase": lambda ax: rd.plot_monthly_repurchase(
            rd.monthly_repurchase(chain, s), lang, ax=ax),
        "plot_cohort_retention": lambda ax: rd.plot_cohort_retention(cohorts["retention"], lang, ax=ax),
        "plot_cohort_spend": lambda ax: rd.plot_cohort_spend(cohorts["spend"], lang, ax=ax),
        "plot_post_subsidy": lambda ax: rd.plot_post_subsidy(cohorts["post_subsidy"], lang, ax=ax),
        "plot_waves": lambda ax: rd.plot_waves(cohorts["waves"], lang, ax=ax),
        "plot_clv_by_cohort": lambda ax: rd.plot_clv_by_cohort(models.scores, lang, ax=ax),
        "plot_holdout_check": lambda ax: rd.plot_holdout_check(models.holdout, lang, ax=ax),
        "plot_rfm": lambda ax: rd.plot_rfm(segments["rfm"], lang, ax=ax),
        "plot_hours": lambda ax: rd.plot_hours(segments["hours"], lang, ax=ax),
        "plot_refills_due": lambda ax: rd.plot_refills_due(rd.store_refills(chain, s), lang, ax=ax),
        "plot_store_rates": lambda ax: rd.plot_store_rates(stores, lang, ax=ax),
        "plot_subsidy_efficiency": lambda ax: rd.plot_subsidy_efficiency(stores, lang, ax=ax),
        "plot_chain_trend": lambda ax: rd.plot_chain_trend(
            chain_trend(chain.orders, chain.as_of), lang, ax=ax),
    }
    # Every chart the two notebooks draw is checked here.
    used = set()
    for name in ("store_report", "chain_overview"):
        used |= set(re.findall(r"\brd\.(plot_\w+)\(", _text(NOTEBOOKS / f"{name}.py")))
    assert used == set(charts)
    for name, draw in charts.items():
        with matplotlib.rc_context():
            configure_matplotlib(style=False)  # as the notebooks do: a CJK font
            fig, ax = plt.subplots()
            draw(ax)
            fig.canvas.draw()
        texts = []
        for a in fig.axes:
            texts += [a.get_title(), a.get_xlabel(), a.get_ylabel(), *(x.get_text() for x in a.texts)]
            texts += [x.get_text() for x in (*a.get_xticklabels(), *a.get_yticklabels())]
            if a.get_legend() is not None:
                texts += [x.get_text() for x in a.get_legend().get_texts()]
        plt.close(fig)
        words = set(re.findall(r"[A-Za-z][A-Za-z0-9]*", " ".join(texts)))
        # Store ids (S01) are data, not text.
        english = {w for w in words - _ACRONYMS if not re.fullmatch(r"S\d+", w)}
        assert not english, (name, english)
        assert re.search(r"[\u4e00-\u9fff]", " ".join(texts)), name


def test_cli_rejects_a_missing_data_folder(tmp_path, capsys):
    assert main(["report", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing started, no run folder


def test_bad_arguments_fail_before_anything_runs(demo_data, tmp_path):
    with pytest.raises(UnknownLanguageError, match="fr"):
        run_reports(demo_data, out=tmp_path, lang="fr")
    with pytest.raises(ReportError, match="jobs"):
        run_reports(demo_data, out=tmp_path, jobs=0)
    with pytest.raises(ReportError, match="unknown encoding 'gbkk'"):
        run_reports(demo_data, out=tmp_path, encoding="gbkk")
    with pytest.raises(ReportError, match="twice: S01"):
        run_reports(demo_data, out=tmp_path, stores="S01,S01", as_of=AS_OF)
    with pytest.raises(ReportError, match="set by the runner"):
        run_reports(demo_data, out=tmp_path, as_of=AS_OF, parameters={"store_id": "S02"})
    with pytest.raises(ReportError, match="refill_within_days is the old name of refill_horizon_days"):
        run_reports(demo_data, out=tmp_path, as_of=AS_OF,
                    parameters={"refill_within_days": 7, "refill_horizon_days": 7})
    assert list(tmp_path.iterdir()) == []


def test_run_folders_are_never_reused(tmp_path):
    import datetime as dt

    now = dt.datetime(2026, 9, 30, 7, 15, 2)
    first, second, third = (new_run_folder(tmp_path, now) for _ in range(3))
    assert [p.name for p in (first, second, third)] == [
        "20260930-071502", "20260930-071502-2", "20260930-071502-3"]


def test_missing_notebook_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(reporting, "NOTEBOOK_DIR", tmp_path / "package")
    monkeypatch.setattr(reporting, "CHECKOUT_NOTEBOOK_DIR", tmp_path / "checkout")
    with pytest.raises(ReportError, match="--notebook"):
        reporting.find_notebook(reporting.STORE_NOTEBOOK)
    with pytest.raises(ReportError, match="does not exist"):
        reporting.find_notebook(reporting.STORE_NOTEBOOK, tmp_path / "mine.ipynb")


# The kernel's own handler of papermill's last request (kernel_info) lingers after replying,
# as on a busy machine: jupyter_client's interrupt before shutdown lands in it for certain.
_LINGERING_KERNEL = """\
import time
kernel = get_ipython().kernel
reply = kernel.shell_handlers["kernel_info_request"]
async def reply_then_linger(*args):
    await reply(*args)
    time.sleep(2)
kernel.shell_handlers["kernel_info_request"] = reply_then_linger
"""


def test_kernels_shut_down_without_a_keyboard_interrupt(tmp_path, capfd):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_LINGERING_KERNEL)])
    nb.metadata["kernelspec"] = {"name": reporting.KERNEL_NAME, "language": "python",
                                 "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / "linger.ipynb")
    # In this process, so the kernel writes to the captured stderr.
    outcome = reporting._execute(
        reporting._job("linger", tmp_path / "linger.ipynb", tmp_path / "linger", {}, None))
    assert outcome["ok"], outcome["error"]
    assert "KeyboardInterrupt" not in capfd.readouterr().err


# --- the notebooks in git ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["store_report", "chain_overview"])
def test_notebooks_are_stored_without_outputs_and_match_their_py_pair(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    paired = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert [c.source for c in paired.cells] == [c.source for c in nb.cells]


def test_slice_must_be_the_stores_and_of_the_data_and_date(run, demo_data, tmp_path):
    folder = run.folder / "stores" / "S01" / "slice"
    chain, shared = load_store(demo_data, "S01", slice_folder=folder, as_of=AS_OF)
    assert chain.store_ids == ["S01"] and shared.store_id == "S01"
    with pytest.raises(SliceError, match="slice of store 'S01', not of 'S02'"):
        load_store(demo_data, "S02", slice_folder=folder, as_of=AS_OF)
    with pytest.raises(SliceError, match="does not hold the store slice"):
        load_store(demo_data, "S01", slice_folder=folder, as_of="2026-06-30")
    with pytest.raises(SliceError, match="does not hold the store slice"):
        load_store(tmp_path, "S01", slice_folder=folder, as_of=AS_OF)
    with pytest.raises(SliceError, match="has no slice.json"):
        load_store(demo_data, "S01", slice_folder=tmp_path, as_of=AS_OF)
    with pytest.raises(SliceError, match="not a store slice"):
        load_store(demo_data, "S01", slice_folder=run.folder / "chain" / "tables", as_of=AS_OF)
    # The page computed in the slice step is the notebook's only when made with its parameters.
    actions = str(folder.parent / "actions")
    page = load_store_page(demo_data, "S01", slice_folder=folder, as_of=AS_OF,
                           actions_dir=actions)
    metrics = json.loads((folder.parent / "metrics.json").read_text(encoding="utf-8"))
    assert page.metrics["clv_total"] == metrics["clv_total"] and page.models.ok
    for wrong, said in (({"gross_margin": 0.25}, "gross_margin=0.3, not 0.25"),
                        ({"lang": "zh"}, "lang='en', not 'zh'"),
                        ({"currency": "usd"}, "currency='CNY', not 'USD'"),
                        ({"actions_dir": ""}, "actions_dir=")):
        with pytest.raises(SliceError, match=re.escape(said)):
            load_store_page(demo_data, "S01", slice_folder=folder, as_of=AS_OF,
                            **{"actions_dir": actions, **wrong})
    with pytest.raises(SliceError, match="page of store 'S01', not of 'S02'"):
        load_store_page(demo_data, "S02", slice_folder=folder, as_of=AS_OF, actions_dir=actions)


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[0-9A-Za-z_\-]+", text))


def _notebook_outputs(path: Path) -> str:
    """The text of every output of an executed notebook (images left out)."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts += [v for k, v in out.get("data", {}).items() if not k.startswith("image/")]
            parts += [out.get("text", ""), "\n".join(out.get("traceback", []))]
    return "\n".join(str(p) for p in parts)


def _slice_text(folder: Path) -> tuple[str, pd.DataFrame]:
    """Every value of every file of a slice (and of its page), as text, and its members table."""
    parts = [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.json"))]
    for path in sorted(folder.glob("*.parquet")):
        frame = pd.read_parquet(path)
        parts += [" ".join(map(str, frame.columns)), frame.astype(str).to_csv(index=False)]
    return "\n".join(parts), pd.read_parquet(folder / "chain_members.parquet")


def test_store_isolation(run, chain):
    # Each store's kernel reads its own slice only: no id of another store, and no member of
    # another store (neither bought there nor belongs to it), is in its slice or its page.
    all_members = set(chain.members["member_id"])
    for store_id in ("S01", "S02"):
        orders = chain.orders[chain.orders["store_id"] == store_id]
        own = set(orders["member_id"].dropna()) | set(
            chain.members.loc[chain.members["home_store_id"] == store_id, "member_id"])
        others = all_members - own
        other_stores = set(chain.store_ids) - {store_id}
        assert others and other_stores
        text, members = _slice_text(run.folder / "stores" / store_id / "slice")
        assert set(members["member_id"]) == own and len(members) == len(own)
        for what, seen in (("slice", _tokens(text)),
                           ("notebook", _tokens(_notebook_outputs(_ok(run, store_id).notebook)))):
            assert not seen & other_stores, (store_id, what, sorted(seen & other_stores))
            assert not seen & others, (store_id, what, sorted(seen & others)[:5])
            assert store_id in seen, (store_id, what)
        assert own <= _tokens(text)  # the slice has every member of the store
