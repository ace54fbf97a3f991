"""``whiteboxdl explain``: the paper's counterfactual grid for your images and model.

Every pullback setting of the rule registry is a flag (``--temperature``, ``--maxpool-temperature``,
``--silu-temperature`` …, ``--rules``, ``--gate``); :func:`add_settings_arguments` and
:func:`settings_from_args` give any command the same flags.

Example
-------
$ whiteboxdl explain cat coffee --out fig.png          # EfficientNet-Lite0, pretrained, offline
$ whiteboxdl explain cat coffee --model resnet50 --method both --out fig.png
$ whiteboxdl explain digit.png --model mnist-cnn --steps 5 --alpha 2 --out digit.png
$ whiteboxdl explain img.jpg --model runs/my_model.pt --targets 3 5 --method pullback
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from whiteboxdl.paths import check_output_path

#: The model ``whiteboxdl explain`` uses when none is given: pretrained and offline everywhere.
DEFAULT_MODEL = "efficientnet_lite0"


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per pullback setting (read from the rule registry), all defaulting to unset."""
    from whiteboxdl.pullbacks.registry import options, rule_names
    from whiteboxdl.pullbacks.settings import UNHANDLED_MODES

    group = parser.add_argument_group("pullback settings (defaults: the paper's)")
    group.add_argument("--rules", default=None,
                       help=f"comma-separated rules or 'all' (registered: "
                            f"{', '.join(rule_names())}; default: relu,maxpool,relu6)")
    group.add_argument("--gate", choices=("sigmoid", "normal"), default=None,
                       help="ReLU-family gate: sigmoid(z/T) (paper) or normal CDF (later revision)")
    group.add_argument("--unhandled", choices=UNHANDLED_MODES, default=None,
                       help="nonlinearities without an active rule: warn (default), ignore, error")
    for name, option in options().items():
        flag = "--" + name.replace("_", "-")
        if option.choices is not None:
            group.add_argument(flag, choices=option.choices, default=None,
                               help=f"{option.help} (default {option.default})")
        else:
            group.add_argument(flag, type=float, default=None,
                               help=f"{option.help} (default {option.default:g})")


def settings_from_args(args: argparse.Namespace):
    """The :class:`~whiteboxdl.pullbacks.settings.PullbackSettings` the flags ask for."""
    from whiteboxdl.pullbacks.registry import options
    from whiteboxdl.pullbacks.settings import PullbackSettings

    given: dict[str, Any] = {name: getattr(args, name) for name in options()
                             if getattr(args, name, None) is not None}
    for name in ("gate", "unhandled"):
        if getattr(args, name, None) is not None:
            given[name] = getattr(args, name)
    if getattr(args, "rules", None):
        given["rules"] = args.rules if args.rules == "all" else \
            [r.strip() for r in args.rules.split(",") if r.strip()]
    return PullbackSettings(**given)


def load_explained_model(spec: str, weights: str = "DEFAULT"):
    """The model ``spec`` names (a registered name or a model file) with its input contract;
    see :func:`whiteboxdl.models.registry.resolve_model`. Project models are not trained here."""
    from whiteboxdl.models.registry import require_contract, resolve_model

    loaded = resolve_model(spec, weights=weights, train_if_missing=False)
    require_contract(loaded)
    return loaded


def expand_sources(sources: list[str], limit: int = 4) -> tuple[list[str], list[int | None]]:
    """Image sources with labelled folders (``csv:PATH``, ``imagefolder:PATH``) replaced by their
    first ``limit`` images; returns the sources and their labels (``None`` where unknown)."""
    from whiteboxdl.data.folders import is_folder_spec, labelled_images

    out: list[str] = []
    labels: list[int | None] = []
    for src in sources:
        if is_folder_spec(src):
            images = labelled_images(src)
            out += [str(p) for p in images.paths[:limit]]
            labels += list(images.labels[:limit])
        else:
            out.append(src)
            labels.append(None)
    return out, labels


def load_images(sources: list[str], loaded):
    """Images (paths or names of the bundled examples) as one batch of the model's inputs."""
    import torch

    from whiteboxdl.data.images import example_images

    examples = example_images()
    batch = []
    for src in sources:
        path = Path(src)
        if not path.exists() and src in examples:
            path = examples[src]
        batch.append(loaded.contract.load(path))
    return torch.cat(batch)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain", help="counterfactual grid of excitation-pullback (and gradient) ascent",
        description="Rows = images, columns = target classes (the images' predicted classes, "
                    "then one random class, unless --targets is given); each cell = perturbed - "
                    "clean after K ascent steps, min-max rescaled.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, names of bundled examples (cat, coffee, rocket, astronaut), "
                        "or labelled folders: csv:PATH (labels.csv: file,class_index) or "
                        "imagefolder:PATH (WordNet-id folders get their ImageNet index)")
    p.add_argument("--limit", type=int, default=4,
                   help="images taken from each labelled folder (default 4)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|CHECKPOINT",
                   help=f"a registered model (default {DEFAULT_MODEL}, pretrained, offline; "
                        "efficientnet_lite1/2; torchvision names such as resnet50, vgg11_bn, "
                        "densenet121; timm:NAME; mnist-cnn, fashion-cnn, cnn-3-5, semantic-3-5) "
                        "or a whiteboxdl model file")
    p.add_argument("--weights", default="DEFAULT",
                   help="for pretrained families: DEFAULT, an enum name, a file, or 'random'")
    p.add_argument("--targets", type=int, nargs="+", metavar="CLASS",
                   help="column classes (default: predicted classes + one random class)")
    p.add_argument("--method", choices=("pullback", "gradient", "both"), default="both")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--alpha", type=float, default=None,
                   help="L2 step length (default 20 for photo models, 2 for 28x28 digit models)")
    p.add_argument("--eps", type=float, default=None, help="L2 radius of x - x0 (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random extra column")
    p.add_argument("--out", default="explain.png", help="output PNG (default: explain.png)")
    p.add_argument("--no-progress", action="store_true")
    add_settings_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from whiteboxdl.pullbacks.grids import (explanation_figure, format_top, grid_columns,
                                            top_classes)

    check_output_path(args.out, kind="file")
    settings = settings_from_args(args)
    loaded = load_explained_model(args.model, args.weights)
    contract = loaded.contract
    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    sources, labels = expand_sources(args.images, args.limit)
    x = load_images(sources, loaded)
    with torch.no_grad():
        logits = loaded.model(x)
    num_classes = logits.shape[1]
    predicted = logits.argmax(1).tolist()
    if args.targets:
        bad = [t for t in args.targets if not 0 <= t < num_classes]
        if bad:
            raise ValueError(f"--targets {bad} out of range: the model has {num_classes} classes "
                             f"(0..{num_classes - 1})")
        columns = list(dict.fromkeys(args.targets))
    else:
        columns = grid_columns(predicted, num_classes, extra=1, seed=args.seed)
    alpha = args.alpha if args.alpha is not None else (20.0 if contract.kind == "photo" else 2.0)
    names = contract.class_names
    path, _ = explanation_figure(
        loaded.model, x, predicted, args.out, num_classes, method=args.method, columns=columns,
        class_names=names, progress=not args.no_progress, steps=args.steps,
        alpha=alpha, eps=args.eps, bounds=contract.bounds, settings=settings)
    for src, c, label, top in zip(sources, predicted, labels, top_classes(logits, names)):
        print(f"{src}: predicted {c}" + (f" ({names[c]})" if names and c < len(names) else "")
              + (f", label {label}" if label is not None else "") + f"; top-5: {format_top(top)}")
    print(f"wrote {path}")
    return 0
