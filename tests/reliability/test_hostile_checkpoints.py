"""Hostile and broken checkpoints given to every command that reads one (issue 7).

Each file below is handed to eval, predict, extract, explain, export, info and train
(``model.init``, and as the newest training checkpoint of a run to resume): the command refuses
it with one line ``timesformer CMD: error: ...`` naming the file and exit status 2, the pickle
payloads that would create a marker file never run, and no output is written. Files that declare huge sizes (a
safetensors header length of 2**62, a tensor of 2**40 elements, a model config of width 2**20)
are refused without allocating their declared size.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import resource
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import randomize, tiny, tiny_overrides
from timesformer.checkpoints import save_checkpoint
from timesformer.cli import main
from timesformer.data import make_synthetic, write_video

MARKER = "pwned"  # the file a payload would create, in the test's folder


class Exploit:
    """Unpickling this runs ``func(*args)``: what a hostile checkpoint carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _touch_command(folder: Path) -> str:
    return f"touch {folder / MARKER}"


def _write_header(path: Path, header: dict, data: bytes, length: int | None = None) -> None:
    """A safetensors-shaped file: 8-byte little-endian header length, JSON header, data."""
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)


# Each maker writes one hostile file ``path`` (``good`` is a valid tiny checkpoint to start from).
def pickle_os_system(path: Path, good: Path) -> None:
    import os

    exploit = Exploit(os.system, _touch_command(path.parent))
    payload = {"model_state": {"model.cls_token": torch.zeros(1)}, "x": exploit}
    path.write_bytes(pickle.dumps(payload, protocol=2))


def torch_save_exec(path: Path, good: Path) -> None:
    code = f"open({str(path.parent / MARKER)!r}, 'w').close()"
    torch.save({"model_state": {"model.cls_token": torch.zeros(1)}, "x": Exploit(exec, code)}, path)


def pickle_eval_only(path: Path, good: Path) -> None:
    # The whole file is the payload: no tensors at all.
    code = f"__import__('os').system({_touch_command(path.parent)!r})"
    path.write_bytes(pickle.dumps(Exploit(eval, code), protocol=4))


def pyth_numpy_global(path: Path, good: Path) -> None:
    # An old-style .pyth with numpy arrays: numpy's reconstructor is not an allowed global.
    state = {f"model.{k}": v.numpy() for k, v in load_file(good).items()}
    torch.save({"model_state": state, "cfg": "TIMESFORMER: {}"}, path)


def pyth_custom_class(path: Path, good: Path) -> None:
    path.write_bytes(pickle.dumps({"model_state": {"w": Exploit(print, "hi")}}, protocol=2))


def _reference_layout(path: Path, good: Path, cfg: str) -> None:
    state = {f"model.{k}": v for k, v in load_file(good).items()}
    torch.save({"model_state": state, "cfg": cfg}, path)


def pyth_cfg_ours_damaged(path: Path, good: Path) -> None:
    # This project's own section of a reference-layout file, with a config that is not a mapping.
    _reference_layout(path, good, "timesformer: {config: wide, class_names: [a, b]}")


def truncated_half(path: Path, good: Path) -> None:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncated_header(path: Path, good: Path) -> None:
    path.write_bytes(good.read_bytes()[:40])


def huge_header_length(path: Path, good: Path) -> None:
    _write_header(
        path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, length=2**62
    )


def huge_tensor_shape(path: Path, good: Path) -> None:
    # 2**40 float32 elements (4 TiB) declared, 16 bytes present.
    header = {"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 16]}}
    _write_header(path, header, b"\0" * 16)


def huge_data_offsets(path: Path, good: Path) -> None:
    header = {
        "__metadata__": {"format": "timesformer"},
        "w": {"dtype": "F32", "shape": [2**18, 2**18], "data_offsets": [0, 2**38]},
    }
    _write_header(path, header, b"\0" * 64)


def huge_model_config(path: Path, good: Path) -> None:
    # Tiny tensors, but a config whose model would take terabytes: refused before building it.
    _with_config(path, good, embed_dim=2**20, num_heads=2**10, depth=4096)


def config_frames_zero(path: Path, good: Path) -> None:
    _with_config(path, good, num_frames=0)


def config_unknown_key(path: Path, good: Path) -> None:
    _with_config(path, good, bogus_key=1)


def damaged_metadata(path: Path, good: Path) -> None:
    save_file(load_file(good), path, metadata={"format": "timesformer", "config": "{not json"})


def damaged_clip_settings(path: Path, good: Path) -> None:
    meta = _metadata(good)
    meta["preprocess"] = json.dumps({"num_frames": "eight", "crop_size": 16})
    save_file(load_file(good), path, metadata=meta)


def wrong_shapes(path: Path, good: Path) -> None:
    state = load_file(good)
    state["blocks.0.mlp.fc1.weight"] = torch.zeros(7, 32)
    save_file(state, path, metadata=_metadata(good))


def wrong_family(path: Path, good: Path) -> None:
    # A ResNet-style state dict: tensors, but not a TimeSformer or a ViT.
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(2, 8)}, path)


def wrong_scheme(path: Path, good: Path) -> None:
    # joint-attention tensors labelled as a divided model.
    joint = randomize(tiny("joint", num_classes=2))
    save_file(joint.state_dict(), path, metadata=_metadata(good))


def _metadata(good: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        return dict(f.metadata())


def _with_config(path: Path, good: Path, **changes) -> None:
    meta = _metadata(good)
    meta["config"] = json.dumps({**json.loads(meta["config"]), **changes})
    save_file(load_file(good), path, metadata=meta)


# Files of another kind passed where a checkpoint goes: named by their content (issue 31).
_MADE: dict[str, bytes] = {}  # the files that take time to make, made once per test session


def _made_once(path: Path, make: Callable[[Path], None]) -> None:
    if path.stem not in _MADE:
        make(path)
        _MADE[path.stem] = path.read_bytes()
    path.write_bytes(_MADE[path.stem])


def torchscript_export(path: Path, good: Path) -> None:
    # What `timesformer export --format torchscript` writes, from the good checkpoint.
    from timesformer.checkpoints import load_checkpoint
    from timesformer.inference.export import export_torchscript

    _made_once(path, lambda p: export_torchscript(load_checkpoint(good), p, check=False))


def onnx_export(path: Path, good: Path) -> None:
    # A minimal ONNX model signed as `timesformer export --format onnx` signs its files (a real
    # export takes seconds).
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["video"], ["logits"])], "g", [x], [y])
    model = helper.make_model(graph, producer_name="pytorch")
    model.metadata_props.add(key="timesformer.clip", value="{}")
    path.write_bytes(model.SerializeToString())


def video_file(path: Path, good: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    write_video(path, frames, 30.0, container_format="mp4")


def png_image(path: Path, good: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path, format="PNG")


def text_file(path: Path, good: Path) -> None:
    path.write_text("The weights are at https://example.org/model.pyth\n")


# kind -> what the one error line must call the file
NAMED = {
    "torchscript_export": "this is a TorchScript export (made by "
    "`timesformer export --format torchscript`), not a checkpoint; pass the checkpoint it was "
    "exported from",
    "onnx_export": "this is an ONNX export (made by `timesformer export --format onnx`)",
    "video_file": "this is a video file (MP4), not a checkpoint",
    "png_image": "this is an image (PNG), not a checkpoint",
    "text_file": "this is a text file, not a checkpoint",
}
# torch's advice to load unsafely (its words): never passed on.
UNSAFE_ADVICE = ("weights_only=False", "set to `False`", "add_safe_globals", "trusted source")

MAKERS: dict[str, Callable[[Path, Path], None]] = {
    f.__name__: f
    for f in (
        pickle_os_system,
        torch_save_exec,
        pickle_eval_only,
        pyth_numpy_global,
        pyth_custom_class,
        pyth_cfg_ours_damaged,
        truncated_half,
        truncated_header,
        huge_header_length,
        huge_tensor_shape,
        huge_data_offsets,
        huge_model_config,
        config_frames_zero,
        config_unknown_key,
        damaged_metadata,
        damaged_clip_settings,
        wrong_shapes,
        wrong_family,
        wrong_scheme,
        torchscript_export,
        onnx_export,
        video_file,
        png_image,
        text_file,
    )
}
EXTENSIONS = {
    "torchscript": ".pt",
    "onnx": ".onnx",
    "video": ".mp4",
    "png": ".png",
    "text": ".txt",
    "pickle": ".pyth",
    "torch": ".pth",
    "pyth": ".pyth",
}


# Hugging Face folders (``export_hf`` of the good model) with one file damaged.
def _hf_folder(path: Path, good: Path, config=None, processor=None, **changes) -> None:
    """``changes`` replace keys of the exported config.json; ``config`` and ``processor``
    replace the whole config.json and preprocessor_config.json."""
    import timesformer

    timesformer.export_hf(timesformer.load_checkpoint(good), path)
    if changes:
        config = {**json.loads((path / "config.json").read_text()), **changes}
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if processor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(processor))


def hf_config_not_an_object(path: Path, good: Path) -> None:
    _hf_folder(path, good, config=[1, 2])


def hf_config_wrong_type(path: Path, good: Path) -> None:
    _hf_folder(path, good, hidden_size="wide")


def hf_config_frames_fractional(path: Path, good: Path) -> None:
    _hf_folder(path, good, num_frames=2.5)


def hf_config_label_keys(path: Path, good: Path) -> None:
    _hf_folder(path, good, id2label={"x": "a", "y": "b"})


def hf_clip_settings_damaged(path: Path, good: Path) -> None:
    _hf_folder(path, good, timesformer_clip={"num_frames": 2.5})


def hf_processor_not_an_object(path: Path, good: Path) -> None:
    _hf_folder(path, good, processor="short side 224")


def hf_processor_std_zero(path: Path, good: Path) -> None:
    # The folder's own clip settings would win over the processor's: left out here.
    _hf_folder(path, good, timesformer_clip=None, processor={"image_std": [0, 0.2, 0.2]})


HF_MAKERS: dict[str, Callable[[Path, Path], None]] = {
    f.__name__: f
    for f in (
        hf_config_not_an_object,
        hf_config_wrong_type,
        hf_config_frames_fractional,
        hf_config_label_keys,
        hf_clip_settings_damaged,
        hf_processor_not_an_object,
        hf_processor_std_zero,
    )
}

# {bad}: the hostile file; {out}: where the command would write; {tiny}: a tiny training run.
COMMANDS = {
    "eval": "eval --checkpoint {bad} --config synthetic {tiny} --out {out}/eval.json",
    "predict": "predict {video} --checkpoint {bad} --out {out}/pred.jsonl",
    "extract": "extract {video} --checkpoint {bad} --out {out}",
    "explain": "explain {video} --checkpoint {bad} --out {out}",
    "export": "export {bad} --format torchscript --out {out}/model.pt",
    "train-init": "train --config synthetic {tiny} model.init={bad}",
    "info": "info {bad}",
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    data = make_synthetic(
        root / "data",
        seed=0,
        pairs=["horizontal"],
        train_per_class=1,
        val_per_class=1,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )
    model = randomize(tiny(num_classes=2), seed=1)
    model.class_names = (data / "classes.txt").read_text().split()
    good = save_checkpoint(model, root / "good.safetensors")
    video = root / "clip.mp4"
    frames = np.random.default_rng(0).integers(0, 255, (8, 24, 24, 3), dtype=np.uint8)
    write_video(video, frames, 30.0)
    return {"data": data, "good": good, "video": video}


def hostile_file(folder: Path, kind: str, good: Path) -> Path:
    ext = next((e for k, e in EXTENSIONS.items() if kind.startswith(k)), ".safetensors")
    path = folder / f"{kind}{ext}"
    MAKERS[kind](path, good)
    return path


def tiny_run(data: Path, out: Path) -> list[str]:
    """Overrides for a tiny CPU run on the 2-video training set."""
    return tiny_overrides(data, out, **{"data.batch_size": 2, "optim.global_batch": 2})


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def argv_for(command: str, bad: Path, ws: dict[str, Path], out: Path) -> list[str]:
    words = []
    for word in COMMANDS[command].split():
        if word == "{tiny}":
            words += tiny_run(ws["data"], out / "run")
        else:
            words.append(word.format(bad=bad, out=out, video=ws["video"]))
    return words


def assert_refused(rc: int, stdout: str, stderr: str, command: str, bad: Path) -> None:
    shown = f"rc={rc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stdout + stderr, shown
    assert rc == 2, shown
    assert len(lines) == 1, shown
    assert lines[0].startswith(f"timesformer {command}: error: "), shown
    assert str(bad) in lines[0], shown
    for advice in UNSAFE_ADVICE:
        assert advice not in stderr, shown


def assert_named(kind: str, stderr: str) -> None:
    """A file of another kind: the line says what it is and what a checkpoint is."""
    if kind in NAMED:
        assert NAMED[kind] in stderr, stderr
        assert ".safetensors" in stderr and "Hugging Face model folder" in stderr, stderr


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(MAKERS))
def test_command_refuses_hostile_checkpoint(kind, command, ws, tmp_path):
    bad = hostile_file(tmp_path, kind, ws["good"])
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(argv_for(command, bad, ws, out))
    assert_refused(rc, stdout, stderr, command.split("-")[0], bad)
    assert_named(kind, stderr)
    assert not (tmp_path / MARKER).exists(), "the payload ran"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(HF_MAKERS))
def test_command_refuses_a_damaged_hf_folder(kind, command, ws, tmp_path):
    bad = tmp_path / kind
    HF_MAKERS[kind](bad, ws["good"])
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(argv_for(command, bad, ws, out))
    assert_refused(rc, stdout, stderr, command.split("-")[0], bad)
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", list(MAKERS))
def test_resume_refuses_a_hostile_training_checkpoint(kind, ws, tmp_path):
    """The only checkpoint of the run folder is hostile: the run stops, it does not start over
    on top of it (which would overwrite the run), and nothing in the folder changes."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    bad = run / "checkpoints" / "epoch_001.safetensors"
    MAKERS[kind](bad, ws["good"])
    before = bad.read_bytes()
    argv = ["train", "--config", "synthetic", *tiny_run(ws["data"], run)]
    rc, stdout, stderr = run_cli(argv)
    assert_refused(rc, stdout, stderr, "train", bad)
    assert_named(kind, stderr)
    assert "run.resume" in stderr  # says how to start over
    assert not (tmp_path / MARKER).exists() and not (run / "checkpoints" / MARKER).exists()
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "epoch_001.safetensors"]
    assert bad.read_bytes() == before


def test_the_payloads_are_real(tmp_path):
    """The exploit files do run code when unpickled without the guard (so the tests above test
    something)."""
    for kind in ("pickle_os_system", "torch_save_exec", "pickle_eval_only"):
        folder = tmp_path / kind
        folder.mkdir()
        path = hostile_file(folder, kind, tmp_path / "unused")
        with contextlib.suppress(Exception):  # the legacy loader fails after running it
            torch.load(path, weights_only=False)
        assert (folder / MARKER).exists(), kind


@pytest.mark.parametrize(
    "kind", ["huge_header_length", "huge_tensor_shape", "huge_data_offsets", "huge_model_config"]
)
def test_declared_sizes_are_not_allocated(kind, ws, tmp_path):
    """Peak memory grows by far less than the declared gigabytes (the peak RSS is monotonic, so
    a transient allocation would show)."""
    import timesformer
    from timesformer.errors import CheckpointError

    bad = hostile_file(tmp_path, kind, ws["good"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(CheckpointError, match=str(bad)):
        timesformer.load_checkpoint(bad)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mib < 256, f"{kind}: peak memory grew by {grown_mib:.0f} MiB"


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("pickle_eval_only", "predict"),
        ("pickle_os_system", "export"),
        ("torchscript_export", "info"),
    ],
)
def test_refusal_through_the_entry_point(kind, command, ws, tmp_path):
    """The real ``timesformer`` process: one line on stderr (no warning from the unpickler or
    torch.load, no traceback), exit 2, no payload run."""
    bad = hostile_file(tmp_path, kind, ws["good"])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "timesformer", *argv_for(command, bad, ws, out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_refused(proc.returncode, proc.stdout, proc.stderr, command, bad)
    assert_named(kind, proc.stderr)  # and no second line: torch's warning about TorchScript
    assert "add_safe_globals" not in proc.stderr  # no advice to allow the code
    assert not (tmp_path / MARKER).exists()
    assert not out.exists()
