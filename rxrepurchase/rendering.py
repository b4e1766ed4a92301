"""HTML of report sections from the Jinja templates in ``rxrepurchase/templates/sections``.

Templates are autoescaped: every figure, name and id that reaches them is data (see the house
rules), so nothing is inserted into HTML unescaped.

Charts that belong together (cohort retention and spend, ...) are drawn as separate figures
(:func:`chart_axes`) and shown side by side by :func:`charts_html`, in a box that wraps: on a
phone they stack, each the width of the screen, instead of one wide image shrunk until its
text is a few pixels high.
"""

from __future__ import annotations

import base64
import io
import itertools
from functools import cache

import jinja2

__all__ = ["CHART_SIZE", "chart_axes", "charts_html", "render_section"]

CHART_SIZE: tuple[float, float] = (4.8, 3.4)
"""Inches of one chart of a group: 528 x 374 px at the reports' 110 dpi; two fit side by side
on a desktop page, and one fills a phone's width at about 70% of its size (10-point labels
stay about 10 px high)."""


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
    text is its chart's title. The figures are closed, so a notebook does not show them a
    second time."""
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
    width, and crowded category labels on the x axis turn 30 degrees instead of overlapping."""
    ax.title.set_wrap(True)
    # Lays the figure out (text sizes) without rasterizing it: savefig draws it once, after.
    ax.figure.draw_without_rendering()
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    boxes = sorted((label.get_window_extent() for label in labels), key=lambda b: b.x0)
    if any(left.x1 > right.x0 for left, right in itertools.pairwise(boxes)):
        for label in labels:
            label.set_rotation(30)
            label.set_horizontalalignment("right")
