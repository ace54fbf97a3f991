"""The lazy top-level API resolves every advertised name to the defining module's object."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import whiteboxdl


@pytest.mark.parametrize("name", sorted(whiteboxdl._EXPORTS))
def test_every_export_resolves_to_its_module_object(name):
    target = whiteboxdl._EXPORTS[name]
    module_name, attr = target if isinstance(target, tuple) else (target, name)
    assert getattr(whiteboxdl, name) is getattr(importlib.import_module(module_name), attr)


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        whiteboxdl.no_such_thing  # noqa: B018


def test_import_does_not_load_torch():
    code = "import sys, whiteboxdl; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(whiteboxdl.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "False"
