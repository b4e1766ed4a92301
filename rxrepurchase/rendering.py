"""HTML of report sections from the Jinja templates in ``rxrepurchase/templates/sections``.

Templates are autoescaped: every figure, name and id that reaches them is data (see the house
rules), so nothing is inserted into HTML unescaped.

Charts that belong together (cohort retention and spend, ...) are drawn as separate figures
(:func:`chart_axes`) and shown side by side by :func:`charts_html`, in a box that wraps: on a
phone they stack, each the width of the screen, instead of one wide image shrunk until its
text is a few pixels high. A chart shown on its own (the monthly trend, the refills coming due)
goes through the same box at :data:`ALONE_CHART_SIZE`, so it too fits a phone without a
sideways scroll.
"""

from __future__ import annotations

import base64
import io
import itertools
from functools import cache

import jinja2

__all__ = ["ALONE_CHART_SIZE", "CHART_SIZE", "chart_axes", "charts_html", "render_section"]

CHART_SIZE: tuple[float, float] = (4.8, 3.4)
"""Inches of one chart of a group: 528 x 374 px at the reports' 110 dpi; two fit side by side
on a desktop page, and one fills a phone's width at about 70% of its size (10-point labels
stay about 10 px high)."""

ALONE_CHART_SIZE: tuple[float, float] = (5.2, 4.2)
"""Inches of a chart shown on its own: 572 x 462 px at 110 dpi. A phone's column (354 px at
390 px) shows it at 62% of its size, about the same as a chart of a group; taller than those,
so that a legend moved below the plot (see :func:`charts_html`) leaves the plot its height."""


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rxrepurchase", "templates/sections"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render_section(name: str, **context) -> str:
    """Render ``templates/sections/<name>.html.j2`` with ``context`` (autoescaped)."""
    return _environment().get_template(f"{name}.html.j2").render(**context)


def chart_axes(n: int = 2, *, size: tuple[float, float] = CHART_SIZE) -> list:
    """``n`` axes, each on a figure of its own of ``size`` inches, for :func:`charts_html`."""
    import matplotlib.pyplot as plt

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return [plt.figure(figsize=size).add_subplot() for _ in range(n)]


def charts_html(axes) -> str:
    """The figures of ``axes`` as embedded PNG images in one box that wraps (``rx-charts``):
    side by side where the page is wide enough, stacked on a phone; each image's alternative
    text is its chart's title. A title wraps to its figure, crowded x labels turn, and a legend
    wider than its plot goes below it, one entry a line. The figures are closed, so a notebook
    does not show them a second time."""
    import matplotlib.pyplot as plt

    images = []
    for ax in axes:
        _fit_labels(ax)
        buffer = io.BytesIO()
        ax.figure.savefig(buffer, format="png")
        plt.close(ax.figure)
        png = buffer.getvalue()
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        images.append({"src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                       "width": width, "height": height, "alt": ax.get_title()})
    return render_section("charts", images=images)


def _fit_labels(ax) -> None:
    """A chart of a group is narrower than a page-wide one: its title wraps to the figure's
    width, crowded category labels on the x axis turn 30 degrees instead of overlapping, and a
    legend wider than the plot (drawn for a page-wide chart) goes below it in one column."""
    ax.title.set_wrap(True)
    legend = ax.get_legend()
    if legend is not None:  # measured apart: a legend wider than the figure collapses its layout
        legend.set_in_layout(False)
    # Lays the figure out (text sizes) without rasterizing it: savefig draws it once, after.
    ax.figure.draw_without_rendering()
    if legend is not None and legend.get_window_extent().width > ax.get_window_extent().width:
        legend.remove()
        # Below the plot, in the room the (constrained) layout keeps for it: the size of the
        # tick labels, not the small print that had to fit inside the plot.
        ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1,
                         fontsize=ax.xaxis.get_ticklabels()[0].get_fontsize(), frameon=False)
    elif legend is not None:
        legend.set_in_layout(True)
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    boxes = sorted((label.get_window_extent() for label in labels), key=lambda b: b.x0)
    if any(left.x1 > right.x0 for left, right in itertools.pairwise(boxes)):
        for label in labels:
            label.set_rotation(30)
            label.set_horizontalalignment("right")
