"""Printing HTML reports to A4 PDFs, checked by reading the PDFs back with pypdf."""

from __future__ import annotations

import base64
import http.server
import io
import shutil
import subprocess
import sys
import threading

import matplotlib
import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from rxrepurchase.pdf import PdfRenderError, check_pdf_engine, html_to_pdf

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)

A4 = (595.3, 841.9)  # points


def _chart_png() -> str:
    fig, ax = plt.subplots(figsize=(12, 4))  # wider than the page on purpose
    ax.plot(np.arange(12), np.linspace(0.2, 0.45, 12))
    ax.set_title("repurchase by month")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _report_html(extra_head: str = "") -> str:
    """A page shaped like a store report: Chinese heading, headline figures, a chart, a table
    with 18 columns (too wide for portrait A4) and a narrow table long enough to need pages."""
    wide = pd.DataFrame(
        {f"month_{i:02d}": [1000.5 + i, 2000.25 + i] for i in range(18)},
        index=pd.Index(["S001", "S002"], name="store_id"),
    )
    long = pd.DataFrame({"member_id": [f"M{i:05d}" for i in range(120)], "orders": range(120)})
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">{extra_head}
<title>S001</title></head><body>
<h1>门店复购报告 Store S001 人民路店</h1>
<p>User repurchase rate 37.5% · orders 1,234 · 忠诚会员 loyal members 88</p>
<img alt="chart" src="data:image/png;base64,{_chart_png()}">
<h2>Monthly sales</h2>
{wide.to_html(classes="dataframe")}
<h2>Members</h2>
{long.to_html(index=False)}
</body></html>"""


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(_report_html(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def weasy_pdf(report_html, tmp_path_factory):
    return html_to_pdf(report_html, tmp_path_factory.mktemp("pdf") / "out" / "report.pdf")


def _text(reader: PdfReader) -> str:
    return "\n".join(page.extract_text() for page in reader.pages)


def _assert_document(pdf_path) -> PdfReader:
    reader = PdfReader(pdf_path)
    assert len(reader.pages) >= 3  # portrait, landscape table, the long table continues
    first = reader.pages[0].mediabox
    assert (float(first.width), float(first.height)) == pytest.approx(A4, abs=1)
    text = _text(reader)
    # Chromium's text layer maps some ideographs to look-alike radicals (门 -> U+2ED4), so
    # the Chinese checked here avoids those; weasyprint's full heading is checked below.
    for expected in ("S001", "37.5%", "1,234", "复购报告", "忠诚会员", "M00000", "M00119"):
        assert expected in text, expected
    # every column of the wide table is on the page, none clipped at the right margin
    assert "month_00" in text.replace("\n", "")
    assert "month_17" in text.replace("\n", "")
    assert sum(len(page.images) for page in reader.pages) >= 1
    return reader


def test_weasyprint_prints_a_document(weasy_pdf):
    reader = _assert_document(weasy_pdf)
    sizes = [(float(p.mediabox.width), float(p.mediabox.height)) for p in reader.pages]
    # the 18-column table gets a landscape page of its own, the rest stays portrait
    assert sizes.count(pytest.approx(A4[::-1], abs=1)) == 1
    assert sizes[0] == pytest.approx(A4, abs=1)
    assert "门店复购报告 Store S001 人民路店" in _text(reader)


def test_page_numbers_and_no_browser_header(weasy_pdf):
    reader = PdfReader(weasy_pdf)
    n = len(reader.pages)
    last = reader.pages[-1].extract_text()
    assert f"{n} / {n}" in last
    assert "file:" not in _text(reader)  # a browser footer would print the page's URL


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (optional engine)")
def test_chromium_prints_a_document(report_html, tmp_path):
    _assert_document(html_to_pdf(report_html, tmp_path / "chromium.pdf", engine="chromium"))


def test_nothing_is_fetched_from_the_network(tmp_path):
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        html = tmp_path / "cdn.html"
        html.write_text(_report_html(f'<link rel="stylesheet" href="{url}/cdn.css"><img src="{url}/x.png">'))
        html_to_pdf(html, tmp_path / "cdn.pdf")
    finally:
        server.shutdown()
    assert requests == []
    assert "S001" in _text(PdfReader(tmp_path / "cdn.pdf"))


def test_relative_images_resolve_from_the_report_folder(tmp_path):
    chart = tmp_path / "charts" / "c.png"
    chart.parent.mkdir()
    chart.write_bytes(base64.b64decode(_chart_png()))
    html = tmp_path / "rel.html"
    html.write_text('<html><head></head><body><p>S009</p><img src="charts/c.png"></body></html>')
    reader = PdfReader(html_to_pdf(html, tmp_path / "elsewhere" / "rel.pdf"))
    assert len(reader.pages[0].images) == 1


def test_missing_html_names_the_file(tmp_path):
    with pytest.raises(PdfRenderError, match="nope.html"):
        html_to_pdf(tmp_path / "nope.html", tmp_path / "x.pdf")


def test_unknown_engine_is_refused():
    with pytest.raises(PdfRenderError, match="unknown PDF engine 'wkhtml'"):
        check_pdf_engine("wkhtml")


def test_missing_pango_says_how_to_install_it():
    """In a fresh interpreter where loading the Pango library fails, as on a machine without it."""
    code = (
        "import cffi\n"
        "def dlopen(self, name, *args):\n"
        "    raise OSError(f'cannot load library {name!r}')\n"
        "cffi.FFI.dlopen = dlopen\n"
        "from rxrepurchase.pdf import PdfRenderError, check_pdf_engine\n"
        "try:\n"
        "    check_pdf_engine('weasyprint')\n"
        "except PdfRenderError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "cannot load Pango" in done.stdout, done.stderr
    assert "scripts/system-deps.sh" in done.stdout
    assert "libpango-1.0-0" in done.stdout
