"""evaluate(): analytic accuracies, worst case, CSV records, and resuming after an interruption."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from whiteboxdl.robustness.evaluate import WORST, evaluate

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
    assert len(list((tmp_path / "resumed" / "batches").glob("*.pt"))) == 1
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
    assert json.loads((tmp_path / "run.json").read_text())["config"]["eps"] == EPS


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
