"""Merge a run's batch files into per-image scores, tables, a figure and an HTML report.

Outputs in the run directory: ``scores.npz`` (``score/<explainer>/<metric>`` arrays over images,
``index``, ``label``, ``target``), ``scores.csv`` (one row per image and explainer),
``summary.md`` (means, paired differences with seeded 95% bootstrap intervals, timings),
``examples.png`` (every explainer), ``examples/<explainer>.png`` (one small figure each) and
``report.html``.

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
from whiteboxdl.quality.metric_registry import MetricSpec, get_metric
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
    #: Images each row of ``times`` was measured on (default: all of ``index``).
    timed: dict[str, int] | None = None

    def images_timed(self, row: str) -> int:
        return (self.timed or {}).get(row, len(self.index))


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
    shared = {m: float(sum(o[f"time/shared/{m}"] for o in ordered if f"time/shared/{m}" in o))
              for m in config["metrics"]}
    if any(shared.values()):
        times["(shared)"] = {"attribution": 0.0, **shared}
    first = batches.get(0, {})
    examples = {k.split("/", 1)[1]: v for k, v in first.items() if k.startswith("examples/")}
    merged = Merged(config, cat["index"], cat["label"], cat["target"], scores, times, examples)
    if write:
        write_outputs(merged, run_dir, n_boot=n_boot)
    return merged


#: Settings that runs must share to be joined (they then met the same images and perturbations).
JOIN_KEYS = ("model", "data", "batch_size", "seed", "target", "metrics", "metric_options",
             "metric_variants", "protocol")


def join(run_dirs: list[str | Path], out_dir: str | Path | None = None, n_boot: int = 10_000,
         partial: bool = False) -> Merged:
    """Join runs that scored different explainers on the same images into one table.

    The runs must agree on :data:`JOIN_KEYS`; their sizes may differ: the join holds the images
    all of them scored (a smaller run's images are the first of a larger one, in the same
    batches, so every explainer met the same perturbations and the paired intervals hold).
    Times stay each run's own (per image in the summary). Written to ``out_dir`` if given.
    """
    runs = [merge(d, write=False, partial=partial) for d in run_dirs]
    if len(runs) < 2:
        raise ValueError("join needs at least two run directories")
    first = runs[0]
    for d, r in zip(run_dirs[1:], runs[1:]):
        diff = [k for k in JOIN_KEYS if r.config.get(k) != first.config.get(k)]
        if diff:
            raise ValueError(f"{d} differs from {run_dirs[0]} in {', '.join(diff)}; only runs "
                             "with the same images, metrics and seeds can be joined")
    n = min(len(r.index) for r in runs)
    for d, r in zip(run_dirs, runs):
        if not (np.array_equal(r.index[:n], first.index[:n])
                and np.array_equal(r.label[:n], first.label[:n])):
            raise ValueError(f"{d} did not score the same first {n} images")
    config = dict(first.config, n=n, explainers=[], options={}, variants={})
    scores, times, timed, examples = {}, {}, {}, {"x": first.examples.get("x")}
    for r in runs:
        for e in r.config["explainers"]:
            if e in scores:
                raise ValueError(f"explainer {e!r} is in more than one of the joined runs")
            config["explainers"].append(e)
            scores[e] = {k: v[:n] for k, v in r.scores[e].items()}
            times[e], timed[e] = r.times[e], len(r.index)
            if e in r.examples:
                examples[e] = r.examples[e]
        config["options"].update(r.config.get("options", {}))
        config["variants"].update(r.config.get("variants", {}))
    if "(shared)" in first.times:
        times["(shared)"], timed["(shared)"] = first.times["(shared)"], len(first.index)
    if examples["x"] is None:
        del examples["x"]
    joined = Merged(config, first.index[:n], first.label[:n], first.target[:n], scores, times,
                    examples, timed)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_outputs(joined, Path(out_dir), n_boot=n_boot)
    return joined


# ----------------------------------------------------------------------------- tables
def metric_spec(config: dict, name: str) -> MetricSpec:
    """The registered metric behind an evaluated metric name (a variant: its base)."""
    variant = config.get("metric_variants", {}).get(name)
    return get_metric(variant["of"] if variant else name)


def metric_label(config: dict, name: str) -> str:
    """Short column label: the metric's short name, or the variant's own name."""
    return name if name in config.get("metric_variants", {}) else metric_spec(config, name).short


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
    header = ["explainer"] + [f"{metric_label(m.config, k)} "
                              f"{'↑' if metric_spec(m.config, k).higher_is_better else '↓'}"
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
            pick = max if metric_spec(m.config, k).higher_is_better else min
            best[k] = pick(means, key=means.get)
    return best


def paired_table(m: Merged, n_boot: int = 10_000) -> tuple[list[str], list[list[str]]]:
    """Mean paired differences (pullback variant − gradient counterpart) with 95% intervals."""
    header = ["pullback − counterpart"] + [metric_label(m.config, k) for k in m.config["metrics"]]
    rows = []
    for ours, theirs in COUNTERPARTS.items():
        if ours not in m.scores or theirs not in m.scores:
            continue
        cells = [f"{ours} − {theirs}"]
        for k in m.config["metrics"]:
            r = paired_bootstrap(m.scores[ours][k], m.scores[theirs][k], n_boot=n_boot,
                                 seed=m.config["seed"])
            higher = metric_spec(m.config, k).higher_is_better
            better = (r.low > 0) if higher else (r.high < 0)
            worse = (r.high < 0) if higher else (r.low > 0)
            mark = " ✓" if better else (" ✗" if worse else "")
            cells.append(f"{_fmt(r.mean)} [{_fmt(r.low)}, {_fmt(r.high)}]{mark}")
        rows.append(cells)
    return header, rows


def times_table(m: Merged) -> tuple[list[str], list[list[str]]]:
    """Seconds per explainer: attribution and each metric, summed over the images it was timed
    on, and its total per image."""
    parts = ["attribution", *m.config["metrics"]]
    header = ["explainer"] + [("attrib." if p == "attribution" else metric_label(m.config, p))
                              + " s" for p in parts] + ["total s", "images", "s/image"]
    rows = []
    for e in m.times:
        total, k = sum(m.times[e].values()), m.images_timed(e)
        rows.append([e] + [f"{m.times[e][p]:.1f}" for p in parts]
                    + [f"{total:.1f}", str(k), f"{total / max(1, k):.1f}"])
    per_image = sum(sum(t.values()) / max(1, m.images_timed(e)) for e, t in m.times.items())
    totals = ["all"] + [f"{sum(m.times[e][p] for e in m.times):.1f}" for p in parts]
    rows.append(totals + [f"{sum(sum(t.values()) for t in m.times.values()):.1f}", "",
                          f"{per_image:.1f}"])
    return header, rows


def summary_markdown(m: Merged, n_boot: int = 10_000) -> str:
    """The run's Markdown summary: means, paired differences, winners, timings."""
    c = m.config
    partial = f" (partial: {len(m.index)} of {c['n']})" if len(m.index) < c["n"] else ""
    lines = [f"model `{c['model']}`, data `{c['data']}`, n = {len(m.index)} images{partial}, "
             f"targets = {c['target']}s, seed {c['seed']}, protocol {c.get('protocol', 'default')}",
             "", "Means over images:", "",
             markdown_table(*means_table(m)), "",
             "Paired differences (mean [95% bootstrap interval], ✓ = pullback significantly better,"
             " ✗ = significantly worse):", "", markdown_table(*paired_table(m, n_boot)), "",
             "Best mean per metric: " + ", ".join(f"{metric_label(c, k)}: {e}"
                                                  for k, e in best_per_metric(m).items()), "",
             "Seconds (sum over batches; \"(shared)\": the perturbed forward passes that every "
             "explainer shares):", "", markdown_table(*times_table(m))]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- outputs
def examples_figure(m: Merged, path: Path) -> Path:
    """Rows = example images, columns = input then each explainer (``bwr``, symmetric scale)."""
    from whiteboxdl.viz.figures import new_figure, save_figure

    x = m.examples["x"]
    names = [e for e in m.config["explainers"] if e in m.examples]
    fig, axes = new_figure(len(x), len(names) + 1, size=(1.6 * (len(names) + 1), 1.7 * len(x)))
    for r in range(len(x)):
        _show_image(axes[r][0], x[r])
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


def _show_image(ax, img: np.ndarray) -> None:
    img = img.transpose(1, 2, 0)
    lo, hi = img.min(), img.max()
    ax.imshow((img - lo) / (hi - lo + 1e-12), cmap="gray" if img.shape[2] == 1 else None)


def explainer_figure(m: Merged, name: str, path: Path, dpi: int = 60) -> Path:
    """A small PNG for one explainer: the example inputs (top) and its maps summed over
    channels (bottom, ``bwr``, symmetric scale per map)."""
    from whiteboxdl.viz.figures import new_figure, save_figure

    x, maps = m.examples["x"], m.examples[name]
    fig, axes = new_figure(2, len(x), size=(1.5 * len(x), 3.2))
    for c in range(len(x)):
        _show_image(axes[0][c], x[c])
        axes[0][c].set_title(f"target {m.target[c]}", fontsize=7)
        a = maps[c].sum(0)
        v = float(np.abs(a).max()) or 1.0
        axes[1][c].imshow(a, cmap="bwr", vmin=-v, vmax=v)
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(name, fontsize=8)
    return save_figure(fig, path, dpi=dpi)


def _write_csv(m: Merged, path: Path) -> None:
    metrics = m.config["metrics"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "target", "explainer", *metrics])
        for e in m.config["explainers"]:
            for i in range(len(m.index)):
                w.writerow([int(m.index[i]), int(m.label[i]), int(m.target[i]), e,
                            *(repr(float(m.scores[e][k][i])) for k in metrics)])


def _file_name(name: str) -> str:
    """A file-system-safe form of an explainer (or variant) name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def write_outputs(m: Merged, run_dir: Path, n_boot: int = 10_000) -> None:
    """Write scores.npz, scores.csv, summary.md, examples.png and report.html."""
    save_npz(run_dir / "scores.npz", index=m.index, label=m.label, target=m.target,
             **{f"score/{e}/{k}": v for e, d in m.scores.items() for k, v in d.items()})
    _write_csv(m, run_dir / "scores.csv")
    summary = summary_markdown(m, n_boot)
    write_text(run_dir / "summary.md", summary)
    fig = examples_figure(m, run_dir / "examples.png") if "x" in m.examples else None
    if fig:
        for name in m.config["explainers"]:
            if name in m.examples:
                explainer_figure(m, name, run_dir / "examples" / f"{_file_name(name)}.png")
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
