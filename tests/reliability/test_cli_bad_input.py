"""Every CLI command, given a bad file, config key, value or option, answers with one clear line.

The contract (issue 7): missing files, folders where files belong, unknown keys, wrong types,
impossible sizes and out-of-range options give a non-zero exit status (2 for user mistakes) and
exactly one line on stderr, ``timesformer CMD: error: ...``, that names the file, key or option;
never a traceback, and never a half-written output file. argparse's own usage errors (usage text
plus one ``error:`` line, exit 2) are accepted as argparse prints them.

The table below runs in-process through ``timesformer.cli.main``; a representative subset runs
again through the real entry point (``python -m timesformer``) in a subprocess, where a
traceback would really reach the user. Unreadable files (chmod 000) run as the ``nobody`` user
when the tests run as root (root reads any file).

Outputs that cannot be written are refused by every command that writes, before any long work.
The last section trains: a shipped config fine-tuned on the user's own folder, an epoch kept
through a failing evaluation, and run folders reused (moved aside, resumed, refused).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helpers import randomize, tiny, tiny_overrides
from timesformer.checkpoints import load_checkpoint, save_checkpoint
from timesformer.cli import COMMANDS, main
from timesformer.data import make_synthetic, write_video
from timesformer.engine.state import epoch_checkpoints, read_train_state
from timesformer.engine.trainer import Trainer


@dataclass(frozen=True)
class Case:
    """One bad invocation. ``argv`` and ``names`` are templates filled with the workspace paths
    (``{ckpt}``, ``{video}``, ...) and ``{out}``, a fresh path under the test's tmp folder.

    kind: "error" (one ``timesformer CMD: error:`` line), "usage" (argparse: usage + one error
    line), "per_video" (the video fails, the command reports it and exits 1), "json" (probe
    --json: the error is in the JSON on stdout). ``early``: the command must fail before any long
    work (loading a checkpoint, training, rendering videos), which then raises instead."""

    id: str
    argv: tuple[str, ...]
    names: str
    rc: int = 2
    kind: str = "error"
    early: bool = False  # an unwritable output: refused before a checkpoint loads or work starts

    @property
    def command(self) -> str:
        return self.argv[0]


def C(id: str, argv: str, names: str, rc: int = 2, kind: str = "error") -> Case:
    # argv is split on spaces: no path of the workspace contains one.
    return Case(id, tuple(argv.split()), names, rc, kind)


def U(id: str, argv: str, names: str) -> Case:
    return C(id, argv, names, 2, "usage")


def W(id: str, argv: str, names: str) -> Case:
    """An output that cannot be written: one line naming it, before any long work."""
    return Case(id, tuple(argv.split()), names, early=True)


TRAIN = "train --config synthetic {tiny}"
EVAL = "eval --checkpoint {ckpt} --config synthetic {tiny}"

CASES: list[Case] = [
    # ---------------------------------------------------------------- the top level
    U("top-unknown-command", "bogus", "bogus"),
    # ---------------------------------------------------------------- info
    C("info-unknown-model", "info nosuch_model", "nosuch_model"),
    U("info-unknown-scheme", "info timesformer_tiny --attention bogus", "--attention"),
    U("info-no-name", "info", "NAME"),
    U("info-frames-not-int", "info timesformer_tiny --num-frames eight", "--num-frames"),
    C("info-frames-0", "info timesformer_tiny --num-frames 0", "num_frames"),
    C("info-frames-negative", "info timesformer_tiny --num-frames -4", "num_frames"),
    C("info-size-0", "info timesformer_tiny --img-size 0", "img_size"),
    C("info-size-negative", "info timesformer_tiny --img-size -16", "img_size"),
    C("info-patch-not-dividing", "info timesformer_base --img-size 100", "img_size 100"),
    C("info-patch-not-dividing-all", "info timesformer_tiny --attention all --img-size 18", "18"),
    C("info-classes-0", "info timesformer_tiny --num-classes 0", "num_classes"),
    # ---------------------------------------------------------------- probe
    C("probe-missing", "probe {missing}", "{missing}"),
    C("probe-folder", "probe {emptydir}", "{emptydir}"),
    C("probe-not-a-video", "probe {notvideo}", "{notvideo}"),
    C("probe-empty-file", "probe {emptyfile}", "{emptyfile}"),
    C("probe-checkpoint-as-video", "probe {ckpt}", "{ckpt}"),
    C("probe-good-and-missing", "probe {video} {missing}", "{missing}"),
    C("probe-json-missing", "probe --json {missing}", "{missing}", kind="json"),
    U("probe-no-file", "probe", "VIDEO"),
    # ---------------------------------------------------------------- data synth
    U("synth-no-action", "data", "ACTION"),
    U("synth-no-out", "data synth", "OUT"),
    U("synth-unknown-action", "data bogus", "bogus"),
    C("synth-frames-0", "data synth {out} --frames 0", "--frames"),
    C("synth-frames-negative", "data synth {out} --frames -3", "--frames"),
    U("synth-frames-not-int", "data synth {out} --frames 1.5", "--frames"),
    C("synth-size-small", "data synth {out} --size 8", "--size"),
    C("synth-size-negative", "data synth {out} --size -64", "--size"),
    C("synth-size-odd", "data synth {out} --size 33", "--size"),
    C("synth-crf-range", "data synth {out} --crf 99", "--crf"),
    C("synth-fps-0", "data synth {out} --fps 0", "--fps"),
    C("synth-fps-negative", "data synth {out} --fps -30", "--fps"),
    C("synth-fps-nan", "data synth {out} --fps nan", "--fps"),
    C("synth-seed-negative", "data synth {out} --seed -1", "--seed"),
    C("synth-per-class-negative", "data synth {out} --train-per-class -1", "--train-per-class"),
    C(
        "synth-no-videos",
        "data synth {out} --train-per-class 0 --val-per-class 0",
        "--train-per-class",
    ),
    C("synth-unknown-pair", "data synth {out} --pairs bogus", "bogus"),
    C("synth-no-pair", "data synth {out} --pairs ,", "--pairs"),
    U("synth-unknown-style", "data synth {out} --style bogus", "--style"),
    W("synth-out-exists", "data synth {data}", "{data}"),
    W("synth-out-exists-names-the-option", "data synth {data}", "add --overwrite"),
    W("synth-out-is-file", "data synth {file}", "{file}"),
    W("synth-out-is-file-overwrite", "data synth {file} --overwrite", "{file}: is a file"),
    W("synth-out-under-file", "data synth {file}/sub", "{file} is a file"),
    # ---------------------------------------------------------------- train: config files
    C("train-config-missing", "train --config {missing}.yaml", "{missing}.yaml"),
    C("train-config-unknown-name", "train --config nosuch_config", "nosuch_config"),
    C("train-config-folder", "train --config {emptydir}", "{emptydir}"),
    C("train-config-not-yaml", "train --config {yaml_broken}", "{yaml_broken}"),
    C("train-config-not-mapping", "train --config {yaml_list}", "{yaml_list}"),
    C("train-config-unknown-key", "train --config {yaml_unknown}", "bogus_key"),
    C("train-config-unknown-section", "train --config {yaml_section}", "bogus_section"),
    C("train-config-wrong-type", "train --config {yaml_type}", "num_frames"),
    C("train-config-binary", "train --config {notvideo_yaml}", "{notvideo_yaml}"),
    # ---------------------------------------------------------------- train: overrides
    C("train-override-unknown-key", TRAIN + " optim.bogus_key=1", "bogus_key"),
    C("train-override-unknown-section", TRAIN + " nosection.x=1", "nosection"),
    C("train-override-no-equals", TRAIN + " optim.lr", "optim.lr"),
    C("train-override-wrong-type", TRAIN + " data.num_frames=eight", "num_frames"),
    C("train-override-list-type", TRAIN + " optim.lr_steps=abc", "lr_steps"),
    C("train-frames-0", TRAIN + " data.num_frames=0", "data.num_frames"),
    C("train-frames-negative", TRAIN + " data.num_frames=-4", "data.num_frames"),
    C("train-crop-negative", TRAIN + " data.crop_size=-16", "data.crop_size"),
    C(
        "train-crop-not-patch-multiple",
        TRAIN + " data.crop_size=18 data.train_scale=[18,20]",
        "data.crop_size",
    ),
    C("train-scale-below-crop", TRAIN + " data.train_scale=[8,12]", "data.train_scale"),
    C("train-scale-reversed", TRAIN + " data.train_scale=[20,18]", "data.train_scale"),
    C("train-scale-one-value", TRAIN + " data.train_scale=[16]", "data.train_scale"),
    C("train-sampling-rate-0", TRAIN + " data.sampling_rate=0", "data.sampling_rate"),
    C("train-batch-0", TRAIN + " data.batch_size=0", "data.batch_size"),
    C("train-test-crops-2", TRAIN + " data.test_crops=2", "data.test_crops"),
    C("train-workers-negative", TRAIN + " data.workers=-1", "data.workers"),
    C("train-format-unknown", TRAIN + " data.format=bogus", "data.format"),
    C("train-sampling-unknown", TRAIN + " data.sampling=bogus", "data.sampling"),
    C("train-root-missing", TRAIN + " data.root={missing}", "{missing}"),
    C("train-root-is-file", TRAIN + " data.root={file}", "{file}"),
    C("train-root-empty", TRAIN + " data.root={emptydir}", "{emptydir}"),
    C("train-root-unset", TRAIN + " data.root=", "data.root"),
    C("train-model-unknown", TRAIN + " model.name=nosuch_model", "nosuch_model"),
    C("train-scheme-unknown", TRAIN + " model.attention=bogus", "bogus"),
    C("train-heads-not-dividing", TRAIN + " model.num_heads=7", "num_heads"),
    C("train-depth-0", TRAIN + " model.depth=0", "depth"),
    C("train-drop-path-range", TRAIN + " model.drop_path_rate=1.5", "drop_path_rate"),
    C("train-init-missing", TRAIN + " model.init={missing}", "{missing}"),
    C("train-init-garbage", TRAIN + " model.init={garbage}", "{garbage}"),
    C("train-init-video", TRAIN + " model.init={video}", "{video}"),
    C("train-init-folder", TRAIN + " model.init={emptydir}", "{emptydir}"),
    C("train-lr-negative", TRAIN + " optim.lr=-1", "optim.lr"),
    C("train-optimizer-unknown", TRAIN + " optim.name=bogus", "optim.name"),
    C("train-epochs-0", TRAIN + " optim.epochs=0", "optim.epochs"),
    C("train-smoothing-range", TRAIN + " optim.label_smoothing=1.5", "optim.label_smoothing"),
    C("train-global-batch", TRAIN + " optim.global_batch=3", "optim.global_batch"),
    C("train-precision-unknown", TRAIN + " run.precision=fp64", "run.precision"),
    C("train-fp16-on-cpu", TRAIN + " run.precision=fp16 run.device=cpu", "run.precision"),
    C("train-device-unknown", TRAIN + " run.device=bogus", "run.device"),
    C("train-keep-last-0", TRAIN + " run.keep_last=0", "run.keep_last"),
    C("train-reduce-unknown", TRAIN + " run.eval_reduce=bogus", "run.eval_reduce"),
    W("train-out-is-file", "train --config synthetic {tiny_file_out}", "{file}"),
    W("train-out-under-file", "train --config synthetic {tiny_under_file}", "{file}/run"),
    # ---------------------------------------------------------------- eval
    U("eval-no-checkpoint", "eval --config synthetic", "--checkpoint"),
    C(
        "eval-checkpoint-missing",
        "eval --checkpoint {missing} --config synthetic {tiny}",
        "{missing}",
    ),
    C("eval-checkpoint-missing-no-config", "eval --checkpoint {missing}", "{missing}"),
    C(
        "eval-checkpoint-garbage",
        "eval --checkpoint {garbage} --config synthetic {tiny}",
        "{garbage}",
    ),
    C("eval-checkpoint-video", "eval --checkpoint {video} --config synthetic {tiny}", "{video}"),
    C(
        "eval-checkpoint-folder",
        "eval --checkpoint {emptydir} --config synthetic {tiny}",
        "{emptydir}",
    ),
    C("eval-checkpoint-classes", "eval --checkpoint {ckpt5} --config synthetic {tiny}", "classes"),
    C("eval-config-missing", "eval --checkpoint {ckpt} --config {missing}.yaml", "{missing}.yaml"),
    C("eval-override-unknown", EVAL + " run.bogus_key=1", "bogus_key"),
    C("eval-frames-0", EVAL + " data.num_frames=0", "data.num_frames"),
    C("eval-test-crops-2", EVAL + " data.test_crops=2", "data.test_crops"),
    C(
        "eval-crop-not-patch-multiple",
        EVAL + " data.crop_size=18 data.train_scale=[18,20]",
        "data.crop_size",
    ),
    W("eval-out-is-folder", EVAL + " --out {emptydir}", "{emptydir}: is a folder"),
    W("eval-out-under-file", EVAL + " --out {file}/x.json", "{file} is a file"),
    W("eval-out-under-file-no-config", "eval --checkpoint {ckpt} --out {file}/x.json", "{file}"),
    # ---------------------------------------------------------------- demo (fails before work)
    C("demo-unknown-scheme", "demo --out {out} --schemes bogus", "bogus"),
    C("demo-no-scheme", "demo --out {out} --schemes ,", "--schemes"),
    C("demo-one-unknown", "demo --out {out} --schemes divided,,joint,bogus", "bogus"),
    U("demo-seed-not-int", "demo --out {out} --seed x", "--seed"),
    C("demo-out-is-file", "demo --out {file} --quick --schemes divided --no-progress", "{file}"),
    # ---------------------------------------------------------------- predict
    U("predict-no-video", "predict --checkpoint {ckpt}", "VIDEO"),
    C("predict-video-missing", "predict {missing} --checkpoint {ckpt}", "{missing}"),
    C("predict-folder-no-videos", "predict {emptydir} --checkpoint {ckpt}", "{emptydir}"),
    C(
        "predict-not-a-video",
        "predict {notvideo} --checkpoint {ckpt} --no-progress",
        "{notvideo}",
        rc=1,
        kind="per_video",
    ),
    C("predict-checkpoint-missing", "predict {video} --checkpoint {missing}", "{missing}"),
    C("predict-checkpoint-garbage", "predict {video} --checkpoint {garbage}", "{garbage}"),
    C("predict-checkpoint-empty", "predict {video} --checkpoint {emptyfile}", "{emptyfile}"),
    C("predict-checkpoint-video", "predict {video} --checkpoint {video}", "{video}"),
    C("predict-checkpoint-folder", "predict {video} --checkpoint {emptydir}", "{emptydir}"),
    C("predict-checkpoint-yaml", "predict {video} --checkpoint {yaml_list}", "{yaml_list}"),
    C("predict-topk-0", "predict {video} --checkpoint {ckpt} --topk 0", "--topk"),
    C("predict-topk-negative", "predict {video} --checkpoint {ckpt} --topk -2", "--topk"),
    U("predict-topk-not-int", "predict {video} --checkpoint {ckpt} --topk many", "--topk"),
    C("predict-workers-negative", "predict {video} --checkpoint {ckpt} --workers -1", "--workers"),
    C("predict-stride-no-windows", "predict {video} --checkpoint {ckpt} --stride 1", "--stride"),
    C("predict-stride-0", "predict {video} --checkpoint {ckpt} --windows --stride 0", "stride"),
    C(
        "predict-stride-negative",
        "predict {video} --checkpoint {ckpt} --windows --stride -1",
        "stride",
    ),
    C("predict-clips-0", "predict {video} --checkpoint {ckpt} --clips 0", "--clips"),
    C("predict-clips-negative", "predict {video} --checkpoint {ckpt} --clips -3", "--clips"),
    U("predict-crops-2", "predict {video} --checkpoint {ckpt} --crops 2", "--crops"),
    C("predict-rate-0", "predict {video} --checkpoint {ckpt} --sampling-rate 0", "--sampling-rate"),
    C(
        "predict-labels-missing",
        "predict {video} --checkpoint {ckpt} --labels {missing}",
        "{missing}",
    ),
    C(
        "predict-labels-folder",
        "predict {video} --checkpoint {ckpt} --labels {emptydir}",
        "{emptydir}",
    ),
    C(
        "predict-labels-count",
        "predict {video} --checkpoint {ckpt} --labels {labels3}",
        "{labels3}",
    ),
    C(
        "predict-labels-blank-line",
        "predict {video} --checkpoint {ckpt} --labels {labels_blank}",
        "{labels_blank}",
    ),
    C(
        "predict-labels-bad-json",
        "predict {video} --checkpoint {ckpt} --labels {labels_json}",
        "{labels_json}",
    ),
    U(
        "predict-precision-unknown",
        "predict {video} --checkpoint {ckpt} --precision fp64",
        "--precision",
    ),
    C("predict-device-unknown", "predict {video} --checkpoint {ckpt} --device bogus", "--device"),
    W(
        "predict-timeline-is-file",
        "predict {video} --checkpoint {ckpt} --windows --timeline {file}",
        "{file}",
    ),
    W(
        "predict-out-is-folder",
        "predict {video} --checkpoint {ckpt} --out {emptydir}",
        "--out {emptydir}: is a folder",
    ),
    W(
        "predict-out-under-file",
        "predict {video} --checkpoint {ckpt} --out {file}/sub/p.jsonl",
        "--out {file}/sub/p.jsonl: {file} is a file",
    ),
    W(
        "predict-timeline-under-file",
        "predict {video} --checkpoint {ckpt} --windows --timeline {file}/tl",
        "--timeline {file}/tl: {file} is a file",
    ),
    # ---------------------------------------------------------------- extract
    U("extract-no-out", "extract {video} --checkpoint {ckpt}", "--out"),
    C("extract-no-videos", "extract --checkpoint {ckpt} --out {out}", "--list"),
    C("extract-video-missing", "extract {missing} --checkpoint {ckpt} --out {out}", "{missing}"),
    C(
        "extract-folder-no-videos",
        "extract {emptydir} --checkpoint {ckpt} --out {out}",
        "{emptydir}",
    ),
    C(
        "extract-list-missing",
        "extract --list {missing} --checkpoint {ckpt} --out {out}",
        "{missing}",
    ),
    C(
        "extract-list-folder",
        "extract --list {emptydir} --checkpoint {ckpt} --out {out}",
        "{emptydir}",
    ),
    C(
        "extract-shard-3-of-2",
        "extract {video} --checkpoint {ckpt} --out {out} --shard 3/2",
        "--shard 3/2",
    ),
    C(
        "extract-shard-0-of-0",
        "extract {video} --checkpoint {ckpt} --out {out} --shard 0/0",
        "--shard 0/0",
    ),
    C(
        "extract-shard-negative",
        "extract {video} --checkpoint {ckpt} --out {out} --shard=-1/2",
        "--shard -1/2",
    ),
    C(
        "extract-shard-count-0",
        "extract {video} --checkpoint {ckpt} --out {out} --shard 1/0",
        "--shard 1/0: the shard count must be at least 1, got 0",
    ),
    C(
        "extract-shard-text",
        "extract {video} --checkpoint {ckpt} --out {out} --shard half",
        "--shard",
    ),
    C(
        "extract-checkpoint-missing",
        "extract {video} --checkpoint {missing} --out {out}",
        "{missing}",
    ),
    C(
        "extract-checkpoint-garbage",
        "extract {video} --checkpoint {garbage} --out {out}",
        "{garbage}",
    ),
    C("extract-checkpoint-video", "extract {video} --checkpoint {video} --out {out}", "{video}"),
    C(
        "extract-workers-negative",
        "extract {video} --checkpoint {ckpt} --out {out} --workers -1",
        "--workers",
    ),
    C(
        "extract-stride-no-windows",
        "extract {video} --checkpoint {ckpt} --out {out} --stride 2",
        "--stride",
    ),
    C(
        "extract-stride-0",
        "extract {video} --checkpoint {ckpt} --out {out} --windows --stride 0",
        "stride",
    ),
    C("extract-clips-0", "extract {video} --checkpoint {ckpt} --out {out} --clips 0", "--clips"),
    C(
        "extract-rate-negative",
        "extract {video} --checkpoint {ckpt} --out {out} --sampling-rate -1",
        "--sampling-rate",
    ),
    U(
        "extract-format-unknown",
        "extract {video} --checkpoint {ckpt} --out {out} --format csv",
        "--format",
    ),
    C(
        "extract-device-unknown",
        "extract {video} --checkpoint {ckpt} --out {out} --device bogus",
        "--device",
    ),
    W("extract-out-is-file", "extract {video} --checkpoint {ckpt} --out {file}", "{file}"),
    W(
        "extract-out-under-file",
        "extract {video} --checkpoint {ckpt} --out {file}/feats",
        "--out {file}/feats: {file} is a file",
    ),
    C(
        "extract-not-a-video",
        "extract {notvideo} --checkpoint {ckpt} --out {out} --no-progress",
        "{notvideo}",
        rc=1,
        kind="per_video",
    ),
    # ---------------------------------------------------------------- explain
    U("explain-no-checkpoint", "explain {video}", "--checkpoint"),
    C("explain-video-missing", "explain {missing} --checkpoint {ckpt} --out {out}", "{missing}"),
    C("explain-video-folder", "explain {emptydir} --checkpoint {ckpt} --out {out}", "{emptydir}"),
    C("explain-not-a-video", "explain {notvideo} --checkpoint {ckpt} --out {out}", "{notvideo}"),
    C("explain-empty-video", "explain {emptyfile} --checkpoint {ckpt} --out {out}", "{emptyfile}"),
    C(
        "explain-checkpoint-missing",
        "explain {video} --checkpoint {missing} --out {out}",
        "{missing}",
    ),
    C(
        "explain-checkpoint-garbage",
        "explain {video} --checkpoint {garbage} --out {out}",
        "{garbage}",
    ),
    C(
        "explain-checkpoint-folder",
        "explain {video} --checkpoint {emptydir} --out {out}",
        "{emptydir}",
    ),
    C(
        "explain-discard-1.5",
        "explain {video} --checkpoint {ckpt} --out {out} --discard-ratio 1.5",
        "--discard-ratio",
    ),
    C(
        "explain-discard-1",
        "explain {video} --checkpoint {ckpt} --out {out} --discard-ratio 1",
        "--discard-ratio",
    ),
    C(
        "explain-discard-negative",
        "explain {video} --checkpoint {ckpt} --out {out} --discard-ratio -0.1",
        "--discard-ratio",
    ),
    C(
        "explain-discard-nan",
        "explain {video} --checkpoint {ckpt} --out {out} --discard-ratio nan",
        "--discard-ratio",
    ),
    C(
        "explain-rate-0",
        "explain {video} --checkpoint {ckpt} --out {out} --sampling-rate 0",
        "--sampling-rate",
    ),
    U(
        "explain-fusion-unknown",
        "explain {video} --checkpoint {ckpt} --head-fusion sum",
        "--head-fusion",
    ),
    C(
        "explain-device-unknown",
        "explain {video} --checkpoint {ckpt} --out {out} --device bogus",
        "--device",
    ),
    W("explain-out-is-file", "explain {video} --checkpoint {ckpt} --out {file}", "{file}"),
    W(
        "explain-out-under-file",
        "explain {video} --checkpoint {ckpt} --out {file}/maps",
        "--out {file}/maps: {file} is a file",
    ),
    # ---------------------------------------------------------------- export
    U("export-no-format", "export {ckpt} --out {out}", "--format"),
    U("export-format-unknown", "export {ckpt} --format tflite --out {out}", "--format"),
    C(
        "export-checkpoint-missing",
        "export {missing} --format torchscript --out {out}.pt",
        "{missing}",
    ),
    C(
        "export-checkpoint-garbage",
        "export {garbage} --format torchscript --out {out}.pt",
        "{garbage}",
    ),
    C("export-checkpoint-video", "export {video} --format hf --out {out}", "{video}"),
    C("export-checkpoint-folder", "export {emptydir} --format hf --out {out}", "{emptydir}"),
    C(
        "export-batch-0",
        "export {ckpt} --format torchscript --out {out}.pt --batch-size 0",
        "--batch-size",
    ),
    C(
        "export-batch-negative",
        "export {ckpt} --format torchscript --out {out}.pt --batch-size -2",
        "--batch-size",
    ),
    C(
        "export-opset-not-onnx",
        "export {ckpt} --format torchscript --out {out}.pt --opset 17",
        "--opset",
    ),
    W(
        "export-torchscript-to-folder",
        "export {ckpt} --format torchscript --out {emptydir}",
        "{emptydir}",
    ),
    W("export-onnx-to-folder", "export {ckpt} --format onnx --out {emptydir}", "{emptydir}"),
    W("export-hf-to-file", "export {ckpt} --format hf --out {file}", "{file}: is a file"),
    *(
        W(
            f"export-{fmt}-under-file",
            f"export {{ckpt}} --format {fmt} --out {{file}}/sub/model",
            "--out {file}/sub/model: {file} is a file",
        )
        for fmt in ("onnx", "torchscript", "hf")
    ),
    C(
        "export-opset-not-onnx-hf",
        "export {ckpt} --format hf --out {out} --opset 18",
        "--opset",
    ),
]

# A representative subset through the real entry point, where tracebacks really show.
SUBPROCESS = (
    "info-patch-not-dividing",
    "probe-not-a-video",
    "synth-fps-0",
    "train-crop-not-patch-multiple",
    "eval-checkpoint-garbage",
    "predict-clips-0",
    "extract-shard-3-of-2",
    "export-checkpoint-video",
    "export-onnx-under-file",
)


# ---------------------------------------------------------------------- the workspace
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, str]:
    """Good and bad files the cases point at; the paths fill the templates."""
    root = tmp_path_factory.mktemp("badinput")
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
    classes = (data / "classes.txt").read_text().split()
    model = randomize(tiny(num_classes=len(classes)), seed=1)
    model.class_names = classes
    ckpt = save_checkpoint(model, root / "tiny.safetensors")
    ckpt5 = save_checkpoint(randomize(tiny(num_classes=5)), root / "five.safetensors")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 24, 24, 3), dtype=np.uint8)
    video = root / "clip.mp4"
    write_video(video, frames, 30.0)
    files = {
        "notvideo": (root / "notvideo.mp4", b"\x00\x01garbage, not a video" * 50),
        "notvideo_yaml": (root / "binary.yaml", bytes(range(256))),
        "emptyfile": (root / "empty.mp4", b""),
        "garbage": (root / "garbage.safetensors", b"hello, this is not a checkpoint"),
        "file": (root / "plain.txt", b"a plain file\n"),
        "yaml_broken": (root / "broken.yaml", b"model: [unclosed\n"),
        "yaml_list": (root / "list.yaml", b"- a\n- b\n"),
        "yaml_unknown": (root / "unknown.yaml", b"model:\n  bogus_key: 1\n"),
        "yaml_section": (root / "section.yaml", b"bogus_section:\n  x: 1\n"),
        "yaml_type": (root / "type.yaml", b"data:\n  num_frames: eight\n"),
        "labels3": (root / "labels3.txt", b"a\nb\nc\n"),
        "labels_blank": (root / "blank.txt", b"a\n\nb\n"),
        "labels_json": (root / "labels.json", b"[unclosed"),
    }
    paths = {"data": str(data), "ckpt": str(ckpt), "ckpt5": str(ckpt5), "video": str(video)}
    for key, (path, content) in files.items():
        path.write_bytes(content)
        paths[key] = str(path)
    (root / "empty_dir").mkdir()
    paths["emptydir"] = str(root / "empty_dir")
    paths["missing"] = str(root / "does_not_exist")
    paths["root"] = str(root)
    return paths


def tiny_run(ws: dict[str, str], out: Path) -> list[str]:
    """Overrides for a tiny CPU run on the workspace's 2-video training set."""
    small = {"data.batch_size": 2, "optim.global_batch": 2}
    return tiny_overrides(Path(ws["data"]), out, **small)


def fill(text: str, ws: dict[str, str], out: Path) -> list[str]:
    """The template's words with the paths filled in; ``{tiny}`` expands to the tiny-run
    overrides (run.out = ``out``), ``{tiny_file_out}`` to the same with run.out a plain file,
    ``{tiny_under_file}`` with run.out a folder under that file."""
    values = {**ws, "out": str(out)}
    words: list[str] = []
    for word in text.split():
        if word == "{tiny}":
            words += tiny_run(ws, out)
        elif word == "{tiny_file_out}":
            words += tiny_run(ws, Path(ws["file"]))
        elif word == "{tiny_under_file}":
            words += tiny_run(ws, Path(ws["file"]) / "run")
        else:
            words.append(word.format(**values))
    return words


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file and folder under ``root``: what a failing command must not
    change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_size if not stat.S_ISDIR(st.st_mode) else 0, st.st_mtime_ns)
    return out


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``timesformer.cli.main(argv)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exit_:  # argparse
            rc = exit_.code if isinstance(exit_.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def check(case: Case, rc: int, stdout: str, stderr: str, names: str) -> None:
    """The contract of the module docstring, for one run of ``case``."""
    shown = f"rc={rc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert "Traceback" not in stderr + stdout, shown
    assert rc == case.rc, shown
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    prog = f"timesformer {case.command}" if case.command in COMMANDS else "timesformer"
    if case.kind == "usage":
        assert lines and lines[0].startswith("usage: timesformer"), shown
        assert lines[-1].startswith(prog) and ": error: " in lines[-1], shown
        assert names in lines[-1], shown
    elif case.kind == "error":
        assert len(lines) == 1, shown
        assert lines[0].startswith(f"{prog}: error: "), shown
        assert names in lines[0], shown
    elif case.kind == "per_video":
        assert names in stdout + stderr and "error" in stdout + stderr, shown
    elif case.kind == "json":
        assert not lines, shown
        (entry,) = json.loads(stdout)
        assert names in entry["error"], shown


def _refuse_long_work(*args, **kwargs):
    raise AssertionError("long work started before the output was checked")


def refuse_long_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading a checkpoint, training and rendering synthetic videos raise: what a command
    must not start before it has found its output unwritable."""
    import timesformer.checkpoints
    import timesformer.data.synthetic
    import timesformer.engine

    monkeypatch.setattr(timesformer.checkpoints, "load_checkpoint", _refuse_long_work)
    monkeypatch.setattr(timesformer.engine.Trainer, "fit", _refuse_long_work)
    monkeypatch.setattr(timesformer.data.synthetic, "render", _refuse_long_work)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_in_process(case: Case, ws, tmp_path, monkeypatch):
    out = tmp_path / "out"
    if case.early:
        refuse_long_work(monkeypatch)
    before = snapshot(ws["root"])
    rc, stdout, stderr = run_in_process(fill(" ".join(case.argv), ws, out))
    check(case, rc, stdout, stderr, case.names.format(**ws, out=out))
    # Nothing half-written: the workspace is untouched and no output was left behind (a video
    # that fails is recorded as such by extract, its only output).
    assert snapshot(ws["root"]) == before
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    if case.kind == "per_video":
        files = [p for p in files if p.suffix in (".safetensors", ".npy", ".tmp")]
    assert not files, files


@pytest.fixture(scope="module")
def entry_point_runs(ws, tmp_path_factory) -> dict[str, tuple[Path, int, str, str]]:
    """Every SUBPROCESS case through ``python -m timesformer``, started all at once (each pays
    for importing torch): case id -> (its folder, exit status, stdout, stderr)."""
    started = {}
    for case_id in SUBPROCESS:
        case = next(c for c in CASES if c.id == case_id)
        folder = tmp_path_factory.mktemp("entry")
        argv = fill(" ".join(case.argv), ws, folder / "out")
        started[case_id] = (
            folder,
            subprocess.Popen(
                [sys.executable, "-m", "timesformer", *argv],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    runs = {}
    for case_id, (folder, proc) in started.items():
        stdout, stderr = proc.communicate(timeout=180)
        runs[case_id] = folder, proc.returncode, stdout, stderr
    return runs


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_bad_input_through_the_entry_point(case_id: str, ws, entry_point_runs):
    case = next(c for c in CASES if c.id == case_id)
    folder, rc, stdout, stderr = entry_point_runs[case_id]
    check(case, rc, stdout, stderr, case.names.format(**ws, out=folder / "out"))
    assert not [p for p in folder.rglob("*") if p.is_file()]


def test_the_table_is_broad():
    """The figure docs/reliability.md quotes: cases per command, every command covered."""
    per_command = Counter(c.command for c in CASES)
    commands = {"info", "probe", "data", "train", "eval", "demo", "predict", "extract"}
    assert commands | {"explain", "export"} <= set(per_command)
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)  # ids are unique
    assert set(SUBPROCESS) <= {c.id for c in CASES}
    # Every command that writes has an output case that must fail before any long work.
    early = {" ".join(c.argv[:2]) if c.command == "data" else c.command for c in CASES if c.early}
    assert {"data synth", "train", "eval", "predict", "extract", "explain", "export"} <= early
    formats = {
        c.argv[c.argv.index("--format") + 1] for c in CASES if c.early and "--format" in c.argv
    }
    assert formats == {"onnx", "torchscript", "hf"}


# ---------------------------------------------------------------------- permissions
# Unreadable files (chmod 000) and read-only folders (chmod 555) bind root only without the
# capabilities that override them: as root, every such case runs in one child that lacks them
# (one child: each pays seconds to import torch). The cases' paths lie in one folder, {perm}.
UNREADABLE = (
    ("probe", "probe {video}", "{video}"),
    ("train", "train --config {config}", "{config}"),
    ("predict", "predict {video} --checkpoint {ckpt}", "{ckpt}"),
    ("extract", "extract --list {list} --checkpoint {good} --out {out}", "{list}"),
    ("explain", "explain {video} --checkpoint {good} --out {out}", "{video}"),
    ("export", "export {ckpt} --format hf --out {out}", "{ckpt}"),
    ("eval", "eval --checkpoint {ckpt} --config {config}", "{config}"),
    ("predict", "predict {good_video} --checkpoint {good} --labels {labels}", "{labels}"),
)
# Outputs in or under a chmod 555 folder {ro} (which holds model.safetensors and old.jsonl):
# each command that writes refuses in one line naming the path (the third field), before any
# long work. {tiny} is a tiny training run whose run.out is {ro}/run.
READ_ONLY = (
    (
        "predict",
        "predict {ws_video} --checkpoint {good} --out {ro}/sub/p.jsonl",
        "{ro}/sub/p.jsonl",
    ),
    ("predict", "predict {ws_video} --checkpoint {good} --out {ro}/old.jsonl", "{ro}/old.jsonl"),
    ("predict", "predict {ws_video} --checkpoint {good} --windows --timeline {ro}/t", "{ro}/t"),
    ("predict", "predict {ws_video} --checkpoint {good} --windows --timeline {ro}", "{ro}"),
    ("extract", "extract {ws_video} --checkpoint {good} --out {ro}/feats", "{ro}/feats"),
    ("extract", "extract {ws_video} --checkpoint {good} --out {ro}", "{ro}"),
    ("explain", "explain {ws_video} --checkpoint {good} --out {ro}", "{ro}"),
    ("explain", "explain {ws_video} --checkpoint {good} --out {ro}/maps", "{ro}/maps"),
    ("export", "export {good} --format onnx --out {ro}/m.onnx", "{ro}/m.onnx"),
    ("export", "export {good} --format torchscript --out {ro}/m.pt", "{ro}/m.pt"),
    ("export", "export {good} --format hf --out {ro}/hf", "{ro}/hf"),
    ("eval", "eval --checkpoint {good} --out {ro}/r.json", "{ro}/r.json"),
    # No --out: the result file goes beside the checkpoint, here in the read-only folder.
    ("eval", "eval --checkpoint {ro}/model.safetensors", "{ro}/eval_model.json"),
    ("data", "data synth {ro}/synth", "{ro}/synth"),
    ("data", "data synth {ro}/a/b/synth", "{ro}/a/b/synth"),
    ("train", "train --config synthetic {tiny}", "{ro}/run"),
)
NOT_WRITABLE = "is not writable (permission denied)"

_RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, sys, traceback
    import timesformer.checkpoints, timesformer.data.synthetic, timesformer.engine
    from timesformer.cli import main
    # What refuse_long_work does: in an early case, a long step started raises (a traceback,
    # which the check reports).
    LONG_WORK = [
        (timesformer.checkpoints, "load_checkpoint"),
        (timesformer.engine.Trainer, "fit"),
        (timesformer.data.synthetic, "render"),
    ]
    def refuse(*args, **kwargs):
        raise AssertionError("long work started before the output was checked")
    results = []
    for argv, early in json.loads(sys.argv[1]):
        saved = [(owner, name, getattr(owner, name)) for owner, name in LONG_WORK]
        for owner, name, _ in saved if early else ():
            setattr(owner, name, refuse)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:
                traceback.print_exc(file=err)
                rc = -1
        for owner, name, original in saved:
            setattr(owner, name, original)
        results.append([rc, out.getvalue(), err.getvalue()])
    print(json.dumps(results))
    """
)
# Root reads and writes any file; without these two capabilities (dropped from the bounding set
# of the child) it is refused a chmod 000 file or a chmod 555 folder like any user.
_NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def run_as_a_user(runs: list[tuple[list[str], bool]], cwd: Path) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each (argv, early) run by a process that file
    permissions bind: this one, or as root a child without the capabilities that override
    them. ``early``: long work raises (``refuse_long_work``)."""
    if os.geteuid() != 0:
        results = []
        for argv, early in runs:
            with pytest.MonkeyPatch.context() as monkeypatch:
                if early:
                    refuse_long_work(monkeypatch)
                results.append(run_in_process(argv))
        return results
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: every file is readable and writable")
    proc = subprocess.run(
        [*_NO_OVERRIDE, sys.executable, "-c", _RUNNER, json.dumps(runs)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot drop the capabilities: {proc.stderr.strip()[-300:]}")
    return [(rc, out, err) for rc, out, err in json.loads(proc.stdout.strip().splitlines()[-1])]


@pytest.fixture(scope="module")
def permission_runs(ws, tmp_path_factory) -> dict[str, object]:
    """Every UNREADABLE and READ_ONLY case, run at once: ``values`` (the paths), ``unreadable``
    and ``read_only`` (their results in order), and ``unchanged`` (whether {perm} and the
    workspace were left as they were)."""
    perm = tmp_path_factory.mktemp("perm")
    good, good_video = perm / "good.safetensors", perm / "good.mp4"
    shutil.copy(ws["ckpt"], good)
    shutil.copy(ws["video"], good_video)
    paths = {
        "video": perm / "clip.mp4",
        "ckpt": perm / "model.safetensors",
        "config": perm / "run.yaml",
        "list": perm / "videos.txt",
        "labels": perm / "labels.txt",
    }
    shutil.copy(ws["video"], paths["video"])
    shutil.copy(ws["ckpt"], paths["ckpt"])
    paths["config"].write_text("data:\n  num_frames: 4\n")
    paths["list"].write_text(f"{good_video}\n")
    paths["labels"].write_text("left\nright\n")
    ro = perm / "ro"
    ro.mkdir()
    shutil.copy(ws["ckpt"], ro / "model.safetensors")
    (ro / "old.jsonl").write_text("{}\n")
    values = {k: str(v) for k, v in paths.items()}
    values |= {"good": str(good), "good_video": str(good_video), "out": str(perm / "out")}
    values |= {"ro": str(ro), "ws_video": ws["video"]}
    runs = [(argv.format(**values).split(), False) for _, argv, _ in UNREADABLE]
    runs += [(fill(argv, {**ws, **values}, ro / "run"), True) for _, argv, _ in READ_ONLY]
    before = snapshot(str(perm)), snapshot(ws["root"])
    for p in paths.values():
        p.chmod(0)
    ro.chmod(0o555)
    try:
        results = run_as_a_user(runs, perm)
    finally:
        for p in paths.values():
            p.chmod(0o644)
        ro.chmod(0o755)
    return {
        "values": values,
        "unreadable": results[: len(UNREADABLE)],
        "read_only": results[len(UNREADABLE) :],
        "unchanged": (snapshot(str(perm)), snapshot(ws["root"])) == before,
    }


def test_unreadable_files(permission_runs):
    """chmod 000 files (as root: in a child that lacks the capabilities to read them anyway)."""
    values = permission_runs["values"]
    for (command, argv, names), (rc, stdout, stderr) in zip(
        UNREADABLE, permission_runs["unreadable"], strict=True
    ):
        case = C(f"unreadable-{command}", argv, names)
        check(case, rc, stdout, stderr, names.format(**values))
    assert not Path(values["out"]).exists()


def test_read_only_folders(permission_runs):
    """Outputs in or under a folder without write permission (as root: in a child that lacks
    the capability to write there anyway): one line before any long work, nothing made."""
    values = permission_runs["values"]
    ro = values["ro"]
    for (command, argv, path), (rc, stdout, stderr) in zip(
        READ_ONLY, permission_runs["read_only"], strict=True
    ):
        path = path.format(**values)
        # The message names the output and the folder that refuses it (itself, or {ro}).
        names = f"{path}: {NOT_WRITABLE}" if path == ro else f"{path}: {ro} {NOT_WRITABLE}"
        if command == "train":
            names = path  # the run folder's check is the trainer's, worded its own way
        check(C(f"read-only-{command}", argv, names), rc, stdout, stderr, names)
    assert permission_runs["unchanged"]  # nothing made or changed, in {ro} or the workspace


# ---------------------------------------------------------------------------- training runs
# `timesformer train` never loses an epoch and never mixes two runs in one folder.
#
# - A shipped config on the user's own data takes the class count from the data (one line says
# so); a count the user set that the data does not have is refused before training.
# - Each epoch's checkpoint is on disk before its evaluation: a failure there loses nothing, and
# the next start does the evaluation it missed.
# - A used run folder: ``run.resume=false`` moves the old run to ``OUT.old-N``; a resume lists
# the settings changed since its checkpoint and refuses the changes it cannot continue with.
# - Config checks come before anything is written (local_global's grid, the batch count).
#
# Everything runs in-process through ``timesformer.cli.main``, as the user's command would, on a
# tiny 3-class folder and a 2-block model (a few seconds per training run).


@pytest.fixture(scope="module")
def four_classes(tmp_path_factory) -> Path:
    """The synthetic set: 4 classes (4 train and 1 val video each, 8 frames of 16 x 16)."""
    return make_synthetic(
        tmp_path_factory.mktemp("synth") / "data",
        seed=3,
        pairs=["horizontal", "depth"],
        train_per_class=4,
        val_per_class=1,
        frames=8,
        size=16,
        style="simple",
        progress=False,
    )


@pytest.fixture(scope="module")
def three_classes(four_classes, tmp_path_factory) -> Path:
    """Three of its classes, without a class list: the classes are its folders, as in a
    user's own data."""
    root = tmp_path_factory.mktemp("own") / "data"
    shutil.copytree(four_classes, root)
    dropped = (root / "classes.txt").read_text().split()[-1]
    for split in ("train", "val"):
        shutil.rmtree(root / split / dropped)
    (root / "classes.txt").unlink()
    return root


@pytest.fixture
def logs(caplog) -> pytest.LogCaptureFixture:
    """The lines the command logs (the CLI prints them on stderr; pytest captures them)."""
    caplog.set_level(logging.INFO, logger="timesformer")
    return caplog


def args(root: Path, out: Path, *extra: str, **values) -> list[str]:
    """k400_base with tiny overrides: 3 optimizer steps per epoch, 1 epoch, fp32."""
    settings = {
        "data.train": "train",
        "data.val": "val",
        "data.batch_size": 4,
        "optim.global_batch": 4,
        "optim.epochs": 1,
        "run.precision": "fp32",
        **values,
    }
    return ["train", "--config", "k400_base", *extra, *tiny_overrides(root, out, **settings)]


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def epochs_logged(out: Path) -> list[int]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r["epoch"] for r in map(json.loads, lines) if r["kind"] == "epoch"]


def folder_snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` and its modification time (ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


# ---------------------------------------------------------------------- the class count
def test_shipped_config_on_own_folder_takes_the_class_count_from_the_data(
    three_classes, tmp_path, logs, capsys
):
    out = tmp_path / "run"
    assert main(args(three_classes, out)) == 0
    assert (
        "model.num_classes: 400 in the shipped config k400_base, 3 classes in the data: using 3"
        in logs.messages
    )
    assert [e for e, _ in epoch_checkpoints(out / "checkpoints")] == [1]
    assert epochs_logged(out) == [1]
    assert "val_top1" in json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    result = json.loads((out / "results.json").read_text())  # the final evaluation ran
    assert result["num_videos"] == 3 and len(result["confusion"]) == 3
    assert load_checkpoint(out / "best.safetensors").config.num_classes == 3
    assert "num_classes: 3" in (out / "config.yaml").read_text()  # the count used
    assert "test (3 views/video, 3 videos)" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["override", "file"])
def test_a_class_count_the_user_set_must_match_the_data(three_classes, tmp_path, where, capsys):
    out = tmp_path / "run"
    extra: list[str] = []
    values = {}
    if where == "override":
        values["model.num_classes"] = 5
        origin = "the override model.num_classes=5"
    else:
        mine = tmp_path / "mine.yaml"
        mine.write_text("model:\n  num_classes: 5\n")
        extra = ["--config", str(mine)]
        origin = str(mine)
    assert main(args(three_classes, out, *extra, **values)) == 2
    assert error_lines(capsys) == [
        f"timesformer train: error: model.num_classes is 5 (from {origin}), but the training "
        f"data {three_classes / 'train'} has 3 classes: set model.num_classes=3, or leave it "
        "unset to take the data's count"
    ]
    assert not out.exists()  # refused before anything was written


def test_a_class_count_that_matches_the_data_is_used_without_a_word(three_classes, tmp_path, logs):
    from timesformer.engine import load_config, packaged_config

    argv = args(three_classes, tmp_path / "run", **{"model.num_classes": 3})
    trainer = Trainer(load_config([packaged_config("k400_base")], argv[3:]))
    assert trainer.model.head.out_features == 3
    assert not [m for m in logs.messages if m.startswith("model.num_classes")]


# ---------------------------------------------------------------------- no lost epoch
def test_the_epoch_checkpoint_is_written_before_a_failing_evaluation(
    three_classes, tmp_path, monkeypatch, logs
):
    out = tmp_path / "run"

    def broken(self):
        raise RuntimeError("injected evaluation failure")

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "validate", broken)
        with pytest.raises(RuntimeError, match="injected"):
            main(args(three_classes, out))
    ckpt = out / "checkpoints" / "epoch_001.safetensors"
    state = read_train_state(ckpt)
    assert state.epoch == 1 and state.step == 3 and not state.epoch_finished
    assert not (out / "best.safetensors").exists()
    # What a stopped run logged after its checkpoint is dropped when the run resumes.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "step", "epoch": 2, "step": 99, "loss": 1.0}) + "\n")

    # The same command again: the epoch is not trained again, its evaluation is done.
    assert main(args(three_classes, out)) == 0
    assert f"resumed from {ckpt} (epoch 1, step 3)" in logs.messages
    ends = [m for m in logs.messages if m.startswith("epoch 1/1: ")]
    assert len(ends) == 1 and "val_top1" in ends[0]
    assert read_train_state(ckpt).epoch_finished and read_train_state(ckpt).step == 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3]
    assert epochs_logged(out) == [1] and "val_top1" in records[-1]
    assert (out / "best.safetensors").is_file() and (out / "results.json").is_file()


# ---------------------------------------------------------------------- a used run folder
@pytest.fixture(scope="module")
def finished_run(three_classes, tmp_path_factory) -> Path:
    """A finished 1-epoch run of ``args`` (no final test); tests copy it or leave it as it is."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*args(three_classes, out), "--no-test"]) == 0
    return out


def test_resume_false_moves_the_old_run_aside_and_starts_afresh(
    three_classes, finished_run, tmp_path, logs
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (tmp_path / "run.old-1").mkdir()  # an earlier run moved aside: the next number is taken
    old = folder_snapshot(out)
    assert main([*args(three_classes, out, **{"run.resume": "false"}), "--no-test"]) == 0
    aside = tmp_path / "run.old-2"
    assert f"run.out {out} held another run: moved to {aside}; this run starts afresh" in (
        logs.messages
    )
    assert folder_snapshot(aside) == old  # the old run, whole and untouched
    assert epochs_logged(out) == [1] and "resume: false" in (out / "config.yaml").read_text()
    assert not [m for m in logs.messages if m.startswith("resumed from")]
    # The next plain run resumes the new run, not the old one.
    logs.clear()
    assert main([*args(three_classes, out), "--no-test"]) == 0
    newest = out / "checkpoints" / "epoch_001.safetensors"
    assert f"resumed from {newest} (epoch 1, step 3)" in logs.messages
    assert f"the run in {out} has trained 1 epoch (optim.epochs 1): nothing left to train" in (
        logs.messages
    )
    assert epochs_logged(out) == [1]


def test_resume_with_changed_settings_says_what_changed(
    three_classes, finished_run, tmp_path, logs
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    more = args(three_classes, out, **{"optim.epochs": 2, "optim.lr": 0.001})
    assert main([*more, "--no-test"]) == 0
    assert [m for m in logs.messages if m.startswith("changed since that checkpoint")] == [
        "changed since that checkpoint: optim.lr: 0.003 -> 0.001",
        "changed since that checkpoint: optim.epochs: 1 -> 2 (the learning-rate schedule "
        "follows the new count)",
    ]
    assert epochs_logged(out) == [1, 2]
    state = read_train_state(out / "checkpoints" / "epoch_002.safetensors")
    assert state.epoch == 2 and state.step == 6 and state.epoch_finished
    assert "lr: 0.001" in (out / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model.depth": 3}, "model.depth: 2 -> 3"),
        ({"data.crop_size": 32, "data.train_scale": "[32, 36]"}, "data.crop_size: 16 -> 32"),
        (
            {"optim.global_batch": 8},
            "optimizer steps per epoch 3 -> 1 (optim.global_batch: 4 -> 8)",
        ),
        ({"optim.name": "sgd"}, "optim.name: adamw -> sgd"),
        ({"data.root": "FOUR"}, "the data's classes 3 classes (approaching, left, right) -> 4 "),
    ],
    ids=["depth", "crop", "steps", "optimizer", "classes"],
)
def test_a_resume_that_cannot_continue_the_run_is_refused(
    three_classes, four_classes, finished_run, change, problem, capsys, logs
):
    out = finished_run
    before = folder_snapshot(out)
    change = {k: str(four_classes) if v == "FOUR" else v for k, v in change.items()}
    assert main(args(three_classes, out, **change)) == 2
    # The class-count notice waits for every check to pass: the refusal is the only line.
    assert not [m for m in logs.messages if m.startswith("model.num_classes")]
    lines = error_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"timesformer train: error: run.out {out} holds a run that this config cannot continue: "
    )
    assert problem in lines[0]
    assert lines[0].endswith(
        f"Resume it with its own settings ({out / 'config.yaml'}), set run.resume=false to move "
        f"it aside to {out.parent / 'run.old-1'} and start over, or choose another run.out"
    )
    assert folder_snapshot(out) == before  # nothing written, nothing moved


def test_a_folder_with_results_but_no_checkpoint_is_not_overwritten(
    three_classes, tmp_path, capsys
):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.safetensors").write_bytes(b"the best model of an earlier run")
    assert main(args(three_classes, out)) == 2
    assert error_lines(capsys) == [
        f"timesformer train: error: run.out {out} holds a run with no epoch checkpoint to resume "
        f"from (best.safetensors): set run.resume=false to move it aside to "
        f"{tmp_path / 'run.old-1'} and start over, or choose another run.out"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors"]


def test_a_folder_holding_the_data_is_not_moved_aside(three_classes, tmp_path, capsys):
    out = tmp_path / "work"
    shutil.copytree(three_classes, out / "data")
    (out / "config.yaml").write_text("model: {}\n")  # an earlier run's
    assert main(args(out / "data", out, **{"run.resume": "false"})) == 2
    assert error_lines(capsys) == [
        f"timesformer train: error: run.out {out} holds another run and data.root is inside it: "
        "not moved aside; choose a run.out of its own"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


# ---------------------------------------------------------------------- checks come first
def test_local_global_with_an_odd_frame_count_fails_before_the_run_folder(
    three_classes, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = args(three_classes, out, **{"model.attention": "local_global", "data.num_frames": 3})
    assert main(argv) == 2
    assert error_lines(capsys) == [
        "timesformer train: error: model section: local_global attention needs an even number "
        "of frames and of patches per side, got 3 frames of 4x4 patches (data.num_frames 3, "
        "data.crop_size 16 / patch size 4); change data.num_frames or data.crop_size, or "
        "model.attention"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"data.batch_size": 4, "optim.global_batch": 32},
            "the training set gives 3 batches of data.batch_size 4 per process, fewer than the 8 "
            "needed for one optimizer step of optim.global_batch 32: lower optim.global_batch to "
            "at most 12",
        ),
        (
            {"data.batch_size": 8, "optim.global_batch": 16},
            "the training set gives 1 batch of data.batch_size 8 per process, fewer than the 2 "
            "needed for one optimizer step of optim.global_batch 16: lower optim.global_batch to "
            "at most 8",
        ),
        (
            {"data.batch_size": 16, "optim.global_batch": 16},
            "the training set has 12 videos, fewer than one batch of data.batch_size 16 per "
            "process: lower data.batch_size to at most 12 (and optim.global_batch to a multiple "
            "of it)",
        ),
    ],
    ids=["batches", "one-batch", "no-batch"],
)
def test_too_few_batches_names_the_setting_to_lower(
    three_classes, tmp_path, values, message, capsys
):
    out = tmp_path / "run"
    assert main(args(three_classes, out, **values)) == 2
    assert error_lines(capsys) == [f"timesformer train: error: {message}"]
    assert not out.exists()
