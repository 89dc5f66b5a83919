"""The paper's five attention schemes, each one registered class.

Adding a scheme: write a ``SchemeBlock`` subclass in its own module with ``@register_scheme``
and import it here.
"""

from timesformer.schemes import axial, divided, joint, local_global, space  # noqa: F401  (register)
from timesformer.schemes.base import SCHEMES, Grid, SchemeBlock, register_scheme

# In the order of the paper's Table 1.
ATTENTION_SCHEMES: tuple[str, ...] = ("space", "joint", "divided", "local_global", "axial")
assert set(ATTENTION_SCHEMES) == set(SCHEMES), "every registered scheme is listed"

__all__ = ["ATTENTION_SCHEMES", "SCHEMES", "Grid", "SchemeBlock", "register_scheme"]
