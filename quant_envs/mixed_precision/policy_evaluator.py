"""The mixed-precision problem's policy evaluator: the accuracy of a policy, with a bounded cache.

:class:`PolicyEvaluator` holds the task (a trained float network, its data and its retraining
recipe) and its quantizable layers, and answers the accuracy of a (checked) policy: the network
fake-quantized with it (torch's ops), retrained for ``finetune_steps`` mini-batches seeded by
``eval_seed``, scored on a split. :class:`EvaluationCache` is the bounded LRU of evaluations and
its counters (``num_evaluations``: those that ran; ``num_queries``: all asked).
:class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem` composes one with the torch-free
:class:`~quant_envs.mixed_precision.cost_model.CostModel`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from quant_envs.mixed_precision.evaluator import check_device

if TYPE_CHECKING:  # torch is imported when an evaluator is built, not with this module
    import torch

    from quant_envs.mixed_precision.config import ProblemConfig
    from quant_envs.mixed_precision.cost_model import Policy
    from quant_envs.mixed_precision.layer_shapes import QuantLayer
    from quant_envs.mixed_precision.quantize import FakeQuantModel
    from quant_envs.mixed_precision.tasks import Task

__all__ = ["EvaluationCache", "PolicyEvaluator"]


class EvaluationCache:
    """Evaluations by key (LRU, at most ``size``; 0 keeps none) and how many ran and were asked."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, Any] = OrderedDict()
        self.num_evaluations = 0  # evaluations that ran (cache misses)
        self.num_queries = 0  # all queries, cache hits included

    def recall(self, key: tuple) -> Any:
        """Count a query; the cached evaluation of ``key`` (now the most recently used), or None."""
        self.num_queries += 1
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
        return hit

    def remember(self, key: tuple, result: Any) -> Any:
        """Count an evaluation that ran and cache it (LRU: the least recently used beyond
        ``size`` is dropped); returns ``result``."""
        self.num_evaluations += 1
        if self.size:
            self.entries[key] = result
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return result

    def state(self) -> dict[str, Any]:
        """The entries and counters (picklable; the format checkpoints have always held)."""
        return {"_cache": self.entries, "num_evaluations": self.num_evaluations, "num_queries": self.num_queries}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        self.entries.clear()
        self.entries.update(state["_cache"])
        self.num_evaluations = int(state["num_evaluations"])
        self.num_queries = int(state["num_queries"])


class PolicyEvaluator:
    """Task + quantization + retraining: the accuracy of a policy on a split.

    Args:
        task: the built task (float network, data, retraining recipe).
        layers: its quantizable layers in execution order (``layer_shapes.quantizable_layers``).
        finetune_steps: default retraining mini-batches (None: the task's recipe).
        eval_seed: seeds the retraining (batch order), so an accuracy is a function of the policy.
        cache_size: evaluations kept in :attr:`cache`.
        device: where policies are retrained and scored (a ``torch.device``; default the CPU).
    """

    def __init__(self, task: Task, layers: Sequence[QuantLayer], finetune_steps: int | None = None,
                 eval_seed: int = 0, cache_size: int = 4096, device: Any = "cpu") -> None:
        self.task = task
        self.layers = list(layers)
        self.finetune_steps = int(task.finetune_steps if finetune_steps is None else finetune_steps)
        self.eval_seed = eval_seed
        self.cache = EvaluationCache(cache_size)
        self.device = check_device(device)
        self._fq: FakeQuantModel | None = None

    @classmethod
    def from_config(cls, config: ProblemConfig) -> PolicyEvaluator:
        """The task of ``config`` (a name is built, and trained once and cached on disk, by
        ``make_task``) and its quantizable layers."""
        # lazy: the task and its layer shapes bring torch; this module (and the problem's) import without it
        from quant_envs.mixed_precision.layer_shapes import quantizable_layers
        from quant_envs.mixed_precision.tasks import make_task

        device = check_device(config.device)  # before the task: an absent GPU must not cost a training
        if isinstance(config.task, str):
            kwargs = dict(config.task_kwargs or {})
            if config.cache_dir is not None:
                kwargs.setdefault("cache_dir", config.cache_dir)
            task = make_task(config.task, **kwargs)
        else:
            task = config.task
        layers = quantizable_layers(task.model, task.example_input())
        return cls(task, layers, config.finetune_steps, config.eval_seed, config.cache_size, device)

    def float_weight(self, i: int) -> torch.Tensor:
        """Layer ``i``'s float weight (detached)."""
        import torch

        weight = self.task.model.get_submodule(self.layers[i].name).weight
        assert isinstance(weight, torch.Tensor)  # a quantizable layer's parameter
        return weight.detach()

    def fake_quant_model(self) -> FakeQuantModel:
        """The task's model wrapped for fake quantization (built once, shared between evaluations)."""
        if self._fq is None:
            # lazy: fake quantization is torch (see from_config)
            from quant_envs.mixed_precision.quantize import FakeQuantModel

            self._fq = FakeQuantModel(self.task.model, [layer.name for layer in self.layers],
                                      self.task.calibration_inputs()).to(self.device)
        return self._fq

    def quantized_model(self, policy: Policy, finetune_steps: int, seed: int) -> Any:
        """The task's model quantized with the (checked) ``policy`` and retrained for
        ``finetune_steps`` mini-batches seeded by ``seed`` (a model shared between calls)."""
        fq = self.fake_quant_model()
        fq.reset_weights()
        model = fq.set_policy(policy)
        return self.task.finetune(model, finetune_steps, seed=seed)

    def accuracy(self, policy: Policy, finetune_steps: int, split: str) -> float:
        """The accuracy on ``split`` of ``policy`` retrained with the evaluation seed (not cached).

        On CUDA the built-in networks are scored by the batched pass (:meth:`accuracies`), so that
        a policy's accuracy is the same whether it is scored alone or with others."""
        if self.batched_by_default():
            scored = self.accuracies([policy], finetune_steps, (split,), batched=True)
            return scored[0][split]
        return self.task.evaluate(self.quantized_model(policy, finetune_steps, self.eval_seed), split)

    def batched_by_default(self) -> bool:
        """Whether policies are scored by the batched pass unless told otherwise: on CUDA."""
        return self.device.type == "cuda"

    def accuracies(self, policies: Sequence[Policy], finetune_steps: int, splits: Sequence[str],
                   batched: bool | None = None) -> list[dict[str, float]]:
        """Per policy, ``{split: accuracy(policy, finetune_steps, split)}`` from one retraining.

        ``batched``: score them by the batched pass (:mod:`~quant_envs.mixed_precision.policy_batch`:
        all policies' networks stacked into one, retrained and scored together) where it applies
        (the built-in chain networks), one at a time elsewhere; False: one at a time; None
        (default): batched on CUDA, one at a time on the CPU, where batching was measured slower.
        """
        if batched is None:
            batched = self.batched_by_default()
        if batched:
            # lazy: the batched pass is torch; this module imports without it
            from quant_envs.mixed_precision.policy_batch import batched_accuracies

            scored = batched_accuracies(self, policies, finetune_steps, splits)
            if scored is not None:
                return scored
        out = []
        for policy in policies:
            model = self.quantized_model(policy, finetune_steps, self.eval_seed)
            out.append({s: self.task.evaluate(model, s) for s in splits})
        return out

    def float_accuracy(self, split: str) -> float:
        return self.task.float_accuracy(split)
