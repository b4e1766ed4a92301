"""The aggregation core: each aggregate written once, as Ibis expressions.

``backend`` makes and runs tables (DuckDB embedded by default, PySpark when given);
``purchases`` is the one definition of a member purchase; ``rfm`` the RFM summaries and
calibration / holdout splits. The pandas-in, pandas-out functions of :mod:`rxrepurchase.rfm`,
:mod:`rxrepurchase.metrics` and the file-based :mod:`rxrepurchase.engine` are thin wrappers
over these expressions.
"""
