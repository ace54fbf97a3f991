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
