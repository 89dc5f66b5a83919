"""The paper's five attention schemes, each one registered class.

Adding a scheme: write a ``SchemeBlock`` subclass in its own module with ``@register_scheme``
and import it here (or anywhere before use); every list of schemes is read from the registry.
"""

from timesformer.schemes import axial, divided, joint, local_global, space  # noqa: F401  (register)
from timesformer.schemes.base import (
    SCHEMES,
    Grid,
    OneStepBlock,
    SchemeBlock,
    register_scheme,
    scheme_names,
)
from timesformer.schemes.fast import fast_block, plain_block

__all__ = [
    "ATTENTION_SCHEMES",
    "SCHEMES",
    "Grid",
    "OneStepBlock",
    "SchemeBlock",
    "fast_block",
    "plain_block",
    "register_scheme",
    "scheme_names",
]


def __getattr__(name: str) -> tuple[str, ...]:
    """``ATTENTION_SCHEMES``: the registered schemes' names in paper order (``scheme_names``),
    read at each access so that a scheme registered after import is listed."""
    if name == "ATTENTION_SCHEMES":
        return scheme_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
