"""A real SMTP server on 127.0.0.1 for the delivery tests (aiosmtpd), with optional STARTTLS,
implicit TLS, AUTH and scripted refusals of chosen recipients."""

from __future__ import annotations

import email
import socket
import ssl
import subprocess
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "reports@chain.example", "s3cr3t-Pa55word-x9"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def attachments(self) -> dict[str, bytes]:
        return {part.get_filename(): part.get_content() for part in self.message.iter_attachments()}


@dataclass
class Recorder:
    """aiosmtpd handler: keeps every message, refuses recipients as scripted.

    ``permanent``: addresses always refused with 550. ``temporary``: address -> number of
    times it is refused with 451 before being accepted. ``fail_after``: after this many
    messages every recipient is refused with 421, as by a server going down.
    """

    permanent: set[str] = field(default_factory=set)
    temporary: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)
    fail_after: int | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.fail_after is not None and len(self.received) >= self.fail_after:
            return "421 4.3.2 service shutting down"
        if address in self.permanent:
            return "550 5.1.1 mailbox unavailable"
        if self.refusals[address] < self.temporary.get(address, 0):
            self.refusals[address] += 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.received:
            for rcpt in r.rcpt_tos:
                out.setdefault(rcpt, []).append(r)
        return out


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    # handled=False: aiosmtpd itself answers a failed login with 535
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server(handler: Recorder, *, security: str = "none", cert: tuple[Path, Path] | None = None, auth: bool = False):
    """Run an SMTP server on 127.0.0.1 while the block runs; yields its port.

    ``security``: ``starttls`` (STARTTLS required), ``ssl`` (implicit TLS) or ``none``.
    """
    kwargs: dict = {}
    if security != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*cert)
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            # aiosmtpd only counts STARTTLS as encrypted for AUTH; this whole connection is TLS
            kwargs.update(ssl_context=context, auth_require_tls=False)
    if auth:
        kwargs.update(authenticator=authenticator, auth_required=True)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
