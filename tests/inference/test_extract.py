"""Feature extraction: the embeddings, the output folder, resume, shards, failures, keys."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import timesformer.layers.linear as linear_mod
from helpers import HAS_INT8
from timesformer.checkpoints import load_checkpoint
from timesformer.data import VideoClipDataset, VideoReader, transforms
from timesformer.errors import ConfigError
from timesformer.inference.extract import (
    Extractor,
    collect_videos,
    parse_shard,
    run_extraction,
)
from timesformer.inference.predictor import default_clip_config
from timesformer.inference.windows import plan_windows


def _extractor(checkpoint: Path, **kwargs) -> Extractor:
    model = load_checkpoint(checkpoint)
    # Rate 2: a 4-frame window spans 8 frames at 30 fps, 2.7 frames of the 10 fps test videos.
    return Extractor(model, clip=default_clip_config(model, sampling_rate=2), **kwargs)


def _count_calls(extractor: Extractor) -> list[int]:
    """Count the model's forward passes (the batch size of each)."""
    calls: list[int] = []
    forward = extractor.model.forward_features

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return forward(x)

    extractor.model.forward_features = counted
    return calls


def _tensors(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every feature file under ``out`` (relative name -> its tensors)."""
    return {
        p.relative_to(out).as_posix(): load_file(p)
        for p in sorted((out / "features").rglob("*.safetensors"))
    }


def _index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def test_clip_and_window_embeddings_are_the_mean_of_forward_features(checkpoint, videos):
    ex = _extractor(checkpoint, windows=True, stride=1.0, batch=2)
    feats = ex.extract(videos[0])
    model = ex.model
    views = VideoClipDataset([(videos[0], -1)], ["x"], mode="test", config=ex.clip).load_clip(0)
    assert views.shape[0] == 3  # 1 clip x 3 crops
    with torch.no_grad():
        expected = model.forward_features(views).mean(0)
    assert feats.clip.shape == (model.num_features,) and feats.clip.dtype == torch.float32
    torch.testing.assert_close(feats.clip, expected)

    with VideoReader(videos[0]) as reader:
        plans, _ = plan_windows(reader.num_frames, reader.fps, 4, 2, 30.0, 1.0)
        assert feats.windows.shape == (len(plans), model.num_features) and len(plans) == 5
        for w, idx in enumerate(plans):
            crops = transforms.test_views(reader.get_frames(idx), 16, 3)
            with torch.no_grad():
                torch.testing.assert_close(
                    feats.windows[w], model.forward_features(crops).mean(0), atol=1e-5, rtol=1e-5
                )
            assert feats.window_times[w].tolist() == pytest.approx(
                [idx[0] / 10, idx[-1] / 10 + 0.1]
            )
    assert feats.window_times[-1, 1] == pytest.approx(4.0)  # the tail is covered


@pytest.mark.skipif(not HAS_INT8, reason="no oneDNN int8 kernels in this build")
def test_int8_embeddings_are_close_to_fp32(checkpoint, videos):
    fp32 = _extractor(checkpoint).extract(videos[0]).clip
    int8 = _extractor(checkpoint, precision="int8").extract(videos[0]).clip
    assert int8.dtype == torch.float32 and not torch.equal(int8, fp32)
    assert torch.nn.functional.cosine_similarity(int8, fp32, dim=0) > 0.999
    # The caller's model is not marked: an fp32 extractor of it gives fp32 embeddings again.
    model = load_checkpoint(checkpoint)
    clip = default_clip_config(model, sampling_rate=2)
    Extractor(model, clip=clip, precision="int8").extract(videos[0])
    assert not any(getattr(m, linear_mod.INT8_ATTR, False) for m in model.modules())
    # Exact: the same weights, video and fp32 path as ``fp32`` above, run again.
    assert torch.equal(Extractor(model, clip=clip).extract(videos[0]).clip, fp32)


def test_second_run_skips_done_videos_and_an_interrupted_one_completes(
    checkpoint, videos, tmp_path
):
    out = tmp_path / "out"
    ex = _extractor(checkpoint)
    calls = _count_calls(ex)
    first = run_extraction(ex, collect_videos([videos[0].parent]), out, progress=False)
    assert (first.done, first.skipped, first.failed, first.indexed) == (3, 0, 0, 3)
    assert calls == [3, 3, 3]  # one pass of 3 views per video
    files = sorted((out / "features").glob("*.safetensors"))
    assert [f.name for f in files] == [f"{v.name}.safetensors" for v in videos]
    before = _tensors(out)
    stamps = {f: f.stat().st_mtime_ns for f in files}

    calls.clear()
    again = run_extraction(ex, collect_videos([videos[0].parent]), out, progress=False)
    assert (again.done, again.skipped, again.failed, again.indexed) == (0, 3, 0, 3)
    assert calls == []  # no model call for a video already done
    assert {f: f.stat().st_mtime_ns for f in files} == stamps

    # Interrupted: one output missing and the temporary file of its unfinished write left behind.
    files[1].unlink()
    partial = files[1].parent / f".{files[1].name}.k3j2x.tmp"
    partial.write_bytes(b"\x00" * 10)
    resumed = run_extraction(ex, collect_videos([videos[0].parent]), out, progress=False)
    assert (resumed.done, resumed.skipped) == (1, 2) and calls == [3]
    assert not partial.exists() and not list(out.rglob("*.tmp"))
    after = _tensors(out)
    assert after.keys() == before.keys()
    for name, tensors in before.items():
        torch.testing.assert_close(after[name]["clip"], tensors["clip"])
    assert files[0].stat().st_mtime_ns == stamps[files[0]]


def test_two_shards_make_the_single_process_result(checkpoint, videos, tmp_path):
    ex = _extractor(checkpoint)
    items = collect_videos(videos)  # loose files: stable hashed names
    run_extraction(ex, items, tmp_path / "one", progress=False)
    s0 = run_extraction(ex, items, tmp_path / "two", shard=(0, 2), progress=False)
    assert (s0.total, s0.done, s0.indexed) == (2, 2, 2)  # videos 0 and 2 of the sorted list
    assert [r["key"] for r in _index(tmp_path / "two")] == [items[0].key, items[2].key]
    s1 = run_extraction(ex, items, tmp_path / "two", shard=(1, 2), progress=False)
    assert (s1.total, s1.done, s1.indexed) == (1, 1, 3)
    one, two = _tensors(tmp_path / "one"), _tensors(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) == 3
    for name in one:
        # Exact: one extractor, each video alone through the same path (a shard only picks
        # which videos).
        assert torch.equal(one[name]["clip"], two[name]["clip"])
    assert _index(tmp_path / "one") == _index(tmp_path / "two")
    assert {r["path"] for r in _index(tmp_path / "one")} == {os.path.abspath(v) for v in videos}


def test_broken_video_is_recorded_and_retried(checkpoint, videos, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(videos[0], folder / "good.mp4")
    (folder / "bad.mp4").write_bytes(b"\x00" * 200)
    out = tmp_path / "out"
    ex = _extractor(checkpoint)
    summary = run_extraction(ex, collect_videos([folder]), out, progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    assert summary.errors[0][0].endswith("bad.mp4") and "cannot decode" in summary.errors[0][1]
    rows = {r["key"]: r for r in _index(out)}
    assert "cannot decode" in rows["bad.mp4"]["error"] and "features" not in rows["bad.mp4"]
    assert rows["good.mp4"]["dim"] == ex.dim and "error" not in rows["good.mp4"]

    # A failure is not "done": the next run tries again, and a repaired file replaces the error.
    shutil.copy(videos[1], folder / "bad.mp4")
    summary = run_extraction(ex, collect_videos([folder]), out, progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (1, 1, 0)
    assert not (out / "errors" / "bad.mp4.json").exists()
    assert all("error" not in r for r in _index(out))


def test_npy_and_safetensors_hold_the_same_features(checkpoint, videos, tmp_path):
    ex = _extractor(checkpoint, windows=True)
    items = collect_videos([videos[0]], root=videos[0].parent)
    assert [it.key for it in items] == [videos[0].name]
    run_extraction(ex, items, tmp_path / "st", progress=False)
    run_extraction(ex, items, tmp_path / "np", fmt="npy", progress=False)
    st = load_file(tmp_path / "st" / "features" / f"{videos[0].name}.safetensors")
    base = tmp_path / "np" / "features" / videos[0].name
    clip = np.load(f"{base}.npy")
    windows = np.load(f"{base}.windows.npy")
    times = np.load(f"{base}.window_times.npy")
    assert clip.shape == (ex.dim,) and clip.dtype == np.float32
    np.testing.assert_allclose(clip, st["clip"].numpy(), atol=1e-6)
    np.testing.assert_allclose(windows, st["windows"].numpy(), atol=1e-6)
    # Exact: the same window plan computed twice, only written in two formats.
    np.testing.assert_array_equal(times, st["window_times"].numpy())
    # Windows of 8 frames at 30 fps (2.67 of the video's 40 frames at 10 fps) tile it: 15.
    assert windows.shape == (15, ex.dim) and times.shape == (15, 2)
    for fmt in ("st", "np"):
        (row,) = _index(tmp_path / fmt)
        assert (row["dim"], row["windows"]) == (ex.dim, 15)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "st" / "features" / f"{videos[0].name}.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["source"] == os.path.abspath(videos[0]) and meta["model"] == "timesformer_tiny"
    assert json.loads(meta["clip"])["sampling_rate"] == 2


def test_other_settings_in_the_same_folder_are_refused(checkpoint, videos, tmp_path):
    run_extraction(_extractor(checkpoint), collect_videos([videos[0]]), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"extract\.json.*windows=False.*True"):
        run_extraction(_extractor(checkpoint, windows=True), collect_videos([videos[0]]), tmp_path)
    with pytest.raises(ConfigError, match="format"):
        run_extraction(_extractor(checkpoint), collect_videos([videos[0]]), tmp_path, fmt="npy")


def test_keys_lists_and_collisions(videos, tmp_path):
    folder = videos[0].parent
    assert [it.key for it in collect_videos([folder])] == [v.name for v in videos]
    # Under --root: relative to it, folders included.
    keys = [it.key for it in collect_videos([folder], root=folder.parent)]
    assert keys == [f"{folder.name}/{v.name}" for v in videos]
    # A folder of symlinks to videos elsewhere: the links' own names.
    links = tmp_path / "links"
    links.mkdir()
    (links / "x.mp4").symlink_to(videos[0])
    assert [it.key for it in collect_videos([links])] == ["x.mp4"]
    # A loose file: its stem, a digest of its absolute path, its suffix; the same every time.
    (loose,) = collect_videos([videos[1]])
    assert loose.key.startswith("clip1-") and loose.key.endswith(".mp4") and len(loose.key) == 18
    assert collect_videos([videos[1]]) == [loose]
    # A list: relative to its folder (or --root); comments and blanks skipped; missing files
    # kept (they fail at extraction, not before).
    listing = tmp_path / "list.txt"
    listing.write_text(f"# videos\n{videos[2]}\n\nsub/missing.mp4\n")
    items = collect_videos(list_file=listing, root=tmp_path)
    assert len(items) == 2
    assert items[-1].key == "sub/missing.mp4" and items[-1].path == tmp_path / "sub/missing.mp4"
    assert items[0].path == videos[2] and items[0].key.startswith("clip2-")
    # The same file twice counts once; two files with one key are refused.
    assert len(collect_videos([videos[0], folder])) == 3
    other = tmp_path / "b"
    other.mkdir()
    shutil.copy(videos[0], other / videos[0].name)
    with pytest.raises(ConfigError, match=r"would both be saved as 'clip0\.mp4'"):
        collect_videos([folder, other])
    with pytest.raises(ConfigError, match="no such file"):
        collect_videos([tmp_path / "nope.mp4"])


def test_missing_listed_video_is_a_failure(checkpoint, videos, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{videos[0]}\nmissing.mp4\n")  # relative to the list's folder
    summary = run_extraction(
        _extractor(checkpoint), collect_videos(list_file=listing), tmp_path / "o", progress=False
    )
    assert (summary.done, summary.failed) == (1, 1)
    assert any(r["key"] == "missing.mp4" and "error" in r for r in _index(tmp_path / "o"))


def test_shard_from_the_flag_or_torchrun(monkeypatch):
    assert parse_shard(None, {}) == (0, 1)
    assert parse_shard(None, {"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    assert parse_shard("1/2", {"RANK": "3", "WORLD_SIZE": "4"}) == (1, 2)  # the flag wins
    for bad, message in [
        ("2/2", "0 .. 1"),
        ("a/b", "i/n"),
        ("1", "i/n"),
        ("0/0", "count must be at least 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_shard(bad, {})
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parse_shard(None) == (1, 2)  # os.environ by default
