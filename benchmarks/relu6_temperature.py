"""The ReLU6 gate temperature, measured: infidelity and faithfulness correlation over a T sweep.

For each EfficientNet-Lite variant, ``--n`` images of the labelled ImageNet sample (drawn with
seed 0), target = label, inputs in [-1, 1]: SoftPullback (one pullback) and PullbackAscent (K=5,
alpha=20, not clamped) at every temperature of ``--temperatures``, with the temperature fixed
(``relu6_scale="fixed"``) or relative to each channel's pre-activation spread
(``relu6_scale="channel"``), against Gradient and GradientAscent. Metrics: the project's
``whiteboxdl.quality.metrics.infidelity`` (noise patches 112 and 56 px, 5 repeats each) and
``faithfulness_correlation`` (16 patches of 56², baseline 0); every explainer meets the same
perturbations (common random numbers), so differences are paired. Perturbed logits do not depend
on the explainer and are computed once (cached by the bytes of the perturbed batch).

Usage: nice python benchmarks/relu6_temperature.py [--models efficientnet_lite0] [--n 64]
       [--temperatures 0.1 0.3 1 2 3 5 10] [--scales fixed channel] [--out runs/relu6-sweep]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whiteboxdl.data.imagenet import read_labels_csv  # noqa: E402
from whiteboxdl.models.registry import resolve_model  # noqa: E402
from whiteboxdl.quality.explainers import get_explainer  # noqa: E402
from whiteboxdl.quality.metrics import faithfulness_correlation, infidelity  # noqa: E402
from whiteboxdl.viz.report import markdown_table  # noqa: E402

DOMAIN = (-1.0, 1.0)


class CachedLogits(nn.Module):
    """``model`` with its no-grad outputs cached by the exact bytes of the input batch: the
    metrics' perturbed batches are identical for every explainer (same generator seeds)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.cache: dict[bytes, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return self.model(x)
        key = hashlib.blake2b(x.detach().contiguous().numpy().data, digest_size=16).digest() \
            + str(tuple(x.shape)).encode()
        if key not in self.cache:
            with torch.no_grad():
                self.cache[key] = self.model(x)
        return self.cache[key]


def explainers(temperatures, scales):
    yield "Gradient", "Gradient", {}
    yield "GradientAscent", "GradientAscent", {}
    for scale in scales:
        for T in temperatures:
            for name in ("SoftPullback", "PullbackAscent"):
                yield f"{name} {scale} T={T:g}", name, {"relu6_temperature": T,
                                                        "relu6_scale": scale}


def score(model, x, y, explainer, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    infid, fc, seconds = [], [], 0.0
    for i in range(0, len(y), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        t0 = time.perf_counter()
        a = explainer(model, xb, yb)
        seconds += time.perf_counter() - t0
        gen = torch.Generator().manual_seed(1000 + i)
        infid.append(infidelity(model, xb, yb, a, domain=DOMAIN, generator=gen, chunk=80))
        fc.append(faithfulness_correlation(model, xb, yb, a, chunk=80))
    return torch.cat(infid).numpy(), torch.cat(fc).numpy(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"))
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--temperatures", type=float, nargs="+",
                        default=[0.1, 0.3, 0.6, 1.0, 2.0, 3.0, 5.0, 10.0])
    parser.add_argument("--scales", nargs="+", default=["fixed", "channel"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/relu6-sweep")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = read_labels_csv(args.data)
    pick = np.sort(np.random.default_rng(0).choice(len(rows), args.n, replace=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = []
    for model_name in args.models:
        loaded = resolve_model(model_name)
        model = CachedLogits(loaded.model.eval())
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.cat([loaded.contract.load(rows[i][0]) for i in pick])
        y = torch.tensor([rows[i][1] for i in pick])
        scores = {}
        base = None
        for label, name, options in explainers(args.temperatures, args.scales):
            explainer = get_explainer(name, domain=DOMAIN, **options)
            infid, fc, seconds = score(model, x, y, explainer, args.batch)
            scores[label] = {"infidelity": infid.tolist(), "faithfulness_correlation": fc.tolist()}
            if name == "Gradient":
                base = infid
            better = float(np.mean(infid < base))
            table.append([model_name, label, f"{np.mean(infid):.3g}", f"{np.median(infid):.3g}",
                          f"{100 * better:.0f}%", f"{np.nanmean(fc):.3f}",
                          f"{seconds / len(y):.2f}"])
            print(" | ".join(table[-1]), flush=True)
            (out / f"{model_name}.json").write_text(json.dumps(scores))
    header = ["model", "explainer", "infidelity mean ↓", "infidelity median ↓",
              "images with lower infidelity than Gradient", "faithfulness corr. ↑",
              "s / image (attribution)"]
    text = (f"{args.n} images of {args.data} (seed 0), targets = labels; torch {torch.__version__}, "
            f"{args.threads} thread(s), {platform.machine()}, {datetime.date.today()}\n\n"
            + markdown_table(header, table))
    (out / "table.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
