"""What each report notebook reads: one store's slice, and the chain overview's tables.

A report run (:func:`rxrepurchase.reporting.run_reports`) loads and validates the chain once,
computes the chain-wide figures once (:func:`rxrepurchase.report_data.chain_wide`), and writes:

- per store, :func:`store_slice` as Parquet files in ``stores/<name>/slice/``
  (:func:`write_store_slice`): the store's own orders, order lines and members, the
  chain-wide per-member results of those members (cohort labels, refill predictions,
  adherence, list check, last order anywhere in the chain), the store's campaign effects,
  the chain medians its headline compares against, and its rows of the rate tables computed
  for every store at once (:func:`~rxrepurchase.report_data.store_tables`). Another store's
  id is blanked in it
  (a member's home store, a refill's last store) and no other store's member is in it, so a
  store's kernel holds that store's data only and its memory follows the store, not the
  chain;
- for the chain overview, :func:`chain_tables` in ``chain/tables/`` (:func:`write_chain_tables`).

The notebooks read them with :func:`load_store` and :func:`load_chain_tables`; run by hand
(no slice given), they read the export folder instead. The layout is in ``docs/reports.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from rxrepurchase.errors import SliceError
from rxrepurchase.outputs import write_atomic
from rxrepurchase.renames import renamed_keywords

if TYPE_CHECKING:
    from rxrepurchase.loading import Chain, DataQualityReport

__all__ = [
    "SLICE_VERSION",
    "ChainTables",
    "SliceError",
    "chain_tables",
    "load_chain_tables",
    "load_store",
    "load_store_page",
    "read_chain_tables",
    "read_store_page",
    "read_store_slice",
    "store_slice",
    "write_chain_tables",
    "write_store_page",
    "write_store_slice",
]

SLICE_VERSION = 1
"""Version of the slice layout; readers refuse other versions."""
META = "slice.json"
PAGE = "page.json"
"""The store page's file in a slice folder (its tables are ``page_<n>.parquet`` beside it)."""
_PAGE_CLASSES = ("StorePage", "StoreModels", "RefillSection")
"""The classes a page file may hold (all of :mod:`rxrepurchase.report_data`)."""

_CHAIN_FRAMES = ("stores", "members", "orders", "order_lines", "campaigns", "campaign_members")
_SHARED_FRAMES = ("members", "refill_predictions", "refill_adherence", "refill_lift",
                  "refill_list_check", "last_orders", "monthly_medians", "campaign_effects")




# --------------------------------------------------------------------------- in memory


@renamed_keywords(window_days="outcome_days")
def store_slice(chain: Chain, shared, store_id: str, *, outcome_days: int = 30):
    """One store's share of ``chain`` and of its chain-wide figures ``shared``.

    Parameters
    ----------
    chain : Chain
        The whole chain.
    shared : ChainWide
        :func:`rxrepurchase.report_data.chain_wide` of ``chain``.
    store_id : str
    outcome_days : int
        Follow-up of the store's campaign effects (:func:`~rxrepurchase.report_data.campaign_effects`).

    Returns
    -------
    (Chain, ChainWide)
        The store's chain (:meth:`Chain.for_store`, with the chain's whole campaigns table and
        its data-quality issues counted for the store) and ``shared`` restricted to the
        store's members (``store_id`` set). Members are those who ordered at the store or
        belong to it; their chain-wide figures stay as computed on the whole chain. Another
        store's id is blanked (``<NA>``) wherever it would appear.
    """
    from rxrepurchase.loading import isin
    from rxrepurchase.report_data import campaign_effects

    shared.check(chain)
    store = chain.for_store(store_id)
    ids = store.members["member_id"]
    foreign = store.members["home_store_id"].ne(store_id).fillna(False).astype(bool)
    members = store.members.assign(home_store_id=store.members["home_store_id"].mask(foreign))
    mine = replace(store, members=members, campaigns=chain.campaigns,
                   quality=_store_quality(chain.quality, store_id))

    def own_homes(table: pd.DataFrame) -> pd.DataFrame:
        out = table[table["home_store_id"] == store_id].reset_index(drop=True)
        out.attrs = dict(table.attrs)
        return out

    cohorts = shared.members[isin(shared.members["member_id"], ids)].reset_index(drop=True)
    cohorts.attrs = {**shared.members.attrs,
                     "calibration": _store_calibration(shared.members.attrs["calibration"],
                                                       store_id),
                     "chain_cohort_counts": shared.members.attrs.get("chain_cohort_counts")
                     or shared.members["subsidy_cohort"].value_counts().astype(int).to_dict()}
    predictions = own_homes(shared.refill_predictions)
    predictions["last_store_id"] = predictions["last_store_id"].where(
        predictions["last_store_id"] == store_id)
    effects = campaign_effects(chain, store_id, outcome_days=outcome_days)
    last = shared.last_orders
    by_store = None
    if shared.by_store is not None:  # the store's rows of the tables of every store
        by_store = {}
        for name, table in shared.by_store.items():
            by_store[name] = table[table["store_id"] == store_id].reset_index(drop=True)
            by_store[name].attrs = dict(table.attrs)
    return mine, replace(
        shared,
        store_id=store_id,
        members=cohorts,
        refill_predictions=predictions,
        refill_adherence=own_homes(shared.refill_adherence),
        refill_list_check=own_homes(shared.refill_list_check),
        last_orders=last[isin(last["member_id"], ids)].reset_index(drop=True),
        campaign_effects=effects,
        by_store=by_store,
    )


def _store_quality(quality: DataQualityReport, store_id: str) -> DataQualityReport:
    """The issues that concern the store's rows, counted for the store only."""
    issues = [replace(i, rows=i.by_store[store_id], by_store={store_id: i.by_store[store_id]})
              for i in quality.issues if i.by_store.get(store_id)]
    return replace(quality, issues=issues)


def _store_calibration(calibration, store_id: str):
    """The calibration with the store's own routine discounts and the chain's per month."""
    routine = calibration.routine
    if "store_id" not in routine.columns:
        return calibration
    own = routine[routine["store_id"] == store_id]
    # routine_for falls back on each month's chain routine: keep one row per month for it.
    months = routine.groupby("month", sort=True)["chain_month_routine"].first()
    missing = months[~months.index.isin(own["month"])]
    filler = pd.DataFrame({"month": missing.index, "chain_month_routine": missing.to_numpy(),
                           "routine_discount": missing.to_numpy(), "level": "chain_month"})
    filler = filler.reindex(columns=routine.columns)  # no store, no order count: missing
    table = pd.concat([own, filler], ignore_index=True) if len(filler) else own
    return replace(calibration, routine=table.sort_values("month", ignore_index=True))


@dataclass
class ChainTables:
    """What the chain overview shows, computed on the whole chain.

    Attributes
    ----------
    as_of : Timestamp
        The analysis date.
    source : Path or None
        The export folder.
    stores : DataFrame
        :func:`rxrepurchase.report_data.chain_comparison`: one row per store (the ranking).
    totals, trend : DataFrame
        :func:`rxrepurchase.chain_view.chain_totals` and ``chain_trend``.
    attention : DataFrame
        :func:`rxrepurchase.chain_view.stores_needing_attention`.
    vs_stores : dict
        :func:`rxrepurchase.chain_view.chain_vs_store_rates`: why the chain's rate differs
        from the stores'.
    effects : DataFrame or None
        :func:`rxrepurchase.report_data.campaign_effects` of the chain.
    settings : dict
        ``period_days``, ``gross_margin``, ``min_active_members`` they were computed with.
    """

    as_of: pd.Timestamp
    source: Path | None
    stores: pd.DataFrame
    totals: pd.DataFrame
    trend: pd.DataFrame
    attention: pd.DataFrame
    vs_stores: dict
    effects: pd.DataFrame | None
    settings: dict

    def check(self, **settings) -> None:
        """Raise :class:`SliceError` unless computed with these settings."""
        for key, wanted in settings.items():
            if self.settings.get(key) != wanted:
                raise SliceError(f"the chain tables were computed with {key}="
                                 f"{self.settings.get(key)}, not {wanted}")


def chain_tables(chain: Chain, shared=None, *, period_days: int = 90, gross_margin: float = 0.3,
                 min_active_members: int | None = None) -> ChainTables:
    """Compute :class:`ChainTables` (``shared``: :func:`~rxrepurchase.report_data.chain_wide`
    of ``chain`` with the same settings, computed here when not given)."""
    from rxrepurchase import report_data as rd
    from rxrepurchase.chain_view import (
        chain_totals,
        chain_trend,
        chain_vs_store_rates,
        stores_needing_attention,
    )

    if min_active_members is None:
        min_active_members = rd.MIN_ACTIVE_MEMBERS
    if shared is None:
        shared = rd.chain_wide(chain, period_days=period_days,
                               min_active_members=min_active_members)
    stores = rd.chain_comparison(chain, period_days=period_days, gross_margin=gross_margin,
                                 min_active_members=min_active_members, shared=shared)
    return ChainTables(
        as_of=chain.as_of, source=chain.source, stores=stores,
        totals=chain_totals(chain.orders, chain.as_of, period_days=period_days),
        trend=chain_trend(chain.orders, chain.as_of),
        attention=stores_needing_attention(chain.orders, stores, chain.as_of,
                                           period_days=period_days,
                                           min_active_members=min_active_members),
        vs_stores=chain_vs_store_rates(chain.orders, chain.as_of, period_days=period_days,
                                       min_active_members=min_active_members),
        effects=rd.campaign_effects(chain),
        settings={"period_days": period_days, "gross_margin": gross_margin,
                  "min_active_members": min_active_members},
    )


# --------------------------------------------------------------------------- on disk


def _encode(value):
    """A JSON value for an ``attrs`` or metadata entry (Timestamps, dataclasses, numpy)."""
    if isinstance(value, pd.Timestamp):
        return {"__timestamp__": value.isoformat()}
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        raise SliceError(f"cannot store {type(value).__name__} as JSON")
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _decode(value):
    if isinstance(value, dict):
        if "__timestamp__" in value:
            return pd.Timestamp(value["__timestamp__"])
        if "__path__" in value:
            return Path(value["__path__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _write_frames(folder: Path, frames: dict[str, pd.DataFrame | None], prefix: str) -> dict:
    """Write each frame as ``<prefix><name>.parquet``; return their attrs (JSON), None = absent."""
    attrs = {}
    for name, frame in frames.items():
        if frame is None:
            attrs[name] = None
            continue
        out = frame.copy(deep=False)
        out.attrs = {}  # Parquet's own metadata cannot hold Timestamps: slice.json keeps them
        out.to_parquet(folder / f"{prefix}{name}.parquet", index=False)
        attrs[name] = _encode(frame.attrs)
    return attrs


def _read_frames(folder: Path, attrs: dict, prefix: str) -> dict[str, pd.DataFrame | None]:
    frames = {}
    for name, saved in attrs.items():
        if saved is None:
            frames[name] = None
            continue
        frame = pd.read_parquet(folder / f"{prefix}{name}.parquet")
        frame.attrs = _decode(saved)
        frames[name] = frame
    return frames


def _read_meta(folder: Path, kind: str, name: str = META) -> dict:
    path = folder / name
    if not path.is_file():
        raise SliceError(f"{folder} is not a {kind} folder: it has no {name}")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("kind") != kind or meta.get("version") != SLICE_VERSION:
        raise SliceError(f"{path} is a {meta.get('kind')} of layout version "
                         f"{meta.get('version')}, not a {kind} of version {SLICE_VERSION}; "
                         "run the reports again")
    return meta


def write_store_slice(chain: Chain, shared, folder: str | os.PathLike) -> Path:
    """Write a store's slice (:func:`store_slice`'s pair) into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cal = shared.members.attrs["calibration"]
    cohorts = shared.members.copy(deep=False)
    cohorts.attrs = {k: v for k, v in shared.members.attrs.items()
                     if k not in ("calibration", "rules")}
    q = chain.quality
    meta = {
        "kind": "store slice",
        "version": SLICE_VERSION,
        "store_id": shared.store_id,
        "as_of": _encode(chain.as_of),
        "source": None if chain.source is None else str(chain.source),
        "chain": _write_frames(folder, {n: getattr(chain, n) for n in _CHAIN_FRAMES}, "chain_"),
        "quality": {
            "issues": [_encode(dataclasses.asdict(i)) for i in q.issues],
            "rows_read": q.rows_read, "rows_loaded": q.rows_loaded,
            "renamed_columns": q.renamed_columns,
            "ordered_range": _encode(q.ordered_range),
        },
        "rules": dataclasses.asdict(shared.rules),
        "calibration": _encode({f.name: getattr(cal, f.name) for f in dataclasses.fields(cal)
                                if f.name != "routine"}),
        "headline_medians": shared.headline_medians,
        "shared": _write_frames(folder, {**{n: getattr(shared, n) for n in _SHARED_FRAMES},
                                         "members": cohorts, "routine": cal.routine}, "shared_"),
        "by_store": None if shared.by_store is None else _write_frames(folder, shared.by_store,
                                                                        "by_store_"),
    }
    write_atomic(folder / META, json.dumps(meta, ensure_ascii=False, indent=1))
    return folder


def read_store_slice(folder: str | os.PathLike):
    """Read what :func:`write_store_slice` wrote: ``(chain, shared)`` of one store.

    Raises
    ------
    SliceError
        ``folder`` holds no store slice of this layout version.
    """
    from rxrepurchase.cohorts import CohortRules, SubsidyCalibration
    from rxrepurchase.loading import Chain, DataQualityReport, QualityIssue
    from rxrepurchase.report_data import ChainWide

    folder = Path(folder)
    meta = _read_meta(folder, "store slice")
    frames = _read_frames(folder, meta["chain"], "chain_")
    q = meta["quality"]
    quality = DataQualityReport(
        issues=[QualityIssue(**_decode(i)) for i in q["issues"]], rows_read=q["rows_read"],
        rows_loaded=q["rows_loaded"], renamed_columns=q["renamed_columns"],
        ordered_range=None if q["ordered_range"] is None else tuple(_decode(q["ordered_range"])))
    chain = Chain(**frames, as_of=_decode(meta["as_of"]), quality=quality,
                  source=None if meta["source"] is None else Path(meta["source"]))
    shared = _read_frames(folder, meta["shared"], "shared_")
    by_store = None if meta["by_store"] is None else _read_frames(folder, meta["by_store"],
                                                                  "by_store_")
    rules = CohortRules(**meta["rules"])
    members = shared.pop("members")
    members.attrs.update(rules=rules, calibration=SubsidyCalibration(
        routine=shared.pop("routine"), **_decode(meta["calibration"])))
    return chain, ChainWide(as_of=chain.as_of, source=chain.source, rules=rules, members=members,
                            headline_medians=meta["headline_medians"],
                            store_id=meta["store_id"], by_store=by_store, **shared)


def write_chain_tables(tables: ChainTables, folder: str | os.PathLike) -> Path:
    """Write :class:`ChainTables` into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = {n: getattr(tables, n) for n in ("stores", "totals", "trend", "attention", "effects")}
    meta = {"kind": "chain tables", "version": SLICE_VERSION, "as_of": _encode(tables.as_of),
            "source": None if tables.source is None else str(tables.source),
            "settings": tables.settings, "vs_stores": _encode(tables.vs_stores),
            "frames": _write_frames(folder, frames, "")}
    write_atomic(folder / META, json.dumps(meta, ensure_ascii=False, indent=1))
    return folder


def read_chain_tables(folder: str | os.PathLike) -> ChainTables:
    """Read what :func:`write_chain_tables` wrote."""
    folder = Path(folder)
    meta = _read_meta(folder, "chain tables")
    return ChainTables(as_of=_decode(meta["as_of"]),
                       source=None if meta["source"] is None else Path(meta["source"]),
                       settings=meta["settings"], vs_stores=_decode(meta["vs_stores"]),
                       **_read_frames(folder, meta["frames"], ""))


def _dump(value, folder: Path, files: list[str]):
    """JSON of a page value: frames go to Parquet files (index and dtypes kept, ``attrs`` in
    the JSON), the page's dataclasses field by field, Timestamps and numpy scalars as values."""
    if isinstance(value, pd.DataFrame):
        name = f"page_{len(files)}.parquet"
        files.append(name)
        out = value.copy(deep=False)
        out.attrs = {}
        out.to_parquet(folder / name)
        return {"__frame__": name, "attrs": _dump(value.attrs, folder, files)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = type(value).__name__
        if kind not in _PAGE_CLASSES:
            raise SliceError(f"a store page cannot hold a {kind}")
        return {"__page__": kind, "fields": {f.name: _dump(getattr(value, f.name), folder, files)
                                             for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {str(k): _dump(v, folder, files) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v, folder, files) for v in value]
    return _encode(value)


def _load(value, folder: Path):
    if isinstance(value, dict):
        if "__frame__" in value:
            frame = pd.read_parquet(folder / value["__frame__"])
            frame.attrs = _load(value["attrs"], folder)
            return frame
        if "__page__" in value:
            from rxrepurchase import report_data

            if value["__page__"] not in _PAGE_CLASSES:
                raise SliceError(f"{folder / PAGE} holds an unknown {value['__page__']!r}")
            cls = getattr(report_data, value["__page__"])
            return cls(**{k: _load(v, folder) for k, v in value["fields"].items()})
        return _decode({k: _load(v, folder) if isinstance(v, (dict, list)) else v
                        for k, v in value.items()})
    if isinstance(value, list):
        return [_load(v, folder) for v in value]
    return value


def write_store_page(page, folder: str | os.PathLike) -> Path:
    """Write a :class:`~rxrepurchase.report_data.StorePage` into a store's slice ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    meta = {"kind": "store page", "version": SLICE_VERSION, "page": _dump(page, folder, files)}
    write_atomic(folder / PAGE, json.dumps(meta, ensure_ascii=False, indent=1))
    return folder


def read_store_page(folder: str | os.PathLike):
    """Read what :func:`write_store_page` wrote.

    Raises
    ------
    SliceError
        ``folder`` holds no store page of this layout version.
    """
    folder = Path(folder)
    return _load(_read_meta(folder, "store page", PAGE)["page"], folder)


# --------------------------------------------------------------------------- notebooks


def _same_run(what: str, folder, as_of, day: pd.Timestamp, source: Path | None, data) -> None:
    """Refuse a slice of other data or another day than the notebook's parameters name."""
    if (as_of is not None and pd.Timestamp(as_of).normalize() != day) or (
            source is not None and data and source.resolve() != Path(data).resolve()):
        raise SliceError(f"{folder} does not hold the {what} of {data} as of {as_of}; remove "
                         "the parameter to read the export folder directly")


def load_store(data: str | os.PathLike, store_id: str, *, slice_folder: str | os.PathLike = "",
               as_of=None, encoding: str | None = None, mapping=None,
               time_zone: str | None = None):
    """What a store report notebook works on: ``(chain, shared)``.

    With ``slice_folder`` (written by the runner) the store's slice; without (an analyst
    running the notebook by hand), the whole export read with
    :func:`~rxrepurchase.loading.load_chain` and ``shared`` None (every figure is then
    computed on the whole chain).

    Raises
    ------
    SliceError
        The slice is not ``store_id``'s, or not of ``data`` as of ``as_of``.
    """
    if not slice_folder:
        from rxrepurchase.loading import load_chain

        return load_chain(data, as_of=as_of, encoding=encoding, mapping=mapping,
                          time_zone=time_zone), None
    chain, shared = read_store_slice(slice_folder)
    if shared.store_id != store_id:
        raise SliceError(f"{slice_folder} is the slice of store {shared.store_id!r}, not of "
                         f"{store_id!r}")
    _same_run("store slice", slice_folder, as_of, chain.as_of, chain.source, data)
    return chain, shared


def load_store_page(data: str | os.PathLike, store_id: str, *,
                    slice_folder: str | os.PathLike = "", as_of=None,
                    encoding: str | None = None, mapping=None, time_zone: str | None = None,
                    lang: str = "en", **settings):
    """What the store report notebook shows: the store's
    :class:`~rxrepurchase.report_data.StorePage`.

    With ``slice_folder`` (written by the runner) the page computed in the run's slice step;
    without (an analyst running the notebook by hand), computed here from the export folder
    (:func:`load_store`, then :func:`~rxrepurchase.report_data.store_page`). ``settings``:
    the keyword arguments of :func:`~rxrepurchase.report_data.store_page`.

    Raises
    ------
    SliceError
        The page is not ``store_id``'s, not of ``data`` as of ``as_of``, or was computed in
        another language or with other settings.
    """
    from rxrepurchase.report_data import store_page

    if not slice_folder:
        chain, shared = load_store(data, store_id, as_of=as_of, encoding=encoding,
                                   mapping=mapping, time_zone=time_zone)
        return store_page(chain, store_id, shared=shared, lang=lang, **settings)
    page = read_store_page(slice_folder)
    if page.store_id != store_id:
        raise SliceError(f"{slice_folder} is the page of store {page.store_id!r}, not of "
                         f"{store_id!r}")
    meta = _read_meta(Path(slice_folder), "store slice")
    source = None if meta["source"] is None else Path(meta["source"])
    _same_run("store page", slice_folder, as_of, page.as_of, source, data)
    if "calibration_end" in settings and settings["calibration_end"] is not None:
        settings["calibration_end"] = str(settings["calibration_end"])
    if "actions_dir" in settings:
        settings["actions_dir"] = str(settings["actions_dir"] or "")
    if "currency" in settings:
        from rxrepurchase.i18n import check_currency

        settings["currency"] = check_currency(settings["currency"])
    from rxrepurchase.i18n import normalize_lang

    wanted = {"lang": normalize_lang(lang), **settings}
    made = {"lang": page.lang, **page.settings}
    for key, value in wanted.items():
        if made.get(key) != value:
            raise SliceError(f"the page in {slice_folder} was computed with {key}="
                             f"{made.get(key)!r}, not {value!r}; run the reports again")
    return page


def load_chain_tables(data: str | os.PathLike, *, tables_folder: str | os.PathLike = "",
                      as_of=None, encoding: str | None = None, mapping=None,
                      time_zone: str | None = None, period_days: int = 90,
                      gross_margin: float = 0.3,
                      min_active_members: int | None = None) -> ChainTables:
    """What the chain overview notebook shows: the runner's tables (``tables_folder``), or
    computed from the export folder when run by hand.

    Raises
    ------
    SliceError
        The tables are not of ``data`` as of ``as_of`` with these settings.
    """
    if not tables_folder:
        from rxrepurchase.loading import load_chain

        chain = load_chain(data, as_of=as_of, encoding=encoding, mapping=mapping,
                           time_zone=time_zone)
        return chain_tables(chain, period_days=period_days, gross_margin=gross_margin,
                            min_active_members=min_active_members)
    tables = read_chain_tables(tables_folder)
    _same_run("chain tables", tables_folder, as_of, tables.as_of, tables.source, data)
    settings = {"period_days": period_days, "gross_margin": gross_margin}
    if min_active_members is not None:
        settings["min_active_members"] = min_active_members
    tables.check(**settings)
    return tables
