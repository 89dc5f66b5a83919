"""What every attention scheme shares: the registry and the multi-step block.

A block of a multi-step scheme (divided, local-global, axial) runs attention *steps* in order.
Each step regroups the patch tokens into G independent sequences, attends within each, and
puts the result back in token order.  Every step before the last one sees the patch tokens only
and is followed by its own D x D linear (``{step}_fc``, zero at initialisation, as the
reference's ``temporal_fc``).  The last step uses the ViT names (``norm1``, ``attn``): the cls
token is copied in front of each of its groups, and the G outputs of those copies are averaged
into one cls residual.  An MLP step (``norm2``, ``mlp``) ends the block.

Token layout between blocks (every scheme except space): (B, 1 + N*T, D) with the cls token
first and the patches space-major, time-minor, index = 1 + (h*W' + w)*T + t, as the reference.
The patch part is therefore viewable as (B, H', W', T, D) without a copy.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timesformer.layers import Attention, DropPath, Linear, Mlp
from timesformer.layers.linear import cached, in_graph, linear
from timesformer.names import PAPER_SCHEMES

SCHEMES: dict[str, type[SchemeBlock]] = {}


class Grid(NamedTuple):
    """The token grid of a clip: frames and patches per column and row."""

    t: int
    h: int
    w: int

    @property
    def n(self) -> int:
        """Patches per frame."""
        return self.h * self.w


def register_scheme(cls: type[SchemeBlock]) -> type[SchemeBlock]:
    """Class decorator: makes a scheme available by its ``name``."""
    if cls.name in SCHEMES:
        raise ValueError(f"attention scheme {cls.name!r} registered twice")
    SCHEMES[cls.name] = cls
    return cls


def scheme_names() -> tuple[str, ...]:
    """The registered schemes' names: the paper's in the order of its Table 1, then any other
    in the order it was registered."""
    paper = [n for n in PAPER_SCHEMES if n in SCHEMES]
    return (*paper, *(n for n in SCHEMES if n not in PAPER_SCHEMES))


def _add_view(p: Tensor, view: Tensor) -> Tensor:
    """p (B, N*T, D) + view (B, ..., D), the residual as ``ungroup_view`` gives it: the
    regrouping read by the add, not copied before it. p leads, so the sum takes its layout and
    reshapes back to (B, N*T, D) without a copy."""
    return (p.view(view.shape) + view).reshape(p.shape)


class JoinTokens(torch.autograd.Function):
    """The end of a block's last attention step: (cls + cls_res, p + ungrouped residual) joined
    into one (B, 1 + N*T, D) tensor, each sum written in place in the result, one pass where
    the two sums and their ``torch.cat`` make two. The gradients are views of the result's.

    Inputs: cls and cls_res (B, 1, D); p (B, N*T, D); view, the residual as ``ungroup_view``
    gives it (B, ..., D). Compiled and traced graphs take the sums and the cat (the compiler
    fuses them itself).
    """

    @staticmethod
    def forward(ctx, cls_tok: Tensor, cls_res: Tensor, p: Tensor, view: Tensor) -> Tensor:
        b, n, d = p.shape
        ctx.dtypes = (cls_res.dtype, view.dtype)
        ctx.shape = view.shape
        out = p.new_empty(b, 1 + n, d, dtype=torch.promote_types(cls_tok.dtype, cls_res.dtype))
        torch.add(cls_tok, cls_res, out=out[:, :1])
        torch.add(p.view(view.shape), view, out=out[:, 1:].view(view.shape))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cls_dtype, view_dtype = ctx.dtypes
        g_cls, g_p = grad[:, :1], grad[:, 1:]
        return g_cls, g_cls.to(cls_dtype), g_p, g_p.reshape(ctx.shape).to(view_dtype)


class SchemeBlock(nn.Module):
    """One transformer block of a scheme; subclasses define the grouping of each step.

    Subclasses set ``name``, ``extra_steps`` (names of the patch-only steps before the last one)
    and implement ``group``/``ungroup_view`` for each step name and for ``"last"``.  The class
    also holds every fact the rest of the package needs about the scheme (its place in the
    paper, its names in other checkpoint families, how rollout and checkpoint detection read
    it), so that a new scheme is one new module.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_time_embed: ClassVar[bool] = True
    extra_steps: ClassVar[tuple[str, ...]] = ()
    # ``TIMESFORMER.ATTENTION_TYPE`` in the authors' checkpoints; None: their code lacks it.
    reference_name: ClassVar[str | None] = None
    # ``attention_type`` in transformers' config.json; None: transformers lacks it.
    hf_name: ClassVar[str | None] = None
    # Whether transformers runs the scheme as this package does, so an export keeps the logits.
    hf_export: ClassVar[bool] = False

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        # Registered as flat attributes so that keys read ``blocks.i.temporal_attn.qkv.weight``.
        for step in self.extra_steps:
            setattr(self, f"{step}_norm1", nn.LayerNorm(dim, eps=eps))
            setattr(self, f"{step}_attn", Attention(dim, num_heads, qkv_bias, attn_drop))
            setattr(self, f"{step}_fc", Linear(dim, dim))
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # Run each extra step's proj and fc as one product (the same map); False runs the two,
        # as the reference does (``flops.count_macs`` counts the architecture that way).
        self.fold_linears = True

    # ----------------------------------------------------------------- what a scheme defines
    def group(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        """Patch tokens (B, N*T, D) in token order -> (B*G, L, D) sequences for ``step``."""
        raise NotImplementedError

    def ungroup_view(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        """Inverse of ``group`` as a view of y (B*G, L, D): (B, ..., D), whose middle axes read
        in row-major order are the tokens in token order."""
        raise NotImplementedError

    def ungroup(self, step: str, y: Tensor, grid: Grid, batch: int) -> Tensor:
        """Inverse of ``group``: (B*G, L, D) -> (B, N*T, D) in token order."""
        return self.ungroup_view(step, y, grid, batch).reshape(batch, -1, y.shape[-1])

    def add_ungrouped(self, p: Tensor, step: str, y: Tensor, grid: Grid) -> Tensor:
        """``p + ungroup(step, y)``: (B, N*T, D) + (B*G, L, D) -> (B, N*T, D), the regrouping
        read by the add instead of copied before it (the same sums)."""
        return _add_view(p, self.ungroup_view(step, y, grid, p.shape[0]))

    @classmethod
    def check_grid(cls, grid: Grid) -> None:
        """Raise ``ConfigError`` if the scheme cannot run on this grid."""

    @classmethod
    def checkpoint_keys(cls) -> frozenset[str]:
        """State-dict keys (project names) that only a block with this scheme's extra steps has;
        with ``uses_time_embed`` they tell the scheme of a checkpoint that does not name it."""
        return frozenset(f"blocks.0.{step}_attn.qkv.weight" for step in cls.extra_steps)

    @classmethod
    def rollout_layout(cls) -> str | None:
        """How attention rollout reads the scheme: ``"tokens"`` (one token sequence that each
        step regroups with ``group``), ``"frames"`` (one sequence per frame, as space), or None
        where it cannot: a block with its own ``forward`` must say which applies."""
        return "tokens" if cls.forward is SchemeBlock.forward else None

    # ----------------------------------------------------------------- shared machinery
    def extra_step_modules(self) -> list[tuple[str, nn.Module, Attention, nn.Module]]:
        """(step name, norm, attention, fc) of each patch-only step, in order."""
        return [
            (s, getattr(self, f"{s}_norm1"), getattr(self, f"{s}_attn"), getattr(self, f"{s}_fc"))
            for s in self.extra_steps
        ]

    def forward(self, x: Tensor, grid: Grid, cls_only: bool = False) -> Tensor:
        """(B, 1 + N*T, D) -> (B, 1 + N*T, D), or (B, 1, D) with ``cls_only``: the cls token
        alone, for a last block whose patch outputs nobody reads
        (see ``TimeSformer.forward_features``)."""
        b, _, d = x.shape
        # split rather than two slices: the backward then joins the two gradients with one
        # copy, where each slice's backward would fill a zero tensor of x's size.
        cls_tok, p = x.split((1, x.shape[1] - 1), dim=1)
        inference = not (self.training or torch.is_grad_enabled())
        for step, norm, attn, fc in self.extra_step_modules():
            # fc(proj(y)) is one linear map y W^T + c with W = W_fc W_proj (fc and proj are both
            # per-token, so the regrouping between them does not matter): one product per token
            # instead of two.
            y = attn(norm(self.group(step, p, grid)), project=False)  # (B*G, L, D)
            if self.fold_linears and inference:
                weight, bias = self._folded(step, attn.proj, fc, y.dtype)  # cached
                p = p + linear(self.ungroup(step, y, grid, b), weight, bias, self, step)
            elif self.fold_linears and grid.n * grid.t > d:
                # Training: the fold is part of the graph, D^3 MACs forward (3 D^3 with the
                # backward) against the M D^2 (3 M D^2) of the product it saves for M tokens:
                # worth it from one clip's N*T tokens on (a test of the grid, not of the batch,
                # so that an exported graph keeps a dynamic batch axis).
                weight = fc.weight @ attn.proj.weight
                bias = fc.weight @ attn.proj.bias
                if not self.drop_path.active:
                    # Nothing scales proj's output: fc's bias joins the product's.
                    res = F.linear(y, weight, bias + fc.bias)
                    p = self.add_ungrouped(p, step, res, grid)
                else:
                    # drop_path scales proj's output, not fc's bias, hence the bias split.
                    res = self.drop_path(F.linear(y, weight, bias))
                    p = self.add_ungrouped(p, step, res + fc.bias, grid)
            else:
                res = self.drop_path(attn.proj(y))
                p = p + fc(self.ungroup(step, res, grid, b))

        seqs = self.group("last", p, grid)  # (B*G, L, D)
        g = seqs.shape[0] // b
        cls_copies = cls_tok.expand(b, g, d).reshape(b * g, 1, d)
        queries = 1 if cls_only else None
        res = self.attn(self.norm1(torch.cat((cls_copies, seqs), dim=1)), queries=queries)
        res = self.drop_path(res)
        if cls_only:
            x = cls_tok + res.reshape(b, g, d).mean(dim=1, keepdim=True)
        else:
            cls_res, p_res = res.split((1, res.shape[1] - 1), dim=1)  # as x's split above
            cls_res = cls_res.reshape(b, g, d).mean(dim=1, keepdim=True)
            view = self.ungroup_view("last", p_res, grid, b)
            if in_graph():
                x = torch.cat((cls_tok + cls_res, _add_view(p, view)), dim=1)
            else:
                x = JoinTokens.apply(cls_tok, cls_res, p, view)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def one_step(self, x: Tensor, cls_only: bool) -> Tensor:
        """A plain ViT block over every token of x (G, L, D), for the one-step schemes (joint,
        space): (G, L, D), or (G, 1, D), the first token alone, with ``cls_only``."""
        res = self.attn(self.norm1(x), queries=1 if cls_only else None)
        x = (x[:, :1] if cls_only else x) + self.drop_path(res)
        return x + self.drop_path(self.mlp(self.norm2(x)))

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

    # ----------------------------------------------------------------- clip layout hooks
    @classmethod
    def pack(cls, cls_tok: Tensor, patches: Tensor) -> Tensor:
        """Embedded tokens -> the layout the blocks run on.

        Args:
            cls_tok: (B, 1, D) the cls token plus its position embedding.
            patches: (B, T, H', W', D) patch tokens with every embedding added.
        Returns:
            (B, 1 + N*T, D), patches space-major, time-minor.
        """
        b, t, h, w, d = patches.shape
        p = patches.permute(0, 2, 3, 1, 4).reshape(b, h * w * t, d)
        return torch.cat((cls_tok, p), dim=1)

    @classmethod
    def pool(cls, x: Tensor, grid: Grid) -> Tensor:
        """Final tokens -> the clip's cls token (B, D), before the last LayerNorm."""
        return x[:, 0]

    @classmethod
    def patch_tokens(cls, x: Tensor, grid: Grid) -> Tensor:
        """Final tokens -> patch tokens (B, T, H', W', D), for dense features and attention maps."""
        b, _, d = x.shape
        return x[:, 1:].reshape(b, grid.h, grid.w, grid.t, d).permute(0, 3, 1, 2, 4)
