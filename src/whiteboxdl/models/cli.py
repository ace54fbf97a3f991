"""``whiteboxdl train <model>``: train the project's models (``train cnn`` here; others may add).

Example
-------
$ whiteboxdl train cnn                       # MNIST, cached for get_cnn("mnist")
$ whiteboxdl train cnn --dataset fashion-mnist
$ whiteboxdl train cnn --digits 3 5 --epochs 3 --out runs/cnn35
$ whiteboxdl models                          # every model by name: usable here? torchvision files
"""

from __future__ import annotations

import argparse
import importlib

from whiteboxdl.paths import check_output_path

#: Modules adding ``train <model>`` commands through ``register_train(train_subparsers)``.
TRAIN_MODULES = ("whiteboxdl.models.cli",)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train the project's models (cnn, ...)")
    sub = train.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    for name in TRAIN_MODULES:
        importlib.import_module(name).register_train(sub)
    models = subparsers.add_parser("models", help="the models known by name, what is usable here, "
                                                  "and torchvision's weight files")
    models.add_argument("names", nargs="*", metavar="NAME",
                        help="classifiers to show (default: resnet50 vgg11_bn densenet121)")
    models.add_argument("--all", action="store_true", help="every torchvision classifier")
    models.set_defaults(func=_models)


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``train cnn``."""
    from whiteboxdl.models.cnn import DATASETS, DEFAULT_CONFIG, RECIPES

    cnn = sub.add_parser("cnn", help="small ReLU CNN (BatchNorm, max-pool) on MNIST/Fashion-MNIST")
    cnn.add_argument("--dataset", choices=DATASETS, default="mnist")
    cnn.add_argument("--digits", type=int, nargs="+", metavar="D",
                     help="train on these classes only, e.g. --digits 3 5 (labels 0..k-1)")
    cnn.add_argument("--epochs", type=int,
                     help="default: " + ", ".join(f"{d} {r['epochs']}" for d, r in RECIPES.items()))
    cnn.add_argument("--seed", type=int, default=DEFAULT_CONFIG.seed)
    cnn.add_argument("--out", help="output directory (default: the cache used by get_cnn); an "
                                   "interrupted run resumes there, a run with other data, digits, "
                                   "seed or epochs is refused")
    cnn.add_argument("--limit", type=int, metavar="N",
                     help="use only the first N training images (quick runs)")
    cnn.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    cnn.set_defaults(func=_train_cnn)


def _train_cnn(args: argparse.Namespace) -> int:
    from whiteboxdl.models.cnn import cnn_dir, load_cnn_data, train_cnn
    from whiteboxdl.viz.report import markdown_table

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.limit and not args.out:
        raise ValueError("--limit trains a partial model: give --out so the cache is not replaced")
    out = check_output_path(args.out or cnn_dir(args.dataset, args.digits))
    train_data = None
    if args.limit:
        x, y = load_cnn_data(args.dataset, args.digits, "train")
        train_data = (x[:args.limit], y[:args.limit])
    _, summary = train_cnn(args.dataset, args.digits, epochs=args.epochs, seed=args.seed, out=out,
                           progress=not args.no_progress, train_data=train_data)
    digits = " ".join(map(str, summary["digits"])) if summary["digits"] else "all"
    print(markdown_table(
        ["dataset", "classes", "parameters", "epochs", "test accuracy", "train time"],
        [[summary["dataset"], digits, f"{summary['parameters']:,}", summary["epochs"],
          f"{summary['test_acc']:.2%}", f"{summary['seconds']:.0f} s"]]))
    print(f"model: {out}/model.pt")
    return 0


def registered_models() -> list[list[str]]:
    """``[name, family, "yes"/"no", why]`` for every name the model families list (no loading)."""
    from whiteboxdl.models.registry import availability, families

    rows = []
    for family in families():
        for name in family.names():
            usable, why = availability(name)
            rows.append([name, family.name, "yes" if usable else "no", why])
    return rows


def _models(args: argparse.Namespace) -> int:
    from whiteboxdl.models.zoo import (PAPER_MODELS, classifier_names, resolve_weights,
                                       weights_available, weights_path)
    from whiteboxdl.viz.report import markdown_table

    if not args.names and not args.all:
        print(markdown_table(["model", "family", "usable here", "why"], registered_models()))
        print()
    names = classifier_names() if args.all else (args.names or list(PAPER_MODELS))
    rows = [[name, resolve_weights(name).name, "yes" if weights_available(name) else "no",
             str(weights_path(name)), resolve_weights(name).url] for name in names]
    print(markdown_table(["model", "default weights", "cached", "weights file", "from"], rows))
    if not all(row[2] == "yes" for row in rows):
        print("Not cached: save the file from the URL at the path shown (the hub cache honours "
              "$TORCH_HOME), or load with download=True while online.")
    return 0
