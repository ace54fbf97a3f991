"""Merge a run's batch files into per-image scores, tables, a figure and an HTML report.

Outputs in the run directory: ``scores.npz`` (``score/<explainer>/<metric>`` arrays over images,
``index``, ``label``, ``target``), ``scores.csv`` (one row per image and explainer),
``summary.md`` (means, paired differences with seeded 95% bootstrap intervals, timings),
``examples.png`` and ``report.html``.

Example
-------
>>> from whiteboxdl.quality.report import merge          # doctest: +SKIP
>>> merged = merge("runs/mnist")                          # doctest: +SKIP
>>> merged.scores["SoftPullback"]["Infidelity"].shape     # doctest: +SKIP
(1000,)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whiteboxdl.quality.explainers import COUNTERPARTS
from whiteboxdl.quality.metric_registry import get_metric
from whiteboxdl.quality.runner import read_batch
from whiteboxdl.quality.stats import paired_bootstrap
from whiteboxdl.runfiles import read_json, save_npz, write_text
from whiteboxdl.viz.report import Report, markdown_table


@dataclass
class Merged:
    """A merged run: config, per-image scores ``scores[explainer][metric]`` and total seconds."""

    config: dict
    index: np.ndarray
    label: np.ndarray
    target: np.ndarray
    scores: dict[str, dict[str, np.ndarray]]
    times: dict[str, dict[str, float]]
    examples: dict[str, np.ndarray]


def load_batches(run_dirs: list[Path]) -> tuple[dict, dict[int, dict[str, np.ndarray]]]:
    """Config and verified batch files of one run spread over ``run_dirs`` (shards on other
    machines). Damaged batch files are moved aside and reported, and count as missing."""
    config, batches = None, {}
    for d in run_dirs:
        path = Path(d) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{d} is not a quality run directory (no config.json)")
        c = read_json(path, fix="run `whiteboxdl quality evaluate` with the run's arguments "
                                "once more: it writes config.json again and keeps the batches")
        if config is not None and c != config:
            raise ValueError(f"{d} holds a run with another config; merge only shards of one run")
        config = c
        for f in sorted((Path(d) / "batches").glob("batch_[0-9]*.npz")):
            if f.name.endswith(".partial.npz"):
                continue
            b = int(f.stem.split("_")[1])
            arrays = read_batch(f, config, b)
            if arrays is not None:
                batches[b] = arrays
    return config, batches


def merge(run_dir: str | Path, extra_dirs: list[str | Path] = (), write: bool = True,
          n_boot: int = 10_000, partial: bool = False) -> Merged:
    """Merge all batches of a run and, if ``write``, write the outputs.

    An incomplete run is an error unless ``partial``: then the finished batches are merged and the
    summary states how many images they hold.
    """
    run_dir = Path(run_dir)
    config, batches = load_batches([run_dir, *map(Path, extra_dirs)])
    expected = -(-config["n"] // config["batch_size"])
    missing = sorted(set(range(expected)) - set(batches))
    if missing and not partial:
        raise ValueError(f"{len(missing)} of {expected} batches are missing (first: {missing[:5]}); "
                         "run the remaining shards of `whiteboxdl quality evaluate` first "
                         "(or merge with --partial)")
    if not batches:
        raise ValueError(f"{run_dir} holds no finished batch yet")
    ordered = [batches[b] for b in sorted(batches)]
    cat = {k: np.concatenate([o[k] for o in ordered]) for k in ("index", "label", "target")}
    scores = {e: {m: np.concatenate([o[f"score/{e}/{m}"] for o in ordered])
                  for m in config["metrics"]} for e in config["explainers"]}
    times = {e: {part: float(sum(o[f"time/{e}/{part}"] for o in ordered))
                 for part in ["attribution", *config["metrics"]]} for e in config["explainers"]}
    first = batches.get(0, {})
    examples = {k.split("/", 1)[1]: v for k, v in first.items() if k.startswith("examples/")}
    merged = Merged(config, cat["index"], cat["label"], cat["target"], scores, times, examples)
    if write:
        write_outputs(merged, run_dir, n_boot=n_boot)
    return merged


# ----------------------------------------------------------------------------- tables
def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "nan"
    return f"{v:.3g}" if abs(v) >= 10 or abs(v) < 0.01 else f"{v:.3f}"


def _finite_mean(s: np.ndarray) -> float:
    s = s[np.isfinite(s)]
    return float(s.mean()) if s.size else float("nan")


def means_table(m: Merged) -> tuple[list[str], list[list[str]]]:
    """Rows of explainer means per metric over the finite scores (a correlation is NaN for a
    constant attribution, Max Sensitivity infinite for an all-zero one; their count in brackets)."""
    metrics = m.config["metrics"]
    header = ["explainer"] + [f"{get_metric(k).short} {'↑' if get_metric(k).higher_is_better else '↓'}"
                              for k in metrics]
    rows = []
    for e in m.config["explainers"]:
        cells = [e]
        for k in metrics:
            s = m.scores[e][k]
            bad = int(np.sum(~np.isfinite(s)))
            cells.append(_fmt(_finite_mean(s)) + (f" ({bad} n/a)" if bad else ""))
        rows.append(cells)
    return header, rows


def best_per_metric(m: Merged) -> dict[str, str]:
    """The explainer with the best mean for each metric."""
    best = {}
    for k in m.config["metrics"]:
        means = {e: _finite_mean(m.scores[e][k]) for e in m.config["explainers"]
                 if np.isfinite(m.scores[e][k]).any()}
        if means:
            pick = max if get_metric(k).higher_is_better else min
            best[k] = pick(means, key=means.get)
    return best


def paired_table(m: Merged, n_boot: int = 10_000) -> tuple[list[str], list[list[str]]]:
    """Mean paired differences (pullback variant − gradient counterpart) with 95% intervals."""
    header = ["pullback − counterpart"] + [get_metric(k).short for k in m.config["metrics"]]
    rows = []
    for ours, theirs in COUNTERPARTS.items():
        if ours not in m.scores or theirs not in m.scores:
            continue
        cells = [f"{ours} − {theirs}"]
        for k in m.config["metrics"]:
            r = paired_bootstrap(m.scores[ours][k], m.scores[theirs][k], n_boot=n_boot,
                                 seed=m.config["seed"])
            better = (r.low > 0) if get_metric(k).higher_is_better else (r.high < 0)
            worse = (r.high < 0) if get_metric(k).higher_is_better else (r.low > 0)
            mark = " ✓" if better else (" ✗" if worse else "")
            cells.append(f"{_fmt(r.mean)} [{_fmt(r.low)}, {_fmt(r.high)}]{mark}")
        rows.append(cells)
    return header, rows


def times_table(m: Merged) -> tuple[list[str], list[list[str]]]:
    """Total seconds per explainer: attribution and each metric."""
    parts = ["attribution", *m.config["metrics"]]
    header = ["explainer"] + [("attrib." if p == "attribution" else get_metric(p).short) + " s"
                              for p in parts] + ["total s"]
    rows = [[e] + [f"{m.times[e][p]:.1f}" for p in parts] + [f"{sum(m.times[e].values()):.1f}"]
            for e in m.config["explainers"]]
    totals = ["all"] + [f"{sum(m.times[e][p] for e in m.times):.1f}" for p in parts]
    rows.append(totals + [f"{sum(sum(t.values()) for t in m.times.values()):.1f}"])
    return header, rows


def summary_markdown(m: Merged, n_boot: int = 10_000) -> str:
    """The run's Markdown summary: means, paired differences, winners, timings."""
    c = m.config
    partial = f" (partial: {len(m.index)} of {c['n']})" if len(m.index) < c["n"] else ""
    lines = [f"model `{c['model']}`, data `{c['data']}`, n = {len(m.index)} images{partial}, "
             f"targets = {c['target']}s, seed {c['seed']}", "", "Means over images:", "",
             markdown_table(*means_table(m)), "",
             "Paired differences (mean [95% bootstrap interval], ✓ = pullback significantly better,"
             " ✗ = significantly worse):", "", markdown_table(*paired_table(m, n_boot)), "",
             "Best mean per metric: " + ", ".join(f"{get_metric(k).short}: {e}"
                                                  for k, e in best_per_metric(m).items()), "",
             "Seconds (sum over batches):", "", markdown_table(*times_table(m))]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- outputs
def examples_figure(m: Merged, path: Path) -> Path:
    """Rows = example images, columns = input then each explainer (``bwr``, symmetric scale)."""
    from whiteboxdl.viz.figures import new_figure, save_figure

    x = m.examples["x"]
    names = [e for e in m.config["explainers"] if e in m.examples]
    fig, axes = new_figure(len(x), len(names) + 1, size=(1.6 * (len(names) + 1), 1.7 * len(x)))
    for r in range(len(x)):
        img = x[r].transpose(1, 2, 0)
        lo, hi = img.min(), img.max()
        axes[r][0].imshow((img - lo) / (hi - lo + 1e-12), cmap="gray" if img.shape[2] == 1 else None)
        axes[r][0].set_title(f"target {m.target[r]}", fontsize=7)
        for c, e in enumerate(names, start=1):
            a = m.examples[e][r].sum(0)
            v = float(np.abs(a).max()) or 1.0
            axes[r][c].imshow(a, cmap="bwr", vmin=-v, vmax=v)
            if r == 0:
                axes[r][c].set_title(e, fontsize=7)
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, path)


def _write_csv(m: Merged, path: Path) -> None:
    metrics = m.config["metrics"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "target", "explainer", *metrics])
        for e in m.config["explainers"]:
            for i in range(len(m.index)):
                w.writerow([int(m.index[i]), int(m.label[i]), int(m.target[i]), e,
                            *(repr(float(m.scores[e][k][i])) for k in metrics)])


def write_outputs(m: Merged, run_dir: Path, n_boot: int = 10_000) -> None:
    """Write scores.npz, scores.csv, summary.md, examples.png and report.html."""
    save_npz(run_dir / "scores.npz", index=m.index, label=m.label, target=m.target,
             **{f"score/{e}/{k}": v for e, d in m.scores.items() for k, v in d.items()})
    _write_csv(m, run_dir / "scores.csv")
    summary = summary_markdown(m, n_boot)
    write_text(run_dir / "summary.md", summary)
    fig = examples_figure(m, run_dir / "examples.png") if "x" in m.examples else None
    report = Report(f"Explanation quality: {m.config['model']} on {m.config['data']}")
    report.paragraph(summary.splitlines()[0])
    for title, (header, rows) in [("Means", means_table(m)),
                                  ("Paired differences (95% bootstrap)", paired_table(m, n_boot)),
                                  ("Seconds", times_table(m))]:
        report.heading(title)
        report.table(header, rows)
    if fig:
        report.figure(fig, "Example attributions (red positive, blue negative)")
    report.write(run_dir / "report.html")
