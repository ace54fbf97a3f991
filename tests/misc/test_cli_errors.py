"""The command line's one error boundary: one line and exit 2 for expected failures, output paths
checked before any work, a bug message (exit 1) for anything else, --debug tracebacks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from whiteboxdl import cli
from whiteboxdl.cli import main
from whiteboxdl.paths import check_output_path


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nobody may create anything in (``/sys`` refuses even root)."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no unwritable folder to test with")
        yield Path("/sys/whiteboxdl-test-out")
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    yield locked / "out"
    locked.chmod(0o700)


def _commands(out: Path) -> dict[str, list[str]]:
    """Every command that writes, with ``out`` as its output (the model/data arguments are cheap
    or missing on purpose: the output check must come first)."""
    return {
        "quality evaluate": ["quality", "evaluate", "--model", "mnist-cnn", "--data", "mnist",
                             "--out", str(out)],
        "quality merge": ["quality", "merge", str(out)],
        "robustness evaluate": ["robustness", "evaluate", "cnn-4-7", "--out", str(out)],
        "explain": ["explain", "cat", "--model", "mnist-cnn", "--out", str(out / "fig.png")],
        "semantic train": ["semantic", "train", "--out", str(out)],
        "semantic inspect": ["semantic", "inspect", "missing.pt", "--out", str(out)],
        "train cnn": ["train", "cnn", "--digits", "4", "7", "--out", str(out)],
        "stability run": ["stability", "run", "--out", str(out)],
        "stability report": ["stability", "report", str(out)],
        "demo": ["demo", "--out", str(out)],
    }


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("whiteboxdl: error: ")
    return err


@pytest.mark.parametrize("command", list(_commands(Path("x"))))
def test_unwritable_out_is_one_line_exit_2_before_any_work(command, unwritable, capsys):
    start = time.perf_counter()
    assert main(_commands(unwritable)[command]) == 2
    assert time.perf_counter() - start < 5           # no stage, training or data loading first
    err = _one_error_line(capsys)
    assert "not writable" in err and "choose a folder you can write to" in err
    assert capsys.readouterr().out == ""             # e.g. demo printed no stage


@pytest.mark.parametrize("command", list(_commands(Path("x"))))
def test_out_that_is_a_file_or_below_one(command, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    if command != "explain":  # explain writes a file: an existing file is overwritten
        assert main(_commands(a_file)[command]) == 2
        assert "is an existing file, not a folder" in _one_error_line(capsys)
    assert main(_commands(a_file / "below")[command]) == 2
    assert f"{a_file} is a file, so no folder can be created there" in _one_error_line(capsys)
    assert a_file.read_text() == "not a folder"


def test_explain_out_that_is_a_folder(tmp_path, capsys):
    assert main(["explain", "cat", "--model", "mnist-cnn", "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file name inside it" in _one_error_line(capsys)


def test_check_output_path_leaves_nothing_behind(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_path(target) == target
    assert list(tmp_path.iterdir()) == []            # checked, not created
    with pytest.raises(ValueError, match="kind"):
        check_output_path(target, kind="folder")


def _with_handler(monkeypatch, handler):
    """Make ``whiteboxdl robustness attacks`` run ``handler`` (a stand-in for any command)."""
    import whiteboxdl.robustness.cli as robustness_cli

    monkeypatch.setattr(robustness_cli, "_list", handler)
    return ["robustness", "attacks"]


def test_os_errors_from_the_system_name_the_path_and_a_fix(tmp_path, monkeypatch, capsys):
    def write_into_missing_folder(args):
        open(tmp_path / "no" / "such" / "file.txt", "w")

    assert main(_with_handler(monkeypatch, write_into_missing_folder)) == 2
    err = _one_error_line(capsys)
    assert f"No such file or directory: {tmp_path}/no/such/file.txt" in err and "check the path" in err

    def permission(args):
        raise PermissionError(13, "Permission denied", "/etc/shadow")

    assert main(_with_handler(monkeypatch, permission)) == 2
    assert "Permission denied: /etc/shadow (choose a location you can write to" in \
        _one_error_line(capsys)


def test_validation_type_error_is_expected_a_bug_type_error_is_not(monkeypatch, capsys):
    from whiteboxdl.validation import check_class_index

    assert main(_with_handler(monkeypatch, lambda args: check_class_index("target", "3", 10))) == 2
    assert "target must be an integer class index, got '3'" in _one_error_line(capsys)

    def buggy(args):
        return None + 1

    assert main(_with_handler(monkeypatch, buggy)) == 1
    err = capsys.readouterr().err
    assert "internal error: TypeError" in err and "This is a bug in whiteboxdl" in err
    assert cli.REPORT_BUGS in err and "--debug" in err and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("kaputt")

    argv = _with_handler(monkeypatch, broken)
    assert main(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert "internal error: RuntimeError: kaputt" in err
    assert main(["--debug", *_with_handler(monkeypatch, lambda a: int("x"))]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "whiteboxdl: error: invalid literal" in err


def test_interrupt_keeps_its_message(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    assert main(_with_handler(monkeypatch, interrupted)) == 130
    assert "interrupted; finished work is kept, re-run to resume" in capsys.readouterr().err


def test_multi_line_messages_become_one_line(monkeypatch, capsys):
    def two_lines(args):
        raise ValueError("first part\n   second part")

    assert main(_with_handler(monkeypatch, two_lines)) == 2
    assert _one_error_line(capsys).endswith("first part second part")


def test_help_names_exit_codes_and_debug(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--debug" in out and "Exit codes: 0 ok, 2 bad input" in out
