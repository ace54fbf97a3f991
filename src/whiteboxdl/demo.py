"""``whiteboxdl demo``: the main job. It fetches MNIST and writes a report of what is there.

Later stages (semantic network, robustness, pullbacks) plug into :data:`STAGES`.

Example
-------
$ whiteboxdl demo --out runs/demo
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path
from typing import Callable

from whiteboxdl.viz.report import Report, markdown_table

Stage = Callable[[argparse.Namespace, Report], None]


def _data_stage(args: argparse.Namespace, report: Report) -> None:
    import torch

    from whiteboxdl.data.cli import dataset_summary
    from whiteboxdl.data.mnist import digit_subset

    source, rows = dataset_summary("mnist")
    print(source)
    print(markdown_table(["digit", "train", "test"], rows))
    sub_rows = []
    for split in ("train", "test"):
        _, y = digit_subset((3, 5), split)
        n3, n5 = torch.bincount(y, minlength=2).tolist()
        sub_rows.append([split, f"{n3:,}", f"{n5:,}", f"{len(y):,}"])
    print("3-vs-5 subset:")
    print(markdown_table(["split", "3s", "5s", "total"], sub_rows))
    report.heading("Data")
    report.paragraph(source)
    report.table(["digit", "train", "test"], rows)
    report.paragraph("The 3-vs-5 subset used by the semantic network:")
    report.table(["split", "3s", "5s", "total"], sub_rows)


STAGES: list[tuple[str, Stage]] = [("data", _data_stage)]


def run_demo(out: Path, quick: bool = False) -> tuple[Path, list[str]]:
    """Run every stage; a failing stage is reported and the others still run."""
    report = Report("whiteboxdl demo")
    failures = []
    args = argparse.Namespace(out=out, quick=quick)
    for name, stage in STAGES:
        print(f"== stage: {name}")
        t0 = time.perf_counter()
        try:
            stage(args, report)
        except Exception as exc:  # report and continue with the next stage
            failures.append(name)
            report.heading(f"Stage '{name}' failed")
            report.paragraph(f"{type(exc).__name__}: {exc}", warn=True)
            traceback.print_exc()
        print(f"   ({time.perf_counter() - t0:.1f} s)")
    path = report.write(Path(out) / "report.html")
    return path, failures


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the main job on MNIST and write a report")
    demo.add_argument("--out", default="runs/demo", type=Path, help="output folder")
    demo.add_argument("--quick", action="store_true", help="small, fast settings (smoke test)")
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    path, failures = run_demo(args.out, args.quick)
    print(f"report: {path}")
    if failures:
        print(f"failed stages: {', '.join(failures)}")
        return 1
    return 0
