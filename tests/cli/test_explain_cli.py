"""`timesformer explain` writes a PNG grid and a GIF of the rollout, and fails in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import randomize, tiny
from timesformer.checkpoints import save_checkpoint
from timesformer.cli import main
from timesformer.data import write_video


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("explain")
    frames = np.full((20, 24, 32, 3), 40, np.uint8)
    for i in range(20):  # a bright square moving right
        frames[i, 6:14, i : i + 8] = 230
    video = write_video(folder / "square.mp4", frames, fps=10)
    model = randomize(tiny("divided"))
    model.class_names = ["up", "down", "left", "right", "still"]
    ckpt = save_checkpoint(model, folder / "tiny.safetensors")
    space = save_checkpoint(randomize(tiny("space")), folder / "space.safetensors")
    return {"video": video, "ckpt": ckpt, "space": space, "folder": folder}


def test_writes_png_and_gif(files, tmp_path, capsys):
    out = tmp_path / "maps"
    code = main(
        ["explain", str(files["video"]), "--checkpoint", str(files["ckpt"]), "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "top class: " in printed
    assert any(name in printed for name in ("up", "down", "left", "right", "still"))
    with Image.open(out / "square_rollout.png") as png:
        assert png.format == "PNG" and png.width > 100
    with Image.open(out / "square_rollout.gif") as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 4  # one GIF frame per frame of the tiny model's clip
        assert min(gif.size) >= 224  # small clips are enlarged
    # No temporary files left beside the outputs.
    assert sorted(p.name for p in out.iterdir()) == ["square_rollout.gif", "square_rollout.png"]


def test_space_scheme_and_options(files, tmp_path, capsys):
    args = ["explain", str(files["video"]), "--checkpoint", str(files["space"])]
    args += ["--out", str(tmp_path), "--head-fusion", "max", "--discard-ratio", "0.5"]
    args += ["--sampling-rate", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "every 2 frames at 30 fps" in printed
    assert "class " in printed  # no class names stored: the index is printed
    with Image.open(tmp_path / "square_rollout.gif") as gif:
        assert gif.n_frames == 4


def one_line_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_video_is_one_line_and_exit_2(files, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video at all" * 50)
    err = one_line_error(
        capsys, ["explain", str(bad), "--checkpoint", str(files["ckpt"]), "--out", str(tmp_path)]
    )
    assert "broken.mp4" in err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.gif"))


def test_bad_checkpoint_is_one_line_and_exit_2(files, tmp_path, capsys):
    err = one_line_error(
        capsys,
        [
            "explain",
            str(files["video"]),
            "--checkpoint",
            str(files["video"]),
            "--out",
            str(tmp_path),
        ],
    )
    assert "square.mp4" in err


def test_bad_discard_ratio_is_one_line(files, capsys):
    args = ["explain", str(files["video"]), "--checkpoint", str(files["ckpt"])]
    err = one_line_error(capsys, [*args, "--discard-ratio", "1.5"])
    assert "--discard-ratio" in err


def test_help_lists_explain(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    assert "rollout" in capsys.readouterr().out
