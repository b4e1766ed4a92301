"""Phone and desktop layout, checked in a real browser (issue 15, item 6).

A small demo run's store page, chain overview and index are loaded in headless Chromium at
1280 and 390 px. The page must be no wider than the window, and every rate column of every
table must be visible: inside the window, or inside a box that scrolls sideways and itself
fits the window. Skipped where Chromium is not installed (``scripts/system-deps.sh`` installs
it as root).
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

import nbformat
import pytest
import websocket

from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.reporting import notebook_to_html, run_reports

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh installs it as root)"
)
AS_OF = "2025-06-30"
WIDTHS = (1280, 390)
PAGES = ("index.html", "stores/S01/report.html", "chain/chain_overview.html")

# Evaluated in the loaded page: a rate column is one whose header says "rate" or 率; for each, the
# right edge (CSS px) of its nearest ancestor that scrolls sideways, or of the header cell itself
# when none does. A phone zooms out a page wider than itself (innerWidth then grows with the
# page), so the test compares with the width it asked for.
MEASURE = r"""(() => {
  const scroller = (el) => {
    for (let a = el.parentElement; a; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === "auto" || o === "scroll") return a;
    }
    return null;
  };
  const rates = [...document.querySelectorAll("table th")]
    .filter((th) => /rate|率/i.test(th.textContent))
    .map((th) => [th.textContent.trim(), (scroller(th) || th).getBoundingClientRect().right]);
  return {innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
          tables: document.querySelectorAll("table").length, rates};
})()"""


class Browser:
    """Headless Chromium driven over its DevTools protocol (``websocket-client``).

    The window is set by device-metrics emulation, as a phone's is: a headless window cannot be
    narrower than 500 px. Scripts are evaluated by the protocol, so the pages are loaded as they
    are, with the Content-Security-Policy that lets no script of theirs run.
    """

    def __init__(self, profile: Path):
        # Chromium's messages go to a file: a pipe nobody reads would fill and stall it.
        self.log = profile / "chromium.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--hide-scrollbars", "--remote-debugging-port=0",
                 f"--user-data-dir={profile}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=log,
            )
        self.events: list[dict] = []
        self.next_id = 0
        deadline = time.monotonic() + 60
        while not (found := re.search(r"DevTools listening on (\S+)", self.log.read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"chromium gave no DevTools port: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        port = urlparse(found.group(1)).port
        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            self.events.append(msg)

    def open(self, url: str, width: int, height: int = 900) -> None:
        """Load ``url`` in a window ``width`` px wide (a phone's below 600) and wait for it."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        self.call("Page.enable")
        self.events = []
        self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"]["value"]

    def screenshot(self, path: Path) -> None:
        """The whole page, as tall as it is, into ``path`` (PNG)."""
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def zh_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-layout")
    data = root / "data"
    write_demo_chain(data, DemoConfig(n_members=600, n_stores=3, months=12, seed=3, end_date=AS_OF))
    # Chinese: its headers have no spaces to wrap at, so its tables are the widest.
    return run_reports(data, stores="S01", out=root / "reports", jobs=2, as_of=AS_OF, lang="zh")


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_page_fits_the_window_and_rates_stay_visible(zh_run, browser, page, width):
    assert zh_run.results[0].ok and zh_run.chain.ok
    browser.open((zh_run.folder / page).as_uri(), width)
    m = browser.evaluate(MEASURE)
    assert m["scrollWidth"] <= width, f"{page} at {width}px is {m['scrollWidth']}px wide"
    assert m["innerWidth"] == width
    # Every page has tables with rates (the index and the overview rank stores by rate).
    assert m["tables"] >= 1 and m["rates"], m
    hidden = [name for name, right in m["rates"] if right > width + 0.5]
    assert hidden == [], f"{page} at {width}px: rate columns off screen: {hidden}"


CHARTS = r"""({
  groups: [...document.querySelectorAll(".rx-charts")].map((box) =>
    [...box.querySelectorAll("img")].map((img) => {
      const r = img.getBoundingClientRect();
      return {left: r.left, top: r.top, width: r.width, bottom: r.bottom,
              natural: img.naturalWidth};
    })),
  images: document.querySelectorAll("img").length,
  rights: [...document.querySelectorAll("img")].map((img) => img.getBoundingClientRect().right),
})"""


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_charts_that_belong_together_stack_on_a_phone_and_sit_side_by_side_on_a_desktop(
        zh_run, browser, width):
    browser.open((zh_run.folder / "stores/S01/report.html").as_uri(), width)
    found = browser.evaluate(CHARTS)
    groups = found["groups"]
    pairs = [g for g in groups if len(g) == 2]
    assert len(pairs) >= 3, groups
    # Every chart of the page is in a box, and none reaches past the window (a chart in a box
    # that scrolls sideways would: before, the monthly trend was 640 px wide at 390 px).
    assert sum(map(len, groups)) == found["images"]
    assert max(found["rights"]) <= width, found["rights"]
    # The monthly trend and the refills coming due stand alone: at their drawn size on a
    # desktop (not blown up to the page's width), shrunk to the column on a phone.
    alone = [g[0] for g in groups if len(g) == 1]
    assert len(alone) >= 2
    if width >= 600:
        assert all(img["width"] == img["natural"] for img in alone), alone
    for first, *others in groups:
        for img in (first, *others):
            # Never shrunk below 60% of its drawn size (text 10 px or more), never off screen.
            assert img["width"] >= 0.6 * img["natural"] and img["left"] + img["width"] <= width
        for other in others:
            if width < 600:  # stacked: each below the one before
                assert other["top"] >= first["bottom"] and other["left"] == first["left"]
            else:  # side by side
                assert other["top"] == first["top"] and other["left"] > first["left"]


def test_titles_name_the_store_and_no_page_shows_a_machine_path(zh_run):
    folder = zh_run.folder
    name = zh_run.results[0].metrics["store_name"]
    store_page = (folder / "stores/S01/report.html").read_text(encoding="utf-8")
    assert f"<title>{html.escape(name)}（S01）会员复购分析报告</title>" in store_page
    assert '<html lang="zh">' in store_page
    chain_page = (folder / "chain/chain_overview.html").read_text(encoding="utf-8")
    assert "<title>连锁总览：门店对比</title>" in chain_page
    # The fixture's folder: every path of this run (data, reports) lies under it.
    machine = str(folder.parents[1])
    for page in PAGES:
        text = (folder / page).read_text(encoding="utf-8")
        assert machine not in text, f"{page} shows a path on this machine"
    assert "数据目录：data ·" in (folder / "index.html").read_text(encoding="utf-8")


def test_page_title_from_data_is_escaped(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("text"))
    nbformat.write(nb, tmp_path / "x.ipynb")
    page = notebook_to_html(tmp_path / "x.ipynb", tmp_path / "x.html",
                            title="<script>alert(1)</script> & Co", lang="zh")
    text = page.read_text(encoding="utf-8")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</title>" in text
    assert "<script>alert" not in text
