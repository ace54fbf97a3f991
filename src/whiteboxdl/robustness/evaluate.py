"""Robust accuracy under several attacks, resumable batch by batch, with per-sample records.

:func:`evaluate` attacks fixed batches of the data with every requested attack and writes each
finished batch to ``out_dir/batches/`` at once. Run it again with the same ``out_dir`` and
settings after an interruption: finished batches are loaded, not recomputed, and the result is the
same as an uninterrupted run (every batch is attacked with the same seed either way).

An input counts as robust under an attack when it is classified correctly both clean and attacked
(*adversarial accuracy*). The worst case over attacks counts it robust only if no attack broke it.

Example
-------
>>> import torch
>>> from whiteboxdl.robustness.evaluate import evaluate
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
>>> x = torch.rand(20, 1, 4, 4); y = model(x).argmax(1)
>>> result = evaluate(model, x, y, ["fgsm", "pgd"], eps=0.05, progress=False)
>>> result.clean_accuracy
1.0
>>> result.accuracy("worst") <= min(result.accuracy("fgsm"), result.accuracy("pgd"))
True
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from whiteboxdl.robustness.attacks import (STANDARD_COMPONENTS, attack, autoattack_cascade,
                                           eval_mode, get_attack, predict, validate_inputs)

#: The pseudo-attack name of the worst case over all attacks.
WORST = "worst"


@dataclass(frozen=True)
class EvalConfig:
    """Settings that define a run; a resumed run must use the same ones."""

    attacks: tuple[str, ...]
    eps: float
    norm: str = "Linf"
    seed: int = 0
    batch_size: int = 200
    options: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` for unknown or unbounded attacks, duplicates, bad sizes."""
        if not self.attacks:
            raise ValueError("attacks is empty; name at least one, e.g. ['standard']")
        for name in self.attacks:
            if not get_attack(name).bounded:
                raise ValueError(f"attack {name!r} is unbounded (minimal perturbation); robust "
                                 "accuracy at eps is undefined for it, call attack() directly")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks contain duplicates: {list(self.attacks)}")
        if WORST in self.attacks:
            raise ValueError(f"{WORST!r} is reserved for the worst case over attacks")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        unknown = set(self.options) - set(self.attacks)
        if unknown:
            raise ValueError(f"options given for attacks not run: {sorted(unknown)}")
        for name, opts in self.options.items():
            allowed = get_attack(name).options()
            bad = sorted(set(opts) - set(allowed))
            if bad:
                raise ValueError(f"attack {name!r} has no option {bad[0]!r}; its options: "
                                 f"{', '.join(allowed) or 'none'}")


class WorstInputs(NamedTuple):
    """The strongest attacked version of each input, its max softmax, prediction and attack."""

    x: torch.Tensor
    conf: torch.Tensor
    pred: torch.Tensor
    attack: list[str]


@dataclass
class RobustnessResult:
    """Everything one evaluation produced; tensors are indexed like the evaluated inputs."""

    config: EvalConfig
    labels: torch.Tensor
    clean_pred: torch.Tensor
    clean_conf: torch.Tensor
    preds: dict[str, torch.Tensor]
    confs: dict[str, torch.Tensor]
    x_adv: dict[str, torch.Tensor]
    broken_by: dict[str, torch.Tensor]
    seconds: dict[str, float]
    batches_reused: int = 0

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def attacks(self) -> tuple[str, ...]:
        return self.config.attacks

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.clean_pred == self.labels

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean())

    def robust(self, name: str) -> torch.Tensor:
        """Per-input flag: correct clean and under attack ``name`` (or :data:`WORST`)."""
        if name == WORST:
            flags = self.clean_correct.clone()
            for attack_name in self.attacks:
                flags &= self.preds[attack_name] == self.labels
            return flags
        if name not in self.preds:
            raise ValueError(f"attack {name!r} was not run; run attacks: {list(self.attacks)}")
        return self.clean_correct & (self.preds[name] == self.labels)

    def accuracy(self, name: str) -> float:
        """Adversarial accuracy under ``name`` (an attack or :data:`WORST`)."""
        return float(self.robust(name).float().mean())

    def cascade_robust(self, name: str = "standard") -> dict[str, torch.Tensor]:
        """For a cascade attack: robust flags after each of its components, cumulatively.

        The first entry equals the first component run alone on all inputs (APGD-CE for
        ``"standard"``): it attacks every correctly classified input with the same seed.
        """
        if name not in self.broken_by:
            raise ValueError(f"{name!r} is not a cascade attack of this run")
        broken_by = self.broken_by[name]
        out = {}
        for k, component in enumerate(STANDARD_COMPONENTS):
            out[component] = self.clean_correct & ((broken_by < 0) | (broken_by > k))
        return out

    def worst_inputs(self) -> WorstInputs:
        """Per input, the attacked version from the strongest attack on it.

        The first attack (in run order) that broke it, else the attack that left the lowest
        confidence.
        """
        names = list(self.attacks)
        wrong = torch.stack([self.preds[a] != self.labels for a in names], dim=1)
        confs = torch.stack([self.confs[a] for a in names], dim=1)
        first_wrong = wrong.float().argmax(dim=1)
        least_conf = confs.argmin(dim=1)
        choice = torch.where(wrong.any(dim=1), first_wrong, least_conf)
        x = torch.stack([self.x_adv[a] for a in names], dim=1)
        preds = torch.stack([self.preds[a] for a in names], dim=1)
        idx = torch.arange(self.n)
        return WorstInputs(x[idx, choice], confs[idx, choice], preds[idx, choice],
                           [names[int(c)] for c in choice])

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows: clean, each attack (with cascade steps), the worst case."""
        header = ["measure", "accuracy", "correct", "seconds"]
        rows = [["clean", _pct(self.clean_accuracy), f"{int(self.clean_correct.sum())}/{self.n}",
                 ""]]
        for name in self.attacks:
            flags = self.robust(name)
            rows.append([name, _pct(float(flags.float().mean())), f"{int(flags.sum())}/{self.n}",
                         f"{self.seconds[name]:.1f}"])
            if name in self.broken_by:
                for k, (component, step) in enumerate(self.cascade_robust(name).items()):
                    label = f"  {name}: after {' + '.join(STANDARD_COMPONENTS[:k + 1])}"
                    rows.append([label, _pct(float(step.float().mean())),
                                 f"{int(step.sum())}/{self.n}", ""])
        if len(self.attacks) > 1:
            flags = self.robust(WORST)
            rows.append([f"worst case over {len(self.attacks)} attacks",
                         _pct(float(flags.float().mean())), f"{int(flags.sum())}/{self.n}",
                         f"{sum(self.seconds.values()):.1f}"])
        return header, rows

    def write_csv(self, path: str | Path) -> Path:
        """Per-sample records: index, label, clean pred/confidence, per-attack pred/confidence."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = ["index", "label", "clean_pred", "clean_max_softmax"]
        for name in self.attacks:
            header += [f"pred_{name}", f"max_softmax_{name}"]
            if name in self.broken_by:
                header.append(f"broken_by_{name}")
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for i in range(self.n):
                row = [i, int(self.labels[i]), int(self.clean_pred[i]),
                       f"{float(self.clean_conf[i]):.6f}"]
                for name in self.attacks:
                    row += [int(self.preds[name][i]), f"{float(self.confs[name][i]):.6f}"]
                    if name in self.broken_by:
                        k = int(self.broken_by[name][i])
                        row.append(STANDARD_COMPONENTS[k] if k >= 0 else "")
                writer.writerow(row)
        return path

    def summary(self) -> dict:
        """JSON-ready numbers: accuracies, counts, seconds, settings."""
        out = {"n": self.n, "clean_accuracy": self.clean_accuracy,
               "config": asdict(self.config), "seconds": self.seconds,
               "accuracy": {name: self.accuracy(name) for name in (*self.attacks, WORST)}}
        for name in self.broken_by:
            out[f"{name}_cascade"] = {c: float(f.float().mean())
                                      for c, f in self.cascade_robust(name).items()}
        return out


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def fingerprint(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str:
    """A short hash of the model's weights and the data, to refuse resuming a different run."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    digest.update(y.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_run_dir(out_dir: Path, config: EvalConfig, print_: str) -> None:
    meta = {"config": asdict(config), "fingerprint": print_}
    path = out_dir / "run.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(meta)):
            raise ValueError(f"{out_dir} holds a run with different settings, model or data "
                             f"({old}); use another output directory or delete this one")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=1))


def _attack_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  config: EvalConfig) -> dict:
    record: dict = {}
    with eval_mode(model):
        clean = predict(model, x).softmax(1)
    record["clean_pred"] = clean.argmax(1)
    record["clean_conf"] = clean.amax(1)
    for name in config.attacks:
        options = dict(config.options.get(name, {}))
        start = time.perf_counter()
        if name == "standard":
            x_adv, broken_by = autoattack_cascade(model, x, y, config.eps, config.norm,
                                                  config.seed, **options)
            record[f"broken_by/{name}"] = broken_by
        else:
            x_adv = attack(model, x, y, config.eps, name=name, norm=config.norm,
                           seed=config.seed, **options)
        record[f"seconds/{name}"] = time.perf_counter() - start
        with eval_mode(model):
            probs = predict(model, x_adv).softmax(1)
        record[f"x_adv/{name}"] = x_adv.detach().cpu()
        record[f"pred/{name}"] = probs.argmax(1).cpu()
        record[f"conf/{name}"] = probs.amax(1).cpu()
    return record


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[str],
             eps: float = 0.3, norm: str = "Linf", seed: int = 0, batch_size: int = 200,
             out_dir: str | Path | None = None, options: dict[str, dict] | None = None,
             progress: bool = True,
             on_batch_end: Callable[[int, int], None] | None = None) -> RobustnessResult:
    """Attack ``x`` (labels ``y``) with each of ``attacks``; resumable through ``out_dir``.

    Parameters
    ----------
    model:
        Classifier returning logits; inputs in [0, 1].
    attacks:
        Registered bounded attack names (:func:`whiteboxdl.robustness.attacks.available_attacks`
        minus ``"boundary"``). ``"standard"`` also records which AutoAttack component broke
        each input.
    eps, norm, seed:
        Threat model and the seed every batch is attacked with.
    batch_size:
        Inputs per batch (the unit of resumption).
    out_dir:
        Where finished batches go (``batches/NNNNN.pt``) and ``run.json`` with the settings.
        ``None`` keeps everything in memory.
    options:
        Per-attack options, e.g. ``{"square": {"n_queries": 1000}}``.
    on_batch_end:
        Called as ``on_batch_end(batch_index, n_batches)`` after each newly computed batch.
    """
    config = EvalConfig(tuple(attacks), float(eps) if isinstance(eps, (int, float)) else eps,
                        norm, int(seed), int(batch_size), dict(options or {}))
    config.validate()
    validate_inputs(model, x, y, eps, norm)
    n_batches = -(-len(x) // config.batch_size)
    batch_dir = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        _check_run_dir(out_dir, config, fingerprint(model, x, y))
        batch_dir = out_dir / "batches"
        batch_dir.mkdir(parents=True, exist_ok=True)
    records, reused = [], 0
    bar = tqdm(range(n_batches), desc=f"attacking {len(x)} inputs ({', '.join(attacks)})",
               unit="batch", disable=not progress)
    for b in bar:
        path = batch_dir / f"{b:05d}.pt" if batch_dir is not None else None
        if path is not None and path.is_file():
            records.append(torch.load(path, weights_only=True))
            reused += 1
            continue
        lo, hi = b * config.batch_size, min(len(x), (b + 1) * config.batch_size)
        record = _attack_batch(model, x[lo:hi], y[lo:hi], config)
        if path is not None:
            tmp = path.with_suffix(".partial")
            torch.save(record, tmp)
            tmp.replace(path)
        records.append(record)
        if on_batch_end is not None:
            on_batch_end(b, n_batches)
    return _combine(config, y, records, reused)


def _combine(config: EvalConfig, y: torch.Tensor, records: list[dict],
             reused: int) -> RobustnessResult:
    def cat(key: str) -> torch.Tensor:
        return torch.cat([r[key] for r in records])

    names = config.attacks
    return RobustnessResult(
        config=config, labels=y.detach().cpu().long(), clean_pred=cat("clean_pred"),
        clean_conf=cat("clean_conf"),
        preds={a: cat(f"pred/{a}") for a in names}, confs={a: cat(f"conf/{a}") for a in names},
        x_adv={a: cat(f"x_adv/{a}") for a in names},
        broken_by={a: cat(f"broken_by/{a}") for a in names if f"broken_by/{a}" in records[0]},
        seconds={a: float(sum(r[f"seconds/{a}"] for r in records)) for a in names},
        batches_reused=reused)
