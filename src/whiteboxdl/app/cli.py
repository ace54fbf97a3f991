"""``whiteboxdl app``: start the interactive explorer in the browser (loopback by default).

Example
-------
$ whiteboxdl app                      # http://127.0.0.1:7860
$ whiteboxdl app --port 8000 --random-weights
$ whiteboxdl app --semantic-digits 0 1 2 3 4 5 6 7 8 9   # the ten-digit white-box network
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    app = subparsers.add_parser("app", help="open the interactive explorer (Gradio) in the browser")
    app.add_argument("--host", default="127.0.0.1",
                     help="interface to bind (default 127.0.0.1: this machine only; "
                          "0.0.0.0 exposes the app to your network)")
    app.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    app.add_argument("--random-weights", action="store_true",
                     help="offer the ImageNet models with random weights when no weight file is "
                          "present (to try the interface or time it; predictions are meaningless)")
    app.add_argument("--semantic-digits", type=int, nargs="+", default=[3, 5], metavar="D",
                     help="digits of the white-box tab's semantic network (default 3 5; "
                          "0 1 2 3 4 5 6 7 8 9: the ten-digit model, trained on first use, "
                          "about 8 CPU minutes)")
    app.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    digits = tuple(args.semantic_digits)
    if len(digits) < 2 or len(set(digits)) != len(digits) or not all(0 <= d <= 9 for d in digits):
        raise ValueError(f"--semantic-digits must be 2 to 10 distinct digits in 0..9, got "
                         f"{list(digits)}")
    from whiteboxdl.app.models import ModelRegistry
    from whiteboxdl.app.ui import launch

    print(f"whiteboxdl app: http://{args.host}:{args.port} (Ctrl+C to stop)")
    launch(args.host, args.port, ModelRegistry(random_weights=args.random_weights,
                                               semantic_digits=digits))
    return 0
