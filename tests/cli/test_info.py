"""`timesformer info` reproduces SPEC's parameter and compute table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from timesformer.cli import main

SPEC_PARAMS = {
    "space": 86_106_256,
    "joint": 86_112_400,
    "divided": 121_566_352,
    "local_global": 121_566_352,
    "axial": 157_020_304,
}
SPEC_GMACS = {"timesformer_base": 195.8, "timesformer_hr": 1702.7, "timesformer_large": 2379.9}


def info_json(capsys, *args) -> dict | list:
    assert main(["info", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("attention", list(SPEC_PARAMS))
def test_parameter_counts_match_spec(capsys, attention):
    row = info_json(capsys, "timesformer_base", "--attention", attention)
    assert row["params"] == SPEC_PARAMS[attention]


@pytest.mark.parametrize("name", list(SPEC_GMACS))
def test_macs_match_spec_within_one_percent(capsys, name):
    row = info_json(capsys, name)
    assert abs(row["gmacs_per_view"] - SPEC_GMACS[name]) / SPEC_GMACS[name] < 0.01
    assert row["tmacs_test"] == pytest.approx(3 * row["gmacs_per_view"] / 1000, rel=1e-3)


def test_joint_at_32_frames_is_the_papers_out_of_memory_point(capsys):
    row = info_json(capsys, "timesformer_base", "--attention", "joint", "--num-frames", "32")
    assert abs(row["gmacs_per_view"] - 1261.8) < 1.0


def test_table_for_all_schemes(capsys):
    assert main(["info", "timesformer_base", "--attention", "all"]) == 0
    out = capsys.readouterr().out
    for attention, params in SPEC_PARAMS.items():
        assert f"{params:,}" in out and attention in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown model 'nope'"),
        (["timesformer_base", "--num-frames", "0"], "num_frames must be a positive integer"),
        (["timesformer_base", "--img-size", "100"], "not divisible by patch_size"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "timesformer.cli", "info", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
