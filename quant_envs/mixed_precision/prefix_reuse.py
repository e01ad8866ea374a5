"""Post-training (0-step) accuracies of many policies, computing each shared prefix of widths once.

Without retraining, a policy's network is the float network with each layer fake-quantized and its
batch norms re-estimated on a fixed set of training inputs (the task's recipe). Layer ``i``'s
output then depends only on the widths of layers ``0..i``: its batch-norm statistics are computed
from its own input, which the earlier layers alone produce. So policies that share their first
``k`` widths share their first ``k`` stages' activations, batch-norm statistics included, and a
set of policies can be scored by a depth-first walk over the tree of their prefixes: a stage is
run once per distinct prefix instead of once per policy. On an exhaustive grid of ``W`` widths
over ``L`` layers the walk runs ``W + W^2 + ... + W^L`` stages instead of ``L * W^L``, and the
early layers, the costly ones on these networks (longest signals), are the ones shared most.

The result is bit-identical to one policy at a time (``PolicyEvaluator.accuracy`` at 0 steps):
every stage runs the same modules on the same batches (the recalibration batches in train mode,
then the evaluation batches in eval mode, each split cut into the batches
:func:`~quant_envs.mixed_precision.training.accuracy` uses). It applies where the network is a
chain of stages with one quantizable layer each: ``features`` (an ``nn.Sequential``), an optional
``pool``, a flatten and a ``classifier`` (the built-in networks); elsewhere :func:`zero_step_accuracies`
returns None and the caller scores the policies one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import TensorDataset

from quant_envs.mixed_precision.models import (
    DigitsCNN,
    DigitsMobileNet,
    Mnist1dCNN,
    Mnist1dMobileNet,
    Mnist1dSmallCNN,
)
from quant_envs.mixed_precision.tasks import Task
from quant_envs.mixed_precision.training import (
    EVAL_BATCH,
    dataset_size,
    model_device,
    torch_threads,
)

if TYPE_CHECKING:
    from quant_envs.mixed_precision.cost_model import Policy
    from quant_envs.mixed_precision.policy_evaluator import PolicyEvaluator
    from quant_envs.mixed_precision.quantize import FakeQuantModel

__all__ = ["STAGED_NETWORKS", "stages", "zero_step_accuracies"]

#: networks whose forward is ``classifier(flatten(pool(features(x)), 1))`` (``pool`` optional)
STAGED_NETWORKS: tuple[type[nn.Module], ...] = (DigitsCNN, DigitsMobileNet, Mnist1dCNN, Mnist1dSmallCNN,
                                                Mnist1dMobileNet)
_BATCH = EVAL_BATCH  # the batches of recalibrate_batchnorm and accuracy, so results are bit-identical

Stage = Callable[[torch.Tensor], torch.Tensor]


def stages(fq: FakeQuantModel) -> list[Stage] | None:
    """The fake-quantized network as one stage per quantizable layer (stage ``i`` holds layer
    ``i``; the last is pool, flatten and classifier), or None where it is not such a chain."""
    model = fq.model
    if type(model) not in STAGED_NETWORKS:
        return None
    features, classifier = getattr(model, "features", None), getattr(model, "classifier", None)
    pool = getattr(model, "pool", None)
    wrappers = fq.wrappers
    if (not isinstance(features, nn.Sequential) or classifier is not wrappers[-1]
            or len(features) != len(wrappers) - 1
            or any(not any(m is w for m in block.modules()) for block, w in zip(features, wrappers))):
        return None

    def head(x: torch.Tensor) -> torch.Tensor:
        return classifier(torch.flatten(pool(x) if pool is not None else x, 1))

    return [*features, head]


def _norms(stage: Stage) -> list[nn.modules.batchnorm._BatchNorm]:
    if not isinstance(stage, nn.Module):
        return []
    return [m for m in stage.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _set_training(stage: Stage, mode: bool) -> None:
    if isinstance(stage, nn.Module):
        stage.train(mode)


def zero_step_accuracies(evaluator: PolicyEvaluator, policies: Sequence[Policy],
                         splits: Sequence[str]) -> list[dict[str, float]] | None:
    """Per policy, ``{split: accuracy}`` at 0 retraining steps, equal bit for bit to
    ``evaluator.accuracy(policy, 0, split)``; None where the prefix walk does not apply (a task
    with its own ``finetune``/``evaluate``, data not held as tensors, a network not a chain)."""
    task = evaluator.task
    if type(task).finetune is not Task.finetune or type(task).evaluate is not Task.evaluate:
        return None
    datasets = {"train": task.train_set, "val": task.val_set, "test": task.test_set}
    tensors: dict[str, tuple[torch.Tensor, ...]] = {}
    for s in splits:
        dataset = datasets[s]
        if not isinstance(dataset, TensorDataset):
            return None
        tensors[s] = dataset.tensors
    fq = evaluator.fake_quant_model()
    chain = stages(fq)
    if chain is None:
        return None
    n_layers = len(chain)
    device = model_device(fq.model)
    results: list[dict[str, float]] = [{} for _ in policies]

    def batches(split: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x, y = tensors[split]
        if task.max_eval_samples is not None:
            x, y = x[: task.max_eval_samples], y[: task.max_eval_samples]
        return [b.to(device) for b in x.split(_BATCH)], [b.to(device) for b in y.split(_BATCH)]

    def visit(depth: int, members: list[int], calibration: list[torch.Tensor],
              evaluation: dict[str, list[torch.Tensor]]) -> None:
        groups: dict[tuple[int, int], list[int]] = {}
        for i in members:
            groups.setdefault(tuple(policies[i][depth]), []).append(i)  # type: ignore[arg-type]
        stage = chain[depth]
        last = depth == n_layers - 1
        for (w_bits, a_bits), group in groups.items():
            fq.set_layer(depth, w_bits, a_bits)
            next_calibration: list[torch.Tensor] = []
            if calibration and not last:
                # recalibrate_batchnorm, restricted to this stage: its statistics see only its input
                norms = _norms(stage)
                saved = [m.momentum for m in norms]
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None
                _set_training(stage, True)
                try:
                    next_calibration = [stage(x) for x in calibration]
                finally:
                    for m, momentum in zip(norms, saved):
                        m.momentum = momentum
            _set_training(stage, False)
            outputs = {s: [stage(x) for x in xs] for s, xs in evaluation.items()}
            if last:
                for s in evaluation:
                    correct = sum(int((out.argmax(dim=1) == y).sum()) for out, y in zip(outputs[s], labels[s]))
                    for i in group:
                        results[i][s] = correct / max(totals[s], 1)
            else:
                visit(depth + 1, group, next_calibration, outputs)

    with torch_threads(task.num_threads), torch.no_grad():
        fq.reset_weights()  # float weights and batch-norm statistics, as before any policy
        inputs = {s: batches(s) for s in splits}
        labels = {s: ys for s, (_, ys) in inputs.items()}
        totals = {s: sum(len(y) for y in ys) for s, ys in labels.items()}
        calibration: list[torch.Tensor] = []
        if task.bn_recalibration_size:
            n = min(task.bn_recalibration_size, dataset_size(task.train_set))
            calibration = [x.to(device) for x in task._train_inputs(n).split(_BATCH)]
        try:
            visit(0, list(range(len(policies))), calibration, {s: xs for s, (xs, _) in inputs.items()})
        finally:
            fq.model.eval()  # where the one-at-a-time path leaves it
    return results
