"""End to end on a tiny model: tracked training → measures → figures → HTML report."""

from __future__ import annotations

import json

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
