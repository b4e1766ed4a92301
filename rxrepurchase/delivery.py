"""Email the PDF reports: each store's report to that store's manager only, the chain overview
and the index to head office.

Three steps, each usable on its own:

1. :func:`store_managers` and :func:`route_reports` decide who gets what, as a list of
   :class:`OutgoingEmail` (one per store, one for head office). A store's PDF is only ever
   addressed to that store's managers.
2. :func:`build_message` turns one into an :class:`email.message.EmailMessage`.
3. :func:`deliver` sends them over SMTP (STARTTLS, implicit TLS or plain to a local relay),
   retrying temporary failures with exponential backoff; a recipient refused for good does not
   stop the others. With ``dry_run_dir`` it writes ``.eml`` files instead. It returns a
   :class:`DeliverySummary` of what was and was not sent.
4. A :class:`DeliveryLedger` makes delivery idempotent: every recipient who accepted an email
   is recorded at once (email, recipient, attached files and their SHA-256, time), and a
   later :func:`deliver` with the same ledger sends only to recipients not recorded there.

The SMTP password never appears in settings files, logs, summaries or error messages: it is
read when sending from an environment variable or from a secrets file outside any git
repository (see :class:`SmtpSettings`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import mimetypes
import os
import re
import smtplib
import ssl
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from rxrepurchase.errors import DeliveryConfigError
from rxrepurchase.i18n import format_count, format_money, format_rate, format_text, t, windowed

__all__ = [
    "DeliveryConfigError",
    "DeliveryLedger",
    "DeliverySummary",
    "FailedRecipient",
    "OutgoingEmail",
    "SECURITY_MODES",
    "SentEmail",
    "SmtpSettings",
    "StoreReport",
    "Subjects",
    "build_message",
    "deliver",
    "parse_addresses",
    "route_reports",
    "store_managers",
]

log = logging.getLogger(__name__)

SECURITY_MODES = ("starttls", "ssl", "none")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server. Holds no password, only where to read it from.

    Parameters
    ----------
    host : str
        SMTP server name.
    sender : str
        ``From`` address, e.g. ``reports@chain.example``.
    port : int, optional
        Default by ``security``: 587 (starttls), 465 (ssl), 25 (none).
    security : {"starttls", "ssl", "none"}
        ``starttls`` upgrades a plain connection and fails if the server cannot;
        ``ssl`` is implicit TLS; ``none`` is plain SMTP, for a relay on this machine.
    username : str, optional
        Log in with this user. Needs ``password_env`` or ``password_file``.
    password_env : str, optional
        Name of the environment variable holding the password.
    password_file : path, optional
        File holding the password (first line), outside any git repository, not readable by
        group or others (``chmod 600``).
    ca_file : path, optional
        PEM file of the certificate authority (or self-signed certificate) to trust instead
        of the system's.
    timeout : float
        Seconds to wait for the server on each step.
    attempts : int
        Tries per message on temporary failures (4xx replies, lost connections).
    backoff : float
        Seconds before the second try; doubled before each further one.
    """

    host: str
    sender: str
    port: int | None = None
    security: str = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 5.0

    def __post_init__(self) -> None:
        where = "smtp"
        if not self.host:
            raise DeliveryConfigError(f"{where}.host: missing SMTP server name")
        if not _ADDRESS.match(self.sender or ""):
            raise DeliveryConfigError(f"{where}.sender: {self.sender!r} is not an email address")
        if self.security not in SECURITY_MODES:
            raise DeliveryConfigError(
                f"{where}.security: {self.security!r}; choose one of {', '.join(SECURITY_MODES)}"
            )
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise DeliveryConfigError(f"{where}.port: {self.port!r} is not a TCP port")
        if self.password_env and self.password_file:
            raise DeliveryConfigError(f"{where}: give password_env or password_file, not both")
        if self.username and not (self.password_env or self.password_file):
            raise DeliveryConfigError(
                f"{where}.username is set but no password source: add password_env (name of "
                "an environment variable) or password_file (a secrets file outside the repository)"
            )
        if (self.password_env or self.password_file) and not self.username:
            raise DeliveryConfigError(f"{where}: a password source is set but no username")
        if self.username and self.security == "none" and self.host not in _LOOPBACK:
            raise DeliveryConfigError(
                f"{where}.security = 'none' would send the password unencrypted to "
                f"{self.host}; use 'starttls' or 'ssl'"
            )
        if not (isinstance(self.attempts, int) and self.attempts >= 1):
            raise DeliveryConfigError(f"{where}.attempts: {self.attempts!r} must be an integer >= 1")
        if self.backoff < 0 or self.timeout <= 0:
            raise DeliveryConfigError(f"{where}: backoff must be >= 0 and timeout > 0")
        if self.password_file is not None:
            object.__setattr__(self, "password_file", Path(self.password_file).expanduser())
        if self.ca_file is not None:
            object.__setattr__(self, "ca_file", Path(self.ca_file).expanduser())

    @classmethod
    def from_mapping(cls, values: Mapping, *, source: str = "smtp") -> SmtpSettings:
        """Settings from a config table (e.g. ``[smtp]`` of ``chain.toml``).

        Raises
        ------
        DeliveryConfigError
            For a ``password`` key (passwords never go in config files), unknown keys, or
            invalid values; the message names ``source`` and the key.
        """
        for secret in ("password", "pass", "passwd", "smtp_password"):
            if secret in values:
                raise DeliveryConfigError(
                    f"{source}.{secret}: passwords must not be written in the config file. "
                    "Put the password in an environment variable and name it with "
                    "password_env, or in a secrets file outside the repository named with "
                    "password_file"
                )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DeliveryConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        for key in ("host", "sender"):
            if key not in values:
                raise DeliveryConfigError(f"{source}.{key}: required")
        try:
            return cls(**values)
        except DeliveryConfigError as exc:
            raise DeliveryConfigError(str(exc).replace("smtp", source, 1)) from None
        except TypeError as exc:
            raise DeliveryConfigError(f"{source}: {exc}") from None

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.security]

    def read_password(self) -> str | None:
        """The password from its environment variable or secrets file (``None`` without login).

        Raises
        ------
        DeliveryConfigError
            The variable is unset or empty, the file is missing, inside a git repository, or
            readable by others. The message never contains the password.
        """
        if not self.username:
            return None
        if self.password_env:
            value = os.environ.get(self.password_env, "")
            if not value:
                raise DeliveryConfigError(
                    f"smtp.password_env: environment variable {self.password_env} is not set or empty"
                )
            return value
        path = self.password_file
        if not path.is_file():
            raise DeliveryConfigError(f"smtp.password_file: {path} does not exist")
        repo = _git_work_tree(path)
        if repo is not None:
            raise DeliveryConfigError(
                f"smtp.password_file: {path} is inside the git repository {repo}; keep "
                "secrets outside repositories (e.g. /etc/rxrepurchase/smtp-password)"
            )
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise DeliveryConfigError(
                f"smtp.password_file: {path} can be read by other users (mode "
                f"{stat.filemode(mode)}); run `chmod 600 {path}`"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
        value = lines[0].strip() if lines else ""
        if not value:
            raise DeliveryConfigError(f"smtp.password_file: {path} is empty")
        return value


def _git_work_tree(path: Path) -> Path | None:
    for folder in path.resolve().parents:
        if (folder / ".git").exists():
            return folder
    return None


# --------------------------------------------------------------------------- routing


def parse_addresses(value: str | Sequence[str] | None, *, where: str) -> tuple[str, ...]:
    """Email addresses from a list or a string separated by ``,`` or ``;``.

    Raises
    ------
    DeliveryConfigError
        For an entry that is not an email address; the message names ``where``.
    """
    if value is None:
        return ()
    items = re.split(r"[,;]", value) if isinstance(value, str) else list(value)
    addresses = []
    for item in items:
        if not isinstance(item, str):
            raise DeliveryConfigError(f"{where}: {item!r} is not an email address")
        item = item.strip()
        if not item:
            continue
        if not _ADDRESS.match(item):
            raise DeliveryConfigError(f"{where}: {item!r} is not an email address")
        if item.lower() not in (a.lower() for a in addresses):
            addresses.append(item)
    return tuple(addresses)


def store_managers(
    stores, overrides: Mapping[str, str | Sequence[str]] | None = None
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Who receives each store's report.

    Parameters
    ----------
    stores : pandas.DataFrame
        The chain's ``stores`` table (``store_id``, ``manager_email``).
    overrides : mapping, optional
        ``store_id -> address(es)`` replacing the table's ``manager_email`` for that store.

    Returns
    -------
    managers : dict
        ``store_id -> addresses`` for every store that has at least one valid address.
    problems : dict
        ``store_id -> reason`` for stores without a usable address (no email, invalid email);
        these are reported, not sent.

    Raises
    ------
    DeliveryConfigError
        An override names a store that is not in the table, or holds an invalid address.
    """
    overrides = dict(overrides or {})
    known = [str(s) for s in stores["store_id"]]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise DeliveryConfigError(
            f"recipients.stores: store(s) {', '.join(unknown)} not in the stores table"
        )
    emails = stores["manager_email"] if "manager_email" in stores else [None] * len(known)
    managers: dict[str, tuple[str, ...]] = {}
    problems: dict[str, str] = {}
    for store_id, email in zip(known, emails, strict=True):
        if store_id in overrides:
            managers[store_id] = parse_addresses(
                overrides[store_id], where=f"recipients.stores.{store_id}"
            )
            if not managers[store_id]:
                raise DeliveryConfigError(f"recipients.stores.{store_id}: no address given")
            continue
        if email is None or not isinstance(email, str) or not email.strip():
            problems[store_id] = "no manager_email in the stores table and no override in the config"
            continue
        try:
            managers[store_id] = parse_addresses(email, where=f"stores.manager_email of store {store_id}")
        except DeliveryConfigError as exc:
            problems[store_id] = str(exc)
    return managers, problems


@dataclass(frozen=True)
class Subjects:
    """Subject lines; ``str.format`` fields: ``store_id``, ``store_name``, ``as_of``."""

    store: str = "Repurchase report {store_id} {store_name} as of {as_of}"
    chain: str = "Repurchase reports: chain overview as of {as_of}"

    @classmethod
    def for_language(cls, lang: str) -> Subjects:
        if lang == "zh":
            return cls(store="会员复购报告 {store_id} {store_name}（截至 {as_of}）",
                       chain="会员复购报告：连锁总览（截至 {as_of}）")
        return cls()


_BODIES = {
    "en": {
        "store": "Attached: the member repurchase report of store {store_id} {store_name}, "
        "as of {as_of}.\n\n{figures}This email was sent by a scheduled rxrepurchase run.\n",
        "chain": "Attached: the chain overview and the index of all store reports, as of "
        "{as_of}.\n\n{status}\n\nThis email was sent by a scheduled rxrepurchase run.\n",
    },
    "zh": {
        "store": "附件为门店 {store_id} {store_name} 的会员复购报告（数据截至 {as_of}）。\n\n"
        "{figures}本邮件由 rxrepurchase 定时任务发送。\n",
        "chain": "附件为连锁总览及各门店报告索引（数据截至 {as_of}）。\n\n{status}\n\n"
        "本邮件由 rxrepurchase 定时任务发送。\n",
    },
}


@dataclass(frozen=True)
class StoreReport:
    """One store's finished PDF report, and the workbook of its action lists (None when the
    report made none)."""

    store_id: str
    pdf: Path
    store_name: str = ""
    lists: Path | None = None
    figures: Mapping | None = None
    """The store's ``metrics.json`` (its headline figures and list sizes) for the email's
    body; None: the body names the attachments only."""


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to send: its recipients, subject, body and attached files."""

    key: str
    """What it carries: ``store:<store_id>`` or ``head_office``."""
    to: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[Path, ...]


def _size(figures: Mapping, key: str, lang: str) -> str:
    return format_count(figures.get(key), lang)


def store_figures_text(figures: Mapping | None, lang: str = "en",
                       currency: str | None = None) -> str:
    """The figures a store manager reads in the email's body, in ``lang``: the headline
    figures over the report period (each rate with its window) and the size of each list in
    the attached workbook and of "This week"'s top-20% care list; empty for ``figures`` None.

    ``figures`` is the store's ``metrics.json``; a figure it lacks shows as "–".
    """
    if not figures:
        return ""
    f = dict(figures)
    start, end = f.get("period_start"), f.get("period_end")
    days = (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days + 1 if start and end else 90
    lines = [t("mail_period", lang, days=days, start=start or "–", end=end or "–")]
    for key in ("user_repurchase_rate", "order_repurchase_rate"):
        lines.append(t("mail_rate", lang, what=windowed(key, lang, period_days=days),
                       value=format_rate(f.get(key), lang),
                       median=format_rate(f.get(f"chain_median_{key}"), lang)))
    lines.append(t("mail_members_money", lang, members=format_count(f.get("active_members"), lang),
                   revenue=format_money(f.get("revenue"), lang, currency),
                   subsidy=format_money(f.get("subsidy"), lang, currency)))
    lines.append(t("mail_lists", lang))
    lines.append(t("mail_list_refill", lang, members=_size(f, "refill_reminder_members", lang),
                   rows=_size(f, "refill_reminder_rows", lang)))
    lines.append(t("mail_list_wake_up", lang, members=_size(f, "wake_up_members", lang)))
    lines.append(t("mail_list_lapsed", lang, members=_size(f, "lapsed_refill_members", lang),
                   rows=_size(f, "lapsed_refill_rows", lang)))
    if "this_week_member_care_members" in f:
        lines.append(t("mail_list_top", lang, members=_size(f, "this_week_member_care_members", lang),
                       top=_size(f, "top_members", lang)))
    return "\n".join(lines) + "\n\n"


def route_reports(
    store_reports: Iterable[StoreReport],
    managers: Mapping[str, Sequence[str]],
    *,
    head_office: Sequence[str],
    chain_attachments: Sequence[Path],
    as_of: str,
    lang: str = "en",
    subjects: Subjects | None = None,
    status: str = "",
    currency: str | None = None,
) -> tuple[list[OutgoingEmail], dict[str, str]]:
    """Address each store's PDF (and lists' workbook) to that store's managers only, and the
    chain files to head office.

    Parameters
    ----------
    store_reports : iterable of StoreReport
        The stores' PDFs, one per store.
    managers : mapping
        ``store_id -> addresses`` (see :func:`store_managers`).
    head_office : sequence of str
        Addresses receiving ``chain_attachments`` (chain overview and index); never any
        store's report.
    chain_attachments : sequence of path
        Files for head office. Without any, or without head-office addresses, no head-office
        email is built.
    as_of : str
        Analysis date shown in subjects and bodies.
    lang : {"en", "zh"}
        Language of subjects and bodies.
    subjects : Subjects, optional
        Subject templates; default by language.
    status : str
        A line for head office about the run (e.g. failed stores).
    currency : str, optional
        ISO 4217 code of the amounts in the store emails' figures (default: the current one,
        :func:`rxrepurchase.i18n.set_currency`).

    Returns
    -------
    emails : list of OutgoingEmail
        One per routed store, then the head-office email.
    unrouted : dict
        ``store_id -> reason`` for reports that have no recipient.
    """
    subjects = subjects or Subjects.for_language(lang)
    bodies = _BODIES["zh" if lang == "zh" else "en"]
    emails: list[OutgoingEmail] = []
    unrouted: dict[str, str] = {}
    seen: set[str] = set()
    for report in store_reports:
        if report.store_id in seen:
            raise DeliveryConfigError(f"store {report.store_id}: two reports given for one store")
        seen.add(report.store_id)
        to = tuple(managers.get(report.store_id, ()))
        if not to:
            unrouted[report.store_id] = "no recipient for this store"
            continue
        # Names are data: shortened for a subject line (the PDF has them whole).
        fmt = {"store_id": format_text(report.store_id), "store_name": format_text(report.store_name),
               "as_of": as_of}
        emails.append(
            OutgoingEmail(
                key=f"store:{report.store_id}",
                to=to,
                subject=_one_line(subjects.store.format(**fmt)),
                body=bodies["store"].format(
                    figures=store_figures_text(report.figures, lang, currency), **fmt),
                attachments=(Path(report.pdf), *([Path(report.lists)] if report.lists else [])),
            )
        )
    if head_office and chain_attachments:
        fmt = {"store_id": "", "store_name": "", "as_of": as_of}
        emails.append(
            OutgoingEmail(
                key="head_office",
                to=tuple(head_office),
                subject=_one_line(subjects.chain.format(**fmt)),
                body=bodies["chain"].format(status=status, **fmt),
                attachments=tuple(Path(p) for p in chain_attachments),
            )
        )
    return emails, unrouted


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- messages


def build_message(email: OutgoingEmail, sender: str) -> EmailMessage:
    """The MIME message of ``email``: text body, files attached with their own names.

    Raises
    ------
    DeliveryConfigError
        An attachment does not exist.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(email.to)
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg.set_content(email.body)
    for path in email.attachments:
        if not path.is_file():
            raise DeliveryConfigError(f"{email.key}: attachment {path} does not exist")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = mime.split("/", 1)
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return msg


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SentEmail:
    key: str
    recipients: tuple[str, ...]
    subject: str
    attachments: tuple[str, ...]
    eml: Path | None = None
    """The ``.eml`` file written instead of sending (dry run)."""


@dataclass(frozen=True)
class FailedRecipient:
    key: str
    recipient: str
    subject: str
    reason: str


@dataclass
class DeliverySummary:
    """What :func:`deliver` sent (or wrote, in a dry run), what it could not send, and what
    it left out because the ledger says it was delivered before."""

    sent: list[SentEmail] = field(default_factory=list)
    failed: list[FailedRecipient] = field(default_factory=list)
    dry_run: bool = False
    already_sent: list[SentEmail] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        """Human-readable summary, one line per email and per failed recipient."""
        verb = "written" if self.dry_run else "sent"
        out = []
        for s in self.sent:
            where = f" -> {s.eml}" if s.eml else ""
            out.append(f"{verb}: {s.key} to {', '.join(s.recipients)} [{', '.join(s.attachments)}]{where}")
        for s in self.already_sent:
            out.append(f"not sent again (delivered before, see the ledger): {s.key} to "
                       f"{', '.join(s.recipients)}")
        for f in self.failed:
            out.append(f"NOT sent: {f.key} to {f.recipient}: {f.reason}")
        return out


class DeliveryLedger:
    """Who has received which email: an append-only JSON-lines file.

    One line per recipient who accepted an email: ``email`` (its key, ``store:<id>`` or
    ``head_office``), ``to``, ``files`` (attachment name -> SHA-256 of its content),
    ``sent_at`` and ``run`` (the run folder). Lines are written and flushed to disk as each
    email is accepted, so a run killed half-way still records what went out.

    A delivery is identified by its email key and recipient, not by the files' hashes: a rerun
    prints the same report again, and PDFs carry their creation time, so the bytes differ
    while the report is the same. The hashes say exactly which file a recipient got.

    Parameters
    ----------
    path : path
        The ledger file (created on the first delivery).
    run : str
        Written with each line: which run sent it.
    """

    def __init__(self, path: str | os.PathLike, *, run: str = ""):
        self.path = Path(path)
        self.run = run

    def entries(self) -> list[dict]:
        """Every recorded delivery, oldest first.

        Raises
        ------
        DeliveryConfigError
            A line is not a ledger record (the message names the file and line).
        """
        if not self.path.is_file():
            return []
        out = []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["email"], record["to"]
            except (ValueError, TypeError, KeyError):
                if n == len(lines):
                    continue  # a last line cut short by a killed run: that send is not recorded
                raise DeliveryConfigError(f"{self.path}: line {n} is not a delivery record") from None
            out.append(record)
        return out

    def delivered(self) -> set[tuple[str, str]]:
        """``(email key, recipient in lower case)`` of every recorded delivery."""
        return {(r["email"], r["to"].lower()) for r in self.entries()}

    def record(self, email: OutgoingEmail, recipient: str) -> None:
        """Append one delivery and flush it to disk."""
        line = {
            "email": email.key,
            "to": recipient,
            "files": {p.name: _sha256(p) for p in email.attachments},
            "sent_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "run": self.run,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _AuthenticationFailed(Exception):
    """Login refused: every further message would fail the same way (and risk a lockout)."""


class _Session:
    """One SMTP connection, opened on first use and reopened after errors."""

    def __init__(self, settings: SmtpSettings, password: str | None):
        self.settings = settings
        self._password = password
        self._smtp: smtplib.SMTP | None = None

    def get(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        log.debug("connecting to %s:%s (%s)", s.host, s.effective_port, s.security)
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.effective_port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"{s.host}:{s.effective_port} does not offer STARTTLS (security = 'starttls')"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                try:
                    smtp.login(s.username, self._password)
                except smtplib.SMTPAuthenticationError as exc:
                    raise _AuthenticationFailed(
                        f"login as {s.username} refused: {exc.smtp_code} {_text(exc.smtp_error)}"
                    ) from None
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def reset(self) -> None:
        if self._smtp is not None:
            _close(self._smtp)
            self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def deliver(
    emails: Sequence[OutgoingEmail],
    settings: SmtpSettings,
    *,
    dry_run_dir: str | os.PathLike | None = None,
    sleep: Callable[[float], None] = time.sleep,
    ledger: DeliveryLedger | None = None,
    resend: bool = False,
) -> DeliverySummary:
    """Send ``emails``, or write them as ``.eml`` files with ``dry_run_dir``.

    Temporary failures (4xx replies, refused or lost connections, timeouts) are retried up to
    ``settings.attempts`` times per email, waiting ``backoff``, ``2 * backoff``, ... seconds;
    only recipients not yet accepted are retried, so nobody gets a copy twice. A recipient the
    server refuses for good (5xx) is recorded and the others still get the email. A refused
    login stops sending (every message would fail the same way) and is recorded for all.

    Parameters
    ----------
    emails : sequence of OutgoingEmail
    settings : SmtpSettings
    dry_run_dir : path, optional
        Write ``NN-<key>.eml`` files here instead of sending. No password is needed.
    sleep : callable
        Waits between attempts (``time.sleep``).
    ledger : DeliveryLedger, optional
        Recipients recorded there are left out (listed in ``already_sent``), and each new
        delivery is recorded. A dry run reads the ledger but records nothing.
    resend : bool
        Send to every recipient, recorded or not (deliveries are still recorded).

    Returns
    -------
    DeliverySummary
    """
    summary = DeliverySummary(dry_run=dry_run_dir is not None)
    if ledger is not None and not resend:
        emails = _not_yet_delivered(emails, ledger.delivered(), summary)
    messages = [(email, build_message(email, settings.sender)) for email in emails]
    if dry_run_dir is not None:
        folder = Path(dry_run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for n, (email, msg) in enumerate(messages, start=1):
            path = folder / f"{n:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', email.key)}.eml"
            if path.exists():
                raise DeliveryConfigError(f"dry run: {path} exists already; use an empty folder")
            path.write_bytes(msg.as_bytes())
            summary.sent.append(_sent(email, email.to, path))
            log.info("dry run: wrote %s (%s to %s)", path, email.key, ", ".join(email.to))
        return summary

    session = _Session(settings, settings.read_password())
    try:
        for n, (email, msg) in enumerate(messages):
            try:
                _send_one(session, email, msg, summary, sleep, ledger)
            except _AuthenticationFailed as exc:
                for later, _ in messages[n:]:
                    summary.failed.extend(
                        FailedRecipient(later.key, r, later.subject, str(exc)) for r in later.to
                    )
                log.error("%s; nothing more is sent", exc)
                break
    finally:
        session.close()
    return summary


def _not_yet_delivered(emails: Sequence[OutgoingEmail], delivered: set[tuple[str, str]],
                       summary: DeliverySummary) -> list[OutgoingEmail]:
    """``emails`` without the recipients the ledger has; those go to ``already_sent``."""
    out = []
    for email in emails:
        done = tuple(r for r in email.to if (email.key, r.lower()) in delivered)
        if done:
            summary.already_sent.append(_sent(email, done))
        rest = tuple(r for r in email.to if r not in done)
        if rest:
            out.append(replace(email, to=rest))
    return out


def _sent(email: OutgoingEmail, recipients: Sequence[str], eml: Path | None = None) -> SentEmail:
    return SentEmail(
        email.key, tuple(recipients), email.subject, tuple(p.name for p in email.attachments), eml
    )


def _send_one(session: _Session, email: OutgoingEmail, msg: EmailMessage, summary, sleep,
              ledger: DeliveryLedger | None) -> None:
    settings = session.settings
    pending = list(email.to)
    reason = ""
    for attempt in range(1, settings.attempts + 1):
        if attempt > 1:
            wait = settings.backoff * 2 ** (attempt - 2)
            log.warning("%s: attempt %d of %d in %.1f s (%s)", email.key, attempt, settings.attempts, wait, reason)
            sleep(wait)
        try:
            refused = session.get().send_message(msg, from_addr=settings.sender, to_addrs=pending)
        except smtplib.SMTPRecipientsRefused as exc:  # every remaining recipient refused
            refused = exc.recipients
        except smtplib.SMTPNotSupportedError as exc:
            session.reset()
            _fail(summary, email, pending, str(exc))
            return
        except smtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused, or a 4xx on connect
            session.reset()
            reason = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            if exc.smtp_code >= 500:
                _fail(summary, email, pending, reason)
                return
            continue
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            session.reset()
            reason = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ssl.SSLCertVerificationError):  # retrying cannot help
                _fail(summary, email, pending, reason)
                return
            continue
        accepted = [r for r in pending if r not in refused]
        if accepted:
            summary.sent.append(_sent(email, accepted))
            log.info("sent %s to %s", email.key, ", ".join(accepted))
            for rcpt in accepted if ledger is not None else ():
                ledger.record(email, rcpt)
        temporary = []
        for rcpt, (code, text) in refused.items():
            why = f"{code} {_text(text)}"
            if code >= 500:
                _fail(summary, email, [rcpt], why)
            else:
                temporary.append(rcpt)
                reason = why
        pending = temporary
        if not pending:
            return
    _fail(summary, email, pending, f"gave up after {settings.attempts} attempts: {reason}")


def _fail(summary: DeliverySummary, email: OutgoingEmail, recipients, reason: str) -> None:
    for r in recipients:
        summary.failed.append(FailedRecipient(email.key, r, email.subject, reason))
        log.error("NOT sent %s to %s: %s", email.key, r, reason)
