"""HTML of report sections from the Jinja templates in ``rxrepurchase/templates/sections``.

Templates are autoescaped: every figure, name and id that reaches them is data (see the house
rules), so nothing is inserted into HTML unescaped.
"""

from __future__ import annotations

from functools import cache

import jinja2

__all__ = ["render_section"]


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
