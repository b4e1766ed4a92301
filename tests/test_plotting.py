"""Chinese text in report charts resolves to a font that has the glyphs (no empty boxes)."""

import warnings

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from rxrepurchase.i18n import STRINGS  # noqa: E402
from rxrepurchase.plotting import (  # noqa: E402
    CJKFontWarning,
    configure_matplotlib,
    find_cjk_font,
    font_covers,
)

ZH_TEXT = "".join(zh for _, zh in STRINGS.values())


@pytest.fixture
def rc():
    with matplotlib.rc_context():
        yield matplotlib.rcParams


def test_configured_cjk_font_covers_every_chinese_report_string(rc):
    family = configure_matplotlib()
    assert family is not None, "no CJK font installed: run `make setup` (fonts-noto-cjk)"
    assert family in rc["font.family"]
    path = font_manager.findfont(font_manager.FontProperties(family=family))
    assert "DejaVu" not in path
    assert font_covers(family, ZH_TEXT)


def test_drawing_chinese_labels_warns_about_no_missing_glyph(rc):
    configure_matplotlib()
    fig, ax = plt.subplots()
    ax.set_title("用户复购率 · 补贴驱动会员 vs 忠诚会员")
    ax.set_xlabel("月份")
    ax.bar(["普通会员", "金卡会员", "钻石会员", "PLUS会员"], [1, 2, 3, 4])
    with warnings.catch_warnings():
        # matplotlib warns "Glyph ... missing from font(s)" for every box it would draw.
        warnings.simplefilter("error")
        fig.canvas.draw()
    plt.close(fig)


def test_without_configuration_the_default_font_lacks_the_glyphs(rc):
    # The check above can fail: matplotlib's default font really has no Chinese glyphs.
    assert not font_covers("DejaVu Sans", "复购率")
    rc["font.family"] = ["DejaVu Sans"]
    fig, ax = plt.subplots()
    ax.set_title("复购率")
    with pytest.warns(UserWarning, match="missing from font"):
        fig.canvas.draw()
    plt.close(fig)


def test_no_cjk_font_gives_a_clear_warning(rc, monkeypatch):
    monkeypatch.setattr(
        "rxrepurchase.plotting.find_cjk_font", lambda *a, **k: None
    )
    with pytest.warns(CJKFontWarning, match="fonts-noto-cjk"):
        assert configure_matplotlib() is None
    assert rc["font.family"] == ["DejaVu Sans"]


def test_find_cjk_font_skips_families_that_are_not_installed():
    assert find_cjk_font(("No Such Font 123",)) is None
    assert find_cjk_font(("No Such Font 123", "Noto Sans CJK SC")) == "Noto Sans CJK SC"


def test_charts_of_a_group_are_separate_figures_in_a_wrapping_box():
    import base64
    import re

    import matplotlib
    import matplotlib.pyplot as plt

    from rxrepurchase.plotting import configure_matplotlib
    from rxrepurchase.rendering import CHART_SIZE, chart_axes, charts_html

    with matplotlib.rc_context():
        configure_matplotlib(dpi=110)  # as the report notebooks draw
        left, right = chart_axes(2)
        assert left.figure is not right.figure
        left.set_title("<b>retention</b>")
        left.bar(["A", "B"], [1, 2])
        right.bar(["Loyal", "Mixed", "Occasional", "Subsidy-driven", "Undetermined", "New"],
                  range(6))
        page = charts_html([left, right])
    # Crowded category labels turn instead of overlapping; two short ones stay level.
    assert {label.get_rotation() for label in right.get_xticklabels()} == {30.0}
    assert {label.get_rotation() for label in left.get_xticklabels()} == {0.0}
    assert left.title.get_wrap()
    assert page.count("<img ") == 2 and 'class="rx-charts"' in page
    assert 'alt="&lt;b&gt;retention&lt;/b&gt;"' in page  # the title is data: escaped
    assert CHART_SIZE == (4.8, 3.4)
    assert page.count('width="528" height="374"') == 2  # 4.8 x 3.4 in at 110 dpi
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(left.figure.number)  # closed: not shown a second time


def test_a_chart_alone_fits_a_phone_with_its_page_wide_legend_below_the_plot():
    from importlib.resources import files

    from rxrepurchase.rendering import ALONE_CHART_SIZE, chart_axes, charts_html

    with matplotlib.rc_context():
        configure_matplotlib(dpi=110)
        wide, narrow = chart_axes(2, size=ALONE_CHART_SIZE)
        for ax, n in ((wide, 4), (narrow, 1)):
            for i in range(n):
                ax.plot([0, 1], [i, i + 1], label=f"Order repurchase rate, per calendar month {i}")
            ax.legend(fontsize=8, ncol=2)  # drawn for a page-wide chart
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "constrained_layout not applied"
            page = charts_html([wide, narrow])
    # 572 px: a phone's 354 px column shows it at 62% (text about 10 px), no sideways scroll.
    assert ALONE_CHART_SIZE == (5.2, 4.2) and page.count('width="572" height="462"') == 2
    assert 0.6 * 572 <= 354
    # Four long entries in two columns are wider than the plot: one column below it, at the
    # size of the tick labels. One entry fits: it stays where it was.
    assert wide.get_legend() is None and len(wide.figure.legends) == 1
    below = wide.figure.legends[0]
    lefts = {round(text.get_window_extent().x0) for text in below.get_texts()}
    assert len(below.get_texts()) == 4 and len(lefts) == 1  # one column
    assert below.get_texts()[0].get_fontsize() == wide.xaxis.get_ticklabels()[0].get_fontsize() > 8
    assert narrow.get_legend() is not None and not narrow.figure.legends
    # The page keeps a lone chart at its drawn size (not blown up to the page's width).
    css = files("rxrepurchase").joinpath("templates/rxreport/report.css").read_text(encoding="utf-8")
    assert ".rx-charts img:only-child { flex: 0 1 auto; }" in css
