"""Read the binary activation pattern of a ReLU network: gates (z > 0) and max-pool argmax.

Every ReLU and 2-d max-pool is intercepted by a :class:`~torch.overrides.TorchFunctionMode`, so
functional calls (``F.relu``, ``torch.relu``, ``x.relu()``, in-place variants, ``F.max_pool2d`` in
all its forms) are caught exactly like ``nn.ReLU`` / ``nn.MaxPool2d`` modules, without touching the
model. Layers are identified by their call order in one forward pass and named after the module
that made the call (forward hooks, removed afterwards).

Example
-------
>>> import torch
>>> from whiteboxdl.stability.patterns import record_patterns
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> snap = record_patterns(net, torch.randn(5, 3))
>>> [(layer.name, layer.kind, layer.shape) for layer in snap.layers]
[('1', 'relu', (4,))]
>>> snap.values["1"].shape, snap.values["1"].dtype
((5, 4), dtype('bool'))
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from whiteboxdl.pullbacks.registry import ops_of
from whiteboxdl.pullbacks.rules import POOL_DIMS

#: Every callable through which PyTorch code applies a ReLU (the pullback "relu" rule's ops).
RELU_FUNCS = ops_of("relu")
#: Every callable through which PyTorch code applies a 2-d max-pool (of the "maxpool" rule).
MAXPOOL_FUNCS = frozenset(op for op in ops_of("maxpool") if POOL_DIMS[op] == 2)
_ALWAYS_INDICES = (F.max_pool2d_with_indices, torch._C._nn.max_pool2d_with_indices)
_POOL_SIGNATURE = inspect.signature(F.max_pool2d_with_indices)


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return int(value[0]), int(value[0])
        return int(value[0]), int(value[1])
    return int(value), int(value)


@dataclass(frozen=True)
class PoolGeometry:
    """Kernel, stride, padding and dilation of one 2-d max-pool, and its input plane size."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    in_hw: tuple[int, int]

    @classmethod
    def from_call(cls, args: tuple, kwargs: dict) -> "PoolGeometry":
        """Normalise the arguments of any max-pool form (``stride`` default = kernel)."""
        bound = _POOL_SIGNATURE.bind(*args, **{k: v for k, v in kwargs.items()})
        a = bound.arguments
        x = a["input"]
        if x.dim() not in (3, 4):
            raise ValueError(f"max_pool2d input must be 3-d or 4-d, got shape {tuple(x.shape)}")
        kernel = _pair(a["kernel_size"])
        stride = a.get("stride")
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) \
            else _pair(stride)
        return cls(kernel, stride, _pair(a.get("padding", 0)), _pair(a.get("dilation", 1)),
                   bool(a.get("ceil_mode", False)), (int(x.shape[-2]), int(x.shape[-1])))

    def to_json(self) -> dict:
        return {"kernel": list(self.kernel), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation),
                "ceil_mode": self.ceil_mode, "in_hw": list(self.in_hw)}

    @classmethod
    def from_json(cls, d: dict) -> "PoolGeometry":
        return cls(*(tuple(d[k]) for k in ("kernel", "stride", "padding", "dilation")),
                   bool(d["ceil_mode"]), tuple(d["in_hw"]))

    def _starts(self, out_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.arange(out_hw[0]) * self.stride[0] - self.padding[0]
        cols = torch.arange(out_hw[1]) * self.stride[1] - self.padding[1]
        return rows.view(-1, 1), cols.view(1, -1)

    def local_index(self, flat: torch.Tensor) -> torch.Tensor:
        """Flat input-plane argmax indices (as returned by PyTorch) → position in the window."""
        r0, c0 = self._starts(tuple(flat.shape[-2:]))
        w = self.in_hw[1]
        span_h = (self.kernel[0] - 1) * self.dilation[0]
        span_w = (self.kernel[1] - 1) * self.dilation[1]
        if span_w < w:  # offsets from the window's corner map one-to-one to window positions
            offsets = torch.arange(self.kernel[0]).view(-1, 1) * self.dilation[0] * w + \
                torch.arange(self.kernel[1]).view(1, -1) * self.dilation[1]
            table = torch.zeros(span_h * w + span_w + 1, dtype=torch.uint8)
            table[offsets.flatten()] = torch.arange(offsets.numel(), dtype=torch.uint8)
            return table[flat - (r0 * w + c0)]
        rows = torch.div(flat // w - r0, self.dilation[0], rounding_mode="floor")
        cols = torch.div(flat % w - c0, self.dilation[1], rounding_mode="floor")
        return (rows * self.kernel[1] + cols).to(torch.uint8)

    def flat_index(self, local: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`local_index`: window position → flat input-plane index (int64)."""
        r0, c0 = self._starts(tuple(local.shape[-2:]))
        local = local.long()
        rows = r0 + (local // self.kernel[1]) * self.dilation[0]
        cols = c0 + (local % self.kernel[1]) * self.dilation[1]
        return rows * self.in_hw[1] + cols


@dataclass(frozen=True)
class LayerInfo:
    """One gated layer: name, ``"relu"`` or ``"maxpool"``, per-sample pattern shape, pool geometry."""

    name: str
    kind: str
    shape: tuple[int, ...]
    geometry: PoolGeometry | None = None

    @property
    def size(self) -> int:
        """Number of gates (ReLU units or pool windows) per sample."""
        return int(np.prod(self.shape))


@dataclass
class Snapshot:
    """Pattern of every layer on a batch: bool gates for ReLUs, uint8 window argmax for pools.

    ``margins`` (optional) holds ``|z| / std(z)`` per ReLU gate (std over the layer and batch).
    """

    layers: list[LayerInfo]
    values: dict[str, np.ndarray]
    margins: dict[str, np.ndarray] = field(default_factory=dict)


class _Interceptor(TorchFunctionMode):
    """Routes ReLU and max-pool calls to handlers ``on_relu(func, z, args, kwargs)`` and
    ``on_pool(func, args, kwargs)``; everything else runs unchanged."""

    def __init__(self, on_relu: Callable, on_pool: Callable):
        super().__init__()
        self.on_relu, self.on_pool = on_relu, on_pool

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in RELU_FUNCS:
            z = args[0] if args else kwargs["input"]
            return self.on_relu(func, z, args, kwargs)
        if func in MAXPOOL_FUNCS:
            return self.on_pool(func, args, kwargs)
        return func(*args, **kwargs)


@contextmanager
def _module_names(model: nn.Module) -> Iterator[list[str]]:
    """Yield a stack holding the qualified name of the module currently running."""
    stack: list[str] = []
    handles = []

    def enter(name: str) -> Callable:
        def hook(_module, _inputs) -> None:
            stack.append(name or "(root)")
        return hook

    def leave(_module, _inputs, _output) -> None:
        stack.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


class _Namer:
    """Names the k-th intercepted call after the running module (``"3"``, ``"block.relu#2"``)."""

    def __init__(self, stack: list[str]):
        self.stack, self.seen = stack, {}

    def __call__(self) -> str:
        module = self.stack[-1] if self.stack else "(root)"
        self.seen[module] = self.seen.get(module, 0) + 1
        return module if self.seen[module] == 1 else f"{module}#{self.seen[module]}"


def pool_call(func, args: tuple, kwargs: dict) -> tuple[object, torch.Tensor, PoolGeometry]:
    """Run a max-pool call as the caller asked and also return its flat argmax and geometry."""
    geometry = PoolGeometry.from_call(args, kwargs)
    bound = _POOL_SIGNATURE.bind(*args, **kwargs).arguments
    plain = {k: v for k, v in bound.items() if k != "return_indices"}
    if plain.get("stride") is not None and isinstance(plain["stride"], (list, tuple)) \
            and not plain["stride"]:
        plain["stride"] = None
    out, idx = F.max_pool2d_with_indices(**plain, return_indices=True)
    wants_indices = func in _ALWAYS_INDICES or bool(bound.get("return_indices", False))
    return ((out, idx) if wants_indices else out), idx, geometry


def _as_batch(idx: torch.Tensor) -> torch.Tensor:
    return idx if idx.dim() == 4 else idx.unsqueeze(0)


@torch.no_grad()
def record_patterns(model: nn.Module, x: torch.Tensor, batch_size: int = 256,
                    margins: bool = False) -> Snapshot:
    """Gate pattern of every ReLU (``z > 0``) and window argmax of every max-pool on ``x``.

    The model runs in eval mode (restored afterwards) without gradients, in chunks of
    ``batch_size``. With ``margins=True`` also returns ``|z| / std(z)`` per ReLU gate (float16).

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    >>> snap = record_patterns(net, torch.randn(4, 1, 8, 8))
    >>> [(l.kind, l.shape) for l in snap.layers]
    [('relu', (2, 6, 6)), ('maxpool', (2, 3, 3))]
    """
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"probe inputs must be a non-empty batch, got shape {tuple(x.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    chunks: list[dict[str, torch.Tensor]] = []
    zs: dict[str, list[torch.Tensor]] = {}
    layers: list[LayerInfo] = []
    try:
        for start in range(0, len(x), batch_size):
            chunk: dict[str, torch.Tensor] = {}
            first = start == 0
            with _module_names(model) as stack:
                namer = _Namer(stack)
                order: list[str] = []

                def on_relu(func, z, args, kwargs):
                    name = namer()
                    order.append(name)
                    chunk[name] = (z > 0).detach().cpu()
                    if margins:
                        zs.setdefault(name, []).append(z.detach().float().cpu().clone())
                    if first:
                        layers.append(LayerInfo(name, "relu", tuple(z.shape[1:])))
                    return func(*args, **kwargs)

                def on_pool(func, args, kwargs):
                    name = namer()
                    order.append(name)
                    result, idx, geometry = pool_call(func, args, kwargs)
                    local = geometry.local_index(_as_batch(idx))
                    chunk[name] = local.detach().cpu()
                    if first:
                        layers.append(LayerInfo(name, "maxpool", tuple(local.shape[1:]), geometry))
                    return result

                with _Interceptor(on_relu, on_pool):
                    model(x[start:start + batch_size])
            if [layer.name for layer in layers] != order:
                raise ValueError("the model's ReLU/max-pool calls differ between probe chunks "
                                 f"({[layer.name for layer in layers]} vs {order}); patterns need a "
                                 "fixed call order")
            chunks.append(chunk)
    finally:
        model.train(was_training)
    values = {layer.name: (torch.cat([c[layer.name] for c in chunks]) if len(chunks) > 1
                           else chunks[0][layer.name]).numpy() for layer in layers}
    snap = Snapshot(layers, values)
    if margins:
        for name, parts in zs.items():
            z = torch.cat(parts)
            std = float(z.std()) or 1.0
            snap.margins[name] = (z.abs() / std).numpy().astype(np.float16)
    return snap
