"""Email delivery against a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import email
import io
import logging
from email import policy

import pandas as pd
import pytest
from pypdf import PdfReader, PdfWriter
from smtp_server import PASSWORD, USER, Recorder, self_signed_certificate, smtp_server

from rxrepurchase.delivery import (
    DeliveryConfigError,
    SmtpSettings,
    StoreReport,
    build_message,
    deliver,
    parse_addresses,
    route_reports,
    store_managers,
)

# aiosmtpd warns about AUTH without STARTTLS on the implicit-TLS server, which is encrypted
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SENDER = "reports@chain.example"
HEAD_OFFICE = ("ceo@chain.example", "ops@chain.example")


def _pdf(path, label: str):
    """A small real PDF whose metadata names ``label`` (so each file's bytes differ)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": label})
    buf = io.BytesIO()
    writer.write(buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def stores():
    return pd.DataFrame(
        {
            "store_id": pd.array(["S01", "S02", "S03", "S04"], dtype="string"),
            "name": ["人民路店", "解放路店", "Harbour", "Airport"],
            "manager_email": pd.array(
                ["s01@chain.example", "s02@chain.example; s02-deputy@chain.example", None, "s04@chain.example"],
                dtype="string",
            ),
        }
    )


@pytest.fixture
def reports(tmp_path, stores):
    store_reports = [
        StoreReport(sid, _pdf(tmp_path / "stores" / sid / "report.pdf", f"report {sid}"), name)
        for sid, name in zip(stores["store_id"], stores["name"], strict=True)
    ]
    chain = [_pdf(tmp_path / "chain" / "chain_overview.pdf", "chain"), _pdf(tmp_path / "index.pdf", "index")]
    return store_reports, chain


def _routed(stores, reports, overrides=None, lang="en"):
    managers, problems = store_managers(stores, overrides)
    store_reports, chain = reports
    emails, unrouted = route_reports(
        store_reports, managers, head_office=HEAD_OFFICE, chain_attachments=chain, as_of="2025-06-30", lang=lang
    )
    return emails, unrouted, problems, managers


def _settings(port, cert=None, **kw):
    return SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, backoff=0.0, ca_file=cert[0] if cert else None, **kw)


def test_each_store_report_reaches_only_its_own_managers_over_starttls_and_auth(
    tmp_path, stores, reports, cert, monkeypatch
):
    monkeypatch.setenv("RX_SMTP_PASSWORD", PASSWORD)
    emails, unrouted, problems, managers = _routed(stores, reports, overrides={"S04": "regional@chain.example"})
    assert problems == {"S03": "no manager_email in the stores table and no override in the config"}
    assert unrouted == {"S03": "no recipient for this store"}
    recorder = Recorder()
    with smtp_server(recorder, security="starttls", cert=cert, auth=True) as port:
        summary = deliver(
            emails, _settings(port, cert, security="starttls", username=USER, password_env="RX_SMTP_PASSWORD")
        )
    assert summary.ok and summary.failed == []
    assert len(summary.sent) == 4  # S01, S02, S04, head office

    store_pdf = {r.store_id: r.pdf.read_bytes() for r in reports[0]}
    owner_of = {pdf: sid for sid, pdf in store_pdf.items()}
    expected = {
        "s01@chain.example": {"S01"},
        "s02@chain.example": {"S02"},
        "s02-deputy@chain.example": {"S02"},
        "regional@chain.example": {"S04"},  # the override replaces the table's s04@ address
    }
    by_rcpt = recorder.by_recipient()
    assert set(by_rcpt) == set(expected) | set(HEAD_OFFICE)
    for rcpt, messages in by_rcpt.items():
        got_stores = set()
        for received in messages:
            assert received.mail_from == SENDER
            for name, data in received.attachments().items():
                if data in owner_of:
                    got_stores.add(owner_of[data])
                    assert name == "report.pdf"
        # no store's PDF ever reaches anyone but that store's managers
        assert got_stores == expected.get(rcpt, set()), rcpt
    assert "s04@chain.example" not in by_rcpt

    s01 = by_rcpt["s01@chain.example"][0]
    assert s01.subject == "Repurchase report S01 人民路店 as of 2025-06-30"
    assert s01.attachments() == {"report.pdf": store_pdf["S01"]}  # bytes intact
    assert PdfReader(io.BytesIO(s01.attachments()["report.pdf"])).metadata.title == "report S01"

    office = by_rcpt["ceo@chain.example"]
    assert len(office) == 1 and office[0].rcpt_tos == list(HEAD_OFFICE)
    assert office[0].subject == "Repurchase reports: chain overview as of 2025-06-30"
    chain_files = {p.name: p.read_bytes() for p in reports[1]}
    assert office[0].attachments() == chain_files


def test_implicit_tls_and_chinese_subjects(stores, reports, cert, monkeypatch):
    monkeypatch.setenv("RX_SMTP_PASSWORD", PASSWORD)
    emails, *_ = _routed(stores, reports, lang="zh")
    recorder = Recorder()
    with smtp_server(recorder, security="ssl", cert=cert, auth=True) as port:
        summary = deliver(emails, _settings(port, cert, security="ssl", username=USER, password_env="RX_SMTP_PASSWORD"))
    assert summary.ok
    subjects = sorted(r.subject for r in recorder.received)
    assert "会员复购报告 S01 人民路店（截至 2025-06-30）" in subjects
    assert "会员复购报告：连锁总览（截至 2025-06-30）" in subjects


def test_untrusted_certificate_is_not_accepted(stores, reports, cert, monkeypatch):
    monkeypatch.setenv("RX_SMTP_PASSWORD", PASSWORD)
    emails, *_ = _routed(stores, reports)
    recorder = Recorder()
    with smtp_server(recorder, security="starttls", cert=cert, auth=True) as port:
        # no ca_file: the self-signed certificate is not trusted, so nothing is sent
        settings = SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, backoff=0.0,
                                username=USER, password_env="RX_SMTP_PASSWORD")
        summary = deliver(emails[:1], settings)
    assert recorder.received == []
    assert not summary.ok and "CERTIFICATE_VERIFY_FAILED" in summary.failed[0].reason


def test_starttls_is_never_skipped(stores, reports):
    emails, *_ = _routed(stores, reports)
    recorder = Recorder()
    with smtp_server(recorder) as port:  # plain server without STARTTLS
        summary = deliver(emails[:1], _settings(port, security="starttls"))
    assert recorder.received == []
    assert "does not offer STARTTLS" in summary.failed[0].reason


def test_temporary_failure_is_retried_with_backoff(stores, reports):
    emails, *_ = _routed(stores, reports)
    recorder = Recorder(temporary={"s02-deputy@chain.example": 2})
    waits: list[float] = []
    with smtp_server(recorder) as port:
        settings = SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, security="none", backoff=1.5)
        summary = deliver(emails, settings, sleep=waits.append)
    assert summary.ok
    assert waits == [1.5, 3.0]
    by_rcpt = recorder.by_recipient()
    # the deputy got it on the third try; the manager, accepted at once, got exactly one copy
    assert len(by_rcpt["s02-deputy@chain.example"]) == 1
    assert len(by_rcpt["s02@chain.example"]) == 1
    assert [s.recipients for s in summary.sent if s.key == "store:S02"] == [
        ("s02@chain.example",),
        ("s02-deputy@chain.example",),
    ]


def test_gives_up_after_the_configured_attempts(stores, reports):
    emails, *_ = _routed(stores, reports)
    recorder = Recorder(temporary={"s01@chain.example": 99})
    waits: list[float] = []
    with smtp_server(recorder) as port:
        summary = deliver(emails, _settings(port, security="none", attempts=3), sleep=waits.append)
    assert len(waits) == 2 and recorder.refusals["s01@chain.example"] == 3
    [failed] = summary.failed
    assert failed.recipient == "s01@chain.example"
    assert failed.reason.startswith("gave up after 3 attempts: 451")


def test_permanent_failure_of_one_recipient_does_not_stop_the_others(stores, reports):
    emails, *_ = _routed(stores, reports)
    recorder = Recorder(permanent={"s01@chain.example", "s02@chain.example"})
    waits: list[float] = []
    with smtp_server(recorder) as port:
        summary = deliver(emails, _settings(port, security="none"), sleep=waits.append)
    assert waits == []  # permanent refusals are not retried
    assert sorted((f.key, f.recipient) for f in summary.failed) == [
        ("store:S01", "s01@chain.example"),
        ("store:S02", "s02@chain.example"),
    ]
    assert all(f.reason.startswith("550") for f in summary.failed)
    assert set(recorder.by_recipient()) == {"s02-deputy@chain.example", "s04@chain.example", *HEAD_OFFICE}
    lines = summary.lines()
    assert "NOT sent: store:S01 to s01@chain.example: 550 5.1.1 mailbox unavailable" in lines
    assert any(line.startswith("sent: store:S04 to s04@chain.example") for line in lines)


def test_server_down_is_retried_then_reported(stores, reports):
    from smtp_server import free_port

    emails, *_ = _routed(stores, reports)
    waits: list[float] = []
    summary = deliver(emails[:1], _settings(free_port(), security="none", attempts=2), sleep=waits.append)
    assert waits == [0.0]
    assert "ConnectionRefusedError" in summary.failed[0].reason


def test_password_never_appears_in_logs_or_summaries(stores, reports, cert, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    emails, *_ = _routed(stores, reports)
    monkeypatch.setenv("RX_SMTP_PASSWORD", PASSWORD)
    recorder = Recorder(permanent={"s01@chain.example"})
    with smtp_server(recorder, security="starttls", cert=cert, auth=True) as port:
        settings = _settings(port, cert, security="starttls", username=USER, password_env="RX_SMTP_PASSWORD")
        good = deliver(emails, settings)
        monkeypatch.setenv("RX_SMTP_PASSWORD", PASSWORD + "-wrong")
        bad = deliver(emails, settings)
    assert len(good.sent) == 3 and len(good.failed) == 1
    # a refused login stops the run and is reported for every recipient
    assert bad.sent == [] and len(bad.failed) == sum(len(e.to) for e in emails)
    assert all("login as reports@chain.example refused: 535" in f.reason for f in bad.failed)
    everything = caplog.text + repr(settings) + "\n".join(good.lines() + bad.lines())
    assert "login as" in caplog.text  # the log did record the failure...
    assert PASSWORD not in everything  # ...but never the password


def test_dry_run_writes_eml_files_without_a_server(tmp_path, stores, reports):
    emails, *_ = _routed(stores, reports)
    settings = SmtpSettings(host="smtp.chain.example", sender=SENDER, username=USER, password_env="RX_UNSET_VAR")
    summary = deliver(emails, settings, dry_run_dir=tmp_path / "outbox")
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert [f.name for f in files] == ["01-store_S01.eml", "02-store_S02.eml", "03-store_S04.eml", "04-head_office.eml"]
    assert summary.dry_run and [s.eml for s in summary.sent] == files
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "s01@chain.example"
    [part] = msg.iter_attachments()
    assert part.get_content() == reports[0][0].pdf.read_bytes()
    with pytest.raises(DeliveryConfigError, match="exists already"):
        deliver(emails, settings, dry_run_dir=tmp_path / "outbox")


# ------------------------------------------------------------------ settings and recipients


def test_a_password_in_the_config_is_refused():
    with pytest.raises(DeliveryConfigError, match=r"smtp\.password: passwords must not be written"):
        SmtpSettings.from_mapping({"host": "h", "sender": SENDER, "username": USER, "password": "x"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"host": "h", "sender": SENDER, "username": USER}, "no password source"),
        ({"host": "h", "sender": SENDER, "security": "tls"}, r"smtp\.security: 'tls'"),
        ({"host": "h", "sender": "not-an-address"}, r"smtp\.sender"),
        ({"host": "h", "sender": SENDER, "prot": 25}, r"unknown key\(s\) prot"),
        ({"sender": SENDER}, r"smtp\.host: required"),
        ({"host": "mail.example", "sender": SENDER, "security": "none", "username": USER,
          "password_env": "X"}, "unencrypted"),
    ],
)
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(DeliveryConfigError, match=message):
        SmtpSettings.from_mapping(values)


def test_password_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("RX_SMTP_PASSWORD", raising=False)
    from_env = SmtpSettings(host="h", sender=SENDER, username=USER, password_env="RX_SMTP_PASSWORD")
    with pytest.raises(DeliveryConfigError, match="RX_SMTP_PASSWORD is not set"):
        from_env.read_password()

    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    from_file = SmtpSettings(host="h", sender=SENDER, username=USER, password_file=secret)
    assert from_file.read_password() == PASSWORD
    secret.chmod(0o644)
    with pytest.raises(DeliveryConfigError, match="chmod 600") as info:
        from_file.read_password()
    assert PASSWORD not in str(info.value)

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    inside = repo / "config" / "smtp-password"
    inside.parent.mkdir()
    inside.write_text(PASSWORD)
    inside.chmod(0o600)
    with pytest.raises(DeliveryConfigError, match="inside the git repository"):
        SmtpSettings(host="h", sender=SENDER, username=USER, password_file=inside).read_password()


def test_recipient_overrides_are_checked(stores):
    with pytest.raises(DeliveryConfigError, match="recipients.stores: store.s. S99 not in the stores table"):
        store_managers(stores, {"S99": "x@chain.example"})
    with pytest.raises(DeliveryConfigError, match=r"recipients\.stores\.S01: 'nobody' is not an email address"):
        store_managers(stores, {"S01": ["nobody"]})
    bad = stores.assign(manager_email=pd.array(["oops", None, None, None], dtype="string"))
    managers, problems = store_managers(bad)
    assert managers == {} and "store S01" in problems["S01"] and "'oops'" in problems["S01"]
    assert parse_addresses("a@x.example, A@x.example;b@x.example", where="w") == ("a@x.example", "b@x.example")


def test_a_store_email_carries_its_lists_workbook_beside_the_pdf(tmp_path, stores):
    pdf = _pdf(tmp_path / "S01_2025-06-30.pdf", "report S01")
    book = tmp_path / "S01_2025-06-30_lists.xlsx"
    book.write_bytes(b"PK workbook bytes")
    emails, _, _, _ = _routed(stores, ([StoreReport("S01", pdf, "A", lists=book)], []))
    [email] = emails
    assert email.attachments == (pdf, book)
    msg = build_message(email, "reports@chain.example")
    parts = {p.get_filename(): p for p in msg.iter_attachments()}
    assert sorted(parts) == ["S01_2025-06-30.pdf", "S01_2025-06-30_lists.xlsx"]
    assert parts["S01_2025-06-30_lists.xlsx"].get_content_type() == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert parts["S01_2025-06-30_lists.xlsx"].get_content() == b"PK workbook bytes"


FIGURES = {"period_start": "2025-04-02", "period_end": "2025-06-30",
           "user_repurchase_rate": 0.5432, "chain_median_user_repurchase_rate": 0.55,
           "order_repurchase_rate": 0.7, "chain_median_order_repurchase_rate": None,
           "active_members": 2604, "revenue": 123456.0, "subsidy": 9876.4,
           "refill_reminder_members": 142, "refill_reminder_rows": 215, "wake_up_members": 37,
           "lapsed_refill_members": 60, "lapsed_refill_rows": 73}


def test_a_store_email_body_carries_its_figures_in_the_run_language(tmp_path, stores):
    pdf = _pdf(tmp_path / "S01.pdf", "report S01")
    emails, _, _, _ = _routed(stores, ([StoreReport("S01", pdf, "A", figures=FIGURES)], []))
    body = emails[0].body
    for line in ("Last 90 days (2025-04-02 to 2025-06-30):",
                 "- User repurchase rate, last 90 days: 54.3% (chain median 55.0%)",
                 "- Order repurchase rate, last 90 days: 70.0% (chain median –)",
                 "- Active members: 2,604 · revenue ¥123,456 · subsidy ¥9,876",
                 "- Refill reminders: 142 members (215 member × product)",
                 "- Wake-up: 37 valuable members",
                 "- Lapsed refills: 60 members (73 member × product)"):
        assert line in body.splitlines(), (line, body)
    zh, _, _, _ = _routed(stores, ([StoreReport("S01", pdf, "A", figures=FIGURES)], []), lang="zh")
    assert "- 用户复购率（近 90 天）：54.3%（连锁中位数 55.0%）" in zh[0].body
    assert "- 续方提醒：142 名会员（会员 × 商品 215 行）" in zh[0].body
    # Without figures the body names the attachment only.
    bare, _, _, _ = _routed(stores, ([StoreReport("S01", pdf, "A")], []))
    assert "Last 90 days" not in bare[0].body and "Attached:" in bare[0].body
