"""The fast block: the same map as a scheme's block, with fewer passes over the tokens.

``SchemeBlock`` reads as the paper. ``fast_block(cls)`` returns a subclass of a multi-step
scheme's block that overrides two of its steps with the same arithmetic done in less time
(measured in docs/performance.md, "What makes it fast"):

- ``patch_step``: each patch-only step's ``proj`` and ``fc`` are two per-token linear maps in a
  row, so they are one, ``y W^T + c`` with W = W_fc W_proj: one product per token instead of
  two. At inference the folded weights are computed once and cached; in training the fold is
  part of the graph where it costs less than the product it saves.
- ``join``: the residual adds read the last step's output through its regrouping view instead
  of copying it to token order first, and write straight into the joined tensor.

``TimeSformer`` builds these by default; ``TimeSformer(config, fast=False)`` builds the plain
blocks, and the tests check that both give the same outputs and gradients up to rounding. The
state-dict keys are the same. Schemes with a forward of their own (joint, space) have nothing
to fold, and ``fast_block`` returns them unchanged. The fast block runs an extra step's
attention without its ``proj`` (``Attention.heads``), so forward hooks on that layer do not fire
there: ``plain_blocks`` runs a model on the plain blocks for a while (attention rollout does).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timesformer.layers.linear import cached, in_graph, linear
from timesformer.schemes.base import SCHEMES, Grid, SchemeBlock


@functools.cache
def fast_block(cls: type[SchemeBlock]) -> type[SchemeBlock]:
    """The fast subclass of a registered block class; the class itself where its forward or
    steps are its own (nothing here knows them)."""
    if (
        cls.forward is not SchemeBlock.forward
        or cls.patch_step is not SchemeBlock.patch_step
        or cls.join is not SchemeBlock.join
    ):
        return cls
    name = f"Fast{cls.__name__}"
    # Named in this module, where ``__getattr__`` finds it again: pickle can then save a model.
    namespace = {"__module__": __name__, "__qualname__": name, "_plain_class": cls}
    return type(name, (FastSteps, cls), {**namespace, "__doc__": cls.__doc__})


def __getattr__(name: str) -> type[SchemeBlock]:
    """``FastDividedBlock`` and the like: the fast class of the registered block so named."""
    for cls in SCHEMES.values():
        if name == f"Fast{cls.__name__}" and fast_block(cls) is not cls:
            return fast_block(cls)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plain_block(cls: type[SchemeBlock]) -> type[SchemeBlock]:
    """The registered class of a block class, fast or not."""
    return cls.__dict__.get("_plain_class", cls)


@contextlib.contextmanager
def plain_blocks(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model``'s fast blocks run as their plain classes (the same weights
    and values up to rounding), so that every attention layer is called as a module."""
    blocks = [m for m in model.modules() if isinstance(m, FastSteps)]
    try:
        for block in blocks:
            block.__class__ = plain_block(type(block))
        yield model
    finally:
        for block in blocks:
            block.__class__ = fast_block(type(block))


class FastSteps(SchemeBlock):
    """Mixin of ``fast_block``: folded extra-step linears, the last step joined in place."""

    def patch_step(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        norm, attn, fc = self.step_modules(step)
        y = attn.heads(norm(self.group(step, p, grid)))  # (B*G, L, D), before proj
        if not (self.training or torch.is_grad_enabled()):
            weight, bias = self._folded(step, attn.proj, fc, y.dtype)  # cached
            return p + linear(self.ungroup(step, y, grid, p.shape[0]), weight, bias, self, step)
        if grid.n * grid.t <= p.shape[-1]:
            # Training on tiny grids: the fold's D^3 MACs would cost more than the M D^2 it
            # saves for M = N*T tokens (a test of the grid, not of the batch, so that an
            # exported graph keeps a dynamic batch axis).
            res = self.drop_path(attn.proj(y))
            return p + fc(self.ungroup(step, res, grid, p.shape[0]))
        weight = fc.weight @ attn.proj.weight
        bias = fc.weight @ attn.proj.bias
        if not self.drop_path.active:
            # Nothing scales proj's output: fc's bias joins the product's.
            return self._add_ungrouped(p, step, F.linear(y, weight, bias + fc.bias), grid)
        # drop_path scales proj's output, not fc's bias, hence the bias split.
        res = self.drop_path(F.linear(y, weight, bias))
        return self._add_ungrouped(p, step, res + fc.bias, grid)

    def join(self, cls_tok: Tensor, p: Tensor, p_y: Tensor, grid: Grid) -> Tensor:
        view = self.ungroup_view("last", p_y, grid, p.shape[0])
        if in_graph():  # compilers fuse the sums and the cat themselves
            return torch.cat((cls_tok, _add_view(p, view)), dim=1)
        return JoinTokens.apply(cls_tok, p, view)

    def _add_ungrouped(self, p: Tensor, step: str, y: Tensor, grid: Grid) -> Tensor:
        """``p + ungroup(step, y)``: (B, N*T, D) + (B*G, L, D) -> (B, N*T, D), the regrouping
        read by the add instead of copied before it (the same sums)."""
        return _add_view(p, self.ungroup_view(step, y, grid, p.shape[0]))

    def _folded(
        self, step: str, proj: nn.Linear, fc: nn.Linear, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """``fc(proj(y)) = y W^T + c`` with W = W_fc W_proj, c = W_fc b_proj + b_fc, computed
        in fp32 and cached until any of the four tensors changes or is replaced."""

        def fold() -> tuple[Tensor, Tensor]:
            w_fc = fc.weight.float()
            weight = w_fc @ proj.weight.float()
            bias = w_fc @ proj.bias.float() + fc.bias.float()
            return weight.to(dtype), bias.to(dtype)

        if torch.compiler.is_compiling():
            # In a compiled graph: computed in the graph (constant-folded with freezing).
            return fold()
        params = (proj.weight, proj.bias, fc.weight, fc.bias)
        return cached(self, ("fold", step, dtype), params, fold)


def _add_view(p: Tensor, view: Tensor) -> Tensor:
    """p (B, N*T, D) + view (B, ..., D), the residual as ``ungroup_view`` gives it: the
    regrouping read by the add, not copied before it. p leads, so the sum takes its layout and
    reshapes back to (B, N*T, D) without a copy."""
    return (p.view(view.shape) + view).reshape(p.shape)


class JoinTokens(torch.autograd.Function):
    """(cls, p + ungrouped residual) joined into one (B, 1 + N*T, D) tensor, the sum written in
    place in the result: one pass where the sum and ``torch.cat`` make two. The gradients are
    views of the result's.

    Inputs: cls (B, 1, D); p (B, N*T, D); view, the residual as ``ungroup_view`` gives it
    (B, ..., D).
    """

    @staticmethod
    def forward(ctx, cls_tok: Tensor, p: Tensor, view: Tensor) -> Tensor:
        b, n, d = p.shape
        ctx.dtype, ctx.shape = view.dtype, view.shape
        dtype = torch.promote_types(cls_tok.dtype, torch.promote_types(p.dtype, view.dtype))
        out = p.new_empty(b, 1 + n, d, dtype=dtype)
        out[:, :1].copy_(cls_tok)
        torch.add(p.view(view.shape), view, out=out[:, 1:].view(view.shape))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        g_p = grad[:, 1:]
        return grad[:, :1], g_p, g_p.reshape(ctx.shape).to(ctx.dtype)
