"""Old keyword names accepted for a while after a rename (see the vocabulary of
``docs/architecture.md``).

A renamed keyword of a public function keeps working: the call warns with a ``FutureWarning``
that names the new keyword, and the value goes on under the new name. Giving the old and the
new name together is an error, so nothing is silently overwritten.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

__all__ = ["renamed_keywords"]

F = TypeVar("F", bound=Callable)


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Decorator: ``@renamed_keywords(within="horizon_days")`` accepts ``within=`` as the old
    name of ``horizon_days=``.

    Raises
    ------
    TypeError
        A call gives both the old and the new name.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{func.__name__}() got {old}= and {new}=; {old}= is the old "
                                    f"name of {new}=, give only {new}=")  # fmt: skip
                warnings.warn(f"{func.__name__}({old}=...) is renamed {func.__name__}({new}=...); "
                              f"the old name will stop working", FutureWarning, stacklevel=2)  # fmt: skip
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
