"""The project's own files agree with each other, so set-up routes cannot drift apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirement(spec: str) -> tuple[str, str]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*?)\s*", spec)
    assert m, spec
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _conda_dependencies() -> dict[str, str]:
    # environment.yml is simple enough to read without a YAML library: "  - name>=x" lines.
    deps = {}
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        m = re.fullmatch(r"  - ([A-Za-z0-9_.\-]+(?:[<>=!]=?[^\s#]*)?)\s*(#.*)?", line)
        if m:
            name, bound = _requirement(m.group(1))
            deps[name] = bound
    return deps


def test_environment_yml_installs_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    wanted = dict(_requirement(s) for s in project["dependencies"])
    for extra in ("dev", "spark"):
        wanted.update(_requirement(s) for s in project["optional-dependencies"][extra])
    conda = _conda_dependencies()
    conda.pop("pip", None)
    python_bound = conda.pop("python")
    assert python_bound == project["requires-python"]
    assert conda == wanted


def test_environment_yml_names_the_env_and_installs_the_package():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert re.search(r"^name: rxrepurchase$", text, re.M)
    assert re.search(r"^\s+- --no-deps -e \.$", text, re.M)


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```(?:sh|bash)?\n(.*?)```", readme, re.S).group(1)
    assert [ln.strip() for ln in first_block.splitlines() if ln.strip()] == ["make demo", "make test"]


def test_notebooks_are_stored_without_outputs():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def test_readme_notebook_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"## In a notebook\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert "DemoConfig()" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("DemoConfig()", "DemoConfig(n_members=1500, n_stores=2)"), "README", "exec"), namespace)
    assert set(namespace["rates"]["store_id"]) == {"S01", "S02"}
    assert "subsidy_driven" in set(namespace["labels"]["subsidy_cohort"])
    assert namespace["scores"]["clv"].notna().all()
    assert len(namespace["due"]) > 0


def _locked() -> tuple[dict, dict[str, str]]:
    """(rxrepurchase's entry in uv.lock, locked version of every package)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    ours = next(p for p in lock["package"] if p["name"] == "rxrepurchase")
    versions: dict[str, str] = {}
    for p in lock["package"]:
        versions.setdefault(p["name"], p.get("version", ""))  # forks by Python: the oldest
    return ours, versions


def test_lock_covers_pyproject_and_environment_yml():
    from packaging.specifiers import SpecifierSet

    ours, versions = _locked()
    project = _pyproject()["project"]
    locked_direct = {d["name"]: d.get("specifier", "") for d in ours["metadata"]["requires-dist"]}
    wanted = dict(_requirement(s) for s in project["dependencies"])
    for extra in ("dev", "spark"):
        wanted.update(_requirement(s) for s in project["optional-dependencies"][extra])
    # The lock was made from this pyproject (uv sync --locked also refuses a stale lock) ...
    assert locked_direct == wanted
    # ... and environment.yml names the lock's direct dependencies, each bound met by the lock.
    conda = _conda_dependencies()
    conda.pop("pip", None)
    conda.pop("python")
    assert set(conda) == set(locked_direct)
    for name, bound in conda.items():
        assert SpecifierSet(bound).contains(versions[name]), (name, bound, versions[name])


def test_make_installs_the_lock_with_a_pinned_uv():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^UV_VERSION := \d+\.\d+\.\d+$", makefile, re.M)
    assert "sync --locked" in makefile
    for target in ("lock", "test-latest", "demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_requirements_lock_is_the_export_of_uv_lock(tmp_path):
    """requirements.lock (for pip: ``pip install -r requirements.lock``) is exactly what
    ``make lock`` exports from uv.lock, so the two cannot drift apart."""
    import shutil
    import subprocess

    uv = ROOT / ".tools" / "bin" / "uv"
    uv = str(uv) if uv.exists() else shutil.which("uv")
    if uv is None:
        import pytest

        pytest.skip("uv is not installed (make setup installs it into .tools/)")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    command = re.search(r"^EXPORT := \$\(UV\) (.*)$", makefile, re.M).group(1).split()
    out = tmp_path / "requirements.lock"
    command[command.index("--output-file") + 1] = str(out)
    subprocess.run([uv, *command], cwd=ROOT, check=True, capture_output=True)
    body = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    ours = (ROOT / "requirements.lock").read_text().splitlines()
    assert body == [ln for ln in ours if not ln.startswith("#")]
    assert any(ln.startswith("pandas==") for ln in ours) and "--hash=sha256:" in "".join(ours)
