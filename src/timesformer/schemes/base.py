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

This block reads as the paper; ``schemes/fast.py`` derives from it the block that models are
built with, the same map in fewer passes over the tokens.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from timesformer.layers import Attention, DropPath, Linear, Mlp
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

    # ----------------------------------------------------------------- the block
    def step_modules(self, step: str) -> tuple[nn.Module, Attention, nn.Module]:
        """(norm, attention, fc) of the patch-only step ``step``."""
        return (
            getattr(self, f"{step}_norm1"),
            getattr(self, f"{step}_attn"),
            getattr(self, f"{step}_fc"),
        )

    def extra_step_modules(self) -> list[tuple[str, nn.Module, Attention, nn.Module]]:
        """(step name, norm, attention, fc) of each patch-only step, in order."""
        return [(step, *self.step_modules(step)) for step in self.extra_steps]

    def forward(self, x: Tensor, grid: Grid, cls_only: bool = False) -> Tensor:
        """(B, 1 + N*T, D) -> (B, 1 + N*T, D): each attention step, then the MLP.

        With ``cls_only``, (B, 1, D): the cls token alone, for a last block whose patch outputs
        nobody reads (their queries, outputs and MLP are never computed).
        """
        cls_tok, p = x.split((1, x.shape[1] - 1), dim=1)  # (B, 1, D), (B, N*T, D)
        for step in self.extra_steps:
            p = self.patch_step(step, p, grid)
        x = self.last_step(cls_tok, p, grid, cls_only)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def patch_step(self, step: str, p: Tensor, grid: Grid) -> Tensor:
        """One patch-only step: group, norm, attend, back to token order, fc, residual.
        (B, N*T, D) -> (B, N*T, D)."""
        norm, attn, fc = self.step_modules(step)
        y = self.drop_path(attn(norm(self.group(step, p, grid))))  # (B*G, L, D)
        return p + fc(self.ungroup(step, y, grid, p.shape[0]))

    def last_step(self, cls_tok: Tensor, p: Tensor, grid: Grid, cls_only: bool = False) -> Tensor:
        """The step with the cls token: each of its G groups attends with a copy of the cls
        token in front, and the G outputs of those copies are averaged.

        (B, 1, D), (B, N*T, D) -> (B, 1 + N*T, D), or (B, 1, D) with ``cls_only``.
        """
        b, _, d = p.shape
        seqs = self.group("last", p, grid)  # (B*G, L, D)
        g = seqs.shape[0] // b
        cls_copies = cls_tok.expand(b, g, d).reshape(b * g, 1, d)
        tokens = self.norm1(torch.cat((cls_copies, seqs), dim=1))
        y = self.drop_path(self.attn(tokens, queries=1 if cls_only else None))
        cls_y, p_y = y.split((1, y.shape[1] - 1), dim=1)  # (B*G, 1, D), (B*G, L or 0, D)
        cls_tok = cls_tok + cls_y.reshape(b, g, d).mean(dim=1, keepdim=True)
        if cls_only:
            return cls_tok
        return self.join(cls_tok, p, p_y, grid)

    def join(self, cls_tok: Tensor, p: Tensor, p_y: Tensor, grid: Grid) -> Tensor:
        """The cls token (B, 1, D) and the patches (B, N*T, D) plus the last step's grouped
        residual (B*G, L, D), back to token order -> (B, 1 + N*T, D)."""
        return torch.cat((cls_tok, p + self.ungroup("last", p_y, grid, p.shape[0])), dim=1)

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


class OneStepBlock(SchemeBlock):
    """A plain ViT block over sequences that the scheme's layout already holds (joint: the
    whole clip; space: one frame): norm, attention, residual, then the MLP."""

    def forward(self, x: Tensor, grid: Grid, cls_only: bool = False) -> Tensor:
        """(G, L, D) -> (G, L, D), or (G, 1, D), each sequence's first token alone, with
        ``cls_only``."""
        queries = 1 if cls_only else None
        x = x[:, :queries] + self.drop_path(self.attn(self.norm1(x), queries))
        return x + self.drop_path(self.mlp(self.norm2(x)))
