"""Imports point downward: ``runtime`` <- ``engine``, ``runtime`` <- ``inference``; inference
never imports the training engine, and ``predictor`` and ``windows`` do not import each other
in a cycle. Old import paths of the names that moved still work."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import timesformer

SRC = Path(timesformer.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` names in an import statement, at any depth (lazy imports and
    ``TYPE_CHECKING`` blocks included), absolute names only."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _loaded_after_import(module: str) -> set[str]:
    """The ``timesformer`` modules loaded by importing ``module`` alone in a fresh interpreter."""
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(n for n in sys.modules if n.startswith('timesformer')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "timesformer.inference.predictor",
        "timesformer.inference.windows",
        "timesformer.inference.extract",
        "timesformer.runtime",
    ],
)
def test_importing_an_inference_module_alone_works_without_the_engine(module):
    loaded = _loaded_after_import(module)
    assert module in loaded
    assert not {n for n in loaded if n.startswith("timesformer.engine")}
    if module == "timesformer.inference.windows":
        assert "timesformer.inference.predictor" not in loaded
    if module == "timesformer.runtime":
        assert not {n for n in loaded if n.startswith("timesformer.inference")}


@pytest.mark.parametrize("path", sorted((SRC / "inference").glob("*.py")), ids=lambda p: p.name)
def test_no_inference_module_names_the_engine_even_lazily(path):
    assert not {n for n in _imported_modules(path) if n.startswith("timesformer.engine")}


def test_runtime_imports_neither_engine_nor_inference():
    names = _imported_modules(SRC / "runtime.py")
    assert not {n for n in names if n.startswith(("timesformer.engine", "timesformer.inference"))}


@pytest.mark.parametrize("name", ["windows.py", "results.py"])
def test_windows_and_results_never_import_the_predictor(name):
    # The predictor imports windows (and windows results); a way back would be a cycle.
    names = _imported_modules(SRC / "inference" / name)
    assert "timesformer.inference.predictor" not in names
    if name == "results.py":
        assert "timesformer.inference.windows" not in names


def test_moved_names_still_import_from_their_old_homes():
    from timesformer import runtime
    from timesformer.inference import predictor, results, windows

    # By module path: ``timesformer.engine.evaluate`` the attribute is the function.
    evaluate = importlib.import_module("timesformer.engine.evaluate")
    distributed = importlib.import_module("timesformer.engine.distributed")

    for name in ("EvalItems", "autocast_context", "inference_copy", "inference_model", "use_int8"):
        assert getattr(evaluate, name) is getattr(runtime, name)
    assert distributed.pick_device is runtime.pick_device
    for name in ("Prediction", "WindowPrediction"):
        assert getattr(predictor, name) is getattr(results, name)
    assert predictor.predict_windows is windows.predict_windows
