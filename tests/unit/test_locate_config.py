"""Runs an automation starts find their strategy's config by name in their own folder, never through a path
that belonged to another run (on a work pool, a temporary clone that is gone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planar_core.config import ConfigError, locate_config


def write(folder: Path, file: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(json.dumps({"name": name, "universe": ["BTC/USDT"]}))
    return path


def test_an_existing_path_wins(tmp_path: Path) -> None:
    path = write(tmp_path / "a", "x.json", "alpha")
    write(tmp_path / "b", "alpha.json", "alpha")
    assert locate_config("alpha", str(path), str(tmp_path / "b")) == str(path)


def test_a_path_that_is_gone_falls_back_to_the_config_of_that_name(tmp_path: Path) -> None:
    write(tmp_path / "configs", "beta.json", "beta")
    found = write(tmp_path / "configs", "other-file-name.json", "alpha")
    gone = "/tmp/tmpdeleted-prefect/checkout/examples/alpha.json"
    assert locate_config("alpha", gone, str(tmp_path / "configs")) == str(found)
    assert locate_config("alpha", None, str(tmp_path / "configs")) == str(found)


def test_no_config_of_that_name_names_what_it_found(tmp_path: Path) -> None:
    write(tmp_path / "configs", "beta.json", "beta")
    with pytest.raises(ConfigError, match=r"no config in .* is named alpha \(found: beta\)"):
        locate_config("alpha", "/gone/alpha.json", str(tmp_path / "configs"))
    with pytest.raises(ConfigError, match=r"config file not found: /gone/alpha\.json"):
        locate_config("alpha", "/gone/alpha.json", None)
    assert locate_config("alpha", None, None) is None  # the environment alone


def test_two_configs_of_one_name_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "c", "a1.json", "alpha")
    write(tmp_path / "c", "a2.json", "alpha")
    with pytest.raises(ConfigError, match="2 configs"):
        locate_config("alpha", None, str(tmp_path / "c"))
