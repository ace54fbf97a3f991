"""``whiteboxdl stability run|report``: train with activation-pattern tracking, then report."""

from __future__ import annotations

import argparse

from whiteboxdl.paths import check_output_path


def register(subparsers: argparse._SubParsersAction) -> None:
    stab = subparsers.add_parser("stability", help="measure activation-pattern stability in training")
    sub = stab.add_subparsers(dest="stability_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="train a model while recording gate patterns, then report")
    run.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    run.add_argument("--model", choices=("cnn", "semantic"), default="cnn",
                     help="the project's CNN or the semantic network (MNIST 3 vs 5)")
    run.add_argument("--every", type=int, default=50, help="snapshot interval in steps (50)")
    run.add_argument("--probe", type=int, default=512, help="fixed probe images (512)")
    run.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    run.add_argument("--train-limit", type=int, default=None,
                     help="train on this many random training images (quick runs)")
    run.add_argument("--test-limit", type=int, default=None,
                     help="evaluate each epoch on this many random test images")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", required=True, help="run directory, e.g. runs/mnist-cnn")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    run.add_argument("--no-report", action="store_true", help="only train and record")
    _analysis_options(run)
    run.set_defaults(func=_run)
    rep = sub.add_parser("report", help="measures, figures and report.html of a recorded run")
    rep.add_argument("run_dir")
    rep.add_argument("--recompute", action="store_true", help="ignore a cached stability.json")
    _analysis_options(rep)
    rep.set_defaults(func=_report)


def _analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--align-probe", type=int, default=256,
                        help="probe images used for the gradient alignments (256)")
    parser.add_argument("--align-snapshots", type=int, default=12,
                        help="snapshots/checkpoints compared in the alignments (12)")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from whiteboxdl.runfiles import read_json
    from whiteboxdl.stability.report import interpret, summary_markdown, write_report

    check_output_path(args.run_dir, "RUN_DIR")
    if args.align_probe < 1 or args.align_snapshots < 2:
        raise ValueError("--align-probe must be >= 1 and --align-snapshots >= 2")
    path = write_report(args.run_dir, recompute=getattr(args, "recompute", True),
                        n_align=args.align_probe, max_snapshots=args.align_snapshots)
    results = read_json(Path(args.run_dir) / "stability.json")
    print(summary_markdown(results))
    for text, contradicts in interpret(results):
        print(("[against] " if contradicts else "- ") + text)
    print(f"report: {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from whiteboxdl.stability.experiment import run_tracking

    check_output_path(args.out)
    run_dir = run_tracking(args.dataset, args.model, every=args.every, probe=args.probe,
                           epochs=args.epochs, out=args.out, seed=args.seed,
                           train_limit=args.train_limit, test_limit=args.test_limit,
                           overwrite=args.overwrite)
    print(f"recorded: {run_dir}")
    if args.no_report:
        return 0
    args.run_dir, args.recompute = str(run_dir), True
    return _report(args)
