"""A synthetic long-video set whose classes only the order of events far apart in time reveals.

The paper's long-term task (HowTo100M, Table 8) in miniature. Every video is tens of seconds of
*clutter* (grey squares drifting over a dark background, wrapping around the frame edges) in
which K short *events* happen: for the length of an event the clutter is replaced by a large disc
of the event's colour that swells and shrinks (a flash). Every class shows the same K events and
differs from the others only in the order in which they come::

    class "red_blue": a red flash, later a blue flash
    class "blue_red": a blue flash, later a red flash

Parameters (clutter, background, the discs' places and sizes, the event length, the event times)
are drawn from one distribution, independent of the class, and the written set renders clip i of
every class from the same parameters: event slot j shows the class's j-th event. The frames of the
clutter are the same whatever the class and an event's frames depend on the event only, not on
its slot, so the *multiset* of frames of a video carries no information about its class::

    sorted(frames(render_long(a, p))) == sorted(frames(render_long(b, p)))

Only the order does. Event slot j lies at a random place in the j-th of K equal parts of the
video (``placement="parts"``; ``"uniform"``: anywhere, in order), with at least ``min_gap``
seconds of clutter between the end of one event and the start of the next: more than a short
window covers (the Table 8 demo's baseline: 8 frames x rate 4 = 32 frames, 2.7 s at 12 fps). A
model that sees one short window at a time never sees two events together and cannot tell where
in the video its window lies, so averaging its window predictions (``predict --windows``) is
blind to the order. A model that samples frames uniformly over the whole video (segment
sampling) knows where each of its frames lies and sees the order when its samples land in the
events (with ``"parts"`` one caught event is enough: a red flash in the first half means
"red_blue"). An event lasts ``event_seconds`` (default 1-1.5 s, 12-18 frames at 12 fps), so of a
24 s video 32 frames (one per 9) and 96 (one per 3) catch every event, and 8 frames (one per 36)
each event with a probability of about 0.4, both events in about 1 video of 6 and neither in 1
of 3.

``render_long`` is a pure function of its arguments (numpy only); ``make_long_synthetic`` writes
the folder-per-class layout of ``make_synthetic`` (``OUT/{train,val}/CLASS/CLASS_0000.mp4``,
``classes.txt``, ``meta.json``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timesformer.errors import TimesformerError

__all__ = [
    "DEFAULT_LONG_CLASSES",
    "EVENT_COLOURS",
    "META_KEYS",
    "PLACEMENTS",
    "LongParams",
    "describe_long_task",
    "event_spans",
    "long_class_names",
    "make_long_synthetic",
    "render_long",
    "sample_long_params",
]

# The events, by name: saturated colours, which the grey clutter never shows.
EVENT_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.15, 0.1),
    "blue": (0.15, 0.35, 1.0),
    "green": (0.1, 0.85, 0.2),
    "yellow": (0.95, 0.85, 0.1),
}
DEFAULT_EVENTS: tuple[str, ...] = ("red", "blue")
CLUTTER = (3, 6)  # squares of clutter in a video: at least, at most
# Where the K event slots go: "parts": slot j somewhere in the j-th of K equal parts of the video;
# "uniform": anywhere, in order, the gap kept.
PLACEMENTS: tuple[str, ...] = ("parts", "uniform")
_SEP = "_"  # class name = the events in order, joined: "red_blue"


def long_class_names(events: Sequence[str] = DEFAULT_EVENTS) -> list[str]:
    """Every order of ``events`` as a class name (K events: K! classes), e.g. for ("red",
    "blue"): ["red_blue", "blue_red"]. Class "a_b_c" is: event a, later b, later c."""
    events = _check_events(events)
    return [_SEP.join(order) for order in itertools.permutations(events)]


DEFAULT_LONG_CLASSES: tuple[str, ...] = ("red_blue", "blue_red")  # long_class_names()


def describe_long_task(
    classes: Sequence[str] = DEFAULT_LONG_CLASSES, placement: str = "parts"
) -> str:
    """One paragraph: what the class of a video of this set depends on (written to meta.json)."""
    events = _events_of(classes)
    where = (
        f"Event j lies at a random place in the j-th of {len(events)} equal parts of the video, "
        "and the events lie"
        if placement == "parts"
        else "The events lie at random places,"
    )
    return (
        f"Each video shows the same {len(events)} events ({', '.join(events)} flashes) in long "
        "stretches of clutter; the class is the order in which they come "
        f"(class {classes[0]!r}: {', then '.join(classes[0].split(_SEP))}). The set of frames "
        "of a video is the same for every class: only the order of its frames tells them apart. "
        f"{where} farther apart than a short window covers."
    )


def _check_events(events: Sequence[str]) -> tuple[str, ...]:
    events = tuple(events)
    unknown = [e for e in events if e not in EVENT_COLOURS]
    if unknown:
        raise TimesformerError(f"unknown event {unknown[0]!r}; events: {', '.join(EVENT_COLOURS)}")
    if len(set(events)) != len(events) or len(events) < 2:
        raise TimesformerError(f"need 2 or more distinct events, got {list(events)}")
    return events


def _events_of(classes: Sequence[str]) -> tuple[str, ...]:
    """The events every class of ``classes`` orders (canonical order); raises for classes that
    are not orders of one same set of events."""
    classes = list(classes)
    if not classes:
        raise TimesformerError("no classes to generate")
    if len(set(classes)) != len(classes):
        raise TimesformerError("a class is named twice")
    first = _check_events(classes[0].split(_SEP))
    for name in classes:
        order = _check_events(name.split(_SEP))
        if sorted(order) != sorted(first):
            raise TimesformerError(
                f"class {name!r} does not order the same events as {classes[0]!r}: every class "
                "must show the same events, in another order"
            )
    return tuple(e for e in EVENT_COLOURS if e in first)


@dataclass(frozen=True)
class LongParams:
    """Everything a long video depends on besides its class. Lengths in pixels or frames.

    ``starts[j]`` is the first frame of event slot j (increasing); every event lasts
    ``event_length`` frames. Event appearance is per *event* (``events`` order), not per slot, so
    an event looks the same in whichever slot the class puts it.
    """

    frames: int
    size: int
    events: tuple[str, ...]
    event_length: int
    starts: tuple[int, ...]
    background: float  # grey level in [0, 1]
    clutter_xy: tuple[tuple[float, float], ...]  # top-left corner of each square at frame 0
    clutter_velocity: tuple[tuple[float, float], ...]  # pixels per frame
    clutter_side: tuple[int, ...]
    clutter_grey: tuple[float, ...]
    event_centre: tuple[tuple[float, float], ...]  # (x, y) of each event's disc
    event_radius: tuple[float, ...]  # largest radius of each event's disc, pixels


def _frames_of(seconds: float, fps: float) -> int:
    return round(seconds * fps)


def sample_long_params(
    events: Sequence[str],
    rng: np.random.Generator,
    *,
    seconds: float = 24.0,
    fps: float = 12.0,
    size: int = 32,
    event_seconds: tuple[float, float] = (1.0, 1.5),
    min_gap: float = 3.0,
    placement: str = "parts",
) -> LongParams:
    """Draw the parameters of one video (one distribution for every class).

    The event length is drawn uniformly in ``event_seconds`` (whole frames); the K event slots
    are placed uniformly at random with at least ``min_gap`` seconds of clutter between the end
    of one and the start of the next. Raises ``TimesformerError`` when they do not fit.
    """
    events = _check_events(events)
    if not (math.isfinite(seconds) and math.isfinite(fps)) or seconds <= 0 or fps <= 0:
        raise TimesformerError(f"seconds and fps must be positive, got {seconds}, {fps}")
    if size < 16:
        raise TimesformerError(f"long synthetic videos need >= 16 pixels, got {size}")
    lo_s, hi_s = event_seconds
    if not 0 < lo_s <= hi_s or min_gap < 0:
        raise TimesformerError(
            f"event_seconds must be 0 < min <= max and min_gap >= 0, got {event_seconds}, {min_gap}"
        )
    n = _frames_of(seconds, fps)
    lo, hi = max(1, _frames_of(lo_s, fps)), max(1, _frames_of(hi_s, fps))
    gap = math.ceil(min_gap * fps)
    k = len(events)
    if placement not in PLACEMENTS:
        raise TimesformerError(
            f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}"
        )
    fits = (
        all(a <= b for a, b in _slots(n, k, hi, gap))
        if placement == "parts"
        else k * hi + (k - 1) * gap <= n
    )
    if not fits:
        raise TimesformerError(
            f"{k} events of up to {hi_s:g} s with {min_gap:g} s between them do not fit in "
            f"{seconds:g} s; make the videos longer or the gap shorter"
        )
    length = int(rng.integers(lo, hi + 1))
    if placement == "parts":
        starts = tuple(int(rng.integers(a, b + 1)) for a, b in _slots(n, k, length, gap))
    else:
        # K sorted points in the free time, each slot pushed back by the slots before it.
        free = n - k * length - (k - 1) * gap
        offsets = np.sort(rng.integers(0, free + 1, k))
        starts = tuple(int(o) + j * (length + gap) for j, o in enumerate(offsets))
    count = int(rng.integers(CLUTTER[0], CLUTTER[1] + 1))
    speed = rng.uniform(0.3, 1.5, count)
    heading = rng.uniform(0, 2 * math.pi, count)
    return LongParams(
        frames=n,
        size=size,
        events=events,
        event_length=length,
        starts=starts,
        background=float(rng.uniform(0.0, 0.2)),
        clutter_xy=tuple((float(x), float(y)) for x, y in rng.uniform(0, size, (count, 2))),
        clutter_velocity=tuple(
            (float(s * math.cos(h)), float(s * math.sin(h)))
            for s, h in zip(speed, heading, strict=True)
        ),
        clutter_side=tuple(int(v) for v in rng.integers(size // 10, size // 4 + 1, count)),
        clutter_grey=tuple(float(v) for v in rng.uniform(0.4, 0.9, count)),
        event_centre=tuple(
            (float(x), float(y)) for x, y in size / 2 + rng.uniform(-0.12, 0.12, (k, 2)) * size
        ),
        event_radius=tuple(float(v) for v in rng.uniform(0.3, 0.42, k) * size),
    )


def _slots(n: int, k: int, length: int, gap: int) -> list[tuple[int, int]]:
    """(first, last) possible start frame of each of K event slots of ``length`` frames in a
    video of ``n``: slot j lies in the j-th of K equal parts of the video, at least half the gap
    from each inner boundary, so consecutive events are at least ``gap`` frames apart."""
    part = n / k
    return [
        (
            math.ceil(j * part + (gap / 2 if j > 0 else 0)),
            math.floor((j + 1) * part - (gap / 2 if j < k - 1 else 0)) - length,
        )
        for j in range(k)
    ]


def event_spans(class_name: str, params: LongParams) -> list[tuple[str, int, int]]:
    """(event, first frame, end frame exclusive) of each event of the video, in time order."""
    order = class_name.split(_SEP)
    if sorted(order) != sorted(params.events):
        raise TimesformerError(
            f"class {class_name!r} does not order the events {', '.join(params.events)}"
        )
    return [(e, s, s + params.event_length) for e, s in zip(order, params.starts, strict=True)]


# --------------------------------------------------------------------------- rendering

_SUPERSAMPLE = 3  # sub-pixels per side for the discs' edges


def render_long(class_name: str, params: LongParams) -> np.ndarray:
    """The video of ``class_name`` for ``params``: uint8 (T, H, W, 3), T = params.frames.

    Frame t is the clutter at time t, except inside event slot j, whose frames are the flash of
    the class's j-th event (frame k of the flash, k counted from the slot's start).
    """
    video = _clutter(params)  # (T, S, S, 3) float
    for event, start, end in event_spans(class_name, params):
        video[start:end] = _flash(params, params.events.index(event))
    return np.clip(np.round(video * 255), 0, 255).astype(np.uint8)


def _clutter(p: LongParams) -> np.ndarray:
    """(T, S, S, 3) float: squares moving at constant velocity on a torus (the same statistics
    at every time: nothing in the clutter tells where in the video a frame is)."""
    video = np.full((p.frames, p.size, p.size, 3), p.background)
    t = np.arange(p.frames)[:, None]
    for (x0, y0), (vx, vy), side, grey in zip(
        p.clutter_xy, p.clutter_velocity, p.clutter_side, p.clutter_grey, strict=True
    ):
        xs = np.floor(x0 + vx * t).astype(int) + np.arange(side)  # (T, side)
        ys = np.floor(y0 + vy * t).astype(int) + np.arange(side)
        for k in range(p.frames):
            video[k, (ys[k] % p.size)[:, None], xs[k] % p.size] = grey
    return video


def _flash(p: LongParams, e: int) -> np.ndarray:
    """(L, S, S, 3) float: event ``e``'s disc over the plain background, swelling from 60% to
    its full radius and back over the L frames (so its frames differ from one another)."""
    s = _SUPERSAMPLE
    grid = (np.arange(p.size * s) + 0.5) / s
    X, Y = np.meshgrid(grid, grid)
    cx, cy = p.event_centre[e]
    dist = np.hypot(X - cx, Y - cy)
    colour = np.asarray(EVENT_COLOURS[p.events[e]])
    out = np.empty((p.event_length, p.size, p.size, 3))
    for k in range(p.event_length):
        radius = p.event_radius[e] * (0.6 + 0.4 * math.sin(math.pi * (k + 0.5) / p.event_length))
        cover = (dist < radius).reshape(p.size, s, p.size, s).mean(axis=(1, 3))[..., None]
        out[k] = (1 - cover) * p.background + cover * colour
    return out


# --------------------------------------------------------------------------- writing


def _clip_rng(seed: int, split: str, i: int) -> np.random.Generator:
    # Keyed by what the clip is, not by the order of generation: the same seed gives the same
    # clip whichever classes or how many clips are asked for.
    return np.random.default_rng([seed, ("train", "val").index(split), i])


def make_long_synthetic(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_LONG_CLASSES,
    train_per_class: int = 128,
    val_per_class: int = 32,
    seconds: float = 24.0,
    fps: float = 12.0,
    size: int = 32,
    event_seconds: tuple[float, float] = (1.0, 1.5),
    min_gap: float = 3.0,
    placement: str = "parts",
    crf: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the long-term order set to ``out`` (folder per class, train/val splits); returns
    ``out``.

    Clip i of every class of a split shares its parameters (only the order of the events
    differs). Videos are lossless H.264 (``crf=0``; YUV 4:2:0, so only the colour of each frame
    is subsampled, the same for an event's frames in every slot). The set is written to a
    temporary folder beside ``out`` and renamed when complete. The defaults are the Table 8
    demo's set: 2 x (128 + 32) videos of 24 s, 32 px at 12 fps, 8.5 MB, written in about 25 s
    on 2 CPU cores.
    """
    from tqdm.auto import tqdm

    from timesformer.data.writer import new_data_folder, write_h264

    out = Path(out)
    classes = list(classes)
    events = _events_of(classes)
    if train_per_class < 0 or val_per_class < 0 or train_per_class + val_per_class == 0:
        raise TimesformerError("need at least one video per class")
    if not 0 <= crf <= 51:
        raise TimesformerError(f"crf must be in [0, 51], got {crf}")
    shape = {
        "seconds": seconds,
        "fps": fps,
        "size": size,
        "event_seconds": tuple(event_seconds),
        "min_gap": min_gap,
        "placement": placement,
    }
    # Checks the timing and size before anything is written.
    sample_long_params(events, np.random.default_rng(0), **shape)
    counts = {"train": train_per_class, "val": val_per_class}
    total = sum(counts.values()) * len(classes)
    with new_data_folder(out, overwrite) as tmp:
        with tqdm(total=total, desc="synthesising", unit="video", disable=not progress) as bar:
            for split, count in counts.items():
                for i in range(count):
                    params = sample_long_params(events, _clip_rng(seed, split, i), **shape)
                    for cls in classes:
                        folder = tmp / split / cls
                        folder.mkdir(parents=True, exist_ok=True)
                        write_h264(
                            folder / f"{cls}_{i:04d}.mp4", render_long(cls, params), fps, crf
                        )
                        bar.update()
        (tmp / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
        meta = {
            "kind": "timesformer synthetic long-term order",
            "version": 1,
            "seed": seed,
            "classes": classes,
            "events": list(events),
            "task": describe_long_task(classes, placement),
            "seconds": seconds,
            "fps": fps,
            "frames": _frames_of(seconds, fps),
            "size": size,
            "event_seconds": list(event_seconds),
            "min_gap": min_gap,
            "placement": placement,
            "codec": "libx264",
            "crf": crf,
            "train_per_class": train_per_class,
            "val_per_class": val_per_class,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


# The meta.json keys that fix the videos: a set whose keys match can be reused as it is.
META_KEYS: tuple[str, ...] = (
    "seed",
    "classes",
    "seconds",
    "fps",
    "size",
    "event_seconds",
    "min_gap",
    "placement",
    "crf",
    "train_per_class",
    "val_per_class",
)
