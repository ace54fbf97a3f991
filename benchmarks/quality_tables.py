"""BENCHMARKS.md tables of the ImageNet quality runs (issue 18) next to the paper's numbers.

Reads finished (or partial) run directories of ``benchmarks/quality_imagenet.sh`` and prints
Markdown: the means next to the paper's ResNet50 / VGG11_BN rows, paired differences with
bootstrap intervals, the ablation (variants − the base PullbackAscent / SoftPullback) and the
cost per image.

    python benchmarks/quality_tables.py runs/quality-imagenet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from whiteboxdl.quality.report import Merged, merge, metric_spec
from whiteboxdl.quality.stats import paired_bootstrap

#: The later revision's table (spec, "Quantitative results of the later revision"): Infid, FC,
#: FE, MC, MaxSens, RandLogit, Focus; None = not reported.
PAPER = {
    ("ResNet50", "SoftPullback"): (5.99, .389, .437, .420, .119, -.062, .748),
    ("ResNet50", "PullbackAscent"): (5.38, .382, .394, .421, .244, .212, .731),
    ("ResNet50", "Gradient"): (83.3, .241, .289, .275, .952, -.032, .634),
    ("ResNet50", "SmoothGrad"): (66.9, .331, .321, .364, .639, -.024, .641),
    ("ResNet50", "IntegratedGradients"): (66.8, .244, .421, .350, .788, -.029, .623),
    ("ResNet50", "GuidedGradCam"): (5.76, .437, .275, .507, .242, .417, .849),
    ("VGG11_BN", "SoftPullback"): (16.3, .606, .530, .375, .212, -.064, None),
    ("VGG11_BN", "PullbackAscent"): (5.62, .570, .376, .312, .390, .136, None),
    ("VGG11_BN", "Gradient"): (100.1, .457, .466, .316, .898, -.053, None),
}
COLUMNS = ("Infidelity", "FaithfulnessCorrelation", "FaithfulnessEstimate",
           "MonotonicityCorrelation", "MaxSensitivity", "RandomLogit", "Focus")
EXTRA = ("Infidelity-112+56",)
PAIRS = (("SoftPullback", "Gradient"), ("PullbackAscent", "GradientAscent"),
         ("SmoothPullback", "SmoothGrad"), ("SoftPullback", "Gradient/ch"),
         ("PullbackAscent", "IntegratedGradients"), ("SoftPullback", "GuidedGradCam"))


def fmt(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.3g}" if abs(v) >= 10 or abs(v) < 0.01 else f"{v:.3f}"


def mean(s: np.ndarray) -> float:
    s = s[np.isfinite(s)]
    return float(s.mean()) if s.size else float("nan")


def load(run_dirs: list[Path]) -> list[tuple[str, Merged]]:
    runs = []
    for d in run_dirs:
        if (d / "config.json").is_file() and (d / "batches").is_dir():
            try:
                runs.append((d.name, merge(d, write=False, partial=True, n_boot=1000)))
            except ValueError as exc:
                print(f"<!-- {d}: {exc} -->")
    return runs


def means_table(runs: list[tuple[str, Merged]], model: str, paper: bool = True) -> str:
    cols = [*COLUMNS, *EXTRA]
    head = "| model | explainer | n | " + " | ".join(
        f"{metric_label(c)} {'↑' if higher(c) else '↓'}" for c in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 3)]
    for (net, e), values in (PAPER.items() if paper else ()):
        lines.append(f"| {net} (paper) | {e} | 1000 | "
                     + " | ".join(fmt(v) for v in values) + " | – |")
    for name, m in runs:
        for e in m.config["explainers"]:
            n = len(m.index)
            cells = [fmt(mean(m.scores[e][c])) if c in m.scores[e] else "–" for c in cols]
            lines.append(f"| {model} ({name}) | {e} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def metric_label(c: str) -> str:
    return {"Infidelity": "Infid", "FaithfulnessCorrelation": "FC", "FaithfulnessEstimate": "FE",
            "MonotonicityCorrelation": "MC", "MaxSensitivity": "MaxSens",
            "RandomLogit": "RandLogit", "Focus": "Focus",
            "Infidelity-112+56": "Infid 112+56"}[c]


def higher(c: str) -> bool:
    return metric_spec({}, c.split("-")[0]).higher_is_better


def _interval(a: np.ndarray, b: np.ndarray, metric: str, seed: int = 0) -> str:
    r = paired_bootstrap(a, b, seed=seed)
    better = (r.low > 0) if higher(metric) else (r.high < 0)
    worse = (r.high < 0) if higher(metric) else (r.low > 0)
    mark = " ✓" if better else (" ✗" if worse else "")
    ratio = ""
    if metric.startswith("Infidelity"):
        ratio = f" (×{mean(a) / mean(b):.2f})" if mean(b) else ""
    return f"{fmt(r.mean)} [{fmt(r.low)}, {fmt(r.high)}]{mark}{ratio}"


def paired_table(runs: list[tuple[str, Merged]], pairs=PAIRS, base: str | None = None) -> str:
    cols = [*COLUMNS, *EXTRA]
    lines = ["| run | difference | n | " + " | ".join(metric_label(c) for c in cols) + " |",
             "|" + "---|" * (len(cols) + 3)]
    for name, m in runs:
        todo = pairs if base is None else [(e, base) for e in m.config["explainers"]
                                            if e != base and _family(e) == _family(base)]
        for ours, theirs in todo:
            if ours not in m.scores or theirs not in m.scores:
                continue
            cells = [_interval(m.scores[ours][c], m.scores[theirs][c], c)
                     if c in m.scores[ours] else "–" for c in cols]
            lines.append(f"| {name} | {ours} − {theirs} | {len(m.index)} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def _family(name: str) -> str:
    return "PA" if name.startswith(("PA ", "PullbackAscent")) else \
        "SP" if name.startswith(("SP ", "SoftPullback")) else name


def cost_table(runs: list[tuple[str, Merged]]) -> str:
    lines = ["| run | explainer | images | attribution s/img | metrics s/img | total s/img |",
             "|---|---|---|---|---|---|"]
    for name, m in runs:
        for e, t in m.times.items():
            k = max(1, m.images_timed(e))
            attr = t.get("attribution", 0.0)
            total = sum(t.values())
            lines.append(f"| {name} | {e} | {k} | {attr / k:.1f} | {(total - attr) / k:.1f} | "
                         f"{total / k:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="the runs' folder (quality_imagenet.sh's OUT)")
    args = parser.parse_args()
    main_runs = load([args.root / d for d in ("lite0-core", "lite0-sampling", "lite0-perchannel")])
    lite1 = load([args.root / "lite1-core"])
    ablation = load([args.root / "lite0-ablation"])
    print("## means\n")
    print(means_table(main_runs, "Lite0"))
    print()
    if lite1:
        print(means_table(lite1, "Lite1", paper=False))
    print("\n## paired differences\n")
    print(paired_table(main_runs + lite1))
    if ablation:
        print("\n## ablation: means\n")
        print(means_table(ablation, "Lite0", paper=False))
        print("\n## ablation: variant − base\n")
        print(paired_table(ablation, base="PullbackAscent"))
        print(paired_table(ablation, base="SoftPullback").split("\n", 2)[-1])
    print("\n## cost per image\n")
    print(cost_table(main_runs + lite1 + ablation))


if __name__ == "__main__":
    main()
