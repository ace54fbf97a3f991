"""`whiteboxdl app` command line and the UI's error wrapper."""

from __future__ import annotations

import gradio as gr
import pytest

from whiteboxdl.cli import build_parser, main


def test_app_binds_to_loopback_by_default():
    args = build_parser().parse_args(["app"])
    assert (args.host, args.port, args.random_weights) == ("127.0.0.1", 7860, False)
    args = build_parser().parse_args(["app", "--port", "8000", "--host", "0.0.0.0"])
    assert (args.host, args.port) == ("0.0.0.0", 8000)


def test_bad_port_is_a_clear_error(capsys):
    assert main(["app", "--port", "70000"]) == 2
    assert "--port must be in 1..65535, got 70000" in capsys.readouterr().err


def test_user_errors_show_messages_not_tracebacks():
    from whiteboxdl.app.ui import user_errors

    @user_errors
    def handler(kind):
        if kind == "value":
            raise ValueError("steps must lie in [1, 200], got 0")
        raise RuntimeError("boom")

    with pytest.raises(gr.Error, match=r"steps must lie in \[1, 200\], got 0"):
        handler("value")
    with pytest.raises(gr.Error, match=r"internal error \(RuntimeError: boom\)") as info:
        handler("runtime")
    assert "Traceback" not in str(info.value)


def test_semantic_digits_choose_the_white_box_network(monkeypatch, capsys):
    args = build_parser().parse_args(["app"])
    assert args.semantic_digits == [3, 5]
    args = build_parser().parse_args(["app", "--semantic-digits", *map(str, range(10))])
    assert args.semantic_digits == list(range(10))
    assert main(["app", "--semantic-digits", "3", "3"]) == 2          # a usage error (the CLI error boundary)
    assert "--semantic-digits must be 2 to 10 distinct digits" in capsys.readouterr().err
    launched = {}
    monkeypatch.setattr("whiteboxdl.app.ui.launch",
                        lambda host, port, registry: launched.update(registry=registry))
    assert main(["app", "--semantic-digits", *map(str, range(10))]) == 0
    assert launched["registry"].semantic_digits == tuple(range(10))


def test_registry_loads_the_semantic_network_of_its_digits(monkeypatch):
    import torch

    from whiteboxdl.app.models import ModelRegistry
    from whiteboxdl.semantic.network import semantic_mnist

    asked = []

    def fake(digits=(3, 5), **_):
        asked.append(tuple(digits))
        return semantic_mnist(digits)

    monkeypatch.setattr("whiteboxdl.semantic.get_semantic_model", fake)
    model = ModelRegistry(semantic_digits=tuple(range(10))).semantic()
    assert asked == [tuple(range(10))] and model.n_classes == 10
    assert ModelRegistry().semantic().n_classes == 2 and asked[-1] == (3, 5)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert isinstance(model(torch.rand(1, 1, 28, 28)), torch.Tensor)
