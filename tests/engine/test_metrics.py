"""The run log: metrics.jsonl always, TensorBoard when it can, and a line saying when it cannot."""

from __future__ import annotations

import json
import logging
import sys
import types

from timesformer.engine.metrics import RunLog


def test_missing_tensorboard_is_said_and_the_jsonl_log_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with caplog.at_level(logging.INFO, logger="timesformer"):
        runlog = RunLog(tmp_path, tensorboard=True)
    assert runlog.tb is None
    assert "tensorboard package is not installed" in caplog.text
    runlog.write({"kind": "train", "loss": 1.5}, step=1)
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"kind": "train", "loss": 1.5}


def test_a_writer_that_fails_is_a_warning_with_its_reason(tmp_path, monkeypatch, caplog):
    def broken(folder):
        raise OSError(f"{folder}: read-only file system")

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = broken
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    with caplog.at_level(logging.WARNING, logger="timesformer"):
        runlog = RunLog(tmp_path, tensorboard=True)
    assert runlog.tb is None
    assert "TensorBoard logging is off" in caplog.text and "read-only file system" in caplog.text
