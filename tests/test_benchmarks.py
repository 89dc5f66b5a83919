"""The benchmark scripts still import and parse their options against today's library.

They are run by hand (and on GPU leases, where a broken script costs device time), not by the
test suite, so a renamed function or option would otherwise go unnoticed until then. Each
script's ``main`` is run with ``--help``: everything at module level runs, then argparse exits 0.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
SCRIPTS = [m for m in MODULES if "def main(" in (BENCHMARKS / f"{m}.py").read_text("utf-8")]


@pytest.fixture(scope="module", autouse=True)
def on_path():
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


def test_every_script_with_a_main_is_checked():
    assert {"bench_model", "bench_int8", "bench_int8_routes", "profile_step"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_and_shows_its_help(name, monkeypatch, capsys):
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as stop:
        module.main()
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_gpu_check_script_parses():
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_check.sh")]).returncode == 0
