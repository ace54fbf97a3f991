"""evaluate(): analytic accuracies, worst case, CSV records, and resuming after an interruption."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from whiteboxdl.robustness.evaluate import WORST, evaluate, plan_batches, stored_batches

EPS = 0.03


def test_accuracies_match_the_analytic_reference(linear_problem):
    p = linear_problem
    result = evaluate(p.model, p.x, p.y, ["fgsm", "pgd"], eps=EPS, batch_size=64, progress=False)
    ref = p.robust(p.worst_linf(EPS))
    assert result.clean_accuracy == pytest.approx(float((p.margin(p.x, p.y) > 0).float().mean()))
    assert torch.equal(result.robust("pgd"), ref) and torch.equal(result.robust(WORST), ref)
    assert result.accuracy("fgsm") == pytest.approx(float(ref.float().mean()))


def test_worst_case_is_the_and_of_attacks(linear_problem):
    p = linear_problem
    # a weak PGD (1 tiny step, no random start) and FGSM: the worst case must AND them
    result = evaluate(p.model, p.x, p.y, ["pgd", "fgsm"], eps=EPS, progress=False,
                      options={"pgd": {"steps": 1, "step_size": EPS / 4, "random_start": False}})
    weak, strong = result.robust("pgd"), result.robust("fgsm")
    assert weak.sum() > strong.sum()
    assert torch.equal(result.robust(WORST), weak & strong)
    x_worst, conf, pred, names = result.worst_inputs()
    for i in (~strong & result.clean_correct).nonzero().squeeze(1).tolist():
        assert names[i] == ("fgsm" if weak[i] else "pgd")  # the first attack (in order) that broke it
    with torch.no_grad():
        probs = p.model(x_worst).softmax(1)
    assert torch.allclose(conf, probs.amax(1)) and torch.equal(pred, probs.argmax(1))


def test_csv_records(linear_problem, tmp_path):
    p = linear_problem
    result = evaluate(p.model, p.x[:20], p.y[:20], ["fgsm"], eps=EPS, progress=False)
    path = result.write_csv(tmp_path / "records.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 20
    assert list(rows[0]) == ["index", "label", "clean_pred", "clean_max_softmax", "pred_fgsm",
                             "max_softmax_fgsm"]
    with torch.no_grad():
        adv_pred = p.model(result.x_adv["fgsm"]).argmax(1)
    assert [int(r["pred_fgsm"]) for r in rows] == adv_pred.tolist()
    assert [int(r["label"]) for r in rows] == p.y[:20].tolist()


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_the_same_table(linear_problem, tmp_path):
    p = linear_problem
    x, y = p.x[:48], p.y[:48]
    kwargs = dict(eps=EPS, batch_size=16, progress=False, seed=5,
                  options={"square": {"n_queries": 30}})
    attacks = ["pgd", "square"]
    full = evaluate(p.model, x, y, attacks, out_dir=tmp_path / "full", **kwargs)

    def stop_after_first(batch, n_batches):
        if batch == 0:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        evaluate(p.model, x, y, attacks, out_dir=tmp_path / "resumed",
                 on_batch_end=stop_after_first, **kwargs)
    stored = sorted(p.name for p in (tmp_path / "resumed" / "batches").glob("*.pt"))
    assert stored == ["00000-00016-clean.pt", "00000-00016-pgd.pt", "00000-00016-square.pt"]
    computed = []
    resumed = evaluate(p.model, x, y, attacks, out_dir=tmp_path / "resumed",
                       on_batch_end=lambda b, n: computed.append(b), **kwargs)
    assert computed == [1, 2] and resumed.batches_reused == 1
    assert [r[:3] for r in resumed.table()[1]] == [r[:3] for r in full.table()[1]]
    for name in attacks:
        assert torch.equal(resumed.preds[name], full.preds[name])
        assert torch.equal(resumed.x_adv[name], full.x_adv[name])
    # a third run recomputes nothing
    again = evaluate(p.model, x, y, attacks, out_dir=tmp_path / "resumed", **kwargs)
    assert again.batches_reused == 3


def test_resume_refuses_other_settings(linear_problem, tmp_path):
    p = linear_problem
    evaluate(p.model, p.x[:8], p.y[:8], ["fgsm"], eps=EPS, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different settings"):
        evaluate(p.model, p.x[:8], p.y[:8], ["fgsm"], eps=2 * EPS, out_dir=tmp_path,
                 progress=False)
    assert json.loads((tmp_path / "run.json").read_text())["eps"] == EPS
    evaluate(p.model, p.x[:8], p.y[:8], ["pgd"], eps=EPS, out_dir=tmp_path, progress=False,
             options={"pgd": {"steps": 1}})
    with pytest.raises(ValueError, match="attack options"):
        evaluate(p.model, p.x[:8], p.y[:8], ["pgd"], eps=EPS, out_dir=tmp_path, progress=False,
                 options={"pgd": {"steps": 2}})


def test_later_runs_reuse_stored_attacks_and_batches(linear_problem, tmp_path):
    p = linear_problem
    kwargs = dict(eps=EPS, batch_size=8, out_dir=tmp_path, progress=False)
    first = evaluate(p.model, p.x[:16], p.y[:16], ["fgsm"], **kwargs)
    stamp = (tmp_path / "batches" / "00000-00008-fgsm.pt").stat().st_mtime_ns
    # fewer inputs, one more attack: only PGD on batch 0 is new
    second = evaluate(p.model, p.x[:8], p.y[:8], ["fgsm", "pgd"], **kwargs)
    assert (tmp_path / "batches" / "00000-00008-fgsm.pt").stat().st_mtime_ns == stamp
    assert torch.equal(second.preds["fgsm"], first.preds["fgsm"][:8])
    assert not (tmp_path / "batches" / "00008-00016-pgd.pt").exists()
    # other inputs in a stored batch are refused
    with pytest.raises(ValueError, match="other inputs"):
        evaluate(p.model, p.x[8:16], p.y[8:16], ["fgsm"], **kwargs)


def _same(a, b):
    assert torch.equal(a.clean_pred, b.clean_pred) and torch.equal(a.clean_conf, b.clean_conf)
    for name in a.attacks:
        assert torch.equal(a.preds[name], b.preds[name]) and torch.equal(a.x_adv[name],
                                                                        b.x_adv[name])
    assert [r[:3] for r in a.table()[1]] == [r[:3] for r in b.table()[1]]


def _damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # one flipped byte inside the stored tensors: only the zip checksum can tell
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))


@pytest.mark.parametrize("how", ["truncated", "empty", "bit flip"])
@pytest.mark.parametrize("part", ["clean", "pgd"])
def test_damaged_batch_file_is_reported_and_recomputed(linear_problem, tmp_path, capsys, how,
                                                       part):
    p = linear_problem
    kwargs = dict(eps=EPS, batch_size=16, progress=False, seed=3)
    x, y = p.x[:40], p.y[:40]
    reference = evaluate(p.model, x, y, ["pgd", "fgsm"], out_dir=tmp_path / "ref", **kwargs)
    run = tmp_path / "run"
    evaluate(p.model, x, y, ["pgd", "fgsm"], out_dir=run, **kwargs)
    damaged = run / "batches" / f"00016-00032-{part}.pt"
    _damage(damaged, how)
    capsys.readouterr()
    computed = []
    healed = evaluate(p.model, x, y, ["pgd", "fgsm"], out_dir=run,
                      on_batch_end=lambda b, n: computed.append(b), **kwargs)
    err = capsys.readouterr().err
    assert f"{damaged} is damaged" in err and "attacking this batch again" in err
    assert computed == [1] and healed.batches_reused == 2
    assert damaged.with_name(damaged.name + ".damaged").is_file()         # kept for inspection
    _same(healed, reference)


def test_grown_run_reuses_the_finished_images(linear_problem, tmp_path):
    """``--n 22`` then ``--n 40`` into the same folder: the 22 finished images are reused and
    the result equals a fresh run with the same batch plan."""
    p = linear_problem
    kwargs = dict(eps=EPS, batch_size=200, progress=False, seed=1, out_dir=tmp_path)
    first = evaluate(p.model, p.x[:22], p.y[:22], ["pgd", "fgsm"], **kwargs)
    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "batches").glob("*.pt")}
    assert sorted(f.name for f in stamps) == ["00000-00022-clean.pt", "00000-00022-fgsm.pt",
                                              "00000-00022-pgd.pt"]
    computed = []
    grown = evaluate(p.model, p.x[:40], p.y[:40], ["pgd", "fgsm"],
                     on_batch_end=lambda b, n: computed.append((b, n)), **kwargs)
    assert grown.batches == [(0, 22), (22, 40)] and computed == [(1, 2)]
    assert grown.batches_reused == 1
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps           # not rewritten
    assert torch.equal(grown.preds["pgd"][:22], first.preds["pgd"])
    # what a grown run equals: a fresh run with the same batch plan
    fresh = [evaluate(p.model, p.x[lo:hi], p.y[lo:hi], ["pgd", "fgsm"], eps=EPS, seed=1,
                      batch_size=200, progress=False) for lo, hi in grown.batches]
    for name in ("pgd", "fgsm"):
        assert torch.equal(grown.x_adv[name], torch.cat([f.x_adv[name] for f in fresh]))
        assert torch.equal(grown.preds[name], torch.cat([f.preds[name] for f in fresh]))
    assert grown.summary()["batches"] == [[0, 22], [22, 40]]
    # growing in smaller batches keeps every whole batch and continues on the batch-size grid
    assert plan_batches(70, 16, stored_batches(tmp_path / "batches"), ["clean", "pgd"]) == \
        [(0, 22), (22, 40), (40, 48), (48, 64), (64, 70)]


def test_a_subset_run_in_the_same_folder_keeps_the_main_run(linear_problem, tmp_path):
    """The masking check's ``--masking-n`` (not a multiple of the batch size): Square on the
    first 10 of 30 inputs next to the main run's batches of 20, both reused afterwards."""
    p = linear_problem
    kwargs = dict(eps=EPS, batch_size=20, progress=False, out_dir=tmp_path)
    square_options = {"square": {"n_queries": 20}}
    main = evaluate(p.model, p.x[:30], p.y[:30], ["fgsm"], **kwargs)
    square = evaluate(p.model, p.x[:10], p.y[:10], ["square"], options=square_options, **kwargs)
    assert main.batches == [(0, 20), (20, 30)] and square.batches == [(0, 10)]
    assert torch.equal(square.clean_pred, main.clean_pred[:10])
    again_main = evaluate(p.model, p.x[:30], p.y[:30], ["fgsm"], **kwargs)
    again_square = evaluate(p.model, p.x[:10], p.y[:10], ["square"], options=square_options,
                            **kwargs)
    assert again_main.batches_reused == 2 and again_square.batches_reused == 1
    _same(again_main, main)


def test_files_of_the_older_batch_layout_are_reused(linear_problem, tmp_path):
    p = linear_problem
    kwargs = dict(eps=EPS, batch_size=16, progress=False, out_dir=tmp_path)
    first = evaluate(p.model, p.x[:24], p.y[:24], ["fgsm"], **kwargs)
    batches = tmp_path / "batches"
    for f in list(batches.glob("*.pt")):  # back to BATCH-PART.pt, as older versions wrote
        lo, _, part = f.stem.split("-", 2)
        f.rename(batches / f"{int(lo) // 16:05d}-{part}.pt")
    again = evaluate(p.model, p.x[:24], p.y[:24], ["fgsm"], **kwargs)
    assert again.batches_reused == 2
    _same(again, first)
    assert sorted(f.name for f in batches.glob("*.pt"))[:2] == ["00000-00016-clean.pt",
                                                                "00000-00016-fgsm.pt"]


def test_garbage_run_json_is_named_and_written_again(linear_problem, tmp_path, capsys):
    p = linear_problem
    kwargs = dict(batch_size=8, progress=False, out_dir=tmp_path)
    first = evaluate(p.model, p.x[:16], p.y[:16], ["fgsm"], eps=EPS, **kwargs)
    (tmp_path / "run.json").write_text("")
    again = evaluate(p.model, p.x[:16], p.y[:16], ["fgsm"], eps=EPS, **kwargs)
    assert "run.json is damaged (empty file)" in capsys.readouterr().err
    assert again.batches_reused == 2 and json.loads((tmp_path / "run.json").read_text())["eps"] \
        == EPS
    _same(again, first)
    # the batch files carry the settings' fingerprint: another eps is still refused
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(ValueError, match="belongs to a run with other settings"):
        evaluate(p.model, p.x[:16], p.y[:16], ["fgsm"], eps=2 * EPS, **kwargs)
    assert not (tmp_path / "run.json").exists()       # nothing recorded for the refused run


@pytest.mark.slow
def test_standard_records_the_breaking_component(linear_problem):
    p = linear_problem
    x, y = p.x[:12], p.y[:12]
    result = evaluate(p.model, x, y, ["standard"], eps=EPS, progress=False,
                      options={"standard": {"n_queries": 20}})
    steps = result.cascade_robust("standard")
    assert list(steps) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert torch.equal(steps["square"], result.robust("standard"))
    assert torch.equal(result.robust("standard"), p.robust(p.worst_linf(EPS))[:12])
    labels = [row[0].strip() for row in result.table()[1]]
    assert "standard: after apgd-ce + apgd-t" in labels
