"""Datasets: the three list formats, item layouts per mode, and bad-file handling."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest
import torch

from data.video_helpers import index_frame, read_indices
from timesformer.data import (
    ClipConfig,
    DatasetError,
    VideoClipDataset,
    VideoReader,
    sampling,
    write_video,
)
from timesformer.errors import ConfigError, TimesformerError

SMALL = ClipConfig(num_frames=4, sampling_rate=2, crop_size=16, train_scale=(16, 20), flip=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_frames", 2.5, "num_frames must be an integer"),
        ("crop_size", "16", "crop_size must be an integer"),
        ("num_crops", True, "num_crops must be an integer"),
        ("test_scale", 20.0, "test_scale must be an integer"),
        ("train_scale", (16,), "train_scale must be 2 integers"),
        ("mean", (0.5, 0.5), "mean must be 3 numbers"),
        ("std", (0.2, float("nan"), 0.2), "std must be 3 numbers"),
        ("std", (0.2, 0.0, 0.2), "std must be positive"),
        ("target_fps", "30", "target_fps must be a number"),
    ],
)
def test_clip_config_refuses_values_of_the_wrong_type(field, value, message):
    """Clip settings also come from checkpoint metadata: a value of the wrong type is refused
    here, not met later as a crash inside sampling or the transforms."""
    fields = {"crop_size": 16, "train_scale": (16, 20), field: value}
    with pytest.raises(ConfigError, match=message):
        ClipConfig(**fields)
    assert ClipConfig(num_frames=np.int64(4), crop_size=16, train_scale=(16, 20)).num_frames == 4


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """Three 24-frame index videos, 16 x 32, in a folder with a sub-folder."""
    root = tmp_path_factory.mktemp("clips")
    (root / "sub").mkdir()
    for name in ("a.mp4", "b.mp4", "sub/c.mp4"):
        write_video(root / name, [index_frame(i) for i in range(24)], 30)
    return root


# ---------------------------------------------------------------------------- list formats


def test_from_csv_space_and_comma(clip_dir, tmp_path):
    space = tmp_path / "train.csv"
    space.write_text("a.mp4 0\nb.mp4 2\n\nsub/c.mp4 1\n")
    ds = VideoClipDataset.from_csv(space, root=clip_dir, config=SMALL)
    assert len(ds) == 3
    assert ds.labels == [0, 2, 1]
    assert ds.paths[2] == clip_dir / "sub" / "c.mp4"
    assert ds.class_names == ["0", "1", "2"]
    comma = tmp_path / "list.csv"
    comma.write_text("path,label\na.mp4,walking\nsub/c.mp4,dancing\nb.mp4,walking\n")
    ds = VideoClipDataset.from_csv(comma, root=clip_dir, config=SMALL)
    assert ds.class_names == ["dancing", "walking"]
    assert ds.labels == [1, 0, 1]


def test_from_csv_with_class_file_and_default_root(clip_dir, tmp_path):
    listing = clip_dir / "list.txt"
    listing.write_text("a.mp4 walking\nb.mp4 abseiling\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("walking\nabseiling\nzumba\n")
    ds = VideoClipDataset.from_csv(listing, classes=classes, config=SMALL)
    assert ds.class_names == ["walking", "abseiling", "zumba"]
    assert ds.labels == [0, 1]
    assert ds.paths[0] == clip_dir / "a.mp4"
    assert ds[1]["path"] == str(clip_dir / "b.mp4")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a.mp4 0\njustonefield\n", ":2: expected 'path label'"),
        ("a.mp4 running\n", "not in the class list"),
        ("", "lists no videos"),
    ],
)
def test_from_csv_errors(tmp_path, text, words):
    listing = tmp_path / "bad.csv"
    listing.write_text(text)
    classes = ["walking"] if "running" in text else None
    with pytest.raises(DatasetError) as caught:
        VideoClipDataset.from_csv(listing, classes=classes)
    assert words in str(caught.value)
    with pytest.raises(DatasetError, match="cannot read"):
        VideoClipDataset.from_csv(tmp_path / "missing.csv")


def test_from_csv_label_out_of_range(clip_dir, tmp_path):
    listing = tmp_path / "l.csv"
    listing.write_text("a.mp4 5\n")
    with pytest.raises(DatasetError, match="label 5 outside the 2 classes"):
        VideoClipDataset.from_csv(listing, root=clip_dir, classes=["x", "y"])


def test_from_folder_uses_classes_txt(synth_root):
    ds = VideoClipDataset.from_folder(synth_root / "train", config=SMALL)
    assert ds.class_names == (synth_root / "classes.txt").read_text().split()
    assert ds.class_names == ["right", "left", "clockwise", "anticlockwise"]
    assert len(ds) == 12
    for path, label in zip(ds.paths, ds.labels, strict=True):
        assert path.parent.name == ds.class_names[label]


def test_from_folder_sorted_names_and_errors(clip_dir, tmp_path):
    root = tmp_path / "folders"
    for cls in ("zebra", "apple"):
        (root / cls).mkdir(parents=True)
        shutil.copy(clip_dir / "a.mp4", root / cls / "x.MP4")
    (root / "apple" / "notes.txt").write_text("not a video")
    ds = VideoClipDataset.from_folder(root, config=SMALL)
    assert ds.class_names == ["apple", "zebra"]
    assert len(ds) == 2  # the .txt is not a video
    with pytest.raises(DatasetError, match="not a class of the class list"):
        VideoClipDataset.from_folder(root, classes=["apple"])
    with pytest.raises(DatasetError, match="is not a folder"):
        VideoClipDataset.from_folder(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no videos"):
        VideoClipDataset.from_folder(tmp_path / "empty")


def test_from_ssv2(clip_dir, tmp_path):
    videos = tmp_path / "20bn"
    videos.mkdir()
    for vid in ("101", "102", "103"):
        shutil.copy(clip_dir / "a.mp4", videos / f"{vid}.webm")
    label_map = {
        "Pushing something from left to right": "0",
        "Pushing something from right to left": "1",
    }
    items = [
        {"id": "101", "template": "Pushing [something] from right to left"},
        {"id": "102", "template": "Pushing [something] from left to right"},
        {"id": "103"},  # the test list has no labels
    ]
    (tmp_path / "labels.json").write_text(json.dumps(label_map))
    (tmp_path / "train.json").write_text(json.dumps(items))
    ds = VideoClipDataset.from_ssv2(tmp_path / "train.json", videos, tmp_path / "labels.json")
    assert ds.class_names == list(label_map)
    assert ds.labels == [1, 0, -1]
    assert ds.config.sampling == "segment" and ds.config.flip is False
    assert ds.paths[0] == videos / "101.webm"
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "1", "template": "Juggling"}]))
    with pytest.raises(DatasetError, match="not in the label map"):
        VideoClipDataset.from_ssv2(tmp_path / "bad.json", videos, tmp_path / "labels.json")


# ---------------------------------------------------------------------------- items


def test_items_per_mode(clip_dir):
    videos = [(clip_dir / "a.mp4", 0), (clip_dir / "b.mp4", 1)]
    cfg = ClipConfig(num_frames=4, sampling_rate=2, crop_size=16, train_scale=(16, 20), num_clips=2)
    train = VideoClipDataset(videos, ["x", "y"], "train", cfg)[1]
    assert train["video"].shape == (3, 4, 16, 16) and train["video"].dtype == torch.float32
    assert (train["label"], train["index"], train["failed"]) == (1, 1, [])
    assert train["path"] == str(clip_dir / "b.mp4")
    val = VideoClipDataset(videos, ["x", "y"], "val", cfg)[0]
    assert val["video"].shape == (3, 4, 16, 16)
    test = VideoClipDataset(videos, ["x", "y"], "test", cfg)[0]
    assert test["video"].shape == (6, 3, 4, 16, 16)  # 2 clips x 3 crops
    # Normalised with mean 0.45 and std 0.225: values span about [-2, 2.45].
    assert float(val["video"].min()) >= -2.01 and float(val["video"].max()) <= 2.45


def test_val_clip_is_the_centre_window(clip_dir):
    """Val takes the centred window; the frames carry their index, so the clip shows which."""
    cfg = ClipConfig(num_frames=4, sampling_rate=2, crop_size=16, train_scale=(16, 20))
    ds = VideoClipDataset([(clip_dir / "a.mp4", 0)], ["x"], "val", cfg)
    reader = VideoReader(clip_dir / "a.mp4")
    expected = sampling.test_indices(24, 4, 2, 0, 1, reader.fps)
    assert expected.tolist() == [8, 10, 12, 15]
    frames = ds._read(reader, np.random.default_rng(0))
    assert read_indices(frames) == expected.tolist()


def test_train_items_vary_and_reproduce_from_torch_seed(clip_dir):
    ds = VideoClipDataset([(clip_dir / "a.mp4", 0)], ["x"], "train", SMALL)
    torch.manual_seed(0)
    a = [ds[0]["video"] for _ in range(4)]
    ds2 = VideoClipDataset([(clip_dir / "a.mp4", 0)], ["x"], "train", SMALL)
    torch.manual_seed(0)
    b = [ds2[0]["video"] for _ in range(4)]
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
    assert not all(torch.equal(a[0], x) for x in a[1:])


def test_config_validation():
    with pytest.raises(ValueError):
        ClipConfig(crop_size=224, train_scale=(200, 320))
    with pytest.raises(ValueError):
        ClipConfig(num_crops=2)
    with pytest.raises(ValueError):
        ClipConfig(sampling="random")


# ---------------------------------------------------------------------------- bad files


@pytest.fixture
def mixed_dir(clip_dir, tmp_path):
    """Two good videos and two bad files."""
    shutil.copy(clip_dir / "a.mp4", tmp_path / "good0.mp4")
    shutil.copy(clip_dir / "b.mp4", tmp_path / "good1.mp4")
    (tmp_path / "bad0.mp4").write_text("not a video")
    (tmp_path / "bad1.mp4").write_bytes(b"")
    return tmp_path


def test_bad_file_is_replaced_and_reported(mixed_dir):
    videos = [(mixed_dir / n, i) for i, n in enumerate(["good0.mp4", "bad0.mp4", "good1.mp4"])]
    for mode in ("train", "val"):
        ds = VideoClipDataset(videos, ["a", "b", "c"], mode, SMALL)
        item = ds[1]
        assert item["failed"] == [str(mixed_dir / "bad0.mp4")]
        assert item["index"] in (0, 2)
        assert item["label"] == item["index"]  # the label belongs to the video used
        assert item["path"] == str(videos[item["index"]][0])
        if mode == "val":
            assert item["index"] == 2  # the next video, deterministic
        # Asked again, the known-bad file is not decoded again but still reported.
        assert ds[1]["failed"] == [str(mixed_dir / "bad0.mp4")]
        assert ds.failures[str(mixed_dir / "bad0.mp4")] == 2
        assert ds[0]["failed"] == []


def test_replacement_search_does_not_report_known_bad_files_again(mixed_dir):
    names = ["bad0.mp4", "bad1.mp4", "good0.mp4"]
    ds = VideoClipDataset([(mixed_dir / n, 0) for n in names], ["a"], "val", SMALL)
    assert ds[0]["failed"] == [str(mixed_dir / "bad0.mp4"), str(mixed_dir / "bad1.mp4")]
    assert ds[0]["failed"] == [str(mixed_dir / "bad0.mp4")]  # bad1 is known now
    assert ds[1]["failed"] == [str(mixed_dir / "bad1.mp4")]


def test_every_file_bad_stops_with_a_clear_error(mixed_dir):
    videos = [(mixed_dir / "bad0.mp4", 0), (mixed_dir / "bad1.mp4", 0), (mixed_dir / "x.mp4", 0)]
    for mode in ("train", "test"):
        ds = VideoClipDataset(videos, ["a"], mode, SMALL)
        with pytest.raises(DatasetError) as caught:
            ds[0]
        message = str(caught.value)
        assert message.startswith("every video tried failed to decode: 3 of 3; first error: ")
        assert "bad0.mp4" in message
        assert isinstance(caught.value, TimesformerError)


def test_mostly_bad_dataset_still_trains(mixed_dir):
    """9 bad files and 1 good one: every item is the good video, none raises."""
    videos = [(mixed_dir / "bad0.mp4", 0)] * 9 + [(mixed_dir / "good0.mp4", 1)]
    ds = VideoClipDataset(videos, ["a", "b"], "train", SMALL)
    for i in range(10):
        item = ds[i]
        assert item["index"] == 9 and item["label"] == 1


def test_truncated_file_samples_from_the_frames_that_decode(tmp_path):
    """A file cut inside a packet: its packets promise 51 frames, 50 decode. The clip is
    sampled again from the 50 instead of counting the file as bad."""
    full = write_video(
        tmp_path / "full.mp4",
        [index_frame(i) for i in range(60)],
        30,
        options={"g": "12"},
        container_options={"movflags": "+faststart"},
    )
    with av.open(str(full)) as container:
        positions = [p.pos for p in container.demux(video=0) if p.size]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: positions[50] + 6])
    assert VideoReader(cut).num_frames == 51
    cfg = ClipConfig(num_frames=8, sampling_rate=8, crop_size=16, train_scale=(16, 16))
    ds = VideoClipDataset([(cut, 0)], ["x"], "val", cfg)
    item = ds[0]
    assert item["failed"] == [] and item["video"].shape == (3, 8, 16, 16)
    assert VideoReader(cut).num_frames == 50  # the count by decoding, cached for the file


def test_relabel_matches_classes_by_name(tmp_path):
    videos = [(tmp_path / "a.mp4", 0), (tmp_path / "b.mp4", 1), (tmp_path / "c.mp4", -1)]
    dataset = VideoClipDataset(videos, ["cat", "dog"], mode="test", config=SMALL)
    dataset.relabel(["bird", "dog", "cat"])  # a model's order, with a class the data lacks
    assert dataset.labels == [2, 1, -1] and dataset.class_names == ["bird", "dog", "cat"]
    with pytest.raises(DatasetError, match="class 'dog' of the data is not one of the 2"):
        dataset.relabel(["cat", "bird"])
    assert dataset.labels == [2, 1, -1]  # unchanged by the refusal
