"""The Table 8 demo (long-term order): a miniature end-to-end run and the table's format."""

from __future__ import annotations

import json
import math

from timesformer.demo_long import (
    PAPER_TABLE8,
    LongDemoSettings,
    LongResult,
    ensure_data,
    format_table8,
    run_long_demo,
)

# 8 s videos of 16 px at 8 fps, 2 classes x 4 training videos: seconds, not minutes.
TINY = dict(
    seconds=8.0,
    fps=8.0,
    size=16,
    event_seconds=(0.25, 0.5),
    min_gap=1.5,
    train_per_class=4,
    val_per_class=2,
    frames=(4, 8),
    joint_frames=(4,),
    cost_steps=1,
    cost_patch_size=8,
    cost_frames=(4,),
    window_frames=4,
    window_rate=2,
    epochs=1,
    progress=False,
    overrides=("data.batch_size=4", "optim.global_batch=4", "data.workers=0"),
)


def _row(name: str, frames: int, top1: float | None, sampling: str = "segment") -> LongResult:
    return LongResult(
        name=name,
        attention="joint" if name == "window" else name,
        frames=frames,
        tokens=frames * 4,
        sampling=sampling,
        clip_s=24.0,
        top1=top1,
        epochs=0 if top1 is None else 10,
        steps=0 if top1 is None else 80,
        train_s=None if top1 is None else 12.0,
        peak_mib=None if top1 is None else 321.0,
        step_s=0.15,
        step_peak_mib=123.0,
    )


def test_format_table8_puts_the_paper_beside_the_rows():
    rows = [_row("divided", 8, 0.6), _row("divided", 32, 0.95), _row("joint", 96, None)]
    rows.append(_row("window", 8, 0.5, "window"))
    table = format_table8(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| model |") and set(lines[1]) <= set("|-: ")
    body = [line for line in lines[2:] if line.startswith("|")]
    assert len(body) == len(rows)
    assert all(line.count("|") == lines[0].count("|") for line in body)
    # The paper's figure stands in the divided rows at its frame counts, not elsewhere.
    assert f"| {PAPER_TABLE8[8]} |" in body[0] and "| 60.0 |" in body[0]
    assert f"| {PAPER_TABLE8[32]} |" in body[1]
    assert str(PAPER_TABLE8[96]) not in body[2] and "| - |" in body[2]  # joint, not trained
    assert "short windows" in body[3]
    # Paper figures without a row of their own are named below the table.
    assert "64 frames: 62.2" in table and "96 frames: 62.6" in table


def test_miniature_long_demo(tmp_path):
    settings = LongDemoSettings(out=tmp_path, **TINY)
    lines: list[str] = []
    rows = run_long_demo(settings, log=lines.append)
    assert [(r.name, r.frames, r.tokens, r.sampling) for r in rows] == [
        ("divided", 4, 4, "segment"),
        ("divided", 8, 8, "segment"),
        ("joint", 4, 4, "segment"),
        ("joint", 8, 8, "segment"),
        ("window", 4, 4, "window"),
        ("divided", 4, 16, "segment"),  # the cost rows: 8 px patches, 4 tokens a frame
        ("joint", 4, 16, "segment"),
    ]
    for r in rows:
        assert r.seed == 0
        assert math.isfinite(r.step_s) and r.step_s > 0
        assert r.step_peak_mib is None or (math.isfinite(r.step_peak_mib) and r.step_peak_mib >= 0)
    # Joint at 8 frames is not in joint_frames, and the cost rows are timed, not trained.
    for r in (rows[3], *rows[5:]):
        assert r.top1 is None and r.train_s is None and r.steps == 0 and "not trained" in r.note
    for r in (*rows[:3], rows[4]):
        assert r.top1 is not None and 0.0 <= r.top1 <= 1.0 and r.steps >= 1
        assert math.isfinite(r.train_s) and r.train_s > 0
        assert r.peak_mib is None or (math.isfinite(r.peak_mib) and r.peak_mib >= 0)
    window = rows[4]
    assert window.attention == "joint"  # the scheme that learns the 8-frame whole-video task
    assert window.clip_s == 4 * 2 / 8.0 and 0.0 <= window.extra["one_window_top1"] <= 1.0
    report = (tmp_path / "results.md").read_text()
    assert format_table8(rows) in report and "order" in report
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["frames"] for r in saved] == [4, 8, 4, 8, 4, 4, 4]
    assert any(line.startswith("writing the long-video set") for line in lines)
    # A second look at the same settings reuses the data set; other settings rewrite it.
    again: list[str] = []
    ensure_data(settings, log=again.append)
    assert again == []
    ensure_data(LongDemoSettings(out=tmp_path, **{**TINY, "seed": 1}), log=again.append)
    assert (
        len(again) == 1 and json.loads((tmp_path / "data" / "meta.json").read_text())["seed"] == 1
    )
