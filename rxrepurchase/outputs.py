"""Writing outputs safely: names from data, no overwrite, no half-written file that looks done.

Every writer of the package goes through these rules (``docs/reports.md``, "Output safety"):

- :func:`safe_name`: ids are data, never paths. An id that is already a plain file name
  (``S01``) is used as is; any other (``../../tmp/x``, ``S01/evil``, control characters) becomes
  a slug plus a short hash of the id, and :func:`inside` checks the result stays in its folder.
- :func:`refuse_existing`: a user's file is only replaced when the caller asked for it.
- :func:`atomic_path` / :func:`write_atomic`: a file appears under its final name only once
  it is complete (written to a temporary name in the same folder, then renamed).
- :func:`mark_incomplete` / :func:`mark_complete`: a run folder carries an ``INCOMPLETE`` file
  until its summary is written.
- :func:`die_with_parent`: a worker process started by a run is killed when the run dies, even
  by ``kill -9`` (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import re
import signal
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rxrepurchase.errors import OutputError

__all__ = [
    "INCOMPLETE",
    "atomic_path",
    "die_with_parent",
    "inside",
    "mark_complete",
    "mark_incomplete",
    "refuse_existing",
    "safe_name",
    "write_atomic",
]

INCOMPLETE = "INCOMPLETE"
"""Name of the marker file a run folder holds until the run has finished."""

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SLUG_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_PR_SET_PDEATHSIG = 1


def safe_name(value: str) -> str:
    """A file name for the id ``value`` that cannot leave its folder.

    A plain id (ASCII letters, digits, ``.``, ``_``, ``-``, not starting with a dot, at most
    64 characters) is its own name, so ordinary ids keep readable folders. Any other id gets a
    slug of its safe characters plus 10 hex digits of its SHA-256: distinct ids get distinct
    names, and the same id the same name in every run.

    Examples
    --------
    >>> safe_name("S01")
    'S01'
    >>> safe_name("../../tmp/x")
    'tmp_x-7a65a1305d'
    """
    text = str(value)
    if _PLAIN_NAME.fullmatch(text) and text.strip(".") and not text.endswith("."):
        return text
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _SLUG_CHARS.sub("_", ascii_text).strip("._-")[:40] or "id"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug}-{digest}"


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """``path`` resolved, after checking it lies within ``folder``.

    Raises
    ------
    OutputError
        ``path`` resolves outside ``folder`` (through ``..`` or a symbolic link).
    """
    resolved, root = Path(path).resolve(), Path(folder).resolve()
    if not resolved.is_relative_to(root):
        raise OutputError(f"{path} would be written outside its folder {root}; refused")
    return resolved


def refuse_existing(path: str | os.PathLike, *, overwrite: bool, hint: str = "--overwrite") -> None:
    """Raise unless ``path`` is absent (or ``overwrite``): a user's file is never replaced
    unasked.

    Raises
    ------
    OutputError
        ``path`` exists and ``overwrite`` is False; the message says how to replace it.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        kind = "folder" if path.is_dir() else "file"
        raise OutputError(f"{path}: {kind} exists already; not replaced (pass {hint} to replace it)")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends
    without error, removed otherwise. Readers never see a half-written ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, content: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``path`` through :func:`atomic_path`; returns ``path``."""
    with atomic_path(path) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content, encoding=encoding)
    return Path(path)


def mark_incomplete(folder: Path, what: str) -> Path:
    """Put the ``INCOMPLETE`` marker in ``folder`` (removed by :func:`mark_complete`)."""
    return write_atomic(
        folder / INCOMPLETE,
        f"{what} started by process {os.getpid()} has not finished: the files here may be "
        "partial. A finished run removes this file after writing its summary.\n",
    )


def mark_complete(folder: Path) -> None:
    """Remove the ``INCOMPLETE`` marker of ``folder``."""
    (folder / INCOMPLETE).unlink(missing_ok=True)


def die_with_parent() -> None:
    """Have the kernel kill this process (SIGKILL) when its parent dies.

    For worker processes of a run (``ProcessPoolExecutor(initializer=...)``, ``preexec_fn``):
    a parent killed with ``kill -9`` runs no clean-up handler, so only the kernel can stop its
    children. Their own children (Jupyter kernels) watch their parent and exit when it is gone.
    Linux only; elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
