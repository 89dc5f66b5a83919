"""The GPU tests reuse the engine's synthetic set and the inference fixtures."""

from engine.conftest import synth_root  # noqa: F401
from inference.conftest import checkpoint, videos  # noqa: F401
