"""Loading any checkpoint users have into a TimeSformer.

Recognised sources (spotted by their layout and key names, never by file extension):

- ``timesformer``: this project's safetensors file, with the model config in its header;
- ``reference``: the authors' ``.pyth``/``.pth`` (``{"model_state": {"model.…": …}, "cfg": …}``);
- ``hf``: a Hugging Face folder (config.json + weights), or a weights file with
  ``timesformer.`` keys;
- ``vit``: an image ViT in timm naming (the paper's ImageNet initialisation), for any scheme.

Position and time embeddings are resized to the model's grid and frame count; a head of another
class count is replaced by a fresh one.  Every key that is not loaded, or that the model expects
and the checkpoint lacks, is reported; in strict mode (the default) anything not explained by
those rules is an error, and the model is left untouched.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from timesformer.checkpoints import keys as K
from timesformer.checkpoints import zoo
from timesformer.checkpoints.hf import config_from_hf, preprocess_from_hf
from timesformer.checkpoints.hub import resolve_checkpoint
from timesformer.checkpoints.io import read_hf_folder, read_hf_processor, read_tensor_file
from timesformer.checkpoints.save import FORMAT_NAME, REFERENCE_SECTION, unwrap
from timesformer.checkpoints.sniff import ACCEPTED
from timesformer.config import ModelConfig
from timesformer.errors import CheckpointError, ConfigError
from timesformer.layers import resize_pos_embed, resize_time_embed
from timesformer.model import TimeSformer
from timesformer.schemes import SCHEMES

log = logging.getLogger("timesformer")


@dataclass
class Source:
    """A checkpoint read from disk, in project key names."""

    kind: str
    state: dict[str, Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    preprocess: dict[str, Any] | None = None  # ClipConfig fields the model was trained with


@dataclass
class LoadReport:
    """What ``load_checkpoint`` did with each key."""

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.path}: {self.source} checkpoint, {len(self.loaded)} tensors loaded"]
        for label, items in (
            ("resized", self.resized),
            ("copied", self.copied),
            ("freshly initialised", self.initialised),
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("left out by model.pos_embed", self.dropped),
        ):
            if items:
                parts.append(f"{label}: {_short(items)}")
        return "; ".join(parts)


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# ---------------------------------------------------------------------- reading
def read_checkpoint(path: str | Path) -> Source:
    """Read a checkpoint file or folder and identify its family.

    ``path`` may also name a model to download on first use: a Hugging Face Hub repo id
    (``org/name`` or ``org/name@revision``) or ``reference:NAME`` from the authors' model zoo
    (``checkpoints.hub.resolve_checkpoint``); a local path that exists always wins. A published
    model named so gets the frame sampling its authors tested it with (SSv2's frames spread over
    the whole video), where the files themselves do not say.
    """
    src = _read_checkpoint(path)
    name = str(path)
    entry = None
    if not Path(name).exists():
        if name.startswith(zoo.PREFIX):
            entry = zoo.REFERENCE.get(name[len(zoo.PREFIX) :])
        else:
            entry = zoo.HUB.get(name.split("@")[0])
    if entry is not None:
        rate = entry.sampling_rate
        published = {"sampling": "segment"} if rate is None else {"sampling_rate": rate}
        src.preprocess = {**published, **(src.preprocess or {})}
    return src


def _read_checkpoint(path: str | Path) -> Source:
    name = str(path)
    path = resolve_checkpoint(path)
    if name.startswith(zoo.PREFIX):
        src = read_checkpoint(path)
        # The authors' files carry no class names; the zoo knows their label set.
        labels = zoo.reference_entry(name).labels
        if src.class_names is None and labels is not None:
            from timesformer.inference.labels import load_labels

            src.class_names = load_labels(labels)
        return src
    if path.is_dir():
        state, hf_cfg = read_hf_folder(path)
        cfg, names = config_from_hf(hf_cfg, path)
        preprocess = preprocess_from_hf(hf_cfg, read_hf_processor(path), path)
        _check_clip_settings(preprocess, path)
        return Source("hf", K.from_hf(state), cfg, names, preprocess)
    obj, meta = read_tensor_file(path)

    if meta.get("format") == FORMAT_NAME:
        try:
            cfg = json.loads(meta["config"])
            names = json.loads(meta["class_names"]) if "class_names" in meta else None
            preprocess = json.loads(meta["preprocess"]) if "preprocess" in meta else None
        except (KeyError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: damaged timesformer metadata ({err})") from None
        if preprocess is not None and not isinstance(preprocess, dict):
            raise CheckpointError(f"{path}: damaged timesformer metadata (preprocess)")
        _check_clip_settings(preprocess, path)
        # Training checkpoints carry optimizer and RNG tensors under "optim/" and "rng/".
        weights = {k: v for k, v in obj.items() if "/" not in k}
        return Source(FORMAT_NAME, weights, cfg, names, preprocess)

    if isinstance(obj, dict) and isinstance(obj.get("model_state"), dict):
        state = K.strip_prefix(_tensors(obj["model_state"], path), K.REFERENCE_PREFIX)
        cfg, names, preprocess = _reference_cfg(obj.get("cfg"), path)
        cfg.setdefault("attention", K.infer_attention(set(state)))
        _check_clip_settings(preprocess, path)
        return Source("reference", state, cfg, names, preprocess)

    # Generic wrappers used by timm, DeiT and training scripts.
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), dict) and not isinstance(obj.get(key), Tensor):
                obj = obj[key]
                break
    state = _tensors(obj, path)
    for prefix in ("module.", "_orig_mod."):
        state = K.strip_prefix(state, prefix)
    if K.is_hf(state):
        return Source("hf", K.from_hf(state))
    if "blocks.0.attn.qkv.weight" not in state or "patch_embed.proj.weight" not in state:
        raise CheckpointError(
            f"{path}: not a TimeSformer or ViT checkpoint "
            f"(found keys such as {_short(sorted(state), 4)})"
        )
    keys = set(state)
    has_time = "time_embed" in keys or any("temporal_" in k or "local_" in k for k in keys)
    if not has_time:
        return Source("vit", state)
    return Source("reference", state, {"attention": K.infer_attention(keys)})


def _check_clip_settings(preprocess: dict[str, Any] | None, path: Path) -> None:
    """Stored clip settings must make the ``ClipConfig`` they will be used as: checked on
    reading, so that damaged metadata fails here, naming the file, and not later inside a
    predictor."""
    if preprocess is None:
        return
    from timesformer.data.datasets import ClipConfig

    try:
        ClipConfig.from_settings(preprocess)
    except ValueError as err:  # ConfigError
        raise CheckpointError(f"{path}: damaged clip settings: {err}") from None


def _tensors(obj: Any, path: Path) -> dict[str, Tensor]:
    if not isinstance(obj, dict) or not obj:
        what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else "an empty mapping"
        raise CheckpointError(
            f"{path}: not a checkpoint (it holds {what}, not a mapping of names to tensors); "
            f"{ACCEPTED}"
        )
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise CheckpointError(
            f"{path}: not a checkpoint (the mapping holds no tensors); {ACCEPTED}"
        )
    return state


def _reference_cfg(
    text: Any, path: Path
) -> tuple[dict[str, Any], list[str] | None, dict[str, Any] | None]:
    """(model fields, class names, clip settings) from a reference file's YAML config string.

    The authors' files give the attention type at most. A file this project wrote also has its
    own section (``save.REFERENCE_SECTION``: the whole model config, class names and clip
    settings), which the authors' code never reads, so that it loads back as the same model."""
    if not isinstance(text, str):
        return {}, None, None
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}, None, None
    if not isinstance(cfg, dict):
        return {}, None, None
    out: dict[str, Any] = {}
    section = cfg.get("TIMESFORMER")
    attention = section.get("ATTENTION_TYPE") if isinstance(section, dict) else None
    from_reference = {c.reference_name: n for n, c in SCHEMES.items() if c.reference_name}
    if attention in from_reference:
        out["attention"] = from_reference[attention]
    ours = cfg.get(REFERENCE_SECTION)
    if ours is None:
        return out, None, None
    config = ours.get("config") if isinstance(ours, dict) else None
    names = ours.get("class_names") if isinstance(ours, dict) else None
    preprocess = ours.get("preprocess") if isinstance(ours, dict) else None
    if (
        not isinstance(config, dict)
        or not (
            names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names))
        )
        or not (preprocess is None or isinstance(preprocess, dict))
    ):
        raise CheckpointError(f"{path}: damaged {REFERENCE_SECTION} section in its cfg")
    out.update(config)
    return out, names, preprocess


# ---------------------------------------------------------------------- adapting
# Config fields that the tensors determine; a stored config must agree with them (checked before
# any model is built, so a header that declares a huge model cannot make us allocate it).
_SHAPE_FIELDS = ("embed_dim", "in_chans", "patch_size", "depth", "img_size", "num_frames",
                 "num_classes", "mlp_ratio")  # fmt: skip


def _config_for(src: Source, overrides: dict[str, Any], path: Path) -> ModelConfig:
    inferred = K.infer_arch(src.state)
    for key in _SHAPE_FIELDS:
        stored = src.config.get(key)
        if key in inferred and stored is not None and stored != inferred[key]:
            raise CheckpointError(
                f"{path}: damaged checkpoint: its config says {key}={stored!r}, its tensors "
                f"{inferred[key]!r}"
            )
    fields = {**inferred, **src.config}
    if src.kind == "vit":
        fields.pop("num_frames", None)
        fields.setdefault("attention", "divided")
    fields.update(overrides)
    try:
        return ModelConfig.from_dict(fields)
    except ConfigError as err:
        raise CheckpointError(f"{path}: cannot build a model from this checkpoint: {err}") from None


def _check_size(src: Source, cfg: ModelConfig, path: Path) -> None:
    """Refuse a config that would build a model far larger than the file's tensors (a damaged
    or hostile header) before allocating it: loading only adds embeddings, extra attention
    steps and a new head, never more than about the checkpoint's own size."""
    d = cfg.embed_dim
    # An upper bound, computed rather than built (a hostile depth would take long to build even
    # on the meta device): up to three attention steps (4 d^2 each) and the MLP per block, plus
    # the patch, position, time and class tensors.
    tokens = (cfg.img_size // cfg.patch_size) ** 2 + 1 + cfg.num_frames
    per_block = 12 * d * d + 2 * cfg.mlp_ratio * d * d + 16 * d
    wanted = cfg.depth * per_block + d * (
        tokens + cfg.num_classes + cfg.in_chans * cfg.patch_size**2
    )
    held = sum(t.numel() for t in src.state.values())
    if wanted > 4 * held + 50_000_000:
        raise CheckpointError(
            f"{path}: its config describes a model of about {wanted:,.0f} parameters, but the "
            f"file holds only {held:,} values"
        )


def _adapt(src: Source, model: TimeSformer, report: LoadReport) -> dict[str, Tensor]:
    """Rename, expand and resize ``src.state`` into the model's keys (no model changes yet)."""
    cfg = model.config
    target = model.state_dict()
    state = dict(src.state)

    if src.kind == "vit":
        # ImageNet init: every patch-only step starts from the image attention, as the authors'
        # code starts the temporal one.
        for block_idx, block in enumerate(model.blocks):
            for step, _, _, _ in block.extra_step_modules():
                for part in ("norm1", "attn.qkv", "attn.proj"):
                    for param in ("weight", "bias"):
                        src_key = f"blocks.{block_idx}.{part}.{param}"
                        dst_key = f"blocks.{block_idx}.{step}_{part}.{param}"
                        if src_key in state and dst_key in target and dst_key not in state:
                            state[dst_key] = state[src_key]
                            report.copied.append(dst_key)
        # Heads of image models (e.g. pre_logits, fc_norm) that a TimeSformer has no use for.
        for extra in [
            k for k in state if k not in target and k.startswith(("pre_logits", "fc_norm"))
        ]:
            state.pop(extra)
            report.unexpected.append(extra)

    g = cfg.grid_size
    pos = state.get("pos_embed")
    n = pos.shape[1] - 1 if pos is not None and pos.ndim == 3 else 0
    side = math.isqrt(n)
    resizable = n > 0 and side * side == n and pos.shape[-1] == cfg.embed_dim
    # Anything else that does not fit is reported by the shape check that follows.
    if resizable and "pos_embed" in target and pos.shape != target["pos_embed"].shape:
        state["pos_embed"] = resize_pos_embed(pos, (g, g), (side, side), cfg.pos_interp)
        report.resized.append(f"pos_embed {side}x{side}->{g}x{g}")
    if "time_embed" in state and "time_embed" in target:
        te = state["time_embed"]
        if (
            te.shape != target["time_embed"].shape
            and te.ndim == 3
            and te.shape[-1] == cfg.embed_dim
        ):
            state["time_embed"] = resize_time_embed(te, cfg.num_frames, cfg.pos_interp)
            report.resized.append(f"time_embed {te.shape[1]}->{cfg.num_frames} frames")

    # Embeddings the model was asked to go without (``pos_embed``: space or none).
    left_out = {"space": ("time_embed",), "none": ("time_embed", "pos_embed")}
    for key in left_out.get(cfg.pos_embed, ()):
        if key in state and key not in target:
            state.pop(key)
            report.dropped.append(key)

    for key in ("head.weight", "head.bias"):
        if key in state and state[key].shape != target[key].shape:
            state.pop(key)
            report.initialised.append(
                f"{key} (checkpoint has {src.state[key].shape[0]} classes, model {cfg.num_classes})"
            )
    return state


def _expected_missing(src: Source, model: TimeSformer, key: str) -> bool:
    """Keys a source legitimately lacks: the model's fresh initialisation is the right value."""
    if key.startswith("head."):
        return False  # reported via ``initialised`` when dropped on purpose
    if src.kind == "vit":
        # time embedding and the zero-initialised extra-step linears
        return key == "time_embed" or any(
            f".{step}_fc." in key for step in type(model.blocks[0]).extra_steps
        )
    return False


def load_into(src: Source, model: TimeSformer, path: Path, strict: bool = True) -> LoadReport:
    """Load an already-read checkpoint into ``model``; see ``load_checkpoint``."""
    report = LoadReport(str(path), src.kind)
    state = _adapt(src, model, report)
    target = model.state_dict()
    mismatched = [
        f"{k} (checkpoint {tuple(v.shape)}, model {tuple(target[k].shape)})"
        for k, v in state.items()
        if k in target and v.shape != target[k].shape
    ]
    if mismatched:
        raise CheckpointError(f"{path}: shapes do not fit the model: {_short(mismatched, 4)}")
    report.unexpected += sorted(k for k in state if k not in target)
    dropped_head = any(s.startswith("head.") for s in report.initialised)
    for k in sorted(target):
        if k in state:
            continue
        if _expected_missing(src, model, k):
            report.initialised.append(k)
        elif not (dropped_head and k.startswith("head.")):
            report.missing.append(k)
    if strict and (report.missing or report.unexpected):
        problems = []
        if report.missing:
            problems.append(f"missing keys: {_short(report.missing)}")
        if report.unexpected:
            problems.append(f"unexpected keys: {_short(report.unexpected)}")
        raise CheckpointError(
            f"{path}: does not fit a {model.config.attention} model ({'; '.join(problems)}); "
            "pass strict=False to load what fits"
        )
    with torch.no_grad():
        for k, v in state.items():
            if k in target:
                target[k].copy_(v.to(target[k].dtype))
                report.loaded.append(k)
    if dropped_head:
        model.reset_classifier(model.config.num_classes)
    if src.class_names is not None and len(src.class_names) == model.config.num_classes:
        model.class_names = list(src.class_names)
    if src.preprocess is not None:
        model.preprocess = dict(src.preprocess)
    log.info(report.summary())
    return report


def load_checkpoint(
    path: str | Path,
    model: nn.Module | None = None,
    *,
    strict: bool = True,
    **overrides: Any,
) -> TimeSformer:
    """Load a checkpoint of any supported family.

    Args:
        path: a file (``.safetensors``, ``.pyth``, ``.pth``, ``.bin``), a Hugging Face folder,
            a Hugging Face Hub repo id (``facebook/timesformer-base-finetuned-k400``, optionally
            ``@revision``) or ``reference:NAME`` from the authors' model zoo; named models are
            downloaded on first use and cached (``timesformer models`` lists them).
        model: load into this model, whose mode is kept; when None, a model is built from
            the checkpoint's own config (or its tensor shapes), with ``overrides`` applied, and
            returned in eval mode (``model.train()`` to train it).
        strict: raise ``CheckpointError`` on any key that neither loads nor is explained
            (position/time resize, new head, ImageNet initialisation); otherwise report it.
        **overrides: ``ModelConfig`` fields for the built model, e.g. ``num_frames=16``,
            ``img_size=448``, ``num_classes=10``, ``attention="axial"`` (for an image ViT).

    Returns:
        The model, with ``model.load_report`` (a ``LoadReport``) and ``model.class_names`` set.
    """
    src = read_checkpoint(path)  # before Path(): "org/name" may be a Hub id, not a path
    path = Path(path)
    if model is None:
        cfg = _config_for(src, overrides, path)
        _check_size(src, cfg, path)
        # Eval mode, as transformers' from_pretrained gives it: a loaded model's outputs are
        # the checkpoint's, not those of a random drop path (the reference's configs train with
        # 0.1). Training sets its own mode every epoch.
        built = TimeSformer(cfg).eval()
    else:
        if overrides:
            raise ConfigError(
                f"overrides {', '.join(sorted(overrides))} only apply when the model is built "
                "from the checkpoint (model=None)"
            )
        built = unwrap(model)
        if not isinstance(built, TimeSformer):
            raise ConfigError(f"expected a TimeSformer model, got {type(built).__name__}")
    report = load_into(src, built, path, strict=strict)
    built.load_report = report
    return built
