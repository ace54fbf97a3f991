"""Reader for the IDX format of the original MNIST / Fashion-MNIST files.

Example
-------
>>> import gzip, struct, tempfile
>>> path = tempfile.mktemp(suffix=".gz")               # a 2-image IDX file of 3x4 uint8 pixels
>>> with gzip.open(path, "wb") as f:
...     _ = f.write(struct.pack(">HBBIII", 0, 0x08, 3, 2, 3, 4) + bytes(range(24)))
>>> read_idx(path).shape
(2, 3, 4)
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

# IDX type codes -> numpy big-endian dtypes.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx_bytes(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file, validating magic number, dimensions and size.

    Raises ``ValueError`` naming ``name`` when the data is not a complete IDX file.
    """
    if len(raw) < 4:
        raise ValueError(f"{name}: not an IDX file (only {len(raw)} bytes)")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        magic = int.from_bytes(raw[:4], "big")
        raise ValueError(
            f"{name}: wrong IDX magic number 0x{magic:08x}; expected 0x0000TTDD with a known type "
            "code TT (0x08 for unsigned bytes) and 1-4 dimensions DD. Is this really an IDX file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing data"
        raise ValueError(
            f"{name}: IDX file {kind}: header says dimensions {dims} ({expected} bytes), "
            f"file has {len(raw)} bytes. Delete it and fetch the data again."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_raw_bytes(path: str | Path) -> bytes:
    """Return the (un-gzipped) bytes of ``path``; ``.gz`` files are decompressed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc}); delete it and fetch again") from exc
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a numpy array."""
    return read_idx_bytes(read_raw_bytes(path), name=str(path))


def md5_of(data: bytes) -> str:
    """MD5 hex digest of ``data``."""
    return hashlib.md5(data).hexdigest()
