"""``whiteboxdl semantic train|inspect``: train the semantic-feature network and draw its figures.

Example
-------
$ whiteboxdl semantic train --digits 3 5 --epochs 15 --seed 314 --out runs/poc
$ whiteboxdl semantic inspect runs/poc/model.pt --out runs/poc/figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

from whiteboxdl.paths import check_output_path


#: = network.ARCHS (a test checks)
ARCH_CHOICES = ["poc", "wide", "orientation", "kernels", "posed-logic", "capped", "margin",
                "flat-margin"]
#: (flag, type, metavar, help) of the numeric size overrides (= network.SIZE_BOUNDS' numbers)
SIZE_OPTIONS = [
    ("--features-per-class", int, "N", "affine features per class (poc: 4)"),
    ("--affine-poses", int, "N", "learnable affine poses per feature (poc: 32)"),
    ("--feature-size", int, "N", "side of the affine templates in pixels (poc: 20)"),
    ("--translation-std", float, "PX", "std of the initial pose translations (poc: 1)"),
    ("--conv-kernels", int, "N", "conv base kernels (poc: 2)"),
    ("--orientations", int, "N", "orientation bins for --conv-channels orientation (4)"),
    ("--logical-poses", int, "N", "poses per class for --logical poses (4)"),
    ("--threshold-margin", float, "M", "two-step thresholds in [0.5-M, 0.49] and "
                                       "[0.51, 0.5+M] (poc: 0.49)"),
    ("--outer-scale-max", float, "S", "bound the two-step's outer scales (poc: 2, i.e. "
                                      "the paper's clip; small: flat OFF/ON pieces)"),
    ("--conv-cap", float, "C", "saturate the conv output as C*tanh(m/C) (poc: 0, off)"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    sem = subparsers.add_parser("semantic", help="train and inspect semantic-feature networks")
    sub = sem.add_subparsers(dest="semantic_command", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="train semantic_mnist with the paper's recipe")
    train.add_argument("--digits", type=int, nargs="+", default=[3, 5],
                       help="MNIST digits to separate (2 to 10; default 3 5)")
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--seed", type=int, default=314)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--weight-decay", type=float, default=3e-6)
    train.add_argument("--batch-size", type=int, default=200)
    train.add_argument("--adv-check", type=int, default=200, metavar="N",
                       help="per-epoch APGD-CE-10 accuracy on N fixed test images (0: off)")
    train.add_argument("--no-two-step", action="store_true", help="ablation: drop the two-step layer")
    train.add_argument("--no-conv", action="store_true", help="ablation: drop the conv layer")
    train.add_argument("--no-noise", action="store_true",
                       help="ablation: no noise augmentation")
    # = samplers.POSE_CONVENTIONS, spelled out so --help needs no torch import (a test checks)
    train.add_argument("--pose-convention", choices=["warp", "sample"], default="warp",
                       help="how affine poses act: move the feature (warp, the reference code's) "
                            "or say where each output pixel reads (sample, grid_sample's)")
    # the design: a named architecture of semantic_mnist and optional size overrides (spelled
    # out so --help needs no torch import; a test checks them against network.ARCHS/SIZE_BOUNDS)
    design = train.add_argument_group("design (default: the paper's layer sizes)")
    design.add_argument("--arch", choices=ARCH_CHOICES, default="poc",
                        help="named design of semantic_mnist (poc: the paper's, 4 affine "
                             "features per class)")
    for flag, kind, meta, text in SIZE_OPTIONS:
        design.add_argument(flag, type=kind, default=None, metavar=meta, help=text)
    design.add_argument("--conv-channels", choices=["one", "kernel", "orientation"],
                        default=None, help="pool the posed conv kernels into one channel, one "
                                           "per kernel, or one per orientation bin")
    design.add_argument("--logical", choices=["roll", "poses"], default=None,
                        help="logical layer: the paper's rolls or learnable poses")
    recipe = train.add_argument_group("recipe")
    recipe.add_argument("--schedule", choices=["constant", "cosine", "onecycle"],
                        default="constant", help="learning-rate schedule (default constant)")
    recipe.add_argument("--noise-kind", choices=["gaussian", "sign", "uniform"],
                        default="gaussian", help="noise augmentation shape (default gaussian)")
    recipe.add_argument("--noise-p", type=float, default=0.7, help="noise probability per batch")
    recipe.add_argument("--noise-mean", type=float, default=0.05)
    recipe.add_argument("--noise-std", type=float, default=0.25)
    train.add_argument("--validation", type=int, default=0, metavar="N",
                       help="hold out the last N training images; per-epoch metrics on them, "
                            "the test set is not read (for design decisions; 0: off)")
    train.add_argument("--limit", type=int, default=0, metavar="N",
                       help="train on the first N images only (quick runs; 0: all)")
    train.add_argument("--threads", type=int, default=0,
                       help="torch threads (0: torch's default)")
    train.add_argument("--out", required=True,
                       help="output directory (resumes if it has a checkpoint of the same "
                            "settings; other settings are refused)")
    train.set_defaults(func=_train)
    insp = sub.add_parser("inspect", help="write every figure of a trained model and report.html")
    insp.add_argument("checkpoint", help="model.pt written by `whiteboxdl semantic train`")
    insp.add_argument("--out", help="figure directory (default: CHECKPOINT's folder/inspect)")
    insp.add_argument("--samples", type=int, default=8,
                      help="test samples in the processing-step figure (misclassified included)")
    insp.set_defaults(func=_inspect)


def _design_kwargs(args: argparse.Namespace) -> dict:
    """The semantic_mnist keyword arguments the flags give (``arch`` plus explicit sizes)."""
    kwargs: dict = {} if args.arch == "poc" else {"arch": args.arch}
    for flag, *_ in SIZE_OPTIONS:
        name = flag[2:].replace("-", "_")
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    for name in ("conv_channels", "logical"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def _train(args: argparse.Namespace) -> int:
    import torch

    from whiteboxdl.models.training import TrainConfig
    from whiteboxdl.semantic.train import train_semantic

    check_output_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, seed=args.seed, schedule=args.schedule)
    noise = {"p": args.noise_p, "mean": args.noise_mean, "std": args.noise_std,
             "kind": args.noise_kind}
    if noise == {"p": 0.7, "mean": 0.05, "std": 0.25, "kind": "gaussian"}:
        noise = {}
    _, result = train_semantic(args.digits, config, two_step=not args.no_two_step,
                               conv=not args.no_conv, noise=not args.no_noise,
                               pose_convention=args.pose_convention, adv_check=args.adv_check,
                               model_kwargs=_design_kwargs(args), noise_kwargs=noise,
                               limit=args.limit, validation=args.validation, out_dir=args.out)
    final = result.history[-1]
    shown = ", ".join(f"{k} {v:.4f}" for k, v in final.items() if k.endswith(("_acc", "_loss")))
    print(f"trained {args.digits} in {result.seconds:.0f} s: {shown}")
    print(f"model: {Path(args.out) / 'model.pt'}  summary: {Path(args.out) / 'summary.json'}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.models.checkpoint import load_model
    from whiteboxdl.runfiles import read_json, read_verified
    from whiteboxdl.semantic.inspect import inspect_model
    from whiteboxdl.semantic.network import SemanticNetwork

    checkpoint = Path(args.checkpoint)
    out = check_output_path(args.out if args.out else checkpoint.parent / "inspect")
    model = load_model(checkpoint)
    if not isinstance(model, SemanticNetwork):
        raise ValueError(f"{checkpoint} holds a {type(model).__name__}, not a semantic network")
    summary = read_verified(checkpoint.parent / "summary.json", read_json,
                            action="drawing no training curves")
    history = summary.get("history") if isinstance(summary, dict) else None
    x = y = None
    if args.samples > 0:
        x, y = digit_subset([int(c) for c in model.class_names], "test")
    paths = inspect_model(model, out, x, y, history, n_samples=args.samples,
                          title=f"Semantic-feature network {checkpoint}")
    for p in paths:
        print(p)
    return 0
