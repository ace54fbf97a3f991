"""keep_freed_memory: freed large blocks are reused, not unmapped and faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from whiteboxdl.runtime import ENV_SWITCH, keep_freed_memory

PROBE = r"""
import json, resource, sys, torch
from whiteboxdl.runtime import keep_freed_memory
tuned = keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(12):                               # a loop of large temporaries (100 MB + 33 MB)
    before = faults()
    t, u = torch.ones(25_000_000), torch.ones(8_000_000)
    counts.append(faults() - before)
    del t, u
print(json.dumps({"tuned": tuned, "faults": sum(counts[6:])}))   # steady state
"""


def _probe(switch: str) -> dict:
    env = dict(os.environ, **{ENV_SWITCH: switch, "OMP_NUM_THREADS": "1"})
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator tuning")
def test_freed_blocks_are_reused_without_page_faults():
    pages = 25_000_000 * 4 // 4096                  # ~24k pages of 4 KiB in the 100 MB block
    tuned, plain = _probe("1"), _probe("0")
    assert tuned["tuned"] is True and plain["tuned"] is False
    assert plain["faults"] > 5 * pages               # unmapped on free: faulted in every time
    assert tuned["faults"] < pages // 10             # kept and reused


def test_bad_limit_is_rejected():
    with pytest.raises(ValueError, match="limit"):
        keep_freed_memory(0)
