"""Frame folders (a video as a folder of JPEG/PNG frames): reading, order, errors, datasets."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from data.video_helpers import index_frame, read_indices
from timesformer.data import (
    ClipConfig,
    VideoClipDataset,
    VideoDecodeError,
    VideoReader,
    write_video,
)
from timesformer.data.frames import FRAME_FOLDER_FPS, FrameFolderReader, open_video, scan_clips
from timesformer.data.reencode import resize_videos

N = 12


def write_image(path: Path, rgb: np.ndarray) -> None:
    """One PNG or JPEG file (by the suffix) written with PyAV."""
    codec, pix_fmt = ("png", "rgb24") if path.suffix == ".png" else ("mjpeg", "yuvj444p")
    with av.open(str(path), mode="w", format="image2") as out:
        stream = out.add_stream(codec)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], pix_fmt
        if codec == "mjpeg":
            stream.codec_context.qmin = stream.codec_context.qmax = 2
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out.mux(stream.encode(frame.reformat(format=pix_fmt)))
        out.mux(stream.encode(None))


def frame_folder(folder: Path, n: int = N, ext: str = ".png", padded: bool = False) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        name = f"img_{i + 1:05d}{ext}" if padded else f"img_{i + 1}{ext}"  # img_2 < img_10
        write_image(folder / name, index_frame(i))
    return folder


def test_a_frame_folder_reads_like_the_same_video(tmp_path):
    folder = frame_folder(tmp_path / "clip")
    frames = [index_frame(i) for i in range(N)]
    video = write_video(tmp_path / "clip.mp4", frames, FRAME_FOLDER_FPS, options={"crf": "0"})
    with open_video(folder) as reader, VideoReader(video) as same:
        assert isinstance(reader, FrameFolderReader)
        assert reader.num_frames == same.num_frames == N
        assert reader.fps == same.fps == 30 and reader.exact
        assert reader.size == same.size == frames[0].shape[:2]
        np.testing.assert_allclose(reader.frame_times, same.frame_times)
        positions = np.array([0.0, 0.5, 1.49, 7.5, 10.2, 11.9, 40.0])
        assert reader.retime(positions).tolist() == same.retime(positions).tolist()
        assert reader.retime([16], fps=60).tolist() == same.retime([16], fps=60).tolist() == [8]
        got = reader.get_frames([3, 0, 11, 3])
        assert got.dtype.__str__() == "torch.uint8" and tuple(got.shape) == (4, 16, 32, 3)
        assert read_indices(got) == [3, 0, 11, 3]
        np.testing.assert_array_equal(got[1].numpy(), frames[0])  # PNG is lossless
        assert [i for i, _ in reader.iter_frames([5, 2])] == [2, 5]
        assert tuple(reader.get_frames([]).shape) == (0, 16, 32, 3)
        with pytest.raises(IndexError):
            reader.get_frames([N])


def test_jpeg_frames_with_padded_names(tmp_path):
    folder = frame_folder(tmp_path / "clip", ext=".jpg", padded=True)
    with FrameFolderReader(folder, fps=12) as reader:
        assert reader.fps == 12 and reader.duration == pytest.approx(N / 12)
        assert read_indices(reader.get_frames(range(N))) == list(range(N))


def test_empty_and_damaged_frame_folders_fail_with_the_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no frames")
    with pytest.raises(VideoDecodeError, match="no JPEG or PNG frame"):
        FrameFolderReader(tmp_path / "empty")
    with pytest.raises(VideoDecodeError, match="no such folder"):
        FrameFolderReader(tmp_path / "absent")
    folder = frame_folder(tmp_path / "clip", n=3)
    (folder / "img_2.png").write_bytes(b"not a png")
    with FrameFolderReader(folder) as reader:
        assert read_indices(reader.get_frames([0])) == [0]
        with pytest.raises(VideoDecodeError, match=r"img_2\.png"):
            reader.get_frames([1])
        assert [i for i, _ in reader.iter_frames()] == [0, 2]  # as VideoReader: left out


def test_a_csv_of_frame_folders_gives_clips(tmp_path):
    for k in range(4):
        frame_folder(tmp_path / "frames" / f"v{k}")
    (tmp_path / "train.csv").write_text("".join(f"frames/v{k} {k % 2}\n" for k in range(4)))
    config = ClipConfig(num_frames=4, sampling_rate=2, crop_size=16, train_scale=(16, 18))
    for mode in ("train", "val"):
        dataset = VideoClipDataset.from_csv(tmp_path / "train.csv", mode=mode, config=config)
        item = dataset[2]
        assert tuple(item["video"].shape) == (3, 4, 16, 16)
        assert item["label"] == 0 and item["path"].endswith("v2") and not item["failed"]


def test_class_folders_holding_frame_folders_are_scanned_as_videos(tmp_path):
    frame_folder(tmp_path / "jump" / "a", n=2)
    frame_folder(tmp_path / "jump" / "b", n=2, ext=".jpg")
    write_video(tmp_path / "jump" / "c.mp4", [index_frame(0)] * 2)
    (tmp_path / "jump" / "readme.txt").write_text("x")
    videos, others = scan_clips(tmp_path / "jump", (".mp4",))
    assert [p.name for p in videos] == ["a", "b", "c.mp4"]
    assert [p.name for p in others] == ["readme.txt"]
    # A folder data set takes them as videos of their class.
    frame_folder(tmp_path / "wave" / "d", n=6)
    config = ClipConfig(num_frames=2, sampling_rate=1, crop_size=16, train_scale=(16, 18))
    dataset = VideoClipDataset.from_folder(tmp_path, mode="val", config=config)
    assert [p.name for p in dataset.paths] == ["a", "b", "c.mp4", "d"]
    assert dataset.labels == [0, 0, 0, 1]
    assert tuple(dataset[3]["video"].shape) == (3, 2, 16, 16) and not dataset[3]["failed"]


def test_a_frame_folder_reencodes_to_a_video(tmp_path):
    folder = frame_folder(tmp_path / "clip", padded=True)
    dst = tmp_path / "clip.mp4"
    report = resize_videos([(folder, dst)], 16, workers=0, progress=False)
    assert report.done == [folder]
    with VideoReader(dst) as reader:
        assert reader.num_frames == N and reader.fps == pytest.approx(30)
        assert reader.size == (16, 32)
