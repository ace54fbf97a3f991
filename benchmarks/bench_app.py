"""Benchmark of ``whiteboxdl app``: cold start and ResNet50 pullback ascent on CPU.

1. Cold start: the app is launched on loopback (Gradio imported, UI built, nothing loaded), the
   MNIST CNN is already trained and cached; we time the first ``/explain`` request through
   gradio_client (it loads the CNN from disk and runs K=10 pullback ascent). Target <= 3 s.
2. ResNet50 (random init; the cost does not depend on the weights) at 224x224, K=10 pullback
   ascent through the handler, after the model is loaded. Target <= 15 s.

Run with ``.venv/bin/python benchmarks/bench_app.py [--threads 2]``; prints a Markdown table with
wall-clock seconds and process CPU seconds divided by the thread count — on a machine shared with
other jobs the wall time is inflated, while CPU/threads approximates the time on idle cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import time

import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Timer:
    """Wall-clock and process CPU seconds of a block (CPU/threads bounds the idle-machine time)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="ResNet50 requests to time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from gradio_client import Client, handle_file

    from whiteboxdl.app import handlers
    from whiteboxdl.app.models import ModelRegistry
    from whiteboxdl.app.ui import launch
    from whiteboxdl.data.images import example_images
    from whiteboxdl.models.cnn import get_cnn

    get_cnn("mnist")  # make sure it is trained and cached (not timed)
    rows = []
    with Timer() as t:
        registry = ModelRegistry(random_weights=True)
        port = free_port()
        demo = launch("127.0.0.1", port, registry, block=False)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    rows.append(("app start (import Gradio, build UI, launch, client connects)", t, "-"))
    digit = handlers.example_files((7,))[0]
    mnist = registry.spec("mnist-cnn").label
    for name, target in (("first request (loads the cached CNN)", "≤ 3 s"),
                         ("second request", "-")):
        with Timer() as t:  # the server runs in this process: its CPU time is counted
            client.predict(handle_file(str(digit)), mnist, "3 – three", 10, 1.0, 5.0, 0.3,
                           "sigmoid", "pullback", api_name="/explain")
        rows.append((f"MNIST CNN K=10 via HTTP, {name}", t, target))
    demo.close()

    with Timer() as t:
        registry.get("resnet50")
    rows.append(("ResNet50 build (random init)", t, "-"))
    cat = example_images()["cat"]
    for method, target in (("pullback", "≤ 15 s"), ("gradient", "-")):
        for _ in range(args.repeats):
            with Timer() as t:
                handlers.explain(registry, cat, "resnet50", "281 – tabby", steps=10, alpha=20,
                                 eps=100, temperature=0.3, method=method)
            rows.append((f"ResNet50 224² {method} ascent K=10 (+2 top-5 forwards)", t, target))

    print(f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)\n")
    print("| measurement | wall s | CPU s / threads | target |\n|---|---|---|---|")
    for name, t, target in rows:
        print(f"| {name} | {t.wall:.2f} | {t.cpu / args.threads:.2f} | {target} |")


if __name__ == "__main__":
    main()
