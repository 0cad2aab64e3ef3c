"""The house rules the build enforces: the import-linter contracts in pyproject.toml catch an
import that points the wrong way (`make lint` runs them), so the layering is not a convention."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
UPWARD_IMPORT = """

def _upward():
    from dnnlab.cli.app import app

    return app
"""


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the `dnnlab` package and pyproject.toml under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "dnnlab", tmp_path / "dnnlab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (the dev extra)")
def test_import_linter_keeps_the_package_and_breaks_on_an_upward_import(copy):
    contracts = tomllib.loads((copy / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c["name"] for c in contracts["contracts"] if c["type"] == "layers")

    kept = lint_imports(copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert " 0 broken" in kept.stdout

    # files/ is the bottom layer: importing the CLI from it, even inside a function, is upward.
    with open(copy / "dnnlab" / "files" / "atomic.py", "a", encoding="utf-8") as handle:
        handle.write(UPWARD_IMPORT)
    broken = lint_imports(copy)
    assert broken.returncode != 0
    output = " ".join(broken.stdout.split())  # long contract names wrap
    assert f"{layers} BROKEN" in output
    assert "dnnlab.files is not allowed to import dnnlab.cli" in output
    assert "dnnlab.files.atomic -> dnnlab.cli.app" in output
