"""One PNG figure per stability measure, drawn from the ``stability.json`` results dict.

Example
-------
>>> from whiteboxdl.stability.plots import plot_all
>>> paths = plot_all(results, "runs/mnist-cnn/figures")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps

from whiteboxdl.stability.measures import OVERALL
from whiteboxdl.viz.figures import new_figure, save_figure


def _layer_lines(ax, steps, series: dict, overall_key: str = OVERALL):
    for name, values in series.items():
        if name == overall_key:
            continue
        ax.plot(steps, values, lw=1, alpha=0.8, label=name)
    if overall_key in series:
        ax.plot(steps, series[overall_key], color="k", lw=2.2, label=overall_key)


def _layer_label(results: dict) -> dict[str, str]:
    return {l["name"]: f"{l['name']} ({l['kind']})" for l in results["patterns"]["layers"]}


def _relabel(series: dict, labels: dict[str, str]) -> dict:
    return {labels.get(k, k): v for k, v in series.items()}


def plot_flip_rates(results: dict, path: Path) -> Path:
    p = results["patterns"]
    fig, ax = new_figure(size=(6.5, 4))
    _layer_lines(ax, p["steps"][1:], _relabel(p["flip_rate"], _layer_label(results)))
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set(xlabel="training step", ylabel="fraction of gates flipped since previous snapshot",
           title="Flip rate between consecutive snapshots")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_settling(results: dict, path: Path) -> Path:
    p = results["patterns"]
    labels = _layer_label(results)
    fig, ax = new_figure(size=(6.5, 4))
    _layer_lines(ax, p["steps"], _relabel({k: v["fraction_settled"] for k, v in p["settling"].items()},
                                          labels))
    for level in (0.9, 0.99):
        ax.axhline(level, color="grey", ls=":", lw=1)
    s = p["settling"].get(OVERALL)
    if s:
        ax.set_title(f"Settled gates (never flip again): 90% by step {s['step_90']}, "
                     f"99% by {s['step_99']}", fontsize=9)
    ax.set(xlabel="training step", ylabel="fraction of gates settled", ylim=(0, 1.01))
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _normalised(values) -> np.ndarray:
    """Divide by the first value; the final zero becomes NaN (log axis)."""
    v = np.asarray(values, float)
    v = v / max(v[0], 1e-12)
    return np.where(v > 0, v, np.nan)


def plot_distance(results: dict, path: Path) -> Path:
    """Left: gates' Hamming distance to the final pattern per layer. Right: gates vs weights,
    each normalised by its value at step 0 (the speed comparison)."""
    p, w = results["patterns"], results.get("weights") or {}
    fig, axes = new_figure(1, 2, size=(11, 4))
    axes = axes.ravel()
    _layer_lines(axes[0], p["steps"], _relabel(p["distance_to_final"], _layer_label(results)))
    axes[0].set(xlabel="training step", ylabel="fraction of gates differing from final",
                title="Pattern distance to the final model")
    axes[0].legend(fontsize=7)
    gates = _normalised(p["distance_to_final"][OVERALL])
    axes[1].plot(p["steps"], gates, "k-", lw=2, label="ReLU gates (Hamming)")
    if w:
        for name, values in w["distance_to_final"].items():
            style = dict(color="C3", lw=2) if name == "all weights" else dict(lw=0.8, alpha=0.5)
            axes[1].plot(w["steps"], _normalised(values), label=name if name == "all weights"
                         else None, **style)
    axes[1].set_yscale("log")
    axes[1].set(xlabel="training step", ylabel="distance to final / distance at step 0",
                title="Gates vs weights: how fast each approaches its final value")
    axes[1].legend(fontsize=8)
    return save_figure(fig, path)


def plot_margin(results: dict, path: Path) -> Path:
    m = results["patterns"]["margin"]
    fig, axes = new_figure(1, 2, size=(11, 4))
    axes = axes.ravel()
    for name, rel in m.items():
        k = len(rel["mean_settle_step"])
        style = dict(color="k", lw=2.2) if name == OVERALL else dict(lw=1, alpha=0.8)
        label = f"{name} (ρ={rel['spearman']:.2f})"
        axes[0].plot(np.arange(1, k + 1), rel["mean_settle_step"], marker="o", ms=3, label=label,
                     **style)
        axes[1].plot(np.arange(1, k + 1), rel["late_fraction"], marker="o", ms=3, label=name,
                     **style)
    axes[0].set(xlabel="final-model margin |z|/std, quantile bin (1 = weakest)",
                ylabel="mean settling step", title="When do gates settle, by final margin?")
    axes[1].set(xlabel="final-model margin |z|/std, quantile bin (1 = weakest)",
                ylabel="fraction of late gates", title="Late settlers (last ≥10%) by margin")
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def plot_weight_change(results: dict, path: Path) -> Path:
    p = results["patterns"]
    steps = p["steps"]
    names = sorted({k for change in p["weight_change"] for k in change if k.endswith("weight")})
    fig, ax = new_figure(size=(6.5, 4))
    for name in names:
        values = [c.get(name, np.nan) for c in p["weight_change"]]
        ax.plot(steps[1:], values[1:], lw=1, label=name)
    ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel="||W_s − W_prev|| / ||W_prev||",
           title="Weights: relative change between consecutive snapshots")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _band(ax, x, stats: list[dict], label: str, **style):
    mean = [s["mean"] for s in stats]
    ax.plot(x, mean, label=label, **style)
    ax.fill_between(x, [s["q25"] for s in stats], [s["q75"] for s in stats], alpha=0.12,
                    color=style.get("color"))


def plot_path_kernel(results: dict, path: Path) -> Path:
    a = results["alignment"]["path_kernel"]
    default = str(results["alignment"]["default_temperature"])
    fig, ax = new_figure(size=(6.5, 4))
    cmap = colormaps["viridis"]
    temps = sorted(a["pullback"], key=float)
    for i, t in enumerate(temps):
        if t == default:
            _band(ax, a["steps"], a["pullback"][t], f"pullback T={float(t):g} (band: quartiles)",
                  color="C3", lw=2.4)
        else:
            ax.plot(a["steps"], [s["mean"] for s in a["pullback"][t]], lw=0.9,
                    color=cmap(i / max(len(temps) - 1, 1)), label=f"pullback T={float(t):g}")
    _band(ax, a["steps"], a["vanilla"], "vanilla gradient", color="k", lw=2, ls="--")
    ax.set(xlabel="snapshot step whose gates are frozen",
           ylabel="cos(final-model attribution, path-kernel gradient)",
           title="(a) Final pullback vs path-kernel machine of each snapshot")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_temperature_sweep(results: dict, path: Path) -> Path:
    sweep = results["alignment"]["temperature_sweep"]
    temps = sorted(sweep, key=float)
    fig, ax = new_figure(size=(6.5, 4))
    _band(ax, [float(t) for t in temps], [sweep[t] for t in temps], "mean (band: quartiles)",
          color="C0", marker="o")
    ax.set_xscale("log")
    ax.set(xlabel="temperature T (ReLU gate and max-pool routing)",
           ylabel="cos(vanilla gradient, pullback)", title="(b) Vanilla gradient vs pullback")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_checkpoints(results: dict, path: Path) -> Path:
    c = results["alignment"]["checkpoints"]
    fig, ax = new_figure(size=(6.5, 4))
    _band(ax, c["steps"], c["pullback"], "excitation pullback", color="C3", marker="o", ms=3)
    _band(ax, c["steps"], c["vanilla"], "vanilla gradient", color="k", ls="--", marker="o", ms=3)
    ax.set(xlabel="training step (vs previous checkpoint)",
           ylabel="cos(attribution at step, at previous)",
           title="(c) Consecutive checkpoints' attributions")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_examples(examples: dict, path: Path) -> Path:
    """Rows = probe images; columns = image, final pullback, vanilla gradient and frozen-gate
    gradients of earlier snapshots (each map on its own symmetric ``bwr`` scale)."""
    frozen = [f"frozen_{int(s)}" for s in examples["frozen_steps"]]
    cols = ["x", "pullback", "vanilla"] + frozen
    titles = ["image", "pullback (final, T=0.3)", "vanilla (final)"] + [
        f"gates of step {int(s)}" for s in examples["frozen_steps"]]
    n = len(examples["x"])
    fig, axes = new_figure(n, len(cols), size=(1.9 * len(cols), 1.9 * n))
    for r in range(n):
        for c, key in enumerate(cols):
            ax = axes[r][c]
            img = np.asarray(examples[key][r]).sum(0)
            if key == "x":
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            else:
                lim = float(np.abs(img).max()) or 1.0
                ax.imshow(img, cmap="bwr", vmin=-lim, vmax=lim)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
        axes[r][0].set_ylabel(f"label {int(examples['y'][r])}", fontsize=7)
    fig.suptitle("Final-model attributions vs path-kernel gradients (final weights, earlier gates)",
                 fontsize=9)
    return save_figure(fig, path)


#: figure file name → (plotting function, caption)
FIGURES = {
    "flip_rate.png": (plot_flip_rates, "Flip rate between consecutive snapshots, per layer."),
    "settling.png": (plot_settling, "Fraction of gates that never flip again after each step."),
    "distance.png": (plot_distance, "Distance to the final pattern; gates vs weights speed."),
    "margin.png": (plot_margin, "Settling vs the final model's pre-activation margin |z|/std."),
    "weight_change.png": (plot_weight_change, "Relative weight change between snapshots."),
    "path_kernel.png": (plot_path_kernel, "(a) Pullback of the final model vs gradients of the "
                        "path-kernel machines of earlier snapshots."),
    "temperature_sweep.png": (plot_temperature_sweep, "(b) Vanilla gradient vs pullback over T."),
    "checkpoints.png": (plot_checkpoints, "(c) Attributions of consecutive checkpoints."),
}


def _available(results: dict, name: str) -> bool:
    needs = {"margin.png": lambda r: "margin" in r["patterns"],
             "flip_rate.png": lambda r: bool(r["patterns"]["flip_rate"]),
             "path_kernel.png": lambda r: "alignment" in r,
             "temperature_sweep.png": lambda r: "alignment" in r,
             "checkpoints.png": lambda r: "checkpoints" in r.get("alignment", {})}
    return needs.get(name, lambda r: True)(results)


def plot_all(results: dict, out_dir: str | Path,
             examples: dict | None = None) -> dict[str, Path]:
    """Draw every figure the results allow (and the examples grid if given); returns
    ``{file name: path}``."""
    out_dir = Path(out_dir)
    paths = {name: fn(results, out_dir / name) for name, (fn, _) in FIGURES.items()
             if _available(results, name)}
    if examples is not None:
        paths["examples.png"] = plot_examples(examples, out_dir / "examples.png")
    return paths
