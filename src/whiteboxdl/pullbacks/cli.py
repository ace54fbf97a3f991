"""``whiteboxdl explain``: the paper's counterfactual grid for your images and model.

Example
-------
$ whiteboxdl explain cat coffee --model resnet50 --method both --out fig.png
$ whiteboxdl explain digit.png --model mnist-cnn --steps 5 --alpha 2 --out digit.png
$ whiteboxdl explain img.jpg --model runs/my_model.pt --targets 3 5 --method pullback
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from whiteboxdl.paths import check_output_path


@dataclass
class LoadedModel:
    """A classifier plus what its inputs look like."""

    model: object
    channels: int            # 1: grey 28x28 in [0, 1]; 3: RGB 224x224 in [-1, 1]
    size: int
    bounds: tuple[float, float]
    class_names: Optional[list[str]]


def _first_in_channels(model) -> int:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 1


def load_explained_model(spec: str, weights: str = "DEFAULT") -> LoadedModel:
    """``spec``: a torchvision name (weights via the zoo), ``mnist-cnn``/``fashion-cnn`` (trained
    cache) or a whiteboxdl model file. MNIST-like models take 28x28 grey images in [0, 1];
    ImageNet models are wrapped to take [-1, 1]."""
    from whiteboxdl.data.imagenet import SignedImageNetInput

    from whiteboxdl.models.cnn import CNN_SHORTHANDS, get_cnn

    if spec in CNN_SHORTHANDS:
        from whiteboxdl.data.mnist import get_spec

        dataset = CNN_SHORTHANDS[spec]
        model = get_cnn(dataset, train_if_missing=False)
        return LoadedModel(model, 1, 28, (0.0, 1.0), list(get_spec(dataset).classes))
    path = Path(spec).expanduser()
    if path.suffix in (".pt", ".pth") or path.is_file():
        from whiteboxdl.models.checkpoint import load_model, read_model_file
        from whiteboxdl.models.zoo import BUILDER as ZOO_BUILDER

        record = read_model_file(path)
        model = load_model(path)
        if record["builder"] == ZOO_BUILDER:
            from whiteboxdl.data.imagenet import imagenet_classes

            imagenet = record["kwargs"].get("num_classes", 1000) == 1000
            return LoadedModel(SignedImageNetInput(model).eval(), 3, 224, (-1.0, 1.0),
                               list(imagenet_classes()) if imagenet else None)
        channels = _first_in_channels(model)
        if channels == 1:
            return LoadedModel(model, 1, 28, (0.0, 1.0), None)
        return LoadedModel(model, channels, 224, (-1.0, 1.0), None)
    from whiteboxdl.models.zoo import class_names, load_classifier

    w = None if weights.lower() in ("none", "random") else weights
    model = load_classifier(spec, weights=w)
    return LoadedModel(model, 3, 224, (-1.0, 1.0), class_names(spec))


def load_images(sources: list[str], loaded: LoadedModel):
    """Images (paths or names of the bundled examples) as one batch in the model's input range."""
    import torch

    from whiteboxdl.data.images import (example_images, load_image, preprocess, resize_image,
                                        to_unit_tensor)

    examples = example_images()
    batch = []
    for src in sources:
        path = Path(src)
        if not path.exists() and src in examples:
            path = examples[src]
        if loaded.channels == 1:  # grey, at full depth for 16-bit and float images
            img = load_image(path, keep_depth=True)
            img = img if img.mode == "F" else img.convert("L")
            batch.append(to_unit_tensor(resize_image(img, (loaded.size, loaded.size)), channels=1))
        else:
            batch.append(preprocess(path, size=loaded.size))
    return torch.cat(batch)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain", help="counterfactual grid of excitation-pullback (and gradient) ascent",
        description="Rows = images, columns = target classes (the images' predicted classes, "
                    "then one random class, unless --targets is given); each cell = perturbed - "
                    "clean after K ascent steps, min-max rescaled.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, or names of bundled examples (cat, coffee, rocket, astronaut)")
    p.add_argument("--model", required=True, metavar="NAME|CHECKPOINT",
                   help="torchvision name (resnet50, vgg11_bn, densenet121, ...), mnist-cnn, "
                        "fashion-cnn, or a whiteboxdl model file")
    p.add_argument("--weights", default="DEFAULT",
                   help="for torchvision names: DEFAULT, an enum name, a file, or 'random'")
    p.add_argument("--targets", type=int, nargs="+", metavar="CLASS",
                   help="column classes (default: predicted classes + one random class)")
    p.add_argument("--method", choices=("pullback", "gradient", "both"), default="both")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--alpha", type=float, default=None,
                   help="L2 step length (default 20 for ImageNet models, 2 for 28x28 models)")
    p.add_argument("--eps", type=float, default=None, help="L2 radius of x - x0 (default: none)")
    p.add_argument("--temperature", type=float, default=0.3)
    p.add_argument("--gate", choices=("sigmoid", "normal"), default="sigmoid")
    p.add_argument("--seed", type=int, default=0, help="seed of the random extra column")
    p.add_argument("--out", default="explain.png", help="output PNG (default: explain.png)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from whiteboxdl.pullbacks.gates import check_temperature
    from whiteboxdl.viz.grids import explanation_figure, grid_columns

    check_output_path(args.out, kind="file")
    check_temperature(args.temperature)
    loaded = load_explained_model(args.model, args.weights)
    x = load_images(args.images, loaded)
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
    alpha = args.alpha if args.alpha is not None else (20.0 if loaded.channels == 3 else 2.0)
    path, _ = explanation_figure(
        loaded.model, x, predicted, args.out, num_classes, method=args.method, columns=columns,
        class_names=loaded.class_names, progress=not args.no_progress, steps=args.steps,
        alpha=alpha, eps=args.eps, bounds=loaded.bounds, temperature=args.temperature,
        gate=args.gate)
    names = loaded.class_names
    for src, c in zip(args.images, predicted):
        print(f"{src}: predicted {c}" + (f" ({names[c]})" if names and c < len(names) else ""))
    print(f"wrote {path}")
    return 0
