"""Train (if missing) and tabulate the project's three CNNs: MNIST, MNIST 3-vs-5, Fashion-MNIST.

Each model is trained exactly as ``whiteboxdl train cnn [--dataset D] [--digits 3 5]`` does, into
the cache that ``get_cnn`` reads; the table comes from the ``summary.json`` of each run.

    nice python benchmarks/cnn_training.py            # train what is missing, print the table
    nice python benchmarks/cnn_training.py --retrain  # train all three again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil

import torch

from whiteboxdl.models.cnn import cnn_dir, count_parameters, get_cnn
from whiteboxdl.viz.report import markdown_table

RUNS = (("mnist", None), ("mnist", (3, 5)), ("fashion-mnist", None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="delete cached models first")
    args = parser.parse_args()
    rows = []
    for dataset, digits in RUNS:
        directory = cnn_dir(dataset, digits)
        if args.retrain and directory.exists():
            shutil.rmtree(directory)
        model = get_cnn(dataset, digits)  # trains on first use
        summary = json.loads((directory / "summary.json").read_text())
        history = summary["history"]
        seconds = sum(h["epoch_seconds"] for h in history)
        command = f"whiteboxdl train cnn --dataset {dataset}" + (
            " --digits " + " ".join(map(str, digits)) if digits else "")
        rows.append([f"`{command}`", summary["builder_kwargs"]["classes"],
                     f"{count_parameters(model):,}",
                     len(history), f"{history[-1]['test_acc']:.2%}",
                     f"{seconds / 60:.1f} min"])
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(markdown_table(["command", "classes", "parameters", "epochs", "test accuracy",
                          "training time"], rows))


if __name__ == "__main__":
    main()
