"""ruff (lint and format) and mypy, as CI runs them: the configuration is pyproject.toml's."""

from __future__ import annotations

import os
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


def docs_strategy() -> str:
    """The strategy that docs/strategies.md walks through, as a user copies it."""
    text = (ROOT / "docs" / "strategies.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_a_strategy_outside_the_repository_type_checks_against_the_installed_package(tmp_path: Path) -> None:
    """PEP 561: planar_core ships py.typed, and the README's install (editable_mode=strict) is one mypy can read, so
    `mypy --strict` in a user's own folder sees the engine's types (it answered "Cannot find implementation or
    library stub for module named planar_core.model" without them)."""
    (tmp_path / "dip.py").write_text(docs_strategy())
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", "/dev/null", "dip.py"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
