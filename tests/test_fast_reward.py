"""The reward's fast path against torch's fake-quantize path, and ``evaluate_many`` against ``evaluate``.

Bit identity is checked on this machine, fast path against torch's ops
(``fast_quant.use_impl("torch")``), for many policies: the accuracy and every retrained weight
and batch-norm statistic must be equal bit for bit. (The shipped tables were made on other
CPUs, where only their own numerics reproduce them; tests/test_table_*.py re-check those.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evaluation_checks import record_fields

from quant_envs.mixed_precision import fast_quant
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.tasks import make_task


@pytest.fixture(scope="module")
def digits() -> MixedPrecisionProblem:
    return MixedPrecisionProblem(task=make_task("digits-cnn"), budget_fraction=1.0, finetune_steps=4, cache_size=0)


@pytest.fixture(scope="module")
def mnist1d() -> MixedPrecisionProblem:
    return MixedPrecisionProblem(task="mnist1d-cnn", budget_fraction=1.0, cache_size=0)


def _random_policies(problem: MixedPrecisionProblem, count: int, seed: int, mixed: bool = True) -> list[tuple]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w = rng.integers(2, 9, size=problem.num_layers)
        a = rng.integers(2, 9, size=problem.num_layers) if mixed else w
        out.append(tuple((int(x), int(y)) for x, y in zip(w, a)))
    return out


def _retrained(problem: MixedPrecisionProblem, policy: tuple, steps: int, impl: str) -> tuple[float, dict]:
    with fast_quant.use_impl(impl):
        model = problem.quantized_model(policy, steps)
        acc = problem.task.evaluate(model, problem.eval_split)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return acc, state


def _assert_same_retraining(problem: MixedPrecisionProblem, policies: list[tuple], steps: int) -> None:
    for policy in policies:
        acc_torch, state_torch = _retrained(problem, policy, steps, "torch")
        acc_fast, state_fast = _retrained(problem, policy, steps, "fast")
        assert acc_fast == acc_torch, f"{policy}: accuracy {acc_fast} != torch's {acc_torch}"
        assert state_fast.keys() == state_torch.keys()
        for key, ref in state_torch.items():
            assert torch.equal(state_fast[key], ref), f"{policy}: {key} differs after {steps} steps"


def test_fast_path_retrains_bit_identically_on_digits(digits: MixedPrecisionProblem) -> None:
    # 4 steps: the gradients of every fake quantizer reach the weights (straight-through)
    _assert_same_retraining(digits, _random_policies(digits, 12, seed=1), steps=4)
    _assert_same_retraining(digits, _random_policies(digits, 6, seed=2), steps=0)


def test_fast_path_retrains_bit_identically_on_mnist1d(mnist1d: MixedPrecisionProblem) -> None:
    # the default task with its recipe: batch-norm re-estimation, then 10 retraining steps
    assert mnist1d.finetune_steps == 10 and mnist1d.task.bn_recalibration_size > 0
    _assert_same_retraining(mnist1d, _random_policies(mnist1d, 4, seed=3, mixed=False), steps=10)
    _assert_same_retraining(mnist1d, _random_policies(mnist1d, 3, seed=4), steps=0)


def test_the_rewards_are_the_same_through_evaluate(digits: MixedPrecisionProblem) -> None:
    policies = _random_policies(digits, 5, seed=5)
    with fast_quant.use_impl("torch"):
        ref = [digits.evaluate(p).accuracy for p in policies]
    assert [digits.evaluate(p).accuracy for p in policies] == ref


def test_evaluate_many_gives_evaluates_records() -> None:
    task = make_task("digits-cnn")
    one = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    many = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    policies = _random_policies(one, 5, seed=6)
    policies.insert(3, policies[1])  # a repeat: answered from the cache, as one call at a time
    singles = [one.evaluate(p) for p in policies]
    batch = many.evaluate_many(policies)
    assert [record_fields(r) for r in batch] == [record_fields(r) for r in singles]
    assert [r.cached for r in batch] == [False, False, False, True, False, False]
    assert (many.num_evaluations, many.num_queries) == (one.num_evaluations, one.num_queries) == (5, 6)
    # a policy's record does not depend on its batch-mates or their order
    fresh = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    reversed_batch = fresh.evaluate_many(list(reversed(policies[:3])))
    assert [record_fields(r) for r in reversed(reversed_batch)] == [record_fields(r) for r in singles[:3]]
    # every policy is checked before any is retrained
    with pytest.raises(ValueError, match="policy"):
        fresh.evaluate_many([policies[0], ((9, 9),) * one.num_layers])


def test_evaluate_splits_scores_one_retraining_on_each_split() -> None:
    task = make_task("digits-cnn")
    problem = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    policies = _random_policies(problem, 3, seed=7)
    both = problem.evaluate_splits(policies, ("val", "test"))
    other = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    for policy, records in zip(policies, both):
        assert record_fields(records["val"]) == record_fields(other.evaluate(policy, split="val"))
        assert record_fields(records["test"]) == record_fields(other.evaluate(policy, split="test"))
    assert problem.evaluate(policies[0], split="test").cached  # both splits were cached
    with pytest.raises(ValueError, match="splits"):
        problem.evaluate_splits(policies, ("val", "holdout"))


@pytest.mark.parametrize("device", ["cuda:99", "tpu", "vulkan:0"])
def test_a_device_this_machine_lacks_is_refused(device: str) -> None:
    with pytest.raises(ValueError, match="device"):
        MixedPrecisionProblem(task=make_task("digits-cnn"), budget_fraction=1.0, device=device)
    with pytest.raises(TypeError, match="device"):
        MixedPrecisionProblem(task=make_task("digits-cnn"), budget_fraction=1.0, device=0.5)


def test_the_default_device_is_the_cpu() -> None:
    problem = MixedPrecisionProblem(task=make_task("digits-cnn"), budget_fraction=1.0, finetune_steps=0)
    assert problem.device == torch.device("cpu")
    problem.evaluate(problem.uniform_policy(4))
    assert all(p.device.type == "cpu" for p in problem.fake_quant_model().model.parameters())


def test_the_reused_quantized_weight_follows_every_change() -> None:
    from torch import nn

    from quant_envs.mixed_precision.quantize import FakeQuantModel

    torch.manual_seed(0)
    fq = FakeQuantModel(nn.Sequential(nn.Conv1d(3, 4, 3)), ["0"], torch.randn(8, 3, 10))
    wrapper = fq.wrappers[0]

    def reference() -> torch.Tensor:  # computed afresh with torch's op
        with fast_quant.use_impl("torch"), torch.no_grad():
            return wrapper.quantized_weight()

    fq.set_policy([(4, None)])
    with torch.no_grad():
        first = wrapper.quantized_weight()
        assert wrapper.quantized_weight() is first  # reused while nothing changed
        assert torch.equal(first, reference())
        wrapper.layer.weight.mul_(1.5)  # an in-place change (an optimizer step)
        assert torch.equal(wrapper.quantized_weight(), reference())
        wrapper.layer.weight.data = torch.randn(4, 3, 3)  # a swapped tensor
        assert torch.equal(wrapper.quantized_weight(), reference())
    fq.set_policy([(3, None)])  # another width and clip ratio
    with torch.no_grad():
        assert torch.equal(wrapper.quantized_weight(), reference())
    fq.reset_weights()
    with torch.no_grad():
        assert torch.equal(wrapper.quantized_weight(), reference())
    # with autograd the weight is quantized on every call (it changes every step)
    assert wrapper.quantized_weight().grad_fn is not None
