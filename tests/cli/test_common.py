"""The output checks every writing command shares: ``check_output`` before the work, ``writing``
around it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from timesformer.cli.common import OutputError, check_output, writing


def test_writable_outputs_pass(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "dir").mkdir()
    check_output(tmp_path / "new.json", "--out")
    check_output(tmp_path / "old.json", "--out")  # replaced
    check_output(tmp_path / "a" / "b" / "new.json", "--out")  # its folders are made
    check_output(tmp_path / "dir", "--out", folder=True)
    check_output(tmp_path / "a" / "b", "--out", folder=True)
    check_output(None, "--out")  # an optional output not given
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "old.json"]  # nothing made


@pytest.mark.parametrize(
    ("path", "folder", "message"),
    [
        ("dir", False, "--out {t}/dir: is a folder; give a file name"),
        ("file", True, "--out {t}/file: is a file, not a folder"),
        ("file/x.json", False, "--out {t}/file/x.json: {t}/file is a file, not a folder"),
        ("file/a/b", True, "--out {t}/file/a/b: {t}/file is a file, not a folder"),
        ("link", False, "--out {t}/link: is a broken symbolic link"),
        ("link/x", True, "--out {t}/link/x: {t}/link is a broken symbolic link"),
    ],
)
def test_outputs_of_the_wrong_kind_are_refused(tmp_path, path, folder, message):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError) as caught:
        check_output(tmp_path / path, "--out", folder=folder)
    assert str(caught.value) == message.format(t=tmp_path)


def test_a_folder_without_write_permission_is_named(tmp_path, monkeypatch):
    # As root chmod does not stop writes, so the permission answer is what is faked here; the
    # real refusal is tested in tests/reliability/test_cli_bad_input.py (test_read_only_folders).
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != ro and real(p, mode))
    with pytest.raises(OutputError, match=rf"^OUT {ro}/a/b: {ro} is not writable \(permission"):
        check_output(ro / "a" / "b", "OUT", folder=True)
    with pytest.raises(OutputError, match=rf"^{ro}: is not writable \(permission denied\)$"):
        check_output(ro, None, folder=True)  # a positional argument: named by its path alone


def test_writing_turns_a_failed_write_into_one_line_and_removes_the_folders_it_made(tmp_path):
    out = tmp_path / "a" / "b" / "out.json"
    with pytest.raises(OutputError) as caught, writing(out, "--out"):
        out.parent.mkdir(parents=True)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(caught.value) == f"--out {out}: writing failed: No space left on device"
    assert list(tmp_path.iterdir()) == []
    # A folder that holds something stays; a temporary's error (".NAME.*" beside it) is ours.
    with pytest.raises(OutputError), writing(out, "--out"):
        out.parent.mkdir(parents=True)
        (out.parent / "kept.txt").write_text("")
        tmp = out.parent / f".{out.name}.x1.tmp"
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp))
    assert [p.name for p in out.parent.iterdir()] == ["kept.txt"]


def test_writing_lets_an_error_about_another_file_through(tmp_path):
    elsewhere = OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "video.mp4"))
    with pytest.raises(OSError) as caught, writing(tmp_path / "feats", "--out", folder=True):
        raise elsewhere
    assert caught.value is elsewhere
