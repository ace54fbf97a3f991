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


def _train(args: argparse.Namespace) -> int:
    import torch

    from whiteboxdl.models.training import TrainConfig
    from whiteboxdl.semantic.train import train_semantic

    check_output_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, seed=args.seed)
    _, result = train_semantic(args.digits, config, two_step=not args.no_two_step,
                               conv=not args.no_conv, noise=not args.no_noise,
                               pose_convention=args.pose_convention, adv_check=args.adv_check,
                               limit=args.limit, out_dir=args.out)
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
