"""``timesformer models``: the table and the JSON of what can be named."""

from __future__ import annotations

import json

from timesformer.checkpoints import zoo
from timesformer.cli import main


def _models(capsys, monkeypatch, tmp_path, *argv: str) -> str:
    from huggingface_hub import constants

    # An empty Hugging Face cache and zoo cache, except what a test puts there.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TIMESFORMER_CACHE", str(tmp_path / "cache"))
    assert main(["models", *argv]) == 0
    return capsys.readouterr().out


def test_json_lists_variants_hub_repos_and_the_zoo(capsys, monkeypatch, tmp_path):
    folder = tmp_path / "cache" / "reference"
    folder.mkdir(parents=True)
    (folder / "TimeSformer_divST_96x4_224_K600.pyth").write_bytes(b"cached")
    rows = json.loads(_models(capsys, monkeypatch, tmp_path, "--json"))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("variant") >= 5 and kinds.count("hub") == 6
    assert kinds.count("reference") == 13
    assert all(set(r) == set(rows[0]) for r in rows)  # the same keys in every object
    by_name = {r["name"]: r for r in rows}
    k400 = by_name["reference:TimeSformer_divST_8x32_224_K400"]
    assert (k400["top1"], k400["num_frames"], k400["sampling_rate"], k400["img_size"]) == (
        77.9,
        8,
        32,
        224,
    )
    assert k400["licence"] == "CC BY-NC 4.0" and k400["dataset"] == "Kinetics-400"
    assert k400["url"].startswith("https://www.dropbox.com/s/g5t24we9gl5yk88/")
    assert by_name["reference:TimeSformer_divST_96x4_224_K600"]["cached"] is True
    assert k400["cached"] is False
    ssv2 = by_name["facebook/timesformer-hr-finetuned-ssv2"]
    assert ssv2["top1"] == 61.8 and ssv2["sampling_rate"] is None and ssv2["img_size"] == 448
    assert [r["name"] for r in rows if r["default"]] == [zoo.DEFAULT_MODEL]
    assert by_name["timesformer_base"]["top1"] is None  # an architecture: no weights


def test_table_by_default(capsys, monkeypatch, tmp_path):
    out = _models(capsys, monkeypatch, tmp_path)
    assert f"{zoo.DEFAULT_MODEL} (default)" in out
    line = next(x for x in out.splitlines() if x.startswith("reference:TimeSformer_divST_8_224"))
    assert "Something-Something-v2" in line and "59.1" in line and "CC BY-NC 4.0" in line
    assert str(tmp_path / "cache" / "reference") in out
