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
