"""The ReLU6 temperature by eye: PullbackAscent towards each photo's own class at several T.

Rows: bundled photos; columns: the photo, the vanilla gradient ascent, then the excitation pullback
ascent at each temperature (K=5, alpha=20, EfficientNet-Lite0 by default); cells are perturbed -
clean, min-max rescaled per cell.

Usage: nice python benchmarks/relu6_temperature_figure.py [--model efficientnet_lite0]
       [--photos cat coffee rocket] [--temperatures 0.1 0.3 1 2 3 10]
       [--out docs/figures/relu6-temperature.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whiteboxdl.data.images import example_images  # noqa: E402
from whiteboxdl.models.registry import resolve_model  # noqa: E402
from whiteboxdl.pullbacks import GradientAscent, PullbackAscent  # noqa: E402
from whiteboxdl.viz.figures import new_figure, save_figure  # noqa: E402
from whiteboxdl.viz.grids import minmax_per_cell  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--photos", nargs="+", default=["cat", "coffee", "rocket"])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.1, 0.3, 1, 2, 3, 10])
    parser.add_argument("--scale", default="fixed", choices=("fixed", "channel"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "relu6-temperature.png"))
    args = parser.parse_args()
    loaded = resolve_model(args.model)
    x = torch.cat([loaded.contract.load(example_images()[p]) for p in args.photos])
    with torch.no_grad():
        target = loaded.model(x).argmax(1)
    common = dict(steps=5, alpha=20.0, bounds=loaded.contract.bounds)
    columns = [("gradient", GradientAscent(loaded.model, **common))]
    columns += [(f"pullback T={T:g}", PullbackAscent(loaded.model, relu6_temperature=T,
                                                     relu6_scale=args.scale, **common))
                for T in args.temperatures]
    cells = [minmax_per_cell(ascent.ascend(x, target).difference) for _, ascent in columns]
    names = loaded.contract.class_names
    fig, axes = new_figure(len(args.photos), len(columns) + 1,
                           size=(1.7 * (len(columns) + 1), 1.8 * len(args.photos) + 0.5))
    for r in range(len(args.photos)):
        image = ((x[r] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        axes[r][0].imshow(image)
        axes[r][0].set_ylabel(names[int(target[r])][:16], fontsize=7)
        for c, (label, _) in enumerate(columns):
            axes[r][c + 1].imshow(cells[c][r])
            if r == 0:
                axes[r][c + 1].set_title(label, fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("input", fontsize=8)
    fig.suptitle(f"{loaded.label}: ascent towards the own class (K=5, α=20), ReLU6 gate "
                 f"temperature T ({args.scale})", fontsize=9)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
