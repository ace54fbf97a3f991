"""`whiteboxdl demo --quick` end to end: every stage runs, the report has the table and figures."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from whiteboxdl.cli import main


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, needs_mnist, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "3-vs-5 subset" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == [] and summary["quick"] is True
    measures = [row[0] for row in summary["rows"]]
    assert "semantic network: clean accuracy" in measures
    assert "semantic network: apgd-ce accuracy (ε=0.3)" in measures
    assert any(m.startswith("CNN baseline") for m in measures)
    assert "ten-digit semantic network: clean accuracy (10,000 test images)" in measures
    assert "ten-digit semantic network: apgd-ce accuracy (ε=0.3, first 50 test images)" in measures
    for _, ours, _ in summary["rows"]:
        assert re.fullmatch(r"\d{1,3}\.\d\d%", ours)
    report = (out / "report.html").read_text()
    assert "<table>" in report and "99.53%" in report  # our numbers next to the paper's
    assert summary["figures"], "the demo must produce figures"
    for figure in summary["figures"]:
        data = open(figure, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert report.count("data:image/png;base64,") == len(summary["figures"])
    names = {p.split("/")[-1] for p in summary["figures"]}
    assert {"semantic_reliability.png", "pullback_grid.png", "imagenet_grid.png"} <= names
    grid = next(p for p in summary["figures"] if p.endswith("imagenet_grid.png"))
    with Image.open(grid) as img:                 # 2 photos x (2 + 1 columns), two methods
        assert img.width > 2 * img.height
    assert "EfficientNet-Lite0" in report and "tiger cat" in report and "espresso" in report
    assert "imagenet" in [stage[0] for stage in summary["stages"]]


def test_a_failing_stage_is_reported_and_others_still_run(tmp_path):
    from whiteboxdl.demo import DemoContext, run_demo

    ran = []

    def broken(ctx: DemoContext) -> None:
        raise RuntimeError("stage exploded")

    def fine(ctx: DemoContext) -> None:
        ran.append("fine")
        ctx.rows.append(["a measure", "50.00%", "—"])

    path, failures = run_demo(tmp_path, stages=[("broken", broken), ("fine", fine)])
    assert failures == ["broken"] and ran == ["fine"]
    html = path.read_text()
    assert "Stage &#x27;broken&#x27; failed" in html and "stage exploded" in html
    assert "<td>a measure</td><td>50.00%</td>" in html
