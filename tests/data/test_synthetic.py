"""The synthetic motion set: exact time reversal within pairs, determinism, the written files."""

from __future__ import annotations

import dataclasses
import json
import zlib

import numpy as np
import pytest

from timesformer.data import VideoReader, make_synthetic, pair_of, render, sample_params
from timesformer.data import synthetic as synth
from timesformer.errors import TimesformerError

ALL_CLASSES = synth.class_names([p.name for p in synth.PAIRS])


def test_pairs_and_classes():
    assert len(synth.PAIRS) >= 4
    assert synth.class_names() == [
        "right",
        "left",
        "down",
        "up",
        "clockwise",
        "anticlockwise",
        "approaching",
        "receding",
    ]
    assert len(set(ALL_CLASSES)) == len(ALL_CLASSES) == 2 * len(synth.PAIRS)
    for name in ALL_CLASSES:
        assert pair_of(pair_of(name)) == name != pair_of(name)
    with pytest.raises(TimesformerError):
        pair_of("sideways")


@pytest.mark.parametrize("class_name", ALL_CLASSES)
def test_time_reversal_is_exact(class_name):
    """render(pair_of(c), p) == render(c, p)[::-1], bit for bit, for many parameters: both
    render each frame with the same call, only in the other order."""
    pair = synth._class_pair(class_name).name
    # crc32, not hash(): str hashes change from process to process, and a few of the random
    # parameter sets give "appearing" too little motion for the check below (a fresh clone's
    # .ci/run failed on one).
    rng = np.random.default_rng(zlib.crc32(class_name.encode()))
    for frames, size in ((16, 64), (7, 32)):
        params = sample_params(pair, rng, frames=frames, size=size)
        video = render(class_name, params)
        assert video.shape == (frames, size, size, 3) and video.dtype == np.uint8
        np.testing.assert_array_equal(render(pair_of(class_name), params), video[::-1])
        # The motion is there: the video is not its own reversal.
        assert np.abs(video.astype(int) - video[::-1]).mean() > 0.2


def test_frames_of_a_pair_carry_no_class_information():
    """For the same parameters both classes show the same frames, only in opposite order; an
    order-blind summary (the mean over frames) is identical."""
    for pair in synth.PAIRS:
        params = sample_params(pair.name, np.random.default_rng(0))
        a, b = render(pair.forward, params), render(pair.backward, params)
        # Exact: uint8 frames, and sums of integers are exact in float64 in any order.
        np.testing.assert_array_equal(np.sort(a, axis=0), np.sort(b, axis=0))
        np.testing.assert_array_equal(a.mean(axis=0), b.mean(axis=0))
        assert not np.array_equal(a, b)


def test_render_and_params_are_deterministic():
    for pair in synth.PAIRS:
        p1 = sample_params(pair.name, np.random.default_rng(11))
        p2 = sample_params(pair.name, np.random.default_rng(11))
        assert p1 == p2
        # Exact: the same rendering run twice on equal parameters.
        np.testing.assert_array_equal(render(pair.forward, p1), render(pair.forward, p2))
        assert sample_params(pair.name, np.random.default_rng(12)) != p1


def test_params_vary_colour_size_texture_speed_and_position():
    rng = np.random.default_rng(0)
    params = [sample_params("horizontal", rng) for _ in range(60)]
    for field in ("color", "background", "radius", "amount", "center", "texture"):
        assert len({getattr(p, field) for p in params}) > 2, field
    assert {p.texture for p in params} == {"plain", "stripes", "checker"}


def test_motion_direction_is_what_the_name_says():
    """The object's centroid moves right for 'right', down for 'down'; it grows for
    'approaching'."""

    def object_mask(video):
        return np.abs(video.astype(int) - np.median(video, axis=0)).sum(-1) > 60

    rng = np.random.default_rng(5)
    for cls, axis, sign in (("right", 1, 1), ("down", 0, 1)):
        pair = synth._class_pair(cls).name
        p = sample_params(pair, rng)
        p = synth.SynthParams(**{**p.__dict__, "texture": "plain", "background_contrast": 0.0})
        mask = object_mask(render(cls, p))
        first, last = np.argwhere(mask[0]).mean(0), np.argwhere(mask[-1]).mean(0)
        assert sign * (last[axis] - first[axis]) > 5
    p = sample_params("depth", rng)
    video = render("approaching", p)
    background = synth._background(p)
    area = [(np.abs(f.astype(float) / 255 - background).sum(-1) > 0.1).sum() for f in video]
    assert area[-1] > 3 * area[0]


def test_make_synthetic_layout_and_meta(synth_root):
    classes = (synth_root / "classes.txt").read_text().split()
    assert classes == ["right", "left", "clockwise", "anticlockwise"]
    meta = json.loads((synth_root / "meta.json").read_text())
    assert (meta["seed"], meta["frames"], meta["size"]) == (3, 8, 32)
    assert [p["name"] for p in meta["pairs"]] == ["horizontal", "rotation"]
    for split, count in (("train", 3), ("val", 2)):
        for cls in classes:
            files = sorted((synth_root / split / cls).glob("*.mp4"))
            assert [f.name for f in files] == [f"{cls}_{i:04d}.mp4" for i in range(count)]
    reader = VideoReader(synth_root / "train" / "left" / "left_0000.mp4")
    assert (reader.num_frames, reader.size, reader.codec) == (8, (32, 32), "h264")
    assert not list(synth_root.parent.glob(".*partial*"))  # no temporary folder left


def test_written_files_keep_the_time_reversal(synth_root):
    """Decoded files: clip i of a class played backwards is clip i of its pair class, exactly
    (lossless H.264; only the per-frame colour subsampling differs from the rendering)."""
    for split in ("train", "val"):
        for cls in ("right", "clockwise"):
            other = pair_of(cls)
            a = VideoReader(synth_root / split / cls / f"{cls}_0001.mp4").get_frames(range(8))
            b = VideoReader(synth_root / split / other / f"{other}_0001.mp4").get_frames(range(8))
            # Exact: the same uint8 frames, each converted and coded losslessly alike.
            np.testing.assert_array_equal(a.numpy(), b.numpy()[::-1])
            assert np.abs(a.numpy().astype(int) - a.numpy()[::-1]).mean() > 0.5
    # And the files hold the rendered frames (up to the 4:2:0 colour subsampling).
    params = sample_params("rotation", synth._clip_rng(3, "val", "rotation", 1), 8, 32)
    decoded = VideoReader(synth_root / "val" / "clockwise" / "clockwise_0001.mp4")
    error = np.abs(decoded.get_frames(range(8)).numpy().astype(int) - render("clockwise", params))
    assert error.mean() < 3.0


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    kwargs = dict(pairs=("depth",), train_per_class=2, val_per_class=1, frames=6, size=32)
    a = make_synthetic(tmp_path / "a", seed=1, progress=False, **kwargs)
    b = make_synthetic(tmp_path / "b", seed=1, progress=False, **kwargs)
    c = make_synthetic(tmp_path / "c", seed=2, progress=False, **kwargs)
    files = sorted(p.relative_to(a) for p in a.rglob("*.mp4"))
    assert len(files) == 6
    # Exact below: decoded uint8 frames of files written by the same code from equal seeds.
    for rel in files:
        fa = VideoReader(a / rel).get_frames(range(6))
        assert np.array_equal(fa.numpy(), VideoReader(b / rel).get_frames(range(6)).numpy())
    rel = files[0]
    assert not np.array_equal(
        VideoReader(a / rel).get_frames(range(6)).numpy(),
        VideoReader(c / rel).get_frames(range(6)).numpy(),
    )
    # A clip does not depend on how many clips or which pairs were asked for.
    d = make_synthetic(tmp_path / "d", seed=1, progress=False, **{**kwargs, "train_per_class": 3})
    rel = files[0]
    assert np.array_equal(
        VideoReader(a / rel).get_frames(range(6)).numpy(),
        VideoReader(d / rel).get_frames(range(6)).numpy(),
    )


def test_make_synthetic_refuses_to_overwrite(tmp_path):
    out = make_synthetic(
        tmp_path / "s",
        pairs=("fade",),
        train_per_class=1,
        val_per_class=0,
        frames=4,
        size=16,
        progress=False,
    )
    with pytest.raises(TimesformerError, match="already exists"):
        make_synthetic(out, pairs=("fade",), train_per_class=1, val_per_class=0, progress=False)
    again = make_synthetic(
        out,
        pairs=("vertical",),
        train_per_class=1,
        val_per_class=0,
        frames=4,
        size=16,
        overwrite=True,
        progress=False,
    )
    assert (again / "classes.txt").read_text().split() == ["down", "up"]
    assert not (again / "train" / "appearing").exists()
    with pytest.raises(TimesformerError, match="unknown pair"):
        make_synthetic(tmp_path / "x", pairs=("diagonal",), progress=False)


@pytest.mark.slow
def test_only_a_model_that_sees_frame_order_learns_the_pairs(tmp_path):
    """Train two tiny nets on the set: one averages per-frame features over time (order-blind,
    like the space-only scheme), one concatenates them in order. Within a pair the first stays
    at chance, the second learns. About 2 minutes on 2 CPU cores."""
    import torch
    from torch import nn

    from timesformer.data import ClipConfig, VideoClipDataset

    root = make_synthetic(
        tmp_path / "motion", seed=0, train_per_class=40, val_per_class=16, progress=False
    )
    cfg = ClipConfig(num_frames=8, sampling_rate=2, crop_size=32, train_scale=(32, 40), flip=False)

    def load(split, mode, repeats):
        ds = VideoClipDataset.from_folder(root / split, mode=mode, config=cfg)
        items = [ds[i] for _ in range(repeats) for i in range(len(ds))]
        return torch.stack([x["video"] for x in items]), torch.tensor([x["label"] for x in items])

    torch.manual_seed(0)
    x_train, y_train = load("train", "train", 3)
    x_val, y_val = load("val", "val", 1)

    class Net(nn.Module):
        def __init__(self, ordered: bool) -> None:
            super().__init__()
            self.ordered = ordered
            self.frame = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, 2, 1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(4),
                nn.Flatten(),
            )
            width = 32 * 16 * (8 if ordered else 1)
            self.head = nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, 8))

        def forward(self, x):  # (B, 3, T, H, W)
            b, c, t, h, w = x.shape
            f = self.frame(x.transpose(1, 2).reshape(b * t, c, h, w)).reshape(b, t, -1)
            return self.head(f.reshape(b, -1) if self.ordered else f.mean(1))

    within = {}
    for ordered in (False, True):
        torch.manual_seed(0)
        net = Net(ordered)
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        for _ in range(20):
            for idx in torch.randperm(len(x_train)).split(32):
                loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = net(x_val).argmax(1)
        same_pair = pred // 2 == y_val // 2
        within[ordered] = ((pred == y_val) & same_pair).sum().item() / max(same_pair.sum(), 1)
    assert abs(within[False] - 0.5) < 0.12, within
    assert within[True] > 0.75, within


@pytest.mark.parametrize("style", ["simple", "rich"])
def test_a_rotating_object_has_one_tip_so_its_turn_is_not_aliased(style):
    # A near-regular n-gon turned by almost 2pi/n looks turned a little the other way; a
    # single vertex far beyond the others makes the orientation unique over a full turn.
    rng = np.random.default_rng(0)
    for _ in range(20):
        radii = sorted(sample_params("rotation", rng, 16, 32, style).vertex_radii)
        assert radii[-1] == 1.0 and radii[-2] <= 0.55


def _tip_angle(params, k: int) -> float:
    """Screen angle (y down, radians) of the farthest lit pixel from the centre, frame k."""
    frame = render("clockwise", params)[k].astype(float).mean(-1)
    ys, xs = np.nonzero(frame > 128)
    cx, cy = params.center
    far = ((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2).argmax()
    return float(np.arctan2(ys[far] + 0.5 - cy, xs[far] + 0.5 - cx))


def test_rotation_up_points_the_tip_up_at_mid_clip_and_any_keeps_every_other_value():
    # "up": a single frame shows which side of the turn it is on (clockwise: the tip left of
    # up early, right of up late); "any" differs from it in the orientation only.
    for i in range(12):
        up = sample_params("rotation", np.random.default_rng(i), 17, 64, "simple")
        anyway = sample_params("rotation", np.random.default_rng(i), 17, 64, "simple", "any")
        assert up == dataclasses.replace(anyway, angle=up.angle)
        mid = _tip_angle(up, 8)
        assert abs(mid + np.pi / 2) < np.pi / 6 + 0.2, mid  # up, within 30 degrees (+ pixels)
        assert np.cos(_tip_angle(up, 0)) < 0 < np.cos(_tip_angle(up, 16))  # left, then right
    # Other pairs draw the same values whatever the rotation setting.
    for pair in ("horizontal", "fade"):
        a = sample_params(pair, np.random.default_rng(5), rotation="up")
        assert a == sample_params(pair, np.random.default_rng(5), rotation="any")
    angles = [sample_params("rotation", np.random.default_rng(i), rotation="any").angle
              for i in range(40)]  # fmt: skip
    assert np.ptp(np.mod(angles, 2 * np.pi)) > np.pi  # "any": orientations all round
    with pytest.raises(TimesformerError, match="unknown rotation 'sideways'"):
        sample_params("rotation", np.random.default_rng(0), rotation="sideways")
