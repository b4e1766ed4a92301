"""Every exception the library raises for bad input, in one module; the CLI prints them
without a traceback. Modules re-export the ones they raise (``engine.EngineError`` is
``errors.EngineError``), so ``except`` clauses may name either."""


class RxRepurchaseError(Exception):
    """Base class of every error rxrepurchase raises about its inputs."""


class DataContractError(RxRepurchaseError, ValueError):
    """An export file breaks the data contract (missing file or column, bad rows in strict mode).

    The message names the file, the column and example rows.
    """


class ModelFitError(RxRepurchaseError, RuntimeError):
    """A customer-lifetime model cannot be fitted (too few repeat buyers, no convergence)."""


class OutputError(RxRepurchaseError, ValueError):
    """An output would replace a user's file, land outside its folder, or in the input folder.

    The message names the path and how to proceed (``--overwrite``, another folder).
    """


# --------------------------------------------------------------------------- batch


class BatchError(RxRepurchaseError, ValueError):
    """The batch step cannot run or its output cannot be read; the message names the path."""


# --------------------------------------------------------------------------- chain_view


class ChainViewError(RxRepurchaseError, ValueError):
    """Bad input to the chain overview's figures."""


# --------------------------------------------------------------------------- delivery


class DeliveryConfigError(RxRepurchaseError, ValueError):
    """Email settings or recipients are wrong (the message names the key or store)."""


# --------------------------------------------------------------------------- demo


class DemoConfigError(RxRepurchaseError, ValueError):
    """A :class:`DemoConfig` value is out of range; the message names the field."""


class DemoOutputError(RxRepurchaseError, FileExistsError):
    """Writing the demo chain would overwrite an existing file (pass ``overwrite=True``)."""


# --------------------------------------------------------------------------- engine


class EngineError(RxRepurchaseError, ValueError):
    """The engine cannot run: bad argument, unreadable file, unsupported option."""


# --------------------------------------------------------------------------- i18n


class UnknownLanguageError(RxRepurchaseError, ValueError):
    """A report language other than the supported ones was asked for."""


class UnknownCurrencyError(RxRepurchaseError, ValueError):
    """A currency is not a three-letter ISO 4217 code."""


# --------------------------------------------------------------------------- metrics


class MetricsInputError(RxRepurchaseError, ValueError):
    """An analysis argument is invalid: unknown window, grouping column, option or member."""


# --------------------------------------------------------------------------- pdf


class PdfRenderError(RxRepurchaseError, RuntimeError):
    """A PDF cannot be printed: the engine is missing, fails, or the HTML file is absent."""


# --------------------------------------------------------------------------- readings


class ReadingError(RxRepurchaseError, ValueError):
    """A section table lacks a column its reading needs."""


# --------------------------------------------------------------------------- refill


class RefillError(RxRepurchaseError, ValueError):
    """Bad input to a refill function: missing column, unmapped product, bad days supply,
    existing output file. The message names the column, rows or path."""


# --------------------------------------------------------------------------- report_data


class ReportDataError(RxRepurchaseError, ValueError):
    """A report notebook was given inconsistent inputs (e.g. a chain cache of other data)."""


# --------------------------------------------------------------------------- reporting


class ReportError(RxRepurchaseError):
    """A report run cannot start: missing data folder or notebook, bad option."""


# --------------------------------------------------------------------------- rfm


class RFMInputError(RxRepurchaseError, ValueError):
    """A transactions table or an RFM summary cannot be used; the message names the column."""


# --------------------------------------------------------------------------- scheduled


class ScheduledConfigError(RxRepurchaseError, ValueError):
    """The run's config file is missing or invalid; the message names the file and key."""


class RunLocked(RxRepurchaseError):
    """Another run holds the lock file."""


# --------------------------------------------------------------------------- sources


class SourceError(RxRepurchaseError, ValueError):
    """A chain's tables cannot be opened from what was given (wrong kind of source, unknown
    table name); the message names the source and what to pass instead."""


# --------------------------------------------------------------------------- this_week


class ThisWeekError(RxRepurchaseError, ValueError):
    """Inputs of the "This week" actions are missing a column."""


# --------------------------------------------------------------------------- uplift


class UpliftInputError(RxRepurchaseError, ValueError):
    """An uplift analysis got unusable input: no send list, unknown campaign, bad option."""


# --------------------------------------------------------------------------- targets

class TargetsError(RxRepurchaseError, ValueError):
    """The targets are malformed; the message names the key."""


# --------------------------------------------------------------------------- report_slices

class SliceError(RxRepurchaseError, ValueError):
    """A slice or chain table folder cannot be read; the message names the path."""
