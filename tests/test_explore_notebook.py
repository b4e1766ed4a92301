"""notebooks/explore.ipynb, the analyst's starting point, runs from top to bottom."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"

pytestmark = pytest.mark.slow


def test_explore_notebook_runs_on_a_small_demo_chain(tmp_path):
    out = tmp_path / "explore.ipynb"
    # papermill raises PapermillExecutionError, naming the cell, if any cell fails.
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), parameters={"n_members": 1500}, cwd=str(tmp_path),
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    # the model check, the fitted parameters and the refill headline all made it to the page
    for expected in ("naive", "alpha", "reminder_rows_due", "subsidy_driven"):
        assert expected in text


def test_explore_notebook_is_paired_and_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    paired = jupytext.read(NOTEBOOK.with_suffix(".py"))
    assert [c.source for c in paired.cells] == [c.source for c in nb.cells]
    assert all(not c.outputs for c in nb.cells if c.cell_type == "code")
