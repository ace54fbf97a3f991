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
