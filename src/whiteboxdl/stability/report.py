"""HTML report of a stability run: tables, one figure per measure and what the numbers say.

Example
-------
>>> from whiteboxdl.stability.report import write_report
>>> path = write_report("runs/mnist-cnn")          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from whiteboxdl.runfiles import load_npz, read_json, read_verified
from whiteboxdl.stability.analysis import EXAMPLES_FILE, RESULTS_FILE, analyze
from whiteboxdl.stability.measures import OVERALL
from whiteboxdl.stability.plots import FIGURES, plot_all
from whiteboxdl.viz.report import Report, markdown_table


def _nearest(steps: list[int], step: int) -> int:
    return int(np.argmin(np.abs(np.asarray(steps) - step)))


def interpret(results: dict) -> list[tuple[str, bool]]:
    """Sentences stating what the measures say about the path-stability hypothesis.

    Each item is ``(text, contradicts)``; ``contradicts`` marks findings against the hypothesis.
    """
    p = results["patterns"]
    steps = p["steps"]
    total = steps[-1] or 1
    out: list[tuple[str, bool]] = []
    s = p["settling"].get(OVERALL)
    if s is None:
        return [("The model has no ReLU gates; nothing to say about gating.", True)]
    flips = p["flip_rate"].get(OVERALL, [])
    if len(flips):
        out.append((f"Flip rate of all ReLU gates between snapshots: {flips[0]:.2%} in the first "
                    f"interval, {flips[-1]:.3%} in the last (interval {steps[1] - steps[0]} steps).",
                    False))
    gates = sum(layer["gates"] for layer in p["layers"] if layer["kind"] == "relu")
    out.append((f"90% of the {gates} ReLU gates per probe image have settled (never flip again) "
                f"by step {s['step_90']} "
                f"({s['step_90'] / total:.0%} of training), 99% by step {s['step_99']} "
                f"({s['step_99'] / total:.0%}); {s['never_flipped']:.1%} never flipped at all.",
                s["step_90"] / total > 0.5))
    w = results.get("weights") or {}
    if w.get("speed"):
        parts, later = [], []
        for frac, sp in w["speed"].items():
            g, wt = sp["gates"], sp["weights"]
            parts.append(f"{float(frac):.0%} of the initial distance: gates from step {g}, weights "
                         f"from step {wt}" + (f" ({wt / g:.1f}× later)" if 0 < g < wt else ""))
            later.append(g < wt)
        verdict = ("the activation pattern approaches its final state earlier than the weights do "
                   "at every threshold." if all(later) else
                   "the pattern is NOT faster than the weights at every threshold (see the figure: "
                   "low-margin gates keep flipping to the end).")
        out.append(("Speed (distance to the final value stays below a fraction of its initial "
                    "value): " + "; ".join(parts) + " — " + verdict, not all(later)))
    m = (p.get("margin") or {}).get(OVERALL)
    if m and np.isnan(m["late_median_margin"]):
        out.append(("Margin: 90% of the gates had already settled at the first snapshot, so there "
                    "is no group of late gates to compare; record more often to resolve it.", False))
    elif m:
        weak = m["late_median_margin"] < m["median_margin"] and m["spearman"] < 0
        out.append((f"Margin: gates that settle last (the last ≥10%) have median final margin "
                    f"|z|/std = {m['late_median_margin']:.3f} versus {m['median_margin']:.3f} for "
                    f"all gates; rank correlation between margin and settling step ρ = "
                    f"{m['spearman']:.2f}. " + ("The late flippers are the weakly excited ones, as "
                                                "the hypothesis says." if weak else
                                                "The late flippers are NOT the weakly excited ones."),
                    not weak))
    a = results.get("alignment")
    if a:
        pk = a["path_kernel"]
        t0 = str(a["default_temperature"])
        t_min = min(pk["pullback"], key=float)
        # the snapshot nearest to when 90% of gates have settled, but never the final one
        i = min(_nearest(pk["steps"], s["step_90"]), max(len(pk["steps"]) - 2, 0))
        pb, va = pk["pullback"][t0][i]["mean"], pk["vanilla"][i]["mean"]
        tie = pk["pullback"][t_min][i]["mean"]
        pb0, va0 = pk["pullback"][t0][0]["mean"], pk["vanilla"][0]["mean"]
        best_t = max(pk["pullback"], key=lambda t: pk["pullback"][t][i]["mean"])
        out.append((f"(a) Path-kernel alignment: with the final weights and the gates of step "
                    f"{pk['steps'][i]} frozen, the final model's pullback (T={t0}) has mean cosine "
                    f"{pb:.3f} with that path-kernel machine's gradient, the vanilla gradient "
                    f"{va:.3f}, the pullback at T={float(t_min):g} (vanilla with max-pool ties "
                    f"split evenly) {tie:.3f}; with the step-{pk['steps'][0]} gates: pullback "
                    f"{pb0:.3f}, vanilla {va0:.3f}. Best-aligned temperature at step "
                    f"{pk['steps'][i]}: T={float(best_t):g}. " +
                    ("Soft gating brings the attribution closer to the earlier path kernel, as the "
                     "hypothesis predicts." if pb > max(va, tie) else
                     "Soft gating does NOT bring the attribution closer to that path kernel than "
                     "the (tie-split) vanilla gradient."), pb <= max(va, tie)))
        sweep = a["temperature_sweep"]
        temps = sorted(sweep, key=float)
        limit = sweep[temps[0]]["mean"]
        out.append(("(b) cos(vanilla gradient, pullback) over T: " + ", ".join(
            f"T={float(t):g}: {sweep[t]['mean']:.3f}" for t in temps) + "." +
            (f" Even at T={float(temps[0]):g} the cosine is only {limit:.3f}: where a max-pool "
             "window holds exact ties (constant image background after BatchNorm), the soft "
             "routing splits the gradient evenly while PyTorch's max-pool gives it all to the "
             "first element; so T → 0 does not recover the vanilla gradient on such inputs."
             if limit < 0.99 else ""), False))
        c = a.get("checkpoints")
        if c:
            half = len(c["steps"]) // 2
            pb_c = float(np.mean([v["mean"] for v in c["pullback"][half:]]))
            va_c = float(np.mean([v["mean"] for v in c["vanilla"][half:]]))
            out.append((f"(c) Consecutive checkpoints in the second half of training: pullbacks "
                        f"agree with mean cosine {pb_c:.3f}, vanilla gradients {va_c:.3f}" +
                        (" — pullbacks are the more stable explanation." if pb_c >= va_c else
                         " — pullbacks are NOT more stable than vanilla gradients."),
                        pb_c < va_c))
    return out


def layer_table(results: dict) -> tuple[list[str], list[list]]:
    """Header and rows: per layer settling steps, flips, final flip rate and margin correlation."""
    p = results["patterns"]
    header = ["layer", "kind", "gates/image", "settled 90% at", "settled 99% at",
              "mean flips/gate", "never flipped", "last flip rate", "ρ(margin, settle step)"]
    rows = []
    names = [(l["name"], l["kind"], l["gates"]) for l in p["layers"]]
    relu_total = sum(g for _, k, g in names if k == "relu")
    for name, kind, gates in names + [(OVERALL, "relu", relu_total)]:
        s = p["settling"][name]
        rho = (p.get("margin") or {}).get(name, {}).get("spearman")
        last = p["flip_rate"][name][-1] if p["flip_rate"] else float("nan")
        rows.append([name, kind, gates, s["step_90"], s["step_99"], f"{s['mean_flips']:.3f}",
                     f"{s['never_flipped']:.1%}", f"{last:.4%}",
                     "" if rho is None else f"{rho:.3f}"])
    return header, rows


def _cached_analysis(run_dir: Path) -> tuple[dict | None, dict | None]:
    """``stability.json`` and ``examples.npz`` of an earlier analysis if both are intact (or the
    examples were never written); ``(None, None)`` means: analyse again."""
    action = "analysing the run again"
    results = read_verified(run_dir / RESULTS_FILE, read_json, action=action)
    if not isinstance(results, dict) or "patterns" not in results:
        return None, None
    examples_path = run_dir / EXAMPLES_FILE
    written = examples_path.is_file()
    examples = read_verified(examples_path, load_npz, action=action)
    if written and examples is None:  # damaged: set aside, the analysis writes it again
        return None, None
    return results, examples


def write_report(run_dir: str | Path, recompute: bool = False, **analyze_kwargs) -> Path:
    """Analyse ``run_dir`` (or reuse ``stability.json``), draw the figures, write ``report.html``."""
    run_dir = Path(run_dir)
    results, examples = (None, None) if recompute else _cached_analysis(run_dir)
    if results is None:
        results = analyze(run_dir, **analyze_kwargs)
        examples = read_verified(run_dir / EXAMPLES_FILE, load_npz)
    figures = plot_all(results, run_dir / "figures", examples)
    meta = results.get("meta", {})
    report = Report(f"Path stability: {meta.get('model', 'model')} on {meta.get('dataset', '?')}")
    info = read_verified(run_dir / "run.json", read_json,
                         action="leaving the timings out of the report") or {}
    report.paragraph(
        f"Run {run_dir}: {len(results['patterns']['steps'])} snapshots every {meta.get('every')} "
        f"steps on {meta.get('n_probe')} fixed probe images; final test accuracy "
        f"{results.get('training', {}).get('test_acc', float('nan')):.4f}."
        + (f" Tracking took {info['tracking_seconds']:.1f} s of {info['seconds']:.1f} s "
           f"({info['tracking_fraction']:.1%} overhead; shared CPU)." if info else ""))
    report.heading("What the numbers say")
    for text, contradicts in interpret(results):
        report.paragraph(text, warn=contradicts)
    report.paragraph("Red sentences are findings against the path-stability hypothesis.")
    report.heading("Per layer")
    report.table(*layer_table(results))
    report.heading("Figures")
    for name, path in figures.items():
        report.figure(path, FIGURES[name][1] if name in FIGURES else
                      "Examples: the final model's pullback and vanilla gradient next to the "
                      "gradients of the final weights with gates frozen at earlier snapshots.")
    return report.write(run_dir / "report.html")


def summary_markdown(results: dict) -> str:
    """The per-layer table as Markdown (for BENCHMARKS.md and the terminal)."""
    return markdown_table(*layer_table(results))
