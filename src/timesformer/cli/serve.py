"""``timesformer serve``: an HTTP API and a web page for predictions, timelines, attention maps."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from timesformer.cli.common import add_clip_arguments
from timesformer.names import DEFAULT_MODEL

# What the optional extra installs, and what the server cannot start without.
NEEDED = ("fastapi", "uvicorn", "python_multipart")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="an HTTP API and a web page: predictions, window timelines, attention maps",
        description=(
            "Load the model once and serve it over HTTP: GET / is a page to try videos in a "
            "browser (top-5 bars, the window timeline, the attention overlay); POST /v1/predict "
            "answers as `timesformer predict --json` does, POST /v1/explain with the attention "
            "rollout as PNG or GIF; GET /healthz says the model is loaded. Requests that arrive "
            "together are scored in one batch; beyond --queue-size requests in progress the "
            "server answers 503 with Retry-After. Needs the extra: pip install "
            "'timesformer[serve]'. docs/serving.md describes the API and running behind a proxy."
        ),
    )
    p.add_argument(
        "--checkpoint",
        default=DEFAULT_MODEL,
        help="a checkpoint file or Hugging Face folder, a Hub repo id (ORG/NAME[@REVISION]) or "
        f"reference:NAME, as for predict; default: {DEFAULT_MODEL}",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="class names: kinetics400, kinetics600, ssv2, or a file (default: the checkpoint's)",
    )
    net = p.add_argument_group("listening")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    net.add_argument("--port", type=int, default=8000, help="port (8000)")
    net.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help="proxies whose X-Forwarded-For/-Proto headers are trusted, comma-separated, or * "
        "(127.0.0.1)",
    )
    inputs = p.add_argument_group("inputs")
    inputs.add_argument(
        "--max-upload-mb",
        type=float,
        default=200.0,
        help="largest video upload in MiB; larger ones get 413 (200)",
    )
    inputs.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help='let clients name files under DIR as JSON {"path": ...} (repeatable; without it '
        "only uploads are accepted); links and .. leading outside are refused",
    )
    inputs.add_argument(
        "--upload-dir",
        default=None,
        metavar="DIR",
        help="where uploads are kept while in use, deleted after (default: the system's temp "
        "folder)",
    )
    work = p.add_argument_group("running")
    work.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if any)")
    work.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "int8"),
        default="fp32",
        help="as for predict: fp32 (default); bf16 weights; fp16 autocast (GPUs); int8 linear "
        "products (CPU only)",
    )
    work.add_argument(
        "--workers",
        type=int,
        default=2,
        help="videos decoded at the same time, in threads of this process (2); the model runs "
        "in one more thread that batches their clips. For more processes, run more servers "
        "behind the proxy",
    )
    work.add_argument(
        "--batch-window-ms",
        type=float,
        default=10.0,
        metavar="MS",
        help="how long a request waits for others to share its forward pass (10)",
    )
    work.add_argument(
        "--max-batch",
        type=int,
        default=24,
        help="most views (clips x crops) in one forward pass (24); 1 turns batching off",
    )
    work.add_argument(
        "--queue-size",
        type=int,
        default=32,
        help="most requests in progress at once (decoding, waiting or running); more get 503 "
        "with Retry-After (32)",
    )
    add_clip_arguments(p)
    p.set_defaults(func=run)


def _missing_extra() -> str | None:
    """The first package of the extra that is not installed, or None."""
    for name in NEEDED:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def run(args: argparse.Namespace) -> int:
    from timesformer.errors import TimesformerError

    missing = _missing_extra()
    if missing is not None:
        raise TimesformerError(
            f"{missing.replace('_', '-')} is not installed: pip install 'timesformer[serve]'"
        )
    from timesformer.serve.settings import ServeSettings

    settings = ServeSettings(
        checkpoint=args.checkpoint,
        labels=args.labels,
        clips=args.clips,
        crops=args.crops,
        sampling_rate=args.sampling_rate,
        device=args.device,
        precision=args.precision,
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        allow_dirs=tuple(Path(d) for d in args.allow_dir),
        upload_dir=Path(args.upload_dir) if args.upload_dir else None,
        batch_window_ms=args.batch_window_ms,
        max_batch=args.max_batch,
        queue_size=args.queue_size,
        host=args.host,
        port=args.port,
    ).check()  # before the model loads: a bad option fails in a moment

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import uvicorn

    from timesformer.serve.app import create_app
    from timesformer.serve.model import load_model

    app = create_app(load_model(settings), settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # the logging set up above: one format for uvicorn's lines and ours
        access_log=False,  # ours has the duration (timesformer.serve.access)
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=30,
    )
    return 0
