"""Robust accuracy under several attacks, resumable batch by batch, with per-sample records.

:func:`evaluate` attacks fixed batches of the data with every requested attack and writes each
finished batch to ``out_dir/batches/`` at once. Run it again with the same ``out_dir`` and
settings after an interruption: finished batches are loaded, not recomputed, and the result is the
same as an uninterrupted run (every batch is attacked with the same seed either way).

Runs can grow: more inputs or more attacks into the same ``out_dir`` reuse every stored batch
that is still valid (:func:`plan_batches`), and the run directory heals: every batch file is
verified when read (zip checksums, its entries and their lengths, a hash of its inputs, the
fingerprint of the run's settings); a damaged one is moved aside (``.damaged``), reported by name
and attacked again, giving the same numbers.

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

import contextlib
import csv
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from whiteboxdl.robustness.attacks import (STANDARD_COMPONENTS, attack, autoattack_cascade,
                                           eval_mode, get_attack, predict, validate_inputs)
from whiteboxdl.runfiles import (DamagedFileError, check_run_config, load_torch, read_verified,
                                 save_torch, tensor_digest, write_json)
from whiteboxdl.runfiles import fingerprint as settings_fingerprint

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
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: The batch plan: ``(first, one past last)`` input index of each batch (see plan_batches).
    batches: list[tuple[int, int]] = field(default_factory=list)

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
                for k, (_component, step) in enumerate(self.cascade_robust(name).items()):
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
               "cpu_seconds": self.cpu_seconds, "batches": [list(b) for b in self.batches],
               "accuracy": {name: self.accuracy(name) for name in (*self.attacks, WORST)}}
        for name in self.broken_by:
            out[f"{name}_cascade"] = {c: float(f.float().mean())
                                      for c, f in self.cascade_robust(name).items()}
        return out


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def fingerprint(model: nn.Module) -> str:
    """A short hash of the model's weights, to refuse resuming a run of a different model."""
    state = sorted(model.state_dict().items())
    return tensor_digest(*[t for _, t in state]) + "-" + hashlib.sha256(
        "".join(name for name, _ in state).encode()).hexdigest()[:8]


def _run_settings(config: EvalConfig, model_hash: str) -> dict:
    """What ``run.json`` records; every batch file carries its fingerprint."""
    return {"eps": config.eps, "norm": config.norm, "seed": config.seed,
            "batch_size": config.batch_size, "model": model_hash}


_BATCH_FILE = re.compile(r"^(\d+)-(\d+)-(.+)\.pt$")       # FIRST-END-PART.pt
_LEGACY_FILE = re.compile(r"^(\d+)-([A-Za-z].*)\.pt$")     # BATCH-PART.pt (before ranges)


def _batch_file(batch_dir: Path, lo: int, hi: int, part: str) -> Path:
    return batch_dir / f"{lo:05d}-{hi:05d}-{part}.pt"


def stored_batches(batch_dir: str | Path) -> dict[tuple[int, int], set[str]]:
    """``{(first, end): {"clean", attack names...}}`` of the batch files in ``batch_dir``."""
    stored: dict[tuple[int, int], set[str]] = {}
    for path in Path(batch_dir).glob("*.pt"):
        match = _BATCH_FILE.match(path.name)
        if match:
            stored.setdefault((int(match[1]), int(match[2])), set()).add(match[3])
    return stored


def _migrate_legacy(batch_dir: Path, batch_size: int) -> None:
    """Rename files of the older ``BATCH-PART.pt`` layout to ``FIRST-END-PART.pt``."""
    legacy: dict[int, list[Path]] = {}
    for path in batch_dir.glob("*.pt"):
        match = _LEGACY_FILE.match(path.name)
        if match:
            legacy.setdefault(int(match[1]), []).append(path)
    for b, paths in legacy.items():
        clean = batch_dir / f"{b:05d}-clean.pt"
        record = read_verified(clean, load_torch, action="it will be computed again")
        if not isinstance(record, dict) or "clean_pred" not in record:
            continue
        lo = b * batch_size
        for path in paths:
            if path.is_file():
                match = _LEGACY_FILE.match(path.name)
                if match is None:
                    continue
                part = match[2]
                path.replace(_batch_file(batch_dir, lo, lo + len(record["clean_pred"]), part))


def plan_batches(n: int, batch_size: int,
                 stored: dict[tuple[int, int], set[str]] | None = None,
                 parts: Sequence[str] = ()) -> list[tuple[int, int]]:
    """The batches ``(first, end)`` that ``n`` inputs are attacked in.

    From input 0 on: where stored batches of earlier runs start (``stored``, from
    :func:`stored_batches`) and fit within ``n``, the one holding most of ``parts`` (then the
    longest) is reused as it is; elsewhere a batch runs to the next multiple of ``batch_size``.
    A fresh run is the usual cut into ``batch_size`` chunks; a grown run keeps its old batches.

    Example
    -------
    >>> plan_batches(40, 16)
    [(0, 16), (16, 32), (32, 40)]
    >>> plan_batches(40, 200, {(0, 22): {"clean", "apgd-ce"}})    # --n 22, then --n 40
    [(0, 22), (22, 40)]
    """
    stored = stored or {}
    wanted = set(parts)
    plan, lo = [], 0
    while lo < n:
        fits = [(len(wanted & names), hi) for (first, hi), names in stored.items()
                if first == lo and lo < hi <= n]
        hi = max(fits)[1] if fits else min(n, (lo // batch_size + 1) * batch_size)
        plan.append((lo, hi))
        lo = hi
    return plan


def _clean_record(model: nn.Module, x: torch.Tensor) -> dict:
    with eval_mode(model):
        probs = predict(model, x).softmax(1)
    return {"clean_pred": probs.argmax(1).cpu(), "clean_conf": probs.amax(1).cpu()}


def _attack_record(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str,
                   config: EvalConfig) -> dict:
    options = dict(config.options.get(name, {}))
    record: dict = {"options": json.dumps(options, sort_keys=True)}
    start, cpu_start = time.perf_counter(), time.process_time()
    if name == "standard":
        x_adv, broken_by = autoattack_cascade(model, x, y, config.eps, config.norm, config.seed,
                                              **options)
        record[f"broken_by/{name}"] = broken_by
    else:
        x_adv = attack(model, x, y, config.eps, name=name, norm=config.norm, seed=config.seed,
                       **options)
    record[f"seconds/{name}"] = time.perf_counter() - start
    record[f"cpu_seconds/{name}"] = time.process_time() - cpu_start
    with eval_mode(model):
        probs = predict(model, x_adv).softmax(1)
    record[f"x_adv/{name}"] = x_adv.detach().cpu()
    record[f"pred/{name}"] = probs.argmax(1).cpu()
    record[f"conf/{name}"] = probs.amax(1).cpu()
    return record


def _record_keys(part: str) -> list[str]:
    if part == "clean":
        return ["clean_pred", "clean_conf"]
    keys = [f"x_adv/{part}", f"pred/{part}", f"conf/{part}", f"seconds/{part}", "options"]
    return keys + ([f"broken_by/{part}"] if part == "standard" else [])


def _check_record(path: Path, record: object, part: str, n: int, data_hash: str,
                  options: str | None, run: str) -> None:
    """Raise ``DamagedFileError`` for a broken record, ``ValueError`` for one of another run."""
    keys = _record_keys(part) + ["data"]
    if not isinstance(record, dict) or any(k not in record for k in keys):
        raise DamagedFileError(path, f"not a {part} record (entries {keys} expected)")
    short = [k for k in keys if isinstance(record[k], torch.Tensor) and len(record[k]) != n]
    if short:
        raise DamagedFileError(path, f"{short[0]} holds {len(record[short[0]])} inputs, not {n}")
    fix = "use another output directory for this run"
    if record.get("run", run) != run:  # files written before fingerprints: run.json checked them
        raise ValueError(f"{path} belongs to a run with other settings or another model; {fix}")
    if record["data"] != data_hash:
        raise ValueError(f"{path} was computed on other inputs than this run's inputs at the "
                         f"same positions; {fix}")
    if options is not None and record.get("options") != options:
        raise ValueError(f"{path} was computed with attack options {record.get('options')}, "
                         f"not {options}; {fix}")


def _stored_record(path: Path, part: str, n: int, data_hash: str, options: str | None,
                   run: str) -> dict | None:
    """The stored record of ``part`` if it is intact and of this run, else ``None`` (a damaged
    file is reported and set aside; a file of another run raises ``ValueError``)."""
    return read_verified(path, load_torch, lambda r: _check_record(
        path, r, part, n, data_hash, options, run), action="attacking this batch again")


@dataclass(frozen=True)
class BatchJob:
    """The work one batch of a run still needs: its position ``index`` in the batch plan, its
    inputs and labels, and the ``parts`` (``"clean"`` and attack names) with no stored record."""

    index: int
    x: torch.Tensor
    y: torch.Tensor
    parts: tuple[str, ...]


#: ``executor(model, config, jobs)`` computes the missing records of ``jobs`` and yields
#: ``(job.index, {part: record})`` as each batch finishes, in any order (see
#: :func:`compute_records`); :func:`evaluate` writes the files. The default runs them here, one
#: after the other (:func:`compute_locally`); ``whiteboxdl.cluster`` runs them on a Ray cluster.
Executor = Callable[[nn.Module, EvalConfig, Sequence[BatchJob]],
                    Iterable[tuple[int, dict[str, dict]]]]


def compute_records(model: nn.Module, x: torch.Tensor, y: torch.Tensor, parts: Sequence[str],
                    config: EvalConfig) -> dict[str, dict]:
    """Fresh records of one batch: ``"clean"`` predictions and each named attack (seeded with
    ``config.seed``, so the same batch gives the same record in any process)."""
    return {part: _clean_record(model, x) if part == "clean"
            else _attack_record(model, x, y, part, config) for part in parts}


def compute_locally(model: nn.Module, config: EvalConfig, jobs: Sequence[BatchJob]
                    ) -> Iterator[tuple[int, dict[str, dict]]]:
    """The default :data:`Executor`: each job in turn, in this process."""
    for job in jobs:
        yield job.index, compute_records(model, job.x, job.y, job.parts, config)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[str],
             eps: float = 0.3, norm: str = "Linf", seed: int = 0, batch_size: int = 200,
             out_dir: str | Path | None = None, options: dict[str, dict] | None = None,
             progress: bool = True,
             on_batch_end: Callable[[int, int], None] | None = None,
             executor: Executor | None = None) -> RobustnessResult:
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
        Where finished work goes: ``batches/FIRST-END-clean.pt`` and
        ``batches/FIRST-END-<attack>.pt`` per batch of inputs ``FIRST..END-1`` and attack (each
        with a hash of its inputs, the attack's options and the fingerprint of the run's
        settings), and ``run.json`` with eps, norm, seed, batch size and a hash of the model.
        ``None`` keeps everything in memory. Later runs in the same folder reuse every stored
        (batch, attack) pair that is intact and of the same inputs: more attacks or more inputs
        only add work (:func:`plan_batches`); damaged files are reported and recomputed.
        A grown run (say ``n=22``, then ``n=40``) equals a fresh run with the same batch plan
        (``[(0, 22), (22, 40)]``, in ``result.batches``): each batch is attacked on its own with
        the same seed. A fresh run of 40 inputs in an empty folder cuts ``[(0, 40)]`` instead,
        which can differ slightly for attacks whose random draws depend on the batch.
    options:
        Per-attack options, e.g. ``{"square": {"n_queries": 1000}}``.
    on_batch_end:
        Called as ``on_batch_end(batch_index, n_batches)`` after each batch that needed work.
    executor:
        Where the missing batches are computed (an :data:`Executor`); default: here, in turn.
        Whichever computes them, this process writes the files, so the run directory is the same.
    """
    config = EvalConfig(tuple(attacks), float(eps) if isinstance(eps, (int, float)) else eps,
                        norm, int(seed), int(batch_size), dict(options or {}))
    config.validate()
    validate_inputs(model, x, y, eps, norm)
    settings = _run_settings(config, fingerprint(model))
    run = settings_fingerprint(settings)
    batch_dir, stored, known = None, {}, False
    if out_dir is not None:
        out_dir = Path(out_dir)
        known = check_run_config(out_dir / "run.json", settings,
                                 fix="use another output directory or delete it")
        batch_dir = out_dir / "batches"
        batch_dir.mkdir(parents=True, exist_ok=True)
        _migrate_legacy(batch_dir, config.batch_size)
        stored = stored_batches(batch_dir)
        if not known and not stored:  # a fresh folder: nothing to check the settings against
            known = bool(write_json(out_dir / "run.json", settings))
    plan = plan_batches(len(x), config.batch_size, stored, ("clean", *config.attacks))
    records, hashes, jobs = [], [], []
    for b, (lo, hi) in enumerate(plan):
        record, missing, data_hash = _stored_parts(x[lo:hi], y[lo:hi], config, run, batch_dir,
                                                   (lo, hi))
        records.append(record)
        hashes.append(data_hash)
        if missing:
            jobs.append(BatchJob(b, x[lo:hi], y[lo:hi], missing))
    done: set[int] = set()
    finished = iter((executor or compute_locally)(model, config, jobs))
    with tqdm(total=len(plan), initial=len(plan) - len(jobs), unit="batch", disable=not progress,
              desc=f"attacking {len(x)} inputs ({', '.join(attacks)})") as bar, \
            _closing(finished):
        for b, fresh in finished:
            done.add(b)
            lo, hi = plan[b]
            for part, new in fresh.items():
                new = {**new, "data": hashes[b], "run": run}
                if batch_dir is not None:
                    save_torch(_batch_file(batch_dir, lo, hi, part), new)
                records[b] = {**records[b], **new}
            bar.update()
            if on_batch_end is not None:
                on_batch_end(b, len(plan))
    lost = sorted({job.index for job in jobs} - done)
    if lost:
        raise RuntimeError(f"the executor returned no records for batches {lost}")
    if out_dir is not None and not known:  # recorded once every stored file proved to fit
        write_json(out_dir / "run.json", settings)
    return _combine(config, y, records, len(plan) - len(jobs), plan)


@contextlib.contextmanager
def _closing(iterator: Iterator) -> Iterator[None]:
    """Close a generator at once when the loop over it stops early (an error, Ctrl-C), so that an
    executor stops starting work."""
    try:
        yield
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _stored_parts(xb: torch.Tensor, yb: torch.Tensor, config: EvalConfig, run: str,
                  batch_dir: Path | None, bounds: tuple[int, int]
                  ) -> tuple[dict, tuple[str, ...], str]:
    """The stored records of one batch (clean and each attack) merged, the parts that have none
    (all of them without ``batch_dir``) and the hash of the batch's inputs."""
    data_hash = tensor_digest(xb, yb)
    record: dict = {}
    missing = []
    for part in ("clean", *config.attacks):
        options = None if part == "clean" else json.dumps(dict(config.options.get(part, {})),
                                                          sort_keys=True)
        stored = None if batch_dir is None else _stored_record(
            _batch_file(batch_dir, *bounds, part), part, len(xb), data_hash, options, run)
        if stored is None:
            missing.append(part)
        else:
            record = {**record, **stored}
    return record, tuple(missing), data_hash


def _combine(config: EvalConfig, y: torch.Tensor, records: list[dict],
             reused: int, plan: list[tuple[int, int]]) -> RobustnessResult:
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
        batches_reused=reused,
        cpu_seconds={a: float(sum(r.get(f"cpu_seconds/{a}", float("nan")) for r in records))
                     for a in names},
        batches=list(plan))
