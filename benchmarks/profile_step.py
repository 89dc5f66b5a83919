"""Where the time goes: the operator profile of ours and the peer, side by side.

One bf16 training step (forward + backward under autocast) or one inference forward (bf16
weights, the peer under bf16 autocast; or both in fp32 with ``--dtype fp32``) of
TimeSformer-Base (divided or joint, 8 x 224, batch 1 unless ``--batch``), ours and transformers'
model with the same weights, profiled with ``torch.profiler`` after a warm-up. Prints the top
operators by self time (GPU kernel time with ``--device cuda``).

    .venv/bin/python benchmarks/profile_step.py --what train
    .venv/bin/python benchmarks/profile_step.py --what infer --attention joint
    .venv/bin/python benchmarks/profile_step.py --what infer --dtype fp32 --no-peer
    python3 benchmarks/profile_step.py --what train --device cuda --batch 32
    python3 benchmarks/profile_step.py --what train --device cuda --batch 32 --compile --no-peer

``--compile`` profiles ours under ``torch.compile`` (the peer stays eager); ``--setting`` picks
the attention layer's CUDA choices by the names of ``bench_variants.py`` (``sdpa``, ...).
"""

from __future__ import annotations

import argparse

import torch
from bench_model import autocast, build_pair, inputs, train_step
from bench_variants import _allow_inductor_cantsplit, _set, _settings
from torch.profiler import ProfilerActivity, profile


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
    args = parser.parse_args()
    device = torch.device(args.device)
    _set(_settings([args.setting])[args.setting])
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
        _allow_inductor_cantsplit()
        fast = torch.compile(ours, options={"freezing": True} if args.what == "infer" else None)
    pairs = [("ours" + (" compiled" if args.compile else ""), ours, lambda: fast(x))]
    if not args.no_peer:
        pairs.append(("peer", peer, lambda: peer(pixel_values=xp).logits))
    for name, model, fn in pairs:
        run(model, fn)
        with profile(activities=activities) as prof:
            run(model, fn)
            if device.type == "cuda":
                torch.cuda.synchronize()
        what = f"{'bf16' if args.what == 'train' else args.dtype} {args.what}"
        print(f"\n{name}, {args.attention}, {what}, batch {args.batch}, {args.setting}")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))


if __name__ == "__main__":
    main()
