"""The ReLU6 gate temperature, measured: infidelity and faithfulness correlation over a T sweep.

For each EfficientNet-Lite variant, ``--n`` images of the labelled ImageNet sample (drawn with
seed 0), target = label, inputs in [-1, 1]: SoftPullback (one pullback) and PullbackAscent (K=5,
alpha=20, not clamped) at the temperatures asked for, with the temperature fixed
(``relu6_scale="fixed"``) or relative to each channel's pre-activation spread
(``relu6_scale="channel"``), against Gradient and GradientAscent. ``--shard i/N`` splits the
images over processes; ``--merge`` writes the table of all shards. Metrics: the project's
``whiteboxdl.quality.metrics.infidelity`` (noise patches 112 and 56 px, 5 repeats each) and
``faithfulness_correlation`` (16 patches of 56², baseline 0); every explainer meets the same
perturbations (common random numbers), so differences are paired. Perturbed logits do not depend
on the explainer and are computed once (cached by the bytes of the perturbed batch).

Usage: nice python benchmarks/relu6_temperature.py [--models efficientnet_lite0] [--n 64]
       [--soft T ...] [--ascent T ...] [--channel-soft T ...] [--channel-ascent T ...]
       [--shard i/N] --out runs/relu6-sweep;  then  --merge --out runs/relu6-sweep
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

from whiteboxdl.data.folders import read_labels_csv  # noqa: E402
from whiteboxdl.models.registry import resolve_model  # noqa: E402
from whiteboxdl.quality.explainers import get_explainer  # noqa: E402
from whiteboxdl.quality.metrics import faithfulness_correlation, infidelity  # noqa: E402
from whiteboxdl.quality.stats import paired_bootstrap  # noqa: E402
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


def explainers(plan: dict[str, list[float]], baselines=("Gradient", "GradientAscent")):
    """``(label, registry name, options)``: the baselines, then the plan's pullbacks."""
    for name in dict.fromkeys(("Gradient", *baselines)):      # Gradient: the reference
        yield name, name, {}
    for key, temperatures in plan.items():
        name, scale = key.split("/")
        for T in temperatures:
            yield f"{name} {scale} T={T:g}", name, {"relu6_temperature": T, "relu6_scale": scale}


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


def summarise(scores: dict[str, dict[str, list[float]]], model_name: str) -> list[list[str]]:
    """One row per explainer: means, medians, and paired comparisons with Gradient (bootstrap
    over images: the geometric-mean infidelity ratio, the faithfulness-correlation difference)."""
    base = np.asarray(scores["Gradient"]["infidelity"])
    base_fc = np.asarray(scores["Gradient"]["faithfulness_correlation"])
    rows = []
    for label, values in scores.items():
        infid, fc = np.asarray(values["infidelity"]), np.asarray(values["faithfulness_correlation"])
        ratio = paired_bootstrap(np.log10(infid), np.log10(base))
        delta = paired_bootstrap(fc, base_fc)
        rows.append([model_name, label, str(len(infid)), f"{np.mean(infid):.3g}",
                     f"{np.median(infid):.3g}",
                     f"{10 ** ratio.mean:.2f} [{10 ** ratio.low:.2f}, {10 ** ratio.high:.2f}]",
                     f"{100 * np.mean(infid < base):.0f}%", f"{np.nanmean(fc):.3f}",
                     f"{delta.mean:+.3f} [{delta.low:+.3f}, {delta.high:+.3f}]",
                     f"{values.get('seconds', 0) / len(infid):.2f}"])
    return rows


HEADER = ["model", "explainer", "images", "infidelity mean ↓", "infidelity median ↓",
          "infidelity / Gradient's (geometric mean, 95% CI) ↓",
          "images with lower infidelity than Gradient", "faithfulness corr. mean ↑",
          "FC − Gradient's (95% CI) ↑", "s / image (attribution)"]


def merge(out: Path) -> str:
    """One table from every shard file in ``out`` (``MODEL-shard-I-of-N.json``)."""
    merged: dict[str, dict[str, dict[str, list[float]]]] = {}
    for path in sorted(out.glob("*-shard-*.json")):
        model_name = path.name.split("-shard-")[0]
        for label, values in json.loads(path.read_text()).items():
            entry = merged.setdefault(model_name, {}).setdefault(
                label, {"infidelity": [], "faithfulness_correlation": [], "seconds": 0.0})
            entry["infidelity"] += values["infidelity"]
            entry["faithfulness_correlation"] += values["faithfulness_correlation"]
            entry["seconds"] += values.get("seconds", 0.0)
    shards = {name: len(list(out.glob(f"{name}-shard-*.json"))) for name in merged}
    table = []
    for name, scores in merged.items():      # explainers every shard has finished
        n = len(scores["Gradient"]["infidelity"])
        done = {k: v for k, v in scores.items() if len(v["infidelity"]) == n}
        table += summarise(done, f"{name} ({shards[name]} shards)")
    return markdown_table(HEADER, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"))
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--soft", type=float, nargs="*", default=[0.1, 0.3, 0.6, 1, 2, 3, 5, 10],
                        help="SoftPullback temperatures, fixed scale")
    parser.add_argument("--ascent", type=float, nargs="*", default=[0.3, 1, 2, 3],
                        help="PullbackAscent temperatures, fixed scale")
    parser.add_argument("--channel-soft", type=float, nargs="*", default=[0.3, 1, 2, 3])
    parser.add_argument("--channel-ascent", type=float, nargs="*", default=[1, 2])
    parser.add_argument("--baselines", nargs="+", default=["Gradient", "GradientAscent"],
                        help="gradient baselines (Gradient is always run: the reference)")
    parser.add_argument("--shard", default="0/1", help="i/N: every N-th image from the i-th")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/relu6-sweep")
    parser.add_argument("--merge", action="store_true", help="only merge the shards in --out")
    args = parser.parse_args()
    out = Path(args.out)
    if args.merge:
        text = merge(out)
        (out / "table.md").write_text(text)
        print(text)
        return
    torch.set_num_threads(args.threads)
    i, n_shards = (int(v) for v in args.shard.split("/"))
    rows = read_labels_csv(args.data).rows()
    pick = np.sort(np.random.default_rng(0).choice(len(rows), args.n, replace=False))[i::n_shards]
    plan = {"SoftPullback/fixed": args.soft, "PullbackAscent/fixed": args.ascent,
            "SoftPullback/channel": args.channel_soft,
            "PullbackAscent/channel": args.channel_ascent}
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(pick)} images of {args.data} (seed 0, shard {args.shard}); torch "
          f"{torch.__version__}, {args.threads} thread(s), {platform.machine()}, "
          f"{datetime.date.today()}", flush=True)
    for model_name in args.models:
        loaded = resolve_model(model_name)
        model = CachedLogits(loaded.model.eval())
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.cat([loaded.contract.load(rows[j][0]) for j in pick])
        y = torch.tensor([rows[j][1] for j in pick])
        scores: dict[str, dict] = {}
        for label, name, options in explainers(plan, args.baselines):
            explainer = get_explainer(name, domain=DOMAIN, **options)
            infid, fc, seconds = score(model, x, y, explainer, args.batch)
            scores[label] = {"infidelity": infid.tolist(), "faithfulness_correlation": fc.tolist(),
                             "seconds": seconds, "images": pick.tolist()}
            print(" | ".join(summarise({"Gradient": scores["Gradient"], label: scores[label]},
                                       model_name)[-1]), flush=True)
            (out / f"{model_name}-shard-{i}-of-{n_shards}.json").write_text(json.dumps(scores))


if __name__ == "__main__":
    main()
