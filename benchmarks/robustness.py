"""Benchmark: AutoAttack and friends on the default 3-vs-5 semantic network and the CNN baseline.

Runs ``whiteboxdl robustness evaluate`` (resumable: re-run after an interruption and it continues),
times it, and prints a Markdown section for BENCHMARKS.md (``--append`` writes it there).

    nice python benchmarks/robustness.py --out runs/semantic-3-5/robustness --append

Every number in the section comes from the run's summary.json files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from whiteboxdl.cli import main as cli_main


def _section(command: str, out: Path, wall: float) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    runs.sort(key=lambda r: not r["label"].startswith("semantic"))
    names: list[str] = []
    for run in runs:
        names += [a for a in run["config"]["attacks"] if a not in names]
    lines = ["| measure | " + " | ".join(r["label"] for r in runs) + " |",
             "|---" * (len(runs) + 1) + "|",
             "| clean | " + " | ".join(f"{100 * r['clean_accuracy']:.2f}%" for r in runs) + " |"]
    for name in names + ["worst"]:
        lines.append(f"| {name} | " + " | ".join(
            f"{100 * r['accuracy'][name]:.2f}%" if name in r["accuracy"] else "–" for r in runs)
            + " |")
    for key in ("precision_at_80", "precision_at_100"):
        if all(key in r for r in runs):
            lines.append(f"| {key.replace('_', ' ')}% recall | " + " | ".join(
                f"{100 * r[key]:.2f}%" for r in runs) + " |")
    lines.append("| images | " + " | ".join(str(r["n"]) for r in runs) + " |")
    lines.append("| attack seconds (summed over batches) | " + " | ".join(
        " + ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()) for r in runs) + " |")
    head = ["## Robustness: AutoAttack on the 3-vs-5 semantic network vs a CNN baseline", "",
            f"- date: {datetime.date.today()}, machine: {platform.machine()} "
            f"{os.cpu_count()} CPU cores (shared with ~6 other jobs: timings are noisy), "
            f"torch {torch.__version__}",
            f"- command: `{command}`", f"- wall-clock of this invocation: {wall:.0f} s", ""]
    return "\n".join(head + lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/semantic-3-5/robustness")
    parser.add_argument("--model", default="semantic-3-5")
    parser.add_argument("--baseline", default="cnn-3-5")
    parser.add_argument("--attacks", default="standard")
    parser.add_argument("--n", type=int, default=1902)
    parser.add_argument("--append", action="store_true", help="append the section to BENCHMARKS.md")
    args = parser.parse_args()
    argv = ["robustness", "evaluate", args.model, "--attacks", args.attacks, "--n", str(args.n),
            "--eps", "0.3", "--norm", "Linf", "--out", args.out, "--baseline", args.baseline]
    command = "whiteboxdl " + " ".join(shlex.quote(a) for a in argv)
    start = time.perf_counter()
    code = cli_main(argv)
    section = _section(command, Path(args.out), time.perf_counter() - start)
    print(section)
    if args.append and code == 0:
        with open("BENCHMARKS.md", "a", encoding="utf-8") as handle:
            handle.write("\n" + section)
    return code


if __name__ == "__main__":
    sys.exit(main())
