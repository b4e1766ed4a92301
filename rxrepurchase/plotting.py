"""Matplotlib set-up for reports: a CJK-capable font so Chinese labels never show empty boxes.

Call :func:`configure_matplotlib` once (the report notebooks do) before drawing. It keeps
matplotlib's Latin font first and adds the first installed CJK font as the fallback for every
glyph the Latin font lacks (matplotlib >= 3.6 falls back per glyph when ``font.family`` lists several families).
"""

from __future__ import annotations

import warnings

import matplotlib
from matplotlib import font_manager

__all__ = [
    "CJK_FONT_CANDIDATES",
    "CJKFontWarning",
    "configure_matplotlib",
    "find_cjk_font",
    "font_covers",
]

CJK_FONT_CANDIDATES: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "SimHei",
    "Noto Sans CJK JP",
    "Noto Serif CJK SC",
    "AR PL UMing CN",
)
"""Families tried in order; simplified-Chinese sans-serif first."""

_PROBE = "复购率会员补贴"


class CJKFontWarning(UserWarning):
    """No CJK font is installed: Chinese text in charts will show as empty boxes."""


def font_covers(family: str, text: str) -> bool:
    """True if the font file matplotlib resolves for ``family`` has a glyph for every
    character of ``text`` (spaces excluded)."""
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(
        font_manager.FontProperties(family=family), fallback_to_default=False
    )
    charmap = FT2Font(path).get_charmap()
    return all(ord(ch) in charmap for ch in text if not ch.isspace())


def find_cjk_font(candidates: tuple[str, ...] = CJK_FONT_CANDIDATES) -> str | None:
    """Name of the first installed font family in ``candidates`` that covers Chinese text,
    or None."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in candidates:
        if family in installed and font_covers(family, _PROBE):
            return family
    return None


def configure_matplotlib(*, dpi: int = 110, style: bool = True) -> str | None:
    """Set matplotlib up for report charts (CJK font fallback, sizes, a quiet style).

    Parameters
    ----------
    dpi : int
        Resolution of figures shown inline (and embedded in the HTML reports).
    style : bool
        Also apply the report style (no top/right spines, light grid).

    Returns
    -------
    str or None
        The CJK font family used, None when none is installed (a :class:`CJKFontWarning` is
        issued then, naming the package to install).
    """
    cjk = find_cjk_font()
    rc = matplotlib.rcParams
    latin = [f for f in rc["font.sans-serif"] if f not in CJK_FONT_CANDIDATES]
    if cjk is None:
        warnings.warn(
            "no CJK font found for matplotlib: Chinese text in charts will show as empty "
            "boxes. Install one (Debian/Ubuntu: apt-get install fonts-noto-cjk, or run "
            "`make setup`), then clear matplotlib's font cache (~/.cache/matplotlib).",
            CJKFontWarning,
            stacklevel=2,
        )
    # A list of families (not the generic "sans-serif") makes matplotlib fall back per glyph.
    rc["font.family"] = (latin[:1] or ["DejaVu Sans"]) + ([cjk] if cjk else [])
    rc["figure.dpi"] = dpi
    rc["savefig.dpi"] = dpi
    # Labels come from data (store ids, product names): a "$" must print, not start math.
    rc["text.parse_math"] = False
    if style:
        rc["axes.spines.top"] = False
        rc["axes.spines.right"] = False
        rc["axes.grid"] = True
        rc["grid.alpha"] = 0.3
        rc["axes.titlesize"] = 12
        rc["axes.titleweight"] = "bold"
        rc["figure.figsize"] = (8.0, 3.6)
        rc["figure.constrained_layout.use"] = True
    return cjk

