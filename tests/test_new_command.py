"""``planar new NAME`` as a user runs it: three files in a folder outside the repository, whose test passes there
(``python -m pytest``, the installed package), whose strategy and test type-check with ``mypy --strict``, and whose
config loads as ``planar run`` loads it (the logic found beside it). The same name twice, or a name Python cannot
import, is one line and exit 2, and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLANAR = Path(sys.executable).with_name("planar")
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH", "PYTEST_ADDOPTS")}  # as a user's shell has it


def run(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def new(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(cwd, str(PLANAR), "new", *args, timeout=120)


def test_the_written_test_passes_where_it_was_written_and_the_config_loads(tmp_path: Path) -> None:
    r = new(tmp_path, "dip_buyer")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dip_buyer.py", "dip_buyer.toml", "test_dip_buyer.py"]
    assert "wrote" in r.stdout and "python -m pytest -q test_dip_buyer.py" in r.stdout
    tests = run(tmp_path, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_dip_buyer.py")
    assert tests.returncode == 0, (tests.stdout + tests.stderr)[-4000:]
    assert "3 passed" in tests.stdout
    load = run(
        tmp_path,
        sys.executable,
        "-c",
        "from planar_core.config import load_config; c = load_config('dip_buyer.toml'); "
        "print(c.name, c.logic, c.mode, c.sandbox, c.margin, c.logic_params['drop'])",
    )
    assert load.returncode == 0, load.stderr[-2000:]
    assert load.stdout.split() == ["dip_buyer", "dip_buyer:DipBuyer", "live", "True", "False", "0.01"]


def test_the_written_strategy_and_test_type_check_strictly(tmp_path: Path) -> None:
    assert new(tmp_path, "dip").returncode == 0
    out = run(tmp_path, sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", "/dev/null", "dip.py", "test_dip.py")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]


def test_nothing_is_written_over_an_existing_file_nor_under_a_bad_name(tmp_path: Path) -> None:
    assert new(tmp_path, "dip", "--dir", "strategies").returncode == 0
    folder = tmp_path / "strategies"
    (folder / "dip.py").write_text("# mine\n")
    again = new(tmp_path, "dip", "--dir", "strategies")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "already exist" in again.stderr
    assert (folder / "dip.py").read_text() == "# mine\n"
    for bad in ("9lives", "my-dip", "class", "json"):
        r = new(tmp_path, bad)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (bad, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strategies"]


def test_docs_show_the_test_planar_new_writes() -> None:
    """docs/testing.md shows the test `planar new dip` writes, word for word (a template change updates the page)."""
    from planar_core.scaffold import TEST

    page = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    assert "```python\n" + TEST.substitute(name="dip", cls="Dip") + "```" in page
