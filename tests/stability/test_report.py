"""End to end on a tiny model: tracked training → measures → figures → HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from whiteboxdl.models.checkpoint import tiny_mlp
from whiteboxdl.models.training import TrainConfig, fit
from whiteboxdl.stability.analysis import analyze
from whiteboxdl.stability.callback import StabilityTracker
from whiteboxdl.stability.measures import OVERALL
from whiteboxdl.stability.report import interpret, write_report

BUILDER = "whiteboxdl.models.checkpoint:tiny_mlp"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (400,), generator=g)
    x = torch.randn(400, 4, generator=g) + 1.5 * y[:, None].float()
    torch.manual_seed(0)
    model = tiny_mlp(4, 2, hidden=16)
    tracker = StabilityTracker(x[:64], every=5, out_dir=out)
    fit(model, (x, y), TrainConfig(epochs=3, batch_size=40, lr=3e-2, seed=1), test=(x, y),
        callbacks=[tracker], out_dir=out, builder=BUILDER,
        builder_kwargs={"in_features": 4, "classes": 2, "hidden": 16}, progress=False)
    torch.save({"x": x[:64], "y": y[:64]}, out / "probe.pt")
    return out


def test_analysis_and_report(tiny_run):
    results = analyze(tiny_run, n_align=32, max_snapshots=4, progress=False)
    p = results["patterns"]
    assert p["steps"] == list(range(0, 31, 5))
    assert json.loads((tiny_run / "stability.json").read_text())["patterns"]["steps"] == p["steps"]
    # settling is monotone and complete; the weights' distance ends at 0
    frac = p["settling"][OVERALL]["fraction_settled"]
    assert all(a <= b for a, b in zip(frac, frac[1:])) and frac[-1] == 1.0
    assert results["weights"]["distance_to_final"]["all weights"][-1] == 0.0
    path = write_report(tiny_run)
    html = path.read_text()
    assert "data:image/png;base64" in html and "What the numbers say" in html
    assert (tiny_run / "figures" / "settling.png").is_file()
    assert any("settled" in text for text, _ in interpret(results))
    a = results["alignment"]
    assert a["path_kernel"]["steps"] == [0, 10, 20, 30]
    assert a["path_kernel"]["vanilla"][-1]["mean"] == pytest.approx(1.0)   # final gates: exact
    assert (tiny_run / "figures" / "path_kernel.png").is_file()
    assert (tiny_run / "figures" / "checkpoints.png").is_file()


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    import shutil

    analyze(tiny_run, n_align=8, max_snapshots=2, progress=False)  # stability.json, examples.npz
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


@pytest.mark.parametrize("content", [b"", b"garbage, not an archive", "truncated"])
def test_report_on_a_damaged_pattern_store_names_it_and_never_suggests_pickle(run_copy, capsys,
                                                                              content):
    from whiteboxdl.cli import main

    path = run_copy / "patterns.npz"
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2] if content == "truncated" else content)
    assert main(["stability", "report", str(run_copy), "--recompute"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path} is damaged" in err
    assert "record it again with `whiteboxdl stability run ... --overwrite`" in err
    assert "pickle" not in err


def test_damaged_snapshot_checkpoint_is_reported_and_left_out(run_copy, capsys):
    from whiteboxdl.stability.callback import checkpoint_path
    from whiteboxdl.stability.measures import load_checkpoints

    bad = checkpoint_path(run_copy, 10)
    bad.write_bytes(bad.read_bytes()[:100])
    states = load_checkpoints(run_copy, [0, 5, 10, 15])
    assert sorted(states) == [0, 5, 15]
    err = capsys.readouterr().err
    assert "step_0000010.pt is damaged" in err and "leaving this snapshot out" in err
    results = analyze(run_copy, alignment=False, progress=False)
    assert 10 not in results["weights"]["steps"] and 15 in results["weights"]["steps"]


@pytest.mark.parametrize("name", ["stability.json", "examples.npz"])
def test_damaged_cached_analysis_is_recomputed(run_copy, capsys, name):
    (run_copy / name).write_bytes(b"{")
    path = write_report(run_copy, n_align=8, max_snapshots=2, progress=False)
    err = capsys.readouterr().err
    assert f"{name} is damaged" in err and "analysing the run again" in err
    assert "What the numbers say" in path.read_text()
    assert json.loads((run_copy / "stability.json").read_text())["patterns"]["steps"]
    assert (run_copy / f"{name}.damaged").read_bytes() == b"{"     # set aside, not deleted


def test_damaged_run_json_and_probe(run_copy, capsys):
    from whiteboxdl.runfiles import DamagedFileError
    from whiteboxdl.stability.analysis import load_probe

    (run_copy / "run.json").write_text('{"seconds": 1')
    assert "Path stability" in write_report(run_copy).read_text()
    assert "run.json is damaged" in capsys.readouterr().err
    (run_copy / "probe.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DamagedFileError, match="probe.pt is damaged.*stability run"):
        load_probe(run_copy)
