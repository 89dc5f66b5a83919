"""A synthetic motion data set whose classes only the order of frames reveals.

Classes come in time-reversal pairs (right/left, down/up, clockwise/anticlockwise, approaching/
receding, converging/diverging, appearing/disappearing): the video of one class played backwards is
the video of the other, exactly, for the same parameters::

    render(pair_of(c), p) == render(c, p)[::-1]

Parameters (shape, colours, texture, background, size, speed, start position) are drawn from one
distribution per *pair*, independent of the class, and the written data set uses the same
parameters for clip i of both classes of a pair. So the set of frames of a video carries no
information about which class of its pair it belongs to: a model that ignores frame order (the
space-only scheme averages over frames) is at chance within every pair, while a model that sees
the order can learn them all.

``render`` is a pure function of its arguments (numpy only); ``make_synthetic`` writes the
folder-per-class layout (``OUT/{train,val}/CLASS/CLASS_0000.mp4``, ``classes.txt``, ``meta.json``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from timesformer.errors import TimesformerError
from timesformer.names import DEFAULT_PAIRS, PAIRS, ROTATIONS, STYLES, Pair

__all__ = [
    "DEFAULT_PAIRS",
    "PAIRS",
    "Pair",
    "SynthParams",
    "class_names",
    "make_synthetic",
    "pair_of",
    "render",
    "sample_params",
]


_BY_PAIR = {p.name: p for p in PAIRS}
_BY_CLASS = {c: p for p in PAIRS for c in (p.forward, p.backward)}


def _pair(name: str) -> Pair:
    if name not in _BY_PAIR:
        raise TimesformerError(f"unknown pair {name!r}; pairs: {', '.join(_BY_PAIR)}")
    return _BY_PAIR[name]


def class_names(pairs: Sequence[str] = DEFAULT_PAIRS) -> list[str]:
    """The classes of ``pairs``, each pair's two classes next to each other."""
    return [c for name in pairs for c in (_pair(name).forward, _pair(name).backward)]


def pair_of(class_name: str) -> str:
    """The class whose videos are this class's videos played backwards."""
    pair = _class_pair(class_name)
    return pair.backward if class_name == pair.forward else pair.forward


def _class_pair(class_name: str) -> Pair:
    if class_name not in _BY_CLASS:
        raise TimesformerError(f"unknown class {class_name!r}; classes: {', '.join(_BY_CLASS)}")
    return _BY_CLASS[class_name]


@dataclass(frozen=True)
class SynthParams:
    """Everything a video depends on besides its class. Lengths in pixels, angles in radians.

    ``amount`` is how far the motion goes over the whole clip: travel in pixels (horizontal,
    vertical), turn in radians (rotation), log of the size ratio (depth), change of the gap in
    pixels (convergence), change of opacity (fade).
    """

    frames: int
    size: int
    background: tuple[float, float, float]  # RGB in [0, 1]
    background_seed: int  # the smooth noise texture of the background
    background_contrast: float
    color: tuple[float, float, float]
    color2: tuple[float, float, float]  # second colour of the object's texture
    texture: str  # "plain", "stripes" or "checker"
    texture_freq: float  # cycles per object radius
    texture_angle: float
    vertex_angles: tuple[float, ...]  # the object: a polygon with these vertices (unit radius)
    vertex_radii: tuple[float, ...]
    radius: float  # object radius in pixels (at mid-clip for depth)
    center: tuple[float, float]  # (x, y) of the object (of the pair of objects) at mid-clip
    angle: float  # orientation at mid-clip
    amount: float
    drift: float  # sideways motion, as a fraction of ``amount`` (translations only)
    gap: float  # mid-clip distance between the two objects (convergence), pixels
    axis: float  # direction of the line joining the two objects (convergence)
    opacity: float  # mid-clip opacity (fade)


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise TimesformerError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def sample_params(
    pair: str,
    rng: np.random.Generator,
    frames: int = 16,
    size: int = 64,
    style: str = "rich",
    rotation: str = "up",
) -> SynthParams:
    """Draw parameters for one video of ``pair`` (the same distribution for both classes).

    ``style="rich"``: random colours, textures and textured backgrounds. ``style="simple"``: the
    same shapes, motions, sizes and positions, drawn plain white on black and 1.6x larger, which
    a small transformer learns from scratch within a CPU budget (the demo's set); random colours
    and textures make a from-scratch model need far more clips before it sees the motion.

    ``rotation`` (rotation pair only): ``"up"``, the turning object's tip points within 30
    degrees of up at mid-clip, as every other pair's object passes a typical state at mid-clip
    (near the middle of the frame, mid size, half faded), so a single frame shows which side of
    the turn it lies on (clockwise: the tip left of up early, right of up late); ``"any"``: any
    way, so only the change between frames shows the direction. The two draw the same values
    but for the orientation.
    """
    _check_choice("style", style, STYLES)
    _check_choice("rotation", rotation, ROTATIONS)
    _pair(pair)
    if frames < 2 or size < 16:
        raise TimesformerError(
            f"synthetic videos need >= 2 frames and >= 16 pixels, got {frames}, {size}"
        )
    bg = rng.uniform(0.05, 0.95, 3)
    fg = rng.uniform(0.0, 1.0, 3)
    while np.abs(fg - bg).max() < 0.35:  # keep the object visible against its background
        fg = rng.uniform(0.0, 1.0, 3)
    shade = rng.uniform(0.35, 0.7)
    n_vertices = int(rng.integers(3, 8))
    # Evenly spread angles with jitter and unequal radii: no rotational symmetry.
    angles = (np.arange(n_vertices) + rng.uniform(-0.3, 0.3, n_vertices)) * 2 * math.pi / n_vertices
    radii = rng.uniform(0.55, 1.0, n_vertices)
    radius = size * rng.uniform(0.12, 0.2)
    amount, drift, gap, axis, opacity = 0.0, 0.0, 0.0, 0.0, 1.0
    spread = 0.12 * size
    if pair in ("horizontal", "vertical"):
        amount = size * rng.uniform(0.3, 0.6)
        drift = rng.uniform(-0.25, 0.25)
    elif pair == "rotation":
        amount = rng.uniform(0.6, 1.4) * math.pi
        # One vertex twice as far out as the others, a tip: an n-gon turned by nearly 2pi/n
        # between two sampled frames otherwise looks turned a little the other way (the
        # wagon-wheel effect), and 4 frames of the clip sample it 27-67 degrees apart.
        radii = 0.55 * radii / radii.max()
        radii[0] = 1.0
    elif pair == "depth":
        amount = math.log(rng.uniform(2.0, 3.5))
        radius = size * rng.uniform(0.1, 0.16)
    elif pair == "convergence":
        radius = size * rng.uniform(0.08, 0.12)
        amount = size * rng.uniform(0.3, 0.45)
        gap = amount / 2 + 2 * radius + size * rng.uniform(0.0, 0.05)
        axis = rng.uniform(0, math.pi)
    elif pair == "fade":
        amount = rng.uniform(0.7, 0.95)
        opacity = 0.5 + rng.uniform(-1, 1) * (1 - amount) / 2  # stays within [0, 1]
    params = SynthParams(
        frames=frames,
        size=size,
        background=tuple(float(v) for v in bg),
        background_seed=int(rng.integers(2**31)),
        background_contrast=float(rng.uniform(0.0, 0.3)),
        color=tuple(float(v) for v in fg),
        color2=tuple(float(v) for v in fg * shade),
        texture=str(rng.choice(["plain", "stripes", "checker"])),
        texture_freq=float(rng.uniform(0.8, 2.0)),
        texture_angle=float(rng.uniform(0, math.pi)),
        vertex_angles=tuple(float(a) for a in angles),
        vertex_radii=tuple(float(r) for r in radii),
        radius=float(radius),
        center=(
            float(size / 2 + rng.uniform(-spread, spread)),
            float(size / 2 + rng.uniform(-spread, spread)),
        ),
        angle=float(rng.uniform(0, 2 * math.pi)),
        amount=float(amount),
        drift=float(drift),
        gap=float(gap),
        axis=float(axis),
        opacity=float(opacity),
    )
    if style == "simple":
        white = (1.0, 1.0, 1.0)
        params = replace(
            params,
            background=(0.0, 0.0, 0.0),
            background_contrast=0.0,
            color=white,
            color2=white,
            texture="plain",
            radius=params.radius * 1.6,
        )
    if pair == "rotation" and rotation == "up":
        # Drawn last, so that "any" and "up" share every other value. The tip is vertex 0;
        # y points down, so -pi/2 is up.
        tip_up = -math.pi / 2 - params.vertex_angles[0]
        params = replace(params, angle=float(tip_up + rng.uniform(-math.pi / 6, math.pi / 6)))
    return params


# --------------------------------------------------------------------------- rendering

_SUPERSAMPLE = 3  # sub-pixels per side: smooth edges, so sub-pixel motion shows


def render(class_name: str, params: SynthParams) -> np.ndarray:
    """The video of ``class_name`` for ``params``: uint8 (T, H, W, 3), T = params.frames.

    Frame t of the forward class is the motion at time step t; the backward class shows time
    step T - 1 - t. Nothing else differs.
    """
    pair = _class_pair(class_name)
    T = params.frames
    steps = range(T) if class_name == pair.forward else range(T - 1, -1, -1)
    background = _background(params)
    return np.stack([_frame(pair.name, params, k, background) for k in steps])


def _background(p: SynthParams) -> np.ndarray:
    """(S, S, 3) float: a colour plus static smooth noise."""
    rng = np.random.default_rng(p.background_seed)
    coarse = rng.uniform(-1, 1, (6, 6))
    x = np.linspace(0, 5, p.size)
    i0 = np.minimum(x.astype(int), 4)
    f = x - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]  # (S, 6)
    noise = rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]  # (S, S)
    return np.clip(
        np.asarray(p.background)[None, None, :] + p.background_contrast * noise[..., None], 0, 1
    )


def _state(
    pair: str, p: SynthParams, k: int
) -> tuple[list[tuple[float, float]], float, float, float]:
    """Object centres, radius, orientation and opacity at time step k (u in [-0.5, 0.5])."""
    u = k / (p.frames - 1) - 0.5
    cx, cy = p.center
    radius, angle, opacity = p.radius, p.angle, 1.0
    if pair == "horizontal":
        centres = [(cx + u * p.amount, cy + u * p.drift * p.amount)]
    elif pair == "vertical":
        centres = [(cx + u * p.drift * p.amount, cy + u * p.amount)]
    elif pair == "rotation":
        centres = [(cx, cy)]
        angle = p.angle + u * p.amount  # y points down: a growing angle turns clockwise
    elif pair == "depth":
        centres = [(cx, cy)]
        radius = p.radius * math.exp(u * p.amount)
    elif pair == "convergence":
        half = (p.gap - u * p.amount) / 2
        dx, dy = half * math.cos(p.axis), half * math.sin(p.axis)
        centres = [(cx - dx, cy - dy), (cx + dx, cy + dy)]
    elif pair == "fade":
        centres = [(cx, cy)]
        opacity = p.opacity + u * p.amount
    else:  # pragma: no cover - _pair() rejects unknown names
        raise AssertionError(pair)
    return centres, radius, angle, opacity


def _frame(pair: str, p: SynthParams, k: int, background: np.ndarray) -> np.ndarray:
    centres, radius, angle, opacity = _state(pair, p, k)
    s = _SUPERSAMPLE
    cos, sin = math.cos(angle), math.sin(angle)
    coverage = np.zeros((p.size, p.size))
    shade = np.zeros((p.size, p.size))
    reach = radius * max(p.vertex_radii) + 1
    for cx, cy in centres:
        # Only the pixels of the object's bounding box (y down, pixel centres at +0.5).
        x0, x1 = max(int(cx - reach), 0), min(math.ceil(cx + reach), p.size)
        y0, y1 = max(int(cy - reach), 0), min(math.ceil(cy + reach), p.size)
        if x0 >= x1 or y0 >= y1:
            continue
        X, Y = np.meshgrid(
            x0 + (np.arange((x1 - x0) * s) + 0.5) / s, y0 + (np.arange((y1 - y0) * s) + 0.5) / s
        )
        # Object coordinates: unrotated, in units of the radius (texture moves with the object).
        dx, dy = (X - cx) / radius, (Y - cy) / radius
        ox, oy = cos * dx + sin * dy, -sin * dx + cos * dy
        inside = _in_polygon(ox, oy, p.vertex_angles, p.vertex_radii).astype(np.float64)
        pattern = _TEXTURES[p.texture](ox, oy, p.texture_freq, p.texture_angle)
        coverage[y0:y1, x0:x1] += _pool(inside, s)
        shade[y0:y1, x0:x1] += _pool(inside * pattern, s)
    coverage = np.minimum(coverage, 1.0)
    mix = np.where(coverage > 0, shade / np.maximum(coverage, 1e-12), 0.0)[..., None]
    color = (1 - mix) * np.asarray(p.color) + mix * np.asarray(p.color2)
    alpha = (opacity * coverage)[..., None]
    out = (1 - alpha) * background + alpha * color
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def _in_polygon(
    x: np.ndarray, y: np.ndarray, angles: Sequence[float], radii: Sequence[float]
) -> np.ndarray:
    """Even-odd rule for the polygon with the given polar vertices."""
    vx = [r * math.cos(a) for a, r in zip(angles, radii, strict=True)]
    vy = [r * math.sin(a) for a, r in zip(angles, radii, strict=True)]
    inside = np.zeros(x.shape, dtype=bool)
    n = len(vx)
    for i in range(n):
        x0, y0, x1, y1 = vx[i], vy[i], vx[(i + 1) % n], vy[(i + 1) % n]
        if y0 == y1:
            continue
        crosses = (y0 > y) != (y1 > y)
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < x_at)
    return inside


def _pool(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[0] // s, a.shape[1] // s
    return a.reshape(h, s, w, s).mean(axis=(1, 3))


def _plain(x: np.ndarray, y: np.ndarray, freq: float, angle: float) -> np.ndarray:
    return np.zeros_like(x)


def _stripes(x: np.ndarray, y: np.ndarray, freq: float, angle: float) -> np.ndarray:
    return (np.sin(2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle))) > 0) * 1.0


def _checker(x: np.ndarray, y: np.ndarray, freq: float, angle: float) -> np.ndarray:
    return ((np.sin(2 * math.pi * freq * x) * np.sin(2 * math.pi * freq * y)) > 0) * 1.0


_TEXTURES: dict[str, Callable[..., np.ndarray]] = {
    "plain": _plain,
    "stripes": _stripes,
    "checker": _checker,
}


# --------------------------------------------------------------------------- writing


def _clip_rng(seed: int, split: str, pair: str, i: int) -> np.random.Generator:
    # Keyed by what the clip is, not by the order of generation: the same seed gives the same
    # clip whichever pairs or how many clips are asked for.
    pair_id = [p.name for p in PAIRS].index(pair)
    return np.random.default_rng([seed, ("train", "val").index(split), pair_id, i])


def make_synthetic(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    pairs: Sequence[str] = DEFAULT_PAIRS,
    train_per_class: int = 48,
    val_per_class: int = 16,
    frames: int = 16,
    size: int = 64,
    fps: float = 30.0,
    crf: int = 0,
    style: str = "rich",
    rotation: str = "up",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the synthetic set to ``out`` (folder per class, train/val splits); returns ``out``.

    Videos are H.264 mp4 (libx264). The default ``crf=0`` is lossless in YUV 4:2:0: the only loss
    is the per-frame colour subsampling, so the decoded files keep the time reversal exactly
    (a lossy setting would leave compression noise that differs between a video and its reversal,
    a faint clue to the direction). Clip i of both classes of a pair share their parameters. The
    set is written to a temporary folder beside ``out`` and renamed when complete.
    """
    from tqdm.auto import tqdm

    from timesformer.data.writer import new_data_folder, write_h264

    out = Path(out)
    pairs = list(dict.fromkeys(pairs))
    for name in pairs:
        _pair(name)
    if not pairs:
        raise TimesformerError("no pairs to generate")
    _check_choice("style", style, STYLES)
    _check_choice("rotation", rotation, ROTATIONS)
    if train_per_class < 0 or val_per_class < 0 or train_per_class + val_per_class == 0:
        raise TimesformerError("need at least one video per class")
    names = class_names(pairs)
    counts = {"train": train_per_class, "val": val_per_class}
    total = sum(counts.values()) * len(names)
    with new_data_folder(out, overwrite) as tmp:
        with tqdm(total=total, desc="synthesising", unit="video", disable=not progress) as bar:
            for split, count in counts.items():
                for name in pairs:
                    pair = _pair(name)
                    for i in range(count):
                        rng = _clip_rng(seed, split, name, i)
                        params = sample_params(name, rng, frames, size, style, rotation)
                        for cls in (pair.forward, pair.backward):
                            folder = tmp / split / cls
                            folder.mkdir(parents=True, exist_ok=True)
                            write_h264(folder / f"{cls}_{i:04d}.mp4", render(cls, params), fps, crf)
                            bar.update()
        (tmp / "classes.txt").write_text("".join(f"{c}\n" for c in names), encoding="utf-8")
        meta = {
            "kind": "timesformer synthetic motion",
            "version": 1,
            "seed": seed,
            "pairs": [asdict(_pair(n)) for n in pairs],
            "classes": names,
            "frames": frames,
            "size": size,
            "style": style,
            "rotation": rotation,
            "fps": fps,
            "codec": "libx264",
            "crf": crf,
            "train_per_class": train_per_class,
            "val_per_class": val_per_class,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
