"""rxrepurchase: member repurchase analytics and reports for pharmacy chains.

Modules by domain:

- :mod:`rxrepurchase.contract`: the tables a chain exports and what each column means.
- :mod:`rxrepurchase.loading`: ``load_chain`` reads and validates an export folder.
- :mod:`rxrepurchase.demo`: a realistic, seeded demo chain with ground truth.
- :mod:`rxrepurchase.refill`: refill prediction, status, PDC / MPR adherence, reminder lists.
- :mod:`rxrepurchase.metrics`: user / order repurchase rates, retention, intervals, ARPU, Pareto.
- :mod:`rxrepurchase.segments`: RFM segments, member attributes and profiles, time of day.
- :mod:`rxrepurchase.cohorts`: subsidy-driven vs loyal classifier, cohort and wave comparisons.
- :mod:`rxrepurchase.rfm`: per-member frequency / recency / T / spend, calibration-holdout splits.
- :mod:`rxrepurchase.models`: BG/NBD, Pareto/NBD, Gamma-Gamma, CLV, wake-up list, per-cohort fits.
- :mod:`rxrepurchase.holdout`: holdout diagnostics, tracking curves, model selection.
"""

from rxrepurchase.errors import DataContractError, ModelFitError, RxRepurchaseError

__version__ = "0.1.0"

_LAZY = {"Chain": "rxrepurchase.loading", "DataQualityReport": "rxrepurchase.loading",
         "load_chain": "rxrepurchase.loading"}


def __getattr__(name: str):
    # `import rxrepurchase` stays light (no pandas, matplotlib, lifetimes or statsmodels): a
    # report kernel or the CLI imports only the modules it uses.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rxrepurchase' has no attribute {name!r}")

__all__ = [
    "Chain",
    "DataContractError",
    "DataQualityReport",
    "ModelFitError",
    "RxRepurchaseError",
    "load_chain",
]
