"""The ``whiteboxdl`` command line.

Each command group lives next to its feature in a module with ``register(subparsers)``; commands
set ``func(args) -> int`` as their handler. Heavy imports happen inside handlers, so ``--help`` is
fast. Before a command runs, the C allocator is told to keep freed memory for reuse
(:func:`whiteboxdl.runtime.keep_freed_memory`; ``WHITEBOXDL_KEEP_FREED_MEMORY=0`` turns it off).

:func:`main` is the one error boundary. Exit codes: 0 success; 2 an expected failure — a bad
argument or input, a missing, damaged or unwritable file, a missing optional extra, an unreachable
Ray cluster — printed as one line naming the problem and the fix (also argparse's usage errors);
1 an unexpected error, which is a bug: it says so and where to report it (``--debug`` shows the
traceback of either kind); 130 interrupted (finished work is kept). ``demo`` also exits 1 when
one of its stages failed.

Example
-------
$ whiteboxdl data fetch mnist
$ whiteboxdl demo --quick
"""

from __future__ import annotations

import argparse
import importlib
import linecache
import sys
import traceback
from pathlib import Path

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


#: Where unexpected errors (bugs) should be reported.
REPORT_BUGS = "the whiteboxdl issue tracker"
#: Exit code of an expected failure (bad input, a missing/damaged/unwritable file), as argparse's.
EXIT_ERROR = 2
#: Exit code of an unexpected exception (a bug).
EXIT_BUG = 1
#: Hints appended to OS errors the system raised on a path.
_OS_HINTS = {
    PermissionError: "choose a location you can write to, or fix its permissions",
    FileExistsError: "a file of that name is in the way; remove it or choose another path",
    NotADirectoryError: "part of that path is a file, not a folder; choose another path",
    IsADirectoryError: "that is a folder where a file is expected; give a file path",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whiteboxdl",
        description="White-box deep learning: excitation pullbacks and semantic-feature networks.",
        epilog="Exit codes: 0 ok, 2 bad input or an unusable/damaged file (one line says what "
               "to fix), 1 an unexpected error (a bug; rerun with --debug for the traceback), "
               "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"whiteboxdl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of any error (put it before the command)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _raised_by_whiteboxdl(exc: BaseException) -> bool:
    """Whether ``exc`` comes from an explicit ``raise`` in whiteboxdl's own code (a validation
    message), rather than from Python or a library deep inside a call (a bug)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    package = str(Path(__file__).parent)
    if not code.co_filename.startswith(package):
        return False
    return linecache.getline(code.co_filename, tb.tb_lineno).lstrip().startswith("raise")


def _expected_message(exc: BaseException) -> str | None:
    """The one-line message of an expected failure, or ``None`` for a bug."""
    if isinstance(exc, OSError):
        if exc.filename is None:  # raised by whiteboxdl with its own message
            return str(exc)
        what = f"{exc.strerror or exc}: {exc.filename}"
        hint = next((h for kind, h in _OS_HINTS.items() if isinstance(exc, kind)),
                    "check the path, its permissions and the free disk space")
        return f"{what} ({hint})"
    if isinstance(exc, ValueError) or (isinstance(exc, (TypeError, ImportError))
                                       and _raised_by_whiteboxdl(exc)):
        return str(exc)  # an ImportError of ours names the optional extra to install
    return None


def _report(exc: Exception, debug: bool) -> int:
    """Print ``exc`` the way :func:`main` promises; return the exit code."""
    if debug:
        traceback.print_exception(exc)
    message = _expected_message(exc)
    if message is not None:
        print(f"whiteboxdl: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_ERROR
    print(f"whiteboxdl: internal error: {type(exc).__name__}: {exc}\n"
          f"This is a bug in whiteboxdl, not in how you called it; please report it at "
          f"{REPORT_BUGS} with the command you ran"
          + ("" if debug else " and the output of the same command with `whiteboxdl --debug ...`")
          + ".", file=sys.stderr)
    return EXIT_BUG


def main(argv: list[str] | None = None) -> int:
    """Run one ``whiteboxdl`` command; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\nwhiteboxdl: interrupted; finished work is kept, re-run to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # the one error boundary of the command line
        return _report(exc, args.debug)


if __name__ == "__main__":
    sys.exit(main())
