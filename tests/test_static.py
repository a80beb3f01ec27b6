"""ruff (lint and format) and mypy, as CI runs them: the configuration is pyproject.toml's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["planar_core", "flows", "tasks", "tests", "bench", "deployments"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("args", [("ruff", "check", *SOURCES), ("ruff", "format", "--check", *SOURCES)], ids=["lint", "format"])
def test_ruff_is_clean(args: tuple[str, ...]) -> None:
    out = _run(*args)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]


def test_mypy_is_clean_on_planar_core() -> None:
    out = _run("mypy")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "Success" in out.stdout
