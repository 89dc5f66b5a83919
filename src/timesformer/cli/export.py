"""``timesformer export``: a checkpoint as ONNX, TorchScript or a Hugging Face folder."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("onnx", "torchscript", "hf")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or the Hugging Face layout",
        description=(
            "Load CHECKPOINT (any kind `load_checkpoint` reads: this project's .safetensors, the "
            "reference .pyth, a Hugging Face folder) and write it as: onnx, one .onnx file whose "
            "input 'video' is (B, 3, T, H, W) and output 'logits' (B, classes), with a dynamic "
            "batch axis (needs the onnx and onnxscript packages); torchscript, a traced .pt file "
            "for torch.jit.load; hf, a folder that transformers' "
            "TimesformerForVideoClassification.from_pretrained loads (divided and joint "
            "attention only). T, H and W are the model's configured frame count and size. "
            "Unless --no-check is given, the written export is run again (onnxruntime, "
            "torch.jit.load or transformers, when installed) on random clips at two or more "
            "batch sizes and the largest absolute difference from the model's logits is "
            "printed; exit status 1 if it exceeds 1e-4, 2 for bad input."
        ),
    )
    # Positional as documented, and --checkpoint as predict, eval, extract and explain take it.
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", nargs="?", help="checkpoint file or HF folder"
    )
    p.add_argument(
        "--checkpoint",
        dest="checkpoint_opt",
        metavar="CHECKPOINT",
        help="the same, given as an option as the other commands take it",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="file to write (onnx, torchscript) or folder (hf); never left half-written",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="a batch size to check the export at, besides 1 (default 1; the file accepts any)",
    )
    p.add_argument(
        "--opset", type=int, default=None, help="ONNX opset version (default: the exporter's)"
    )
    p.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="do not run the written export to compare it with the model",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from timesformer.checkpoints import load_checkpoint
    from timesformer.cli.common import check_output, writing
    from timesformer.errors import ConfigError
    from timesformer.inference.export import export_model, require_onnx

    if (args.checkpoint is None) == (args.checkpoint_opt is None):
        raise ConfigError("give the checkpoint once: CHECKPOINT or --checkpoint CHECKPOINT")
    checkpoint = args.checkpoint or args.checkpoint_opt
    # Everything that can be told from the arguments, before a large checkpoint loads.
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.opset is not None and args.format != "onnx":
        raise ConfigError(f"--opset applies to ONNX only, not to {args.format!r}")
    folder = args.format == "hf"
    check_output(args.out, "--out", folder=folder)
    if args.format == "onnx":
        require_onnx()
    model = load_checkpoint(checkpoint).eval()
    with writing(args.out, "--out", folder=folder):
        report = export_model(
            model,
            args.out,
            args.format,
            batch_size=args.batch_size,
            opset=args.opset,
            check=args.check,
            progress=True,
        )
    print(report.summary())
    if report.passed is False:
        print(
            f"timesformer export: the export differs from the model by {report.max_diff:.2e} "
            f"(more than {report.tolerance:g})",
            file=sys.stderr,
        )
        return 1
    return 0
