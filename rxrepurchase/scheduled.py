"""Scheduled runs: ``rxrepurchase run --config chain.toml`` from cron or a systemd timer.

One run loads and validates the chain's export, runs every store's report and the chain
overview (:func:`rxrepurchase.reporting.run_reports`), prints each to PDF
(:func:`rxrepurchase.pdf.html_to_pdf`) and emails them (:mod:`rxrepurchase.delivery`): each
store's PDF to that store's manager only, the chain overview and the index to head office.

Safe to schedule: a lock file keeps two runs from overlapping, everything is logged to a log
file, the run ends with a summary (printed, logged and written to ``delivery.json`` in the run
folder) and the exit code says how it went (:data:`EXIT_CODES`). The config file format is
documented in ``examples/chain.toml`` and ``docs/scheduled-runs.md``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rxrepurchase.actionlists import LISTS_WORKBOOK
from rxrepurchase.chain_view import list_sizes_line, nothing_received_line, store_list_sizes
from rxrepurchase.delivery import (
    DeliveryLedger,
    DeliverySummary,
    SmtpSettings,
    StoreReport,
    Subjects,
    deliver,
    parse_addresses,
    route_reports,
    store_managers,
)
from rxrepurchase.errors import OutputError, RunLocked, RxRepurchaseError, ScheduledConfigError
from rxrepurchase.i18n import check_currency, t
from rxrepurchase.outputs import mark_complete, mark_incomplete, write_atomic
from rxrepurchase.pdf import ENGINES, check_pdf_engine, html_to_pdf
from rxrepurchase.reporting import ReportError, check_encoding
from rxrepurchase.targets import read_targets

__all__ = [
    "EXIT_CODES",
    "EXIT_CONFIG_ERROR",
    "EXIT_INTERNAL_ERROR",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "RunLocked",
    "RunOutcome",
    "ScheduledConfig",
    "ScheduledConfigError",
    "load_config",
    "run_lock",
    "run_scheduled",
]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_CONFIG_ERROR = 2
EXIT_LOCKED = 3
EXIT_INTERNAL_ERROR = 4
EXIT_CODES = {
    EXIT_OK: "every report was produced and every email sent (written, in a dry run)",
    EXIT_PARTIAL: "the run finished, but some store reports, PDFs or emails failed (see the summary)",
    EXIT_CONFIG_ERROR: "bad config, SMTP password source, PDF engine or data; nothing was sent",
    EXIT_LOCKED: "another run holds the lock; this one did nothing",
    EXIT_INTERNAL_ERROR: "unexpected error (a bug); the traceback is in the log file",
}
"""Exit codes of ``rxrepurchase run``."""


# --------------------------------------------------------------------------- config

_SECTIONS = {
    "data": {"path", "encoding", "mapping", "time_zone"},
    "run": {"stores", "lang", "currency", "as_of", "jobs", "output", "pdf_engine", "log_file",
            "lock_file"},
    "recipients": {"head_office", "stores"},
    "email": {"store_subject", "chain_subject"},
    "targets": None,  # checked by rxrepurchase.targets.read_targets
    "smtp": None,  # checked by SmtpSettings.from_mapping
}


@dataclass(frozen=True)
class ScheduledConfig:
    """A scheduled run's settings, read from a TOML file by :func:`load_config`.

    Relative paths in the file are relative to the file's folder.
    """

    source: Path
    data: Path
    output: Path
    smtp: SmtpSettings
    as_of: dt.date
    encoding: str | None = None
    mapping: Path | None = None
    time_zone: str | None = None
    stores: str | tuple[str, ...] = "all"
    lang: str = "en"
    currency: str = "CNY"
    jobs: int = 2
    pdf_engine: str = "weasyprint"
    log_file: Path | None = None
    lock_file: Path | None = None
    head_office: tuple[str, ...] = ()
    store_recipients: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subjects: Subjects = field(default_factory=Subjects)
    targets: Mapping | None = None
    """``[targets]`` as :func:`rxrepurchase.targets.read_targets` returns it (None: none)."""


def load_config(path: str | os.PathLike, *, today: dt.date | None = None) -> ScheduledConfig:
    """Read and validate a run's TOML config.

    Parameters
    ----------
    path : path
        The config file (see ``examples/chain.toml``).
    today : datetime.date, optional
        Reference day for ``as_of = "yesterday"`` (the default); the local date by default.

    Raises
    ------
    ScheduledConfigError
        Missing file, TOML syntax error, unknown section or key, wrong type or value; the
        message names the file and the key. A ``password`` key in ``[smtp]`` is refused.
    """
    from rxrepurchase.exports import check_time_zone, read_mapping

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ScheduledConfigError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScheduledConfigError(f"{path}: not valid TOML: {exc}") from None

    def fail(key: str, message: str):
        raise ScheduledConfigError(f"{path}: {key}: {message}")

    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        fail(unknown[0], f"unknown section; known sections: {', '.join(_SECTIONS)}")
    for section, keys in _SECTIONS.items():
        value = raw.get(section, {})
        if not isinstance(value, dict):
            fail(section, "must be a table, e.g. [" + section + "]")
        if keys is not None:
            extra = sorted(set(value) - keys)
            if extra:
                fail(f"{section}.{extra[0]}", f"unknown key; known keys: {', '.join(sorted(keys))}")
    data, run, recipients, mail = (raw.get(s, {}) for s in ("data", "run", "recipients", "email"))
    base = path.parent

    def get(table: dict, section: str, key: str, kind: type | tuple, default=None, required=False):
        if key not in table:
            if required:
                fail(f"{section}.{key}", "required")
            return default
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            fail(f"{section}.{key}", f"expected {names}, got {value!r}")
        return value

    def a_path(value: str | None) -> Path | None:
        return None if value is None else (base / Path(value).expanduser()).resolve()

    data_path = a_path(get(data, "data", "path", str, required=True))
    if not data_path.is_dir():
        fail("data.path", f"folder {data_path} does not exist")
    encoding = get(data, "data", "encoding", str)
    try:
        check_encoding(encoding)
    except ReportError as exc:
        fail("data.encoding", str(exc))
    mapping = a_path(get(data, "data", "mapping", str))
    time_zone = get(data, "data", "time_zone", str)
    try:
        check_time_zone(time_zone)
    except RxRepurchaseError as exc:
        fail("data.time_zone", str(exc))
    try:
        read_mapping(mapping)  # the file's own errors name it
    except RxRepurchaseError as exc:
        fail("data.mapping", str(exc))
    output = a_path(get(run, "run", "output", str, required=True))

    stores = get(run, "run", "stores", (str, list), "all")
    if isinstance(stores, list):
        if not stores or not all(isinstance(s, str) and s.strip() for s in stores):
            fail("run.stores", "must be \"all\" or a non-empty list of store ids")
        stores = tuple(s.strip() for s in stores)
    elif stores.strip().lower() != "all":
        fail("run.stores", f"must be \"all\" or a list of store ids, got {stores!r}")

    lang = get(run, "run", "lang", str, "en")
    if lang not in ("en", "zh"):
        fail("run.lang", f"{lang!r}; choose en or zh")
    try:
        currency = check_currency(get(run, "run", "currency", str, "CNY"))
    except RxRepurchaseError as exc:
        fail("run.currency", str(exc))
    as_of = get(run, "run", "as_of", (str, dt.date), "yesterday")
    if isinstance(as_of, dt.datetime):
        fail("run.as_of", "a date without time, e.g. 2025-06-30")
    if isinstance(as_of, str):
        if as_of == "yesterday":
            as_of = (today or dt.date.today()) - dt.timedelta(days=1)
        else:
            try:
                as_of = dt.date.fromisoformat(as_of)
            except ValueError:
                fail("run.as_of", f"{as_of!r} is neither \"yesterday\" nor a date YYYY-MM-DD")
    jobs = get(run, "run", "jobs", int, 2)
    if jobs < 1:
        fail("run.jobs", "must be at least 1")
    engine = get(run, "run", "pdf_engine", str, "weasyprint")
    if engine not in ENGINES:
        fail("run.pdf_engine", f"{engine!r}; choose one of {', '.join(ENGINES)}")

    head_office = _addresses(path, recipients, "head_office")
    store_recipients = get(recipients, "recipients", "stores", dict, {})
    overrides = {}
    for store_id, value in store_recipients.items():
        if not isinstance(value, (str, list)):
            fail(f"recipients.stores.{store_id}", "expected an address or a list of addresses")
        overrides[store_id] = _addresses(path, store_recipients, store_id, prefix="recipients.stores")
        if not overrides[store_id]:
            fail(f"recipients.stores.{store_id}", "no address given")

    subjects = Subjects.for_language(lang)
    store_subject = get(mail, "email", "store_subject", str, subjects.store)
    chain_subject = get(mail, "email", "chain_subject", str, subjects.chain)
    for key, template in (("store_subject", store_subject), ("chain_subject", chain_subject)):
        try:
            template.format(store_id="S", store_name="N", as_of="D")
        except (KeyError, IndexError, ValueError) as exc:
            fail(f"email.{key}", f"bad template {template!r} ({exc!r}); fields: {{store_id}}, {{store_name}}, {{as_of}}")

    try:
        targets = read_targets(raw["targets"]) if "targets" in raw else None
    except RxRepurchaseError as exc:
        raise ScheduledConfigError(f"{path}: {exc}") from None

    if "smtp" not in raw:
        fail("smtp", "required: the SMTP server (also for --dry-run: it gives the sender)")
    smtp_values = dict(raw["smtp"])
    for key in ("password_file", "ca_file"):
        if isinstance(smtp_values.get(key), str):
            smtp_values[key] = a_path(smtp_values[key])
    try:
        smtp = SmtpSettings.from_mapping(smtp_values, source="smtp")
    except RxRepurchaseError as exc:
        raise ScheduledConfigError(f"{path}: {exc}") from None

    return ScheduledConfig(
        source=path,
        data=data_path,
        output=output,
        smtp=smtp,
        as_of=as_of,
        encoding=encoding,
        mapping=mapping,
        time_zone=time_zone,
        stores=stores,
        lang=lang,
        currency=currency,
        jobs=jobs,
        pdf_engine=engine,
        log_file=a_path(get(run, "run", "log_file", str)) or output / "rxrepurchase-run.log",
        lock_file=a_path(get(run, "run", "lock_file", str)) or output / ".rxrepurchase-run.lock",
        head_office=head_office,
        store_recipients=overrides,
        subjects=Subjects(store=store_subject, chain=chain_subject),
        targets=targets,
    )


def _addresses(path: Path, table: dict, key: str, prefix: str = "recipients") -> tuple[str, ...]:
    try:
        return parse_addresses(table.get(key), where=f"{prefix}.{key}")
    except RxRepurchaseError as exc:
        raise ScheduledConfigError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- lock and log


LOCK_HEADER = "rxrepurchase run lock:"
"""First words of a lock file :func:`run_lock` writes (how it knows the file is its own)."""


@contextmanager
def run_lock(path: Path):
    """Hold an exclusive ``flock`` on ``path`` for the block; raise :class:`RunLocked` if
    another process holds it. The kernel releases the lock if the process dies, so a crashed
    run never blocks the next one.

    The lock file is new, empty, or one this function wrote (it starts with
    :data:`LOCK_HEADER`); any other file is a user's and is refused, never truncated.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size:
        with open(path, encoding="utf-8", errors="replace") as existing:
            first = existing.read(200)
        # Lock files of earlier versions held "pid N since <time>" only.
        if not (first.startswith(LOCK_HEADER) or re.match(r"pid \d+ since ", first)):
            raise OutputError(
                f"run.lock_file {path} is an existing file that is not an rxrepurchase lock "
                "file; it is left as it is. Point run.lock_file at a new file (default: "
                "<output>/.rxrepurchase-run.lock)"
            )
    elif path.exists() and not path.is_file():
        raise OutputError(f"run.lock_file {path} exists and is not a file")
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().removeprefix(LOCK_HEADER).strip() or "unknown"
            raise RunLocked(f"another run holds the lock {path} ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{LOCK_HEADER} pid {os.getpid()} since "
                     f"{dt.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _log_to(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("rxrepurchase")
    previous = package.level
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)
        handler.close()


# --------------------------------------------------------------------------- the run


@dataclass
class RunOutcome:
    """How a scheduled run went."""

    exit_code: int
    summary: list[str]
    folder: Path | None = None
    delivery: DeliverySummary | None = None


def run_scheduled(
    config: str | os.PathLike | ScheduledConfig,
    *,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
    resend: bool = False,
) -> RunOutcome:
    """Load, report, print and email, as configured. Never raises for bad input: the outcome's
    ``exit_code`` (see :data:`EXIT_CODES`) and ``summary`` say what happened.

    Parameters
    ----------
    config : path or ScheduledConfig
        The TOML config file, or one already loaded.
    dry_run : bool
        Write the emails as ``.eml`` files into ``<run folder>/outbox/`` instead of sending.
    echo : callable, optional
        Receives the summary lines as well (the CLI prints them).
    resend : bool
        Email every report again, even to recipients the delivery ledger says have it.
    """
    echo = echo or (lambda line: None)

    def finish(code: int, lines: list[str], **kw) -> RunOutcome:
        lines = [*lines, f"exit code {code}: {EXIT_CODES[code]}"]
        for line in lines:
            (log.info if code == EXIT_OK else log.warning)(line)
            echo(line)
        return RunOutcome(code, lines, **kw)

    if not isinstance(config, ScheduledConfig):
        try:
            config = load_config(config)
        except RxRepurchaseError as exc:
            return finish(EXIT_CONFIG_ERROR, [f"config error: {exc}"])
    with _log_to(config.log_file):
        log.info("run starts: config %s, as of %s%s", config.source, config.as_of, " (dry run)" if dry_run else "")
        try:
            with run_lock(config.lock_file):
                return _run(config, dry_run, finish, resend)
        except RunLocked as exc:
            return finish(EXIT_LOCKED, [str(exc)])
        except RxRepurchaseError as exc:
            return finish(EXIT_CONFIG_ERROR, [f"error: {exc}"])
        except Exception as exc:  # a bug: keep the traceback in the log, exit with its own code
            log.exception("unexpected error")
            return finish(EXIT_INTERNAL_ERROR, [f"unexpected error: {type(exc).__name__}: {exc}"])


def _run(config: ScheduledConfig, dry_run: bool, finish, resend: bool = False) -> RunOutcome:
    from rxrepurchase.loading import load_chain
    from rxrepurchase.reporting import run_reports, write_index

    # Everything that can fail for a wrong setting fails here, before an hour of notebooks.
    if not dry_run:
        config.smtp.read_password()
    check_pdf_engine(config.pdf_engine)
    chain = load_chain(config.data, as_of=config.as_of.isoformat(), encoding=config.encoding,
                       mapping=config.mapping, time_zone=config.time_zone)
    known = set(chain.stores["store_id"].astype(str))
    if config.stores != "all":
        missing = sorted(set(config.stores) - known)
        if missing:
            raise ScheduledConfigError(f"{config.source}: run.stores: {', '.join(missing)} not in the stores table")
    if config.targets:
        try:  # per-store targets name stores of the table
            read_targets(config.targets, stores=sorted(known))
        except RxRepurchaseError as exc:
            raise ScheduledConfigError(f"{config.source}: {exc}") from None
    managers, no_manager = store_managers(chain.stores, config.store_recipients)
    names = dict(zip(chain.stores["store_id"].astype(str), chain.stores["name"].astype(str), strict=True))
    log.info("data loaded from %s: %d stores", config.data, len(known))

    run = run_reports(
        config.data,
        stores="all" if config.stores == "all" else list(config.stores),
        out=config.output,
        jobs=config.jobs,
        as_of=config.as_of.isoformat(),
        lang=config.lang,
        currency=config.currency,
        encoding=config.encoding,
        mapping=config.mapping,
        time_zone=config.time_zone,
        progress=log.info,
        chain=chain,
        no_recipient={s: r for s, r in no_manager.items()
                      if config.stores == "all" or s in config.stores},
        targets=config.targets,
    )
    # The reports are done, the PDFs and emails are not: the folder is incomplete until
    # delivery.json is written.
    mark_incomplete(run.folder, "rxrepurchase run (PDFs and emails)")
    problems: list[str] = [f"report failed: {r.store_id}: {r.error}" for r in run.failures]
    # store_id -> (reason, detail), reasons of chain_view.NOTHING_REASONS; a failed report is
    # told by the run's results.
    undelivered: dict[str, tuple[str, str]] = {}

    def pdf(html: Path | None, target: Path, what: str, store_id: str | None = None) -> Path | None:
        if html is None:
            return None
        try:
            return html_to_pdf(html, target, engine=config.pdf_engine)
        except RxRepurchaseError as exc:
            problems.append(f"PDF failed: {what}: {exc}")
            if store_id is not None:
                undelivered[store_id] = ("pdf_failed", str(exc))
            return None

    store_reports = []
    for result in run.results:
        if result.ok:
            # Attachments are named by store and date: the store's folder name (made safe
            # from its id by the runner) and the as-of day, never "report.pdf" for all.
            folder = result.html.parent
            named = f"{folder.name}_{config.as_of.isoformat()}"
            made = pdf(result.html, folder / f"{named}.pdf", f"store {result.store_id}",
                       result.store_id)
            if made is not None:
                store_reports.append(StoreReport(result.store_id, made, names.get(result.store_id, ""),
                                                 _lists_attachment(folder, f"{named}_lists.xlsx"),
                                                 figures=result.metrics))
    chain_pdf = pdf(run.chain_html, run.folder / "chain" / "chain_overview.pdf", "chain overview")
    # index.html links HTML pages head office does not get: the PDF is printed from a variant
    # that names the PDF files instead.
    documents = {r.store_id: r.pdf for r in store_reports}
    if chain_pdf is not None:
        documents["chain"] = chain_pdf
    index_print = write_index(run, lang=config.lang, documents=documents,
                              path=run.folder / "index_print.html")
    index_pdf = pdf(index_print, run.folder / "index.pdf", "index")
    chain_files = [p for p in (chain_pdf, index_pdf) if p is not None]
    failed_ids = [r.store_id for r in run.failures]
    route = functools.partial(
        route_reports, managers=managers, head_office=config.head_office,
        chain_attachments=chain_files, as_of=config.as_of.isoformat(), lang=config.lang,
        subjects=config.subjects, currency=config.currency,
    )
    emails, unrouted = route(store_reports)
    store_emails = [e for e in emails if e.key != "head_office"]
    for store_id, reason in unrouted.items():
        undelivered[store_id] = ("no_manager_address", no_manager.get(store_id, reason))
        problems.append(f"not emailed: store {store_id}: {no_manager.get(store_id, reason)}")
    if not config.head_office:
        problems.append("not emailed: chain overview and index: no recipients.head_office")
    elif not chain_files:
        problems.append("not emailed: head office: neither the chain overview nor the index could be printed")

    # The stores' emails go first, so that head office learns in its own email which stores
    # got nothing, and why.
    ledger = DeliveryLedger(_ledger_path(config), run=str(run.folder))
    send = functools.partial(deliver, settings=config.smtp, ledger=ledger, resend=resend,
                             dry_run_dir=run.folder / "outbox" if dry_run else None)
    delivery = send(store_emails)
    for f in delivery.failed:
        undelivered[f.key.removeprefix("store:")] = ("email_failed", f"{f.recipient}: {f.reason}")
    head_office, _ = route([], status=_head_office_status(run, undelivered, config.lang))
    ho = send(head_office)
    delivery.sent += ho.sent
    delivery.failed += ho.failed
    delivery.already_sent += ho.already_sent
    problems += [f"email failed: {f.key} to {f.recipient}: {f.reason}" for f in delivery.failed]
    _write_delivery_json(run.folder, delivery, problems, ledger)
    mark_complete(run.folder)

    lines = [
        f"run folder: {run.folder}",
        f"as of {config.as_of}: {len(run.results) - len(failed_ids)} of {len(run.results)} store "
        f"reports, {len(store_reports)} store PDFs, {len(chain_files)} head-office PDFs",
        *delivery.lines(),
        *problems,
    ]
    code = EXIT_PARTIAL if problems else EXIT_OK
    return finish(code, lines, folder=run.folder, delivery=delivery)


def _ledger_path(config: ScheduledConfig) -> Path:
    """The delivery ledger shared by every run of the same export, date, stores and language.

    The export is identified by the content of its files, so a rerun on the same data and date
    finds the deliveries of the earlier runs, and a corrected export starts a new ledger.
    """
    digest = hashlib.sha256()
    identity = {"as_of": config.as_of.isoformat(), "stores": config.stores, "lang": config.lang,
                "mapping": str(config.mapping) if config.mapping else None}
    digest.update(json.dumps(identity, sort_keys=True).encode())
    for path in sorted(p for p in config.data.iterdir() if p.is_file()):
        digest.update(path.name.encode("utf-8", "surrogatepass") + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return config.output / "delivery-ledger" / f"{config.as_of.isoformat()}-{digest.hexdigest()[:16]}.jsonl"


def _lists_attachment(store_folder: Path, name: str) -> Path | None:
    """The store's lists' workbook (``actions/lists.xlsx``) copied under the attachment's
    ``name``; None when the report wrote no lists."""
    workbook = store_folder / "actions" / LISTS_WORKBOOK
    if not workbook.is_file():
        return None
    return write_atomic(store_folder / name, workbook.read_bytes())


def _head_office_status(run, undelivered: dict[str, tuple[str, str]], lang: str = "en") -> str:
    """What head office reads about the stores' reports, in the run's language: how many
    reached their managers, whose manager receives nothing and why, and each store's list
    sizes (the overview's, :func:`rxrepurchase.chain_view.store_list_sizes`)."""
    table = store_list_sizes(
        [{"store_id": r.store_id, "ok": r.ok, "error": r.error, "metrics": r.metrics}
         for r in run.results], undelivered)
    n = len(table)
    nothing = int((table["nothing_reason"] != "").sum())
    lines = [t("ho_all", lang, n=n) if not nothing else
             t("ho_some", lang, n=n, k=n - nothing), nothing_received_line(table, lang, limit=300)]
    lines.append(t("ho_lists", lang))
    lines += [list_sizes_line(row, lang) for _, row in table.iterrows()]
    lines.append(t("ho_details", lang, folder=str(run.folder)))
    return "\n".join(lines)


def _write_delivery_json(folder: Path, delivery: DeliverySummary, problems: list[str],
                         ledger: DeliveryLedger) -> None:
    record = {
        "dry_run": delivery.dry_run,
        "ledger": str(ledger.path),
        "already_sent": [
            {"email": s.key, "to": list(s.recipients), "attachments": list(s.attachments)}
            for s in delivery.already_sent
        ],
        "sent": [
            {"email": s.key, "to": list(s.recipients), "subject": s.subject,
             "attachments": list(s.attachments), "eml": str(s.eml) if s.eml else None}
            for s in delivery.sent
        ],
        "failed": [
            {"email": f.key, "to": f.recipient, "subject": f.subject, "reason": f.reason}
            for f in delivery.failed
        ],
        "problems": problems,
    }
    write_atomic(folder / "delivery.json", json.dumps(record, ensure_ascii=False, indent=2))
