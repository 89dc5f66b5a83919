"""The embedded demo: the paper's Table 1 in miniature on the synthetic motion set.

Generates the set (time-reversal pairs of motions), trains a small model with each of the five
attention schemes on the CPU, evaluates each with the reference multi-view protocol, and reports
accuracy overall and *within* each time-reversal pair, where only frame order can tell the two
classes apart: a scheme blind to order is at 50% there.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from timesformer.config import POS_EMBEDS
from timesformer.data.synthetic import make_synthetic, pair_of
from timesformer.engine import Trainer, final_evaluation, load_config, packaged_config
from timesformer.errors import ConfigError
from timesformer.flops import count_macs, count_params
from timesformer.schemes import ATTENTION_SCHEMES

#: The paper's accuracies beside each row (Kinetics-400 / Something-Something-v2 top-1, %):
#: Table 1 (attention schemes) and Table 4 (position embeddings, divided attention).
PAPER_TABLE1 = {
    "space": (76.9, 36.6),
    "joint": (77.4, 58.5),
    "divided": (78.0, 59.5),
    "local_global": (75.9, 56.3),
    "axial": (73.5, 56.2),
}
PAPER_TABLE4 = {"space_time": (78.0, 59.5), "space": (77.8, 52.5), "none": (75.4, 45.8)}
TABLES = (1, 4, 8)


@dataclass
class DemoSettings:
    out: Path = Path("runs/demo")
    #: 1: one row per attention scheme (``schemes``); 4: divided attention with each kind of
    #: position embedding (``pos_embeds``). Table 8 is ``timesformer.demo_long``.
    table: int = 1
    schemes: tuple[str, ...] = ATTENTION_SCHEMES
    pos_embeds: tuple[str, ...] = POS_EMBEDS
    #: Training seeds; every seed trains on the same set (``data_seed``).
    seeds: tuple[int, ...] = (0,)
    data_seed: int = 0
    # Three pairs keep ``make demo`` within 15 minutes on 2 cores; the recipe on all six,
    # rotation included, is benchmarks/recipe_sets.py.
    pairs: tuple[str, ...] = ("horizontal", "vertical", "depth")
    train_per_class: int = 300
    val_per_class: int = 50
    epochs: int = 20
    progress: bool = True
    # Further config overrides ("key=value") for every run, after the demo's own.
    overrides: tuple[str, ...] = ()

    @classmethod
    def quick(cls, **kw) -> DemoSettings:
        return cls(train_per_class=100, val_per_class=25, epochs=6, **kw)

    def rows(self) -> list[tuple[str, list[str]]]:
        """(row label, config overrides) of each row of the table."""
        if self.table == 1:
            return [(a, [f"model.attention={a}"]) for a in self.schemes]
        if self.table == 4:
            return [
                (pe, ["model.attention=divided", f"model.pos_embed={pe}"]) for pe in self.pos_embeds
            ]
        raise ConfigError(f"table {self.table}: the demo has tables 1 and 4 (8: demo_long)")

    def run_dir(self, label: str, seed: int) -> Path:
        name = label if self.table == 1 else f"pos_embed-{label}"
        return self.out / (name if self.seeds == (0,) else f"{name}-seed{seed}")


@dataclass
class SchemeResult:
    attention: str
    params: int
    gmacs: float
    train_s: float
    clip_top1: float
    video_top1: float
    pair_found: float
    direction: float
    #: The row's label: the scheme (Table 1) or the position embedding (Table 4).
    row: str = ""
    seed: int = 0
    #: Direction within each time-reversal pair, by the pair's forward class ("right", ...).
    by_pair: dict[str, float] = field(default_factory=dict)


def pair_metrics(
    scores: torch.Tensor, labels: torch.Tensor, names: list[str]
) -> tuple[float, float]:
    """(share of videos whose prediction is in the right pair, share whose true class scores
    above its time reversal). scores (N, C), labels (N,)."""
    mate = torch.tensor([names.index(pair_of(n)) for n in names])
    pred = scores.argmax(-1)
    found = ((pred == labels) | (pred == mate[labels])).float().mean().item()
    own = scores.gather(1, labels[:, None]).squeeze(1)
    other = scores.gather(1, mate[labels][:, None]).squeeze(1)
    return found, (own > other).float().mean().item()


def direction_by_pair(
    scores: torch.Tensor, labels: torch.Tensor, names: list[str]
) -> dict[str, float]:
    """{forward class of each pair: share of its pair's videos whose true class scores above
    its time reversal}. scores (N, C), labels (N,)."""
    out = {}
    for name in names:
        mate = pair_of(name)
        if names.index(name) > names.index(mate):
            continue
        rows = (labels == names.index(name)) | (labels == names.index(mate))
        if rows.any():
            out[name] = pair_metrics(scores[rows], labels[rows], names)[1]
    return out


def run_demo(s: DemoSettings, log=print) -> list[SchemeResult]:
    """Train and test every row of the table for every seed; one result per run, in order."""
    rows = s.rows()
    data = s.out / "data"
    meta = data / "meta.json"
    want = {
        "seed": s.data_seed,
        "train_per_class": s.train_per_class,
        "val_per_class": s.val_per_class,
        "style": "simple",
        "size": 32,
        "frames": 16,
    }
    have = json.loads(meta.read_text()) if meta.is_file() else {}
    have_pairs = [p["name"] for p in have.get("pairs", [])]
    if any(have.get(k) != v for k, v in want.items()) or have_pairs != list(s.pairs):
        log(f"writing the synthetic motion set to {data} ...")
        make_synthetic(
            data,
            seed=s.data_seed,
            pairs=s.pairs,
            train_per_class=s.train_per_class,
            val_per_class=s.val_per_class,
            frames=16,
            size=32,
            style="simple",
            overwrite=True,
            progress=s.progress,
        )
    results = []
    for label, row_overrides in rows:
        for seed in s.seeds:
            run = s.run_dir(label, seed)
            if (run / "config.yaml").is_file():
                # The demo's own earlier run: a new demo replaces it rather than keeping it
                # beside as run.resume=false would (runs/demo/divided.old-1, ...).
                shutil.rmtree(run)
            log(f"training {label}" + (f", seed {seed}" if len(s.seeds) > 1 else "") + " ...")
            overrides = [*row_overrides, f"optim.epochs={s.epochs}", *s.overrides]
            results.append(train_and_test(data, run, overrides, label, seed, s.progress))
            log(format_row(results[-1], s.table))
    write_report(s, results)
    return results


def train_and_test(
    data: Path,
    run: Path,
    overrides: list[str],
    label: str,
    seed: int = 0,
    progress: bool = True,
) -> SchemeResult:
    """Train the shipped ``synthetic`` recipe on the motion set at ``data`` with ``overrides``
    into ``run``, and test it with the reference multi-view protocol."""
    cfg = load_config(
        [packaged_config("synthetic")],
        [
            f"data.root={data}",
            f"run.out={run}",
            f"run.seed={seed}",
            "run.resume=false",
            f"run.progress={str(progress).lower()}",
            "run.tensorboard=false",
            *overrides,
        ],
    )
    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    train_s = time.perf_counter() - start
    ev = final_evaluation(trainer)
    found, direction = pair_metrics(ev.scores, ev.labels, trainer.class_names)
    return SchemeResult(
        cfg.model.attention,
        count_params(trainer.model),
        count_macs(trainer.model.config) / 1e9,
        train_s,
        ev.clip_top1,
        ev.video_top1,
        found,
        direction,
        row=label,
        seed=seed,
        by_pair=direction_by_pair(ev.scores, ev.labels, trainer.class_names),
    )


def header(table: int = 1) -> str:
    first = "attention" if table == 1 else "pos_embed"
    return (
        f"{first:<13}{'seed':>5}{'params':>10}{'GMACs':>8}{'train s':>9}{'clip top-1':>12}"
        f"{'video top-1':>13}{'pair found':>12}{'direction':>11}"
    )


def format_row(r: SchemeResult, table: int = 1) -> str:
    return (
        f"{r.row or r.attention:<13}{r.seed:>5}{r.params:>10,}{r.gmacs:>8.3f}{r.train_s:>9.0f}"
        f"{100 * r.clip_top1:>11.1f}%{100 * r.video_top1:>12.1f}%"
        f"{100 * r.pair_found:>11.1f}%{100 * r.direction:>10.1f}%"
    )


def summary(results: list[SchemeResult], table: int = 1) -> list[str]:
    """One line per row of the table over its seeds: the mean and the range of video top-1 and
    direction, beside the paper's K400 / SSv2 top-1."""
    paper = PAPER_TABLE1 if table == 1 else PAPER_TABLE4
    first = "attention" if table == 1 else "pos_embed"
    lines = [
        f"{first:<13}{'seeds':>6}{'video top-1: mean (min-max)':>30}"
        f"{'direction: mean (min-max)':>30}{'paper K400 / SSv2':>20}"
    ]
    for row in dict.fromkeys(r.row for r in results):
        runs = [r for r in results if r.row == row]

        def spread(values: list[float]) -> str:
            mean = 100 * sum(values) / len(values)
            return f"{mean:.1f}% ({100 * min(values):.1f}-{100 * max(values):.1f})"

        k400, ssv2 = paper.get(row, (float("nan"), float("nan")))
        lines.append(
            f"{row:<13}{len(runs):>6}{spread([r.video_top1 for r in runs]):>30}"
            f"{spread([r.direction for r in runs]):>30}{f'{k400} / {ssv2}':>20}"
        )
    return lines


def write_report(s: DemoSettings, results: list[SchemeResult]) -> None:
    names_of_classes = (s.out / "data" / "classes.txt").read_text().split()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = {
        1: "Table 1: attention schemes on time-reversal motion pairs",
        4: "Table 4: position embeddings (divided attention)",
    }[s.table]
    runs = "\n".join([header(s.table), *(format_row(r, s.table) for r in results)])
    over_seeds = "\n".join(summary(results, s.table))
    (s.out / "results.md").write_text(
        f"# Demo, {title}\n\n```\n{runs}\n```\n\nOver seeds {list(s.seeds)}:\n\n"
        f"```\n{over_seeds}\n```\n\n"
        "video top-1: 1 clip x 3 crops, logits summed. direction: the true class scores above its "
        "time reversal (chance 50%). pair found: the prediction is in the right pair. paper: the "
        "paper's top-1 on Kinetics-400 and Something-Something-v2 for the same row.\n"
    )
    (s.out / "results.json").write_text(json.dumps([r.__dict__ for r in results], indent=1))
    labels = list(dict.fromkeys(r.row for r in results))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for shift, (metric, name) in enumerate(
        [("video_top1", f"top-1 ({len(names_of_classes)} classes)"), ("direction", "direction")]
    ):
        values = [[100 * getattr(r, metric) for r in results if r.row == row] for row in labels]
        means = [sum(v) / len(v) for v in values]
        low = [m - min(v) for m, v in zip(means, values, strict=True)]
        high = [max(v) - m for m, v in zip(means, values, strict=True)]
        x = [i - 0.2 + 0.4 * shift for i in range(len(labels))]
        ax.bar(x, means, 0.4, yerr=[low, high], capsize=3, label=name)
    ax.axhline(50, color="gray", ls="--", lw=1, label="chance within a pair")
    ax.axhline(100 / len(names_of_classes), color="gray", ls=":", lw=1, label="chance (top-1)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(
        "accuracy (%)" + (f", seeds {min(s.seeds)}-{max(s.seeds)}" if len(s.seeds) > 1 else "")
    )
    ax.set_title(title)
    # Below the axes: bars at 100% would sit under a legend inside them.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, ncol=4, frameon=False)
    ax.set_ylim(0, 105)
    fig.tight_layout()
    fig.savefig(s.out / "summary.png", dpi=110)
    plt.close(fig)
