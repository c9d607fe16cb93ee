"""The architecture of issue 14, enforced: the import-linter contracts of ``pyproject.toml``
(the core never imports ``lshgan.mlops``, MLflow, Optuna or DVC; only
``lshgan.cli.add_mlops_subcommands`` reaches the MLOps layer; ``lshgan.module`` never
imports AnnData; no import cycles) hold.  ``make lint`` and ``.ci/run`` run the same check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports is not installed (requirements.lock pins import-linter)"
    p = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_the_core_imports_no_mlops_module():
    """Importing the core and building the core parser loads nothing of lshgan.mlops."""
    code = ("import sys; import lshgan, lshgan.workflow, lshgan.config, lshgan.cli; "
            "assert not [m for m in sys.modules if m.startswith('lshgan.mlops')], sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
