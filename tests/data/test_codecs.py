"""Every codec and container this PyAV build can write: count, random access, probe."""

from __future__ import annotations

import numpy as np
import pytest

from data.video_helpers import CODECS, INDEX_H, INDEX_W, read_indices, skip_without_encoder
from timesformer.data import VideoReader, probe


@pytest.mark.parametrize(("name", "encoder"), [(c[0], c[2]) for c in CODECS])
def test_codec_random_access(codec_videos, name, encoder):
    skip_without_encoder(encoder)
    path = codec_videos[name]
    reader = VideoReader(path)
    assert reader.num_frames == 60
    assert VideoReader(path, exact=True).num_frames == 60
    assert reader.size == (INDEX_H, INDEX_W)
    assert reader.fps == pytest.approx(25.0)
    assert read_indices(reader.get_frames(range(60))) == list(range(60))
    rng = np.random.default_rng(7)
    for _ in range(8):
        idx = rng.integers(0, 60, size=int(rng.integers(1, 7)))
        assert read_indices(reader.get_frames(idx)) == idx.tolist(), idx


@pytest.mark.parametrize(("name", "encoder"), [(c[0], c[2]) for c in CODECS])
def test_codec_probe(codec_videos, name, encoder):
    skip_without_encoder(encoder)
    info = probe(codec_videos[name])
    assert (info.num_frames, info.height, info.width) == (60, INDEX_H, INDEX_W)
    assert info.duration == pytest.approx(60 / 25)
    # Headers that give no count (MPEG-PS/TS, Matroska, Ogg) say None, not a wrong number.
    assert info.header_frames in (None, 60)
