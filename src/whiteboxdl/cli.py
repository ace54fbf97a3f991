"""The ``whiteboxdl`` command line.

Each command group lives next to its feature in a module with ``register(subparsers)``; commands
set ``func(args) -> int`` as their handler. Heavy imports happen inside handlers, so ``--help`` is
fast. Before a command runs, the C allocator is told to keep freed memory for reuse
(:func:`whiteboxdl.runtime.keep_freed_memory`; ``WHITEBOXDL_KEEP_FREED_MEMORY=0`` turns it off).

Example
-------
$ whiteboxdl data fetch mnist
$ whiteboxdl demo --quick
"""

from __future__ import annotations

import argparse
import importlib
import sys

from whiteboxdl import __version__
from whiteboxdl.runtime import keep_freed_memory

#: Modules that contribute sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "whiteboxdl.demo",
    "whiteboxdl.data.cli",
    "whiteboxdl.models.cli",
    "whiteboxdl.semantic.cli",
    "whiteboxdl.stability.cli",
    "whiteboxdl.quality.cli",
    "whiteboxdl.robustness.cli",
    "whiteboxdl.pullbacks.cli",
    "whiteboxdl.app.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whiteboxdl",
        description="White-box deep learning: excitation pullbacks and semantic-feature networks.",
    )
    parser.add_argument("--version", action="version", version=f"whiteboxdl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"whiteboxdl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nwhiteboxdl: interrupted; finished work is kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
