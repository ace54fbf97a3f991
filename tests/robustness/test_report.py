"""The gradient-masking check flags a model whose gradients are zero, and the report shows it."""

from __future__ import annotations

import torch
from torch import nn

from whiteboxdl.robustness.evaluate import evaluate
from whiteboxdl.robustness.report import ModelRun, masking_check, write_report


class _Quantize(nn.Module):
    """Rounds pixels to 1/8 steps: the forward is almost linear, the input gradient is zero."""

    def forward(self, x):
        return torch.round(x * 8) / 8


def _runs(linear_problem):
    p = linear_problem
    x, y = p.x[:16], p.y[:16]
    options = {"square": {"n_queries": 60}}
    masked = nn.Sequential(_Quantize(), p.model).eval()
    r_masked = evaluate(masked, x, y, ["apgd-ce", "square"], eps=0.1, progress=False,
                        options=options)
    r_plain = evaluate(p.model, x, y, ["apgd-ce", "square"], eps=0.1, progress=False,
                       options=options)
    return (ModelRun("quantized", masked, x, r_masked, ["a", "b"]),
            ModelRun("linear", p.model, x, r_plain, ["a", "b"]))


def test_masking_check_and_report(linear_problem, tmp_path):
    masked, plain = _runs(linear_problem)
    check = masking_check(masked.result)
    # APGD-CE sees zero gradients and fails; the black-box Square breaks many inputs
    assert check["flag"] and check["only_square"] >= 3
    assert check["square"] < check["apgd-ce"] - 0.1
    check = masking_check(plain.result)
    # on a linear model APGD-CE is optimal: Square never finds anything it missed
    assert not check["flag"] and check["only_square"] == 0
    assert check["apgd-ce"] == plain.result.accuracy("worst")

    md, html = write_report([masked, plain], tmp_path, command="pytest")
    text = md.read_text()
    assert "WARNING: for quantized" in text and "WARNING: for linear" not in text
    assert "| quantized |" in text and "FLAG" in text
    assert f"| clean accuracy | {100 * masked.result.clean_accuracy:.2f}% |" in text
    page = html.read_text()
    assert page.count("data:image/png;base64,") >= 3  # reliability + two galleries, inlined
    for figure in ("reliability.png", "quantized-gallery.png", "linear-gallery.png"):
        assert (tmp_path / "figures" / figure).is_file()
