"""What one request computes, in its own thread: a prediction (whole video or windows) or an
attention-rollout picture.

A request decodes its video while holding one of the ``--workers`` decoding slots, and hands its
views to the model thread (``Batcher``) with the slot released, so that other requests decode
meanwhile. The numbers are those of ``timesformer predict`` and ``timesformer explain``: the same
clip settings, the same views, the same reduction of the logits (``ServedModel.logits`` and
``probabilities_from_logits`` make ``Predictor.probabilities``; windows go through
``predict_windows``; the rollout's clip is ``inference.rollout_clip``'s).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from timesformer.data import VideoDecodeError, VideoReader
from timesformer.errors import ConfigError
from timesformer.inference.predictor import probabilities_from_logits, top_classes
from timesformer.inference.results import Prediction
from timesformer.inference.windows import predict_windows
from timesformer.serve.batching import Batcher
from timesformer.serve.errors import BadParameter, BadVideo
from timesformer.serve.model import ServedModel

__all__ = ["DecodeSlots", "explain_video", "predict_video"]


class DecodeSlots:
    """At most ``n`` requests decoding at once; a request gives its slot up while it waits on
    the model (``released``)."""

    def __init__(self, n: int) -> None:
        self._sem = threading.Semaphore(n)

    def __enter__(self) -> DecodeSlots:
        self._sem.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sem.release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        self._sem.release()
        try:
            yield
        finally:
            self._sem.acquire()


class _Scorer:
    """A ``WindowScorer`` for one request: its views scored in the shared batches, its top-k."""

    def __init__(self, served: ServedModel, batcher: Batcher, slots: DecodeSlots, topk: int):
        self.clip = served.predictor.clip
        self.labels = served.predictor.labels
        self.topk = min(topk, len(self.labels))
        self._batcher = batcher
        self._slots = slots

    def probabilities(self, views: torch.Tensor, per_clip: int | None = None) -> torch.Tensor:
        """Views (V, 3, T, H, W) -> probabilities (C,), or (V // per_clip, C) per group."""
        with self._slots.released():
            logits = self._batcher.forward(views)
        return probabilities_from_logits(logits, per_clip)

    def top(self, probs: torch.Tensor) -> list[tuple[str, float]]:
        """The ``topk`` (label, probability) pairs of probabilities (C,), best first."""
        return top_classes(probs, self.labels, self.topk)


def _bad_video(err: VideoDecodeError, name: str) -> BadVideo:
    """The decoder's reason, naming the video as the client knows it (not the upload's file)."""
    reason = err.reason or str(err)
    return BadVideo(f"cannot decode {name!r}: {reason}")


def predict_video(
    served: ServedModel,
    batcher: Batcher,
    slots: DecodeSlots,
    path: Path,
    name: str,
    *,
    topk: int = 5,
    windows: bool = False,
    stride: float | None = None,
) -> dict[str, Any]:
    """``timesformer predict --json``'s object for one video, ``path`` named ``name``, plus its
    ``duration`` in seconds; ``windows`` is the per-window list, or None without ``windows``."""
    scorer = _Scorer(served, batcher, slots, topk)
    with slots:
        try:
            with VideoReader(path) as reader:  # fails at once on a file that is no video
                duration = reader.duration
            if windows:
                pred = predict_windows(scorer, path, stride=stride)
            else:
                views = served.predictor.dataset([path]).load_clip(0)  # (V, 3, T, H, W)
                probs = scorer.probabilities(views)
                pred = Prediction(name, scorer.top(probs), len(views), probs=probs)
        except VideoDecodeError as err:
            raise _bad_video(err, name) from None
        except ConfigError as err:  # windows over a model that samples segments
            raise BadParameter(str(err)) from None
    pred.path = name
    out = pred.to_dict()
    out.setdefault("windows", None)
    out["duration"] = round(duration, 3)
    return out


def explain_video(
    served: ServedModel,
    batcher: Batcher,
    slots: DecodeSlots,
    path: Path,
    name: str,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    gif: bool = False,
    scratch: Path | None = None,
) -> bytes:
    """The attention rollout of one centred clip of the video, as ``timesformer explain``
    draws it: a PNG grid of the frames with the heat map over each (``gif``: an animated GIF).
    ``scratch`` is the folder the picture is drawn in before it is read back and deleted."""
    from timesformer.inference.overlay import save_overlay_gif, save_overlay_grid
    from timesformer.inference.rollout import explain_clip, rollout_support
    from timesformer.inference.rollout_clip import clip_indices, prepare_clip

    predictor = served.predictor
    model = predictor.model
    try:
        rollout_support(model)
    except ConfigError as err:
        raise BadParameter(str(err)) from None
    pre = served.preprocess
    with slots:
        try:
            with VideoReader(path) as reader:
                indices, _ = clip_indices(reader, model.config.num_frames, served.explain_rate, pre)
                frames = reader.get_frames(indices)  # uint8 (T, H, W, 3)
        except VideoDecodeError as err:
            raise _bad_video(err, name) from None
        clip, shown = prepare_clip(frames, pre, model.config.img_size)  # (3, T, crop, crop)
        video = clip.to(predictor.device, predictor.dtype)
        with slots.released():
            result = batcher.call(
                lambda: explain_clip(
                    model, video, head_fusion=head_fusion, discard_ratio=discard_ratio
                )
            )
        probs = result.logits.softmax(dim=0)
        top = int(probs.argmax())
        title = (
            f"{name}: {predictor.labels[top]} ({100 * float(probs[top]):.1f}%), "
            f"{served.attention} attention rollout, {head_fusion} over heads"
        )
        fd, tmp = tempfile.mkstemp(
            prefix="timesformer-explain-", suffix=".gif" if gif else ".png", dir=scratch
        )
        os.close(fd)
        out = Path(tmp)
        try:
            if gif:
                save_overlay_gif(shown, result.relevance, out)
            else:
                labels = [f"frame {int(i)}" for i in indices]
                save_overlay_grid(shown, result.relevance, out, labels=labels, title=title)
            return out.read_bytes()
        finally:
            out.unlink(missing_ok=True)
