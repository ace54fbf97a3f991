"""Tracking overhead of the stability callback: CNN training time with vs without it.

Trains the project's MNIST CNN (``whiteboxdl.models.cnn``) on a random training subset, alternating
runs without and with :class:`~whiteboxdl.stability.callback.StabilityTracker` (default interval,
512 probe images, checkpoints and ``patterns.npz`` written to a temporary directory), and reports
the ratio of the median wall-clock times measured in the same process, plus the tracker's own
timer. The CPU may be shared with other jobs: compare the ratio, not absolute seconds.

Usage
-----
nice python benchmarks/bench_stability.py [--train-limit 12800] [--epochs 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch

from whiteboxdl.data.mnist import load_dataset
from whiteboxdl.models.cnn import train_cnn
from whiteboxdl.stability.callback import StabilityTracker
from whiteboxdl.viz.report import markdown_table


def _once(train, test, probe, epochs: int, every: int | None) -> tuple[float, float, int]:
    tracker = None
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = []
        if every:
            tracker = StabilityTracker(probe, every=every, out_dir=tmp)
            callbacks.append(tracker)
        t0 = time.perf_counter()
        train_cnn("mnist", epochs=epochs, seed=0, out=None, progress=False, train_data=train,
                  test_data=test, callbacks=callbacks)
        seconds = time.perf_counter() - t0
    return seconds, tracker.seconds if tracker else 0.0, len(tracker.store) if tracker else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-limit", type=int, default=12800)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--every", type=int, default=50, help="the CLI default")
    parser.add_argument("--probe", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    x, y = load_dataset("mnist", "train")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:args.train_limit]
    train = (x[idx], y[idx])
    xt, yt = load_dataset("mnist", "test")
    test = (xt[:1000], yt[:1000])
    probe = xt[-args.probe:]
    plain, tracked, own, snaps = [], [], [], 0
    for r in range(args.repeats):
        plain.append(_once(train, test, probe, args.epochs, None)[0])
        s, t, snaps = _once(train, test, probe, args.epochs, args.every)
        tracked.append(s)
        own.append(t)
        print(f"repeat {r + 1}: without {plain[-1]:.1f} s, with {tracked[-1]:.1f} s "
              f"(tracker's own timer {own[-1]:.1f} s)", flush=True)
    steps = args.epochs * -(-args.train_limit // 128)
    base, with_t = statistics.median(plain), statistics.median(tracked)
    rows = [[f"CNN, MNIST {args.train_limit} imgs × {args.epochs} ep ({steps} steps), "
             f"every {args.every}, probe {args.probe} ({snaps} snapshots)",
             f"{base:.1f}", f"{with_t:.1f}", f"{with_t / base - 1:+.1%}",
             f"{statistics.median(own) / (with_t - statistics.median(own)):.1%}"]]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}; medians of {args.repeats} alternating repeats")
    print(markdown_table(["setting", "train s (no tracking)", "train s (tracking)",
                          "overhead (ratio − 1)", "tracker timer / rest"], rows))


if __name__ == "__main__":
    main()
