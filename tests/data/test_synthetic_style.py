"""The synthetic set's 'simple' style keeps the time-reversal property of the rich one."""

from __future__ import annotations

import numpy as np
import pytest

from timesformer.data.synthetic import (
    DEFAULT_PAIRS,
    STYLES,
    class_names,
    pair_of,
    render,
    sample_params,
)
from timesformer.errors import TimesformerError


@pytest.mark.parametrize("pair", DEFAULT_PAIRS)
def test_simple_style_is_white_on_black_and_time_reversible(pair):
    params = sample_params(pair, np.random.default_rng(3), frames=8, size=32, style="simple")
    assert params.background == (0.0, 0.0, 0.0) and params.texture == "plain"
    for name in class_names([pair]):
        video = render(name, params)
        # Exact: uint8 frames, each rendered by the same call in both videos.
        np.testing.assert_array_equal(render(pair_of(name), params), video[::-1])
        assert video.min() == 0


def test_unknown_style_is_refused():
    assert STYLES == ("rich", "simple")
    with pytest.raises(TimesformerError, match="unknown style"):
        sample_params("horizontal", np.random.default_rng(0), style="fancy")
