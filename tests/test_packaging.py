"""The install a user gets: one `attnas` namespace, every package listed, imports in any order."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_installed_under_attnas():
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == listed, f"package folders and pyproject disagree: {sorted(found ^ listed)}"
    assert all(name.startswith("attnas.") for name in listed) and not any(name.startswith("attnas.bench") for name in listed)


@pytest.mark.parametrize("module", ["attnas.space", "attnas.models", "attnas.models.backbones", "attnas.models.blocks",
                                    "attnas.evaluators", "attnas.search.apps.config", "attnas.search.study"])
def test_each_package_imports_first_in_a_fresh_interpreter(module):
    # space reads the backbone and block registries of models, and models builds from space's specs:
    # whichever a user imports first must work
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_package_imports_search():
    offenders = []
    for folder in ("space", "models", "evaluators"):
        for path in (ROOT / folder).rglob("*.py"):
            if re.search(r"^\s*(from|import) attnas\.search", path.read_text(), re.MULTILINE):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"only search/ may import search/: {offenders}"
