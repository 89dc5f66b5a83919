"""``timesformer data prepare``: miniature copies of the official layouts of Kinetics, SSv2,
UCF101 and HMDB51 become ``path label`` lists that ``data.format=csv`` reads and trains on."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import tiny_overrides
from timesformer.cli import main
from timesformer.data import (
    DatasetError,
    VideoClipDataset,
    VideoReader,
    read_hmdb51,
    read_kinetics,
    read_ssv2,
    read_ucf101,
    write_video,
)
from timesformer.data.datasets import _split_entry

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split,is_cc"


@pytest.fixture(scope="module")
def sample_videos(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of one tiny real video per container, copied for every file of the layouts:
    8 frames of 16 x 16 (H.264 MP4; MPEG-4 Part 2 AVI as UCF101 and HMDB51 ship)."""
    folder = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(8, 16, 16, 3), dtype=np.uint8)
    mp4 = write_video(folder / "v.mp4", frames, 25)
    avi = write_video(folder / "v.avi", frames, 25, "mpeg4")
    return {".mp4": mp4.read_bytes(), ".avi": avi.read_bytes(), ".webm": mp4.read_bytes()}


def put(path: Path, videos: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(videos[path.suffix])
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def list_rows(path: Path) -> list[tuple[str, int]]:
    return [(line.rsplit(" ", 1)[0], int(line.rsplit(" ", 1)[1])) for line in lines(path)]


def prepare_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["data", "prepare", "--no-progress", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------ Kinetics


def kinetics_layout(root: Path, videos: dict[str, bytes], per_label: bool = False) -> Path:
    """annotations/{train,val}.csv for 3 classes (one with a space and one with a comma in its
    name); clips flat in train/ and val/ (or in per-label folders), two of them missing."""
    rows = {
        "train": [
            ("abseiling", "aaa", 10, 20),
            ("playing guitar", "bbb", 0, 10),
            ("tying knot, not on a tie", "ccc", 5, 15),
            ("abseiling", "ddd", 100, 110),  # missing
            ("playing guitar", "eee", 1, 11),
        ],
        "val": [
            ("abseiling", "fff", 30, 40),
            ("tying knot, not on a tie", "ggg", 3, 13),
            ("playing guitar", "hhh", 7, 17),  # missing
        ],
    }
    missing = {"ddd", "hhh"}
    (root / "annotations").mkdir(parents=True)
    for split, items in rows.items():
        text = KINETICS_HEADER + "\n"
        for label, yid, start, end in items:
            text += f'"{label}",{yid},{start},{end},{split},False\n'
            if yid in missing:
                continue
            name = f"{yid}_{start:06d}_{end:06d}.mp4"
            folder = root / split / label.replace(" ", "_") if per_label else root / split
            put(folder / name, videos)
        (root / "annotations" / f"{split}.csv").write_text(text)
    return root


KINETICS_CLASSES = ["abseiling", "playing guitar", "tying knot, not on a tie"]


@pytest.mark.parametrize("per_label", [False, True], ids=["flat", "per-label"])
def test_kinetics_lists_labels_classes_and_missing(sample_videos, tmp_path, capsys, per_label):
    src = kinetics_layout(tmp_path / "k400", sample_videos, per_label)
    out = tmp_path / "lists"
    code, stdout, stderr = prepare_cli(capsys, "kinetics", str(src), "--out", str(out))
    assert code == 0, stderr
    assert lines(out / "classes.txt") == KINETICS_CLASSES
    train = list_rows(out / "train.csv")
    assert [(Path(p).name, lab) for p, lab in train] == [
        ("aaa_000010_000020.mp4", 0),
        ("bbb_000000_000010.mp4", 1),
        ("ccc_000005_000015.mp4", 2),
        ("eee_000001_000011.mp4", 1),
    ]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p, _ in train)
    assert [Path(p).name for p, _ in list_rows(out / "val.csv")] == [
        "fff_000030_000040.mp4",
        "ggg_000003_000013.mp4",
    ]
    assert lines(out / "missing.txt") == [
        "train ddd_000100_000110.mp4",
        "val hhh_000007_000017.mp4",
    ]
    assert "4 train, 2 val videos, 3 classes; 2 missing" in stdout
    # The lists read back through the csv reader: a path with a comma (the per-label folder of
    # the class with a comma) must stay one path, and classes.txt beside them names the labels.
    ds = VideoClipDataset.from_csv(out / "train.csv")
    assert ds.class_names == KINETICS_CLASSES
    assert ds.labels == [0, 1, 2, 1]
    assert [p.name for p in ds.paths][2] == "ccc_000005_000015.mp4"


def test_kinetics_errors_name_the_file(sample_videos, tmp_path, capsys):
    src = kinetics_layout(tmp_path / "k400", sample_videos)
    out = tmp_path / "lists"
    (src / "annotations" / "val.csv").unlink()
    code, stdout, stderr = prepare_cli(capsys, "kinetics", str(src), "--out", str(out))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(f"timesformer data: error: {src}: no Kinetics annotation file")
    assert "annotations/val.csv" in stderr
    assert not out.exists()  # nothing half-written
    # A val split none of whose clips is there: wrong SRC, said before anything is written.
    (src / "annotations" / "val.csv").write_text(KINETICS_HEADER + "\nabseiling,zzz,1,2,val,\n")
    code, _, stderr = prepare_cli(capsys, "kinetics", str(src), "--out", str(out))
    assert code == 2 and "val.csv: none of its 1 videos is under" in stderr
    assert not out.exists()
    # A header that is not Kinetics'.
    (src / "annotations" / "val.csv").write_text("path,label\na.mp4,x\n")
    code, _, stderr = prepare_cli(capsys, "kinetics", str(src), "--out", str(out))
    assert code == 2 and "val.csv: not a Kinetics annotation file" in stderr
    code, _, stderr = prepare_cli(capsys, "kinetics", str(src), "--out", str(out), "--split", "2")
    assert code == 2 and "--split applies to ucf101 and hmdb51" in stderr


def test_kinetics_csv_read_directly_by_the_csv_format(sample_videos, tmp_path, caplog):
    """The published annotation CSV as a ``data.format=csv`` list: its header is recognised,
    rows become clips found by name under the root, missing clips are left out with a warning."""
    src = kinetics_layout(tmp_path / "k400", sample_videos, per_label=True)
    with caplog.at_level(logging.WARNING):
        ds = VideoClipDataset.from_csv(src / "annotations" / "train.csv", src)
    assert ds.class_names == KINETICS_CLASSES  # not ["split", "train"]
    assert [p.name for p in ds.paths] == [
        "aaa_000010_000020.mp4",
        "bbb_000000_000010.mp4",
        "ccc_000005_000015.mp4",
        "eee_000001_000011.mp4",
    ]
    assert ds.labels == [0, 1, 2, 1]
    assert "1 of 5 Kinetics clips are not under" in caplog.text
    # Without a root: the folder above annotations/, as the official layout has it.
    val = VideoClipDataset.from_csv(src / "annotations" / "val.csv", classes=KINETICS_CLASSES)
    assert [p.name for p in val.paths] == ["fff_000030_000040.mp4", "ggg_000003_000013.mp4"]
    assert val.labels == [0, 2]
    assert val[0]["video"].shape[1] == 8  # a real clip decodes through the usual path
    with pytest.raises(DatasetError, match="none of its 5 Kinetics clips"):
        VideoClipDataset.from_csv(src / "annotations" / "train.csv", tmp_path / "elsewhere")


def test_read_kinetics_prefers_the_split_folder(sample_videos, tmp_path):
    src = kinetics_layout(tmp_path / "k400", sample_videos)
    put(src / "test" / "aaa_000010_000020.mp4", sample_videos)  # same name in another folder
    prepared = read_kinetics(src)
    assert prepared.splits["train"][0][0] == src / "train" / "aaa_000010_000020.mp4"


# ------------------------------------------------------------------------------ SSv2


def ssv2_layout(root: Path, videos: dict[str, bytes]) -> Path:
    labels = {"Pushing something from left to right": "1", "Holding something": "0"}
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "labels.json").write_text(json.dumps(labels))
    train = [
        {"id": "11", "label": "holding a cup", "template": "Holding [something]"},
        {
            "id": "12",
            "label": "pushing a pen",
            "template": "Pushing [something] from left to right",
        },
        {"id": "13", "label": "holding a pen", "template": "Holding [something]"},
    ]
    val = [{"id": "21", "label": "x", "template": "Pushing [something] from left to right"}]
    (root / "labels" / "train.json").write_text(json.dumps(train))
    (root / "labels" / "validation.json").write_text(json.dumps(val))
    for vid in ("11", "12", "21"):  # 13 missing
        put(root / "20bn-something-something-v2" / f"{vid}.webm", videos)
    return root


def test_ssv2_lists(sample_videos, tmp_path, capsys):
    src = ssv2_layout(tmp_path / "ssv2", sample_videos)
    out = tmp_path / "lists"
    code, stdout, stderr = prepare_cli(capsys, "ssv2", str(src), "--out", str(out))
    assert code == 0, stderr
    assert lines(out / "classes.txt") == [
        "Holding something",
        "Pushing something from left to right",
    ]
    assert [(Path(p).name, lab) for p, lab in list_rows(out / "train.csv")] == [
        ("11.webm", 0),
        ("12.webm", 1),
    ]
    assert [(Path(p).name, lab) for p, lab in list_rows(out / "val.csv")] == [("21.webm", 1)]
    assert lines(out / "missing.txt") == ["train 13.webm"]
    assert "data.flip=false" in stdout


def test_ssv2_unknown_template_names_the_file(sample_videos, tmp_path):
    src = ssv2_layout(tmp_path / "ssv2", sample_videos)
    bad = [{"id": "11", "template": "Dropping [something]"}]
    (src / "labels" / "validation.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"validation.json: entry 0 .*'Dropping something'"):
        read_ssv2(src)
    (src / "labels" / "labels.json").unlink()
    with pytest.raises(DatasetError, match=r"no Something-Something v2 labels\.json"):
        read_ssv2(src)


# ------------------------------------------------------------------------------ UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "Drumming"]


def ucf_layout(root: Path, videos: dict[str, bytes]) -> Path:
    """3 classes x 2 groups x 2 clips; split N tests on group N (of 1, 2), trains on the other."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text(
        "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1))  # CRLF as published
    )
    for split in (1, 2, 3):
        train, test = [], []
        for i, cls in enumerate(UCF_CLASSES, 1):
            for group in (1, 2):
                for clip in (1, 2):
                    rel = f"{cls}/v_{cls}_g{group:02d}_c{clip:02d}.avi"
                    if group == min(split, 2):
                        test.append(f"{rel}\r\n")
                    else:
                        train.append(f"{rel} {i}\r\n")
        (lists / f"trainlist0{split}.txt").write_text("".join(train))
        (lists / f"testlist0{split}.txt").write_text("".join(test))
    for cls in UCF_CLASSES:
        for group in (1, 2):
            for clip in (1, 2):
                put(root / "UCF-101" / cls / f"v_{cls}_g{group:02d}_c{clip:02d}.avi", videos)
    return root


@pytest.fixture(scope="module")
def ucf_src(sample_videos, tmp_path_factory) -> Path:
    return ucf_layout(tmp_path_factory.mktemp("ucf") / "UCF101", sample_videos)


def test_ucf101_splits(ucf_src, tmp_path, capsys):
    out1, out2 = tmp_path / "s1", tmp_path / "s2"
    code, stdout, stderr = prepare_cli(capsys, "ucf101", str(ucf_src), "--out", str(out1))
    assert code == 0, stderr
    assert "ucf101 split 1: 6 train, 6 val videos, 3 classes; 0 missing" in stdout
    assert lines(out1 / "classes.txt") == UCF_CLASSES
    assert lines(out1 / "missing.txt") == []
    train = list_rows(out1 / "train.csv")
    assert [lab for _, lab in train] == [0, 0, 1, 1, 2, 2]
    assert all("_g02_" in p and Path(p).parent.name == UCF_CLASSES[lab] for p, lab in train)
    assert all("_g01_" in p for p, _ in list_rows(out1 / "val.csv"))
    assert prepare_cli(capsys, "ucf101", str(ucf_src), "--out", str(out2), "--split", "2")[0] == 0
    assert all("_g01_" in p for p, _ in list_rows(out2 / "train.csv"))
    assert all("_g02_" in p for p, _ in list_rows(out2 / "val.csv"))


def test_ucf101_bad_input_names_the_file(ucf_src, tmp_path, capsys):
    src = tmp_path / "ucf"
    shutil.copytree(ucf_src, src)
    listing = src / "ucfTrainTestlist" / "trainlist01.txt"
    listing.write_text(listing.read_text() + "Juggling/v_Juggling_g01_c01.avi 4\n")
    out = tmp_path / "lists"
    code, stdout, stderr = prepare_cli(capsys, "ucf101", str(src), "--out", str(out))
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.strip() == (
        f"timesformer data: error: {listing}:7: class 'Juggling' of "
        "'Juggling/v_Juggling_g01_c01.avi' is not in classInd.txt"
    )
    assert not out.exists()
    (src / "ucfTrainTestlist" / "classInd.txt").unlink()
    code, _, stderr = prepare_cli(capsys, "ucf101", str(src), "--out", str(out))
    assert code == 2 and f"{src}: no UCF101 classInd.txt" in stderr
    with pytest.raises(SystemExit) as caught:  # argparse's own refusal, with the usage
        prepare_cli(capsys, "ucf101", str(src), "--out", str(out), "--split", "4")
    assert caught.value.code == 2 and "--split: invalid choice: 4" in capsys.readouterr().err


def test_train_one_epoch_on_the_ucf101_lists(ucf_src, tmp_path, capsys):
    out = tmp_path / "lists"
    assert prepare_cli(capsys, "ucf101", str(ucf_src), "--out", str(out))[0] == 0
    run = tmp_path / "run"
    settings = {
        "data.format": "csv",
        "data.train": "train.csv",
        "data.val": "val.csv",
        "data.batch_size": 6,
        "optim.global_batch": 6,
        "optim.epochs": 1,
    }
    argv = ["train", "--config", "synthetic", *tiny_overrides(out, run, **settings)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert (run / "best.safetensors").is_file() or any(run.rglob("*.safetensors"))
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert history and "train_loss" in history[-1]


@pytest.mark.skipif(
    importlib.util.find_spec("timesformer.data.reencode") is None,
    reason="timesformer.data.reencode is not there yet",
)
def test_ucf101_short_side_lists_the_reencoded_copies(ucf_src, tmp_path, capsys):
    out = tmp_path / "lists"
    argv = ["ucf101", str(ucf_src), "--out", str(out), "--short-side", "8", "--workers", "0"]
    code, stdout, stderr = prepare_cli(capsys, *argv)
    assert code == 0, stderr
    train = list_rows(out / "train.csv")
    assert train[0][0] == "videos/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.mp4"
    with VideoReader(out / train[0][0]) as reader:
        assert min(reader.info().height, reader.info().width) == 8
    assert "re-encoded 12, already done 0, failed 0" in stdout
    # Again: every copy is there, nothing is re-encoded.
    code, stdout, _ = prepare_cli(capsys, *argv)
    assert code == 0 and "re-encoded 0, already done 12, failed 0" in stdout
    assert VideoClipDataset.from_csv(out / "val.csv").paths[0].is_relative_to(out)


# ------------------------------------------------------------------------------ HMDB51


def test_hmdb51_splits(sample_videos, tmp_path, capsys):
    src = tmp_path / "hmdb51"
    splits = src / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    classes = ["brush_hair", "cartwheel"]
    for cls in classes:
        names = [f"{cls}_clip{k}.avi" for k in range(3)]
        for name in names:
            put(src / "hmdb51_org" / cls / name, sample_videos)
        for split in (1, 2, 3):
            # Split N: clip N-1 is the test clip, the next one is not used, the other trains.
            codes = {names[split - 1]: 2, names[split % 3]: 0, names[(split + 1) % 3]: 1}
            text = "".join(f"{n} {codes[n]} \n" for n in names)
            (splits / f"{cls}_test_split{split}.txt").write_text(text)
    prepared = read_hmdb51(src, 2)
    assert prepared.classes == classes
    assert [(p.name, lab) for p, lab in prepared.splits["train"]] == [
        ("brush_hair_clip0.avi", 0),
        ("cartwheel_clip0.avi", 1),
    ]
    assert [p.name for p, _ in prepared.splits["val"]] == [
        "brush_hair_clip1.avi",
        "cartwheel_clip1.avi",
    ]
    out = tmp_path / "lists"
    code, stdout, _ = prepare_cli(capsys, "hmdb51", str(src), "--out", str(out), "--split", "3")
    assert code == 0 and "hmdb51 split 3: 2 train, 2 val videos, 2 classes" in stdout
    assert [Path(p).name for p, _ in list_rows(out / "val.csv")] == [
        "brush_hair_clip2.avi",
        "cartwheel_clip2.avi",
    ]
    (splits / "cartwheel_test_split1.txt").write_text("cartwheel_clip0.avi 7\n")
    with pytest.raises(DatasetError, match=r"cartwheel_test_split1.txt:1: expected 'NAME.avi"):
        read_hmdb51(src, 1)
    shutil.rmtree(splits)
    with pytest.raises(DatasetError, match="no HMDB51 split file"):
        read_hmdb51(src)


# ------------------------------------------------------------------------------ csv reader


def test_csv_entries_with_commas_in_the_path():
    assert _split_entry("a.mp4,3") == ["a.mp4", "3"]
    assert _split_entry("a.mp4, walking") == ["a.mp4", " walking"]
    assert _split_entry("a.mp4,playing guitar") == ["a.mp4", "playing guitar"]
    assert _split_entry("/d/tying knot, not on a tie/x.mp4 2") == [
        "/d/tying knot, not on a tie/x.mp4",
        "2",
    ]
    assert _split_entry("v/x y.mp4 0") == ["v/x y.mp4", "0"]


def test_read_ucf101_api(ucf_src):
    prepared = read_ucf101(ucf_src, 3)
    assert prepared.classes == UCF_CLASSES
    assert len(prepared.splits["train"]) == 6 and len(prepared.splits["val"]) == 6
    assert prepared.missing == []
