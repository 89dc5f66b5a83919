"""The ``timesformer`` command line.

Each sub-command lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``.
A ``TimesformerError`` becomes one line on stderr and exit status 2, never a traceback.
At module level they import only the standard library and light modules such as
``timesformer.names``, and the library inside ``run``, so that ``--help`` never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from timesformer.errors import TimesformerError

# Sub-command modules, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = (
    "info",
    "models",
    "probe",
    "data",
    "train",
    "eval",
    "demo",
    "predict",
    "extract",
    "explain",
    "export",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timesformer",
        description=(
            "TimeSformer video transformers: models, checkpoints, data, training, inference."
        ),
    )
    from timesformer import __version__

    parser.add_argument("--version", action="version", version=f"timesformer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"timesformer.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TimesformerError as err:
        print(f"timesformer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"timesformer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
