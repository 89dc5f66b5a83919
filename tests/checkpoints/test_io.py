"""Atomic writes: the file appears whole, with the permissions of a normally created file."""

from __future__ import annotations

import os
import stat

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
