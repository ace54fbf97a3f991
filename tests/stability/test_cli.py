"""`whiteboxdl stability run/report` end to end on a real MNIST subset (small and quick)."""

from __future__ import annotations

import json


from whiteboxdl.cli import main
from whiteboxdl.stability.store import PatternStore


def test_run_and_report(tmp_path, needs_mnist, capsys):
    out = tmp_path / "run"
    # 256 images / batch 128 = 2 steps per epoch, 2 epochs = 4 steps; snapshots at 0, 2, 4
    code = main(["stability", "run", "--dataset", "mnist", "--every", "2", "--probe", "16",
                 "--epochs", "2", "--train-limit", "256", "--test-limit", "200",
                 "--out", str(out), "--align-probe", "8", "--align-snapshots", "3"])
    assert code == 0
    store = PatternStore.load(out / "patterns.npz")
    assert store.steps == [0, 2, 4] and store.n_probe == 16
    assert [l.kind for l in store.layers] == ["relu", "maxpool"] * 3 + ["relu"]
    run = json.loads((out / "run.json").read_text())
    assert run["snapshots"] == 3 and run["steps"] == 4
    html = (out / "report.html").read_text()
    assert html.count("<img") == 9          # eight measure figures + the examples grid
    printed = capsys.readouterr().out
    assert "all ReLUs" in printed and "report:" in printed
    # a second run into the same directory is refused without --overwrite
    assert main(["stability", "run", "--dataset", "mnist", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_report_of_missing_run(tmp_path, capsys):
    assert main(["stability", "report", str(tmp_path)]) == 2
    assert "patterns.npz" in capsys.readouterr().err
