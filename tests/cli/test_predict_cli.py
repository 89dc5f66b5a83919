"""``timesformer predict``: text, JSON Lines and a JSON array, folders, failures, windows and
timelines, and a write that fails."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from helpers import terminal_lines
from inference.conftest import CLASSES
from timesformer.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv), "--sampling-rate", "2", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines_for_a_folder(capsys, checkpoint, videos):
    code, out, _ = _run(capsys, videos[0].parent, "--checkpoint", checkpoint, "--json", "--topk", 2)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(v) for v in videos]
    for r in rows:
        assert len(r["top"]) == 2 and r["views"] == 3
        assert {t["label"] for t in r["top"]} <= set(CLASSES)  # the checkpoint's own names
        assert r["top"][0]["prob"] >= r["top"][1]["prob"]


def test_int8_on_the_cpu(capsys, checkpoint, videos):
    fp32 = _run(capsys, videos[0], "--checkpoint", checkpoint, "--json", "--topk", 1)
    int8 = _run(capsys, videos[0], "--checkpoint", checkpoint, "--json", "--topk", 1,
                "--precision", "int8")  # fmt: skip
    assert fp32[0] == int8[0] == 0
    top = [json.loads(run[1])["top"][0] for run in (fp32, int8)]
    assert top[0]["label"] == top[1]["label"]
    assert top[0]["prob"] == pytest.approx(top[1]["prob"], abs=0.02)


def test_text_output_and_a_failing_file(capsys, checkpoint, videos, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    out_file = tmp_path / "preds.jsonl"
    code, out, err = _run(capsys, videos[0], bad, "--checkpoint", checkpoint, "--out", out_file)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{videos[0]}: ") and lines[1].startswith(f"{bad}: error: ")
    assert "1 of 2 videos failed" in err
    rows = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert "error" in rows[1] and "top" in rows[0]


def test_shipped_label_set_must_fit_the_model(capsys, checkpoint, videos):
    code, _, err = _run(capsys, videos[0], "--checkpoint", checkpoint, "--labels", "kinetics400")
    assert code == 2
    assert err.count("\n") == 1 and "400 class names" in err


def test_labels_file_renames_the_classes(capsys, checkpoint, videos, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i}" for i in range(5)) + "\n")
    code, out, _ = _run(capsys, videos[0], "--checkpoint", checkpoint, "--labels", names, "--json")
    assert code == 0
    assert all(t["label"].startswith("n") for t in json.loads(out)["top"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.mp4", "--checkpoint", "{ckpt}"], "no such file"),
        (["{video}", "--checkpoint", "missing.safetensors"], "missing.safetensors"),
        (["{video}", "--checkpoint", "{ckpt}", "--topk", "0"], "--topk"),
        (["{video}", "--checkpoint", "{ckpt}", "--stride", "2"], "--windows"),
        (["{video}", "--checkpoint", "{ckpt}", "--windows", "--stride", "-1"], "stride"),
        (["{video}", "--checkpoint", "{ckpt}", "--precision", "int8", "--compile"], "int8"),
    ],
)
def test_user_mistakes_give_one_line(capsys, checkpoint, videos, args, message):
    argv = [a.format(ckpt=checkpoint, video=videos[0]) for a in args]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_windows_and_timeline(capsys, checkpoint, videos, tmp_path):
    code, out, _ = _run(
        capsys,
        *videos[:2],
        "--checkpoint",
        checkpoint,
        "--windows",
        "--stride",
        "1",
        "--timeline",
        tmp_path,
        "--json",
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    for r, v in zip(rows, videos, strict=False):
        starts = [w["start"] for w in r["windows"]]
        assert starts[:3] == [0.0, 1.0, 2.0]  # every second
        assert r["windows"][-1]["end"] == pytest.approx(4.0)  # 40 frames at 10 fps
        png = tmp_path / f"{v.stem}_timeline.png"
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_results_print_above_the_progress_bar(monkeypatch, checkpoint, videos):
    # Regression: each result was printed onto the progress bar's line.
    lines = terminal_lines(monkeypatch)
    code = main(["predict", *map(str, videos), "--checkpoint", str(checkpoint),
                 "--sampling-rate", "2"])  # fmt: skip
    assert code == 0
    screen = lines()
    assert any(ln.startswith("predict: ") for ln in screen)  # the bar was drawn
    results = [ln for ln in screen if any(str(v) in ln for v in videos)]
    assert len(results) == len(videos) and all(
        ln.startswith(str(videos[0].parent)) for ln in results
    )


def test_json_array_prints_one_document(capsys, checkpoint, videos, tmp_path):
    out_file = tmp_path / "preds.jsonl"
    code, out, _ = _run(
        capsys, *videos[:2], "--checkpoint", checkpoint, "--json-array", "--out", out_file
    )
    assert code == 0
    rows = json.loads(out)  # the whole of stdout is one JSON document
    assert [r["path"] for r in rows] == [str(v) for v in videos[:2]]
    # --out keeps JSON Lines, one of the same objects per line.
    assert [json.loads(x) for x in out_file.read_text().splitlines()] == rows
    # One way of printing at a time.
    with pytest.raises(SystemExit) as caught:
        main(["predict", str(videos[0]), "--checkpoint", str(checkpoint), "--json",
              "--json-array"])  # fmt: skip
    assert caught.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_help_names_json_lines(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "print JSON Lines" in text and "--json-array" in text


def test_a_write_that_fails_midway_is_one_line_and_leaves_nothing(
    capsys, checkpoint, videos, tmp_path, monkeypatch
):
    def full_disk(self, data, *args, **kwargs):
        with open(self, "w") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full_disk)
    out_file = tmp_path / "new" / "preds.jsonl"
    code, _, err = _run(capsys, videos[0], "--checkpoint", checkpoint, "--out", out_file)
    assert code == 2
    assert err == (
        f"timesformer predict: error: --out {out_file}: writing failed: No space left on device\n"
    )
    # Neither the half-written temporary file nor the folder made for it is left.
    assert list(tmp_path.iterdir()) == []
