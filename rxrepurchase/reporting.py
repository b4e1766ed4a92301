"""Run the store and chain notebooks with papermill and publish them as offline HTML.

:func:`run_reports` executes ``notebooks/store_report.ipynb`` once per store and
``notebooks/chain_overview.ipynb`` once, in parallel worker processes (each notebook gets its
own kernel talking over IPC sockets at a unique temporary path, so kernels cannot collide),
converts every executed notebook into a self-contained HTML page with the code hidden
(:func:`notebook_to_html`), and writes ``index.html`` and ``run.json`` into a new dated run
folder. The folder layout is documented in ``docs/reports.md``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import html
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rxrepurchase.errors import ReportError
from rxrepurchase.i18n import (
    DEFAULT_CURRENCY,
    check_currency,
    format_count,
    format_money,
    format_rate,
    format_text,
    normalize_lang,
    t,
)
from rxrepurchase.outputs import (
    die_with_parent,
    inside,
    mark_complete,
    mark_incomplete,
    safe_name,
    write_atomic,
)
from rxrepurchase.renames import renamed_items
from rxrepurchase.targets import read_targets, targets_for_store

if TYPE_CHECKING:
    from rxrepurchase.loading import Chain

__all__ = [
    "CHAIN_NOTEBOOK",
    "NOTEBOOK_DIR",
    "STORE_NOTEBOOK",
    "ReportError",
    "ReportRun",
    "StoreResult",
    "check_encoding",
    "find_notebook",
    "new_run_folder",
    "notebook_to_html",
    "print_progress",
    "run_reports",
    "write_index",
]

NOTEBOOK_DIR = Path(__file__).resolve().parent / "notebooks"
"""The report notebooks an installed wheel carries (``setup.py`` copies them there)."""
CHECKOUT_NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
"""``notebooks/`` of the repository checkout, for an editable install."""
STORE_NOTEBOOK = "store_report.ipynb"
STORE_RESULTS = "stores.json"
"""The stores' outcomes and metrics, written into ``chain/`` for the chain overview."""
CHAIN_NOTEBOOK = "chain_overview.ipynb"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "rxreport"
KERNEL_NAME = "python3"
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           "font-src data:; form-action 'none'")
"""Policy of every HTML page of a run (also in the ``rxreport`` template): no script at all,
only embedded images, fonts and inline styles, so text from data can never run."""
ERROR_LIMIT = 300
"""Characters of a failure message shown in the index (run.json keeps it whole)."""


@dataclass
class StoreResult:
    """Outcome of one executed notebook (a store's report, or the chain overview).

    Attributes
    ----------
    store_id : str
        The store's id (``"chain"`` for the chain overview).
    ok : bool
        The notebook ran to the end and its HTML was written.
    notebook : Path
        The executed notebook; partial (ending with the failing cell) when ``ok`` is False.
    html : Path or None
        The HTML report, None when the notebook failed.
    metrics : dict or None
        The store's headline figures read back from ``metrics.json`` (None if not written).
    metrics_path : Path or None
        Where ``metrics.json`` is.
    error : str or None
        ``"ExceptionName: message"`` of the failure.
    seconds : float
        Wall time of execution and conversion.
    """

    store_id: str
    ok: bool
    notebook: Path
    html: Path | None = None
    metrics: dict | None = None
    metrics_path: Path | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class ReportRun:
    """A finished report run: where everything is and what failed.

    Attributes
    ----------
    folder : Path
        The run folder ``<out>/<YYYYMMDD-HHMMSS>[-N]``.
    parameters : dict
        The run's parameters as written to ``run.json``.
    results : list of StoreResult
        One per store, in the order the stores were requested.
    chain : StoreResult or None
        The chain overview (None when skipped).
    index_html, run_json : Path
        The run's index page and machine-readable summary.
    seconds : float
        Wall time of the whole run.
    """

    folder: Path
    parameters: dict
    results: list[StoreResult]
    chain: StoreResult | None
    index_html: Path
    run_json: Path
    seconds: float = 0.0

    @property
    def failures(self) -> list[StoreResult]:
        """Notebooks that failed, stores first, then the chain overview."""
        done = self.results + ([self.chain] if self.chain is not None else [])
        return [r for r in done if not r.ok]

    @property
    def chain_html(self) -> Path | None:
        return self.chain.html if self.chain is not None else None

    @property
    def ok(self) -> bool:
        return not self.failures


def print_progress(line: str) -> None:
    """Default progress sink of :func:`run_reports`: print and flush at once."""
    print(line, flush=True)


def find_notebook(name: str, notebook: str | os.PathLike | None = None) -> Path:
    """Locate a report notebook: ``notebook`` if given, else the one the package ships.

    An installed wheel carries the report notebooks in ``rxrepurchase/notebooks/``; an
    editable install reads them from ``notebooks/`` of the checkout.

    Raises
    ------
    ReportError
        If the file does not exist.
    """
    if notebook is not None:
        path = Path(notebook).expanduser().resolve()
        if not path.is_file():
            raise ReportError(f"notebook {path} does not exist")
        return path
    for folder in (NOTEBOOK_DIR, CHECKOUT_NOTEBOOK_DIR):
        if (folder / name).is_file():
            return folder / name
    raise ReportError(
        f"cannot find {name}: neither the installed package ({NOTEBOOK_DIR}) nor a checkout "
        f"({CHECKOUT_NOTEBOOK_DIR}) has it; reinstall rxrepurchase, or pass the notebook's "
        "path explicitly (--notebook / --chain-notebook)"
    )


def check_encoding(encoding: str | None) -> str | None:
    """``encoding`` if Python knows it (None stays None: the loader's default).

    Raises
    ------
    ReportError
        For an unknown encoding name, before any file is read.
    """
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ReportError(
                f"unknown encoding {encoding!r}; name the CSV files' encoding, e.g. gbk, "
                "gb18030 or utf-8"
            ) from None
    return encoding


def new_run_folder(out: str | os.PathLike, now: dt.datetime | None = None) -> Path:
    """Create and return a new ``<out>/<YYYYMMDD-HHMMSS>[-N]`` folder; never reuse one.

    Raises
    ------
    ReportError
        ``out`` is an existing file, not a folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is an existing file, not a folder; name a folder for "
                          "the run folders (the file is left as it is)")
    out.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = out / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise ReportError(f"{out}: too many run folders named {stamp}-N")


def notebook_to_html(notebook: str | os.PathLike, html_path: str | os.PathLike, *,
                     title: str | None = None, lang: str = "en") -> Path:
    """Convert an executed notebook into a self-contained, offline HTML report.

    Code cells and prompts are left out, images are embedded, and no script is loaded from
    the network (the ``rxreport`` template empties the require.js, MathJax, Mermaid and
    widget blocks of JupyterLab's template).

    Parameters
    ----------
    notebook, html_path : path
        The executed notebook and the page to write.
    title : str, optional
        The page's ``<title>`` (escaped by the template; it may hold a store's name). Default:
        the notebook's ``rxrepurchase.title`` metadata.
    lang : {"en", "zh"}
        The page's language (``<html lang>``: browsers pick fonts and line breaks by it).
    """
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    body, _ = _html_exporter(normalize_lang(lang)).from_notebook_node(
        nb, resources={"metadata": {"name": title or _title(nb)}, "rx_csp": CONTENT_SECURITY_POLICY}
    )
    return write_atomic(html_path, body)


@functools.cache
def _html_exporter(lang: str):
    """The HTML exporter of ``lang``, built once per process (a worker converts many
    notebooks; building one loads and compiles the Jinja templates)."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        template_name=TEMPLATE_NAME,
        language_code=lang,  # nbconvert takes ISO 639-1 codes only (zh, en)
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    # Analyst notes in the notebook are tagged "remove_cell"; they are not for the reader.
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={"remove_cell"}, enabled=True), enabled=True)
    return exporter


def _title(nb) -> str:
    return str(nb.metadata.get("rxrepurchase", {}).get("title", "rxrepurchase report"))


def _page_title(job: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> str:
    """A store page's title names the store (from its metrics); the chain's names the overview."""
    lang = job["parameters"].get("lang", "en")
    if job.get("metrics_path") is None:
        return t("chain_overview", lang)
    store_id = format_text(job["key"])
    name = format_text((metrics or {}).get("store_name", "")) or store_id
    return t("store_report_title", lang, store_id=store_id, name=name)


def _execute(job: Mapping[str, Any]) -> dict:
    """Worker: execute one notebook with papermill and convert it to HTML.

    Runs in its own process; never raises (a failure is returned as ``error``).
    """
    import papermill as pm

    started = time.perf_counter()
    outcome = {"key": job["key"], "ok": False, "html": None, "metrics": None, "error": None}
    try:
        pm.execute_notebook(
            job["input"],
            job["output"],
            parameters=dict(job["parameters"]),
            kernel_name=KERNEL_NAME,
            kernel_manager_class=_kernel_manager_class(),
            config=_private_kernel_config(),
            cwd=job["cwd"],
            progress_bar=False,
            log_output=False,
            # Written once at the end (and on a cell's error), not after every cell: each
            # save encodes the whole notebook, charts included.
            request_save_on_cell_execute=False,
        )
        outcome["metrics"] = _read_metrics(job)
        notebook_to_html(job["output"], job["html"], title=_page_title(job, outcome["metrics"]),
                         lang=job["parameters"].get("lang", "en"))
        outcome["ok"], outcome["html"] = True, job["html"]
    except Exception as exc:  # noqa: BLE001 - one store's failure must not stop the run
        outcome["error"] = _describe(exc)
        outcome["metrics"] = _read_metrics(job)
    outcome["seconds"] = time.perf_counter() - started
    return outcome


def _read_metrics(job: Mapping[str, Any]) -> dict | None:
    metrics_path = job.get("metrics_path")
    if metrics_path and Path(metrics_path).is_file():
        return json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    return None


@functools.cache
def _kernel_manager_class() -> type:
    """jupyter_client's kernel manager, minus the interrupt before shutdown.

    jupyter_client interrupts a kernel (SIGINT) before asking it to shut down, to stop code
    that is still running. A report's kernel runs nothing by then, but papermill's last
    request (``kernel_info``, after the last cell) returns as soon as the reply is sent: the
    kernel may still be inside that request's handler, where SIGINT raises KeyboardInterrupt
    and ipykernel logs "KeyboardInterrupt caught in kernel" into the run's output. Without the
    interrupt the kernel finishes the reply and exits on the shutdown request; a kernel that
    did not would still be terminated by jupyter_client after its shutdown wait.
    """
    from jupyter_client.manager import AsyncKernelManager

    class ReportKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return ReportKernelManager


def _private_kernel_config():
    """Kernel settings that cannot collide with any other kernel on the machine.

    The kernel talks over IPC sockets under a fresh temporary folder (a unique socket path per
    kernel) instead of TCP ports, which parallel kernels could race for.
    """
    from traitlets.config import Config

    sockets = Path(tempfile.mkdtemp(prefix="rxrepurchase-kernel-"))
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(sockets / "kernel")
    return config


def _describe(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:  # papermill.PapermillExecutionError: the exception raised inside the notebook
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def _resolve_stores(stores: str | Iterable[str], known: list[str]) -> list[str]:
    if isinstance(stores, str):
        if stores.strip().lower() == "all":
            return list(known)
        stores = stores.split(",")
    wanted = [s.strip() for s in stores if s.strip()]
    if not wanted:
        raise ReportError("no store given: use --stores all or a list like S01,S02")
    duplicates = sorted({s for s in wanted if wanted.count(s) > 1})
    if duplicates:
        raise ReportError(f"store(s) listed twice: {', '.join(duplicates)}")
    # Unknown ids are not rejected here: their notebook fails with the loader's clear message
    # and the run reports them as failures, like any other store that cannot be reported.
    return wanted


def run_reports(
    data: str | os.PathLike,
    *,
    stores: str | Iterable[str] = "all",
    out: str | os.PathLike = "reports",
    jobs: int = 2,
    as_of: str | dt.date | None = None,
    lang: str = "en",
    currency: str = DEFAULT_CURRENCY,
    calibration_end: str | dt.date | None = None,
    encoding: str | None = None,
    mapping: str | os.PathLike | Mapping[str, Any] | None = None,
    time_zone: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    notebook: str | os.PathLike | None = None,
    chain_notebook: str | os.PathLike | None = None,
    include_chain: bool = True,
    progress: Callable[[str], None] | None = print_progress,
    chain: Chain | None = None,
    no_recipient: Mapping[str, str] | None = None,
    targets: Mapping[str, Any] | None = None,
) -> ReportRun:
    """Run the per-store reports and the chain overview into a new run folder.

    Parameters
    ----------
    data : path
        The chain's export folder (read with :func:`rxrepurchase.loading.load_chain`).
    stores : "all", "S01,S02" or list of str
        Stores to report on.
    out : path
        Parent folder of the run folders.
    jobs : int
        Notebooks executed at the same time (one kernel process each).
    as_of : date-like, optional
        Analysis date; default: the loader's default, resolved once for all stores.
    lang : {"en", "zh"}
        Report language.
    currency : str
        ISO 4217 code of the export's amounts (default CNY): how every amount is shown.
    calibration_end : date-like, optional
        End of the models' calibration period (default chosen by the notebook).
    encoding : str, optional
        Encoding of the export's CSV files, e.g. ``"gbk"`` (see
        :func:`rxrepurchase.loading.load_chain`; default: the mapping's, else UTF-8).
    mapping : path or dict, optional
        File-name and header mapping of the export (TOML file or dict, see
        :func:`rxrepurchase.exports.read_mapping`).
    time_zone : str, optional
        The chain's time zone (default Asia/Shanghai): timestamps with a UTC offset are
        converted to it (see :func:`rxrepurchase.loading.load_chain`).
    parameters : mapping, optional
        Further notebook parameters (thresholds), passed to every store notebook.
    notebook, chain_notebook : path, optional
        Notebooks to run instead of ``notebooks/store_report.ipynb`` / ``chain_overview.ipynb``.
    include_chain : bool
        Also run the chain overview.
    progress : callable or None
        Receives one line per finished notebook; None for silence.
    chain : Chain, optional
        The chain already loaded from ``data`` with ``as_of``, ``encoding`` and ``mapping``
        (a caller that validated it first need not read the export twice).
    no_recipient : mapping, optional
        ``store_id -> reason`` for stores whose manager has no usable address, given by a run
        that emails the stores (a scheduled run, :func:`rxrepurchase.delivery.store_managers`;
        an empty mapping when every store has one): the chain overview names them with the
        stores whose report failed, as stores whose manager receives nothing. None: the run
        sends no email.
    targets : mapping, optional
        Targets (:func:`rxrepurchase.targets.read_targets`): each store's page gets its own
        (:func:`~rxrepurchase.targets.targets_for_store`), the overview all of them.

    Returns
    -------
    ReportRun
        Check ``.ok`` / ``.failures``: a failing store does not raise.

    Raises
    ------
    ReportError
        Bad arguments, missing data folder or notebook (before anything is executed).
    DataContractError
        The export cannot be read or validated (before anything is executed).
    TargetsError
        A malformed target, or one for a store not in the stores table.
    """
    from rxrepurchase.exports import check_time_zone
    from rxrepurchase.loading import load_chain

    started_at = dt.datetime.now()
    started = time.perf_counter()
    lang = normalize_lang(lang)
    currency = check_currency(currency)
    if jobs < 1:
        raise ReportError(f"jobs must be at least 1, got {jobs}")
    data = Path(data).expanduser().resolve()
    if not data.is_dir():
        raise ReportError(f"data folder {data} does not exist")
    check_encoding(encoding)
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = str(Path(mapping).expanduser().resolve())  # the notebooks run elsewhere
    store_nb = find_notebook(STORE_NOTEBOOK, notebook)
    chain_nb = find_notebook(CHAIN_NOTEBOOK, chain_notebook) if include_chain else None

    if chain is None:
        chain = load_chain(data, as_of=as_of, encoding=encoding, mapping=mapping,
                           time_zone=time_zone)
    as_of_text = chain.as_of.date().isoformat()
    nothing = chain.nothing_to_analyse()
    if nothing:
        raise ReportError(f"nothing to report from {data}: {nothing}")
    store_ids = _resolve_stores(stores, chain.stores["store_id"].tolist())
    # How to read the export goes to the notebooks too: an executed notebook re-run by hand
    # (without this run's chain cache) reads the same files the same way.
    common = {"data": str(data), "as_of": as_of_text, "lang": lang, "currency": currency,
              "encoding": encoding,
              "mapping": dict(mapping) if isinstance(mapping, Mapping) else mapping,
              "time_zone": check_time_zone(time_zone)}
    try:
        extra = renamed_items(dict(parameters or {}), PARAMETER_RENAMES,
                              lambda names: "notebook parameter " + ", ".join(names))
    except TypeError as exc:  # an old and a new name together
        raise ReportError(f"parameters: {exc}") from exc
    reserved = sorted(set(extra) & {"store_id", "metrics_path", "actions_dir", "store_slice",
                                    "chain_tables", "store_results", "targets", *common})
    if reserved:
        raise ReportError(f"parameters {reserved} are set by the runner; use its arguments")
    calibration_text = str(calibration_end) if calibration_end is not None else None
    targets = read_targets(targets, stores=chain.stores["store_id"].astype(str).tolist())

    # Absolute: every notebook runs in its own folder, where a relative path means elsewhere.
    folder = new_run_folder(Path(out).expanduser().resolve(), started_at)
    mark_incomplete(folder, "rxrepurchase report")
    # The chain is read, validated and its chain-wide figures computed once, here; each
    # notebook then reads only its own slice (docs/reports.md, "Slices").
    settings = _slice_settings(extra)
    results, chain_result = _run_notebooks(
        folder, common, extra, calibration_text, store_ids, store_nb, chain_nb, jobs,
        progress, chain=chain, settings=settings, no_recipient=no_recipient, targets=targets,
    )

    parameters_json = {
        **common,
        "calibration_end": calibration_text,
        "stores": store_ids,
        "jobs": jobs,
        "notebook": str(store_nb),
        "chain_notebook": str(chain_nb) if chain_nb else None,
        "extra": extra,
    }
    run = ReportRun(
        folder=folder,
        parameters=parameters_json,
        results=results,
        chain=chain_result,
        index_html=folder / "index.html",
        run_json=folder / "run.json",
    )
    write_index(run, lang=lang)
    run.seconds = time.perf_counter() - started
    _write_run_json(run, started_at)
    mark_complete(folder)
    if progress is not None:
        progress(_summary(run))
    return run


SLICE_SETTINGS = {"period_days": 90, "min_active_members": None, "gross_margin": 0.3}
"""Notebook parameters the slices and chain tables are computed with, and their defaults
(None: :data:`rxrepurchase.report_data.MIN_ACTIVE_MEMBERS`). The runner passes them to every
notebook, so that a notebook's figures and its slice agree."""


def _slice_settings(extra: Mapping[str, Any]) -> dict:
    from rxrepurchase.report_data import MIN_ACTIVE_MEMBERS

    settings = {k: extra.get(k, default) for k, default in SLICE_SETTINGS.items()}
    if settings["min_active_members"] is None:
        settings["min_active_members"] = MIN_ACTIVE_MEMBERS
    return settings


PARAMETER_RENAMES = {"refill_within_days": "refill_horizon_days"}
"""Old names of store notebook parameters (the vocabulary of ``docs/architecture.md``), still
taken with a ``FutureWarning``: papermill would pass an unknown name on unused."""

PAGE_PARAMETERS = ("lang", "currency", "actions_dir", "period_days", "min_active_members", "gross_margin",
                   "clv_horizon_months", "refill_horizon_days", "calibration_end")
"""Store notebook parameters its page is computed with in the slice step
(:func:`rxrepurchase.report_data.store_page`); absent ones take that function's defaults,
which are the notebook's."""


def _write_slices(chain: Chain, folders: Mapping[str, tuple[Path, dict]], tables: Path | None,
                  settings: Mapping[str, Any], jobs: int,
                  progress: Callable[[str], None] | None) -> dict[str, str]:
    """Compute the chain-wide figures once; write every store's slice and page, and the chain
    tables.

    ``folders``: store id -> (slice folder, :data:`PAGE_PARAMETERS` of its notebook). The
    slices are cut, and each store's page computed from its slice
    (:func:`rxrepurchase.report_data.store_page`: the models, cohorts, refills, lists ...), in
    ``jobs`` worker processes, which read the chain and its chain-wide figures from Parquet
    once each (a temporary folder, removed at the end). Returns the stores whose slice or page
    could not be written (``"chain"``: the chain tables), with the error.
    """
    from rxrepurchase.report_data import chain_wide
    from rxrepurchase.report_slices import write_store_slice

    started = time.perf_counter()
    tasks = ([("", (tables, {}))] if tables is not None else []) + list(folders.items())
    failed: dict[str, str] = {}
    if not tasks:  # only unknown stores, no chain overview: their notebooks say why
        return failed
    shared = chain_wide(chain, period_days=settings["period_days"],
                        min_active_members=settings["min_active_members"])
    whole = Path(tempfile.mkdtemp(prefix="rxrepurchase-run-"))
    try:
        write_store_slice(chain, shared, whole)
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                                 mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent) as pool:
            futures = {pool.submit(_slice_task, str(whole), store_id, str(path), dict(settings),
                                   page): store_id for store_id, (path, page) in tasks}
            for done, future in enumerate(as_completed(futures), start=1):
                error = future.result()
                if error is not None:  # the chain overview's job is keyed "chain"
                    failed[futures[future] or "chain"] = error
                if progress is not None and (done % 50 == 0) and done < len(tasks):
                    progress(f"slices and pages: {done}/{len(tasks)} in "
                             f"{time.perf_counter() - started:.1f}s")
    finally:
        shutil.rmtree(whole, ignore_errors=True)
    if progress is not None:
        progress(f"chain-wide figures and {len(folders) - len(failed)} store slices and pages "
                 f"written in {time.perf_counter() - started:.1f}s")
    return failed


@functools.lru_cache(maxsize=1)
def _whole_chain(folder: str):
    from rxrepurchase.report_slices import read_store_slice

    return read_store_slice(folder)


def _slice_task(whole: str, store_id: str, path: str, settings: dict,
                page: dict) -> str | None:
    """Worker: write one store's slice and its page computed from the slice (``store_id``
    empty: the chain tables); the error, if any, as ``"ExceptionName: message"``."""
    from rxrepurchase.report_data import store_page
    from rxrepurchase.report_slices import (
        chain_tables,
        store_slice,
        write_chain_tables,
        write_store_page,
        write_store_slice,
    )

    try:
        chain, shared = _whole_chain(whole)
        if store_id:
            mine, part = store_slice(chain, shared, store_id)
            write_store_slice(mine, part, path)
            write_store_page(store_page(mine, store_id, shared=part, **page), path)
        else:
            write_chain_tables(chain_tables(chain, shared, **settings), path)
    except Exception as exc:  # noqa: BLE001 - one store's failure must not stop the run
        return _describe(exc)
    return None


def _run_notebooks(folder, common, extra, calibration_text, store_ids, store_nb, chain_nb, jobs,
                   progress, *, chain: Chain, settings: Mapping[str, Any], no_recipient=None,
                   targets=None) -> tuple[list[StoreResult], StoreResult | None]:
    """Lay out the run folder, write the slices, execute every notebook, collect the results.

    Store ids are data: each store's folder is :func:`rxrepurchase.outputs.safe_name` of its
    id, checked to lie inside the run folder.
    """
    jobs_list, slices = [], {}
    for store_id in store_ids:
        name = safe_name(store_id)
        sdir = inside(folder / "stores" / name, folder / "stores")
        if name != store_id and progress is not None:
            progress(f"store id {format_text(repr(store_id))} is not a plain file name: "
                     f"its files are in stores/{name}/")
        sdir.mkdir(parents=True)
        params = {
            **common,
            **extra,
            **settings,
            "store_id": store_id,
            "calibration_end": calibration_text,
            "metrics_path": str(sdir / "metrics.json"),
            "actions_dir": str(sdir / "actions"),
            "targets": targets_for_store(targets, store_id),
        }
        if store_id in chain.store_ids:  # an unknown store fails in its notebook, as by hand
            slices[store_id] = (sdir / "slice", {k: params[k] for k in PAGE_PARAMETERS
                                                  if k in params})
            params["store_slice"] = str(slices[store_id][0])
        jobs_list.append(_job(store_id, store_nb, sdir / "report", params, sdir / "metrics.json"))
    tables = None
    if chain_nb is not None:
        (folder / "chain").mkdir()
        tables = folder / "chain" / "tables"
    failed = _write_slices(chain, slices, tables, settings, jobs, progress)

    total = len(jobs_list) + (chain_nb is not None)
    outcomes = _execute_all([j for j in jobs_list if j["key"] not in failed], jobs, progress,
                            total=total)
    for key, error in failed.items():
        outcomes[key] = {"key": key, "ok": False, "html": None, "metrics": None, "seconds": 0.0,
                         "error": f"its slice cannot be written: {error}"}
    results = [_result(j, outcomes[j["key"]]) for j in jobs_list]
    if chain_nb is None:
        return results, None
    # The overview runs after the stores: it shows their list sizes (from their metrics.json)
    # and which managers receive nothing, which only the stores' outcomes tell.
    cdir = folder / "chain"
    stores_json = write_atomic(cdir / STORE_RESULTS, json.dumps({
        "stores": [{"store_id": r.store_id, "ok": r.ok, "error": r.error, "metrics": r.metrics}
                   for r in results],
        "undelivered": {k: ["no_manager_address", v] for k, v in (no_recipient or {}).items()},
        "sends_email": no_recipient is not None,
    }, ensure_ascii=False, indent=2))
    chain_job = _job("chain", chain_nb, cdir / "chain_overview",
                     {**common, **settings, "chain_tables": str(tables),
                      "store_results": str(stores_json), "targets": targets}, None)
    if "chain" in outcomes:  # its tables could not be written
        return results, _result(chain_job, outcomes["chain"])
    outcome = _execute_all([chain_job], 1, progress, done_before=len(jobs_list), total=total)
    return results, _result(chain_job, outcome["chain"])


def _job(key: str, notebook: Path, stem: Path, params: dict, metrics: Path | None) -> dict:
    return {
        "key": key,
        "input": str(notebook),
        "output": str(stem.with_suffix(".ipynb")),
        "html": str(stem.with_suffix(".html")),
        "parameters": params,
        "cwd": str(stem.parent),
        "metrics_path": str(metrics) if metrics else None,
    }


def _execute_all(
    jobs_list: list[dict], jobs: int, progress: Callable[[str], None] | None, *,
    done_before: int = 0, total: int | None = None,
) -> dict[str, dict]:
    # Worker processes are spawned, not forked: forking a process that holds ZeroMQ sockets
    # or threads is unsafe, and each worker starts its own kernel anyway.
    context = multiprocessing.get_context("spawn")
    outcomes: dict[str, dict] = {}
    total = total or len(jobs_list)
    # Workers die with this process, even killed by SIGKILL; their kernels then exit too.
    with ProcessPoolExecutor(max_workers=min(jobs, total), mp_context=context,
                             initializer=die_with_parent) as pool:
        futures = {pool.submit(_execute, job): job for job in jobs_list}
        for done, future in enumerate(as_completed(futures), start=done_before + 1):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a crashed worker is one failed store
                outcome = {"key": job["key"], "ok": False, "html": None, "metrics": None,
                           "error": _describe(exc), "seconds": 0.0}
            outcomes[job["key"]] = outcome
            if progress is not None:
                state = "done" if outcome["ok"] else f"FAILED ({outcome['error']})"
                progress(f"[{done}/{total}] {job['key']} {state} in {outcome['seconds']:.1f}s")
    return outcomes


def _result(job: dict, outcome: dict) -> StoreResult:
    return StoreResult(
        store_id=job["key"],
        ok=outcome["ok"],
        notebook=Path(job["output"]),
        html=Path(outcome["html"]) if outcome["html"] else None,
        metrics=outcome["metrics"],
        metrics_path=Path(job["metrics_path"]) if job["metrics_path"] else None,
        error=outcome["error"],
        seconds=outcome["seconds"],
    )


def _summary(run: ReportRun) -> str:
    n = len(run.results)
    failed = run.failures
    lines = [f"{n - sum(r.store_id != 'chain' for r in failed)}/{n} store reports written "
             f"in {run.seconds:.1f}s: {run.index_html}"]
    if failed:
        lines.append(f"{len(failed)} failed:")
        lines += [f"  {r.store_id}: {r.error}\n    partial notebook: {r.notebook}" for r in failed]
    return "\n".join(lines)


def _rel(run: ReportRun, path: Path | None) -> str | None:
    return None if path is None else path.relative_to(run.folder).as_posix()


def _result_json(run: ReportRun, r: StoreResult) -> dict:
    return {
        "store_id": r.store_id,
        "folder": _rel(run, r.notebook.parent),
        "ok": r.ok,
        "html": _rel(run, r.html),
        "notebook": _rel(run, r.notebook),
        "metrics_path": _rel(run, r.metrics_path if r.metrics is not None else None),
        "metrics": r.metrics,
        "error": r.error,
        "seconds": round(r.seconds, 3),
    }


def _write_run_json(run: ReportRun, started_at: dt.datetime) -> None:
    from rxrepurchase import __version__

    doc = {
        "rxrepurchase_version": __version__,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(run.seconds, 3),
        "parameters": run.parameters,
        "chain": _result_json(run, run.chain) if run.chain is not None else None,
        "stores": [_result_json(run, r) for r in run.results],
        "failures": [
            {"store_id": r.store_id, "error": r.error, "notebook": _rel(run, r.notebook)}
            for r in run.failures
        ],
    }
    write_atomic(run.run_json, json.dumps(doc, ensure_ascii=False, indent=2))


_INDEX_CSS = (TEMPLATE_DIR / TEMPLATE_NAME / "index_page.css")


def write_index(run: ReportRun, *, lang: str = "en",
                documents: Mapping[str, Path] | None = None, path: Path | None = None) -> Path:
    """Write the run's ``index.html``: every store's headline figures and link, failures marked.

    The page is self-contained (inline CSS, no script).

    Parameters
    ----------
    run : ReportRun
        The finished run.
    lang : {"en", "zh"}
        Page language.
    documents : mapping, optional
        For the printed index that is emailed as a PDF (:mod:`rxrepurchase.scheduled`):
        ``store_id -> file`` of each store's document, ``"chain"`` for the chain overview. The
        page then has no links, since a reader of the PDF has none of the HTML pages: it names
        these files (relative to the run folder) instead, says which store has none, and notes
        who gets what and where the files are kept.
    path : Path, optional
        Where to write (default ``run.index_html``).
    """
    lang = normalize_lang(lang)
    money = run.parameters.get("currency", DEFAULT_CURRENCY)
    e = html.escape
    printed = documents is not None

    def ref(target: Path | None, text: str) -> str:
        """A link on screen; on paper the file's name in the run folder."""
        if target is None:
            return e(t("no_document", lang))
        rel = e(_rel(run, target))
        if printed:
            return t("file_ref", lang, what=e(text), file=rel) if text else rel
        return f'<a href="{rel}">{e(text)}</a>'

    head = ["store", "store_name", "city", "user_repurchase_rate", "order_repurchase_rate",
            "active_members", "revenue", "subsidy", "report_file" if printed else "report"]
    rows = []
    for r in run.results:
        m = r.metrics or {}
        if r.ok:
            link = (ref(documents.get(r.store_id), "") if printed
                    else ref(r.html, t("open_report", lang)))
            cls = ""
        else:
            link = (f'<span class="failed">{e(t("failed", lang))}</span>: '
                    f'{e(format_text(r.error, ERROR_LIMIT))}'
                    f' ({ref(r.notebook, t("partial_notebook", lang))})')
            cls = ' class="failed-row"'
        cells = [
            format_text(r.store_id),
            format_text(m.get("store_name", "")),
            format_text(m.get("city", "")),
            format_rate(m.get("user_repurchase_rate"), lang),
            format_rate(m.get("order_repurchase_rate"), lang),
            format_count(m.get("active_members"), lang),
            format_money(m.get("revenue"), lang, money),
            format_money(m.get("subsidy"), lang, money),
        ]
        tds = "".join(f"<td>{e(str(c))}</td>" for c in cells) + f"<td>{link}</td>"
        rows.append(f"<tr{cls}>{tds}</tr>")
    if run.chain is None:
        chain_line = ""
    elif run.chain.ok:
        chain_doc = documents.get("chain") if printed else run.chain.html
        chain_line = f'<p class="chain">{ref(chain_doc, t("chain_overview", lang))}</p>'
    else:
        chain_line = (f'<p class="chain failed">{e(t("chain_overview", lang))}: '
                      f'{e(t("failed", lang))}: {e(format_text(run.chain.error, ERROR_LIMIT))} '
                      f'({ref(run.chain.notebook, t("partial_notebook", lang))})</p>')
    if printed:
        chain_line += f'<p class="meta">{e(t("index_print_note", lang, folder=run.folder.name))}</p>'
    params = run.parameters
    # The data folder's name only: a page shows no path on the reporting machine.
    meta = t("index_meta", lang, as_of=params["as_of"], data=Path(params["data"]).name,
             n=len(run.results), failed=len(run.failures))
    page = f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{e(t("index_title", lang))}</title>
<style>
{_INDEX_CSS.read_text(encoding="utf-8")}
</style>
</head>
<body>
<main>
<h1>{e(t("index_title", lang))}</h1>
<p class="meta">{e(meta)}</p>
{chain_line}
<table>
<thead><tr>{"".join(f"<th>{e(t(h, lang))}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</main>
</body>
</html>
"""
    return write_atomic(path or run.index_html, page)
