"""Ray options and addresses, sweep grids, and the errors a user meets before any cluster work:
a bad address, a missing extra, bad sweep axes. None of these start Ray."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from whiteboxdl.cli import main
from whiteboxdl.cluster.session import RAY_EXTRA, RayOptions, parse_address
from whiteboxdl.cluster.sweep import grid, parse_axis, run_dir_name
from whiteboxdl.quality.runner import RunConfig

from .conftest import SRC


@pytest.mark.parametrize("text,address", [
    (None, None), ("", None), ("local", None), ("auto", "auto"), (" AUTO ", "auto"),
    ("ray://head:10001", "ray://head:10001"), ("10.0.0.5:6379", "10.0.0.5:6379"),
    ("[::1]:6379", "[::1]:6379"), ("head-node.cluster:6379", "head-node.cluster:6379")])
def test_addresses(text, address):
    assert parse_address(text) == address
    assert RayOptions(address=text).address == address


@pytest.mark.parametrize("text", ["head", "ray://head", "head:port", "head:0", "head:70000",
                                  "http://head:8265", ":6379", "ray://:10001", "a b:1"])
def test_bad_addresses_are_a_value_error_naming_the_forms(text):
    with pytest.raises(ValueError, match="is not a Ray address; use auto, ray://HOST:PORT"):
        parse_address(text)


@pytest.mark.parametrize("kwargs,match", [
    (dict(cpus_per_task=0), "cpus_per_task must be > 0"),
    (dict(gpus_per_task=-1), "gpus_per_task must be >= 0"),
    (dict(max_retries=-1), "max_retries must be an integer >= 0"),
    (dict(max_retries=1.5), "max_retries must be an integer >= 0"),
    (dict(local_cpus=0), "local_cpus"),
    (dict(local_cpus=2, address="auto"), "is for a local instance")])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RayOptions(**kwargs)


def test_cli_refuses_a_bad_address_before_any_work(tmp_path, capsys):
    argv = ["quality", "evaluate", "--model", "mnist-cnn", "--data", "mnist", "--n", "4",
            "--out", str(tmp_path / "q"), "--ray=head"]
    assert main(argv) == 2
    assert "--ray 'head' is not a Ray address" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()
    assert main(["robustness", "evaluate", "cnn-3-5", "--out", str(tmp_path / "r"),
                 "--ray=ray://nowhere"]) == 2
    assert "--ray 'ray://nowhere' is not a Ray address" in capsys.readouterr().err


def test_without_ray_the_package_imports_and_ray_runs_name_the_extra(tmp_path):
    """``sys.modules['ray'] = None`` makes ``import ray`` fail as it does without the extra."""
    code = f"""
import sys
sys.modules["ray"] = None
import whiteboxdl, whiteboxdl.cli, whiteboxdl.cluster.quality, whiteboxdl.cluster.robustness
import whiteboxdl.cluster.sweep
from whiteboxdl.cli import main
from whiteboxdl.cluster.quality import evaluate_on_ray
from whiteboxdl.quality.runner import RunConfig
config = RunConfig(model="mnist-cnn", data="mnist", n=4)
try:
    evaluate_on_ray(config, {str(tmp_path / 'api')!r})
except ImportError as exc:
    print("API:", exc)
sys.exit(main(["quality", "evaluate", "--model", "mnist-cnn", "--data", "mnist", "--n", "4",
               "--out", {str(tmp_path / 'cli')!r}, "--ray"]))
"""
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"API: running on Ray needs Ray, which is not installed: {RAY_EXTRA}" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        f"whiteboxdl: error: running on Ray needs Ray, which is not installed: {RAY_EXTRA}")
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()  # no work done


def test_importing_the_cluster_modules_does_not_import_ray():
    code = ("import sys, whiteboxdl.cli, whiteboxdl.cluster.quality, whiteboxdl.cluster.robustness,"
            " whiteboxdl.cluster.sweep; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": SRC}, timeout=300)
    assert out.stdout.strip() == "False"


BASE = RunConfig(model="mnist-cnn", data="mnist", n=8,
                 explainers=["SoftPullback", "PullbackAscent", "Gradient"],
                 metrics=["Infidelity", "MaxSensitivity"], options={"Gradient": {}},
                 metric_options={"Infidelity": {"repeats": 2}})


def test_a_grid_is_the_product_of_its_axes_on_top_of_the_base_options():
    axes = [parse_axis("SoftPullback+PullbackAscent.temperature=0.3,1", BASE),
            parse_axis("PullbackAscent.steps=1,5", BASE),
            parse_axis("MaxSensitivity.radius=0.02", BASE)]
    configs = grid(BASE, axes)
    assert len(configs) == 4
    label, config = configs[3]
    assert label == ("SoftPullback+PullbackAscent.temperature=1__PullbackAscent.steps=5__"
                     "MaxSensitivity.radius=0.02")
    assert config.options == {"Gradient": {}, "SoftPullback": {"temperature": 1},
                              "PullbackAscent": {"temperature": 1, "steps": 5}}
    assert config.metric_options == {"Infidelity": {"repeats": 2},
                                     "MaxSensitivity": {"radius": 0.02}}
    assert BASE.options == {"Gradient": {}}                       # the base is left alone
    assert run_dir_name("A.clip=\"every\"/x") == "A.clip=_every__x"
    assert parse_axis("PullbackAscent.clip=every,last", BASE).values == ("every", "last")


@pytest.mark.parametrize("text,match", [
    ("temperature=0.3", "write NAME.KEY=V1,V2"),
    ("SmoothGrad.samples=2", "'SmoothGrad' is not an evaluated explainer or metric"),
    ("SoftPullback.temperature=", "write NAME.KEY=V1,V2"),
    ("SoftPullback.temperature=1,1", "distinct values")])
def test_bad_axes(text, match):
    with pytest.raises(ValueError, match=match):
        parse_axis(text, BASE)


def test_a_grid_refuses_an_option_varied_twice_and_the_sweep_unknown_options(tmp_path, capsys):
    axes = [parse_axis("SoftPullback.temperature=0.3,1", BASE),
            parse_axis("SoftPullback+PullbackAscent.temperature=3", BASE)]
    with pytest.raises(ValueError, match="varies an option twice"):
        grid(BASE, axes)
    argv = ["quality", "sweep", "--model", "mnist-cnn", "--data", "mnist", "--n", "4",
            "--explainers", "SoftPullback", "--metrics", "Infidelity",
            "--vary", "SoftPullback.bogus=1,2", "--out", str(tmp_path / "s")]
    assert main(argv) == 2
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()                          # refused before any work
