"""One interface over adversarial attacks: official AutoAttack, PGD, FGSM and ART's Boundary.

``attack(model, x, y, eps, name=..., norm=..., seed=...)`` returns adversarial inputs in [0, 1].
Registered names (see :data:`ATTACKS`):

- ``"standard"``: AutoAttack's standard cascade (APGD-CE, APGD-T, FAB-T, Square 5000 queries),
  run by the official ``pyautoattack.AutoAttack.run_standard_evaluation``;
- ``"apgd-ce"``, ``"apgd-t"``, ``"fab-t"``, ``"square"``: one AutoAttack component alone, with the
  settings it has inside the standard cascade (``square`` takes ``n_queries``, default 5000);
- ``"pgd"``: PGD with random start, 40 steps of ``eps / 3`` (0.1 at ε = 0.3) by default;
- ``"fgsm"``: one signed-gradient step of size ``eps`` (a normalised step for L2);
- ``"boundary"``: ART's decision-based Boundary attack; unbounded (``eps`` is ignored), it looks
  for the smallest L2 perturbation that changes the prediction.

Models with fewer than 4 classes are wrapped in :class:`~whiteboxdl.robustness.padding.PaddedLogits`
(constant very low dummy logits) for the AutoAttack components, because DLR losses need 3 or 4
logits; targeted attacks then only target real classes. Predictions are unchanged.

Example
-------
>>> import torch
>>> from whiteboxdl.robustness.attacks import attack
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
>>> x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 2, (8,))
>>> x_adv = attack(model, x, y, eps=0.1, name="pgd")
>>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6), bool(x_adv.min() >= 0), bool(x_adv.max() <= 1)
(True, True, True)
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.models.state import eval_mode as _eval_mode
from whiteboxdl.robustness.padding import pad_logits

NORMS = ("Linf", "L2")
#: AutoAttack's standard cascade, in its order.
STANDARD_COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
#: AutoAttack's default number of Square queries.
SQUARE_QUERIES = 5000
#: AutoAttack's default batch size.
AUTOATTACK_BATCH = 250

AttackFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class AttackInfo:
    """A registered attack: its function, whether ``eps`` bounds it, and what it needs."""

    name: str
    fn: AttackFn
    bounded: bool
    access: str
    description: str

    def options(self) -> list[str]:
        """Keyword options the attack accepts besides the common arguments."""
        params = inspect.signature(self.fn).parameters
        return [p for p in params if p not in ("model", "x", "y", "eps", "norm", "seed", "n_real")]


# ---------------------------------------------------------------- validation and model handling
def validate_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None,
                    norm: str, bounded: bool = True) -> int:
    """Check an attack's arguments; return the model's number of classes.

    Raises ``ValueError`` naming the offending value: ``x`` not a finite float tensor in [0, 1],
    ``y`` not 1-D integer labels of the same length, labels outside the model's classes,
    ``eps`` not a finite positive number (when ``bounded``), or an unknown ``norm``.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x contains {int((~torch.isfinite(x)).sum())} non-finite values; "
                         "attacks need finite inputs in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"x must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; scale "
                         "images to [0, 1] (e.g. divide uint8 by 255)")
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16,
                                                          torch.uint8, torch.int8):
        raise ValueError(f"y must be an integer torch.Tensor of labels, got "
                         f"{getattr(y, 'dtype', type(y).__name__)}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must have shape ({len(x)},) to match x {tuple(x.shape)}, got "
                         f"{tuple(y.shape)}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if bounded or eps is not None:
        if (isinstance(eps, bool) or not isinstance(eps, (int, float))
                or not math.isfinite(eps) or eps <= 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    with torch.no_grad(), eval_mode(model):
        logits = model(x[:1])
    if logits.ndim != 2:
        raise ValueError(f"model must return logits of shape (batch, classes), got "
                         f"{tuple(logits.shape)}")
    n_classes = int(logits.shape[1])
    bad = y[(y < 0) | (y >= n_classes)]
    if len(bad):
        raise ValueError(f"label {int(bad[0])} is out of range for a model with {n_classes} "
                         f"classes (labels must be in 0..{n_classes - 1})")
    return n_classes


def eval_mode(model: nn.Module):
    """Eval mode with frozen parameters for the block; every module's mode and every
    parameter's ``requires_grad`` restored afterwards (:func:`whiteboxdl.models.state.eval_mode`)."""
    return _eval_mode(model, freeze=True)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in batches, without gradients."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _device(model: nn.Module, x: torch.Tensor) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else x.device


# ---------------------------------------------------------------- gradient attacks (own code)
def _step_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return grad.sign()
    flat = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / flat.view(-1, *([1] * (grad.ndim - 1)))


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * scale.view(-1, *([1] * (delta.ndim - 1)))
    return (x + delta).clamp(0.0, 1.0)


def _ce_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
        seed: int = 0, steps: int = 40, step_size: float | None = None,
        random_start: bool = True) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy (Madry et al.), final iterate.

    ``step_size`` defaults to ``eps / 3`` (0.1 at ε = 0.3); the random start is uniform in the
    L∞ ball (or a uniform radius along a random direction for L2), clipped to [0, 1].
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    step = eps / 3.0 if step_size is None else float(step_size)
    if not step > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    x_adv = x.clone()
    if random_start:
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.rand(x.shape, generator=g) * 2 - 1
        if norm == "L2":
            radius = torch.rand(len(x), generator=g).view(-1, *([1] * (x.ndim - 1)))
            noise = _step_direction(noise, "L2") * radius
        x_adv = _project(x + eps * noise.to(x.device), x, eps, norm)
    for _ in range(int(steps)):
        grad = _ce_gradient(model, x_adv, y)
        x_adv = _project(x_adv + step * _step_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
         seed: int = 0) -> torch.Tensor:
    """Fast gradient sign method: one step of size ``eps`` (the L2 variant normalises the step)."""
    grad = _ce_gradient(model, x, y)
    return _project(x + eps * _step_direction(grad, norm), x, eps, norm).detach()


# ---------------------------------------------------------------- AutoAttack (official package)
def make_autoattack(model: nn.Module, n_real: int, eps: float, norm: str = "Linf", seed: int = 0,
                    n_queries: int = SQUARE_QUERIES, device: torch.device | str = "cpu"):
    """An official ``pyautoattack.AutoAttack`` in its standard version, adapted to ``n_real`` classes.

    The model is padded to 4 logits if needed; APGD-T and FAB-T target the ``min(9, n_real - 1)``
    most likely real classes (9 in the standard 10-class setting, 1 for a binary model).
    """
    from pyautoattack import AutoAttack

    if int(n_queries) < 1:
        raise ValueError(f"n_queries must be >= 1, got {n_queries}")
    adversary = AutoAttack(pad_logits(model, n_real), eps=float(eps), norm=norm, seed=int(seed),
                           version="standard", device=device)
    adversary.verbose = False
    n_targets = max(1, min(9, n_real - 1))
    adversary.apgd_targeted.n_target_classes = n_targets
    adversary.fab.n_target_classes = n_targets
    adversary.square.n_queries = int(n_queries)
    return adversary


def autoattack_cascade(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                       norm: str = "Linf", seed: int = 0,
                       components: Sequence[str] = STANDARD_COMPONENTS,
                       n_queries: int = SQUARE_QUERIES, n_real: int | None = None,
                       batch_size: int = AUTOATTACK_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoAttack's cascade, reporting which component broke each input.

    Each component runs (through the official ``run_standard_evaluation``) only on the inputs
    that are still classified correctly, in order, exactly as the standard evaluation does.

    Returns
    -------
    x_adv, broken_by:
        Adversarial inputs (the clean input where no component succeeded) and, per input, the
        index into ``components`` of the component that broke it, ``-1`` if none did (or the
        input was misclassified to begin with).
    """
    unknown = [c for c in components if c not in STANDARD_COMPONENTS]
    if unknown:
        raise ValueError(f"unknown AutoAttack component {unknown[0]!r}; choose from "
                         f"{list(STANDARD_COMPONENTS)}")
    n_real = n_real or validate_inputs(model, x, y, eps, norm)
    with eval_mode(model):
        adversary = make_autoattack(model, n_real, eps, norm, seed, n_queries, _device(model, x))
        robust = predict(model, x).argmax(1) == y
        x_adv = x.clone()
        broken_by = torch.full((len(x),), -1, dtype=torch.long)
        for k, component in enumerate(components):
            idx = robust.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            adversary.attacks_to_run = [component]
            adv, _ = adversary.run_standard_evaluation(x[idx], y[idx], batch_size=batch_size)
            fooled = predict(model, adv).argmax(1) != y[idx]
            x_adv[idx[fooled]] = adv[fooled]
            broken_by[idx[fooled]] = k
            robust[idx[fooled]] = False
    return x_adv, broken_by


def _autoattack_runner(components: Sequence[str] | None) -> AttackFn:
    def run(model, x, y, eps, norm="Linf", seed=0, n_real=2, n_queries=SQUARE_QUERIES):
        adversary = make_autoattack(model, n_real, eps, norm, seed, n_queries, _device(model, x))
        if components is not None:
            adversary.attacks_to_run = list(components)
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=AUTOATTACK_BATCH)
        return x_adv

    if components is not None and "square" not in components:
        def run_without_queries(model, x, y, eps, norm="Linf", seed=0, n_real=2):
            return run(model, x, y, eps, norm, seed, n_real)

        return run_without_queries
    return run


# ---------------------------------------------------------------- Boundary (ART)
class _AsFloat32(nn.Module):
    """ART hands float64 batches to the model now and then; cast them back."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float())


def boundary(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None,
             norm: str = "L2", seed: int = 0, n_real: int = 2, max_iter: int = 1000,
             num_trial: int = 25, sample_size: int = 20, init_size: int = 100,
             delta: float = 0.01, epsilon: float = 0.01) -> torch.Tensor:
    """ART's untargeted Boundary attack (decision-based, minimal L2 perturbation, unbounded).

    The starting points are seeded uniform-noise images that the model misclassifies (ART would
    draw them from an unseeded generator). Inputs for which no such image is found in
    ``init_size`` draws are returned unchanged.
    """
    from art.attacks.evasion import BoundaryAttack
    from art.estimators.classification import PyTorchClassifier

    device = _device(model, x)
    classifier = PyTorchClassifier(model=_AsFloat32(model), loss=nn.CrossEntropyLoss(),
                                   input_shape=tuple(x.shape[1:]), nb_classes=n_real,
                                   clip_values=(0.0, 1.0),
                                   device_type="gpu" if device.type == "cuda" else "cpu")
    rng = np.random.default_rng(int(seed))
    x_np = x.detach().cpu().numpy().astype(np.float32)
    pred = predict(model, x).argmax(1).cpu().numpy()
    init = x_np.copy()
    for i in range(len(x_np)):
        noise = rng.uniform(0.0, 1.0, size=(int(init_size),) + x_np.shape[1:]).astype(np.float32)
        noise_pred = predict(model, torch.from_numpy(noise).to(device)).argmax(1).cpu().numpy()
        hits = np.flatnonzero(noise_pred != pred[i])
        if len(hits):
            init[i] = noise[hits[0]]
    attack_ = BoundaryAttack(classifier, targeted=False, max_iter=int(max_iter),
                             num_trial=int(num_trial), sample_size=int(sample_size),
                             init_size=int(init_size), delta=delta, epsilon=epsilon, verbose=False)
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        logging.getLogger("art").setLevel(logging.ERROR)
        adv = attack_.generate(x_np, y=None, x_adv_init=init)
    finally:
        np.random.set_state(state)
    return torch.from_numpy(adv).to(x.device, x.dtype).clamp(0.0, 1.0)


def _own(fn: AttackFn) -> AttackFn:
    """Adapt one of this module's attack functions to the registry's calling convention."""
    params = list(inspect.signature(fn).parameters.values())
    takes_n_real = any(p.name == "n_real" for p in params)

    def run(model, x, y, eps, norm="Linf", seed=0, n_real=2, **options):
        if takes_n_real:
            options["n_real"] = n_real
        return fn(model, x, y, eps, norm=norm, seed=seed, **options)

    if not takes_n_real:
        params.append(inspect.Parameter("n_real", inspect.Parameter.KEYWORD_ONLY, default=2))
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # fn's options
    return run


#: Every registered attack by name (``whiteboxdl robustness attacks`` lists them).
ATTACKS: dict[str, AttackInfo] = {
    info.name: info for info in (
        AttackInfo("standard", _autoattack_runner(None), True, "white-box + black-box",
                   "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square (5000 queries)"),
        AttackInfo("apgd-ce", _autoattack_runner(["apgd-ce"]), True, "white-box",
                   "AutoAttack APGD on cross-entropy, 100 iterations"),
        AttackInfo("apgd-t", _autoattack_runner(["apgd-t"]), True, "white-box",
                   "AutoAttack targeted APGD on the DLR loss, 100 iterations per target"),
        AttackInfo("fab-t", _autoattack_runner(["fab-t"]), True, "white-box",
                   "AutoAttack targeted FAB, 100 iterations per target"),
        AttackInfo("square", _autoattack_runner(["square"]), True, "black-box (scores)",
                   "AutoAttack Square, random search (n_queries, default 5000)"),
        AttackInfo("pgd", _own(pgd), True, "white-box",
                   "PGD-40 with random start, step eps/3 (own implementation)"),
        AttackInfo("fgsm", _own(fgsm), True, "white-box",
                   "FGSM, one step of size eps (own implementation)"),
        AttackInfo("boundary", _own(boundary), False, "decision-based",
                   "ART Boundary attack: minimal L2 perturbation, unbounded"),
    )
}


def available_attacks() -> list[str]:
    """Names accepted by :func:`attack`."""
    return list(ATTACKS)


def get_attack(name: str) -> AttackInfo:
    """The registered attack ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown attack {name!r}; known attacks: "
                         f"{', '.join(available_attacks())}") from None


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None,
           name: str = "apgd-ce", norm: str = "Linf", seed: int = 0,
           **options) -> torch.Tensor:
    """Adversarial versions of ``x`` (in [0, 1]) for true labels ``y`` under attack ``name``.

    Parameters
    ----------
    model:
        A classifier returning logits; it is used in eval mode with frozen parameters (both
        restored afterwards).
    x, y:
        Inputs ``(N, ...)`` in [0, 1] and integer labels ``(N,)``.
    eps:
        Perturbation budget in the ``norm`` (ignored by the unbounded ``"boundary"``).
    name:
        One of :func:`available_attacks`.
    norm:
        ``"Linf"`` (default) or ``"L2"``.
    seed:
        Seeds every random choice of the attack; same seed and inputs, same result.
    **options:
        Attack-specific options, e.g. ``n_queries`` for ``"square"``, ``steps`` and ``step_size``
        for ``"pgd"``, ``max_iter`` for ``"boundary"``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> x_adv = attack(model, torch.rand(3, 1, 2, 2), torch.tensor([0, 1, 0]), 0.1, name="fgsm")
    >>> x_adv.shape
    torch.Size([3, 1, 2, 2])
    """
    info = get_attack(name)
    allowed = info.options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"attack {name!r} has no option {unknown[0]!r}; its options: "
                         f"{', '.join(allowed) or 'none'}")
    n_real = validate_inputs(model, x, y, eps, norm, bounded=info.bounded)
    # AutoAttack re-seeds torch's global generator: keep the caller's random stream untouched
    with eval_mode(model), torch.random.fork_rng(devices=[]):
        x_adv = info.fn(model, x, y, eps, norm=norm, seed=int(seed), n_real=n_real, **options)
    return x_adv.detach()
