"""``timesformer models``: what a model or checkpoint can be named by."""

from __future__ import annotations

import argparse
import json
from typing import Any

from timesformer.names import LICENCE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the model variants and the pretrained models that can be named",
        description=(
            "List what can be named: the built-in variants (architectures with random weights, "
            "for `info` and `model.name`), the official Hugging Face Hub repos and the authors' "
            "model zoo (for --checkpoint, model.init and load_checkpoint), each with its "
            "training data, clip (frames x sampling rate, crop size), published top-1 accuracy "
            "and licence, and whether it is already downloaded. Named models are downloaded on "
            f"first use: Hub repos into the Hugging Face cache (HF_HOME), the zoo into "
            f"$TIMESFORMER_CACHE/reference (default ~/.cache/timesformer/reference). The "
            f"published weights are under {LICENCE} (non-commercial use)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print a JSON array of objects instead")
    p.set_defaults(func=run)


def _hub_cached(repo: str) -> bool:
    """Whether the Hugging Face cache holds the repo's config (looked up without network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.json"), str)


def rows() -> list[dict[str, Any]]:
    """One object per nameable model: variants, Hub repos, then the reference zoo."""
    from timesformer.checkpoints import zoo
    from timesformer.variants import VARIANTS

    out: list[dict[str, Any]] = []
    for name, v in VARIANTS.items():
        cfg = v.config
        out.append(
            {
                "kind": "variant",
                "name": name,
                "dataset": None,
                "num_frames": cfg.num_frames,
                "sampling_rate": v.sampling_rate,
                "img_size": cfg.img_size,
                "clip": f"{cfg.num_frames}x{v.sampling_rate}, {cfg.img_size}px",
                "top1": None,
                "licence": None,
                "description": v.description + " (architecture only: random weights)",
                "cached": None,
            }
        )
    cache = zoo.cache_dir()
    for kind, table in (("hub", zoo.HUB), ("reference", zoo.REFERENCE)):
        for entry in table.values():
            row = {"kind": kind, **entry.to_dict()}
            if kind == "reference":
                row["name"] = f"{zoo.PREFIX}{entry.name}"
                row["cached"] = (cache / f"{entry.name}.pyth").is_file()
            else:
                row["cached"] = _hub_cached(entry.name)
            row["default"] = entry.name == zoo.DEFAULT_MODEL
            out.append(row)
    # The same keys in every object, so that scripts need no per-kind cases.
    keys = list(dict.fromkeys(k for row in out for k in row))
    return [{k: row.get(k) for k in keys} for row in out]


def _table(items: list[dict[str, Any]]) -> str:
    header = ("name", "data", "clip", "top-1", "licence", "cached")
    lines = [
        (
            r["name"] + (" (default)" if r.get("default") else ""),
            r["dataset"] or "-",
            r["clip"],
            f"{r['top1']:.1f}" if r["top1"] is not None else "-",
            r["licence"] or "-",
            "-" if r["cached"] is None else ("yes" if r["cached"] else "no"),
        )
        for r in items
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([fmt(header), *(fmt(line) for line in lines)])


_TITLES = {
    "variant": "Variants (architectures, random weights: `info NAME`, model.name)",
    "hub": "Hugging Face Hub repos (--checkpoint ORG/NAME[@REVISION])",
    "reference": "The authors' model zoo (--checkpoint reference:NAME)",
}


def run(args: argparse.Namespace) -> int:
    from timesformer.checkpoints import zoo

    items = rows()
    if args.json:
        print(json.dumps(items, indent=1))
        return 0
    blocks = []
    for kind, title in _TITLES.items():
        blocks.append(f"{title}\n{_table([r for r in items if r['kind'] == kind])}")
    blocks.append(
        f"top-1: the authors' published accuracy (%) on the data set's validation split; "
        f"SSv2 clips spread their frames over the whole video.\nDownloads: Hub repos go to "
        f"the Hugging Face cache, the zoo to {zoo.cache_dir()}."
    )
    print("\n\n".join(blocks))
    return 0
