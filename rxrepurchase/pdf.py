"""Print HTML reports to A4 PDF documents.

The HTML reports are built for the screen (nbconvert's ``lab`` template). :data:`PRINT_CSS`
turns them into a document: A4 pages with margins and page numbers, charts scaled into the
page, wide tables set in a smaller font and wrapped to the page width, headings kept with what
follows, and no notebook prompts. Two engines print it:

``weasyprint`` (default)
    Pure Python from PyPI; needs the Pango library from the operating system
    (``scripts/system-deps.sh`` installs it; Debian/Ubuntu: ``libpango-1.0-0
    libpangoft2-1.0-0``). It runs in a child process, so a document that takes too long
    (weasyprint itself has no time limit) is stopped after ``timeout`` seconds.
``chromium``
    Headless Chromium, used only when installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rxrepurchase.errors import PdfRenderError
from rxrepurchase.outputs import atomic_path, die_with_parent

__all__ = ["ENGINES", "PRINT_CSS", "PdfRenderError", "check_pdf_engine", "html_to_pdf"]

ENGINES = ("weasyprint", "chromium")

PANGO_HELP = (
    "weasyprint needs the Pango library from the operating system. Run `bash "
    "scripts/system-deps.sh` (or `make setup`), or install it yourself: Debian/Ubuntu "
    "`sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk`; conda "
    "`conda install -c conda-forge pango`."
)

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PRINT_CSS = """
@page {
  size: A4;
  margin: 16mm 14mm 18mm 14mm;
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #666; }
}
html, body {
  background: white !important;
  font-size: 10pt;
  line-height: 1.4;
  margin: 0;
  padding: 0;
}
/* One font stack for all text. The screen styles' stacks start with "system-ui", which
   fontconfig may resolve to the emoji font: digits would print as its wide glyphs. Emoji
   still print, from the emoji font as fallback. */
html, body, body * {
  font-family: "Noto Sans", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
    "WenQuanYi Micro Hei", "Microsoft YaHei", sans-serif !important;
}
/* Long names from data wrap instead of running off the page. */
h1, h2, h3, h4, p, li { overflow-wrap: anywhere; }
/* Screen-only chrome of notebook pages. */
.jp-InputPrompt, .jp-OutputPrompt, .jp-Collapser, .jp-InputArea-prompt,
.jp-OutputArea-prompt, .anchor-link, .jp-Notebook-footer { display: none !important; }
main, .jp-Notebook, .jp-Cell, .jp-OutputArea, .jp-OutputArea-output,
.jp-RenderedHTMLCommon, .jp-RenderedMarkdown {
  width: auto !important;
  max-width: 100% !important;
  min-width: 0 !important;
  margin-left: 0 !important;
  margin-right: 0 !important;
  padding-left: 0 !important;
  padding-right: 0 !important;
  overflow: visible !important;
}
/* Block layout: printers cannot split flex boxes across pages. */
.jp-Cell, .jp-Cell-inputWrapper, .jp-Cell-outputWrapper, .jp-InputArea, .jp-OutputArea,
.jp-OutputArea-child, .jp-OutputArea-output, .jp-RenderedHTMLCommon {
  display: block !important;
}
/* nbconvert keeps each output on one page; a long table must be allowed to continue. */
.jp-OutputArea-child { break-inside: auto !important; }
h1, h2, h3, h4 { break-after: avoid; page-break-after: avoid; break-inside: avoid; }
h1 { font-size: 18pt; }
h2 { font-size: 14pt; margin-top: 14pt; }
h3 { font-size: 12pt; }
/* Charts: never wider than the page, never split across two pages. */
img, svg, canvas {
  max-width: 100% !important;
  height: auto !important;
  break-inside: avoid;
  page-break-inside: avoid;
}
.jp-RenderedImage, figure { break-inside: avoid; page-break-inside: avoid; }
/* Tables: small font; cells wrap so a table fits the page width. Tables with many columns
   (marked by html_to_pdf) get a smaller font, the widest a landscape page of their own. */
table {
  width: auto !important;
  max-width: 100% !important;
  table-layout: auto;
  border-collapse: collapse;
  font-size: 7.5pt !important;
  margin: 4pt 0 8pt 0 !important;
}
th, td {
  padding: 1.5pt 3pt !important;
  white-space: normal !important;
  overflow-wrap: anywhere;
  word-break: normal;
  max-width: none !important;
  border-bottom: 0.5pt solid #ccc;
}
/* Headers break between words only ("Participants" stays whole); cells anywhere. */
th { overflow-wrap: break-word; hyphens: auto; }
table.rx-wide { font-size: 6.5pt !important; }
table.rx-very-wide { font-size: 6pt !important; page: rx-landscape; }
@page rx-landscape { size: A4 landscape; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
pre, code { white-space: pre-wrap !important; overflow-wrap: anywhere; font-size: 8pt; }
.rx-page-break, .page-break { break-before: page; page-break-before: always; }
"""
"""Print style sheet added after the report's own styles."""


WIDE_TABLE_COLUMNS = 9
"""Tables with at least this many columns are set in a smaller font."""
VERY_WIDE_TABLE_COLUMNS = 15
"""Tables with at least this many columns are printed on a landscape page."""

_TABLE = re.compile(r"(<table\b[^>]*>)(.*?)</table>", flags=re.IGNORECASE | re.DOTALL)
_ROW = re.compile(r"<tr\b", flags=re.IGNORECASE)
_CELL = re.compile(r"<t[hd]\b", flags=re.IGNORECASE)
_CLASS = re.compile(r"""\bclass\s*=\s*(["'])(.*?)\1""", flags=re.IGNORECASE | re.DOTALL)


def _find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_pdf_engine(engine: str = "weasyprint") -> None:
    """Check that ``engine`` can print, or raise :class:`PdfRenderError` saying how to fix it.

    Parameters
    ----------
    engine : {"weasyprint", "chromium"}
        The engine to check.
    """
    if engine not in ENGINES:
        raise PdfRenderError(f"unknown PDF engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "chromium":
        if _find_chromium() is None:
            raise PdfRenderError(
                "PDF engine 'chromium' is not installed (looked for "
                f"{', '.join(CHROMIUM_CANDIDATES)} on PATH). Install it (Debian/Ubuntu: "
                "`sudo apt-get install chromium`) or use the default engine 'weasyprint'."
            )
        return
    _import_weasyprint()


def _import_weasyprint():
    try:
        import weasyprint
    except ImportError as exc:  # Python package missing
        raise PdfRenderError(
            f"PDF engine 'weasyprint' is not importable ({exc}). Install the project with "
            "`make setup` or `pip install weasyprint`."
        ) from exc
    except OSError as exc:  # the Python package loads Pango with ctypes/cffi
        raise PdfRenderError(f"PDF engine 'weasyprint' cannot load Pango ({exc}). {PANGO_HELP}") from exc
    return weasyprint


def _table_width_class(body: str) -> str | None:
    columns = max((len(_CELL.findall(row)) for row in _ROW.split(body)), default=0)
    if columns >= VERY_WIDE_TABLE_COLUMNS:
        return "rx-very-wide"
    if columns >= WIDE_TABLE_COLUMNS:
        return "rx-wide"
    return None


def _mark_wide_tables(html: str) -> str:
    """Add ``rx-wide`` / ``rx-very-wide`` classes to tables by their number of columns (CSS
    cannot count columns)."""

    def mark(match: re.Match) -> str:
        tag, body = match.group(1), match.group(2)
        width = _table_width_class(body)
        if width is None:
            return match.group(0)
        if _CLASS.search(tag):
            tag = _CLASS.sub(lambda c: f"class={c.group(1)}{c.group(2)} {width}{c.group(1)}", tag, count=1)
        else:
            tag = f'{tag[:-1]} class="{width}">'
        return f"{tag}{body}</table>"

    return _TABLE.sub(mark, html)


def _with_print_css(html: str, base_dir: Path) -> str:
    """The page with a ``<base>`` (relative images resolve from the original folder) and the
    print style sheet last, so it wins over the screen styles."""
    head = f'<base href="{base_dir.as_uri()}/">'
    tail = f"<style>{PRINT_CSS}</style>"
    if re.search(r"<head[^>]*>", html, flags=re.IGNORECASE):
        html = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + head, html, count=1, flags=re.IGNORECASE)
    else:
        html = head + html
    if re.search(r"</head>", html, flags=re.IGNORECASE):
        return re.sub(r"</head>", lambda m: tail + m.group(0), html, count=1, flags=re.IGNORECASE)
    return tail + html


def html_to_pdf(
    html_path: str | os.PathLike,
    pdf_path: str | os.PathLike,
    *,
    engine: str = "weasyprint",
    timeout: float = 180.0,
) -> Path:
    """Print an HTML report to an A4 PDF document.

    Parameters
    ----------
    html_path : path
        The HTML report (images may be embedded or relative to its folder).
    pdf_path : path
        Where to write the PDF; its folder is created. The PDF is written under a temporary
        name and renamed when complete, replacing an existing file.
    engine : {"weasyprint", "chromium"}
        Printing engine; see the module documentation.
    timeout : float
        Seconds the engine may take for this document before it is stopped.

    Returns
    -------
    pathlib.Path
        ``pdf_path``.

    Raises
    ------
    PdfRenderError
        The HTML file is missing, the engine is not available, or printing fails.
    """
    html_path, pdf_path = Path(html_path), Path(pdf_path)
    check_pdf_engine(engine)
    if not html_path.is_file():
        raise PdfRenderError(f"{html_path}: HTML report not found")
    html = _mark_wide_tables(html_path.read_text(encoding="utf-8"))
    html = _with_print_css(html, html_path.resolve().parent)
    with atomic_path(pdf_path) as tmp:
        if engine == "weasyprint":
            _print_weasyprint(html, html_path, tmp, timeout)
        else:
            _print_chromium(html, html_path, tmp, timeout)
        if tmp.stat().st_size == 0:
            raise PdfRenderError(f"{html_path}: {engine} wrote no PDF to {pdf_path}")
    return pdf_path


def _print_weasyprint(html: str, html_path: Path, pdf_path: Path, timeout: float) -> None:
    """Print in a child process that is killed after ``timeout`` seconds (or when this
    process dies)."""
    with tempfile.TemporaryDirectory(prefix="rxrepurchase-pdf-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html, encoding="utf-8")
        cmd = [sys.executable, "-c", "from rxrepurchase.pdf import _weasyprint_main; _weasyprint_main()",
               str(page), str(html_path.resolve().parent), str(pdf_path.resolve())]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=die_with_parent)
        except subprocess.TimeoutExpired as exc:
            raise PdfRenderError(f"{html_path}: weasyprint did not finish within {timeout:g} s; "
                                 "no PDF written") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise PdfRenderError(f"{html_path}: weasyprint failed: {lines[-1] if lines else done.returncode}")


def _weasyprint_main() -> None:
    """Child process of :func:`_print_weasyprint`: ``page.html base_dir out.pdf``."""
    page, base_dir, out = sys.argv[1:4]
    weasyprint = _import_weasyprint()
    try:
        document = weasyprint.HTML(
            string=Path(page).read_text(encoding="utf-8"), base_url=base_dir,
            url_fetcher=_offline_fetcher(weasyprint),
        )
        document.write_pdf(out)
    except Exception as exc:  # weasyprint raises many kinds: one line for the parent
        sys.exit(f"{type(exc).__name__}: {exc}")


def _offline_fetcher(weasyprint):
    """A fetcher of embedded (``data:``) and local (``file:``) resources only: a scheduled run
    must not hang on, or leak to, a CDN linked by the screen version of a report."""
    urls = weasyprint.urls
    if hasattr(urls, "URLFetcher"):  # the class-based API of newer weasyprint releases
        return urls.URLFetcher(allowed_protocols=("data", "file"))

    def fetch(url: str, *args, **kwargs):
        if not url.startswith(("data:", "file:")):
            raise ValueError(f"not fetched while printing offline: {url}")
        return urls.default_url_fetcher(url, *args, **kwargs)

    return fetch


def _print_chromium(html: str, html_path: Path, pdf_path: Path, timeout: float) -> None:
    binary = _find_chromium()
    with tempfile.TemporaryDirectory(prefix="rxrepurchase-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html, encoding="utf-8")
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--no-pdf-header-footer",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={pdf_path.resolve()}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=die_with_parent)
        except subprocess.TimeoutExpired as exc:
            raise PdfRenderError(f"{html_path}: chromium did not finish within {timeout:g} s") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PdfRenderError(
                f"{html_path}: chromium exited with code {done.returncode}: {' | '.join(tail)}"
            )
