"""Old keyword and attribute names accepted for a while after a rename (see the vocabulary of
``docs/architecture.md``).

A renamed keyword of a public function keeps working: the call warns with a ``FutureWarning``
that names the new keyword, and the value goes on under the new name. Giving the old and the
new name together is an error, so nothing is silently overwritten. An old keyword that held
several values (``horizons=(7, 14)``) may map to as many new ones, which its value is unpacked
into.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

__all__ = ["renamed_attribute", "renamed_items", "renamed_keywords"]

F = TypeVar("F", bound=Callable)


def renamed_keywords(**renames: str | tuple[str, ...]) -> Callable[[F], F]:
    """Decorator: ``@renamed_keywords(within="horizon_days")`` accepts ``within=`` as the old
    name of ``horizon_days=``; ``@renamed_keywords(horizons=("soon_days", "horizon_days"))``
    accepts ``horizons=(7, 14)`` as ``soon_days=7, horizon_days=14``.

    Raises
    ------
    TypeError
        A call gives both the old and a new name, or an old value that does not unpack into
        its new names.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            kwargs = renamed_items(kwargs, renames, lambda names: func.__name__ + "("
                                   + ", ".join(f"{n}=..." for n in names) + ")")
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def renamed_items(items: dict, renames: dict[str, str | tuple[str, ...]],
                  spell: Callable[[tuple[str, ...]], str]) -> dict:
    """``items`` (keyword arguments, notebook parameters) with each old name of ``renames``
    replaced by its new name(s), warning with a ``FutureWarning`` for each; ``spell(names)``
    writes names as the caller knows them (``f(a=...)``, a notebook parameter).

    Raises
    ------
    TypeError
        The old and a new name are both given, or an old value does not unpack into its new
        names.
    """
    items = dict(items)
    for old, new in renames.items():
        if old not in items:
            continue
        names = (new,) if isinstance(new, str) else new
        if any(n in items for n in names):
            raise TypeError(f"got {spell((old,))} and {spell(names)}; {old} is the old name of "
                            f"{', '.join(names)}, give only {', '.join(names)}")
        warnings.warn(f"{spell((old,))} is renamed {spell(names)}; the old name will stop working",
                      FutureWarning, stacklevel=3)
        value = items.pop(old)
        if isinstance(new, str):
            items[new] = value
            continue
        values = tuple(value)
        if len(values) != len(names):
            raise TypeError(f"{spell((old,))} takes {len(names)} values "
                            f"({', '.join(names)}), got {value!r}")
        items.update(zip(names, values, strict=True))
    return items


def renamed_attribute(old: str, new: str) -> property:
    """A read-only property ``old`` of a class whose attribute is now ``new``: reading it warns
    with a ``FutureWarning`` naming ``new`` and gives ``new``'s value. Use in the class body:
    ``within = renamed_attribute("within", "horizon_days")``."""

    def read(self):
        warnings.warn(f"{type(self).__name__}.{old} is renamed {type(self).__name__}.{new}; the "
                      f"old name will stop working", FutureWarning, stacklevel=2)  # fmt: skip
        return getattr(self, new)

    return property(read, doc=f"Old name of ``{new}`` (read-only; warns).")
