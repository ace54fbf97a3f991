"""Bit-packed storage of activation patterns over training, saved as one ``.npz`` file.

ReLU gates are stored with :func:`numpy.packbits` (1 bit per gate and probe sample), max-pool
window argmax as packed bit-planes (``ceil(log2(window size))`` bits each, 2 for a 2×2 pool),
``|z|/std`` margins of the last snapshot as float16, and the weights' relative change between
snapshots. Loading gives back exactly what was added.

Example
-------
>>> import numpy as np, tempfile
>>> from whiteboxdl.stability.patterns import LayerInfo, Snapshot
>>> from whiteboxdl.stability.store import PatternStore
>>> layer = LayerInfo("fc", "relu", (3,))
>>> store = PatternStore()
>>> store.add(0, Snapshot([layer], {"fc": np.array([[1, 0, 1], [0, 0, 1]], bool)}))
>>> path = store.save(tempfile.mktemp(suffix=".npz"))
>>> PatternStore.load(path).pattern(0, "fc").tolist()
[[True, False, True], [False, False, True]]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from whiteboxdl.runfiles import DamagedFileError, load_npz, save_npz
from whiteboxdl.stability.patterns import LayerInfo, PoolGeometry, Snapshot

FORMAT_VERSION = 1


def index_bits(layer: LayerInfo) -> int:
    """Bits per stored value: 1 for a ReLU gate, ``ceil(log2(kh*kw))`` for a pool argmax."""
    if layer.kind == "relu":
        return 1
    if layer.geometry is None:
        return 8
    kh, kw = layer.geometry.kernel
    return max(1, int(np.ceil(np.log2(kh * kw))))


def pack(layer: LayerInfo, value: np.ndarray) -> np.ndarray:
    """Bit-pack one layer's pattern (bool gates or window argmax) into uint8 bytes."""
    if layer.kind == "relu":
        return np.packbits(value.astype(bool).reshape(-1))
    bits = index_bits(layer)
    flat = value.astype(np.uint8).reshape(-1, 1)
    if int(flat.max(initial=0)) >= 1 << bits:
        raise ValueError(f"layer {layer.name}: window index {int(flat.max())} needs more than "
                         f"{bits} bits")
    return np.packbits((flat >> np.arange(bits, dtype=np.uint8)) & 1)


def unpack(layer: LayerInfo, data: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack` for ``n`` probe samples."""
    count = n * layer.size
    if layer.kind == "relu":
        return np.unpackbits(data, count=count).view(bool).reshape(n, *layer.shape)
    bits = index_bits(layer)
    planes = np.unpackbits(data, count=count * bits).reshape(count, bits)
    value = (planes << np.arange(bits, dtype=np.uint8)).sum(1, dtype=np.uint8)
    return value.reshape(n, *layer.shape)


class PatternStore:
    """Snapshots of one model's pattern on one fixed probe set, indexed 0..len-1 by training step."""

    def __init__(self) -> None:
        self.layers: list[LayerInfo] = []
        self.steps: list[int] = []
        self.n_probe: int | None = None
        self._packed: list[dict[str, np.ndarray]] = []
        self.margins: dict[str, np.ndarray] = {}
        self.margin_step: int | None = None
        #: per snapshot: {parameter name: ||W_s - W_{s-1}|| / ||W_{s-1}||} (empty for the first)
        self.weight_change: list[dict[str, float]] = []
        self.meta: dict = {}

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def relu_layers(self) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.kind == "relu"]

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer {name!r} in the store; layers: {[l.name for l in self.layers]}")

    def add(self, step: int, snapshot: Snapshot, weight_change: dict[str, float] | None = None) -> None:
        """Append ``snapshot`` taken at ``step`` (steps must increase)."""
        if self.steps and step <= self.steps[-1]:
            raise ValueError(f"step {step} is not after the last stored step {self.steps[-1]}")
        if not self.layers:
            self.layers = list(snapshot.layers)
            self.n_probe = len(next(iter(snapshot.values.values()))) if snapshot.values else 0
        elif [(l.name, l.kind, l.shape) for l in snapshot.layers] != \
                [(l.name, l.kind, l.shape) for l in self.layers]:
            raise ValueError("snapshot layers differ from the stored ones: "
                             f"{[l.name for l in snapshot.layers]} vs {[l.name for l in self.layers]}")
        packed = {}
        for layer in self.layers:
            value = np.asarray(snapshot.values[layer.name])
            if value.shape != (self.n_probe, *layer.shape):
                raise ValueError(f"layer {layer.name}: pattern shape {value.shape}, expected "
                                 f"{(self.n_probe, *layer.shape)}")
            packed[layer.name] = pack(layer, value)
        self._packed.append(packed)
        self.steps.append(int(step))
        self.weight_change.append(dict(weight_change or {}))
        if snapshot.margins:
            self.margins = {k: np.asarray(v, np.float16) for k, v in snapshot.margins.items()}
            self.margin_step = int(step)

    def pattern(self, index: int, layer: str) -> np.ndarray:
        """Unpacked pattern of snapshot ``index`` (negative counts from the end): bool gates
        ``(n_probe, *shape)`` for ReLUs, uint8 window argmax for max-pools."""
        return unpack(self.layer(layer), self._packed[index][layer], self.n_probe)

    def packed(self, index: int, layer: str) -> np.ndarray:
        """The stored bit-packed bytes of one snapshot and layer."""
        return self._packed[index][layer]

    def step_index(self, step: int) -> int:
        """Index of the snapshot taken at ``step``."""
        try:
            return self.steps.index(int(step))
        except ValueError:
            raise ValueError(f"no snapshot at step {step}; stored steps: {self.steps}") from None

    def save(self, path: str | Path) -> Path:
        """Write everything to ``path`` (``.npz``, uncompressed: the bits are dense; atomic)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format": FORMAT_VERSION, "steps": self.steps, "n_probe": self.n_probe,
            "layers": [{"name": l.name, "kind": l.kind, "shape": list(l.shape),
                        "geometry": l.geometry.to_json() if l.geometry else None}
                       for l in self.layers],
            "margin_step": self.margin_step, "weight_change": self.weight_change,
            "meta": self.meta,
        }
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
        for i, packed in enumerate(self._packed):
            for j, layer in enumerate(self.layers):
                arrays[f"s{i}_l{j}"] = packed[layer.name]
        for j, layer in enumerate(self.layers):
            if layer.name in self.margins:
                arrays[f"margin_l{j}"] = self.margins[layer.name]
        return save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "PatternStore":
        """Read a store written by :meth:`save`, verified (zip checksums, header, every array).

        Raises ``FileNotFoundError`` when it is missing and
        :class:`~whiteboxdl.runfiles.DamagedFileError` (a ``ValueError``) naming it when it is
        damaged; it is never read with pickle.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pattern store not found: {path} (written by "
                                    "`whiteboxdl stability run` as patterns.npz)")
        fix = ("the recording cannot be rebuilt from the run's other files: record it again "
               "with `whiteboxdl stability run ... --overwrite`")
        data = load_npz(path, fix)
        if "header" not in data:
            raise DamagedFileError(path, "no header: not a whiteboxdl pattern store", fix)
        try:
            header = json.loads(data["header"].tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DamagedFileError(path, f"unreadable header: {exc}", fix) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported pattern-store format "
                             f"{header.get('format') if isinstance(header, dict) else header!r}")
        try:
            return cls._from_arrays(header, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedFileError(path, f"its arrays do not match its header: {exc}",
                                   fix) from None

    @classmethod
    def _from_arrays(cls, header: dict, data: dict[str, np.ndarray]) -> "PatternStore":
        store = cls()
        store.layers = [LayerInfo(d["name"], d["kind"], tuple(d["shape"]),
                                  PoolGeometry.from_json(d["geometry"]) if d["geometry"] else None)
                        for d in header["layers"]]
        store.steps = [int(s) for s in header["steps"]]
        store.n_probe = header["n_probe"]
        store.margin_step = header["margin_step"]
        store.weight_change = header["weight_change"]
        store.meta = header["meta"]
        store._packed = [{layer.name: data[f"s{i}_l{j}"] for j, layer in enumerate(store.layers)}
                         for i in range(len(store.steps))]
        store.margins = {layer.name: data[f"margin_l{j}"] for j, layer in enumerate(store.layers)
                         if f"margin_l{j}" in data}
        for i in range(len(store.steps)):  # every snapshot unpacks to its layers' shapes
            for layer in store.layers:
                store.pattern(i, layer.name)
        return store
