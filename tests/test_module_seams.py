"""Modules share helpers through public names only (issue 12, item 6).

An ``ast`` scan of the package: no module imports another module's ``_private`` name or reads
it as an attribute (``metrics._as_list``), and every private attribute of a third-party object
the package touches is listed below, so a new one is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rxrepurchase"

# Private names of other libraries the package uses, each with why.
THIRD_PARTY_PRIVATE = {
    "_find_backend",  # ibis: the backend an expression is bound to (no public accessor)
    "_session",  # ibis' PySpark backend: the SparkSession, to register Arrow frames
    "_negative_log_likelihood",  # lifetimes: a fit's likelihood at given parameters
    "_conditional_log_likelihood",  # lifetimes: Gamma-Gamma's likelihood, likewise
}
# Helper columns of the readers' Ibis tables that core.rules reads as attributes (``t._pos``):
# data shared through the tables, not Python names.
PRIVATE_COLUMNS = {
    "_pos",  # loading: a frame row's position, for the quality report's lines
    "_row",  # engine: a file's row number, for the rows the row rules exclude
}


def _is_private(name: str) -> bool:
    return len(name) > 1 and name.startswith("_") and not name.startswith("__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module of a ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
    return ".".join([*base, *([node.module] if node.module else [])])


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _defined(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, assignments at any level, and
    attributes it assigns (``self._x = ...``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)  # dataclass fields set by keyword, e.g. Keys(_x=...)
    return {n for n in names if _is_private(n)}


def _uses(name: str, tree: ast.Module) -> list[tuple[int, str, str | None]]:
    """(line, private name, the package module it is taken from, or None when unknown)."""
    aliases: dict[str, str] = {}  # local name -> package module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rxrepurchase"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "rxrepurchase"
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(name, node)
            if source.startswith("rxrepurchase"):
                for a in node.names:
                    if _is_private(a.name):
                        found.append((node.lineno, a.name, source))
                    aliases[a.asname or a.name] = f"{source}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.ctx, ast.Load):
            value = node.value.id if isinstance(node.value, ast.Name) else None
            if value in ("self", "cls"):  # a class's own members, or its base's protected ones
                continue
            found.append((node.lineno, node.attr, aliases.get(value)))
    return found


def private_uses() -> list[str]:
    """Every use of another module's private name, and every unlisted third-party one."""
    modules = _modules()
    defined = {name: _defined(tree) for name, tree in modules.items()}
    problems = []
    for name, tree in modules.items():
        for line, attr, owner in _uses(name, tree):
            where = f"{name.replace('.', '/')}.py:{line}"
            if owner is not None and owner != name:
                problems.append(f"{where}: {owner}.{attr}")
            elif owner is None and attr not in defined[name] | PRIVATE_COLUMNS:
                others = sorted(m for m, names in defined.items() if attr in names)
                if others:
                    problems.append(f"{where}: {attr} (private name of {', '.join(others)})")
                elif attr not in THIRD_PARTY_PRIVATE:
                    problems.append(f"{where}: {attr} (third-party private, not listed)")
    return problems


def test_no_module_uses_another_modules_private_names():
    assert private_uses() == []


def test_listed_privates_are_still_used():
    used = {attr for name, tree in _modules().items() for _, attr, owner in _uses(name, tree)
            if owner is None}  # fmt: skip
    assert THIRD_PARTY_PRIVATE | PRIVATE_COLUMNS <= used


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("from rxrepurchase import metrics\nmetrics._ratio(1, 2)\n", "rxrepurchase.metrics._ratio"),
        ("from rxrepurchase.metrics import _ratio\n", "rxrepurchase.metrics._ratio"),
        ("from .rfm import _as_date\n", "rxrepurchase.rfm._as_date"),
        ("import rxrepurchase.engine as e\ne._quote('x')\n", "rxrepurchase.engine._quote"),
        ("x = object()\nx._private_thing\n", "_private_thing (third-party private, not listed)"),
    ],
)
def test_scan_finds_private_uses(source, problem):
    tree = ast.parse(source)
    uses = _uses("rxrepurchase.probe", tree)
    assert uses, source
    line, attr, owner = uses[0]
    shown = f"{owner}.{attr}" if owner else f"{attr} (third-party private, not listed)"
    assert shown == problem
