"""Autograd Functions whose forward is the original op and whose backward is a soft rule.

Every Function here calls the original PyTorch op in ``forward`` (so outputs are bit-identical)
and replaces only the backward pass:

* :class:`SoftGate` — element-wise activations (ReLU, SiLU, GELU): ``grad_in = grad_out * gate(z)``
  with ``gate`` = ``sigmoid(z / T)`` or the normal CDF ``Phi(z / T)``; saves the pre-activation only.
* :class:`SoftMaxPool` — max-pool 1d/2d/3d: the gradient is routed over each window with
  ``softmax(x_window / T)`` weights (``"detached"``) or by the derivative of the smooth max
  ``sum x * softmax(x / T)`` (``"smoothmax"``, the paper's version). Windows follow kernel, stride,
  padding, dilation and ceil_mode exactly; padding never receives weight. Window weights are
  recomputed in backward from the saved input: from window sums of ``exp`` (one exponential per
  element) where that is exact, else over explicit window views.
* :class:`ConstantStatsLayerNorm` — LayerNorm with mean and variance constant in backward.
* :class:`ConstantWeightsAttention` — ``scaled_dot_product_attention`` with the attention weights
  (softened by ``T``) constant in backward: the gradient flows through the values only.

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks.gates import soft_relu
>>> z = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
>>> soft_relu(z, temperature=0.3).sum().backward()
>>> [round(v, 4) for v in z.grad.tolist()]
[0.0344, 0.5, 0.9987]
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from whiteboxdl.pullbacks._compat import original_op, will_engine_execute
from whiteboxdl.pullbacks.recipes import pullback
from whiteboxdl.pullbacks.registry import check_temperature

GateFn = Callable[[Tensor, float], Tensor]


def sigmoid_gate(z: Tensor, temperature: float) -> Tensor:
    """The paper's soft gate ``sigmoid(z / T)`` (one new tensor, the rest in place)."""
    return torch.div(z, temperature).sigmoid_()


def normal_gate(z: Tensor, temperature: float) -> Tensor:
    """The later revision's "expected gating" ``Phi(z / T)`` (standard normal CDF)."""
    return torch.special.ndtr(z / temperature)


def gated_grad(gate: GateFn, z: Tensor, temperature: float, grad: Tensor,
               reuse_z: bool = False) -> Tensor:
    """``grad * gate(z, T)``; for the sigmoid gate one fused pass (the softplus derivative with
    ``beta = 1/T`` is ``sigmoid(z / T)``; past ``z/T = 40`` it is 1 to within 4e-18).
    ``reuse_z=True`` writes the result into ``z`` (a temporary) instead of a new tensor."""
    if gate is sigmoid_gate:
        if reuse_z and z.shape == grad.shape and z.dtype == grad.dtype:
            return torch.ops.aten.softplus_backward.grad_input(grad, z, 1.0 / temperature, 40.0,
                                                               grad_input=z)
        return torch.ops.aten.softplus_backward(grad, z, 1.0 / temperature, 40.0)
    if isinstance(gate, ClippedGate):
        return gate.gated_grad(z, temperature, grad, reuse_z)
    return gate(z, temperature).mul_(grad)


class ClippedGate:
    """The soft gate of ``hardtanh(z, lo, hi)`` (ReLU6: ``lo, hi = 0, 6``).

    ``hardtanh(z) = lo + relu(z - lo) - relu(z - hi)`` is a sum of ReLUs, so with the ReLU gate
    ``g`` (sigmoid or normal CDF) its soft gate is ``g((z - lo)/T) - g((z - hi)/T)``: 1 inside
    ``(lo, hi)`` as ``T -> 0`` (the vanilla gradient), 0 as ``T -> inf`` (both halves -> 1/2).

    Example
    -------
    >>> import torch
    >>> gate = ClippedGate(sigmoid_gate, 0.0, 6.0)
    >>> [round(v, 4) for v in gate(torch.tensor([-1.0, 3.0, 7.0]), 1.0).tolist()]
    [0.268, 0.9051, 0.268]
    """

    def __init__(self, base: GateFn, lo: float, hi: float):
        if not lo <= hi:
            raise ValueError(f"hardtanh needs min_val <= max_val, got {lo} > {hi}")
        self.base, self.lo, self.hi = base, float(lo), float(hi)

    def __call__(self, z: Tensor, temperature: float | Tensor) -> Tensor:
        if self.base is sigmoid_gate:
            return self.gated_grad(z, temperature, torch.ones_like(z), False)
        if self.base is normal_gate:
            return self._normal(z, temperature)
        return (self.base(z - self.lo, temperature)  # type: ignore[arg-type]
                - self.base(z - self.hi, temperature))  # type: ignore[arg-type]

    def _normal(self, z: Tensor, temperature: float | Tensor) -> Tensor:
        # Phi(a) - Phi(b) = Phi(-b) - Phi(-a): above the middle the second form keeps its digits
        a, b = (z - self.lo) / temperature, (z - self.hi) / temperature
        upper = z > (self.lo + self.hi) / 2
        ndtr = torch.special.ndtr
        return torch.where(upper, ndtr(-b) - ndtr(-a), ndtr(a) - ndtr(b))

    def gated_grad(self, z: Tensor, temperature: float | Tensor, grad: Tensor,
                   reuse_z: bool) -> Tensor:
        """``grad * gate(z, T)`` (``T`` a number, or a tensor broadcasting against ``z``).

        Sigmoid: ``sigmoid(x) - sigmoid(x - d) = (1 - e^-d) * sigmoid(x) * sigmoid(d - x)`` with
        ``x = (z - lo)/T``, ``d = (hi - lo)/T``: two fused softplus-derivative passes, no
        cancellation. ``reuse_z``: ``z`` is a temporary that may be overwritten."""
        if self.base is not sigmoid_gate:
            return self(z, temperature).mul_(grad)
        if isinstance(temperature, Tensor):                  # per-channel temperatures
            a, d = (z - self.lo) / temperature, (self.hi - self.lo) / temperature
            return torch.sigmoid(d - a).mul_(torch.sigmoid(a)).mul_(torch.expm1(-d).neg_()) \
                .mul_(grad)
        beta, threshold = 1.0 / temperature, 40.0
        own = reuse_z and z.shape == grad.shape and z.dtype == grad.dtype
        if own:                                  # z is a temporary: shift it in place
            x = z.sub_(self.lo) if self.lo else z
        else:
            x = z - self.lo if self.lo else z
        out = torch.ops.aten.softplus_backward(grad, x, beta, threshold)      # grad * sig(x)
        x = x.sub_(self.hi - self.lo) if own or self.lo else z - self.hi      # z - hi
        torch.ops.aten.softplus_backward.grad_input(out, x, -beta, threshold,
                                                    grad_input=out)       # * sig((hi - z)/T)
        scale = -math.expm1(-(self.hi - self.lo) * beta)
        return out if scale == 1.0 else out.mul_(scale)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClippedGate) and (self.base, self.lo, self.hi) == \
            (other.base, other.lo, other.hi)

    def __hash__(self) -> int:
        return hash((self.base, self.lo, self.hi))

    def __repr__(self) -> str:
        return f"ClippedGate({getattr(self.base, '__name__', self.base)}, {self.lo:g}, {self.hi:g})"


#: Gate functions by name.
GATES: dict[str, GateFn] = {"sigmoid": sigmoid_gate, "normal": normal_gate}

#: Max-pool backward rules: paper's smooth-max derivative, later detached softmax routing.
MAXPOOL_RULES = ("smoothmax", "detached")


def get_gate(gate: str | GateFn) -> GateFn:
    """Look up a gate by name (``"sigmoid"`` or ``"normal"``); callables pass through."""
    if callable(gate):
        return gate
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}; choose one of {sorted(GATES)}")
    return GATES[gate]


def check_maxpool_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`MAXPOOL_RULES`, else ``ValueError``."""
    if rule not in MAXPOOL_RULES:
        raise ValueError(f"unknown maxpool_rule {rule!r}; choose one of {list(MAXPOOL_RULES)}")
    return rule


def _exp_floor(dtype: torch.dtype) -> float:
    """Smallest argument the soft max-pool passes to ``exp``: just above where the result turns
    subnormal or 0, where ``exp`` is 10-30x slower (weights below it are ~1e-38 in float32)."""
    return math.log(torch.finfo(dtype).tiny) + 1


def _first_order_only(rule: str) -> None:
    """The soft backward rules write into buffers (``out=``); double backward through them is
    not defined. Grad mode is on inside ``backward`` only under ``create_graph=True``."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"the {rule} pullback rule has a first-order backward only: "
                           "create_graph=True is not supported inside excitation_pullbacks(); "
                           "take higher-order gradients outside the context")


class SoftGate(torch.autograd.Function):
    """Element-wise activation with a soft-gated backward.

    ``apply(z, op, gate, temperature, inplace, recompute, *inputs)``: ``op(z)`` is the original
    activation (if in-place, ``inplace=True``). The pre-activation is saved for backward, or,
    when a :class:`~whiteboxdl.pullbacks.recipes.Recipe` ``recompute`` is given, recomputed from
    its tensors (which autograd keeps anyway) in backward. If ``inputs`` are the recipe's tensors,
    the gated gradient goes straight to them through the recipe's terms (the BatchNorm and
    addition nodes that made ``z`` then receive none), else it goes to ``z``.
    """

    @staticmethod
    def forward(ctx, z: Tensor, op: Callable[[Tensor], Tensor], gate: GateFn,  # type: ignore[override]
                temperature: float, inplace: bool, recompute=None, *inputs: Tensor) -> Tensor:
        saved = z.clone() if inplace and recompute is None else z
        out = original_op(lambda: op(z))
        if inplace:
            ctx.mark_dirty(z)
        # the recipe's closure and terms hold no tensors: those live only in save_for_backward
        ctx.compute = recompute.compute if recompute is not None else None
        ctx.terms = recompute.terms if inputs else None
        ctx.save_for_backward(*(recompute.tensors if recompute is not None else (saved,)))
        ctx.gate, ctx.temperature = gate, temperature
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        _first_order_only("activation")
        tensors = ctx.saved_tensors
        if ctx.compute is not None:
            with torch.no_grad():
                z = original_op(lambda: ctx.compute(*tensors))
            fresh = all(z.data_ptr() != t.data_ptr() for t in tensors)
        else:
            (z,), fresh = tensors, False
        grad_z = gated_grad(ctx.gate, z, ctx.temperature, grad, reuse_z=fresh)
        if ctx.terms is None:
            return (grad_z, None, None, None, None, None)
        # recipe tensor i is argument 6 + i, and tensor input 1 + i (after z)
        wanted = [_engine_needs(ctx, 6 + i, 1 + i) for i in range(len(tensors))]
        return (None, None, None, None, None, None, *pullback(ctx.terms, grad_z, tensors, wanted))


def recipe_inputs(tensors: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """A recipe's tensors as :class:`SoftGate` inputs. Leaves that require grad (parameters, an
    input image) go in as views: PyTorch cannot tell during ``autograd.grad`` whether a leaf's
    gradient is wanted, but it can for the view's node."""
    return tuple(t.view_as(t) if t.is_leaf and t.requires_grad else t for t in tensors)


def _engine_needs(ctx, argument: int, tensor_input: int) -> bool:
    """Whether this backward pass uses the gradient of an input (``argument``-th argument of
    ``apply``, ``tensor_input``-th tensor among them): an ``autograd.grad`` for the input image
    skips the parameters' gradients, as vanilla autograd does."""
    if not ctx.needs_input_grad[argument]:
        return False
    return will_engine_execute(ctx.next_functions[tensor_input][0])


def soft_relu(z: Tensor, temperature: float = 0.3, gate: str | GateFn = "sigmoid",
              inplace: bool = False) -> Tensor:
    """``relu(z)`` with the soft-gated backward ``grad * gate(z / T)``."""
    temperature = check_temperature(temperature)
    op = torch.relu_ if inplace else torch.relu
    return SoftGate.apply(z, op, get_gate(gate), temperature, inplace, None)


# ----------------------------------------------------------------------------------- max-pool
def _tuple(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"max-pool {name} must have 1 or {n} entries, got {value}")
    return value


class PoolGeometry:
    """Kernel, stride, padding and dilation of an ``n``-d max-pool, normalised to tuples."""

    def __init__(self, n: int, kernel_size, stride=None, padding=0, dilation=1):
        self.n = n
        self.kernel = _tuple(kernel_size, n, "kernel_size")
        self.stride = self.kernel if stride is None or (not isinstance(stride, int)
                                                        and len(stride) == 0) \
            else _tuple(stride, n, "stride")
        self.padding = _tuple(padding, n, "padding")
        self.dilation = _tuple(dilation, n, "dilation")

    def padded_size(self, in_size: Sequence[int], out_size: Sequence[int]) -> list[int]:
        """Per-dim size of a padded input that holds every window (``ceil_mode`` windows may
        reach past the right padding)."""
        return [max(in_size[i] + 2 * self.padding[i],
                    (out_size[i] - 1) * self.stride[i] + self.dilation[i] * (self.kernel[i] - 1) + 1)
                for i in range(self.n)]

    def offsets(self) -> list[tuple[int, ...]]:
        """Every position inside a window (``prod(kernel)`` tuples)."""
        return list(itertools.product(*(range(k) for k in self.kernel)))

    def element_view(self, padded: Tensor, offset: Sequence[int],
                     out_size: Sequence[int]) -> Tensor:
        """Strided view of ``padded`` holding element ``offset`` of every window (output shape)."""
        index = tuple(slice(o * d, o * d + (m - 1) * s + 1, s) for o, d, m, s in
                      zip(offset, self.dilation, out_size, self.stride))
        return padded[(Ellipsis,) + index]


class SoftMaxPool(torch.autograd.Function):
    """Max-pool whose backward routes the gradient softly over each window.

    ``apply(x, op, geometry, temperature, rule)``: ``op(x)`` is the original pooling call; it may
    return ``(output, indices)``, the indices are non-differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, op, geometry: PoolGeometry, temperature: float,  # type: ignore[override]
                rule: str):
        result = original_op(lambda: op(x))
        out = result[0] if isinstance(result, tuple) else result
        ctx.save_for_backward(x)
        ctx.geometry, ctx.temperature, ctx.rule = geometry, temperature, rule
        ctx.out_size = tuple(out.shape[-geometry.n:])
        if isinstance(result, tuple):
            ctx.mark_non_differentiable(result[1])
        return result

    @staticmethod
    def backward(ctx, grad: Tensor, *unused):  # type: ignore[override]
        _first_order_only("max-pool")
        (x,) = ctx.saved_tensors
        return soft_pool_backward(x, grad, ctx.geometry, ctx.out_size, ctx.temperature,
                                  ctx.rule), None, None, None, None


#: Max-pool backward works on chunks of rows (batch x channels) of about this many output elements.
#: CPU: the temporaries then stay in cache (ResNet50 stem pool: 20 ms vs 23 ms at 1 << 18 and
#: 25 ms at 1 << 15). Other devices: chunks only bound the temporaries' memory; small ones would
#: cost a kernel launch per op per chunk.
POOL_CHUNK_ELEMENTS = {"cpu": 1 << 16}
POOL_CHUNK_ELEMENTS_DEFAULT = 1 << 22


def soft_pool_backward(x: Tensor, grad: Tensor, geometry: PoolGeometry, out_size: Sequence[int],
                       temperature: float, rule: str) -> Tensor:
    """Input gradient of a max-pool under soft window routing (see :class:`SoftMaxPool`).

    With ``d = (x - window max) / T`` and ``p = softmax(d)`` over each window, an element gets
    ``p * grad`` (``"detached"``) or ``p * (1 + d - sum p d) * grad`` (``"smoothmax"``, the
    derivative of ``sum x * p``). Rows (batch x channels) are processed in chunks, so the
    temporaries stay small; rows take :func:`_window_sum_route` (undilated windows) or, where
    that cannot be exact, :func:`_soft_route`.
    """
    n = geometry.n
    in_size = tuple(x.shape[-n:])
    xb, gb = x.reshape(-1, *in_size), grad.reshape(-1, *out_size)
    rows = xb.shape[0]
    grad_in = torch.empty_like(xb)
    chunk_elements = POOL_CHUNK_ELEMENTS.get(x.device.type, POOL_CHUNK_ELEMENTS_DEFAULT)
    chunk = max(1, chunk_elements // max(1, math.prod(out_size)))
    if any(d != 1 for d in geometry.dilation):
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            grad_in[part] = _soft_route(xb[part], gb[part], geometry, out_size, temperature, rule)
        return grad_in.reshape(x.shape)
    lowest = xb.new_empty(rows)
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        _window_sum_route(xb[part], gb[part], geometry, out_size, temperature, rule,
                          out=grad_in[part], lowest=lowest[part])
    redo = _unroutable(lowest, geometry)
    for start in range(0, redo.numel(), chunk):
        rows_to_redo = redo[start:start + chunk]
        grad_in[rows_to_redo] = _soft_route(xb[rows_to_redo], gb[rows_to_redo], geometry,
                                            out_size, temperature, rule)
    return grad_in.reshape(x.shape)


def _offset_ranges(geometry: PoolGeometry, dim: int, in_len: int, out_len: int):
    """For each window offset along ``dim``: ``(first window, windows, first input)`` of the
    windows whose element at that offset lies inside the input (not in the padding)."""
    k, step, pad = geometry.kernel[dim], geometry.stride[dim], geometry.padding[dim]
    for o in range(k):
        first = max(0, -((o - pad) // step))                  # ceil((pad - o) / step)
        last = min(out_len, (in_len - 1 + pad - o) // step + 1)
        if last > first:
            yield first, last - first, first * step - pad + o


def _inputs_of(t: Tensor, dim: int, start: int, count: int, step: int) -> Tensor:
    """``count`` entries of ``t`` along ``dim`` from ``start`` every ``step`` (a view)."""
    size, stride = list(t.shape), list(t.stride())
    size[dim], stride[dim] = count, stride[dim] * step
    return t.as_strided(size, stride, t.storage_offset() + start * t.stride(dim))


def _accumulate(target: Tensor, parts: list[tuple[Tensor, Tensor]]) -> None:
    """Write into ``target`` the sum of ``parts``, ``(destination, source)`` pairs whose
    destinations are views into ``target``, and 0 where none lands. Sources covering all of
    ``target`` are written first (copy or ``add(out=)``), which saves a pass of zeros."""
    whole = [source for dest, source in parts if dest.shape == target.shape]
    if len(whole) >= 2:
        torch.add(whole[0], whole[1], out=target)
        whole = whole[2:]
    elif whole:
        target.copy_(whole.pop())
    else:
        target.zero_()
    for source in whole:
        target.add_(source)
    for dest, source in parts:
        if dest.shape != target.shape:
            dest.add_(source)


def _window_sums(t: Tensor, geometry: PoolGeometry, out_size: Sequence[int]) -> Tensor:
    """Sum of ``t`` (rows, *in) over every undilated window (padding adds 0), one dimension at
    a time."""
    for i in range(geometry.n):
        dim, step = 1 + i, geometry.stride[i]
        shape = list(t.shape)
        shape[dim] = out_size[i]
        total = t.new_empty(shape)
        _accumulate(total, [(total.narrow(dim, first, count), _inputs_of(t, dim, start, count, step))
                            for first, count, start in _offset_ranges(geometry, i, t.shape[dim],
                                                                      out_size[i])])
        t = total
    return t


def _window_sums_transposed(u: Tensor, in_size: Sequence[int], geometry: PoolGeometry) -> Tensor:
    """Adjoint of :func:`_window_sums`: every input element gets the sum of ``u`` (rows, *out)
    over the windows holding it."""
    for i in reversed(range(geometry.n)):
        dim, step, length = 1 + i, geometry.stride[i], in_size[i]
        shape = list(u.shape)
        shape[dim] = length
        spread = u.new_empty(shape)
        ranges = list(_offset_ranges(geometry, i, length, u.shape[dim]))
        for r in range(min(step, length)):          # inputs r, r + step, ...: one strided view
            _accumulate(_inputs_of(spread, dim, r, (length - r + step - 1) // step, step),
                        [(_inputs_of(spread, dim, start, count, step), u.narrow(dim, first, count))
                         for first, count, start in ranges if start % step == r])
        u = spread
    return u


def _window_sum_route(x: Tensor, grad: Tensor, geometry: PoolGeometry, out_size: Sequence[int],
                      temperature: float, rule: str, out: Tensor, lowest: Tensor) -> None:
    """Soft routing from window sums, without materialising the windows.

    With ``s = (x - row max) / T`` and ``e = exp(s)`` (one exponential per element, shared by
    all windows holding it), ``p = e / E`` with ``E`` the window sum of ``e``, and the smooth-max
    factor is ``1 + s - F / E`` with ``F`` the window sum of ``e * s``. Hence
    ``grad_in = e * (s * A + C)`` with ``A``, ``C`` the adjoint window sums of ``u = g / E`` and
    ``u - u * F / E`` (``detached``: ``e * A``), written to ``out``. Each row's smallest ``E``
    goes to ``lowest``, for :func:`_unroutable`.
    """
    rows, in_size = x.shape[0], tuple(x.shape[1:])
    smooth = rule == "smoothmax"
    high = x.flatten(1).amax(1).view(-1, *([1] * geometry.n))
    s = torch.add(high.mul(-1.0 / temperature), x, alpha=1.0 / temperature) \
        .clamp_(min=_exp_floor(x.dtype))
    es = x.new_empty((2 if smooth else 1, *x.shape))             # e and e * s, summed together
    e = torch.exp(s, out=es[0])
    if smooth:
        torch.mul(e, s, out=es[1])
    sums = _window_sums(es.flatten(0, 1), geometry, out_size).view(-1, rows, *out_size)
    total = sums[0]
    torch.amin(total.flatten(1), 1, out=lowest)
    adjoint = grad.new_empty((2 if smooth else 1, *grad.shape))
    u = torch.div(grad, total, out=adjoint[0])
    if smooth:
        torch.addcdiv(u, torch.mul(sums[1], u), total, value=-1, out=adjoint[1])
    spread = _window_sums_transposed(adjoint.flatten(0, 1), in_size, geometry)
    spread = spread.view(-1, rows, *in_size)
    if smooth:
        torch.addcmul(spread[1], s, spread[0], out=out).mul_(e)
    else:
        torch.mul(spread[0], e, out=out)


def _unroutable(lowest: Tensor, geometry: PoolGeometry) -> Tensor:
    """Indices of the rows :func:`_window_sum_route` cannot route exactly, from each row's
    smallest window sum ``E``: NaN (NaN or +inf inputs), or so near the clamped ``exp`` floor
    (a window far below its row's max) that the floor's contribution would exceed rounding."""
    info = torch.finfo(lowest.dtype)
    floor = math.e * info.tiny * math.prod(geometry.kernel) * -math.log(info.tiny) / info.eps
    return (~(lowest >= floor)).nonzero()[:, 0]


def _soft_route(x: Tensor, grad: Tensor, geometry: PoolGeometry, out_size: Sequence[int],
                temperature: float, rule: str) -> Tensor:
    """Soft routing of ``grad`` (rows, *out) onto ``x`` (rows, *in) over materialised windows:
    each window element is a strided view of the ``-inf``-padded input (padding gets weight ~0),
    the views are stacked into one ``(K, ...)`` tensor, weighted, and added back view by view."""
    n = geometry.n
    in_size = tuple(x.shape[1:])
    padded = geometry.padded_size(in_size, out_size)
    pads: list[int] = []
    for i in reversed(range(n)):
        pads += [geometry.padding[i], padded[i] - in_size[i] - geometry.padding[i]]
    xp = F.pad(x * (1.0 / temperature), pads, value=-math.inf)
    offsets = geometry.offsets()
    # (K, rows, *out): element k of every window
    windows = torch.stack([geometry.element_view(xp, o, out_size) for o in offsets])
    top = windows.amax(0)
    # far-below elements and the -inf padding get a weight of ~3e-38 (float32), not 0
    d = windows.sub_(top).clamp_(min=_exp_floor(xp.dtype))
    weight = torch.exp(d)
    total = weight.sum(0)
    if rule == "smoothmax":
        mean_d = torch.mul(weight, d).sum(0).div_(total)                # sum p d
        weight.mul_(d.sub_(mean_d.sub_(1)))                             # p (1 + d - sum p d)
    weight.mul_(grad / total)
    routed = torch.zeros_like(xp)
    for k, offset in enumerate(offsets):
        geometry.element_view(routed, offset, out_size).add_(weight[k])
    crop = (slice(None),) + tuple(slice(geometry.padding[i], geometry.padding[i] + in_size[i])
                                  for i in range(n))
    return routed[crop]


def soft_max_pool(x: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                  ceil_mode: bool = False, return_indices: bool = False,
                  temperature: float = 0.3, rule: str = "smoothmax"):
    """``F.max_pool{1,2,3}d`` (by ``x.ndim``; batched input) with soft routing in backward."""
    n = x.ndim - 2
    if n not in (1, 2, 3):
        raise ValueError(f"expected a batched 1d/2d/3d input (N, C, ...), got shape {tuple(x.shape)}")
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    geometry = PoolGeometry(n, kernel_size, stride, padding, dilation)

    def op(t):
        return pool(t, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                    return_indices=return_indices)

    return SoftMaxPool.apply(x, op, geometry, check_temperature(temperature),
                             check_maxpool_rule(rule))


# ---------------------------------------------------------------------------------- LayerNorm


class ConstantStatsLayerNorm(torch.autograd.Function):
    """LayerNorm with mean and variance treated as constants in backward.

    ``apply(x, weight, bias, op, n_dims, eps)``: backward gives ``grad * weight / sigma`` for ``x``
    and the usual gradients for ``weight`` and ``bias``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, op, n_dims: int, eps: float):  # type: ignore[override]
        out = original_op(lambda: op(x, weight, bias))
        ctx.save_for_backward(x, weight)
        ctx.n_dims, ctx.eps, ctx.has_bias = n_dims, eps, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        dims = tuple(range(x.ndim - ctx.n_dims, x.ndim))
        var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
        rstd = torch.rsqrt(var + ctx.eps)
        grad_x = grad * rstd if weight is None else grad * weight * rstd
        lead = tuple(range(x.ndim - ctx.n_dims))
        grad_w = (grad * (x - mean) * rstd).sum(lead) if weight is not None \
            and ctx.needs_input_grad[1] else None
        grad_b = grad.sum(lead) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None


# ---------------------------------------------------------------------------------- attention
def attention_weights(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], is_causal: bool,
                      scale: Optional[float], enable_gqa: bool, temperature: float) -> Tensor:
    """``softmax(q k^T * scale / T + mask)`` with the conventions of ``scaled_dot_product_attention``."""
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * (scale / temperature)
    L, S = q.shape[-2], k.shape[-2]
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, -math.inf)
        else:
            scores = scores + attn_mask / temperature
    return torch.softmax(scores, dim=-1)


class ConstantWeightsAttention(torch.autograd.Function):
    """``scaled_dot_product_attention`` whose attention weights are constant in backward.

    ``apply(q, k, v, op, attn_mask, is_causal, scale, enable_gqa, temperature)``: the gradient
    reaches ``v`` as ``A_T^T grad`` with ``A_T`` the weights softened by ``T``; ``q`` and ``k`` get 0.
    """

    @staticmethod
    def forward(ctx, q, k, v, op, attn_mask, is_causal, scale, enable_gqa,  # type: ignore[override]
                temperature):
        out = original_op(lambda: op(q, k, v))
        ctx.save_for_backward(q, k)
        ctx.args = (attn_mask, is_causal, scale, enable_gqa, temperature)
        ctx.v_heads = v.shape[-3] if v.ndim >= 3 else None
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        q, k = ctx.saved_tensors
        weights = attention_weights(q, k, *ctx.args)
        grad_v = weights.transpose(-2, -1) @ grad
        if ctx.v_heads is not None and grad_v.shape[-3] != ctx.v_heads:   # grouped-query attention
            groups = grad_v.shape[-3] // ctx.v_heads
            grad_v = grad_v.unflatten(-3, (ctx.v_heads, groups)).sum(-3)
        return None, None, grad_v, None, None, None, None, None, None
