"""Process-level settings that make long CPU jobs faster.

PyTorch's CPU tensors come from the C allocator. glibc serves every block above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and gives it back on free, so a loop that
allocates large temporaries (perturbed batches, attribution maps) pays page faults on every
iteration: half of the CPU time of an explanation-quality run went to the kernel. Raising the
thresholds keeps freed memory in the process for reuse (a somewhat higher resident size).

Example
-------
>>> keep_freed_memory()          # glibc only  # doctest: +SKIP
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: ``mallopt`` parameters (glibc ``malloc.h``).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: Set to ``0`` to leave the allocator alone.
ENV_SWITCH = "WHITEBOXDL_KEEP_FREED_MEMORY"


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let glibc keep freed blocks up to ``limit`` bytes for reuse instead of unmapping them.

    Returns ``True`` if the allocator was tuned, ``False`` where it cannot be (not Linux/glibc)
    or when ``$WHITEBOXDL_KEEP_FREED_MEMORY`` is ``0``.
    """
    if limit <= 0:
        raise ValueError(f"limit must be a positive number of bytes, got {limit}")
    if not sys.platform.startswith("linux") or os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # musl and others have no mallopt
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, limit), (_M_TRIM_THRESHOLD, limit), (_M_TOP_PAD, 64 << 20)))
