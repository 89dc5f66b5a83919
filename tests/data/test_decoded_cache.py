"""``data.cache_decoded``: a video decoded once, then read from memory, gives the same clips."""

from __future__ import annotations

import numpy as np
import torch

from timesformer.data import make_synthetic
from timesformer.data.datasets import ClipConfig, VideoClipDataset
from timesformer.data.frames import DecodedVideo, open_video


def two_datasets(tmp_path) -> tuple[VideoClipDataset, VideoClipDataset]:
    """The same training set twice, the second to be cached: (plain, cached)."""
    root = make_synthetic(tmp_path / "set", train_per_class=2, val_per_class=1, frames=16,
                          size=32, style="simple", progress=False)  # fmt: skip
    config = ClipConfig(num_frames=4, sampling_rate=4, crop_size=32, train_scale=(32, 40))
    plain, cached = (
        VideoClipDataset.from_folder(root / "train", mode="train", config=config) for _ in "ab"
    )
    cached.cache_decoded = True
    return plain, cached


def test_cached_clips_are_the_files_clips_and_the_file_is_read_once(tmp_path, monkeypatch):
    plain, cached = two_datasets(tmp_path)
    opened = []
    import timesformer.data.datasets as datasets

    real_open = datasets.open_video
    monkeypatch.setattr(
        datasets, "open_video", lambda *a, **k: opened.append(a) or real_open(*a, **k)
    )
    for epoch in range(3):
        for i in range(len(plain)):
            # Exact: the same decoder's uint8 frames, the same seeded crop and flip.
            assert torch.equal(cached[(epoch, i)]["video"], plain[(epoch, i)]["video"])
    # The plain dataset opened its file every time; the cached one once per video.
    assert len(opened) == 3 * len(plain) + len(cached)


def test_decoded_video_reads_as_its_reader(tmp_path):
    root = make_synthetic(tmp_path / "set", train_per_class=1, val_per_class=0, frames=16,
                          size=32, style="simple", progress=False)  # fmt: skip
    path = next((root / "train").rglob("*.mp4"))
    with open_video(path) as reader:
        decoded = DecodedVideo(reader)
        assert decoded.num_frames == reader.num_frames and decoded.fps == reader.fps
        positions = np.array([0.0, 3.2, 7.9, 15.0])
        assert np.array_equal(decoded.retime(positions), reader.retime(positions))
        idx = [5, 0, 5, 15]
        assert torch.equal(decoded.get_frames(idx), reader.get_frames(idx))  # exact: same decoder


def test_cache_stops_at_its_limit_and_reads_the_rest_from_files(tmp_path):
    plain, capped = two_datasets(tmp_path)
    one_video = 16 * 32 * 32 * 3
    capped.cache_limit_mb = 2.5 * one_video / 2**20  # room for three videos
    for epoch in range(2):
        for i in range(len(plain)):
            assert torch.equal(capped[(epoch, i)]["video"], plain[(epoch, i)]["video"])
    assert len(capped._decoded) == 3 and len(plain) > 3
    assert capped._decoded_bytes == 3 * one_video
