"""``whiteboxdl robustness``: evaluate a model (and a baseline) under attack and write a report.

Example
-------
$ whiteboxdl robustness evaluate semantic-3-5 --attacks standard --n 1902 --eps 0.3 \\
      --out runs/semantic/robustness --baseline cnn-3-5
$ whiteboxdl robustness attacks          # the registered attack names
$ whiteboxdl robustness evaluate semantic-3-5 --attacks standard --ray auto   # on a Ray cluster
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import sys
import time
from pathlib import Path

from whiteboxdl.cluster.cli import add_ray_arguments, ray_options
from whiteboxdl.paths import check_output_path

KEYWORDS = ("semantic-3-5", "cnn-3-5")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("robustness", help="adversarial robustness evaluation")
    sub = parser.add_subparsers(dest="robustness_command", metavar="SUBCOMMAND")
    ev = sub.add_parser("evaluate", help="attack a model (AutoAttack and friends), write a report")
    ev.add_argument("checkpoint", help="a whiteboxdl model file, or semantic-3-5 / cnn-3-5 for "
                                       "the cached default models (semantic-D-D-..., cnn-D-D-...)")
    ev.add_argument("--attacks", default="standard",
                    help="comma-separated attack names (default: standard = AutoAttack)")
    ev.add_argument("--n", type=int, default=1902, help="first N test images (default 1902)")
    ev.add_argument("--eps", type=float, default=0.3)
    ev.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
    ev.add_argument("--out", default="runs/robustness",
                    help="output folder: resumable, and a later run with more --n, more attacks "
                         "or another --masking-n reuses every finished batch")
    ev.add_argument("--baseline", help="a second model evaluated the same way, side by side")
    ev.add_argument("--digits", default="3,5",
                    help="classes of a model file, as MNIST digits (default 3,5)")
    ev.add_argument("--batch-size", type=int, default=200)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--n-queries", type=int, default=5000, help="Square queries (default 5000)")
    ev.add_argument("--no-masking-check", action="store_true",
                    help="do not add Square alone (and APGD-CE) for the gradient-masking check")
    ev.add_argument("--masking-n", type=int,
                    help="run Square alone for the masking check on the first N images only "
                         "(default: all --n images)")
    ev.add_argument("--boundary-n", type=int, default=4,
                    help="images for minimal Boundary examples (0: skip)")
    ev.add_argument("--boundary-iter", type=int, default=1000,
                    help="Boundary attack iterations (>= 1; default 1000)")
    ev.add_argument("--no-progress", action="store_true")
    add_ray_arguments(ev, gpus="1 when the cluster has GPUs (the task attacks on it), else 0")
    ev.set_defaults(func=_evaluate)
    ls = sub.add_parser("attacks", help="list the registered attacks")
    ls.set_defaults(func=_list)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _list(args: argparse.Namespace) -> int:
    from whiteboxdl.robustness.attacks import ATTACKS

    for info in ATTACKS.values():
        options = ", ".join(info.options()) or "-"
        print(f"{info.name:10s} {info.access:22s} {info.description} [options: {options}]")
    return 0


def parse_digits(text: str) -> tuple[int, ...]:
    """``"3,5"`` -> ``(3, 5)``; ``ValueError`` naming the bad text."""
    try:
        digits = tuple(int(d) for d in re.split(r"[,\s-]+", text.strip()) if d)
    except ValueError:
        raise ValueError(f"--digits must be comma-separated digits like 3,5, got {text!r}") from None
    if len(digits) < 2 or len(set(digits)) != len(digits) or not all(0 <= d <= 9 for d in digits):
        raise ValueError(f"--digits must be 2 to 10 distinct digits in 0..9, got {text!r}")
    return digits


def resolve_model(spec: str, digits: tuple[int, ...]):
    """``(model, label, digits)`` for a registered digit model (``semantic-3-5``, ``cnn-3-5``,
    ``mnist-cnn`` …) or a model file; through the model registry. The digits come from the
    model's class names when they are digits, else from ``digits`` (``--digits``)."""
    from whiteboxdl.models.registry import is_model_file, require_contract, resolve_model as find

    if is_model_file(spec) and not Path(spec).expanduser().is_file():
        raise FileNotFoundError(f"model {spec!r} not found: give a whiteboxdl model file or a "
                                f"registered digit model such as {', '.join(KEYWORDS)}")
    loaded = find(spec)
    contract = require_contract(loaded)
    if contract.kind != "digit":
        raise ValueError(f"{spec} takes {contract.describe()}; robustness evaluation runs on "
                         "MNIST digits (a digit model such as semantic-3-5 or cnn-3-5)")
    names = contract.class_names or ()
    if names and all(n.isdigit() for n in names):
        digits = tuple(int(n) for n in names)
    if is_model_file(spec):
        return loaded.model, Path(spec).stem, digits
    kind = "semantic" if loaded.family == "semantic" else "CNN"
    return loaded.model, f"{kind} {'-vs-'.join(map(str, digits))}", digits


def _class_count(model, x) -> int:
    import torch

    with torch.no_grad():
        return int(model(x[:1]).shape[1])


def plan_attacks(text: str, masking_check: bool, square: bool = True) -> list[str]:
    """The attack list from ``--attacks``, plus APGD-CE (and Square, if ``square``) for the
    masking check."""
    from whiteboxdl.robustness.attacks import get_attack

    attacks = [a.strip() for a in text.split(",") if a.strip()]
    if not attacks:
        raise ValueError(f"--attacks is empty: {text!r}")
    for name in attacks:
        get_attack(name)
    if masking_check:
        if "standard" not in attacks and "apgd-ce" not in attacks:
            attacks.append("apgd-ce")
        if square and "square" not in attacks:
            attacks.append("square")
    return attacks


def _evaluate_one(spec: str, args, attacks, out: Path, digits_default, cluster=None):
    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.robustness.evaluate import WORST, evaluate
    from whiteboxdl.robustness.reliability import reliability_curve
    from whiteboxdl.robustness.report import ModelRun, masking_check, slug
    from whiteboxdl.runfiles import write_json

    start = time.perf_counter()
    model, label, digits = resolve_model(spec, digits_default)
    x, y = digit_subset(digits, "test")
    if not 1 <= args.n <= len(x):
        raise ValueError(f"--n must be in 1..{len(x)} (test images of digits {digits}), "
                         f"got {args.n}")
    x, y = x[:args.n], y[:args.n]
    if _class_count(model, x) != len(digits):
        raise ValueError(f"{spec} has {_class_count(model, x)} outputs but --digits gives "
                         f"{len(digits)} classes {digits}; pass the model's digits")
    options = {a: {"n_queries": args.n_queries} for a in attacks if a in ("standard", "square")}
    executor = None
    if cluster is not None:
        from whiteboxdl.cluster.robustness import RayAttacks

        executor = RayAttacks(spec, cluster)
    run_dir = out / slug(label)
    print(f"== {label}: {len(x)} test images, attacks {', '.join(attacks)} -> {run_dir}")
    result = evaluate(model, x, y, attacks, eps=args.eps, norm=args.norm, seed=args.seed,
                      batch_size=args.batch_size, out_dir=run_dir, options=options,
                      progress=not args.no_progress, executor=executor)
    result.write_csv(run_dir / "records.csv")
    square = None
    if not args.no_masking_check and "square" not in attacks:
        m = args.masking_n
        print(f"   gradient-masking check: Square alone on the first {m} images")
        square = evaluate(model, x[:m], y[:m], ["square"], eps=args.eps, norm=args.norm,
                          seed=args.seed, batch_size=args.batch_size, out_dir=run_dir,
                          options={"square": {"n_queries": args.n_queries}},
                          progress=not args.no_progress, executor=executor)
    boundary = None
    if args.boundary_n > 0:
        boundary = _boundary(model, x, y, result, args, run_dir)
    elapsed = time.perf_counter() - start
    summary = result.summary() | {"label": label, "wall_seconds": elapsed,
                                  "masking_check": masking_check(result, square=square)}
    robust = result.robust(WORST)
    if robust.any():
        curve = reliability_curve(robust, result.worst_inputs().conf)
        summary |= {"precision_at_80": curve.precision_at(0.8),
                    "precision_at_100": curve.precision_at(1.0)}
    write_json(run_dir / "summary.json", summary)
    note = f"{args.boundary_iter} iterations, seed {args.seed}"
    return ModelRun(label, model, x, result, [str(d) for d in digits], boundary, elapsed, note,
                    square)


def _boundary(model, x, y, result, args, run_dir: Path):
    """Minimal Boundary examples of the first ``--boundary-n`` correctly classified images,
    cached per (n, iterations, seed) and reused only for the same images."""
    import torch

    from whiteboxdl.robustness.attacks import attack
    from whiteboxdl.runfiles import DamagedFileError, load_torch, read_verified, save_torch

    idx = result.clean_correct.nonzero().squeeze(1)[:args.boundary_n]
    cache = run_dir / f"boundary-n{args.boundary_n}-it{args.boundary_iter}-s{args.seed}.pt"

    def check(saved) -> None:
        if not (isinstance(saved, dict) and isinstance(saved.get("clean"), torch.Tensor)
                and isinstance(saved.get("minimal"), torch.Tensor)
                and saved["clean"].shape == saved["minimal"].shape):
            raise DamagedFileError(cache, "not a record of clean and minimal Boundary images")

    saved = read_verified(cache, load_torch, check, action="running the Boundary attack again")
    if saved is not None and saved["clean"].shape == x[idx].shape \
            and torch.equal(saved["clean"], x[idx]):
        return saved["clean"], saved["minimal"]
    print(f"   Boundary attack (ART, unbounded) on {len(idx)} images, {args.boundary_iter} "
          "iterations")
    minimal = attack(model, x[idx], y[idx], None, name="boundary", seed=args.seed,
                     max_iter=args.boundary_iter)
    save_torch(cache, {"clean": x[idx], "minimal": minimal})
    return x[idx], minimal


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad numbers before any model is loaded or trained."""
    from whiteboxdl.validation import check_number, check_positive

    check_number("--n", args.n, low=1, integer=True)
    check_positive("--eps", args.eps)
    check_number("--batch-size", args.batch_size, low=1, integer=True)
    check_number("--n-queries", args.n_queries, low=1, integer=True)
    check_number("--boundary-n", args.boundary_n, low=0, integer=True)
    check_number("--boundary-iter", args.boundary_iter, low=1, integer=True)
    if args.masking_n is not None and not 1 <= args.masking_n <= args.n:
        raise ValueError(f"--masking-n must be in 1..--n ({args.n}), got {args.masking_n}")


#: What training a keyword model that is not cached yet costs (shown before it starts).
TRAINING_COST = {"cnn": "3 epochs on about 12,000 images: roughly 1-3 minutes on 2 CPU cores",
                 "semantic": "15 epochs on about 12,000 images: roughly 1-2 minutes on 2 CPU "
                             "cores"}


def announce_training(spec: str) -> bool:
    """Print, before any work, that the keyword model ``spec`` is not cached and will be
    trained first (how long, where it goes, the equivalent command); returns whether it will."""
    from whiteboxdl.models.cnn import cnn_dir, parse_cnn_name
    from whiteboxdl.semantic.models import parse_semantic_name
    from whiteboxdl.semantic.train import default_model_path

    cnn, semantic = parse_cnn_name(spec), parse_semantic_name(spec)
    if cnn is not None:
        kind, (dataset, digits) = "cnn", cnn
        path = cnn_dir(dataset, digits or None) / "model.pt"
        command = "whiteboxdl train cnn" + (f" --digits {' '.join(map(str, digits))}" if digits
                                            else f" --dataset {dataset}")
    elif semantic is not None:
        kind, digits = "semantic", parse_digits("-".join(map(str, semantic)))
        path = default_model_path(digits)
        command = f"whiteboxdl semantic train --digits {' '.join(map(str, digits))} " \
                  f"--out {path.parent}"
    else:
        return False
    if path.is_file():
        return False
    print(f"{spec} is not trained yet: training it first ({TRAINING_COST[kind]}); it is cached "
          f"in {path.parent} for later runs (the same as `{command}`)", flush=True)
    return True


def _evaluate(args: argparse.Namespace) -> int:
    from whiteboxdl.robustness.report import write_report
    from whiteboxdl.viz.report import markdown_table

    check_output_path(args.out)
    _check_arguments(args)
    digits = parse_digits(args.digits)
    separate_square = args.masking_n is not None and args.masking_n < args.n
    attacks = plan_attacks(args.attacks, not args.no_masking_check, square=not separate_square)
    if not separate_square:
        args.masking_n = args.n
    out = Path(args.out)
    cluster = ray_options(args)
    for spec in filter(None, (args.checkpoint, args.baseline)):
        announce_training(spec)
    session = contextlib.nullcontext()
    if cluster is not None:  # one connection for every run of the command
        from whiteboxdl.cluster.session import ray_session

        session = ray_session(cluster)
    with session:
        runs = [_evaluate_one(args.checkpoint, args, attacks, out, digits, cluster)]
        if args.baseline:
            runs.append(_evaluate_one(args.baseline, args, attacks, out, digits, cluster))
    for run in runs:
        print(f"\n{run.label}:")
        print(markdown_table(*run.result.table()))
    command = "whiteboxdl " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv and "robustness" in sys.argv else ""
    note = (f"Data: MNIST test images of digits {args.digits}, the first {runs[0].result.n}. "
            f"Seed {args.seed}, batches of {args.batch_size}, Square with {args.n_queries} "
            "queries.")
    md, html = write_report(runs, out, command=command, data_note=note)
    print(f"\nreport: {html} (and {md})")
    return 0
