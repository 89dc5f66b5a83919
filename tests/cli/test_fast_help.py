"""``--help`` and ``--version`` print without importing torch or numpy, the same text as before.

Each command runs in a fresh interpreter, since this one has long loaded torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from timesformer import names
from timesformer.cli import COMMANDS, main

HEAVY = ("torch", "numpy")
COMMAND_LINES = [[], *([c] for c in COMMANDS), ["data", "synth"], ["data", "prepare"]]
# A fixed width, so that the help wraps the same in the child process and in this one.
ENV_COLUMNS = "100"

CHILD = """
import contextlib, io, json, sys
from timesformer.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(json.loads(sys.argv[1]))
        code = 0
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"code": code, "text": out.getvalue(),
                  "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def _child(argv: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": ENV_COLUMNS},
        check=True,
    )
    return json.loads(done.stdout)


def _in_process(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", ENV_COLUMNS)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit:
        main(argv)
    return exit.value.code, out.getvalue()


@pytest.mark.parametrize("command", COMMAND_LINES, ids=lambda c: " ".join(c) or "timesformer")
def test_help_imports_neither_torch_nor_numpy(command, monkeypatch):
    got = _child([*command, "--help"])
    assert got["code"] == 0
    assert got["heavy"] == []
    # The text is the one this process, with every library module loaded, prints.
    assert (0, got["text"]) == _in_process([*command, "--help"], monkeypatch)
    assert got["text"].startswith(f"usage: timesformer {' '.join(command)}".rstrip())


def test_version_imports_neither_torch_nor_numpy():
    got = _child(["--version"])
    assert (got["code"], got["heavy"]) == (0, [])
    assert got["text"].startswith("timesformer ")


def test_python_m_timesformer_help_is_light():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['timesformer', '--help']\n"
        "try:\n"
        "    runpy.run_module('timesformer', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print([m for m in ('torch', 'numpy') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "usage: timesformer" in done.stdout
    assert done.stdout.rstrip().endswith("[]")


def test_light_names_are_the_library_s():
    """The names the help offers are the ones the library defines and accepts."""
    from timesformer.checkpoints import zoo
    from timesformer.data import prepare, synthetic
    from timesformer.schemes import ATTENTION_SCHEMES

    # The registry lists the paper's schemes first, in the order of its Table 1.
    assert ATTENTION_SCHEMES[: len(names.PAPER_SCHEMES)] == names.PAPER_SCHEMES
    assert (zoo.DEFAULT_MODEL, zoo.LICENCE) == (names.DEFAULT_MODEL, names.LICENCE)
    assert prepare.DATASETS is names.DATASETS
    assert synthetic.PAIRS is names.PAIRS and synthetic.STYLES is names.STYLES


def test_package_names_load_on_first_use():
    """``import timesformer`` is light, and every public name is still there."""
    code = (
        "import sys, timesformer\n"
        "light = 'torch' not in sys.modules\n"
        "missing = [n for n in timesformer.__all__ if getattr(timesformer, n, None) is None]\n"
        "print(light, missing, timesformer.data.__name__, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["True", "[]", "timesformer.data", "True"]
