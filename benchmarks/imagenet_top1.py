"""Top-1 / top-5 of the EfficientNet-Lite variants on a labelled ImageNet sample, per preprocessing.

For every variant and every combination of input side (the variant's own, or the sample's 224)
and normalisation — ``signed`` (RGB/127.5 - 1, i.e. [-1, 1], TF-Lite's and timm's), ``tflite``
((RGB - 127) / 128, TF's EfficientNet-Lite constants), ``imagenet`` (torchvision's mean/std) —
the images go through the project's loader (square images: bicubic resize to the side; others:
shorter side to side/0.875, centre crop) and the model. This chose the variants' input contracts.

Usage: nice python benchmarks/imagenet_top1.py [--data ../shared/data/imagenet-sample]
       [--models efficientnet_lite0 ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whiteboxdl.data.folders import read_labels_csv  # noqa: E402
from whiteboxdl.data.imagenet import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from whiteboxdl.data.images import load_image, resize_and_crop, to_unit_tensor  # noqa: E402
from whiteboxdl.models.efficientnet_lite import VARIANTS, load_lite  # noqa: E402
from whiteboxdl.viz.report import markdown_table  # noqa: E402

NORMALISATIONS = {
    "signed": lambda u: u * 2 - 1,
    "tflite": lambda u: (u * 255 - 127) / 128,
    "imagenet": lambda u: (u - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
    / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
}


def unit_images(rows, size: int) -> torch.Tensor:
    """The images in [0, 1] at ``size`` (the project's geometry, resize = size / 0.875)."""
    return torch.cat([to_unit_tensor(resize_and_crop(load_image(p), size, round(size / 0.875)))
                      for p, _ in rows])


def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch: int = 50) -> tuple[float, float]:
    top1 = top5 = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            top = model(x[i:i + batch]).topk(5, 1).indices
            top1 += int((top[:, 0] == y[i:i + batch]).sum())
            top5 += int((top == y[i:i + batch, None]).any(1).sum())
    return top1 / len(y), top5 / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"))
    parser.add_argument("--models", nargs="+", default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=None, help="first N images only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = read_labels_csv(args.data).rows()[:args.n]
    y = torch.tensor([label for _, label in rows])
    table, cache = [], {}
    for name in args.models:
        model = load_lite(name)
        native = VARIANTS[name].size
        for size in dict.fromkeys((native, 224)):
            if size not in cache:
                cache[size] = unit_images(rows, size)
            for norm, fn in NORMALISATIONS.items():
                t0 = time.perf_counter()
                top1, top5 = accuracy(model, fn(cache[size]), y)
                table.append([name, f"{size}²" + (" (own)" if size == native else ""), norm,
                              f"{100 * top1:.1f}%", f"{100 * top5:.1f}%",
                              f"{time.perf_counter() - t0:.1f} s"])
                print(" | ".join(table[-1]), flush=True)
    print(f"\n{len(y)} images from {args.data}; torch {torch.__version__}, {args.threads} thread(s), "
          f"{platform.machine()}, {datetime.date.today()}\n")
    print(markdown_table(["model", "input", "normalisation", "top-1", "top-5", "time"], table))


if __name__ == "__main__":
    main()
