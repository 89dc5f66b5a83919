"""Names the library defines and the command line offers as choices and defaults.

They live here, importing nothing but the standard library, so that ``timesformer --help``
prints without loading torch or numpy; the modules they belong to import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# The paper's five attention schemes in the order of its Table 1: each is a class registered in
# ``timesformer.schemes`` (whose ``ATTENTION_SCHEMES`` also lists any scheme registered later).
PAPER_SCHEMES: tuple[str, ...] = ("space", "joint", "divided", "local_global", "axial")

# The model ``predict`` uses without --checkpoint, and the licence of the published weights
# (``timesformer.checkpoints.zoo``).
DEFAULT_MODEL = "facebook/timesformer-base-finetuned-k400"
LICENCE = "CC BY-NC 4.0"

# The public data sets ``timesformer data prepare`` reads (``timesformer.data.prepare``).
DATASETS: tuple[str, ...] = ("kinetics", "ssv2", "ucf101", "hmdb51")


@dataclass(frozen=True)
class Pair:
    """Two classes, each the other played backwards. ``forward`` is the one rendered forwards."""

    name: str
    forward: str
    backward: str


# The synthetic motion set's class pairs, its default selection and its looks
# (``timesformer.data.synthetic``).
PAIRS: tuple[Pair, ...] = (
    Pair("horizontal", "right", "left"),
    Pair("vertical", "down", "up"),
    Pair("rotation", "clockwise", "anticlockwise"),
    Pair("depth", "approaching", "receding"),
    Pair("convergence", "converging", "diverging"),
    Pair("fade", "appearing", "disappearing"),
)
DEFAULT_PAIRS: tuple[str, ...] = ("horizontal", "vertical", "rotation", "depth")
STYLES: tuple[str, ...] = ("rich", "simple")
# Where the rotation pair's tip points at mid-clip: "up" (within 30 degrees) or "any" way.
ROTATIONS: tuple[str, ...] = ("up", "any")
