"""Protocol presets and variants in the runner: the paper's protocol end to end on 224² images
(shards = a single run, shared stages, channel-summed maps), variants inheriting their base, and
the CLI on a labelled folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from whiteboxdl.cli import main
from whiteboxdl.quality.report import merge
from whiteboxdl.quality.runner import RunConfig, Task, channels_last_forward, evaluate


def _cheap_224(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 1000)).eval()


def _task(channels_last: bool = False) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 224, 224, generator=g) * 2 - 1
    y = torch.tensor([1, 5, 9, 1])
    model = _cheap_224()
    return Task(model, (-1.0, 1.0), 1000, x, y, x, y,
                channels_last_forward(model) if channels_last else None)


PAPER_FAST = dict(
    explainers=["SoftPullback", "Gradient", "FusionGrad", "PullbackAscent", "PA K=1"],
    variants={"PA K=1": {"of": "PullbackAscent", "steps": 1}},
    options={"FusionGrad": {"weight_samples": 2, "input_samples": 2}},
    metric_options={"MaxSensitivity": {"nr_samples": 2},
                    "FaithfulnessCorrelation": {"nr_runs": 10}})


def _paper(**kw) -> RunConfig:
    args = {"n": 4, "batch_size": 2, "seed": 3, **PAPER_FAST, **kw}
    return RunConfig.from_protocol("paper", model="cheap", data="synthetic", **args)


def test_from_protocol_merges_the_preset_with_the_arguments():
    cfg = _paper()
    assert cfg.protocol == "paper" and cfg.metrics[:2] == ["Infidelity", "Infidelity-112+56"]
    assert cfg.options["FusionGrad"] == {"weight_samples": 2, "input_samples": 2,
                                         "weight_std": 0.5, "input_std": 0.5,
                                         "reduce_channels": True}
    assert "SmoothGrad" not in cfg.options                      # not evaluated: dropped
    assert cfg.explainer("PA K=1") == ("PullbackAscent", {"steps": 1, "alpha": 20.0,
                                                          "clip": "last"})
    assert cfg.metric("Infidelity-112+56")[1]["patch_sizes"] == [112, 56]
    assert cfg.metric_options["FaithfulnessCorrelation"] == {"subset_size": 12544,
                                                             "nr_runs": 10, "baseline": "black"}
    cfg.validate()
    # the default protocol leaves config.json as it was (older runs keep their fingerprint)
    plain = RunConfig(model="m", data="d")
    assert "protocol" not in plain.settings() and "variants" not in plain.settings()
    assert cfg.settings()["protocol"] == "paper"
    with pytest.raises(ValueError, match="unknown protocol"):
        RunConfig.from_protocol("nope", model="m", data="d")
    with pytest.raises(ValueError, match="must name its base"):
        _paper(variants={"PA K=1": {"steps": 1}}).validate()


@pytest.mark.slow
def test_paper_protocol_shards_equal_a_single_run(tmp_path):
    single = tmp_path / "single"
    assert evaluate(_paper(), single, task=_task(), progress=False) == [0, 1]
    ref = merge(single)
    scores = ref.scores
    assert set(scores) == set(PAPER_FAST["explainers"])
    for e in scores:
        for m, s in scores[e].items():
            assert s.shape == (4,) and np.isfinite(s).all(), (e, m)
    # the summed maps are one map repeated over channels, the pullbacks' are per channel
    ex = ref.examples
    assert np.array_equal(ex["Gradient"][:, 0], ex["Gradient"][:, 1])
    assert not np.array_equal(ex["SoftPullback"][:, 0], ex["SoftPullback"][:, 1])
    # a variant is not its base
    assert not np.array_equal(scores["PA K=1"]["Infidelity"], scores["PullbackAscent"]["Infidelity"])
    assert "(shared)" in ref.times and ref.times["(shared)"]["Infidelity"] > 0
    summary = (single / "summary.md").read_text()
    assert "protocol paper" in summary and "Infidelity-112+56" in summary
    a, b = tmp_path / "a", tmp_path / "b"
    evaluate(_paper(), b, shard=(1, 2), task=_task(), progress=False)
    evaluate(_paper(), a, shard=(0, 2), task=_task(), progress=False)
    other = merge(a, [b], write=False)
    for e in scores:
        for m in scores[e]:
            np.testing.assert_array_equal(other.scores[e][m], scores[e][m], err_msg=f"{e}/{m}")


def test_channels_last_forward_gives_the_same_scores(tmp_path):
    cfg = _paper(explainers=["Gradient"], variants={}, options={}, metric_options={},
                 metrics=["Infidelity", "FaithfulnessEstimate"])
    evaluate(cfg, tmp_path / "plain", task=_task(), progress=False)
    evaluate(cfg, tmp_path / "cl", task=_task(channels_last=True), progress=False)
    plain, cl = merge(tmp_path / "plain", write=False), merge(tmp_path / "cl", write=False)
    for m in cfg.metrics:
        np.testing.assert_allclose(cl.scores["Gradient"][m], plain.scores["Gradient"][m],
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_cli_paper_protocol_on_a_labels_csv_folder(tmp_path, capsys):
    from whiteboxdl.models.checkpoint import save_model

    rows = ["file,class_index,wnid"]
    for k, (cls, colour) in enumerate(((3, (200, 20, 20)), (7, (20, 200, 20)),
                                       (3, (20, 20, 200)))):
        Image.new("RGB", (240, 260), colour).save(tmp_path / f"{k}.png")
        rows.append(f"{k}.png,{cls},n0")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    model_file = tmp_path / "squeeze.pt"
    torch.manual_seed(0)
    from torchvision.models import squeezenet1_1

    save_model(model_file, squeezenet1_1(num_classes=10), "whiteboxdl.models.zoo:build_classifier",
               {"name": "squeezenet1_1", "num_classes": 10})
    out = tmp_path / "run"
    code = main(["quality", "evaluate", "--model", str(model_file), "--data", f"csv:{tmp_path}",
                 "--protocol", "paper", "--n", "3", "--batch-size", "3",
                 "--explainers", "Gradient,SoftPullback",
                 "--metrics", "FaithfulnessEstimate,RandomLogit,Focus", "--channels-last",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["protocol"] == "paper" and config["channels_last"] is True
    assert config["metric_options"]["Focus"]["tiles"] == "full"
    assert config["options"] == {"Gradient": {"reduce_channels": True}}
    assert (out / "report.html").stat().st_size > 0
    assert "Focus" in capsys.readouterr().out


def test_join_equals_one_run_of_all_explainers(tmp_path, capsys):
    both = _paper(explainers=["Gradient", "SoftPullback"], variants={}, options={},
                  metric_options={}, metrics=["Infidelity", "FaithfulnessEstimate", "Focus"],
                  n=2)
    a = _paper(explainers=["Gradient"], variants={}, options={}, metric_options={},
               metrics=both.metrics, n=4)                     # a larger run: n is a prefix
    b = _paper(explainers=["SoftPullback"], variants={}, options={}, metric_options={},
               metrics=both.metrics, n=2)
    for cfg, d in ((both, "both"), (a, "a"), (b, "b")):
        evaluate(cfg, tmp_path / d, task=_task(), progress=False)
    ref = merge(tmp_path / "both", write=False)
    assert main(["quality", "join", str(tmp_path / "joined"), str(tmp_path / "a"),
                 str(tmp_path / "b")]) == 0
    assert "2 images, 2 explainers" in capsys.readouterr().out
    from whiteboxdl.quality.report import join

    joined = join([tmp_path / "a", tmp_path / "b"])
    assert joined.config["explainers"] == ["Gradient", "SoftPullback"]
    for e in ref.scores:
        for m in ref.scores[e]:
            np.testing.assert_array_equal(joined.scores[e][m], ref.scores[e][m], err_msg=m)
    summary = (tmp_path / "joined" / "summary.md").read_text()
    assert "SoftPullback − Gradient" in summary and "s/image" in summary
    other = _paper(explainers=["SoftPullback"], variants={}, options={}, metric_options={},
                   metrics=both.metrics, n=2, seed=9)
    evaluate(other, tmp_path / "c", task=_task(), progress=False)
    with pytest.raises(ValueError, match="differs .* in seed"):
        join([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(ValueError, match="more than one"):
        join([tmp_path / "b", tmp_path / "b"])


def test_paper_protocol_scales_to_other_input_sizes():
    from whiteboxdl.quality.protocols import scale_metric_options

    cfg = RunConfig.from_protocol("paper", model="m", data="d", side=260)
    assert cfg.metric("Infidelity")[1]["patch_sizes"] == [65]
    assert cfg.metric("Infidelity-112+56")[1]["patch_sizes"] == [130, 65]
    assert cfg.metric_options["FaithfulnessCorrelation"]["subset_size"] == 16900  # 3·260²/12
    assert cfg.metric_options["FaithfulnessEstimate"]["features_in_step"] == 4225
    assert cfg.metric_options["MonotonicityCorrelation"]["features_in_step"] == 16900
    assert RunConfig.from_protocol("paper", model="m", data="d", side=224).metric_options == \
        RunConfig.from_protocol("paper", model="m", data="d").metric_options
    with pytest.raises(ValueError, match="do not divide"):
        scale_metric_options({"Infidelity": {"patch_sizes": [56]}}, 250)
