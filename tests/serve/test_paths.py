"""Paths a client may name: inside ``--allow-dir`` only, links and ``..`` followed."""

from __future__ import annotations

import pytest

from timesformer.serve.errors import BadParameter, ForbiddenPath, NotFound
from timesformer.serve.paths import resolve_allowed


@pytest.fixture
def tree(tmp_path):
    """allowed/{a.mp4, sub/b.mp4, in.mp4 -> a.mp4, out.mp4 -> ../secret.mp4, up -> ..},
    secret.mp4 beside it, and other/c.mp4 (a second allowed folder)."""
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    (allowed / "sub").mkdir(parents=True)
    other.mkdir()
    for f in (
        allowed / "a.mp4",
        allowed / "sub" / "b.mp4",
        tmp_path / "secret.mp4",
        other / "c.mp4",
    ):
        f.write_bytes(b"x")
    (allowed / "in.mp4").symlink_to("a.mp4")
    (allowed / "out.mp4").symlink_to(tmp_path / "secret.mp4")
    (allowed / "up").symlink_to(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("given", "found"),
    [
        ("a.mp4", "allowed/a.mp4"),
        ("sub/b.mp4", "allowed/sub/b.mp4"),
        ("sub/../a.mp4", "allowed/a.mp4"),
        ("in.mp4", "allowed/a.mp4"),  # a link that stays inside
        ("c.mp4", "other/c.mp4"),  # relative paths are tried in each allowed folder
        ("{root}/allowed/sub/b.mp4", "allowed/sub/b.mp4"),
    ],
)
def test_paths_inside_resolve(tree, given, found):
    dirs = (tree / "allowed", tree / "other")
    assert resolve_allowed(given.format(root=tree), dirs) == tree / found


@pytest.mark.parametrize(
    "given",
    ["../secret.mp4", "sub/../../secret.mp4", "out.mp4", "up/secret.mp4", "{root}/secret.mp4",
     "/etc/passwd", "{root}/allowed/../secret.mp4", "{root}/nowhere/x.mp4"],
)  # fmt: skip
def test_paths_outside_are_refused_whether_or_not_they_exist(tree, given):
    with pytest.raises(ForbiddenPath, match="outside"):
        resolve_allowed(given.format(root=tree), (tree / "allowed",))


def test_missing_files_and_folders_inside_are_not_found(tree):
    for given in ("nothing.mp4", "sub"):
        with pytest.raises(NotFound, match=given):
            resolve_allowed(given, (tree / "allowed",))


def test_no_allowed_folder_refuses_every_path(tree):
    with pytest.raises(ForbiddenPath, match="--allow-dir"):
        resolve_allowed(str(tree / "allowed" / "a.mp4"), ())


@pytest.mark.parametrize("given", ["", 3, None, ["a.mp4"], "a\x00.mp4"])
def test_a_path_must_be_a_string(tree, given):
    with pytest.raises(BadParameter, match="path"):
        resolve_allowed(given, (tree / "allowed",))
