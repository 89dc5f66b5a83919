"""Typed run configuration: dataclasses, YAML files and ``key=value`` overrides.

OmegaConf does the merging and type checking (an unknown key or a value of the wrong type is
refused with the key's full name); ``load_config`` turns its errors into one-line
``ConfigError``s and remembers where each key's value came from (``key_origin``): a value from a
shipped config is a default for its own data set, one from the user's file or override is what
the user asked for.  The merged config is written into every run folder (``config.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from timesformer.config import EXTRA_STEP_INITS, TIME_EMBED_INITS
from timesformer.errors import ConfigError


@dataclass
class ModelSection:
    """The network.  Unset (null) fields take the variant's value."""

    name: str = "timesformer_base"
    attention: str = "divided"
    # Unset: the training data's class count.  Set by a shipped config (k400_base: 400) it gives
    # way to the data's count with a notice; set by the user it must match the data.
    num_classes: int | None = None
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float | None = None
    drop_path_rate: float | None = None
    pos_embed_std: float = 0.02  # the reference's start; ~1 learns much sooner from scratch
    time_embed_std: float = 0.0  # 0: the reference's zeros; ~1 breaks time symmetry from scratch
    # zeros: each block's extra-step linear (temporal_fc) starts at zero, the reference's start
    # from an image model; normal: like every other linear, for training from scratch
    extra_step_init: str = "zeros"
    # normal: each frame's time embedding at random; sincos: sines and cosines of the frame's
    # place in the clip, so early against late is one direction from the first step
    time_embed_init: str = "normal"
    pos_embed: str = "space_time"  # space_time | space (no time embedding) | none (Table 4)
    init: str | None = None  # a checkpoint load_checkpoint reads (ImageNet ViT, K400, own run)
    grad_checkpointing: bool = False


@dataclass
class DataSection:
    """Where the videos are and how clips are drawn (defaults: reference K400 8 x 32 x 224)."""

    format: str = "folder"  # folder | csv | ssv2
    root: str = ""  # folder: contains train/ and val/ (or the splits below); csv/ssv2: video root
    train: str = "train"  # folder: sub-folder; csv: list file; ssv2: labels JSON
    val: str = "val"
    classes: str | None = None  # class-name file (csv), or the SSv2 label map JSON
    video_ext: str = ".webm"  # ssv2: the videos are ROOT/ID + this (".mp4" for converted sets)
    num_frames: int = 8
    sampling_rate: int = 32
    target_fps: float = 30.0
    sampling: str = "window"  # window (Kinetics) | segment (SSv2)
    crop_size: int = 224
    train_scale: list[int] = field(default_factory=lambda: [256, 320])
    flip: bool = True
    test_clips: int = 1
    test_crops: int = 3
    batch_size: int = 8  # per process
    workers: int = 4
    # Keep every video decoded in memory after its first read, in each loader process: for
    # small sets (the synthetic ones), where decoding bounds a CPU's speed; not for Kinetics.
    cache_decoded: bool = False
    # The most each loader process keeps decoded (MB); videos beyond it are read from files.
    cache_limit_mb: float = 2048.0


@dataclass
class OptimSection:
    """The paper's recipe by default: SGD, Nesterov momentum 0.9, weight decay 1e-4, lr 0.005,
    15 epochs, lr x0.1 at epochs 11 and 14."""

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.005
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "steps"  # steps | cosine
    lr_steps: list[int] = field(default_factory=lambda: [11, 14])
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    epochs: int = 15
    global_batch: int = 64  # reached by gradient accumulation over processes and steps
    label_smoothing: float = 0.0
    clip_grad: float | None = None


@dataclass
class RunSection:
    """Where and how the run executes."""

    out: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # fp32 | bf16 (autocast, CPU and GPU) | fp16 (GPU, with a scaler) | int8 (evaluation on
    # the CPU only: int8 linear products, see timesformer.layers.quantize_int8)
    precision: str = "fp32"
    compile: bool = False
    keep_last: int = 2  # epoch checkpoints kept besides best.safetensors
    eval_every: int = 1
    # true: continue the run in ``out`` from its newest checkpoint (refused when the config has
    # changed in a way that run cannot continue); false: start over, the old run in ``out``
    # moved aside to the sibling folder OUT.old-N first.
    resume: bool = True
    max_steps_per_epoch: int | None = None
    eval_reduce: str = "sum"  # how views combine: sum (of logits, the reference) | softmax
    progress: bool = True
    tensorboard: bool = True
    # Seconds a process waits in a collective (DDP) for the others: a process that hangs, rather
    # than dies, then stops the run with an error instead of blocking it for ever.
    dist_timeout: float = 1800.0


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)


_CHOICES = {
    "data.format": ("folder", "csv", "ssv2"),
    "data.sampling": ("window", "segment"),
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("steps", "cosine"),
    "run.precision": ("fp32", "bf16", "fp16", "int8"),
    "run.eval_reduce": ("sum", "softmax"),
    "model.extra_step_init": EXTRA_STEP_INITS,
    "model.time_embed_init": TIME_EMBED_INITS,
}
_POSITIVE = (
    "data.num_frames",
    "data.sampling_rate",
    "data.crop_size",
    "data.batch_size",
    "data.test_clips",
    "optim.epochs",
    "optim.global_batch",
    "run.eval_every",
)


def _get(cfg: TrainConfig, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Checks OmegaConf's types cannot express; raises ``ConfigError`` naming the key."""
    for key, choices in _CHOICES.items():
        if _get(cfg, key) not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {_get(cfg, key)!r}")
    for key in _POSITIVE:
        if _get(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {_get(cfg, key)}")
    if cfg.data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {cfg.data.workers}")
    if cfg.data.test_crops not in (1, 3):
        raise ConfigError(f"data.test_crops must be 1 or 3, got {cfg.data.test_crops}")
    if len(cfg.data.train_scale) != 2 or not (
        cfg.data.crop_size <= cfg.data.train_scale[0] <= cfg.data.train_scale[1]
    ):
        raise ConfigError(
            f"data.train_scale must be [min, max] with crop_size <= min <= max, got "
            f"{list(cfg.data.train_scale)} for crop_size {cfg.data.crop_size}"
        )
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be positive, got {cfg.optim.lr}")
    if not 0.0 <= cfg.optim.label_smoothing < 1.0:
        raise ConfigError(
            f"optim.label_smoothing must be in [0, 1), got {cfg.optim.label_smoothing}"
        )
    if cfg.run.keep_last < 1:
        raise ConfigError(f"run.keep_last must be at least 1, got {cfg.run.keep_last}")
    if cfg.run.dist_timeout <= 0:
        raise ConfigError(f"run.dist_timeout must be positive, got {cfg.run.dist_timeout}")
    if not cfg.data.root:
        raise ConfigError("data.root is not set (the folder of the videos)")
    _validate_model(cfg)
    return cfg


def _validate_model(cfg: TrainConfig) -> None:
    """The model section must build at the data's frame count and crop size: checked here, so
    that a bad name or size fails before a run folder or a data set is made."""
    from timesformer.variants import get_variant, model_config

    m = cfg.model
    if m.init:
        return  # the architecture comes from that checkpoint, checked when it loads
    patch = m.patch_size or get_variant(m.name).config.patch_size
    if patch >= 1 and cfg.data.crop_size % patch:
        raise ConfigError(
            f"data.crop_size {cfg.data.crop_size} is not a multiple of the patch size {patch} "
            f"of {m.name} (model.patch_size)"
        )
    arch_keys = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "drop_path_rate")
    arch = {k: getattr(m, k) for k in arch_keys if getattr(m, k) is not None}
    try:
        config = model_config(
            m.name,
            attention=m.attention,
            num_classes=m.num_classes or 1,  # unset: the data set's count, at least 1
            num_frames=cfg.data.num_frames,
            img_size=cfg.data.crop_size,
            **arch,
        )
        # The scheme's grid rules (local_global: even frames and patches per side) would
        # otherwise be met only in the first forward pass, after the run folder exists.
        check_grid(config, cfg.data.num_frames, cfg.data.crop_size)
    except ConfigError as err:
        raise ConfigError(f"model section: {err}") from None


def check_grid(config: Any, num_frames: int, crop_size: int) -> None:
    """``ConfigError`` unless the attention scheme of ``config`` (a ``ModelConfig``) runs on
    clips of ``num_frames`` frames of ``crop_size`` pixels (the message names the keys)."""
    from timesformer.schemes import SCHEMES, Grid

    side = crop_size // config.patch_size
    try:
        SCHEMES[config.attention].check_grid(Grid(num_frames, side, side))
    except ConfigError as err:
        raise ConfigError(
            f"{err} (data.num_frames {num_frames}, data.crop_size {crop_size} / patch size "
            f"{config.patch_size}); change data.num_frames or data.crop_size, or model.attention"
        ) from None


def _one_line(err: OmegaConfBaseException) -> str:
    msg = (getattr(err, "msg", None) or str(err)).strip().splitlines()[0]
    key = getattr(err, "full_key", None)
    return f"{key}: {msg}" if key and key not in msg else msg


def load_config(
    files: list[str | Path] | None = None,
    overrides: list[str] | None = None,
    check: bool = True,
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults <- ``base`` (a mapping of sections, e.g. what a checkpoint implies) <- each YAML
    file in order <- ``key=value`` overrides (values parsed as YAML).

    The config remembers which layer set each key (``key_origin``)."""
    merged = OmegaConf.structured(TrainConfig)
    origins: dict[str, str] = {}
    if base:
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(base))
        except OmegaConfBaseException as err:
            raise ConfigError(_one_line(err)) from None
    for f in files or []:
        path = Path(f)
        if not path.is_file():
            what = "is not a file" if path.exists() else "no such config file"
            raise ConfigError(f"{path}: {what}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from None
        except OSError as err:
            raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (model, data, optim, run)")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(data))
        except OmegaConfBaseException as err:
            raise ConfigError(f"{path}: {_one_line(err)}") from None
        shipped = path.resolve().parent == _SHIPPED
        origin = f"{SHIPPED_ORIGIN} {path.stem}" if shipped else str(path)
        origins.update(dict.fromkeys(_leaf_keys(data), origin))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} is not of the form key=value (e.g. optim.lr=0.01)"
            )
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        try:
            OmegaConf.update(merged, key.strip(), parsed, merge=True, force_add=False)
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {item!r}: {_one_line(err)}") from None
        origins[key.strip()] = f"the override {item}"
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(_one_line(err)) from None
    # An attribute, not a field: it is no setting, so it stays out of config.yaml and of ==.
    cfg._origins = origins
    return validate(cfg) if check else cfg


_SHIPPED = Path(__file__).resolve().parent.parent / "configs"
SHIPPED_ORIGIN = "the shipped config"


def _leaf_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of a nested mapping's leaves (``model.num_classes``)."""
    keys = []
    for name, value in data.items():
        if isinstance(value, dict):
            keys += _leaf_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def key_origin(cfg: TrainConfig, key: str) -> str | None:
    """Where ``load_config`` took the value of ``key`` (dotted) from: "the shipped config NAME",
    the path of a config file, or "the override KEY=VALUE"; None for a default, or for a config
    that was not made by ``load_config``."""
    return getattr(cfg, "_origins", {}).get(key)


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def packaged_config(name: str) -> Path:
    """A config shipped with the package (``timesformer/configs/NAME.yaml``)."""
    path = _SHIPPED / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no shipped config named {name!r}")
    return path
