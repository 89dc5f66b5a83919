"""The long-video order set: classes differ in event order only, events far apart, the files."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from timesformer.data import VideoReader
from timesformer.data import long_synthetic as ls
from timesformer.errors import TimesformerError

SMALL = dict(seconds=8.0, fps=8.0, size=16, event_seconds=(0.25, 0.5), min_gap=1.5)


def _event_mask(video: np.ndarray) -> np.ndarray:
    """(T,) bool: frames that show an event (a saturated colour, which the grey clutter never
    has). video uint8 (T, H, W, 3)."""
    v = video.astype(int)
    saturation = v.max(-1) - v.min(-1)  # (T, H, W)
    return (saturation > 100).mean(axis=(1, 2)) > 0.1


def test_class_names_are_the_orders_of_the_events():
    assert ls.long_class_names() == ["red_blue", "blue_red"] == list(ls.DEFAULT_LONG_CLASSES)
    three = ls.long_class_names(("red", "green", "blue"))
    assert len(three) == len(set(three)) == 6
    assert all(sorted(c.split("_")) == ["blue", "green", "red"] for c in three)
    assert "order" in ls.describe_long_task() and "red" in ls.describe_long_task()


@pytest.mark.parametrize("events", [("red", "blue"), ("red", "green", "blue")])
def test_classes_differ_in_event_order_only(events):
    """For the same parameters every class shows the same multiset of frames, bit for bit, in
    another order: an order-blind summary (sorted frames, mean frame) cannot tell them apart."""
    classes = ls.long_class_names(events)
    rng = np.random.default_rng(7)
    for _ in range(3):
        params = ls.sample_long_params(events, rng, **SMALL)
        videos = [ls.render_long(c, params) for c in classes]
        assert videos[0].shape == (64, 16, 16, 3) and videos[0].dtype == np.uint8
        reference = sorted(f.tobytes() for f in videos[0])
        for other in videos[1:]:
            assert sorted(f.tobytes() for f in other) == reference
            np.testing.assert_array_equal(other.mean(axis=0), videos[0].mean(axis=0))
            assert not np.array_equal(other, videos[0])  # the order differs


def test_events_are_where_the_params_say_and_in_the_class_order():
    params = ls.sample_long_params(("red", "blue"), np.random.default_rng(3), **SMALL)
    for cls in ls.long_class_names():
        video = ls.render_long(cls, params)
        spans = ls.event_spans(cls, params)
        assert [e for e, _, _ in spans] == cls.split("_")
        expected = np.zeros(params.frames, dtype=bool)
        for event, start, end in spans:
            expected[start:end] = True
            mean = video[start:end].reshape(-1, 3).astype(float).mean(0)
            # Red: more red than blue in the flash's frames; blue: the other way round.
            assert (mean[0] > mean[2]) == (event == "red")
        np.testing.assert_array_equal(_event_mask(video), expected)


@pytest.mark.parametrize("placement", ls.PLACEMENTS)
def test_events_are_farther_apart_than_a_short_window_covers(placement):
    """At the defaults (24 s at 12 fps) consecutive events are >= 3 s apart: more than the 32
    frames an 8-frame window at rate 4 spans (the Table 8 demo's baseline), so no window sees
    two events; and an event lasts long enough (>= 12 frames) that 32 uniform samples, one per 9
    frames, catch it but short enough (<= 18 frames) that 8 samples, one per 36 frames, often
    miss it."""
    rng = np.random.default_rng(0)
    window = 8 * 4
    for _ in range(20):
        params = ls.sample_long_params(("red", "blue"), rng, placement=placement)
        assert params.frames == 288
        if placement == "parts":  # slot j in the j-th half of the video
            assert params.starts[0] + params.event_length <= 144 <= params.starts[1]
        assert 12 <= params.event_length <= 18
        spans = ls.event_spans("red_blue", params)
        for (_, _, end), (_, start, _) in itertools.pairwise(spans):
            assert start - end >= math.ceil(3.0 * 12) > window
        # In the rendered frames: every window of 32 frames holds frames of one event at most.
        video = ls.render_long("blue_red", params)
        mask = _event_mask(video)
        labels = np.zeros(params.frames, dtype=int)
        for j, (_, start, end) in enumerate(ls.event_spans("blue_red", params)):
            labels[start:end] = j + 1
        assert np.array_equal(mask, labels > 0)
        # The last frame of one event and the first of the next are >= 32 frames apart.
        last_of_first = np.flatnonzero(labels == 1).max()
        assert np.flatnonzero(labels == 2).min() - last_of_first > window


def test_params_are_deterministic_and_vary():
    a = ls.sample_long_params(("red", "blue"), np.random.default_rng(11))
    b = ls.sample_long_params(("red", "blue"), np.random.default_rng(11))
    assert a == b
    np.testing.assert_array_equal(ls.render_long("red_blue", a), ls.render_long("red_blue", b))
    rng = np.random.default_rng(1)
    many = [ls.sample_long_params(("red", "blue"), rng) for _ in range(40)]
    for field in ("starts", "event_length", "background", "clutter_xy", "event_radius"):
        assert len({getattr(p, field) for p in many}) > 2, field


def test_make_long_synthetic_layout_meta_and_determinism(tmp_path):
    kwargs = dict(train_per_class=2, val_per_class=1, progress=False, **SMALL)
    a = ls.make_long_synthetic(tmp_path / "a", seed=4, **kwargs)
    classes = (a / "classes.txt").read_text().split()
    assert classes == ["red_blue", "blue_red"]
    meta = json.loads((a / "meta.json").read_text())
    assert meta["classes"] == classes and meta["events"] == ["red", "blue"]
    assert (meta["seed"], meta["frames"], meta["size"], meta["fps"]) == (4, 64, 16, 8.0)
    assert all(meta[k] is not None for k in ls.META_KEYS)
    for split, count in (("train", 2), ("val", 1)):
        for cls in classes:
            files = sorted((a / split / cls).glob("*.mp4"))
            assert [f.name for f in files] == [f"{cls}_{i:04d}.mp4" for i in range(count)]
    assert not list(tmp_path.glob(".*partial*"))  # no temporary folder left
    reader = VideoReader(a / "train" / "blue_red" / "blue_red_0001.mp4")
    assert (reader.num_frames, reader.size, reader.codec) == (64, (16, 16), "h264")
    # The file holds the rendering (lossless H.264 up to the 4:2:0 colour subsampling), and
    # clip i of both classes shares its parameters: the same frames, in another order.
    params = ls.sample_long_params(("red", "blue"), ls._clip_rng(4, "train", 1), **SMALL)
    decoded = reader.get_frames(range(64)).numpy()
    assert np.abs(decoded.astype(int) - ls.render_long("blue_red", params)).mean() < 3.0
    other = VideoReader(a / "train" / "red_blue" / "red_blue_0001.mp4").get_frames(range(64))
    assert sorted(f.tobytes() for f in other.numpy()) == sorted(f.tobytes() for f in decoded)
    # The same seed writes the same frames; another seed other frames.
    b = ls.make_long_synthetic(tmp_path / "b", seed=4, **kwargs)
    c = ls.make_long_synthetic(tmp_path / "c", seed=5, **kwargs)
    rel = "val/red_blue/red_blue_0000.mp4"
    fa = VideoReader(a / rel).get_frames(range(64)).numpy()
    assert np.array_equal(fa, VideoReader(b / rel).get_frames(range(64)).numpy())
    assert not np.array_equal(fa, VideoReader(c / rel).get_frames(range(64)).numpy())


def test_make_long_synthetic_refuses_and_replaces(tmp_path):
    out = ls.make_long_synthetic(
        tmp_path / "s", train_per_class=1, val_per_class=0, progress=False, **SMALL
    )
    with pytest.raises(TimesformerError, match="already exists"):
        ls.make_long_synthetic(out, train_per_class=1, val_per_class=0, progress=False, **SMALL)
    again = ls.make_long_synthetic(
        out,
        classes=("green_yellow", "yellow_green"),
        train_per_class=1,
        val_per_class=0,
        overwrite=True,
        progress=False,
        **SMALL,
    )
    assert (again / "classes.txt").read_text().split() == ["green_yellow", "yellow_green"]
    assert not (again / "train" / "red_blue").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(TimesformerError, match="is a file"):
        ls.make_long_synthetic(tmp_path / "file", overwrite=True, progress=False, **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ("red_purple", "purple_red")}, "unknown event"),
        ({"classes": ("red_blue", "red_green")}, "same events"),
        ({"classes": ("red_blue", "red_blue")}, "twice"),
        ({"classes": ("red",)}, "2 or more"),
        ({"classes": ()}, "no classes"),
        ({"train_per_class": 0, "val_per_class": 0}, "at least one video"),
        ({"seconds": 2.0}, "do not fit"),
        ({"size": 8}, ">= 16 pixels"),
        ({"fps": 0.0}, "positive"),
        ({"event_seconds": (0.5, 0.25)}, "event_seconds"),
        ({"crf": 60}, "crf"),
        ({"placement": "random"}, "unknown placement"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, kwargs, message):
    args = {**SMALL, "train_per_class": 1, "val_per_class": 1, "progress": False, **kwargs}
    with pytest.raises(TimesformerError, match=message):
        ls.make_long_synthetic(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_data_synth_long_writes_the_set_from_the_command_line(tmp_path, capsys):
    from timesformer.cli import main

    out = tmp_path / "long"
    argv = ["data", "synth", str(out), "--long", "--train-per-class", "1", "--val-per-class", "1",
            "--seconds", "8", "--fps", "6"]  # fmt: skip
    assert main(argv) == 0
    assert "2 classes x (1 train + 1 val) videos of 8 s at 6 fps, 32x32" in capsys.readouterr().out
    assert len(list(out.rglob("*.mp4"))) == 4
    assert main(argv) == 2  # the folder exists: one line, nothing replaced
    assert "already exists and is not empty; add --overwrite" in capsys.readouterr().err
    assert main([*argv[:3], "--long", "--seconds", "0"]) == 2
