"""Excitation pullbacks: soft-gated backward passes for any PyTorch model.

The pieces: the rule registry (:mod:`~whiteboxdl.pullbacks.registry`, built-in rules in
:mod:`~whiteboxdl.pullbacks.rules`), one settings object (:class:`PullbackSettings`), the context
(:func:`excitation_pullbacks`), and the entry points built on it: :class:`ExcitationPullback`
(Captum API), :class:`PullbackAscent` (counterfactual images), :func:`pullback_explain_func`
(Quantus) and the paper's grids (:mod:`~whiteboxdl.pullbacks.grids`).

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks import excitation_pullbacks
>>> x = torch.tensor([-0.5, 1.0], requires_grad=True)
>>> with excitation_pullbacks():
...     torch.relu(x).sum().backward()
>>> bool((x.grad > 0).all())
True
"""

from whiteboxdl.pullbacks.ascent import AscentResult, GradientAscent, PullbackAscent
from whiteboxdl.pullbacks.attribute import ExcitationPullback
from whiteboxdl.pullbacks.explain_func import pullback_explain_func
from whiteboxdl.pullbacks.gates import (GATES, MAXPOOL_RULES, normal_gate, sigmoid_gate,
                                        soft_max_pool, soft_relu)
from whiteboxdl.pullbacks.mode import (ALL_RULES, DEFAULT_RULES, ExcitationPullbacks,
                                       UnhandledOpWarning, excitation_pullbacks)
from whiteboxdl.pullbacks.registry import (Option, Rule, RuleExample, check_temperature,
                                           elementwise_rule, get_rule, register_rule, rule_names,
                                           unregister_rule)
from whiteboxdl.pullbacks.settings import PullbackSettings

__all__ = [
    "ALL_RULES", "AscentResult", "DEFAULT_RULES", "ExcitationPullback", "ExcitationPullbacks",
    "GATES", "GradientAscent", "MAXPOOL_RULES", "Option", "PullbackAscent", "PullbackSettings",
    "Rule", "RuleExample", "UnhandledOpWarning", "check_temperature", "elementwise_rule",
    "excitation_pullbacks", "get_rule", "normal_gate", "pullback_explain_func", "register_rule",
    "rule_names", "sigmoid_gate", "soft_max_pool", "soft_relu", "unregister_rule",
]
