"""Parameter sweeps of a quality run: a grid of explainer / metric options, one run directory each.

A sweep varies options of the base run (``--vary SoftPullback.temperature=0.1,0.3,1``, several
``--vary`` give their product), so every configuration evaluates the same model on the same
images: the task is loaded once and shared. With a Ray cluster all batches of all configurations
are submitted at once (:func:`whiteboxdl.cluster.quality.evaluate_runs`: Ray schedules them, no
scheduler of ours); without one they run here, one configuration after the other. Each
configuration is an ordinary quality run directory (resumable, merged, with its own report);
``sweep.md`` and ``sweep.csv`` put their means side by side.

Example
-------
>>> from whiteboxdl.quality.runner import RunConfig
>>> base = RunConfig(model="mnist-cnn", data="mnist", n=8, explainers=["SoftPullback"])
>>> axis = parse_axis("SoftPullback.temperature=0.3,1", base)
>>> [label for label, _ in grid(base, [axis])]
['SoftPullback.temperature=0.3', 'SoftPullback.temperature=1']
>>> grid(base, [axis])[1][1].options
{'SoftPullback': {'temperature': 1}}
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from whiteboxdl.cluster.session import RayOptions
from whiteboxdl.quality.runner import RunConfig, evaluate, load_task, pending_batches
from whiteboxdl.runfiles import write_text


@dataclass(frozen=True)
class Axis:
    """One swept option: ``key`` of each name in ``targets`` (explainers or metrics) takes each
    of ``values``."""

    targets: tuple[str, ...]
    key: str
    values: tuple[Any, ...]

    def label(self, value: Any) -> str:
        return f"{'+'.join(self.targets)}.{self.key}={json.dumps(value).strip(chr(34))}"


def _value(text: str) -> Any:
    """A JSON value (number, true/false, null, a quoted string), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_axis(text: str, base: RunConfig) -> Axis:
    """``NAME[+NAME...].KEY=V1,V2,...`` as an :class:`Axis` of ``base``'s explainers or metrics.

    ``ValueError`` for a malformed text, a name ``base`` does not evaluate, or fewer than one
    value; e.g. ``SoftPullback+PullbackAscent.temperature=0.3,1``, ``PullbackAscent.steps=1,2,5``,
    ``MaxSensitivity.radius=0.01,0.02``.
    """
    match = re.fullmatch(r"\s*([\w+]+)\.(\w+)\s*=\s*(.+)", text)
    if not match:
        raise ValueError(f"--vary {text!r}: write NAME.KEY=V1,V2 (e.g. "
                         "SoftPullback.temperature=0.3,1), NAME an evaluated explainer or metric")
    targets = tuple(t for t in match[1].split("+") if t)
    known = set(base.explainers) | set(base.metrics)
    unknown = [t for t in targets if t not in known]
    if unknown or not targets:
        raise ValueError(f"--vary {text!r}: {unknown[0] if unknown else match[1]!r} is not an "
                         f"evaluated explainer or metric ({', '.join(base.explainers)}; "
                         f"{', '.join(base.metrics)})")
    values = tuple(_value(v.strip()) for v in match[3].split(",") if v.strip())
    if not values or len(set(map(json.dumps, values))) != len(values):
        raise ValueError(f"--vary {text!r}: give distinct values, comma-separated")
    return Axis(targets, match[2], values)


def grid(base: RunConfig, axes: Sequence[Axis]) -> list[tuple[str, RunConfig]]:
    """``(label, config)`` of every combination of the axes' values (their product, in order)."""
    if not axes:
        raise ValueError("a sweep needs at least one --vary")
    keys = [(t, a.key) for a in axes for t in a.targets]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a sweep varies an option twice: {keys}")
    out = []
    for combo in itertools.product(*(a.values for a in axes)):
        options, metric_options = copy.deepcopy(base.options), copy.deepcopy(base.metric_options)
        for axis, value in zip(axes, combo):
            for target in axis.targets:
                where = options if target in base.explainers else metric_options
                where.setdefault(target, {})[axis.key] = value
        label = "__".join(a.label(v) for a, v in zip(axes, combo))
        out.append((label, replace(base, options=options, metric_options=metric_options)))
    return out


def run_dir_name(label: str) -> str:
    """A folder name for a configuration label (characters other than letters, digits and
    ``. _ = + -`` become ``_``)."""
    return re.sub(r"[^\w.=+-]", "_", label)


def check(config: RunConfig) -> None:
    """Refuse a configuration before any work: the runner's checks, which build every
    explainer with its options (unknown option names are a ``ValueError``)."""
    config.validate()


@dataclass
class SweepResult:
    """The configurations of a sweep, their run directories and the batches computed now."""

    labels: list[str]
    run_dirs: list[Path]
    computed: list[list[int]]


def sweep(base: RunConfig, axes: Sequence[Axis], out_dir: str | Path,
          cluster: Optional[RayOptions] = None, progress: bool = True) -> SweepResult:
    """Evaluate every configuration of the grid into ``out_dir/<label>``, then merge each run and
    write ``out_dir/sweep.md`` and ``out_dir/sweep.csv`` (means per configuration, explainer and
    metric). ``cluster``: run all batches of all configurations as Ray tasks at once."""
    configs = grid(base, axes)
    for _, config in configs:
        check(config)
    out_dir = Path(out_dir)
    runs = [(config, out_dir / run_dir_name(label)) for label, config in configs]
    # every configuration computes on the same model and images: load them once, if needed
    task = load_task(base) if any(pending_batches(c, d) for c, d in runs) else None
    if cluster is not None:
        from whiteboxdl.cluster.quality import evaluate_runs

        computed = evaluate_runs(runs, cluster, task=task, progress=progress,
                                 desc=f"sweep of {len(runs)} runs on Ray")
    else:
        computed = [evaluate(config, run_dir, task=task, progress=progress)
                    for config, run_dir in runs]
    result = SweepResult([label for label, _ in configs], [d for _, d in runs], computed)
    write_summary(result, out_dir)
    return result


def write_summary(result: SweepResult, out_dir: Path) -> str:
    """Merge every run of the sweep (its own report) and write the side-by-side means as
    ``sweep.md`` and ``sweep.csv``; returns the Markdown."""
    from whiteboxdl.quality.report import means_table, merge
    from whiteboxdl.viz.report import markdown_table

    header: list[str] = []
    rows: list[list[str]] = []
    for label, run_dir in zip(result.labels, result.run_dirs):
        means_header, means_rows = means_table(merge(run_dir))
        header = ["configuration", *means_header]
        rows += [[label, *row] for row in means_rows]
    with open(out_dir / "sweep.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    text = (f"Sweep of {len(result.labels)} configurations (means over images; run directories "
            f"in {out_dir}):\n\n{markdown_table(header, rows)}\n")
    write_text(out_dir / "sweep.md", text)
    return text
