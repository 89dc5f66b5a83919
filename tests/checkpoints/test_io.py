"""Atomic writes: the file appears whole, with the permissions of a normally created file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from timesformer.checkpoints.io import write_atomic, write_text


def test_written_file_has_the_umask_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        path = tmp_path / "a.txt"
        write_text(path, "hello")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    finally:
        os.umask(umask)


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "b.txt"

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, broken)
    assert list(tmp_path.iterdir()) == []


def test_a_writers_own_temporary_file_stays_inside_the_temporary_folder(tmp_path, monkeypatch):
    """safetensors 0.8 writes through a ``.tmpXXXXXX`` file of its own beside the path it is
    given; a kill mid-write left that file in the checkpoint folder, where no clean-up knew it.
    The path it is given now lies in a folder of its own, so a kill leaves that one folder
    (stray file inside), named as the clean-ups expect, and ``remove_temp`` deletes it."""
    import torch

    import timesformer.checkpoints.io as io

    real_save = io.save_file
    during = []

    def save_with_a_stray_file(tensors, filename, metadata=None):
        stray = Path(filename).parent / ".tmp3f9a1z"  # the writer's own temporary file
        stray.write_bytes(b"half a checkpoint")
        during.append((Path(filename), sorted(tmp_path.iterdir())))  # what a kill would leave
        stray.unlink()
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(io, "save_file", save_with_a_stray_file)
    path = tmp_path / "c.safetensors"
    io.write_safetensors(path, {"w": torch.ones(2)}, {})
    ((target, left),) = during
    assert len(left) == 1 and left[0] == target.parent
    assert left[0].name.startswith(".c.safetensors.") and left[0].name.endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()

    folder = tmp_path / ".c.safetensors.k3j2x.tmp"  # as a kill would leave it
    folder.mkdir()
    (folder / ".tmp3f9a1z").write_bytes(b"x")
    io.remove_temp(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_failed_write_leaves_no_stray_file_of_the_writer(tmp_path):
    def broken(tmp):
        (tmp.parent / ".tmpq8w7e6").write_bytes(b"x")  # the writer's own, beside tmp
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "d.txt", broken)
    assert list(tmp_path.iterdir()) == []


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_written_videos_and_exported_folders_get_the_usual_modes(tmp_path):
    """mkstemp's and mkdtemp's private modes (0600, 0700) do not reach what users get."""
    from timesformer.checkpoints.io import set_usual_mode
    from timesformer.data import write_video

    video = write_video(tmp_path / "v.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, 25)
    assert stat.S_IMODE(video.stat().st_mode) == 0o666 & ~_umask()
    folder = tmp_path / "made"
    folder.mkdir(mode=0o700)
    set_usual_mode(folder, 0o777)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~_umask()
