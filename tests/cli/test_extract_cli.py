"""``timesformer extract``: summary lines, resume, failures, concurrent shards, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from timesformer.cli import main


def _argv(*argv) -> list[str]:
    return ["extract", *map(str, argv), "--sampling-rate", "2", "--no-progress"]


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(_argv(*argv))
    out, err = capsys.readouterr()
    return code, out, err


def _index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def _clips(out: Path) -> dict[str, torch.Tensor]:
    return {
        p.relative_to(out).as_posix(): load_file(p)["clip"]
        for p in sorted((out / "features").rglob("*.safetensors"))
    }


def test_folder_with_a_broken_video_then_a_resumed_run(capsys, checkpoint, videos, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(videos[0], folder / "a.mp4")
    shutil.copy(videos[1], folder / "sub" / "b.mp4")
    (folder / "bad.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, folder, "--checkpoint", checkpoint, "--out", out, "--windows")
    assert code == 1
    assert "2 extracted, 0 skipped (already done), 1 failed of 3 videos" in stdout
    assert f"{folder / 'bad.mp4'}: error: cannot decode" in err
    rows = {r["key"]: r for r in _index(out)}
    assert rows.keys() == {"a.mp4", "bad.mp4", "sub/b.mp4"}
    assert rows["sub/b.mp4"]["features"] == "features/sub/b.mp4.safetensors"
    assert rows["a.mp4"]["windows"] == 15 and "cannot decode" in rows["bad.mp4"]["error"]

    stamp = (out / "features" / "a.mp4.safetensors").stat().st_mtime_ns
    code, stdout, _ = _run(capsys, folder, "--checkpoint", checkpoint, "--out", out, "--windows")
    assert code == 1  # the broken video is tried again and fails again
    assert "0 extracted, 2 skipped (already done), 1 failed of 3 videos" in stdout
    assert (out / "features" / "a.mp4.safetensors").stat().st_mtime_ns == stamp


def test_list_and_root_in_npy(capsys, checkpoint, videos, tmp_path):
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{v.name}\n" for v in videos[:2]))
    out = tmp_path / "out"
    args = ("--list", listing, "--root", videos[0].parent, "--checkpoint", checkpoint)
    code, stdout, _ = _run(capsys, *args, "--out", out, "--format", "npy")
    assert code == 0 and "2 extracted" in stdout
    assert sorted(p.name for p in (out / "features").iterdir()) == [
        "clip0.mp4.npy",
        "clip1.mp4.npy",
    ]
    assert [r["dim"] for r in _index(out)] == [32, 32]


def test_concurrent_shards_equal_one_process(capsys, checkpoint, videos, tmp_path):
    folder = videos[0].parent
    code, _, _ = _run(capsys, folder, "--checkpoint", checkpoint, "--out", tmp_path / "one")
    assert code == 0
    two = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "timesformer", *_argv(folder, "--checkpoint", checkpoint)]
    # One shard by the flag, the other as torchrun would start it.
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(two), "--shard", "0/2"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ),
        subprocess.Popen(
            [*cmd, "--out", str(two)],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**env, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},
        ),
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "shard 0/2: 2 extracted" in outputs[0][0] and "shard 1/2: 1 extracted" in outputs[1][0]
    one, got = _clips(tmp_path / "one"), _clips(two)
    assert one.keys() == got.keys() and len(one) == 3
    for name in one:
        # Other processes: the same code path, but their thread settings are not this test's.
        torch.testing.assert_close(one[name], got[name], rtol=1e-5, atol=1e-5)
    assert _index(two) == _index(tmp_path / "one")
    assert not list(two.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{video}", "--shard", "2/2"], "--shard 2/2: the shard index must be in 0 .. 1"),
        (["{video}", "--shard", "1/0"], "--shard 1/0: the shard count must be at least 1, got 0"),
        (["{video}", "--stride", "1"], "--stride needs --windows"),
        ([], "no videos given"),
        (["{video}", "--list", "{tmp}/none.txt"], "none.txt: cannot read the video list"),
        (["{tmp}/missing.mp4"], "missing.mp4: no such file"),
    ],
)
def test_bad_input_is_one_line(capsys, checkpoint, videos, tmp_path, args, message):
    argv = [a.format(video=videos[0], tmp=tmp_path) for a in args]
    code, _, err = _run(capsys, *argv, "--checkpoint", checkpoint, "--out", tmp_path / "o")
    assert code == 2
    assert err.count("\n") == 1 and message in err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--shard I/N", "torchrun", "skipped", "index.jsonl", "--windows"):
        assert words in text
