"""Hostile input and faults, output side (issue 17): what a run writes, renders and sends.

A chain whose every text field holds markup (``<img src=x onerror=alert(1)>``, ``<script>``),
whose store ids are paths (``../../escaped/x``, ``S01/evil``), with a 10,000-character store
name, emoji, and a store without orders or manager, goes through two scheduled runs against a
real SMTP server that dies after the first message in the first run. Everything else is a fault
injected into one writer: a used or input output folder, a user's file as lock file or
``--out``, a PDF engine that overruns, a run killed with SIGKILL, a 10-order chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader
from smtp_server import Recorder, smtp_server

from rxrepurchase import batch, reporting
from rxrepurchase.cli import main
from rxrepurchase.delivery import (
    DeliveryLedger,
    OutgoingEmail,
    SmtpSettings,
    deliver,
)
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.errors import OutputError
from rxrepurchase.i18n import TEXT_LIMIT, format_text
from rxrepurchase.loading import load_chain
from rxrepurchase.outputs import INCOMPLETE, atomic_path, inside, safe_name, write_atomic
from rxrepurchase.pdf import PdfRenderError, html_to_pdf
from rxrepurchase.scheduled import load_config, run_scheduled

AS_OF = "2026-06-30"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
LONG_NAME = "A" * 10_000
HOSTILE_IDS = {"S01": IMG, "S02": "S01/evil"}
EMPTY = "../../escaped/x"
"""A store without orders or manager."""
HEAD_OFFICE = "ho@chain.example"
# Two scheduled runs of five notebooks and five PDFs each, in the first test that asks for them.
two_runs = pytest.mark.timeout(900)
TABLES = ("stores", "members", "orders", "order_lines", "campaigns")


# --------------------------------------------------------------------------- helpers


class _LiveMarkup(HTMLParser):
    """Collects what a browser would run: script elements and on* event attributes."""

    def __init__(self):
        super().__init__()
        self.live: list[str] = []
        self.csp: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.live.append("<script>")
        self.live += [f"<{tag} {k}=...>" for k in attrs if k.startswith("on")]
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = attrs.get("content")


def _live_markup(page: Path) -> _LiveMarkup:
    parser = _LiveMarkup()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_csv(folder / f"{n}.csv", dtype=str, keep_default_na=False) for n in TABLES}


def _write(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _hostile_chain(demo: Path, folder: Path) -> Path:
    """Every text field of the demo chain made hostile, plus the store ``EMPTY``."""
    t = _tables(demo)
    for table, column in (("stores", "store_id"), ("members", "home_store_id"), ("orders", "store_id")):
        t[table][column] = t[table][column].map(lambda v: HOSTILE_IDS.get(v, v))
    t["stores"]["name"] = [SCRIPT + " 店 💊", LONG_NAME]
    t["stores"]["city"] = [IMG, "**bold** $x^2$"]
    t["stores"] = pd.concat([t["stores"], pd.DataFrame([{
        "store_id": EMPTY, "name": IMG + " 🏥", "city": SCRIPT, "opened_on": "2020-01-01",
        "manager_email": ""}])])
    for table in ("members", "orders"):
        t[table]["member_id"] = t[table]["member_id"].map(lambda v: v and f"{v}<b>x</b>")
    t["members"]["tags"] = SCRIPT
    t["order_lines"]["product_name"] = t["order_lines"]["product_name"] + IMG
    t["campaigns"]["name"] = SCRIPT
    return _write(t, folder)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo_chain(folder, DemoConfig(n_members=240, n_stores=2, months=6, seed=5, end_date=AS_OF))
    return folder


def _config(folder: Path, data: Path, port: int, extra: str = "") -> Path:
    path = folder / "chain.toml"
    path.write_text(
        f"""
[data]
path = "{data}"
[run]
as_of = "{AS_OF}"
output = "reports"
jobs = 2
{extra}
[recipients]
head_office = ["{HEAD_OFFICE}"]
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "reports@chain.example"
attempts = 1
backoff = 0
""",
        encoding="utf-8",
    )
    return path


# --------------------------------------------------------------------------- the hostile chain


@pytest.fixture(scope="module")
def hostile_runs(demo, tmp_path_factory):
    """Two scheduled runs on the hostile chain: the SMTP server dies after the first message
    in the first run; the second (same data and date) has a healthy server."""
    root = tmp_path_factory.mktemp("hostile")
    data = _hostile_chain(demo, root / "data")
    dying, healthy = Recorder(fail_after=1), Recorder()
    with smtp_server(dying) as port:
        config = _config(root, data, port)
        first = run_scheduled(config)
    with smtp_server(healthy) as port:
        config = _config(root, data, port)
        second = run_scheduled(config)
    return root, first, second, dying, healthy


@pytest.mark.slow
@two_runs
def test_no_file_is_written_outside_the_output_folder(hostile_runs):
    root, first, *_ = hostile_runs
    assert sorted(p.name for p in root.iterdir()) == ["chain.toml", "data", "reports"]
    assert not (root.parent / "escaped").exists()
    run = json.loads((first.folder / "run.json").read_text(encoding="utf-8"))
    folders = {s["store_id"]: s["folder"] for s in run["stores"]}
    assert folders == {
        IMG: f"stores/{safe_name(IMG)}", "S01/evil": f"stores/{safe_name('S01/evil')}",
        EMPTY: f"stores/{safe_name(EMPTY)}",
    }
    assert sorted(p.name for p in (first.folder / "stores").iterdir()) == sorted(
        f.removeprefix("stores/") for f in folders.values())
    assert not (first.folder / INCOMPLETE).exists()


@pytest.mark.slow
@two_runs
def test_no_live_markup_reaches_any_page(hostile_runs):
    _, first, *_ = hostile_runs
    pages = sorted(first.folder.rglob("*.html"))
    assert len(pages) == 6  # 3 stores, chain overview, index, printed index
    for page in pages:
        found = _live_markup(page)
        assert found.live == [], (page, found.live[:3])
        if page.name != "index_print.html":
            assert found.csp == reporting.CONTENT_SECURITY_POLICY, page
    title = (first.folder / "stores" / safe_name(IMG) / "report.html").read_text(encoding="utf-8")
    # The markup is shown as text, in the heading and the "City:" line.
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt; 店 💊 (&lt;img src=x onerror=alert(1)&gt;)" in title
    assert "City: &lt;img src=x onerror=alert(1)&gt;" in title


@pytest.mark.slow
@two_runs
def test_long_names_are_cut_for_display_only(hostile_runs):
    _, first, *_ = hostile_runs
    store = first.folder / "stores" / safe_name("S01/evil")
    page = (store / "report.html").read_text(encoding="utf-8")
    assert max(len(m) for m in re.findall("A+", page)) == TEXT_LIMIT - 1  # then "…"
    assert json.loads((store / "metrics.json").read_text(encoding="utf-8"))["store_name"] == LONG_NAME


@pytest.mark.slow
@two_runs
def test_a_store_without_orders_gets_a_one_line_note(hostile_runs):
    _, first, *_ = hostile_runs
    page = (first.folder / "stores" / safe_name(EMPTY) / "report.html").read_text(encoding="utf-8")
    assert f"No member orders at this store up to {AS_OF}: there is nothing to analyse" in page
    assert "Traceback" not in page


@pytest.mark.slow
@two_runs
def test_pdfs_show_the_markup_as_text(hostile_runs):
    _, first, *_ = hostile_runs
    folder = safe_name(IMG)
    reader = PdfReader(first.folder / "stores" / folder / f"{folder}_{AS_OF}.pdf")
    text = reader.pages[0].extract_text()
    assert "<script>alert(1)</script>" in text
    assert "City: <img src=x onerror=alert(1)>" in text
    # One glyph-sized image: the title's emoji (charts are several hundred pixels wide).
    # Digits drawn from the emoji font (under the screen styles' font stack) would add one
    # per digit: 21 more on this page before the fix.
    glyphs = [im for im in reader.pages[0].images if im.image.width <= 200]
    assert len(glyphs) == 1


@pytest.mark.slow
@two_runs
def test_first_run_mails_until_the_server_dies_and_says_what_failed(hostile_runs):
    _, first, _, dying, _ = hostile_runs
    assert first.exit_code == 1
    assert len(dying.received) == 1  # then the server refused everything
    for received in dying.received:
        message = received.message
        assert [p.get_content_type() for p in message.walk() if p.get_content_maintype() == "text"] == ["text/plain"]
        assert "\n" not in received.subject
    subjects = sorted(r.subject for r in dying.received)
    assert any(f"Repurchase report {IMG} {SCRIPT} 店 💊" in s for s in subjects), subjects
    delivery = json.loads((first.folder / "delivery.json").read_text(encoding="utf-8"))
    assert len(delivery["sent"]) == 1
    assert {f["email"] for f in delivery["failed"]} == {"store:S01/evil", "head_office"}
    ledger = [json.loads(line) for line in Path(delivery["ledger"]).read_text(encoding="utf-8").splitlines()]
    ledger = [line for line in ledger if line["run"] == str(first.folder)]  # the rerun's follow
    assert len(ledger) == 1
    for line in ledger:  # the store's PDF and lists' workbook, named by store folder and date
        names = sorted(line["files"])
        assert [n.removeprefix(n.rsplit(f"_{AS_OF}", 1)[0]) for n in names] == [f"_{AS_OF}.pdf",
                                                                               f"_{AS_OF}_lists.xlsx"]
        assert all(re.fullmatch("[0-9a-f]{64}", d) for d in line["files"].values())


@pytest.mark.slow
@two_runs
def test_rerun_sends_only_what_was_not_delivered_and_tells_head_office(hostile_runs):
    _, first, second, dying, healthy = hostile_runs
    first_rcpts = {r for m in dying.received for r in m.rcpt_tos}
    second_rcpts = [r for m in healthy.received for r in m.rcpt_tos]
    assert len(second_rcpts) == 2 and not first_rcpts & set(second_rcpts)  # nobody twice
    assert HEAD_OFFICE in second_rcpts
    [office] = [m for m in healthy.received if HEAD_OFFICE in m.rcpt_tos]
    body = office.message.get_body(("plain",)).get_content()
    assert "2 of 3 store reports were delivered to their managers" in body
    assert (f"Managers who receive nothing: {EMPTY} (no manager address: no manager_email in "
            "the stores table") in body
    assert "List sizes per store (members):" in body and "- S01/evil: refill reminders" in body
    assert second.exit_code == 1  # EMPTY still has no recipient
    assert sum("not sent again (delivered before" in line for line in second.summary) == 1


# --------------------------------------------------------------------------- delivery ledger


def _email(folder: Path, n: int) -> OutgoingEmail:
    pdf = folder / f"S0{n}.pdf"
    pdf.write_bytes(f"%PDF report {n}".encode())
    return OutgoingEmail(f"store:S0{n}", (f"m{n}@chain.example",), f"report {n}", "body", (pdf,))


def test_ledger_resends_only_the_undelivered_and_resend_forces(tmp_path):
    emails = [_email(tmp_path, n) for n in (1, 2, 3)]
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl", run="run-1")
    dying, healthy = Recorder(fail_after=2), Recorder()
    with smtp_server(dying) as port:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none",
                                sender="r@chain.example", attempts=1, backoff=0)
        first = deliver(emails, settings, ledger=ledger)
    assert [s.key for s in first.sent] == ["store:S01", "store:S02"]
    assert [f.key for f in first.failed] == ["store:S03"]
    assert ledger.delivered() == {("store:S01", "m1@chain.example"), ("store:S02", "m2@chain.example")}
    with smtp_server(healthy) as port:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none",
                                sender="r@chain.example", attempts=1, backoff=0)
        second = deliver(emails, settings, ledger=ledger)
        assert [r.rcpt_tos for r in healthy.received] == [["m3@chain.example"]]
        assert [s.key for s in second.already_sent] == ["store:S01", "store:S02"]
        deliver(emails, settings, ledger=ledger, resend=True)
    assert len(healthy.received) == 4
    line = next(e for e in ledger.entries() if e["email"] == "store:S03")
    assert line["files"] == {"S03.pdf": hashlib.sha256(b"%PDF report 3").hexdigest()}


def test_a_ledger_line_cut_by_a_kill_is_not_a_delivery(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"email": "store:S01", "to": "a@x.example"}\n{"email": "store:S0', encoding="utf-8")
    assert DeliveryLedger(path).delivered() == {("store:S01", "a@x.example")}


# --------------------------------------------------------------------------- names and writers


@pytest.mark.parametrize("ident", ["S01", "store_7", "A-1.b", "x" * 64])
def test_plain_ids_keep_their_names(ident):
    assert safe_name(ident) == ident


@pytest.mark.parametrize("ident", ["../../tmp/x", "S01/evil", "a\x00b", "S\n1", ".", "..", ".hidden",
                                   "门店1", IMG, "x" * 65, "S01.", "C:\\x"])
def test_other_ids_get_a_slug_and_hash_inside_the_folder(ident, tmp_path):
    name = safe_name(ident)
    assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{10}", name) and not name.startswith(".")
    assert safe_name(ident) == name  # the same in every run
    assert inside(tmp_path / name, tmp_path).parent == tmp_path.resolve()


def test_distinct_ids_get_distinct_names():
    ids = ["S01/evil", "S01\\evil", "S01 evil", "S01_evil-", "../S01/evil"]
    assert len({safe_name(i) for i in ids}) == len(ids)


def test_inside_refuses_a_path_out_of_its_folder(tmp_path):
    with pytest.raises(OutputError, match="outside its folder"):
        inside(tmp_path / "stores" / ".." / ".." / "x", tmp_path / "stores")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_atomic(tmp_path / "run.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_format_text_cuts_and_cleans_for_display():
    assert format_text("a\x00b\nc") == "a b c"
    assert format_text(LONG_NAME) == "A" * (TEXT_LIMIT - 1) + "…"
    assert format_text("短") == "短"


# --------------------------------------------------------------------------- nothing overwritten


@pytest.fixture(scope="module")
def parquet_chain(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parquet-chain")
    write_demo_chain(folder, DemoConfig(n_members=200, n_stores=2, months=4, seed=2, end_date=AS_OF),
                     file_format="parquet")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the batch writes folders too), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_precompute_never_writes_into_the_export(parquet_chain, capsys, overwrite):
    before = _snapshot(parquet_chain)
    code = main(["precompute", "--data", str(parquet_chain), "--out", str(parquet_chain), "--as-of", AS_OF, *overwrite])
    assert code == 2
    assert "is the export folder" in capsys.readouterr().err
    assert _snapshot(parquet_chain) == before


def test_precompute_refuses_a_folder_with_files(parquet_chain, tmp_path, capsys):
    (tmp_path / "orders.parquet").write_bytes(b"the user's own file")
    code = main(["precompute", "--data", str(parquet_chain), "--out", str(tmp_path), "--as-of", AS_OF])
    assert code == 2
    assert "holds files already (orders.parquet)" in capsys.readouterr().err
    assert (tmp_path / "orders.parquet").read_bytes() == b"the user's own file"


def test_a_failed_precompute_leaves_the_folder_as_it_was(parquet_chain, tmp_path, monkeypatch):
    out = tmp_path / "batch"
    batch.precompute_chain(parquet_chain, out, as_of=AS_OF)
    before = _snapshot(out)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(batch, "_write_aggregates", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        batch.precompute_chain(parquet_chain, out, as_of=AS_OF, overwrite=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted({name.split("/")[0] for name in before})


def test_report_out_naming_a_file_exits_2(parquet_chain, tmp_path, capsys):
    target = tmp_path / "report.html"
    target.write_text("mine")
    code = main(["report", "--data", str(parquet_chain), "--as-of", AS_OF, "--out", str(target)])
    assert code == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "mine"


def test_report_with_no_order_up_to_the_analysis_date_is_refused(parquet_chain, tmp_path, capsys):
    """Nothing to analyse: a clear error, exit 2 and no run folder, whether the analysis date
    lies before every order (read from the export) or the chain given has no order."""
    out = tmp_path / "r"
    code = main(["report", "--data", str(parquet_chain), "--as-of", "2000-01-01", "--out", str(out)])
    assert code == 2
    assert "the analysis date 2000-01-01 is before the first order" in capsys.readouterr().err
    assert not out.exists()
    chain = load_chain(parquet_chain, as_of=AS_OF)
    empty = dataclasses.replace(chain, orders=chain.orders.iloc[:0])
    with pytest.raises(reporting.ReportError, match="no orders left to analyse"):
        reporting.run_reports(parquet_chain, out=out, as_of=AS_OF, chain=empty)
    assert not out.exists()


def test_lock_file_never_truncates_a_users_file(parquet_chain, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    config = _config(tmp_path, parquet_chain, 2525, extra=f'lock_file = "{notes}"')
    outcome = run_scheduled(load_config(config), dry_run=True)
    assert outcome.exit_code == 2
    assert "is not an rxrepurchase lock file" in outcome.summary[0]
    assert notes.read_text() == "my notes\n"
    # A lock file an earlier version left behind (a crashed run) is still a lock file.
    notes.write_text("pid 4242 since 2026-06-30T06:30:00\n")
    assert "not an rxrepurchase lock file" not in run_scheduled(load_config(config), dry_run=True).summary[0]


# --------------------------------------------------------------------------- rendering limits


def test_pdf_timeout_stops_the_engine_and_keeps_the_old_file(tmp_path):
    html = tmp_path / "r.html"
    html.write_text("<html><body>" + "<p>x</p>" * 20_000 + "</body></html>")
    pdf = write_atomic(tmp_path / "r.pdf", b"%PDF-old")
    with pytest.raises(PdfRenderError, match="did not finish within 0.5 s"):
        html_to_pdf(html, pdf, timeout=0.5)
    assert pdf.read_bytes() == b"%PDF-old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.pdf"]


def test_emoji_print_as_emoji(tmp_path):
    """With the emoji font scripts/system-deps.sh installs, an emoji is a colour glyph (an
    image in the PDF), not an empty box."""
    html = tmp_path / "e.html"
    html.write_text("<html><body><p>药店 💊 S009</p></body></html>", encoding="utf-8")
    reader = PdfReader(io.BytesIO(html_to_pdf(html, tmp_path / "e.pdf").read_bytes()))
    assert len(reader.pages[0].images) == 1
    assert "药店 💊 S009" in reader.pages[0].extract_text()


# --------------------------------------------------------------------------- thin data


@pytest.mark.slow
def test_a_ten_order_chain_gets_notes_not_tracebacks(demo, tmp_path):
    t = _tables(demo)
    orders = t["orders"][t["orders"]["member_id"] != ""].head(10)
    t["orders"] = orders
    t["order_lines"] = t["order_lines"][t["order_lines"]["order_id"].isin(orders["order_id"])]
    data = _write(t, tmp_path / "thin")
    store = orders["store_id"].iloc[0]
    run = reporting.run_reports(data, stores=[store], out=tmp_path / "out", as_of=AS_OF, jobs=2,
                                progress=None)
    assert run.ok, run.failures
    page = run.results[0].html.read_text(encoding="utf-8")
    assert "This store could not be modelled:" in page


# --------------------------------------------------------------------------- killed runs


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_run_kills_its_workers_and_kernels(parquet_chain, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxrepurchase", "report", "--data", str(parquet_chain), "--as-of", AS_OF,
         "--out", str(tmp_path / "out"), "--jobs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    kernels: set[int] = set()
    deadline = time.monotonic() + 120
    while len(kernels) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        kernels = {p for p in _children(proc.pid) if b"ipykernel" in _cmdline(p)}
    assert len(kernels) == 2, "the run never started two kernels"
    family = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in family if _alive(p)] == []
    [folder] = (tmp_path / "out").glob("2*")
    assert (folder / INCOMPLETE).exists() and not (folder / "run.json").exists()
