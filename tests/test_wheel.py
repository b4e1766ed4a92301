"""A built, non-editable wheel runs the store reports from another folder.

The report notebooks live in the checkout's ``notebooks/``; the build copies them into the
wheel (``setup.py``). This builds the wheel, installs it with the lock's releases into a fresh
venv and runs one store's report there, far from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _uv() -> str:
    uv = ROOT / ".tools" / "bin" / "uv"  # the Makefile's pinned uv
    if uv.exists():
        return str(uv)
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (make setup installs it into .tools/)")
    return found


def _run(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_installed_wheel_runs_a_store_report(tmp_path):
    uv = _uv()
    dist = tmp_path / "dist"
    _run([uv, "build", "--wheel", "--out-dir", str(dist), "--python", sys.executable], ROOT)
    (wheel,) = dist.glob("rxrepurchase-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rxrepurchase/notebooks/store_report.ipynb" in names
    assert "rxrepurchase/notebooks/chain_overview.ipynb" in names

    # The lock's releases, so the wheel meets the same dependencies as `make test`.
    pins = tmp_path / "pins.txt"
    _run([uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-dev",
          "--output-file", str(pins)], ROOT)
    venv = tmp_path / "venv"
    _run([uv, "venv", "--python", sys.executable, str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--python", str(python), "-c", str(pins), str(wheel)], tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run([str(python), "-c", "import rxrepurchase; print(rxrepurchase.__file__)"], work)
    assert str(venv) in where.stdout  # the installed wheel, not the checkout
    cli = str(venv / "bin" / "rxrepurchase")
    _run([cli, "demo-data", "--out", "chain", "--members", "600", "--stores", "1",
          "--months", "12"], work, env)
    _run([cli, "report", "--data", "chain", "--stores", "S01", "--out", "out", "--jobs", "1",
          "--as-of", "2026-09-30", "--no-chain"], work, env)
    (run_folder,) = (work / "out").iterdir()
    run = json.loads((run_folder / "run.json").read_text(encoding="utf-8"))
    assert [s["store_id"] for s in run["stores"] if s["ok"]] == ["S01"]
    assert run["failures"] == []
    assert run["rxrepurchase_version"]
    page = (run_folder / run["stores"][0]["html"]).read_text(encoding="utf-8")
    assert "S01" in page
    # The notebook the wheel ran is the packaged one, not a file of this checkout.
    assert str(ROOT) not in json.dumps(run["parameters"])
