"""The batched pass (``policy_batch``: P policies' networks stacked, retrained and scored at once)
against scoring one policy at a time, on the CPU (the pass is the GPU's; its arithmetic is
checked here).

The reference is ``PolicyEvaluator.accuracy`` one policy at a time (the sequential path:
``Task.finetune`` then ``Task.evaluate``) and the network it retrains. With ``layer_ops="loop"``
the batched pass must equal it bit for bit: accuracies and every retrained weight and batch-norm
statistic. With ``layer_ops="grouped"`` (what runs on CUDA) convolutions and the head sum in
another order, so weights may differ in the last bits: the accuracies must agree within
``GROUPED_TOLERANCE``, and a policy's result must not depend on its batch-mates.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evaluation_checks import record_fields
from torch import nn

from quant_envs.mixed_precision import evaluator as evaluator_module
from quant_envs.mixed_precision import fast_quant
from quant_envs.mixed_precision.policy_batch import _retrained, batched_accuracies
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.tasks import make_task

#: grouped layer ops vs the one-at-a-time path: accuracies within 2 samples of 5000 (MNIST-1D
#: validation) or 1 of 360 (digits); measured on the CPU: equal on every policy tried
GROUPED_TOLERANCE = 3e-3


@pytest.fixture(scope="module")
def digits() -> MixedPrecisionProblem:
    return MixedPrecisionProblem(task=make_task("digits-cnn"), budget_fraction=1.0, cache_size=0)


@pytest.fixture(scope="module")
def mnist1d() -> MixedPrecisionProblem:
    return MixedPrecisionProblem(task="mnist1d-cnn", budget_fraction=1.0, cache_size=0)


def _mixed(problem: MixedPrecisionProblem, count: int, seed: int, bits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
           ) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [tuple((int(w), int(a)) for w, a in rng.choice(bits, size=(problem.num_layers, 2))) for _ in range(count)]


def _sequential(problem: MixedPrecisionProblem, policy: tuple, steps: int) -> tuple[dict[str, float], dict]:
    model = problem.evaluator.quantized_model(policy, steps, problem.evaluator.eval_seed)
    accuracies = {s: problem.task.evaluate(model, s) for s in ("val", "test")}
    return accuracies, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_loop_is_bit_identical(problem: MixedPrecisionProblem, policies: list[tuple], steps: int) -> None:
    batched = batched_accuracies(problem.evaluator, policies, steps, ("val", "test"), layer_ops="loop")
    assert batched is not None, "the built-in chain network should be batched"
    retrained = _retrained(problem.evaluator, policies, steps, "loop")
    assert retrained is not None
    net = retrained[0]
    for i, policy in enumerate(policies):
        accuracies, state = _sequential(problem, policy, steps)
        assert batched[i] == accuracies, f"{policy} at {steps} steps"
        stacked = net.state(i)
        assert len(stacked) == sum(1 for k in state if not k.endswith(("num_batches_tracked", "w_clip_ratio")))
        for key, value in stacked.items():
            assert torch.equal(value, state[key]), f"{policy}: {key} differs after {steps} steps"


@pytest.mark.parametrize("steps", [0, None])
def test_the_batched_pass_retrains_bit_identically_on_digits(digits: MixedPrecisionProblem, steps: int | None) -> None:
    # digits-cnn: no batch-norm re-estimation, 20 Adam steps (lr 1e-3, batches of 64) by default
    n = digits.finetune_steps if steps is None else steps
    _assert_loop_is_bit_identical(digits, _mixed(digits, 5, seed=1), n)


@pytest.mark.parametrize("steps", [0, None])
def test_the_batched_pass_retrains_bit_identically_on_mnist1d(mnist1d: MixedPrecisionProblem, steps: int | None) -> None:
    # mnist1d-cnn: batch norm re-estimated on 512 inputs, then 10 Adam steps (lr 1e-4, batches of 128)
    n = mnist1d.finetune_steps if steps is None else steps
    _assert_loop_is_bit_identical(mnist1d, _mixed(mnist1d, 3, seed=2, bits=(2, 4, 8)), n)


@pytest.mark.parametrize("task", ["digits", "mnist1d"])
def test_grouped_layer_ops_agree_with_one_at_a_time(task: str, request: pytest.FixtureRequest) -> None:
    problem: MixedPrecisionProblem = request.getfixturevalue(task)
    policies = _mixed(problem, 4, seed=3, bits=(2, 4, 8))
    for steps in (0, problem.finetune_steps):
        grouped = batched_accuracies(problem.evaluator, policies, steps, ("val",), layer_ops="grouped")
        assert grouped is not None
        for policy, got in zip(policies, grouped):
            want = problem.evaluator.accuracy(policy, steps, "val")
            assert abs(got["val"] - want) <= GROUPED_TOLERANCE, f"{policy} at {steps} steps: {got['val']} vs {want}"


def test_a_policys_result_does_not_depend_on_its_batch_mates(digits: MixedPrecisionProblem) -> None:
    # the GPU's configuration: grouped ops, every pass filled up to the chunk size
    policies = _mixed(digits, 8, seed=4)
    steps = digits.finetune_steps

    def score(batch: list[tuple]) -> list[float]:
        out = batched_accuracies(digits.evaluator, batch, steps, ("val",), layer_ops="grouped", chunk=8, pad=True)
        assert out is not None
        return [r["val"] for r in out]

    together = score(policies)
    assert [score([p])[0] for p in policies[:3]] == together[:3]  # alone (padded with copies of itself)
    assert score(policies[::-1]) == together[::-1]  # another order, other neighbours
    assert score([policies[2], *_mixed(digits, 3, seed=5)])[0] == together[2]  # other batch-mates


def test_chunks_and_padding_change_nothing_on_the_cpu(mnist1d: MixedPrecisionProblem) -> None:
    policies = _mixed(mnist1d, 5, seed=6, bits=(3, 6))
    whole = batched_accuracies(mnist1d.evaluator, policies, 0, ("val",), layer_ops="loop")
    chunked = batched_accuracies(mnist1d.evaluator, policies, 0, ("val",), layer_ops="loop", chunk=2, pad=True)
    assert whole == chunked == [{"val": mnist1d.evaluator.accuracy(p, 0, "val")} for p in policies]


def test_evaluate_many_batched_gives_evaluates_records() -> None:
    task = make_task("digits-cnn")
    many = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    one = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=3)
    policies = _mixed(many, 4, seed=7)
    policies.append(policies[1])  # a repeat: the cache answers it, as one at a time
    batch = evaluator_module.evaluate_many(many, policies, batched=True)
    singles = [one.evaluate(p) for p in policies]

    assert [record_fields(r) for r in batch] == [record_fields(r) for r in singles]
    assert (many.num_evaluations, many.num_queries) == (one.num_evaluations, one.num_queries) == (4, 5)
    assert batch[-1].cached and not batch[1].cached
    # by default (the CPU) the batched pass is not used: evaluate_splits' records are the same
    assert not many.evaluator.batched_by_default()
    with pytest.raises(TypeError, match="batched"):
        evaluator_module.evaluate_many(many, policies, batched="yes")  # type: ignore[arg-type]


def test_a_network_that_is_not_a_chain_is_scored_one_at_a_time(digits: MixedPrecisionProblem) -> None:
    fq = digits.evaluator.fake_quant_model()
    features = fq.model.features
    policies = _mixed(digits, 2, seed=8)
    try:
        fq.model.features = nn.Sequential(*features, nn.Identity())  # one block too many for the layers
        assert batched_accuracies(digits.evaluator, policies, 0, ("val",)) is None
        # the evaluator falls back to one policy at a time
        assert len(digits.evaluator.accuracies(policies, 0, ("val",), batched=True)) == 2
    finally:
        fq.model.features = features
    with pytest.raises(ValueError, match="layer_ops"):
        batched_accuracies(digits.evaluator, policies, 0, ("val",), layer_ops="vmap")


@pytest.mark.parametrize("per_channel", [False, True])
def test_grouped_fake_quantization_equals_torchs_ops_elementwise(per_channel: bool) -> None:
    # fake_quantize_grouped with per-slice parameters against torch's op on each slice, values and
    # gradients, every width 2..8, with NaN, infinities and values far outside the range
    gen = torch.Generator().manual_seed(0)
    bits = list(range(2, 9))
    x = torch.randn(16, len(bits), 50, generator=gen) * 4
    x[0, :, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30])
    x.requires_grad_(True)
    if per_channel:
        qmin = [-(2 ** (b - 1) - 1) for b in bits]
        qmax = [2 ** (b - 1) - 1 for b in bits]
        zps = [0] * len(bits)
    else:
        qmin = [0] * len(bits)
        qmax = [2**b - 1 for b in bits]
        zps = [int(z) for z in torch.randint(0, 3, (len(bits),), generator=gen)]
    scales = (torch.rand(len(bits), generator=gen) * 0.5 + 0.01).tolist()
    shape = (1, -1, 1)

    def col(values: list) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32).reshape(shape)

    got = fast_quant.fake_quantize_grouped(x, col(scales), col(zps), col(qmin), col(qmax), per_channel)
    got.backward(torch.ones_like(got))
    assert x.grad is not None
    grad_got, x.grad = x.grad.clone(), None
    for j in range(len(bits)):
        xj = x[:, j].detach().clone().requires_grad_(True)
        if per_channel:
            ref = torch.fake_quantize_per_channel_affine(
                xj.transpose(0, 1), torch.full((50,), scales[j]), torch.zeros(50, dtype=torch.int32), 0,
                qmin[j], qmax[j]).transpose(0, 1)
        else:
            ref = torch.fake_quantize_per_tensor_affine(xj, scales[j], zps[j], qmin[j], qmax[j])
        ref.backward(torch.ones_like(ref))
        assert torch.equal(got[:, j].detach(), ref.detach()), f"{bits[j]} bits: values differ"
        assert xj.grad is not None and torch.equal(grad_got[:, j], xj.grad), f"{bits[j]} bits: gradients differ"


def test_where_the_batched_pass_is_the_default_evaluate_and_evaluate_many_take_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # on CUDA every reward of a built-in network comes from the batched pass (so a record is the
    # same whichever call computed it); the routing is checked on the CPU by declaring the
    # batched pass the default, which must then be called and give the sequential records
    from quant_envs.mixed_precision import policy_batch
    from quant_envs.mixed_precision.policy_evaluator import PolicyEvaluator

    task = make_task("digits-cnn")
    reference = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=2, cache_size=0)
    policies = _mixed(reference, 3, seed=9)
    want = [reference.evaluate(p).accuracy for p in policies]
    calls: list[int] = []
    real = policy_batch.batched_accuracies

    def counted(evaluator, todo, *args, **kwargs):
        calls.append(len(todo))
        return real(evaluator, todo, *args, **kwargs)

    monkeypatch.setattr(policy_batch, "batched_accuracies", counted)
    monkeypatch.setattr(PolicyEvaluator, "batched_by_default", lambda self: True)
    problem = MixedPrecisionProblem(task=task, budget_fraction=1.0, finetune_steps=2, cache_size=0)
    assert [problem.evaluate(p).accuracy for p in policies] == want
    assert calls == [1, 1, 1]
    assert [r.accuracy for r in problem.evaluate_many(policies)] == want
    assert calls[3:] == [3]  # the three together, in one call
    # evaluate_splits at 0 steps too (not the prefix walk): one call for both splits
    both = problem.evaluate_splits(policies[:2], ("val", "test"), finetune_steps=0)
    assert calls[4:] == [2]
    assert [{s: r[s].accuracy for s in r} for r in both] == [
        {s: reference.evaluate(p, 0, s).accuracy for s in ("val", "test")} for p in policies[:2]]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["digits-mbnet", "mnist1d-mbnet", "mnist1d-small"])
def test_the_batched_pass_is_bit_identical_on_every_built_in_network(task: str) -> None:
    # depthwise convolutions (groups > 1), 2-D convolutions and pooling: about 13 s each
    problem = MixedPrecisionProblem(task=task, budget_fraction=1.0, cache_size=0)
    policies = _mixed(problem, 2, seed=10, bits=(2, 4, 8))
    for steps in (0, problem.finetune_steps):
        _assert_loop_is_bit_identical(problem, policies, steps)
