"""The benchmark scripts still import and parse their options against today's library.

They are run by hand (and on GPU leases, where a broken script costs device time), not by the
test suite, so a renamed function or option would otherwise go unnoticed until then. Each
script's ``main`` is run with ``--help``: everything at module level runs, then argparse exits 0.
The suites share one module, ``harness``, and import no other benchmark module; every results
file names the command that makes it at its top.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
SCRIPTS = [m for m in MODULES if "def main(" in (BENCHMARKS / f"{m}.py").read_text("utf-8")]
RESULTS = sorted(p for p in (BENCHMARKS / "results").iterdir() if p.suffix in (".md", ".txt"))


@pytest.fixture(scope="module", autouse=True)
def on_path():
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


def test_every_script_with_a_main_is_checked():
    maintained = {
        "ab_revisions",
        "bench_int8",
        "bench_loader",
        "bench_long_run",
        "bench_model",
        "bench_scaling",
        "bench_variants",
        "demo_seeds",
        "fuzz_decoder",
        "profile_step",
        "recipe_search",
    }
    assert maintained <= set(SCRIPTS)
    assert "harness" in MODULES and "harness" not in SCRIPTS


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module a source imports, at any depth of the code."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", MODULES)
def test_benchmarks_import_only_the_harness(name):
    imported = imported_modules((BENCHMARKS / f"{name}.py").read_text("utf-8"))
    others = (imported & set(MODULES)) - {"harness"}
    assert not others, f"{name}.py imports {sorted(others)}: share code through harness.py"
    if name == "harness":
        assert not imported & set(MODULES)


def test_the_import_check_sees_imports_in_functions():
    source = "import os\ndef f():\n    from bench_model import x\n    import harness.y\n"
    assert imported_modules(source) == {"os", "bench_model", "harness"}


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_results_state_their_command_at_the_top(path):
    head = path.read_text("utf-8").splitlines()[:4]
    commands = [m for line in head for m in re.findall(r"^Command: `([^`]+)`", line)]
    assert commands, f"{path.name}: no 'Command: `...`' line at the top"
    script = re.search(r"benchmarks/(\S+\.(?:py|sh))", commands[0])
    assert script and (BENCHMARKS / script.group(1)).is_file(), commands[0]


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
