"""The embedded demo: its pair metrics and a miniature end-to-end run."""

from __future__ import annotations

import torch

from timesformer.demo import DemoSettings, direction_by_pair, pair_metrics, run_demo

NAMES = ["right", "left", "down", "up"]


def test_pair_metrics_separate_finding_the_pair_from_the_direction():
    labels = torch.tensor([0, 1, 2, 3])
    # Right pair every time, direction always wrong: the pair is found, the order is not.
    swapped = torch.eye(4)[[1, 0, 3, 2]]
    assert pair_metrics(swapped, labels, NAMES) == (1.0, 0.0)
    assert pair_metrics(torch.eye(4), labels, NAMES) == (1.0, 1.0)
    # Always "down": the pair is found for down and up only; the direction compares each
    # video's own two pair scores, whatever the prediction.
    other = torch.tensor([[0.2, 0.1, 5.0, 0.0]] * 4)
    assert pair_metrics(other, labels, NAMES) == (0.5, 0.5)


def test_direction_by_pair_reads_each_pair_apart():
    labels = torch.tensor([0, 1, 2, 3])
    # right/left told apart, down/up swapped.
    scores = torch.eye(4)[[0, 1, 3, 2]]
    assert direction_by_pair(scores, labels, NAMES) == {"right": 1.0, "down": 0.0}
    assert direction_by_pair(scores[:2], labels[:2], NAMES) == {"right": 1.0}


def test_miniature_demo_writes_its_report(tmp_path):
    settings = DemoSettings(out=tmp_path, schemes=("space", "divided"), train_per_class=6,
                            val_per_class=2, epochs=1, progress=False,
                            overrides=("optim.lr=0.0005",))  # fmt: skip
    lines: list[str] = []
    results = run_demo(settings, log=lines.append)
    assert [r.attention for r in results] == ["space", "divided"]
    assert results[1].params > results[0].params
    assert all(0.0 <= r.video_top1 <= 1.0 and 0.0 <= r.direction <= 1.0 for r in results)
    assert all(set(r.by_pair) == {"right", "down", "approaching"} for r in results)
    report = (tmp_path / "results.md").read_text()
    assert "space" in report and "divided" in report
    assert (tmp_path / "summary.png").stat().st_size > 1000
    assert (tmp_path / "divided" / "confusion.png").is_file()
    # The extra overrides reach every scheme's run, after the demo's own.
    for scheme in ("space", "divided"):
        config = (tmp_path / scheme / "config.yaml").read_text()
        assert "lr: 0.0005" in config and "epochs: 1" in config
    # A second demo in the same folder replaces its runs instead of keeping them beside.
    run_demo(DemoSettings(out=tmp_path, schemes=("space",), train_per_class=6, val_per_class=2,
                          epochs=1, progress=False), log=lines.append)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("space")) == ["space"]


def test_table_4_and_seeds_train_each_row_once_per_seed_on_one_data_set(tmp_path):
    """Table 4 rows are divided attention with each position embedding; every seed trains on
    the same set, and the summary gives each row's mean and range over the seeds."""
    from timesformer.demo import summary

    settings = DemoSettings(out=tmp_path, table=4, pos_embeds=("space_time", "space"),
                            seeds=(0, 1), train_per_class=4, val_per_class=2, epochs=1,
                            progress=False)  # fmt: skip
    results = run_demo(settings, log=lambda *_: None)
    assert [(r.row, r.seed) for r in results] == [
        ("space_time", 0), ("space_time", 1), ("space", 0), ("space", 1)
    ]  # fmt: skip
    assert all(r.attention == "divided" for r in results)
    # The time embedding's parameters: D per frame stored (4 frames of width 96).
    assert results[0].params - results[2].params == 4 * 96
    config = (tmp_path / "pos_embed-space-seed1" / "config.yaml").read_text()
    assert "pos_embed: space" in config and "seed: 1" in config
    lines = summary(results, table=4)
    assert lines[1].startswith("space_time") and "78.0 / 59.5" in lines[1]
    assert lines[2].startswith("space") and "77.8 / 52.5" in lines[2]
    assert "Over seeds [0, 1]" in (tmp_path / "results.md").read_text()


def test_demo_command_refuses_bad_seeds_rows_and_overrides(capsys):
    """One line naming the option, exit status 2, before any data is written."""
    from timesformer.cli import main

    for argv, message in [
        (["--seeds", "0,x"], "--seeds takes comma-separated integers"),
        (["--seeds", "0", "--seed", "1"], "give --seeds or --seed, not both"),
        (["--table", "4", "--pos-embeds", "time"], "--pos-embeds: choose from"),
        (["--schemes", "spatial"], "unknown scheme(s) spatial"),
        (["--set", "optim.epochs"], "--set takes KEY=VALUE"),
        (["--table", "8", "--event-seconds", "2"], "--event-seconds takes LO,HI"),
        (["--table", "8", "--event-seconds", "3,2"], "need 0 < LO <= HI"),
        (["--table", "8", "--schemes", "divided,time"], "unknown scheme(s) time"),
        (["--event-seconds", "1,2"], "--event-seconds is for --table 8"),
    ]:
        assert main(["demo", "--out", "/nonexistent/never-written", *argv]) == 2
        assert message in capsys.readouterr().err


def test_table8_command_passes_its_rows_and_event_length(monkeypatch, tmp_path):
    import timesformer.demo_long as demo_long
    from timesformer.cli import main

    seen = []
    monkeypatch.setattr(demo_long, "run_long_demo", lambda s: seen.append(s) or [])
    monkeypatch.setattr(demo_long, "format_table8", lambda rows: "")
    argv = ["demo", "--table", "8", "--out", str(tmp_path), "--seeds", "0,2"]
    assert main([*argv, "--schemes", "divided", "--event-seconds", "2,2.5"]) == 0
    assert [(s.seed, s.attentions, s.event_seconds) for s in seen] == [
        (0, ("divided",), (2.0, 2.5)),
        (2, ("divided",), (2.0, 2.5)),
    ]
    assert seen[1].out == tmp_path / "seed-2"
    seen.clear()
    assert main(argv[:5]) == 0
    assert seen[0].attentions == ("divided", "joint") and seen[0].event_seconds == (1.0, 1.5)
