"""Request handlers of the app: plain inputs in, images and tables out (no Gradio in here).

Each handler validates its inputs and raises ``ValueError`` with a message for the user; the UI
turns it into an error message, so no request ever shows a stack trace.

Example
-------
>>> from whiteboxdl.app.handlers import explain             # doctest: +SKIP
>>> from whiteboxdl.app.models import ModelRegistry         # doctest: +SKIP
>>> from whiteboxdl.data.images import example_images       # doctest: +SKIP
>>> out = explain(ModelRegistry(), example_images()["cat"], "resnet50", "281 – tabby",
...               steps=10, alpha=20, eps=100, temperature=0.3)  # doctest: +SKIP
>>> out.runs["pullback"].perturbed.size                      # doctest: +SKIP
(224, 224)
"""

from __future__ import annotations

import random
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from whiteboxdl.app.inputs import image_from_upload, mnist_tensor, parse_target
from whiteboxdl.app.models import ModelRegistry, ModelSpec
from whiteboxdl.data.images import example_images, to_pil
from whiteboxdl.paths import cache_dir
from whiteboxdl.validation import check_number

#: Gate names shown in the UI -> the ``gate`` argument of :class:`PullbackAscent`.
GATES = {"sigmoid": "sigmoid", "normal CDF": "normal"}
METHODS = ("pullback", "gradient", "both")
#: MNIST images are shown enlarged (nearest neighbour) so the sliders are as big as ImageNet ones.
DISPLAY_SIZE = 224
TOP_K = 5


@dataclass
class MethodRun:
    """One ascent: the images for the two sliders, its top-k and the target logit per step."""

    perturbed: Image.Image
    difference: Image.Image
    top: dict[str, float]
    target_logits: list[float]


@dataclass
class Explanation:
    """Everything the Pullbacks tab shows for one request."""

    model: str
    target: int
    target_label: str
    input: Image.Image
    top_input: dict[str, float]
    runs: dict[str, MethodRun] = field(default_factory=dict)

    def logit_table(self) -> tuple[list[str], list[list[float]]]:
        """Header and rows ``[step, logit of each method]`` (step 0 = the input)."""
        methods = list(self.runs)
        steps = len(next(iter(self.runs.values())).target_logits) if self.runs else 0
        rows = [[step, *(round(self.runs[m].target_logits[step], 4) for m in methods)]
                for step in range(steps)]
        return ["step", *methods], rows

    def logit_figure(self):
        """Matplotlib figure of the target logit per step, one line per method.

        Built without pyplot (whose global state is not thread-safe), so concurrent requests
        can draw at the same time.
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.0, 2.6))
        ax = fig.add_subplot()
        for method, run in self.runs.items():
            ax.plot(range(len(run.target_logits)), run.target_logits, marker="o", label=method)
        ax.set_xlabel("step (0 = input)")
        ax.set_ylabel(f"logit of {self.target_label}")
        ax.set_title("Target logit per ascent step")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    def status(self) -> str:
        parts = [f"target **{self.target_label}**"]
        for method, run in self.runs.items():
            first, last = run.target_logits[0], run.target_logits[-1]
            parts.append(f"{method}: target logit {first:.2f} → {last:.2f}")
        return " · ".join(parts)


def model_input(image: Any, spec: ModelSpec) -> torch.Tensor:
    """Validate an upload / drawing and turn it into the input ``spec``'s model expects (digit
    models: MNIST's own normalisation of a drawing; photo models: the model's contract)."""
    img = image_from_upload(image)
    return mnist_tensor(img) if spec.contract.kind == "digit" else spec.contract.load(img)


def display(x: torch.Tensor, spec: ModelSpec, rescale: bool = False) -> Image.Image:
    """A model-space image (1, C, H, W) -> PIL image of DISPLAY_SIZE; ``rescale``: min-max first."""
    x = x.detach().float()
    if rescale:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
        img = to_pil(x, signed=False)
    else:
        img = to_pil(x, signed=spec.bounds == (-1.0, 1.0))
    if img.size != (DISPLAY_SIZE, DISPLAY_SIZE):
        img = img.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.NEAREST)
    return img


def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(x)
    if not torch.isfinite(logits).all():
        raise ValueError("the model produced non-finite logits for this image")
    return logits.softmax(dim=1)[0]


def top_k(model: nn.Module, x: torch.Tensor, spec: ModelSpec, k: int = TOP_K) -> dict[str, float]:
    """The model's ``k`` most probable classes for one image, as ``{"idx – name": prob}``."""
    probs = _probabilities(model, x)
    values, indices = probs.topk(min(k, probs.numel()))
    return {spec.class_label(int(i)): float(v) for v, i in zip(values, indices)}


#: The app's ranges for the pullback temperatures (every registered rule's, see
#: :func:`pullback_settings`).
TEMPERATURE_LIMITS = (1e-3, 100.0)


def pullback_settings(temperature: Any = 0.3, gate: str = "sigmoid",
                      extra: dict[str, Any] | None = None):
    """The :class:`~whiteboxdl.pullbacks.settings.PullbackSettings` of a request: the ReLU
    ``temperature`` and ``gate`` (UI name) plus ``extra`` settings — any rule's temperature
    (``maxpool_temperature``, ``silu_temperature`` …), ``maxpool_rule`` or ``rules`` — each
    validated with a message for the user."""
    from whiteboxdl.pullbacks.registry import options
    from whiteboxdl.pullbacks.settings import PullbackSettings

    if gate not in GATES:
        raise ValueError(f"gate must be one of {list(GATES)}, got {gate!r}")
    values: dict[str, Any] = {"temperature": temperature, **(extra or {})}
    known = options()
    for name, value in list(values.items()):
        if name in known and known[name].is_temperature:
            values[name] = check_number(name.replace("_", " "), value, *TEMPERATURE_LIMITS,
                                        parse=True)
    return PullbackSettings(gate=GATES[gate], **values)


def _ascent(method: str, model: nn.Module, spec: ModelSpec, x: torch.Tensor, target: int,
            steps: int, alpha: float, eps: float | None, settings):
    try:
        from whiteboxdl.pullbacks import GradientAscent, PullbackAscent
    except ImportError as exc:
        raise ValueError(f"excitation pullbacks are not installed in this build ({exc})") from None
    common = dict(steps=steps, alpha=alpha, eps=eps, clip="every", bounds=spec.bounds)
    if method == "pullback":
        ascent = PullbackAscent(model, settings=settings, **common)
    else:
        ascent = GradientAscent(model, **common)
    return ascent.ascend(x, torch.tensor([target]))


def explain(registry: ModelRegistry, image: Any, model: str, target: Any = None,
            steps: Any = 10, alpha: Any = 20.0, eps: Any = 100.0, temperature: Any = 0.3,
            gate: str = "sigmoid", method: str = "pullback",
            settings: dict[str, Any] | None = None) -> Explanation:
    """Run pullback (and/or vanilla-gradient) ascent towards ``target`` on one image.

    ``target`` is ``"idx – name"``, an index, or ``None``/``"auto …"`` for the predicted class;
    ``eps = 0`` means no L2 projection; ``method`` is ``"pullback"``, ``"gradient"`` or ``"both"``;
    ``settings``: further pullback settings (every rule's temperature, see
    :func:`pullback_settings`).
    """
    spec = registry.spec(model)
    steps = check_number("steps", steps, 1, 200, integer=True, parse=True)
    alpha = check_number("alpha", alpha, 1e-6, 1e4, parse=True)
    eps = check_number("epsilon", eps, 0, 1e5, parse=True)
    pullback = pullback_settings(temperature, gate, settings)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    index = parse_target(target, len(spec.classes))
    x = model_input(image, spec)
    net = registry.get(spec.key)
    probs = _probabilities(net, x)
    top_input = top_k(net, x, spec)
    if index is None:
        index = int(probs.argmax())
    out = Explanation(spec.key, index, spec.class_label(index), display(x, spec), top_input)
    for name in (("pullback", "gradient") if method == "both" else (method,)):
        result = _ascent(name, net, spec, x, index, steps, alpha, eps or None, pullback)
        perturbed = result.perturbed.detach()
        logits = torch.as_tensor(result.target_logits).detach().reshape(-1)
        out.runs[name] = MethodRun(display(perturbed, spec),
                                   display(result.difference, spec, rescale=True),
                                   top_k(net, perturbed, spec), [float(v) for v in logits])
    return out


@lru_cache(maxsize=1)
def _mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    from whiteboxdl.data.mnist import load_mnist

    return load_mnist("test")


def mnist_digit(index: int) -> tuple[Image.Image, int]:
    """MNIST test image ``index`` (a whole number, not a string) as a 28x28 RGB PIL image, and
    its label."""
    x, y = _mnist_test()
    index = check_number("MNIST test index", index, low=0, high=len(y) - 1, integer=True)
    return to_pil(x[index], signed=False).convert("RGB"), int(y[index])


def sample_test_image(spec: ModelSpec, rng: random.Random | None = None
                      ) -> tuple[Image.Image, str]:
    """A random test image for ``spec``'s model and a line saying what it is.

    MNIST models draw from the 10,000 MNIST test digits; ImageNet models from the bundled photos
    (no ImageNet validation set is shipped).
    """
    rng = rng or random.Random()
    if spec.contract.kind == "digit":
        index = rng.randrange(len(_mnist_test()[1]))
        img, label = mnist_digit(index)
        return img, f"MNIST test image #{index} (label {label})"
    name, path = rng.choice(sorted(example_images().items()))
    return Image.open(path).convert("RGB"), f"bundled photo '{name}'"


def example_files(digits: tuple[int, ...] = tuple(range(10))) -> list[Path]:
    """PNG files of one MNIST test image per digit (written once to the cache) + bundled photos."""
    folder = cache_dir() / "app" / "examples"
    paths = []
    try:
        _, y = _mnist_test()
        for digit in digits:
            path = folder / f"mnist-digit-{digit}.png"
            if not path.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                index = int((y == digit).nonzero()[0, 0])
                mnist_digit(index)[0].save(path)
            paths.append(path)
    except FileNotFoundError:
        pass  # no MNIST here: only the photos
    return paths + list(example_images().values())



# --- White-box network tab ---------------------------------------------------------------------

#: Size at which 28x28 maps are shown (nearest neighbour, so pixels stay crisp).
MAP_SIZE = 168


def colour_map(values: torch.Tensor, signed: bool) -> Image.Image:
    """A 2-D map -> RGB image: ``bwr`` with a symmetric range if ``signed``, else grey in [0, 1]."""
    from matplotlib import colormaps

    arr = values.detach().float().cpu().numpy()
    if signed:
        scale = float(abs(arr).max()) or 1.0
        rgb = colormaps["bwr"](0.5 + arr / (2 * scale))[..., :3]
    else:
        rgb = arr.clip(0, 1)[..., None].repeat(3, axis=2)
    img = Image.fromarray((rgb * 255).round().astype("uint8"))
    return img.resize((MAP_SIZE, MAP_SIZE), Image.NEAREST)


@dataclass
class WhiteboxView:
    """What the white-box tab shows for one digit: each processing step, the best-matching pose
    of every class, the class probabilities and logits."""

    steps: list[tuple[Image.Image, str]]
    poses: list[tuple[Image.Image, str]]
    probs: dict[str, float]
    logits: dict[str, float]
    prediction: str
    figure: Image.Image | None = None

    def status(self) -> str:
        logits = ", ".join(f"{name}: {value:+.2f}" for name, value in self.logits.items())
        return f"prediction **{self.prediction}** · logits {logits}"


def semantic_input(image: Any) -> torch.Tensor:
    """Validate an upload / drawing / test digit and make the (1, 1, 28, 28) input in [0, 1]."""
    return mnist_tensor(image_from_upload(image))


#: pyplot (used by the semantic inspection figures) keeps global state: one figure at a time.
_PYPLOT_LOCK = threading.Lock()


def processing_figure(model: nn.Module, x: torch.Tensor) -> Image.Image:
    """``whiteboxdl.semantic.inspect.plot_processing_steps`` of one image, as a PIL image."""
    from whiteboxdl.semantic.inspect import plot_processing_steps

    with _PYPLOT_LOCK, tempfile.TemporaryDirectory() as tmp:
        path = plot_processing_steps(model, x, Path(tmp) / "steps.png")
        with Image.open(path) as img:
            return img.convert("RGB")


def _check_whitebox_call(model: Any, x: Any) -> None:
    """``ValueError`` unless ``model`` is a semantic network and ``x`` one (1, 1, 28, 28) image
    in [0, 1] (what :func:`semantic_input` makes)."""
    from whiteboxdl.semantic.network import SemanticNetwork

    if not isinstance(model, SemanticNetwork):
        raise ValueError(f"the white-box view needs a semantic-feature network (e.g. "
                         f"whiteboxdl.semantic.get_semantic_model()), got "
                         f"{type(model).__name__}")
    if x is None:
        raise ValueError("no image given: draw a digit, upload one or sample a test digit first")
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != (1, 1, 28, 28):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the image must be one (1, 1, 28, 28) tensor in [0, 1] (see "
                         f"semantic_input), got {shape}")
    if not torch.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("the image must hold finite values in [0, 1]")


def whitebox_view(model: nn.Module, x: torch.Tensor) -> WhiteboxView:
    """The semantic network's processing of one image ``x`` (1, 1, 28, 28) in [0, 1]."""
    from whiteboxdl.semantic.network import processing_steps

    _check_whitebox_call(model, x)
    out = processing_steps(model, x)
    names = [str(c) for c in model.class_names]
    steps = [(colour_map(out["input"][0, 0], signed=False), "input"),
             (colour_map(out["two_step"][0, 0], signed=True), "two-step layer")]
    if model.conv is not None:
        conv = out["conv"][0].amax(dim=0)  # max over the conv channels (1 for the paper's)
        steps.append((colour_map(conv, signed=True), "conv semantic layer"))
    pose_images = out["class_pose_image"][0]
    if pose_images.dim() == 4:  # (k, C, H, W): channels summed
        pose_images = pose_images.sum(dim=1)
    poses = [(colour_map(pose_images[j], signed=True),
              f"{name}: match {float(out['class_match'][0, j]):.3f} "
              f"(feature {int(out['class_feature'][0, j])})")
             for j, name in enumerate(names)]
    probs = {name: float(p) for name, p in zip(names, out["probs"][0])}
    logits = {name: float(v) for name, v in zip(names, out["logits"][0])}
    return WhiteboxView(steps, poses, probs, logits, names[int(out["prediction"][0])],
                        processing_figure(model, x))


def whitebox_attack(model: nn.Module, x: torch.Tensor, eps: Any, label: Any = None
                    ) -> tuple[torch.Tensor, int]:
    """APGD-CE (official AutoAttack) on one image at L-inf radius ``eps``.

    ``label`` is the true class name (e.g. ``"3"``) or ``None``/``"auto …"`` for the predicted
    class. Returns the adversarial image and the label used.
    """
    eps = check_number("epsilon", eps, 1e-4, 1.0, parse=True)
    names = [str(c) for c in model.class_names]
    if label is None or str(label).startswith("auto"):
        with torch.no_grad():
            y = int(model(x).argmax(1))
    elif str(label) in names:
        y = names.index(str(label))
    else:
        raise ValueError(f"true label {label!r} is not a class of this network; choose one of "
                         f"{names}")
    try:
        from whiteboxdl.robustness.attacks import attack
    except ImportError as exc:
        raise ValueError("APGD-CE needs whiteboxdl.robustness.attacks, which this build does not "
                         f"include ({exc}); inspection still works") from None
    x_adv = attack(model, x, torch.tensor([y]), eps, name="apgd-ce")
    return x_adv.detach(), y


def attack_view(model: nn.Module, x: torch.Tensor, eps: Any, label: Any = None
                ) -> tuple[WhiteboxView, str]:
    """Attack ``x`` with APGD-CE and return the view of the adversarial image (its steps start
    with the perturbation) and a status line."""
    _check_whitebox_call(model, x)
    x_adv, y = whitebox_attack(model, x, eps, label)
    view = whitebox_view(model, x_adv)
    delta = x_adv[0, 0] - x[0, 0]
    view.steps.insert(0, (colour_map(delta, signed=True),
                          f"perturbation (max |δ| = {float(delta.abs().max()):.3f})"))
    if view.prediction != str(model.class_names[y]):
        outcome = "prediction flipped"
    elif float(delta.abs().max()) == 0:
        outcome = "no adversarial example found within ε (the attack returns the clean image)"
    else:
        outcome = "prediction unchanged"
    note = (f"APGD-CE at ε = {float(eps):g} against true label {model.class_names[y]}: "
            f"{outcome} · {view.status()}")
    return view, note


def sample_semantic_digit(model: nn.Module, rng: random.Random | None = None
                          ) -> tuple[Image.Image, str]:
    """A random MNIST test digit of one of the semantic network's classes, and what it is."""
    rng = rng or random.Random()
    _, y = _mnist_test()
    digits = [int(c) for c in model.class_names]
    candidates = torch.isin(y, torch.tensor(digits)).nonzero()[:, 0]
    index = int(candidates[rng.randrange(len(candidates))])
    img, label = mnist_digit(index)
    return img, f"MNIST test image #{index} (label {label})"
