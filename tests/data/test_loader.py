"""DataLoader setup, batching, worker seeding, and failure counts across worker processes."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from timesformer.data import (
    ClipConfig,
    DatasetError,
    DecodeFailures,
    VideoClipDataset,
    collate_clips,
    make_loader,
    set_epoch,
)

CFG = ClipConfig(num_frames=4, sampling_rate=2, crop_size=16, train_scale=(16, 24), flip=False)


@pytest.fixture(scope="module")
def train_set(synth_root):
    return VideoClipDataset.from_folder(synth_root / "train", mode="train", config=CFG)


def test_collate_flattens_failures():
    samples = [
        {"video": torch.zeros(3, 2, 4, 4), "label": 1, "index": 5, "path": "a", "failed": []},
        {"video": torch.ones(3, 2, 4, 4), "label": 0, "index": 2, "path": "b", "failed": ["x"]},
    ]
    batch = collate_clips(samples)
    assert batch["video"].shape == (2, 3, 2, 4, 4)
    assert batch["label"].tolist() == [1, 0] and batch["index"].tolist() == [5, 2]
    assert batch["path"] == ["a", "b"] and batch["failed"] == ["x"]


def test_loader_batches_in_process(train_set):
    loader = make_loader(train_set, batch_size=4, workers=0)
    assert loader.pin_memory is torch.cuda.is_available()
    assert loader.drop_last is True
    batches = list(loader)
    assert len(batches) == len(train_set) // 4
    assert batches[0]["video"].shape == (4, 3, 4, 16, 16)
    seen = sorted(i for b in batches for i in b["index"].tolist())
    assert seen == list(range(12))  # shuffled, each once


def test_val_loader_keeps_order_and_last_batch(synth_root):
    val = VideoClipDataset.from_folder(synth_root / "val", mode="val", config=CFG)
    loader = make_loader(val, batch_size=3, workers=0)
    indices = [i for b in loader for i in b["index"].tolist()]
    assert indices == list(range(len(val)))  # no shuffle, nothing dropped (8 = 3 + 3 + 2)


def test_workers_are_seeded_and_runs_repeat(train_set):
    """Same seed, same clips (workers included); another seed, other clips."""

    def first_batches(seed):
        # train_set already decoded in this process (the tests above): workers forked now must
        # not inherit a converter with a dead thread pool (they hung).
        loader = make_loader(train_set, batch_size=6, workers=2, seed=seed, timeout=60)
        assert loader.persistent_workers is True
        return [b["video"] for b in loader]

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
    assert not torch.equal(a[0], c[0])


def test_failures_are_counted_across_workers(synth_root, tmp_path, caplog):
    root = tmp_path / "set"
    shutil.copytree(synth_root / "train", root)
    bad = sorted(root.glob("*/*.mp4"))[:3]
    for path in bad:
        path.write_bytes(b"garbage, not a video")
    ds = VideoClipDataset.from_folder(
        root, mode="val", config=CFG, classes=synth_root / "classes.txt"
    )
    failures = DecodeFailures()
    loader = make_loader(ds, batch_size=4, workers=2, timeout=60)
    for epoch in range(2):
        for batch in loader:
            failures.update(batch)
            assert batch["video"].shape[1:] == (3, 4, 16, 16)
        assert set(failures.counts) == {str(p) for p in bad}  # every bad file, this epoch
        # Each was asked for once; a worker may also meet one first while finding a replacement.
        assert 3 <= failures.failed_samples <= 3 + 2 * 3
        with caplog.at_level(logging.WARNING, logger="timesformer.data"):
            summary = failures.end_epoch(epoch)
        assert failures.failed_samples == 0  # reset for the next epoch
        assert summary is not None and summary.startswith("3 files failed to decode (")
        assert f"epoch {epoch}: 3 files failed to decode" in caplog.text
    assert set(failures.total) == {str(p) for p in bad}
    assert DecodeFailures().end_epoch(0) is None


def test_every_file_bad_stops_the_loader(tmp_path):
    for i in range(3):
        (tmp_path / f"v{i}.mp4").write_text("nothing")
    ds = VideoClipDataset([(tmp_path / f"v{i}.mp4", 0) for i in range(3)], ["a"], "train", CFG)
    loader = make_loader(ds, batch_size=2, workers=1, timeout=60)
    with pytest.raises(DatasetError, match="every video tried failed to decode: 3 of 3"):
        next(iter(loader))


def test_distributed_sampler(train_set, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = make_loader(train_set, batch_size=4, workers=0, distributed=True, seed=3)
        assert isinstance(loader.sampler, DistributedSampler)
        set_epoch(loader, 0)
        first = [i for b in loader for i in b["index"].tolist()]
        set_epoch(loader, 1)
        second = [i for b in loader for i in b["index"].tolist()]
        assert sorted(first) == sorted(second) == list(range(12))
        assert first != second  # reshuffled per epoch
    finally:
        dist.destroy_process_group()
