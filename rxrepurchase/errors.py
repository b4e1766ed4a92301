"""Exceptions the library raises for bad input; the CLI prints them without a traceback."""


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


class SourceError(RxRepurchaseError, ValueError):
    """A chain's tables cannot be opened from what was given (wrong kind of source, unknown
    table name); the message names the source and what to pass instead."""
