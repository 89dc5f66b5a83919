"""Where the time goes: the operator profile of ours and the peer, side by side.

One bf16 training step (forward + backward under autocast) or one inference forward (bf16
weights, the peer under bf16 autocast; or both in fp32 with ``--dtype fp32``) of
TimeSformer-Base (divided or joint, 8 x 224, batch 1 unless ``--batch``), ours and transformers'
model with the same weights, profiled with ``torch.profiler`` after a warm-up. Prints the top
operators by self time (GPU kernel time with ``--device cuda``), and with ``--out`` writes them
to a file under the command that made them.

    .venv/bin/python benchmarks/profile_step.py --what train
    .venv/bin/python benchmarks/profile_step.py --what infer --attention joint
    .venv/bin/python benchmarks/profile_step.py --what infer --dtype fp32 --no-peer
    .venv/bin/python benchmarks/profile_step.py --what train --device cuda --batch 32
    .venv/bin/python benchmarks/profile_step.py --what train --device cuda --batch 32 \\
        --compile --no-peer --rows 30 --out benchmarks/results/profile_train_gpu_compiled.txt

``--compile`` profiles ours under ``torch.compile`` (the peer stays eager); ``--setting`` picks
the attention layer's CUDA choices by the names of ``harness.ATTENTION_SETTINGS`` (``nokernel``,
``sdpa``, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from harness import (
    allow_inductor_cantsplit,
    attention_settings,
    autocast,
    build_pair,
    command,
    inputs,
    machine,
    train_step,
)
from torch.profiler import ProfilerActivity, profile

from timesformer.layers.backend import set_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=("train", "infer"), default="train")
    parser.add_argument("--attention", choices=("divided", "joint"), default="divided")
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="ours under torch.compile")
    parser.add_argument("--setting", default="default", help="attention choices (CUDA)")
    parser.add_argument("--no-peer", action="store_true", help="profile ours only")
    parser.add_argument(
        "--dtype", choices=("bf16", "fp32"), default="bf16", help="inference: bf16 weights or fp32"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    device = torch.device(args.device)
    set_backend(attention_settings([args.setting])[args.setting])
    ours, peer = build_pair(args.attention, 8, 224, device)
    x, xp = inputs(8, 224, device, args.batch)
    label = torch.full((args.batch,), 3, device=device)
    activities = [ProfilerActivity.CPU]
    sort = "self_cpu_time_total"
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
        sort = "self_cuda_time_total"
    if args.what == "train":
        ours.train()
        peer.train()
    elif args.dtype == "bf16":
        ours.to(torch.bfloat16)
        x = x.to(torch.bfloat16)

    def run(model, fn):
        if args.what == "infer":
            peer_autocast = model is peer and args.dtype == "bf16"
            with torch.no_grad(), autocast(device, enabled=peer_autocast):
                fn()
            return
        train_step(model, fn, label, device)()

    fast = ours
    if args.compile:
        allow_inductor_cantsplit()
        fast = torch.compile(ours, options={"freezing": True} if args.what == "infer" else None)
    pairs = [("ours" + (" compiled" if args.compile else ""), ours, lambda: fast(x))]
    if not args.no_peer:
        pairs.append(("peer", peer, lambda: peer(pixel_values=xp).logits))
    cmd = command(
        "profile_step.py",
        f"--what {args.what}",
        f"--attention {args.attention}" if args.attention != "divided" else "",
        f"--device {args.device}" if args.device != "cpu" else "",
        f"--batch {args.batch}" if args.batch != 1 else "",
        f"--dtype {args.dtype}" if args.what == "infer" and args.dtype != "bf16" else "",
        "--compile" if args.compile else "",
        f"--setting {args.setting}" if args.setting != "default" else "",
        "--no-peer" if args.no_peer else "",
        f"--rows {args.rows}" if args.rows != 10 else "",
    )
    text = [f"Command: `{cmd}`", "", f"Machine: {machine(device)}."]
    for name, model, fn in pairs:
        run(model, fn)
        with profile(activities=activities) as prof:
            run(model, fn)
            if device.type == "cuda":
                torch.cuda.synchronize()
        what = f"{'bf16' if args.what == 'train' else args.dtype} {args.what}"
        text += [
            "",
            f"{name}, {args.attention}, {what}, batch {args.batch}, {args.setting}",
            prof.key_averages().table(sort_by=sort, row_limit=args.rows),
        ]
        print("\n".join(text[-2:]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(text) + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
