"""One registry of explainers with one signature: ``explainer(model, x, target) -> attribution``.

Ours: ``SoftPullback`` (the one-step excitation pullback), ``PullbackAscent`` (K=5 L2-normalised
ascent steps, explanation ``x_K − x₀``) and ``SmoothPullback`` (Captum's NoiseTunnel over pullbacks).
Baselines from Captum: ``Gradient`` (Saliency without abs), ``GradientAscent`` (the same ascent with
the vanilla backward), ``SmoothGrad``, ``FusionGrad`` (noisy weights and inputs, Bykov et al.;
:mod:`whiteboxdl.quality.fusiongrad`), ``IntegratedGradients``, ``GradientShap``, ``DeepLift``,
``GuidedBackprop`` and ``GuidedGradCam`` (needs a conv layer). Attributions are batched and have the
inputs' shape. Pullbacks use the paper's settings of :mod:`whiteboxdl.pullbacks` (sigmoid gate,
T = 0.3, smooth max-pool). The ascents do not clamp by default (``clip=None``; the spec allows
every step, last step or never): the explanation is a direction, and on MNIST, whose pixels sit at
0 and 1, clamping erases every step that darkens the background or brightens a stroke.

Hyper-parameters follow the spec (on [−1, 1] ImageNet inputs) and are scaled to the input domain
and size: noise σ = 0.15 · half-range; ascent step α = 20 · √(D / 3·224²) · half-range, with D the
number of input values (α = 20 for ImageNet in [−1, 1], ≈ 0.72 for MNIST in [0, 1]).

Example
-------
>>> import torch
>>> from whiteboxdl.quality.explainers import get_explainer
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
>>> grad = get_explainer("Gradient")
>>> a = grad(model, torch.rand(2, 1, 2, 2), torch.tensor([0, 2]))
>>> torch.allclose(a[1].flatten(), model[1].weight[2])
True
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

Domain = tuple[float, float]
#: The spec's input size (3×224×224), used to scale the ascent step to other inputs.
SPEC_FEATURES = 3 * 224 * 224


def _half_range(domain: Domain) -> float:
    return (domain[1] - domain[0]) / 2


def ascent_alpha(x: Tensor, domain: Domain, alpha: float = 20.0) -> float:
    """The spec's step α (on 3×224² inputs in [−1, 1]) scaled to ``x``'s size and domain."""
    return alpha * math.sqrt(x[0].numel() / SPEC_FEATURES) * _half_range(domain)


#: Input values per backward pass of the sampling explainers (all 50 samples of 50 MNIST images
#: at once; 27 images of 3×224²), which bounds their memory.
BACKWARD_FLOATS = 2 ** 22


def samples_per_backward(x: Tensor, samples: int) -> int:
    """How many noisy copies of the batch ``x`` one backward pass takes (at least 1)."""
    return max(1, min(samples, BACKWARD_FLOATS // max(1, x.numel())))


def seed_global(seed: int) -> None:
    """Seed the global torch and NumPy generators that Captum's stochastic explainers use."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def last_conv_layer(model: nn.Module) -> str | None:
    """Name of the last ``nn.Conv2d`` in ``model`` (GuidedGradCam's default layer), or None."""
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            name = n
    return name


@dataclass
class Explainer:
    """A named explainer: call it as ``explainer(model, x, target)``.

    ``counterpart`` names the gradient method a pullback variant is compared with; ``stochastic``
    says whether it draws random numbers (call :func:`seed_global` before it for reproducibility:
    Captum draws from both torch's and NumPy's global generators).
    """

    name: str
    fn: Callable[..., Tensor]
    counterpart: str | None = None
    stochastic: bool = False
    options: dict = field(default_factory=dict)

    #: Sum the map over channels and repeat the sum in every channel (``quantus.explain``'s
    #: ``reduce_axes=[1]`` followed by the metrics' broadcast to the input's shape).
    reduce_channels: bool = False

    def __call__(self, model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expected a batch (N, C, H, W), got {tuple(x.shape)}")
        target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
        if target.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: {target.shape[0]} targets for {x.shape[0]} inputs")
        out = self.fn(model, x.detach().clone(), target, **self.options)
        out = out.detach().reshape(x.shape).to(x.dtype)
        if self.reduce_channels:
            out = out.sum(1, keepdim=True).expand_as(x).contiguous()
        return out


# ----------------------------------------------------------------------------- ours
# Our explainers take every pullback setting as a keyword (temperature=, maxpool_temperature=,
# silu_temperature= ..., or settings=PullbackSettings(...)): see whiteboxdl.pullbacks.settings.
def _soft_pullback(model, x, target, **pullback):
    from whiteboxdl.pullbacks import ExcitationPullback

    return ExcitationPullback(model, **pullback).attribute(x, target=target)


def _run_ascent(cls_name: str, model, x, target, domain: Domain, steps: int,
                alpha: float | None, clip: str | None, **pullback):
    import whiteboxdl.pullbacks as pb

    a = alpha if alpha is not None else ascent_alpha(x, domain)
    # Clamp to the domain, widened to hold inputs slightly outside it (noisy copies of
    # Max Sensitivity): the ascent refuses inputs outside its bounds.
    bounds = (min(domain[0], float(x.min())), max(domain[1], float(x.max())))
    ascent = getattr(pb, cls_name)(model, steps=steps, alpha=a, clip=clip, bounds=bounds,
                                   **pullback)
    return ascent.attribute(x, target=target)


def _pullback_ascent(model, x, target, *, domain: Domain, steps: int = 5,
                     alpha: float | None = None, clip: str | None = None, **pullback):
    return _run_ascent("PullbackAscent", model, x, target, domain, steps, alpha, clip, **pullback)


def _gradient_ascent(model, x, target, *, domain: Domain, steps: int = 5,
                     alpha: float | None = None, clip: str | None = None):
    return _run_ascent("GradientAscent", model, x, target, domain, steps, alpha, clip)


def _smooth_pullback(model, x, target, *, domain: Domain, samples: int = 50,
                     sigma: float | None = None, **pullback):
    from captum.attr import NoiseTunnel

    from whiteboxdl.pullbacks import ExcitationPullback

    nt = NoiseTunnel(ExcitationPullback(model, **pullback))
    return nt.attribute(x, nt_type="smoothgrad", nt_samples=samples,
                        nt_samples_batch_size=samples_per_backward(x, samples),
                        stdevs=sigma if sigma is not None else 0.15 * _half_range(domain),
                        target=target)


# ----------------------------------------------------------------------------- Captum
def _gradient(model, x, target):
    from captum.attr import Saliency

    return Saliency(model).attribute(x, target=target, abs=False)


def _smoothgrad(model, x, target, *, domain: Domain, samples: int = 50,
                sigma: float | None = None):
    from captum.attr import NoiseTunnel, Saliency

    return NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=samples,
        nt_samples_batch_size=samples_per_backward(x, samples),
        stdevs=sigma if sigma is not None else 0.15 * _half_range(domain), target=target,
        abs=False)


def _integrated_gradients(model, x, target, *, baseline: float = 0.0, steps: int = 50,
                          method: str = "gausslegendre"):
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(
        x, baselines=torch.full_like(x, baseline), target=target, n_steps=steps, method=method,
        internal_batch_size=max(1, 2048 // max(1, x[0].numel() // 784)))


def _gradient_shap(model, x, target, *, domain: Domain, samples: int = 20,
                   baseline: float = 0.0, noise_baselines: int = 9):
    from captum.attr import GradientShap

    lo, hi = domain
    # Baseline distribution: the black/zero image and (by default 9) uniform-noise images over
    # the domain; noise_baselines=0 leaves one constant image per input, as quantus.explain
    # passes them (the same draws as quantus.explain's GradientShap).
    if noise_baselines == 0:
        baselines = torch.full_like(x, baseline)
    else:
        noise = lo + (hi - lo) * torch.rand(noise_baselines, *x.shape[1:], dtype=x.dtype)
        baselines = torch.cat([torch.full_like(x[:1], baseline), noise])
    return GradientShap(model).attribute(x, baselines=baselines, n_samples=samples, target=target)


def _fusiongrad(model, x, target, *, domain: Domain, weight_samples: int = 10,
                input_samples: int = 10, weight_std: float = 0.5, input_std: float | None = None):
    from whiteboxdl.quality.fusiongrad import fusiongrad

    return fusiongrad(model, x, target, weight_samples=weight_samples,
                      input_samples=input_samples, weight_std=weight_std,
                      input_std=input_std if input_std is not None else 0.5 * _half_range(domain))


def _deeplift(model, x, target, *, baseline: float = 0.0):
    from captum.attr import DeepLift

    return DeepLift(model).attribute(x, baselines=torch.full_like(x, baseline), target=target)


def _guided_backprop(model, x, target):
    from captum.attr import GuidedBackprop

    return GuidedBackprop(model).attribute(x, target=target)


def _guided_gradcam(model, x, target, *, layer: str | None = None):
    from captum.attr import GuidedGradCam

    name = layer or last_conv_layer(model)
    if name is None:
        raise ValueError("GuidedGradCam needs a conv layer: the model has no nn.Conv2d; name one "
                         "with layer='...' or leave GuidedGradCam out")
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"GuidedGradCam: the model has no layer {name!r}") from None
    return GuidedGradCam(model, module).attribute(x, target=target)


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., Tensor]
    counterpart: str | None = None
    stochastic: bool = False
    needs_domain: bool = False


_REGISTRY: dict[str, _Entry] = {
    "SoftPullback": _Entry(_soft_pullback, counterpart="Gradient"),
    "PullbackAscent": _Entry(_pullback_ascent, counterpart="GradientAscent",
                             needs_domain=True),
    "SmoothPullback": _Entry(_smooth_pullback, counterpart="SmoothGrad", stochastic=True,
                             needs_domain=True),
    "Gradient": _Entry(_gradient),
    "GradientAscent": _Entry(_gradient_ascent, needs_domain=True),
    "SmoothGrad": _Entry(_smoothgrad, stochastic=True, needs_domain=True),
    "FusionGrad": _Entry(_fusiongrad, stochastic=True, needs_domain=True),
    "IntegratedGradients": _Entry(_integrated_gradients),
    "GradientShap": _Entry(_gradient_shap, stochastic=True, needs_domain=True),
    "DeepLift": _Entry(_deeplift),
    "GuidedBackprop": _Entry(_guided_backprop),
    "GuidedGradCam": _Entry(_guided_gradcam),
}
#: Every explainer name, ours first.
EXPLAINERS: tuple[str, ...] = tuple(_REGISTRY)
#: Pullback variant -> its gradient counterpart (for paired differences).
COUNTERPARTS: dict[str, str] = {k: e.counterpart for k, e in _REGISTRY.items() if e.counterpart}


def get_explainer(name: str, *, domain: Domain = (0.0, 1.0), **options) -> Explainer:
    """The explainer ``name`` configured for inputs in ``domain``.

    ``options`` override hyper-parameters, e.g. ``samples=50`` (SmoothGrad, SmoothPullback,
    GradientShap), ``steps`` (ascents, IntegratedGradients), ``alpha``, ``layer``
    (GuidedGradCam), and for our explainers every pullback setting (``temperature``,
    ``maxpool_temperature``, ``silu_temperature`` …, or ``settings=``); see
    :func:`explainer_options`. Every explainer takes ``reduce_channels=True``: the map summed
    over channels (repeated in each), as ``quantus.explain`` returns Captum's maps. Unknown
    options are refused.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown explainer {name!r}; choose from {', '.join(EXPLAINERS)}")
    if not domain[0] < domain[1]:
        raise ValueError(f"domain must be (low, high) with low < high, got {domain}")
    entry = _REGISTRY[name]
    opts = dict(options)
    reduce = opts.pop("reduce_channels", False)
    if not isinstance(reduce, bool):
        raise ValueError(f"{name}: reduce_channels must be true or false, got {reduce!r}")
    _check_options(name, entry.fn, opts)
    if entry.needs_domain:
        opts["domain"] = tuple(domain)
    return Explainer(name, entry.fn, entry.counterpart, entry.stochastic, opts, reduce)


def explainer_options(name: str) -> list[str]:
    """The option keywords explainer ``name`` takes (ours: plus every pullback setting)."""
    params = inspect.signature(_REGISTRY[name].fn).parameters
    own = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY
           and p != "domain"] + ["reduce_channels"]
    if any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
        from whiteboxdl.pullbacks.settings import PullbackSettings

        own += ["settings", *PullbackSettings.keywords()]
    return own


def _check_options(name: str, fn: Callable, options: dict) -> None:
    """Refuse options the explainer does not take; validate pullback settings now."""
    allowed = [k for k in explainer_options(name) if k != "reduce_channels"]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ValueError(f"explainer {name} has no option {unknown[0]!r}; its options: "
                         f"{', '.join(allowed) or 'none'}")
    if "settings" in allowed:
        from whiteboxdl.pullbacks.settings import PullbackSettings

        own = {k for k, v in inspect.signature(fn).parameters.items()
               if v.kind is inspect.Parameter.KEYWORD_ONLY}
        PullbackSettings.of(options.get("settings"),
                            **{k: v for k, v in options.items() if k not in own | {"settings"}})


def parse_explainers(spec: str | None) -> list[str]:
    """Comma-separated names (or ``all``/None for every explainer), validated."""
    if spec in (None, "", "all"):
        return list(EXPLAINERS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in _REGISTRY:
            raise ValueError(f"unknown explainer {n!r}; choose from {', '.join(EXPLAINERS)}")
    return names
