"""Optional targets per store or for the chain, and how far each figure is from its target.

A chain sets its targets in the scheduled run's config (``[targets]`` of ``chain.toml``, see
``docs/scheduled-runs.md``)::

    [targets.chain]                 # the chain as a whole
    user_repurchase_rate = 0.70     # last 90 days (the report period), as a fraction
    [targets.store]                 # every store, unless it has its own
    user_repurchase_rate = 0.58
    [targets.stores.S01]            # one store
    user_repurchase_rate = 0.60
    active_members = 1500

Every target is a floor over the report period (``period_days``, 90 by default): the figure
should be at least the target. The store page shows its store's targets with its progress,
the chain overview the chain's and every store's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from rxrepurchase.errors import TargetsError

__all__ = [
    "TARGET_MEASURES",
    "TargetsError",
    "chain_and_store_progress",
    "read_targets",
    "target_progress",
    "targets_for_store",
]

TARGET_MEASURES: dict[str, str] = {
    "user_repurchase_rate": "rate",
    "order_repurchase_rate": "rate",
    "active_members": "count",
    "revenue": "money",
}
"""Figures a target can be set for (names of the headline figures), and their kind: a rate is
a fraction between 0 and 1; a count or an amount is at least 0."""

_LEVELS = ("chain", "store", "stores")




def _measures(values, where: str) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise TargetsError(f"{where}: expected a table of targets, e.g. "
                           f"[{where}] user_repurchase_rate = 0.6")
    out = {}
    for key, value in values.items():
        name = f"{where}.{key}"
        if key not in TARGET_MEASURES:
            raise TargetsError(f"{name}: unknown figure; targets can be set for "
                               f"{', '.join(TARGET_MEASURES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TargetsError(f"{name}: expected a number, got {value!r}")
        kind = TARGET_MEASURES[key]
        if kind == "rate" and not 0 <= value <= 1:
            hint = f" (write {value / 100:g} for {value:g}%)" if 1 < value <= 100 else ""
            raise TargetsError(f"{name}: a rate is a fraction between 0 and 1, got {value!r}{hint}")
        if kind != "rate" and value < 0:
            raise TargetsError(f"{name}: must be at least 0, got {value!r}")
        out[key] = float(value)
    return out


def read_targets(raw: Mapping | None, *, where: str = "targets",
                 stores: list[str] | None = None) -> dict:
    """Validate the ``[targets]`` table of a config.

    Parameters
    ----------
    raw : mapping or None
        ``{"chain": {figure: value}, "store": {...}, "stores": {store_id: {...}}}``, each part
        optional (None: no targets).
    where : str
        The table's name in the messages (e.g. ``"chain.toml: targets"``).
    stores : list of str, optional
        The chain's store ids; a ``stores`` entry for another store is refused.

    Returns
    -------
    dict
        ``{"chain": {...}, "store": {...}, "stores": {store_id: {...}}}`` with float values.

    Raises
    ------
    TargetsError
        Unknown part, unknown figure, a value that is not a number, a rate outside 0–1, a
        negative count or amount, an unknown store; the message names the key.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise TargetsError(f"{where}: expected a table")
    unknown = sorted(set(raw) - set(_LEVELS))
    if unknown:
        raise TargetsError(f"{where}.{unknown[0]}: unknown part; use {where}.chain, "
                           f"{where}.store (every store) or {where}.stores.<store_id>")
    per_store = raw.get("stores", {})
    if not isinstance(per_store, Mapping):
        raise TargetsError(f"{where}.stores: expected tables [{where}.stores.<store_id>]")
    if stores is not None:
        missing = sorted(set(per_store) - set(stores))
        if missing:
            raise TargetsError(f"{where}.stores.{missing[0]}: no such store in the stores table")
    return {
        "chain": _measures(raw.get("chain", {}), f"{where}.chain"),
        "store": _measures(raw.get("store", {}), f"{where}.store"),
        "stores": {str(s): _measures(v, f"{where}.stores.{s}") for s, v in per_store.items()},
    }


def targets_for_store(targets: Mapping | None, store_id: str) -> dict[str, float]:
    """A store's targets: its own (``stores.<store_id>``) over every store's (``store``)."""
    if not targets:
        return {}
    return {**targets.get("store", {}), **targets.get("stores", {}).get(str(store_id), {})}


def target_progress(figures: Mapping, targets: Mapping[str, float]) -> pd.DataFrame:
    """Each target with the figure reached and how far from it.

    Parameters
    ----------
    figures : mapping
        The figures (e.g. :func:`rxrepurchase.report_data.store_headline`, a row of
        :func:`rxrepurchase.chain_view.chain_totals`), keyed by :data:`TARGET_MEASURES` names.
    targets : mapping
        ``figure -> target`` (one level of :func:`read_targets`).

    Returns
    -------
    DataFrame
        ``measure, kind, target, actual, gap`` (actual - target: points as a fraction for a
        rate), ``progress`` (actual / target; NaN for a zero target), ``met`` (actual >=
        target; False when the figure is missing), in :data:`TARGET_MEASURES` order.
    """
    rows = []
    for measure, kind in TARGET_MEASURES.items():
        if measure not in targets:
            continue
        target = float(targets[measure])
        value = figures.get(measure)
        actual = float(value) if value is not None and pd.notna(value) else float("nan")
        rows.append({"measure": measure, "kind": kind, "target": target, "actual": actual,
                     "gap": actual - target,
                     "progress": actual / target if target else float("nan"),
                     "met": bool(actual >= target) if not math.isnan(actual) else False})
    return pd.DataFrame(rows, columns=["measure", "kind", "target", "actual", "gap", "progress",
                                       "met"])


def chain_and_store_progress(targets: Mapping | None, chain_figures: Mapping,
                             store_figures: Mapping[str, Mapping | None]
                             ) -> list[tuple[str, pd.DataFrame]]:
    """The chain overview's targets: ``("", progress)`` of the chain (``targets["chain"]``
    against ``chain_figures``), then ``(store_id, progress)`` of each store of
    ``store_figures`` (``store_id -> figures``, None for a failed report: its figures are
    missing) that has targets. Parts without targets are left out."""
    out = []
    if targets and targets.get("chain"):
        out.append(("", target_progress(chain_figures, targets["chain"])))
    for store_id, figures in store_figures.items():
        own = targets_for_store(targets, store_id)
        if own:
            out.append((str(store_id), target_progress(figures or {}, own)))
    return out
