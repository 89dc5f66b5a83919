"""Export a TimeSformer to ONNX, TorchScript or the Hugging Face layout, checked against itself.

Every exported file takes a clip ``video`` of shape (B, 3, T, H, W), normalised as for the model,
and gives ``logits`` of shape (B, num_classes); B is free (ONNX and TorchScript), while T, H and W
are the model's configured frame count and size.  Each export is run again after writing (with
onnxruntime, ``torch.jit.load`` or ``transformers``) on random clips at two batch sizes, and the
largest absolute difference from the PyTorch model's logits is reported.

How to prepare a clip travels with each file, since the graph cannot say it: ``export_metadata``
(the class names and the test-time clip settings: frames, sampling rate, crop, short side,
views, mean and std) is written as ONNX ``metadata_props`` and as TorchScript extra files, and
the Hugging Face folder carries it in its own files (``timesformer.checkpoints.hf``).

ONNX uses torch's ``torch.export``-based exporter (``dynamo=True``, which needs the ``onnx`` and
``onnxscript`` packages): the older TorchScript-based one is deprecated in torch 2.9+.  Both the
fused ``scaled_dot_product_attention`` and the plain softmax path export, for all five schemes.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from timesformer.checkpoints.hf import export_hf
from timesformer.checkpoints.io import atomic_path, remove_temp, set_usual_mode
from timesformer.checkpoints.save import unwrap
from timesformer.errors import TimesformerError

FORMATS: tuple[str, ...] = ("onnx", "torchscript", "hf")
# Largest acceptable max |logits difference| between an export and the PyTorch model (float32).
TOLERANCE = 1e-4
# torch's torch.export-based ONNX exporter builds opset 18 graphs and converts them upwards.
MIN_OPSET = 18
# A single ONNX file is one protobuf message, which cannot exceed 2 GiB.
_ONNX_MAX_BYTES = 2**31 - 1


class ExportError(TimesformerError):
    """An export that cannot be made (missing package, unsupported option, bad output path)."""


@dataclass
class ExportReport:
    """What an export wrote and how closely it reproduces the model.

    ``max_abs_diff`` maps each checked batch size to max |logits(export) - logits(model)|; it is
    empty when the export was not checked, and ``note`` then says why.
    """

    format: str
    path: Path
    size_bytes: int
    seconds: float
    checked_with: str | None = None
    max_abs_diff: dict[int, float] = field(default_factory=dict)
    tolerance: float = TOLERANCE
    opset: int | None = None
    note: str = ""

    @property
    def max_diff(self) -> float | None:
        """The largest difference over the checked batch sizes (None when unchecked)."""
        return max(self.max_abs_diff.values()) if self.max_abs_diff else None

    @property
    def passed(self) -> bool | None:
        """True/False when checked against ``tolerance``; None when not checked."""
        diff = self.max_diff
        return None if diff is None else diff <= self.tolerance

    def summary(self) -> str:
        """Two or three lines for people: what was written, and how it was checked."""
        what = self.format + (f", opset {self.opset}" if self.opset is not None else "")
        lines = [
            f"wrote {self.path} ({what}, {_human_size(self.size_bytes)}) in {self.seconds:.1f} s"
        ]
        if self.max_abs_diff:
            per_batch = ", ".join(f"{d:.2e} at batch {b}" for b, d in self.max_abs_diff.items())
            verdict = "<=" if self.passed else "EXCEEDS"
            lines.append(
                f"checked with {self.checked_with}: max abs diff on logits {per_batch} "
                f"({verdict} {self.tolerance:g})"
            )
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


# ---------------------------------------------------------------------- shared helpers
def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _prepare(model: nn.Module) -> nn.Module:
    """The plain model in eval mode, on the CPU in float32 (copied only when it is not)."""
    model = unwrap(model)
    if not hasattr(model, "config"):
        raise ExportError("export needs a TimeSformer (a model with a .config)")
    # Exported graphs and the onnxruntime check run on the CPU in float32; the copy leaves the
    # caller's GPU or half-precision model as it is.
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).to("cpu", torch.float32)
    return model


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, no drop path) for the export, the caller's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _clip(model: nn.Module, batch: int, seed: int) -> Tensor:
    """A random (B, C, T, H, W) clip of the model's configured size."""
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(
        batch, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size, generator=gen
    )


def _batches(batch_size: int) -> tuple[int, tuple[int, ...]]:
    """(batch to trace at, batch sizes to check).

    A size-1 example makes ``torch.export`` fix that axis to the constant 1, so tracing uses at
    least 2; the check covers batch 1, the requested one, and one the graph was not traced at,
    which proves the batch axis is really dynamic.
    """
    if batch_size < 1:
        raise ExportError(f"--batch-size must be at least 1, got {batch_size}")
    trace = max(2, batch_size)
    return trace, tuple(sorted({1, batch_size, trace + 1}))


def export_metadata(model: nn.Module) -> dict[str, str]:
    """What an exported file carries besides the graph, as JSON strings: ``clip``, the test-time
    clip settings (``default_clip_config``: the ones stored with a trained model, else the
    reference protocol at the model's size), and ``class_names`` when the model has them."""
    from timesformer.inference.predictor import default_clip_config

    meta = {"clip": json.dumps(default_clip_config(model).test_time())}
    names = getattr(model, "class_names", None)
    if names:
        meta["class_names"] = json.dumps(list(names))
    return meta


def _compare(
    model: nn.Module, run: Callable[[Tensor], Tensor], batches: tuple[int, ...]
) -> dict[int, float]:
    """max |run(x) - model(x)| on a random clip at each batch size."""
    diffs: dict[int, float] = {}
    with torch.no_grad():
        for i, b in enumerate(batches):
            x = _clip(model, b, seed=1000 + i)
            ref = model(x)
            out = run(x)
            if tuple(out.shape) != tuple(ref.shape):
                raise ExportError(
                    f"the export gives logits of shape {tuple(out.shape)} for batch {b}, "
                    f"the model {tuple(ref.shape)}"
                )
            diffs[b] = float((out.float() - ref).abs().max())
    return diffs


def _version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return package


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' chatter that is not about this model.

    torch's ONNX exporter logs a warning per torchvision op it cannot register (torchvision is
    not a dependency), and the tracer warns about shape checks that are constant for a fixed
    frame count and size, and about TorchScript being deprecated.
    """
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _steps(total: int, desc: str, progress: bool) -> tqdm:
    # Exporting a full-size model takes a minute or more; the bar shows which stage is running.
    return tqdm(total=total, desc=desc, unit="step", disable=None if progress else True)


# ---------------------------------------------------------------------- ONNX
def require_onnx() -> None:
    """Raise ``ExportError`` (one line) unless the packages ``export_onnx`` needs are installed."""
    missing = [p for p in ("onnx", "onnxscript") if importlib.util.find_spec(p) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs the packages onnx and onnxscript ({', '.join(missing)} not "
            f"installed): pip install {' '.join(missing)}"
        )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    batch_size: int = 1,
    opset: int | None = None,
    check: bool = True,
    progress: bool = False,
) -> ExportReport:
    """Write ``model`` as an ONNX file with a dynamic batch axis.

    Input ``video`` (B, C, T, H, W) float32, output ``logits`` (B, num_classes); T, H, W are the
    model's configured ones.  With ``check`` (and onnxruntime installed), the file is run at
    batch 1, ``batch_size`` and one more batch size, and compared with the model.

    Args:
        model: a TimeSformer (DDP/compiled wrappers are taken off); left unchanged.
        path: the .onnx file to write (atomically: a failed export leaves no file).
        batch_size: a batch size to check besides 1 (the graph works at any).
        opset: ONNX opset version; None for the exporter's default.
        check: validate the file with ``onnx.checker`` and compare it with onnxruntime.
        progress: show a progress bar over the stages.
    """
    require_onnx()
    import onnx

    if opset is not None and opset < MIN_OPSET:
        raise ExportError(
            f"opset {opset} is too old: torch's ONNX exporter writes opset {MIN_OPSET} or newer"
        )

    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give the .onnx file to write")
    model = _prepare(model)
    trace_batch, batches = _batches(batch_size)
    n_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    if n_bytes > _ONNX_MAX_BYTES:
        raise ExportError(
            f"the model's {n_bytes / 2**30:.1f} GiB of weights do not fit one ONNX file (2 GiB)"
        )
    start = time.perf_counter()
    report = ExportReport("onnx", path, 0, 0.0)
    bar = _steps(2 + (len(batches) if check else 0), "exporting ONNX", progress)
    with bar, _eval_mode(model), atomic_path(path) as tmp:
        example = _clip(model, trace_batch, seed=0)
        try:
            with _quiet():
                program = torch.onnx.export(
                    model,
                    (example,),
                    None,
                    dynamo=True,
                    input_names=["video"],
                    output_names=["logits"],
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                    opset_version=opset,
                    optimize=True,
                    verbose=False,
                )
        except Exception as err:
            # An opset the exporter cannot target fails here; say so in one line.
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ExportError(f"ONNX export failed (opset {opset or 'default'}): {first}") from err
        bar.update()
        bar.set_description("writing ONNX")
        # One self-contained file: weights inside the protobuf, not in a side ".data" file that
        # would be named after the temporary file.
        program.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp), load_external_data=False)
        for key, value in export_metadata(model).items():
            proto.metadata_props.add(key=f"timesformer.{key}", value=value)
        onnx.save(proto, str(tmp))
        bar.update()
        report.opset = next(
            (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None
        )
        if opset is not None and report.opset != opset:
            # The exporter falls back to its own opset when it cannot convert to the one asked.
            raise ExportError(
                f"the exporter could not target opset {opset} (it wrote {report.opset})"
            )
        if check:
            onnx.checker.check_model(proto)
            _check_onnx(model, tmp, batches, report, bar)
    report.size_bytes = path.stat().st_size
    report.seconds = time.perf_counter() - start
    return report


def _check_onnx(
    model: nn.Module, file: Path, batches: tuple[int, ...], report: ExportReport, bar: tqdm
) -> None:
    """Run ``file`` with onnxruntime and fill in ``report``'s differences (or its note)."""
    if importlib.util.find_spec("onnxruntime") is None:
        report.note = (
            "not compared with the model: onnxruntime is not installed (pip install onnxruntime)"
        )
        return
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its graph-optimisation notes are not ours
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

    def run(x: Tensor) -> Tensor:
        bar.set_description(f"checking batch {x.shape[0]}")
        out = session.run(["logits"], {"video": x.numpy()})[0]
        bar.update()
        return torch.from_numpy(out)

    report.max_abs_diff = _compare(model, run, batches)
    report.checked_with = _version("onnxruntime")


# ---------------------------------------------------------------------- TorchScript
def export_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    batch_size: int = 1,
    check: bool = True,
    progress: bool = False,
) -> ExportReport:
    """Write ``model`` as a traced TorchScript file: ``torch.jit.load(path)(video)`` gives the
    logits (B, num_classes) of a (B, C, T, H, W) clip, at any batch size.

    With ``check``, the saved file is loaded back and compared with the model at batch 1,
    ``batch_size`` and one more.  (TorchScript is deprecated in torch 2.9+ but still runs; it is
    what C++ ``torch::jit::load`` and older serving stacks read.)
    """
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give the .pt file to write")
    model = _prepare(model)
    trace_batch, batches = _batches(batch_size)
    start = time.perf_counter()
    report = ExportReport("torchscript", path, 0, 0.0)
    bar = _steps(1 + (len(batches) if check else 0), "tracing", progress)
    with bar, _eval_mode(model), atomic_path(path) as tmp, _quiet():
        # trace, not script: the scheme registry and classmethod hooks are plain Python.
        # check_trace is off because the comparison below is stricter (other batch sizes too).
        traced = torch.jit.trace(model, (_clip(model, trace_batch, seed=0),), check_trace=False)
        extra = {f"{key}.json": value for key, value in export_metadata(model).items()}
        # Saved to memory, then written by Python: torch.jit.save to a file aborts the whole
        # process (C++ terminate) when the disk fills up, where Python raises an OSError.
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files=extra)
        tmp.write_bytes(buffer.getbuffer())
        del buffer
        bar.update()
        if check:
            loaded = torch.jit.load(str(tmp), map_location="cpu")

            def run(x: Tensor) -> Tensor:
                bar.set_description(f"checking batch {x.shape[0]}")
                out = loaded(x)
                bar.update()
                return out

            report.max_abs_diff = _compare(model, run, batches)
            report.checked_with = "torch.jit.load"
    report.size_bytes = path.stat().st_size
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------------- Hugging Face
@contextlib.contextmanager
def _new_folder(folder: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder`` (which does not exist); rename it onto
    ``folder`` only when the block succeeds, and delete it otherwise."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        set_usual_mode(tmp, 0o777)  # mkdtemp makes a private folder
        os.rename(tmp, folder)
    finally:
        remove_temp(tmp)


def export_hf_folder(
    model: nn.Module,
    folder: str | Path,
    *,
    class_names: list[str] | None = None,
    check: bool = True,
    progress: bool = False,
) -> ExportReport:
    """Write ``model`` as a Hugging Face folder (``timesformer.checkpoints.export_hf``) and, with
    ``check`` and ``transformers`` installed, load it with
    ``TimesformerForVideoClassification.from_pretrained`` and compare the logits at batch 1 and 2
    (transformers takes (B, T, C, H, W)).  Only the divided and joint schemes can be exported:
    others raise ``CheckpointError`` naming the scheme.
    """
    model = _prepare(model)
    folder = Path(folder)
    if folder.is_file():
        raise ExportError(f"{folder}: is a file; the Hugging Face layout is a folder")
    start = time.perf_counter()
    with _eval_mode(model):
        if folder.exists():
            out = export_hf(model, folder, class_names)  # each file written atomically
        else:
            with _new_folder(folder) as tmp:  # a failed export leaves no folder
                export_hf(model, tmp, class_names)
            out = folder
        size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
        report = ExportReport("hf", out, size, 0.0)
        if check and importlib.util.find_spec("transformers") is None:
            report.note = (
                "not compared with the model: transformers is not installed (pip install "
                "transformers)"
            )
        elif check:
            with _steps(3, "loading in transformers", progress) as bar, _quiet():
                from transformers import TimesformerForVideoClassification
                from transformers.utils import logging as hf_logging

                # transformers' own "Loading weights" bar would run beside ours.
                bars_were_on = hf_logging.is_progress_bar_enabled()
                hf_logging.disable_progress_bar()
                try:
                    hf = TimesformerForVideoClassification.from_pretrained(
                        out, local_files_only=True
                    ).eval()
                finally:
                    if bars_were_on:
                        hf_logging.enable_progress_bar()
                bar.update()

                def run(x: Tensor) -> Tensor:
                    bar.set_description(f"checking batch {x.shape[0]}")
                    logits = hf(pixel_values=x.transpose(1, 2)).logits
                    bar.update()
                    return logits

                report.max_abs_diff = _compare(model, run, (1, 2))
                report.checked_with = _version("transformers")
    report.seconds = time.perf_counter() - start
    return report


def export_model(
    model: nn.Module,
    path: str | Path,
    format: str,
    *,
    batch_size: int = 1,
    opset: int | None = None,
    check: bool = True,
    progress: bool = False,
) -> ExportReport:
    """Dispatch to ``export_onnx``, ``export_torchscript`` or ``export_hf_folder``."""
    if format == "onnx":
        return export_onnx(
            model, path, batch_size=batch_size, opset=opset, check=check, progress=progress
        )
    if opset is not None:
        raise ExportError(f"--opset applies to ONNX only, not to {format!r}")
    if format == "torchscript":
        return export_torchscript(
            model, path, batch_size=batch_size, check=check, progress=progress
        )
    if format == "hf":
        return export_hf_folder(model, path, check=check, progress=progress)
    raise ExportError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
