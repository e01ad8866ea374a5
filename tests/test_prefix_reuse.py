"""The 0-step prefix walk (``prefix_reuse``) against scoring one policy at a time.

The reference is ``PolicyEvaluator.accuracy(policy, 0, split)``: the network quantized with the
policy, its batch norms re-estimated, scored on the split; the walk must give the same accuracy
bit for bit (and so the same ``Evaluation`` records through ``evaluate_many``) on every network it
applies to, with and without batch-norm re-estimation, for grids (long shared prefixes) and for
random mixed policies (weights and activations at different widths, little sharing).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from evaluation_checks import record_fields
from torch import nn

from quant_envs.mixed_precision.prefix_reuse import stages, zero_step_accuracies
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.tasks import make_task


def _mixed(problem: MixedPrecisionProblem, count: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [tuple((int(w), int(a)) for w, a in rng.integers(2, 9, size=(problem.num_layers, 2))) for _ in range(count)]


def _grid(problem: MixedPrecisionProblem, free_layers: int, bits=(2, 4, 8)) -> list[tuple]:
    """Every width over the last ``free_layers`` layers, the others at 8 bits (shared prefixes)."""
    head = ((8, 8),) * (problem.num_layers - free_layers)
    return [head + tuple((b, b) for b in tail) for tail in itertools.product(bits, repeat=free_layers)]


def _one_at_a_time(problem: MixedPrecisionProblem, policies: list[tuple], splits: tuple[str, ...]) -> list[dict]:
    return [{s: problem.evaluator.accuracy(p, 0, s) for s in splits} for p in policies]


@pytest.mark.parametrize("task", ["mnist1d-cnn", "digits-cnn", "mnist1d-small"])
def test_the_prefix_walk_equals_one_policy_at_a_time(task: str) -> None:
    problem = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=0, cache_size=0)
    policies = _grid(problem, 3) + _mixed(problem, 6, seed=1)
    walked = zero_step_accuracies(problem.evaluator, policies, ("val", "test"))
    assert walked is not None, f"{task}: the built-in network should be walked"
    assert walked == _one_at_a_time(problem, policies, ("val", "test"))
    # the walk leaves nothing behind: a policy scored one at a time afterwards is unchanged
    assert problem.evaluator.accuracy(policies[0], 0, "val") == walked[0]["val"]


def test_evaluate_many_at_zero_steps_gives_evaluates_records() -> None:
    task = make_task("mnist1d-small")
    many = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=0)
    one = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=0)
    policies = _grid(many, 2) + [_grid(many, 2)[4]]  # a repeat: the cache answers it, as one at a time
    batch = many.evaluate_many(policies)
    singles = [one.evaluate(p) for p in policies]

    assert [record_fields(r) for r in batch] == [record_fields(r) for r in singles]
    assert (many.num_evaluations, many.num_queries) == (one.num_evaluations, one.num_queries) == (9, 10)
    assert batch[-1].cached and not batch[4].cached


def test_the_walk_is_taken_only_where_policies_share_enough() -> None:
    from quant_envs.mixed_precision.evaluator import WALK_OVERHEAD, walk_pays

    problem = MixedPrecisionProblem(task="mnist1d-small", budget_fraction=1.0, finetune_steps=0)
    grid = _grid(problem, 3)  # 27 policies: 1 + 1 prefixes of the two shared layers, then 3 + 9 + 27
    prefixes = sum(len({p[:d] for p in grid}) for d in range(1, problem.num_layers + 1))
    assert prefixes == 1 + 1 + 3 + 9 + 27 and walk_pays(grid) == (WALK_OVERHEAD * prefixes < 27 * problem.num_layers)
    assert walk_pays(grid)
    assert not walk_pays(_mixed(problem, 8, seed=2))  # random mixed widths share (almost) nothing


def test_a_network_that_is_not_a_chain_is_scored_one_at_a_time() -> None:
    problem = MixedPrecisionProblem(task="digits-cnn", budget_fraction=1.0, finetune_steps=0, cache_size=0)
    fq = problem.evaluator.fake_quant_model()
    assert stages(fq) is not None
    features = fq.model.features
    try:
        fq.model.features = nn.Sequential(*features, nn.Identity())  # one block too many for the layers
        assert stages(fq) is None
        assert zero_step_accuracies(problem.evaluator, _grid(problem, 2), ("val",)) is None
    finally:
        fq.model.features = features
