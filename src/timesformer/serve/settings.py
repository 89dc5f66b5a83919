"""``ServeSettings``: what ``timesformer serve`` is told, checked before anything loads.

Only the standard library is imported here, so that the command line builds and checks the
settings (and prints ``--help``) without loading torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from timesformer.errors import ConfigError
from timesformer.names import DEFAULT_MODEL

__all__ = ["PRECISIONS", "ServeSettings"]

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class ServeSettings:
    """The server's settings; ``check`` refuses impossible values with a ``ConfigError``.

    Attributes:
        checkpoint: anything ``load_checkpoint`` reads (a file, a folder, a Hub id, reference:NAME).
        labels: class names (a shipped set or a file), default the checkpoint's own.
        clips, crops, sampling_rate: the test protocol's overrides, as ``predict`` takes them.
        device: torch device (None: cuda when there is one).
        precision: fp32, bf16, fp16 or int8 (see ``Predictor``).
        workers: requests decoded at the same time (threads); the model runs in one more.
        max_upload_mb: the largest upload accepted, in MiB.
        allow_dirs: folders whose files a JSON ``{"path": ...}`` may name (none: paths refused).
        upload_dir: where uploads are written while they are used (None: the system's temp dir).
        batch_window_ms: how long the first request of a batch waits for others to join it.
        max_batch: most views (clips x crops) in one forward pass; 1 turns batching off.
        queue_size: most requests admitted at once (decoding, queued or running); more get 503.
        host, port: where to listen.
    """

    checkpoint: str = DEFAULT_MODEL
    labels: str | None = None
    clips: int | None = None
    crops: int | None = None
    sampling_rate: int | None = None
    device: str | None = None
    precision: str = "fp32"
    workers: int = 2
    max_upload_mb: float = 200.0
    allow_dirs: tuple[Path, ...] = field(default_factory=tuple)
    upload_dir: Path | None = None
    batch_window_ms: float = 10.0
    max_batch: int = 24
    queue_size: int = 32
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    def check(self) -> ServeSettings:
        """Refuse impossible values (one ``ConfigError`` naming the option); returns self."""
        at_least_one = {
            "--workers": self.workers,
            "--max-batch": self.max_batch,
            "--queue-size": self.queue_size,
            "--clips": self.clips,
            "--sampling-rate": self.sampling_rate,
        }
        for option, value in at_least_one.items():
            if value is not None and value < 1:
                raise ConfigError(f"{option} must be at least 1, got {value}")
        if self.crops not in (None, 1, 3):
            raise ConfigError(f"--crops must be 1 or 3, got {self.crops}")
        if not self.max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb must be positive, got {self.max_upload_mb}")
        if not self.batch_window_ms >= 0:
            raise ConfigError(f"--batch-window-ms must be 0 or more, got {self.batch_window_ms}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        for folder in self.allow_dirs:
            if not Path(folder).is_dir():
                raise ConfigError(f"--allow-dir {folder}: is not a folder")
        if self.upload_dir is not None:
            up = Path(self.upload_dir)
            if not up.is_dir():
                raise ConfigError(f"--upload-dir {up}: is not a folder")
            if not os.access(up, os.W_OK | os.X_OK):
                raise ConfigError(f"--upload-dir {up}: is not writable")
        return self
