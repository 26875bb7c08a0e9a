"""The repo keeps an `operator/` folder; it must never shadow the stdlib's `operator`
module, however Python is started from the repo root (see docs/development.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import collections, operator, sys; "
    "assert hasattr(operator, 'itemgetter'), operator.__file__; "
    "assert 'site-packages' in operator.__file__ or 'lib/python' in operator.__file__, "
    "operator.__file__; print(operator.__file__)"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_python_c_from_root_gets_the_stdlib_operator() -> None:
    result = _run("-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert not result.stdout.startswith(str(ROOT))


def test_python_m_pytest_from_root_collects() -> None:
    result = _run("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/unit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_operator_folder_is_not_a_regular_package() -> None:
    assert (ROOT / "operator").is_dir()
    assert not (ROOT / "operator" / "__init__.py").exists()
