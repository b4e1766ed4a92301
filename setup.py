"""Ships the report notebooks inside the wheel.

The design card keeps them in the top-level ``notebooks/`` folder, where analysts open them;
an installed (non-editable) package has no checkout, so the build copies them into
``rxrepurchase/notebooks/`` of the wheel, where :func:`rxrepurchase.reporting.find_notebook`
finds them. Everything else is declared in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REPORT_NOTEBOOKS = ("store_report.ipynb", "chain_overview.ipynb")


class BuildPyWithReportNotebooks(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads notebooks/ of the checkout
            return
        target = Path(self.build_lib) / "rxrepurchase" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for name in REPORT_NOTEBOOKS:
            self.copy_file(str(Path("notebooks") / name), str(target / name))


setup(cmdclass={"build_py": BuildPyWithReportNotebooks})
