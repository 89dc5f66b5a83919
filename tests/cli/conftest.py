"""The CLI tests use the inference fixtures (a tiny checkpoint, small videos)."""

from inference.conftest import checkpoint, videos  # noqa: F401
