"""`whiteboxdl robustness evaluate` end to end on real MNIST with a (small, untrained) model file."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from whiteboxdl.cli import main
from whiteboxdl.models.checkpoint import save_model
from whiteboxdl.robustness.cli import parse_digits, plan_attacks
from whiteboxdl.semantic.network import semantic_mnist


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "semantic.pt"
    save_model(path, semantic_mnist((3, 5)), "whiteboxdl.semantic.network:semantic_mnist",
               {"digits": (3, 5)})
    return path


@pytest.mark.slow
def test_evaluate_writes_report_records_and_resumes(needs_mnist, model_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["robustness", "evaluate", str(model_file), "--attacks", "fgsm,square", "--n", "6",
            "--eps", "0.3", "--out", str(out), "--batch-size", "4", "--n-queries", "10",
            "--boundary-n", "0", "--no-progress",
            "--no-masking-check"]
    assert main(argv) == 0
    run_dir = out / "semantic"
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = list(csv.DictReader((run_dir / "records.csv").open()))
    assert len(rows) == 6 and summary["n"] == 6
    assert summary["config"]["attacks"] == ["fgsm", "square"]
    assert summary["config"]["options"] == {"square": {"n_queries": 10}}
    for name in ("fgsm", "square"):
        robust = sum(r["label"] == r["clean_pred"] == r[f"pred_{name}"] for r in rows)
        assert summary["accuracy"][name] == pytest.approx(robust / 6)
    text = (out / "report.md").read_text()
    for section in ("Results side by side", "Gradient-masking check", "processing steps on "
                    "adversarial inputs", "Reliability under attack"):
        assert section in text
    assert (out / "report.html").stat().st_size > 20_000  # figures inlined
    # a second run resumes every batch (nothing is attacked again) and gives the same numbers
    stamps = {p: p.stat().st_mtime_ns for p in (run_dir / "batches").glob("*.pt")}
    assert len(stamps) == 6  # 2 batches x (clean, fgsm, square)
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "batches").glob("*.pt")} == stamps
    assert json.loads((run_dir / "summary.json").read_text())["accuracy"] == summary["accuracy"]


def test_cli_errors(tmp_path, capsys):
    assert main(["robustness", "evaluate", str(tmp_path / "missing.pt"), "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and "semantic-3-5" in err
    assert main(["robustness", "evaluate", "semantic-3-5", "--attacks", "apgd-ce,bogus",
                 "--out", str(tmp_path)]) == 2
    assert "unknown attack 'bogus'" in capsys.readouterr().err


def test_plan_attacks_and_digits():
    assert plan_attacks("standard", True) == ["standard", "square"]
    assert plan_attacks("pgd", True) == ["pgd", "apgd-ce", "square"]
    assert plan_attacks("standard,square", True) == ["standard", "square"]
    assert plan_attacks("standard", False) == ["standard"]
    assert plan_attacks("fgsm", True, square=False) == ["fgsm", "apgd-ce"]
    assert parse_digits("3,5") == (3, 5)
    with pytest.raises(ValueError, match="'3'"):
        parse_digits("3")


@pytest.fixture
def small_cnn_file(tmp_path):
    from whiteboxdl.models.cnn import mnist_cnn

    torch.manual_seed(0)
    path = tmp_path / "cnn.pt"
    save_model(path, mnist_cnn(classes=2, width=2), "whiteboxdl.models.cnn:mnist_cnn",
               {"classes": 2, "width": 2})
    return path


def _stamps(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pt")}


def test_more_images_into_the_same_out_reuse_the_finished_ones(needs_mnist, small_cnn_file,
                                                               tmp_path):
    out = tmp_path / "run"
    argv = ["robustness", "evaluate", str(small_cnn_file), "--attacks", "fgsm", "--out", str(out),
            "--boundary-n", "0", "--no-progress", "--no-masking-check"]
    assert main(argv + ["--n", "22"]) == 0
    batches = out / "cnn" / "batches"
    first = _stamps(batches)
    assert sorted(first) == ["00000-00022-clean.pt", "00000-00022-fgsm.pt"]
    assert main(argv + ["--n", "40"]) == 0
    grown = _stamps(batches)
    assert {k: grown[k] for k in first} == first                    # the 22 images: reused
    assert sorted(set(grown) - set(first)) == ["00022-00040-clean.pt", "00022-00040-fgsm.pt"]
    summary = json.loads((out / "cnn" / "summary.json").read_text())
    assert summary["n"] == 40 and summary["batches"] == [[0, 22], [22, 40]]


def test_masking_n_not_a_multiple_of_the_batch_size(needs_mnist, small_cnn_file, tmp_path):
    out = tmp_path / "run"
    argv = ["robustness", "evaluate", str(small_cnn_file), "--attacks", "fgsm", "--n", "30",
            "--masking-n", "10", "--batch-size", "20", "--n-queries", "10", "--boundary-n", "0",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    files = _stamps(out / "cnn" / "batches")
    assert "00000-00010-square.pt" in files and "00020-00030-apgd-ce.pt" in files
    assert main(argv) == 0                                          # a re-run reuses all of it
    assert _stamps(out / "cnn" / "batches") == files


@pytest.mark.parametrize("flag,value", [("--boundary-iter", "0"), ("--n-queries", "0"),
                                        ("--batch-size", "0"), ("--boundary-n", "-1"),
                                        ("--n", "0"), ("--eps", "0")])
def test_bad_numbers_are_refused_before_any_model_is_loaded(flag, value, tmp_path, capsys):
    assert main(["robustness", "evaluate", "cnn-4-7", flag, value, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{flag} must be" in err and value in err


def test_an_untrained_keyword_model_is_announced_before_it_trains(tmp_path, monkeypatch,
                                                                  capsys):
    import whiteboxdl.models.cnn as cnn
    from whiteboxdl.robustness.cli import announce_training

    monkeypatch.setenv("WHITEBOXDL_CACHE", str(tmp_path / "cache"))
    assert announce_training("cnn-4-7")
    out = capsys.readouterr().out
    assert "cnn-4-7 is not trained yet: training it first" in out and "minutes" in out
    assert "`whiteboxdl train cnn --digits 4 7`" in out
    assert announce_training("semantic-4-7") and "semantic train --digits 4 7" in \
        capsys.readouterr().out
    assert not announce_training(str(tmp_path / "model.pt"))       # files are never trained
    cached = cnn.cnn_dir("mnist", (4, 7)) / "model.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert not announce_training("cnn-4-7") and capsys.readouterr().out == ""
    cached.unlink()

    def training(*args, **kwargs):  # the user stops the training at once
        raise KeyboardInterrupt

    monkeypatch.setattr(cnn, "train_cnn", training)
    assert main(["robustness", "evaluate", "cnn-4-7", "--out", str(tmp_path / "r")]) == 130
    printed = capsys.readouterr().out
    assert printed.startswith("cnn-4-7 is not trained yet")        # said before anything else
