"""The robustness report: side-by-side table, gradient-masking check, reliability curves, galleries.

:func:`write_report` takes one or more evaluated models (:class:`ModelRun`; the first is the model
under study, the others baselines) and writes ``report.md`` and a self-contained ``report.html``
with PNG figures under ``figures/``.

Example
-------
>>> from whiteboxdl.robustness.report import masking_check
>>> # masking_check(result) -> {"apgd-ce": 0.92, "square": 0.95, "only_square": 0, "flag": False}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from whiteboxdl.robustness.attacks import get_attack
from whiteboxdl.robustness.evaluate import WORST, RobustnessResult
from whiteboxdl.robustness.figures import (adversarial_gallery, boundary_figure,
                                           is_semantic_network, pick_examples,
                                           processing_steps_figure)
from whiteboxdl.robustness.reliability import curve_rows, plot_reliability, reliability_curve
from whiteboxdl.viz.report import Report, markdown_table

#: Flag gradient masking when Square alone is this much (absolute accuracy) below APGD-CE alone.
MASKING_GAP = 0.01


@dataclass
class ModelRun:
    """One evaluated model and what the report shows about it."""

    label: str
    model: nn.Module
    x: torch.Tensor
    result: RobustnessResult
    class_names: Sequence[str]
    boundary: tuple[torch.Tensor, torch.Tensor] | None = None
    elapsed: float = 0.0


def apgd_ce_robust(result: RobustnessResult) -> torch.Tensor | None:
    """Robust flags under APGD-CE alone: run directly or the first step of ``standard``."""
    if "apgd-ce" in result.attacks:
        return result.robust("apgd-ce")
    if "standard" in result.broken_by:
        return result.cascade_robust("standard")["apgd-ce"]
    return None


def masking_check(result: RobustnessResult, gap: float = MASKING_GAP) -> dict | None:
    """Compare Square alone (black-box) with APGD-CE alone (white-box) on the same inputs.

    A black-box attack that finds clearly more adversarial examples than the white-box one hints
    at gradient masking. ``flag`` is set when Square's accuracy is more than ``gap`` below
    APGD-CE's. ``None`` if either attack is missing from the run.
    """
    apgd = apgd_ce_robust(result)
    if apgd is None or "square" not in result.attacks:
        return None
    square = result.robust("square")
    acc_apgd, acc_square = float(apgd.float().mean()), float(square.float().mean())
    return {"apgd-ce": acc_apgd, "square": acc_square,
            "only_square": int((apgd & ~square).sum()), "only_apgd": int((square & ~apgd).sum()),
            "flag": acc_apgd - acc_square > gap}


class _Writer:
    """Writes every section both to the HTML :class:`Report` and to Markdown."""

    def __init__(self, title: str, out_dir: Path):
        self.html = Report(title)
        self.md = [f"# {title}", ""]
        self.out_dir = out_dir

    def heading(self, text: str, level: int = 2) -> None:
        self.html.heading(text, level)
        self.md += ["#" * level + " " + text, ""]

    def paragraph(self, text: str, warn: bool = False) -> None:
        self.html.paragraph(text, warn=warn)
        self.md += [f"**{text}**" if warn else text, ""]

    def table(self, header, rows) -> None:
        self.html.table(header, rows)
        self.md += [markdown_table(header, rows), ""]

    def figure(self, path: Path, caption: str) -> None:
        self.html.figure(path, caption)
        self.md += [f"![{caption}]({path.relative_to(self.out_dir).as_posix()})", "", f"*{caption}*",
                    ""]

    def write(self) -> tuple[Path, Path]:
        md = self.out_dir / "report.md"
        md.write_text("\n".join(self.md), encoding="utf-8")
        return md, self.html.write(self.out_dir / "report.html")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def _side_by_side(runs: Sequence[ModelRun], curves: dict) -> tuple[list[str], list[list[str]]]:
    header = ["measure"] + [r.label for r in runs]
    names: list[str] = []
    for run in runs:
        names += [a for a in run.result.attacks if a not in names]
    rows = [["clean accuracy"] + [f"{100 * r.result.clean_accuracy:.2f}%" for r in runs]]
    for name in names:
        rows.append([f"robust accuracy: {name}"] + [
            f"{100 * r.result.accuracy(name):.2f}%" if name in r.result.attacks else "–"
            for r in runs])
    rows.append(["robust accuracy: worst case"]
                + [f"{100 * r.result.accuracy(WORST):.2f}%" for r in runs])
    for recall in (0.8, 1.0):
        rows.append([f"precision at {100 * recall:.0f}% recall"] + [
            f"{100 * curves[r.label].precision_at(recall):.2f}%" if r.label in curves
            else "– (nothing robust)" for r in runs])
    rows.append(["images"] + [str(r.result.n) for r in runs])
    rows.append(["attack time (s)"] + [f"{sum(r.result.seconds.values()):.0f}" for r in runs])
    return header, rows


def write_report(runs: Sequence[ModelRun], out_dir: str | Path, command: str = "",
                 data_note: str = "", gap: float = MASKING_GAP) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (figures in ``out_dir/figures``)."""
    if not runs:
        raise ValueError("write_report needs at least one evaluated model")
    out_dir = Path(out_dir)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    config = runs[0].result.config
    doc = _Writer(f"Robustness: {runs[0].label}", out_dir)

    doc.heading("Setting")
    doc.paragraph(f"Threat model: {config.norm}, eps = {config.eps:g} on inputs in [0, 1]. "
                  f"{data_note} An input counts as robust only if it is classified correctly both "
                  "clean and attacked (adversarial accuracy); the worst case counts it robust only "
                  "if no attack broke it.")
    doc.table(["attack", "access", "what"],
              [[a, get_attack(a).access, get_attack(a).description] for a in config.attacks])
    if command:
        doc.paragraph(f"Command: {command}")

    curves = {run.label: reliability_curve(run.result.robust(WORST), run.result.worst_inputs().conf)
              for run in runs if run.result.robust(WORST).any()}

    doc.heading("Results side by side")
    doc.table(*_side_by_side(runs, curves))

    doc.heading("Gradient-masking check")
    doc.paragraph("Square is a black-box random search; it needs no gradients. If it finds "
                  "clearly more adversarial examples than the white-box APGD-CE, the gradients "
                  f"are misleading the white-box attack (gradient masking). Flagged when Square "
                  f"alone is more than {100 * gap:.1f} points below APGD-CE alone.")
    rows, flags = [], []
    for run in runs:
        check = masking_check(run.result, gap)
        if check is None:
            rows.append([run.label, "–", "–", "–", "not run (needs square and apgd-ce/standard)"])
            continue
        rows.append([run.label, f"{100 * check['apgd-ce']:.2f}%", f"{100 * check['square']:.2f}%",
                     str(check["only_square"]), "FLAG" if check["flag"] else "ok"])
        if check["flag"]:
            flags.append(run.label)
    doc.table(["model", "APGD-CE alone", "Square alone", "broken only by Square", "verdict"],
              rows)
    for label in flags:
        doc.paragraph(f"WARNING: for {label}, the black-box Square attack finds more adversarial "
                      "examples than white-box APGD-CE: possible gradient masking; trust the "
                      "worst case, not the white-box numbers.", warn=True)

    doc.heading("Reliability under attack")
    doc.paragraph("Precision-recall of 'classified correctly under attack' ranked by the max "
                  "softmax probability on the attacked input (the strongest attack per input). "
                  "At 100% recall every input is accepted and precision equals adversarial "
                  "accuracy.")
    if curves:
        doc.table(*curve_rows(curves))
        doc.figure(plot_reliability(curves, figures / "reliability.png"),
                   "Reliability curves (worst case over attacks)")
    for run in runs:
        if run.label not in curves:
            doc.paragraph(f"{run.label}: no input is correct under attack, so there is no curve.")

    for run in runs:
        _model_sections(doc, run, figures)
    return doc.write()


def _model_sections(doc: _Writer, run: ModelRun, figures: Path) -> None:
    result, slug = run.result, _slug(run.label)
    doc.heading(f"{run.label}: details")
    doc.table(*result.table())
    doc.paragraph(f"Per-sample records: {slug}/records.csv. Wall-clock time of this model's "
                  f"evaluation: {run.elapsed:.0f} s (attack time summed over batches, including "
                  "earlier interrupted runs: "
                  f"{sum(result.seconds.values()):.0f} s).")
    x_adv, conf, adv_pred, names = result.worst_inputs()
    idx = pick_examples(result.labels, result.clean_pred, adv_pred, k=8)
    if idx:
        path = adversarial_gallery(run.x[idx], x_adv[idx], result.labels[idx],
                                   result.clean_pred[idx], result.clean_conf[idx], adv_pred[idx],
                                   conf[idx], run.class_names, figures / f"{slug}-gallery.png",
                                   eps=result.config.eps if result.config.norm == "Linf" else 1.0)
        doc.figure(path, f"{run.label}: adversarial examples (strongest attack per input; red = "
                         "fooled)")
        if is_semantic_network(run.model):
            titles = [f"#{i} true {run.class_names[int(result.labels[i])]} ({names[i]})"
                      for i in idx[:4]]
            path = processing_steps_figure(run.model, x_adv[idx[:4]],
                                           figures / f"{slug}-processing-adversarial.png", titles)
            doc.figure(path, f"{run.label}: processing steps on adversarial inputs")
    if run.boundary is not None:
        clean, minimal = run.boundary
        path = boundary_figure(clean, minimal, run.model, run.class_names,
                               figures / f"{slug}-boundary.png")
        sizes = (minimal - clean).flatten(1).norm(dim=1)
        doc.figure(path, f"{run.label}: minimal adversarial examples (ART Boundary attack, "
                         f"unbounded); median L2 size {float(sizes.median()):.2f}")
