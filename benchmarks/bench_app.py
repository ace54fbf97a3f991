"""Benchmark of ``whiteboxdl app``: cold start and ResNet50 pullback ascent on CPU.

1. Cold start: the app is launched on loopback (Gradio imported, UI built, nothing loaded), the
   MNIST CNN is already trained and cached; we time the first ``/explain`` request through
   gradio_client (it loads the CNN from disk and runs K=10 pullback ascent). Target <= 3 s.
2. ResNet50 (random init; the cost does not depend on the weights) at 224x224, K=10 pullback
   ascent through the handler, after the model is loaded. Target <= 15 s.

Run with ``nice .venv/bin/python benchmarks/bench_app.py [--threads 2]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import socket
import time

import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="ResNet50 requests to time")
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
    t0 = time.perf_counter()
    registry = ModelRegistry(random_weights=True)
    port = free_port()
    demo = launch("127.0.0.1", port, registry, block=False)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    rows.append(("app start (import Gradio, build UI, launch, client connects)",
                 time.perf_counter() - t0, "-"))
    digit = handlers.example_files((7,))[0]
    mnist = registry.spec("mnist-cnn").label
    timings = []
    for _ in range(2):
        t = time.perf_counter()
        client.predict(handle_file(str(digit)), mnist, "3 – three", 10, 1.0, 5.0, 0.3,
                       "sigmoid", "pullback", api_name="/explain")
        timings.append(time.perf_counter() - t)
    rows.append(("first request: MNIST CNN K=10 via HTTP (loads the cached CNN)", timings[0],
                 "≤ 3 s"))
    rows.append(("second request: MNIST CNN K=10 via HTTP", timings[1], "-"))
    demo.close()

    t = time.perf_counter()
    registry.get("resnet50")
    rows.append(("ResNet50 build (random init)", time.perf_counter() - t, "-"))
    cat = example_images()["cat"]
    for i in range(args.repeats):
        t = time.perf_counter()
        handlers.explain(registry, cat, "resnet50", "281 – tabby", steps=10, alpha=20, eps=100,
                         temperature=0.3)
        rows.append((f"ResNet50 224² pullback ascent K=10, request {i + 1}",
                     time.perf_counter() - t, "≤ 15 s"))
    t = time.perf_counter()
    handlers.explain(registry, cat, "resnet50", "281 – tabby", steps=10, alpha=20, eps=100,
                     method="gradient")
    rows.append(("ResNet50 224² vanilla gradient ascent K=10", time.perf_counter() - t, "-"))

    print(f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads\n")
    print("| measurement | seconds | target |\n|---|---|---|")
    for name, seconds, target in rows:
        print(f"| {name} | {seconds:.2f} | {target} |")


if __name__ == "__main__":
    main()
