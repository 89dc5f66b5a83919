"""Re-encoding videos to a short side: sizes, frame order and times, resume, atomicity, failures,
workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data.video_helpers import index_frame, read_indices
from timesformer.data import VideoReader, reencode, write_video
from timesformer.data.reencode import resize_pairs, resize_videos, target_size

N = 20


def big_index_frame(i: int, h: int, w: int) -> np.ndarray:
    """(h, w, 3): ``index_frame(i)`` drawn at twice its size in the top-left corner, so that the
    index still reads after the frame is halved."""
    frame = np.full((h, w, 3), 90, dtype=np.uint8)
    frame[:32, :64] = np.kron(index_frame(i), np.ones((2, 2, 1), dtype=np.uint8))
    return frame


def source(path: Path, h: int = 64, w: int = 96, fps: float = 25, **kw) -> Path:
    frames = [big_index_frame(i, h, w) for i in range(N)]
    return write_video(path, frames, fps, options={"g": "6", "bf": "2", "crf": "10"}, **kw)


def test_target_size_keeps_the_aspect_and_even_sides():
    assert target_size(240, 320, 128) == (128, 170)  # 170.67 -> the nearest even
    assert target_size(320, 240, 128) == (170, 128)
    assert target_size(101, 203, 51) == (52, 102)  # 51 is odd: even sides for yuv420p
    assert target_size(64, 96, 256) == (64, 96)  # never enlarged


def test_landscape_and_portrait_get_the_short_side_with_frames_and_times_kept(tmp_path):
    wide = source(tmp_path / "wide.avi", 64, 96, codec="mpeg4")
    tall = source(tmp_path / "tall.mp4", 96, 64)
    out = tmp_path / "out"
    pairs = resize_pairs([wide, tall], tmp_path, out)
    assert [d.name for _, d in pairs] == ["wide.mp4", "tall.mp4"]
    report = resize_videos(pairs, 32, workers=0, progress=False)
    assert report.done == [wide, tall] and not report.skipped and not report.failed
    for (_, dst), size in zip(pairs, [(32, 48), (48, 32)], strict=True):
        with VideoReader(dst) as reader:
            assert reader.codec == "h264" and reader.format.startswith("mov")
            assert reader.size == size
            assert reader.num_frames == N and reader.fps == pytest.approx(25)
            np.testing.assert_allclose(reader.frame_times, np.arange(N) / 25, atol=1e-6)
            assert read_indices(reader.get_frames(range(N))) == list(range(N))


def test_a_rotated_phone_video_comes_out_upright(tmp_path):
    src = source(tmp_path / "phone.mp4", 64, 96, rotation=90)
    with VideoReader(src) as reader:
        upright = reader.get_frames([5]).numpy()[0]  # (96, 64, 3)
    dst = tmp_path / "phone_small.mp4"
    assert resize_videos([(src, dst)], 32, workers=0, progress=False).done == [src]
    with VideoReader(dst) as reader:
        assert reader.rotation == 0 and reader.size == (48, 32)
        small = reader.get_frames([5]).numpy()[0].astype(float)
    expected = upright.reshape(48, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(small - expected).mean() < 6  # the same picture, not a turned one


def test_variable_frame_rate_times_are_kept(tmp_path):
    pts = np.cumsum([0, 1, 1, 3, 1, 2, 1, 1, 4, 1] + [1] * (N - 10)) * 1000  # ms
    frames = [big_index_frame(i, 64, 96) for i in range(N)]
    from fractions import Fraction

    src = write_video(
        tmp_path / "vfr.mkv", frames, 30, pts=pts.tolist(), time_base=Fraction(1, 30000)
    )
    with VideoReader(src) as reader:
        times = reader.frame_times
        assert reader.variable_frame_rate
    dst = tmp_path / "vfr.mp4"
    resize_videos([(src, dst)], 32, workers=0, progress=False)
    with VideoReader(dst) as reader:
        np.testing.assert_allclose(reader.frame_times, times, atol=1e-4)
        assert read_indices(reader.get_frames(range(N))) == list(range(N))


def test_a_second_run_skips_what_exists(tmp_path):
    src = source(tmp_path / "a.mp4")
    dst = tmp_path / "out" / "a.mp4"
    assert resize_videos([(src, dst)], 32, workers=0, progress=False).done == [src]
    before = dst.stat().st_mtime_ns
    again = resize_videos([(src, dst)], 32, workers=0, progress=False)
    assert again.skipped == [src] and not again.done and not again.failed
    assert dst.stat().st_mtime_ns == before


@pytest.mark.parametrize("workers", [0, 2])
def test_broken_sources_are_listed_and_leave_nothing(tmp_path, workers):
    good = source(tmp_path / "good.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01 not a video" * 50)
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out"
    report = resize_videos(resize_pairs([broken, good, missing], tmp_path, out), 32, workers, False)
    assert report.done == [good]
    assert [src for src, _ in report.failed] == [broken, missing]
    assert all(reason for _, reason in report.failed)
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]  # no temporary left


def test_a_failure_mid_encode_leaves_no_partial_file(tmp_path, monkeypatch):
    src = source(tmp_path / "a.mp4")
    dst = tmp_path / "out" / "a.mp4"
    real = reencode._encode

    def fail_half_way(frames, *args):
        def some(limit=N // 2):
            for item in frames:
                if item[0] == limit:
                    raise OSError(28, "No space left on device")
                yield item

        return real(some(), *args)

    monkeypatch.setattr(reencode, "_encode", fail_half_way)
    report = resize_videos([(src, dst)], 32, workers=0, progress=False)
    assert report.failed and "No space left" in report.failed[0][1]
    assert list(dst.parent.iterdir()) == []  # neither a.mp4 nor its temporary


def decoded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3), times (T,)) of ``path``."""
    with VideoReader(path) as reader:
        return reader.get_frames(range(reader.num_frames)).numpy(), reader.frame_times


def test_two_workers_write_what_one_process_writes(tmp_path):
    sources = [source(tmp_path / f"v{i}.mp4", 64, 96 + 16 * i) for i in range(3)]
    one = resize_videos(resize_pairs(sources, tmp_path, tmp_path / "one"), 32, 0, False)
    two = resize_videos(resize_pairs(sources, tmp_path, tmp_path / "two"), 32, 2, False)
    assert one.done == two.done == sources
    for src in sources:
        frames_one, times_one = decoded(tmp_path / "one" / src.name)
        frames_two, times_two = decoded(tmp_path / "two" / src.name)
        assert frames_one.shape == frames_two.shape == (N, 32, 48 + 8 * sources.index(src), 3)
        np.testing.assert_array_equal(times_one, times_two)
        # The same pictures (swscale may round a pixel differently from run to run).
        assert np.abs(frames_one.astype(int) - frames_two.astype(int)).mean() < 0.5
        assert read_indices(frames_two) == list(range(N))
