"""The runner: shards merged equal a single run, resume skips finished batches, CLI errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whiteboxdl.cli import main
from whiteboxdl.quality.report import merge
from whiteboxdl.quality.runner import RunConfig, Task, evaluate, parse_shard, seed_for

from .conftest import small_cnn

EXPLAINERS = ["Gradient", "SmoothGrad", "GradientShap", "GuidedGradCam"]


def _task() -> Task:
    g = torch.Generator().manual_seed(0)
    pool_x = torch.rand(40, 1, 28, 28, generator=g)
    pool_y = torch.arange(10).repeat(4)
    return Task(small_cnn(), (0.0, 1.0), 10, pool_x[:10], pool_y[:10], pool_x, pool_y)


def _config(**kw) -> RunConfig:
    base = dict(model="test-cnn", data="synthetic", n=10, explainers=EXPLAINERS, batch_size=4,
                seed=1, options={"SmoothGrad": {"samples": 3}, "GradientShap": {"samples": 3}})
    base.update(kw)
    return RunConfig(**base)


def _assert_same(a, b):
    for e in a.scores:
        for m in a.scores[e]:
            np.testing.assert_array_equal(a.scores[e][m], b.scores[e][m], err_msg=f"{e}/{m}")
    np.testing.assert_array_equal(a.index, b.index)


def test_shards_merged_equal_a_single_run(tmp_path):
    task = _task()
    single = tmp_path / "single"
    assert evaluate(_config(), single, task=task, progress=False) == [0, 1, 2]
    ref = merge(single)
    assert ref.scores["Gradient"]["Infidelity"].shape == (10,)
    assert set(ref.scores["Gradient"]) == {"Infidelity", "FaithfulnessCorrelation",
                                           "FaithfulnessEstimate", "MonotonicityCorrelation",
                                           "MaxSensitivity", "RandomLogit", "Focus"}
    # Shard 1/2 in the reverse order and on another "machine" directory, then merge both.
    a, b = tmp_path / "a", tmp_path / "b"
    assert evaluate(_config(), b, shard=(1, 2), task=_task(), progress=False) == [1]
    assert evaluate(_config(), a, shard=(0, 2), task=_task(), progress=False) == [0, 2]
    _assert_same(ref, merge(a, [b]))
    for name in ("scores.csv", "scores.npz", "summary.md", "examples.png", "report.html",
                 "examples/Gradient.png", "examples/GuidedGradCam.png"):
        assert (a / name).stat().st_size > 0
    summary = (a / "summary.md").read_text()
    assert "SmoothGrad" in summary and "[" in summary       # bootstrap intervals
    # Scores are not degenerate: explainers differ and the correlations are in [-1, 1].
    fc = ref.scores["Gradient"]["FaithfulnessCorrelation"]
    assert np.all(np.abs(fc) <= 1) and not np.array_equal(
        fc, ref.scores["GuidedGradCam"]["FaithfulnessCorrelation"])


def test_resume_recomputes_only_missing_batches(tmp_path):
    cfg = _config(explainers=["Gradient"], metrics=["Infidelity", "MaxSensitivity"], options={})
    evaluate(cfg, tmp_path, task=_task(), progress=False)
    first = merge(tmp_path, write=False)
    assert evaluate(cfg, tmp_path, task=_task(), progress=False) == []
    (tmp_path / "batches" / "batch_00001.npz").unlink()
    with pytest.raises(ValueError, match="1 of 3 batches are missing"):
        merge(tmp_path, write=False)
    part = merge(tmp_path, write=False, partial=True)
    np.testing.assert_array_equal(part.index, [0, 1, 2, 3, 8, 9])
    assert evaluate(cfg, tmp_path, task=_task(), progress=False) == [1]
    _assert_same(first, merge(tmp_path, write=False))
    with pytest.raises(ValueError, match="different settings"):
        evaluate(_config(seed=2, explainers=["Gradient"], options={}), tmp_path, task=_task(),
                 progress=False)


def _damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # one flipped byte in the middle of the data: only the zip checksum can tell
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))


FAST = dict(explainers=["Gradient"], metrics=["Infidelity", "MaxSensitivity"], options={})


@pytest.mark.parametrize("how", ["truncated", "empty", "bit flip"])
def test_damaged_batch_is_reported_recomputed_and_merges_like_an_undamaged_run(tmp_path, how,
                                                                               capsys):
    cfg = _config(**FAST)
    evaluate(cfg, tmp_path / "ref", task=_task(), progress=False)
    reference = merge(tmp_path / "ref", write=False)
    run = tmp_path / "run"
    evaluate(cfg, run, task=_task(), progress=False)
    _damage(run / "batches" / "batch_00001.npz", how)
    capsys.readouterr()
    assert evaluate(cfg, run, task=_task(), progress=False) == [1]       # only the damaged one
    err = capsys.readouterr().err
    assert "batch_00001.npz is damaged" in err and "recomputed" in err
    assert (run / "batches" / "batch_00001.npz.damaged").is_file()       # kept, not deleted
    _assert_same(reference, merge(run, write=False))


def test_merge_reports_a_damaged_batch_by_name(tmp_path, capsys):
    cfg = _config(**FAST)
    evaluate(cfg, tmp_path, task=_task(), progress=False)
    _damage(tmp_path / "batches" / "batch_00002.npz", "truncated")
    with pytest.raises(ValueError, match="1 of 3 batches are missing"):
        merge(tmp_path, write=False)
    assert "batch_00002.npz is damaged" in capsys.readouterr().err
    assert main(["quality", "merge", str(tmp_path)]) == 2                 # still missing
    assert "1 of 3 batches are missing" in capsys.readouterr().err
    part = merge(tmp_path, write=False, partial=True)
    np.testing.assert_array_equal(part.index, np.arange(8))


def test_garbage_config_is_named_and_written_again(tmp_path, capsys):
    cfg = _config(**FAST)
    evaluate(cfg, tmp_path, task=_task(), progress=False)
    reference = merge(tmp_path, write=False)
    (tmp_path / "config.json").write_text("garbage")
    assert main(["quality", "merge", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "config.json is damaged" in err and "quality evaluate" in err
    assert evaluate(cfg, tmp_path, task=_task(), progress=False) == []   # batches kept
    assert "config.json is damaged" in capsys.readouterr().err
    _assert_same(reference, merge(tmp_path, write=False))
    # the batches carry the config's fingerprint: a rewritten config of another run is refused
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="belongs to another run"):
        evaluate(_config(**{**FAST, "seed": 5}), tmp_path, task=_task(), progress=False)
    assert not (tmp_path / "config.json").exists()       # nothing recorded for the refused run
    assert evaluate(cfg, tmp_path, task=_task(), progress=False) == []
    _assert_same(reference, merge(tmp_path, write=False))


def test_parse_shard_and_seeds():
    assert parse_shard(None) == (0, 1) and parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert seed_for(0, 3, "Gradient") == seed_for(0, 3, "Gradient") != seed_for(0, 4, "Gradient")


def test_cli_reports_bad_arguments(tmp_path, capsys):
    args = ["quality", "evaluate", "--model", "mnist-cnn", "--data", "mnist", "--out",
            str(tmp_path / "r")]
    assert main(args + ["--explainers", "Gradient,Foo"]) == 2
    assert "unknown explainer 'Foo'" in capsys.readouterr().err
    assert main(args + ["--metrics", "Infidelity,Bar"]) == 2
    assert "unknown metric 'Bar'" in capsys.readouterr().err
    assert main(args + ["--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err
    assert main(["quality", "merge", str(tmp_path / "missing")]) == 2
    assert "not a quality run directory" in capsys.readouterr().err
    assert main(args + ["--options", "{bad"]) == 2
    assert "--options must be JSON" in capsys.readouterr().err
    assert main(args + ["--explainers", "Gradient", "--options", '{"SmoothGrad": {}}']) == 2
    assert "not evaluated" in capsys.readouterr().err


def test_imagefolder_images_are_signed_224_with_sorted_class_indices(tmp_path):
    from PIL import Image

    from whiteboxdl.quality.runner import load_images

    for cls, colour in (("a_cat", (200, 10, 10)), ("b_dog", (10, 10, 200))):
        (tmp_path / cls).mkdir()
        for k in range(2):
            Image.new("RGB", (64, 48), colour).save(tmp_path / cls / f"{k}.png")
    x, y, px, py = load_images(f"imagefolder:{tmp_path}", 4)
    assert x.shape == (4, 3, 224, 224) and torch.equal(px, x)
    assert sorted(y.tolist()) == [0, 0, 1, 1]
    assert x.min() >= -1 and x.max() <= 1
    for i in range(4):                                            # red cats, blue dogs
        assert x[i, 0 if y[i] == 0 else 2].mean() > 0.5
    with pytest.raises(ValueError, match="exceeds the 4 images"):
        load_images(f"imagefolder:{tmp_path}", 5)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_images(f"imagefolder:{tmp_path}/nope", 1)
    with pytest.raises(ValueError, match="unknown data"):
        load_images("cifar", 1)


def test_core_package_never_imports_quantus():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import whiteboxdl

    code = ("import sys, whiteboxdl.cli, whiteboxdl.quality.runner, whiteboxdl.quality.report, "
            "whiteboxdl.quality.explainers, whiteboxdl.quality.metrics, whiteboxdl.quality.focus; "
            "whiteboxdl.cli.build_parser(); print('quantus' in sys.modules)")
    src = str(Path(whiteboxdl.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "False"                 # Quantus (GPL) stays optional
