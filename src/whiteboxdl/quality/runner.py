"""Evaluate explainers with the quality metrics: batched, seeded, resumable and shardable.

The evaluated images are cut into fixed batches; batch ``b`` belongs to shard ``b mod N``. Every
random draw (metric perturbations, noise of stochastic explainers, Focus mosaics) is seeded from
``(seed, batch, explainer, metric)``, so any split over shards gives the same numbers as a single
run. Each finished batch is written to ``RUN_DIR/batches/batch_XXXXX.npz`` at once (atomically);
re-running the same command skips finished batches (resume).
:func:`~whiteboxdl.quality.report.merge` collects the batch files.

The run directory heals: ``config.json`` and every batch file are verified when read (zip
checksums, the expected arrays and images, the fingerprint of the run's config that each batch
carries). A damaged batch is moved aside (``.damaged``), reported by name and recomputed, with
the same numbers, since every batch is seeded on its own; a damaged ``config.json`` is written
again from the command's settings.

Example
-------
>>> from whiteboxdl.quality.runner import RunConfig
>>> RunConfig(model="mnist-cnn", data="mnist", n=8).batches()
1
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from whiteboxdl.models.registry import InputContract
from whiteboxdl.quality.explainers import EXPLAINERS, get_explainer, seed_global
from whiteboxdl.quality.metric_registry import (EXTRA_INPUTS, all_metric_names, compute_metric,
                                                compute_shared, get_metric)
from whiteboxdl.runfiles import (DamagedFileError, check_run_config, fingerprint, load_npz,
                                 read_verified, save_npz, write_json)

Domain = tuple[float, float]
N_EXAMPLES = 4


#: Fields added after the first recorded runs: left out of ``config.json`` at their defaults,
#: so the fingerprints (and resume) of older run directories stay valid.
_LATER_FIELDS = {"protocol": "default", "variants": {}, "metric_variants": {},
                 "channels_last": False}


@dataclass
class RunConfig:
    """Everything that determines a run's numbers (saved as ``config.json`` in the run dir).

    ``explainers`` and ``metrics`` name registered ones or ``variants`` / ``metric_variants``
    (``{"PullbackAscent K=1": {"of": "PullbackAscent", "steps": 1}}``: the base with its options
    and these changes). ``protocol`` records the preset the config was built from
    (:meth:`from_protocol`); ``channels_last`` runs the metrics' forward passes on a
    channels-last copy of the model (faster on CPUs for ImageNet CNNs, same numbers to float32
    rounding).
    """

    model: str
    data: str
    n: int = 1000
    explainers: list[str] = field(default_factory=lambda: list(EXPLAINERS))
    metrics: list[str] = field(default_factory=all_metric_names)
    batch_size: int = 50
    seed: int = 0
    target: str = "label"
    layer: str | None = None
    #: Per-explainer hyper-parameter overrides, e.g. ``{"SmoothGrad": {"samples": 20}}``.
    options: dict[str, dict] = field(default_factory=dict)
    #: Per-metric overrides, e.g. ``{"MaxSensitivity": {"nr_samples": 5}}``.
    metric_options: dict[str, dict] = field(default_factory=dict)
    protocol: str = "default"
    variants: dict[str, dict] = field(default_factory=dict)
    metric_variants: dict[str, dict] = field(default_factory=dict)
    channels_last: bool = False

    @classmethod
    def from_protocol(cls, protocol: str, *, model: str, data: str,
                      explainers: list[str] | None = None, metrics: list[str] | None = None,
                      options: dict | None = None, metric_options: dict | None = None,
                      variants: dict | None = None, metric_variants: dict | None = None,
                      side: int | None = None, **fields) -> "RunConfig":
        """A config of the named :mod:`~whiteboxdl.quality.protocols` preset; the arguments
        choose a subset of its explainers/metrics, add variants and override options (per
        key, on top of the protocol's). ``side``: the model's input side, when a ``paper``
        protocol runs on images other than 224² (its feature counts and block sizes scale)."""
        from dataclasses import replace as replace_fields

        from whiteboxdl.quality.protocols import PAPER_SIDE, get_protocol, scale_metric_options

        p = get_protocol(protocol)
        if side is not None and side != PAPER_SIDE and p.metric_options:
            p = replace_fields(p, metric_options=scale_metric_options(p.metric_options, side),
                               metric_variants=scale_metric_options(p.metric_variants, side))
        variants = {**p.variants, **(variants or {})}
        metric_variants = {**p.metric_variants, **(metric_variants or {})}
        explainers = list(explainers or p.explainers or EXPLAINERS)
        metrics = list(metrics or p.metrics or all_metric_names())

        def merged(base: dict, extra: dict | None, names: list[str], vs: dict) -> dict:
            used = set(names) | {vs[n].get("of") for n in names if n in vs}
            out = {k: dict(v) for k, v in base.items() if k in used}
            for k, v in (extra or {}).items():
                out[k] = {**out.get(k, {}), **v}
            return out

        return cls(model=model, data=data, explainers=explainers, metrics=metrics,
                   options=merged(p.options, options, explainers, variants),
                   metric_options=merged(p.metric_options, metric_options, metrics,
                                         metric_variants),
                   variants={k: v for k, v in variants.items() if k in explainers},
                   metric_variants={k: v for k, v in metric_variants.items() if k in metrics},
                   protocol=protocol, **fields)

    def settings(self) -> dict:
        """The config as stored in ``config.json`` (later fields left out at their defaults)."""
        out = asdict(self)
        for key, default in _LATER_FIELDS.items():
            if out[key] == default:
                del out[key]
        return out

    def explainer(self, name: str) -> tuple[str, dict]:
        """``(registered explainer, options)`` of an evaluated name (a variant: its base)."""
        from whiteboxdl.quality.protocols import resolve

        return resolve(name, self.options, self.variants)

    def metric(self, name: str) -> tuple[str, dict]:
        """``(registered metric, options)`` of an evaluated metric name."""
        from whiteboxdl.quality.protocols import resolve

        return resolve(name, self.metric_options, self.metric_variants)

    def validate(self) -> None:
        from whiteboxdl.quality.protocols import get_protocol

        get_protocol(self.protocol)
        if self.n < 1 or self.batch_size < 1:
            raise ValueError(f"n and batch_size must be >= 1, got n={self.n}, "
                             f"batch_size={self.batch_size}")
        if self.target not in ("label", "prediction"):
            raise ValueError(f"target must be 'label' or 'prediction', got {self.target!r}")
        for names, vs, kind in ((self.explainers, self.variants, "explainer"),
                                (self.metrics, self.metric_variants, "metric")):
            if len(set(names)) != len(names):
                raise ValueError(f"{kind}s are listed twice: {names}")
            for name in vs:
                if name not in names:
                    raise ValueError(f"{kind} variant {name!r} is defined but not evaluated")
        for name in self.explainers:
            base, opts = self.explainer(name)
            get_explainer(base, **opts)
        used = set(self.explainers) | {self.explainer(n)[0] for n in self.explainers}
        for name in self.options:
            if name not in used:
                raise ValueError(f"options given for {name!r}, which is not evaluated "
                                 f"({', '.join(self.explainers)})")
        for name in self.metrics:
            get_metric(self.metric(name)[0])
        used = set(self.metrics) | {self.metric(n)[0] for n in self.metrics}
        for name in self.metric_options:
            if name not in used:
                raise ValueError(f"metric options given for {name!r}, which is not evaluated "
                                 f"({', '.join(self.metrics)})")

    def batches(self) -> int:
        return math.ceil(self.n / self.batch_size)


@dataclass
class Task:
    """A loaded model and data set, ready for :func:`evaluate`.

    ``forward`` runs the metrics' (gradient-free) forward passes: the model itself, or a
    channels-last copy of it (:func:`channels_last_forward`).
    """

    model: nn.Module
    domain: Domain
    num_classes: int
    x: Tensor                   # the n evaluated images
    y: Tensor                   # their labels
    pool_x: Tensor              # images the Focus mosaics are drawn from (x is its head)
    pool_y: Tensor
    forward: Callable[[Tensor], Tensor] | None = None

    def metric_forward(self) -> Callable[[Tensor], Tensor]:
        return self.forward or self.model


def channels_last_forward(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """A gradient-free forward pass on a channels-last copy of ``model`` (inference mode):
    oneDNN's fastest layout for CNNs on CPUs; logits equal the model's to float32 rounding."""
    import copy

    clone = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)

    def forward(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return clone(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return forward


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with 0 <= i < N; None -> ``(0, 1)``."""
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


def seed_for(*parts: object) -> int:
    """A stable 31-bit seed from the parts (Python's ``hash`` is salted per process)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


# ----------------------------------------------------------------------------- loading
#: Images of a labelled folder the Focus mosaics draw from (at least ``n``): the same pool for
#: every run of up to this size, so runs of different sizes meet the same mosaics.
FOCUS_POOL = 256


def load_images(spec: str, n: int, seed: int = 0, contract: InputContract | None = None,
                pool: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x, y, pool_x, pool_y)``: the ``n`` evaluated test images and the Focus pool.

    ``mnist`` / ``fashion-mnist``: the first ``n`` test images, pool = the whole test split.
    ``csv:PATH`` (a folder with ``labels.csv``) or ``imagefolder:PATH`` (class sub-folders;
    WordNet-id folders get their canonical ImageNet index): the first ``n`` images of a random
    order drawn with ``seed``, so a smaller ``n`` takes the first images of a larger one (and,
    with the same batch size, their batches and perturbations: runs of different sizes pair up
    image by image), preprocessed as ``contract`` says (default: the paper's 224² in [−1, 1]);
    pool = the first ``max(n, pool)`` images of that order (default: the ``n`` images).
    See :mod:`whiteboxdl.data.folders`.
    """
    if spec in ("mnist", "fashion-mnist"):
        from whiteboxdl.data.mnist import load_dataset

        px, py = load_dataset(spec, "test")
        if n > len(py):
            raise ValueError(f"--n {n} exceeds the {len(py)} {spec} test images")
        return px[:n], py[:n], px, py
    from whiteboxdl.data.folders import is_folder_spec, labelled_images

    if is_folder_spec(spec):
        from whiteboxdl.data.images import preprocess

        images = labelled_images(spec)
        if n > len(images):
            raise ValueError(f"--n {n} exceeds the {len(images)} images in {images.source}")
        load = contract.load if contract is not None else preprocess
        k = min(len(images), max(n, pool or n))
        idx = np.random.default_rng(seed).permutation(len(images))[:k]
        px = torch.cat([load(images.paths[i]) for i in tqdm(idx, desc="images", disable=k < 50)])
        py = torch.tensor([images.labels[i] for i in idx])
        return px[:n], py[:n], px, py
    raise ValueError(f"unknown data {spec!r}; use mnist, fashion-mnist, csv:PATH or "
                     "imagefolder:PATH")


def load_task(config: RunConfig) -> Task:
    """Load the model (through the model registry, with its input contract) and the images a
    config names; a model that cannot take the data is refused with a clear message."""
    from whiteboxdl.models.registry import require_contract, resolve_model

    loaded = resolve_model(config.model)
    contract = require_contract(loaded)
    needs_pool = any(get_metric(config.metric(m)[0]).needs for m in config.metrics)
    x, y, px, py = load_images(config.data, config.n, config.seed, contract,
                               pool=FOCUS_POOL if needs_pool else None)
    what = f"--data {config.data}"
    contract.check(x, what)
    with torch.no_grad():
        num_classes = int(loaded.model(x[:1]).shape[1])
    contract.check_labels(y, num_classes, what)
    forward = channels_last_forward(loaded.model) if config.channels_last else None
    return Task(loaded.model, contract.bounds, num_classes, x, y, px, py, forward)


# ----------------------------------------------------------------------------- evaluation
def _batch_path(run_dir: Path, b: int) -> Path:
    return run_dir / "batches" / f"batch_{b:05d}.npz"


def batch_range(config: dict, b: int) -> tuple[int, int]:
    """First and one-past-last image index of batch ``b`` of a run with ``config`` (a dict)."""
    return b * config["batch_size"], min(config["n"], (b + 1) * config["batch_size"])


def _check_batch(path: Path, arrays: dict[str, np.ndarray], config: dict, b: int) -> None:
    lo, hi = batch_range(config, b)
    names = ["index", "label", "target"]
    for e in config["explainers"]:
        names += [f"time/{e}/attribution"] + [f"{kind}/{e}/{m}" for m in config["metrics"]
                                              for kind in ("time", "score")]
    missing = [k for k in names if k not in arrays]
    if missing:
        raise DamagedFileError(path, f"{len(missing)} arrays missing, e.g. {missing[0]!r}")
    if not np.array_equal(arrays["index"], np.arange(lo, hi)):
        raise DamagedFileError(path, f"it does not hold images {lo}..{hi - 1} of batch {b}")
    bad = [k for k in names if k.startswith("score/") and arrays[k].shape != (hi - lo,)]
    if bad:
        raise DamagedFileError(path, f"{bad[0]} has shape {arrays[bad[0]].shape}, not "
                                     f"({hi - lo},)")
    stored = str(arrays["run"]) if "run" in arrays else fingerprint(config)  # older files: none
    if stored != fingerprint(config):
        raise ValueError(f"{path} belongs to another run (config fingerprint {stored}, this "
                         f"run's is {fingerprint(config)}); merge or resume it with that run's "
                         "settings, or use another --out")


def read_batch(path: str | Path, config: dict, b: int) -> dict[str, np.ndarray] | None:
    """The verified arrays of batch ``b``'s file, or ``None`` if it is missing or damaged (a
    damaged file is moved aside and reported, so that it is recomputed)."""
    path = Path(path)
    return read_verified(path, load_npz, lambda arrays: _check_batch(path, arrays, config, b),
                         action="it will be recomputed (`whiteboxdl quality evaluate` with the "
                                "run's arguments)")


def _metric_inputs(task: Task, config: RunConfig, b: int, x: Tensor, y: Tensor,
                   out: dict[str, np.ndarray]) -> dict[str, tuple]:
    """Per metric: its spec, options, extra inputs and shared stage for batch ``b`` (the shared
    stage's seconds go to ``out["time/shared/<metric>"]``)."""
    lo, hi = batch_range(asdict(config), b)
    prepared = {}
    for metric in config.metrics:
        base, options = config.metric(metric)
        spec = get_metric(base)
        builder_options, _ = spec.split_options(options)
        extras = {}
        for need in spec.needs:
            gen = torch.Generator().manual_seed(seed_for(config.seed, b, need))
            extras[need] = EXTRA_INPUTS[need](task.pool_x, task.pool_y, torch.arange(lo, hi),
                                              gen, **builder_options)
        shared = None
        if spec.shared is not None:
            seed = seed_for(config.seed, b, metric)
            seed_global(seed)
            t0 = time.perf_counter()
            shared = compute_shared(spec, task.metric_forward(), x, y, options=options,
                                    domain=task.domain,
                                    generator=torch.Generator().manual_seed(seed))
            out[f"time/shared/{metric}"] = np.array(time.perf_counter() - t0)
        prepared[metric] = (spec, options, extras, shared)
    return prepared


def evaluate_batch(task: Task, config: RunConfig, b: int) -> dict[str, np.ndarray]:
    """Scores, timings and (for batch 0) example attributions of batch ``b``."""
    lo, hi = batch_range(asdict(config), b)
    x, y = task.x[lo:hi], task.y[lo:hi]
    if config.target == "prediction":
        with torch.no_grad():
            y = task.model(x).argmax(1)
    out: dict[str, np.ndarray] = {"index": np.arange(lo, hi), "label": task.y[lo:hi].numpy(),
                                  "target": y.numpy(),
                                  "run": np.array(fingerprint(config.settings()))}
    if b == 0:
        out["examples/x"] = x[:N_EXAMPLES].numpy()
    prepared = _metric_inputs(task, config, b, x, y, out)
    for name in config.explainers:
        base, opts = config.explainer(name)
        if base == "GuidedGradCam" and config.layer:
            opts.setdefault("layer", config.layer)
        explainer = get_explainer(base, domain=task.domain, **opts)

        def explain(inputs: Tensor, targets: Tensor, _e=explainer) -> Tensor:
            return _e(task.model, inputs, targets)

        seed_global(seed_for(config.seed, b, name, "attribution"))
        t0 = time.perf_counter()
        a = explain(x, y)
        out[f"time/{name}/attribution"] = np.array(time.perf_counter() - t0)
        if b == 0:
            out[f"examples/{name}"] = a[:N_EXAMPLES].numpy()
        for metric, (spec, options, extras, shared) in prepared.items():
            # Common random numbers: every explainer meets the same perturbations (paired design).
            seed = seed_for(config.seed, b, metric)
            seed_global(seed)
            t0 = time.perf_counter()
            scores = compute_metric(spec, task.metric_forward(), x, y, a, options=options,
                                    shared=shared, extras=extras, explain=explain,
                                    domain=task.domain,
                                    generator=torch.Generator().manual_seed(seed),
                                    num_classes=task.num_classes)
            out[f"time/{name}/{metric}"] = np.array(time.perf_counter() - t0)
            out[f"score/{name}/{metric}"] = scores.numpy().astype(np.float64)
    return out


def silence_known_warnings() -> None:
    """Hide the two Captum warnings every batch would repeat (inputs that did not require
    gradients, hooks on non-linear modules); called by every process that evaluates batches."""
    warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
    warnings.filterwarnings("ignore", message=".*hooks and attributes on non-linear.*")
    warnings.filterwarnings("ignore", message=".*Setting backward hooks on ReLU.*")


def pending_batches(config: RunConfig, run_dir: str | Path, shard: tuple[int, int] = (0, 1)
                    ) -> list[int]:
    """The batches of this shard that ``run_dir`` does not hold yet, intact.

    Validates ``config``, refuses a ``run_dir`` of another run (``ValueError``), reports and sets
    aside damaged batch files (they count as not done) and writes ``config.json`` for a new run.
    :func:`evaluate` computes the returned batches here; ``whiteboxdl.cluster`` on a Ray cluster.

    Example
    -------
    >>> import tempfile
    >>> pending_batches(RunConfig(model="mnist-cnn", data="mnist", n=120), tempfile.mkdtemp())
    [0, 1, 2]
    """
    config.validate()
    run_dir = Path(run_dir)
    settings = config.settings()
    stored = check_run_config(run_dir / "config.json", settings,
                              fix="use a new --out or delete the directory")
    i, n_shards = shard
    todo = [b for b in range(config.batches())
            if b % n_shards == i and read_batch(_batch_path(run_dir, b), settings, b) is None]
    if not stored:  # written once the stored batches proved to be of this run
        write_json(run_dir / "config.json", settings)
    return todo


def write_batch(run_dir: str | Path, b: int, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays of batch ``b`` (from :func:`evaluate_batch`) into ``run_dir``,
    atomically; returns the file."""
    return save_npz(_batch_path(Path(run_dir), b), **arrays)


def evaluate(config: RunConfig, run_dir: str | Path, shard: tuple[int, int] = (0, 1),
             task: Task | None = None, progress: bool = True,
             on_batch: Callable[[int], None] | None = None) -> list[int]:
    """Evaluate this shard's unfinished batches into ``run_dir``; returns the batches computed.

    A batch counts as finished when its file is there and intact (:func:`read_batch`); damaged
    ones are reported and computed again.
    """
    silence_known_warnings()
    todo = pending_batches(config, run_dir, shard)
    if not todo:
        return []
    task = task or load_task(config)
    task.model.eval()
    i, n_shards = shard
    for b in tqdm(todo, desc=f"quality shard {i}/{n_shards}", disable=not progress):
        write_batch(run_dir, b, evaluate_batch(task, config, b))
        if on_batch:
            on_batch(b)
    return todo
