"""Checkpoint names: a local path, a Hugging Face Hub repo id, or the authors' model zoo.

``resolve_checkpoint`` is called by ``read_checkpoint``, which every loader goes through
(``load_checkpoint``, ``Predictor.from_checkpoint``, ``model.init``, every ``--checkpoint``):

- a local file or folder that exists always wins, even when it is named like a repo id;
- ``reference:NAME`` is one of the authors' ``.pyth`` files (``zoo.fetch_reference``);
- ``org/name`` or ``org/name@revision`` is a Hub repo, fetched with ``huggingface_hub`` so its
  cache, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` work as usual;
- anything else is returned as a path, for the reader's own "no such file" error.
"""

from __future__ import annotations

import re
from pathlib import Path

from timesformer.checkpoints import zoo
from timesformer.checkpoints.sniff import CHECKPOINT_SUFFIXES
from timesformer.errors import CheckpointError

# The Hub's repo id syntax (letters, digits, - _ .), one slash, then an optional @revision.
_REPO_ID = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@(?P<rev>[\w./-]+))?$"
)
_CONFIG_FILES = ["config.json", "preprocessor_config.json"]
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def hub_id(name: str) -> tuple[str, str | None] | None:
    """(repo id, revision) if ``name`` is written like a Hub repo id, else None.

    A name that ends like a checkpoint file (``runs/best.safetensors``) is a path, never an id,
    so that a mistyped path gets the reader's "no such file" error rather than a Hub lookup.
    """
    match = _REPO_ID.match(name)
    if match is None or match["repo"].lower().endswith(CHECKPOINT_SUFFIXES):
        return None
    if ".." in match["repo"] or match["repo"].startswith("."):
        return None
    return match["repo"], match["rev"]


def resolve_checkpoint(name: str | Path, progress: bool = True) -> Path:
    """The local path of checkpoint ``name``, downloading a named model on first use."""
    path = Path(name)
    if path.exists():
        return path
    text = str(name)
    if text.startswith(zoo.PREFIX):
        return zoo.fetch_reference(text, progress=progress)
    found = hub_id(text)
    if found is None:
        return path
    return _snapshot(text, *found)


def _snapshot(name: str, repo: str, revision: str | None) -> Path:
    """The snapshot folder of a Hub repo: configs, then safetensors weights, else .bin ones
    (the official repos hold only ``pytorch_model.bin``; fetching both would double the
    download when a repo has both)."""
    folder = _download(
        name, repo, revision, [*_CONFIG_FILES, "*.safetensors", "*.safetensors.index.json"]
    )
    if any((folder / f).is_file() for f in _WEIGHTS):
        return folder
    return _download(name, repo, revision, [*_CONFIG_FILES, "*.bin", "*.bin.index.json"])


def _download(name: str, repo: str, revision: str | None, patterns: list[str]) -> Path:
    """``snapshot_download``, its errors made into one ``CheckpointError`` line naming ``name``."""
    from huggingface_hub import snapshot_download

    # huggingface_hub.utils exports these in every release since 0.20 (``errors`` only later).
    from huggingface_hub.utils import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    local = "or pass a local path (a file, or a folder with config.json and weights)"
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))
    except GatedRepoError:
        why = (
            "is gated: accept its terms on huggingface.co and log in (HF_TOKEN or `hf auth login`)"
        )
    except RevisionNotFoundError:
        why = f"has no revision {revision!r} on the Hugging Face Hub"
    except RepositoryNotFoundError:
        why = (
            "is not a repo on the Hugging Face Hub, or it is private: check the id, or set "
            "HF_TOKEN (or run `hf auth login`) for a private repo"
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        why = (
            "is not in the Hugging Face cache and the Hub cannot be reached (no network, or "
            "HF_HUB_OFFLINE=1): connect once to download it"
        )
    except HFValidationError as err:
        why = f"is not a valid Hugging Face repo id ({err})"
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "error"
        hint = "set HF_TOKEN (or run `hf auth login`)" if status in (401, 403) else "try again"
        why = f"could not be downloaded from the Hugging Face Hub (HTTP {status}): {hint}"
    except OSError as err:  # disk full, unwritable cache folder
        why = f"could not be stored in the Hugging Face cache ({err.strerror or err})"
    except Exception as err:
        # A connection that breaks mid-file surfaces as the HTTP client's own error (httpx or
        # requests, by huggingface_hub version); anything else is a bug and keeps its traceback.
        if not type(err).__module__.startswith(("httpx", "requests", "urllib3", "httpcore")):
            raise
        why = f"could not be downloaded ({type(err).__name__}: {err}): check the network"
    raise CheckpointError(f"{name}: {why}; {local}")
