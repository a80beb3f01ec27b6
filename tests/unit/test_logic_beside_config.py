"""A strategy file kept beside its config imports, from wherever the command runs (issue: `logic = "rsi_revert:RSIRevert"`
answered `cannot import module 'rsi_revert'`): ``module:Class`` is looked for in the config's folder first, and
``path/to/file.py:Class`` is relative to that folder. Errors stay one ConfigError line."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from planar_core.config import ConfigError, load_config
from planar_core.runner.host import load_logic

STRATEGY = """
from planar_core.logic import Logic, LogicParams
from {helper} import LENGTH


class {cls}(Logic):
    class Params(LogicParams):
        length: int = LENGTH
"""


def write_strategy(folder: Path, module: str, cls: str) -> str:
    """A strategy module that imports a helper module beside it; returns the helper's name."""
    helper = f"helper_{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{helper}.py").write_text("LENGTH = 7\n")
    (folder / f"{module}.py").write_text(STRATEGY.format(helper=helper, cls=cls))
    return helper


def write_config(folder: Path, logic: str) -> Path:
    cfg = folder / "strategy.toml"
    cfg.write_text(f'name = "beside"\nlogic = "{logic}"\n\n[logic_params]\nlength = 9\n')
    return cfg


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from another folder, and give sys.path back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def test_a_module_beside_the_config_imports_with_its_helpers(tmp_path: Path) -> None:
    module = f"rsi_{uuid.uuid4().hex[:8]}"
    write_strategy(tmp_path / "configs", module, "RSIRevert")
    cfg = load_config(write_config(tmp_path / "configs", f"{module}:RSIRevert"), env={})
    assert cfg.config_dir == (tmp_path / "configs").resolve()
    logic = load_logic(cfg.logic, cfg.logic_params, cfg.config_dir)
    assert type(logic).__name__ == "RSIRevert" and type(logic).__module__ == module
    assert logic.params.length == 9  # type: ignore[attr-defined]


def test_a_file_path_is_relative_to_the_config(tmp_path: Path) -> None:
    module = f"trail_{uuid.uuid4().hex[:8]}"
    write_strategy(tmp_path / "configs" / "strategies", module, "Trailing")
    cfg = load_config(write_config(tmp_path / "configs", f"strategies/{module}.py:Trailing"), env={})
    logic = load_logic(cfg.logic, cfg.logic_params, cfg.config_dir)
    assert Path(sys.modules[module].__file__ or "").resolve() == (tmp_path / "configs" / "strategies" / f"{module}.py").resolve()
    assert type(logic).__name__ == "Trailing"


def test_errors_in_the_strategy_file_are_one_line_with_file_and_line(tmp_path: Path) -> None:
    module = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / f"{module}.py").write_text("from planar_core import Logic\n\nclass Broken(Logic)\n    pass\n")
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "configs", f"{module}:Broken"), env={})
    assert f"{module}.py:3:" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="logic: no file"):
        load_config(write_config(tmp_path / "configs", "missing/nothing.py:X"), env={})


def test_every_command_that_takes_a_config_finds_it(tmp_path: Path) -> None:
    """`planar trace stats --config` from another folder: past the config (the trace is what is missing)."""
    module = f"cli_{uuid.uuid4().hex[:8]}"
    write_strategy(tmp_path / "configs", module, "FromCli")
    cfg = write_config(tmp_path / "configs", f"{module}:FromCli")
    planar = str(Path(sys.executable).with_name("planar"))
    out = subprocess.run(
        [planar, "trace", "stats", "--config", str(cfg)], cwd=tmp_path / "cwd", capture_output=True, text=True, timeout=120
    )
    assert "cannot import" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "logic:" not in out.stdout + out.stderr, out.stdout + out.stderr
