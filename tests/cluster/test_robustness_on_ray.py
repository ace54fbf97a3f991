"""Robustness runs on a local 2-CPU Ray cluster: every per-image record equal to the local run's,
with a worker killed mid-run, and after an interrupted driver."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from whiteboxdl.cli import main
from whiteboxdl.cluster.robustness import evaluate_on_ray
from whiteboxdl.cluster.session import RayOptions
from whiteboxdl.runfiles import load_torch

from .conftest import Killer, wait_gone

pytestmark = pytest.mark.slow

#: 12 test images of 3 and 5, three batches, FGSM and PGD-40 at eps 0.3.
ARGS = ["--attacks", "fgsm,pgd", "--n", "12", "--batch-size", "4", "--eps", "0.3",
        "--boundary-n", "0", "--no-masking-check", "--no-progress"]
FILES = 9  # 3 batches x (clean, fgsm, pgd)


@pytest.fixture(scope="module")
def reference(mnist_available, cnn2_file, tmp_path_factory) -> Path:
    """``whiteboxdl robustness evaluate`` run locally (one torch thread, as a 1-CPU task)."""
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    out = tmp_path_factory.mktemp("robustness") / "local"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["robustness", "evaluate", str(cnn2_file), *ARGS, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out / "cnn2"


def _images(n: int = 12):
    from whiteboxdl.data.mnist import digit_subset

    x, y = digit_subset((3, 5), "test")
    return x[:n], y[:n]


def assert_same_records(run_dir: Path, reference: Path) -> None:
    """Every batch file holds the same tensors (adversarial images, predictions, confidences,
    the inputs' hash and the run's fingerprint); only the timings differ."""
    want = sorted(p.name for p in (reference / "batches").glob("*.pt"))
    assert sorted(p.name for p in (run_dir / "batches").glob("*.pt")) == want
    assert len(want) == FILES
    for name in want:
        got, ref = (load_torch(d / "batches" / name) for d in (run_dir, reference))
        keys = sorted(k for k in ref if "seconds" not in k)
        assert sorted(k for k in got if "seconds" not in k) == keys
        for key in keys:
            if isinstance(ref[key], torch.Tensor):
                assert torch.equal(got[key], ref[key]), f"{name}: {key}"
            else:
                assert got[key] == ref[key], f"{name}: {key}"


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "batches").glob("*.pt")}


def test_cli_on_ray_gives_the_local_records(ray_cluster, reference, cnn2_file, tmp_path,
                                            capsys):
    out = tmp_path / "ray"
    assert main(["robustness", "evaluate", str(cnn2_file), *ARGS, "--out", str(out),
                 f"--ray={ray_cluster}"]) == 0
    assert "| fgsm |" in capsys.readouterr().out                    # the same summary table
    assert_same_records(out / "cnn2", reference)
    assert (out / "cnn2" / "records.csv").read_text() == (reference / "records.csv").read_text()
    assert (out / "report.html").is_file()


def test_a_killed_worker_is_retried_and_the_records_are_the_same(ray_cluster, reference,
                                                                 cnn2_file, tmp_path):
    x, y = _images()
    killer = Killer("robustness-batch-")
    killer.start()
    try:
        result = evaluate_on_ray(cnn2_file, x, y, ["fgsm", "pgd"], RayOptions(ray_cluster),
                                 eps=0.3, batch_size=4, out_dir=tmp_path, progress=False)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "no running batch task was seen to kill"
    pid, title = killer.killed
    assert title.startswith("ray::robustness-batch-") and wait_gone(pid)
    assert result.batches == [(0, 4), (4, 8), (8, 12)] and result.batches_reused == 0
    assert_same_records(tmp_path, reference)
    rows = list(csv.DictReader((reference / "records.csv").open()))
    assert [int(r["pred_pgd"]) for r in rows] == result.preds["pgd"].tolist()


class _Interrupt(KeyboardInterrupt):
    pass


def test_an_interrupted_driver_resumes_without_recomputing(ray_cluster, reference, cnn2_file,
                                                           tmp_path):
    x, y = _images()

    def stop(b: int, n: int) -> None:
        raise _Interrupt  # Ctrl-C in the driver once the first batch's files are written

    with pytest.raises(_Interrupt):
        evaluate_on_ray(cnn2_file, x, y, ["fgsm", "pgd"], RayOptions(ray_cluster), eps=0.3,
                        batch_size=4, out_dir=tmp_path, progress=False, on_batch_end=stop)
    finished = _mtimes(tmp_path)
    assert len(finished) == 3                                      # one batch: clean, fgsm, pgd
    computed = []
    result = evaluate_on_ray(cnn2_file, x, y, ["fgsm", "pgd"], RayOptions(ray_cluster), eps=0.3,
                             batch_size=4, out_dir=tmp_path, progress=False,
                             on_batch_end=lambda b, n: computed.append(b))
    assert len(computed) == 2 and result.batches_reused == 1      # only the two others
    after = _mtimes(tmp_path)
    assert {k: after[k] for k in finished} == finished
    assert_same_records(tmp_path, reference)
