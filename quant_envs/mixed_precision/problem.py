"""The mixed-precision problem, written once for the environments and the baseline solvers.

A *policy* gives every quantizable layer a (weight bits, activation bits) pair. The problem knows

* its **cost** on a simulated accelerator (``hw_sim.CostTable``: latency, energy, model size),
* the **budget** on one of those metrics, and which partial choices can still meet it (exact
  masking from the table's minimum completion cost),
* its **accuracy**: the task's float model fake-quantized with the policy, retrained for
  ``finetune_steps`` mini-batches (0 = post-training quantization), evaluated on a split.

Accuracies are cached (LRU) by (policy, finetune_steps, split): a policy asked for twice is
retrained once. Retraining is seeded by ``eval_seed``, so a policy's accuracy is a deterministic
function of the policy; that is what makes the cache exact.

:class:`MixedPrecisionProblem` composes the two halves: the torch-free cost and feasibility model
(:class:`~quant_envs.mixed_precision.cost_model.CostModel`, ``problem.cost_model``) and the policy
evaluator (:class:`~quant_envs.mixed_precision.policy_evaluator.PolicyEvaluator`,
``problem.evaluator``: task, quantization, retraining, the bounded cache), from one validated
:class:`~quant_envs.mixed_precision.config.ProblemConfig` (``problem.config``).
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hw_sim.metrics import METRIC_INFO, METRICS, Metric, metric_info  # noqa: F401  (re-exported)
from hw_sim.metrics import UNITS as METRIC_UNITS  # noqa: F401  (re-exported)
from quant_envs.checks import check_choice, check_int
from quant_envs.mixed_precision import evaluator
from quant_envs.mixed_precision.config import (  # noqa: F401  (re-exported)
    DEFAULTS_V1,
    EVAL_SPLITS,
    MAX_BITS,
    MIN_BITS,
    ProblemConfig,
    check_bits,
    check_hardware,
)
from quant_envs.mixed_precision.cost_model import (  # noqa: F401  (re-exported: their home was here)
    COUNT_LIMIT,
    DEFAULT_BUDGET_FLOOR,
    DEFAULT_BUDGET_STEP,
    DEFAULT_MIN_FEASIBLE,
    RELATIVE_SLACK,
    CostModel,
    FeasibilityModel,
    PartialPolicy,
    Policy,
)
from quant_envs.mixed_precision.features import LayerFacts
from quant_envs.mixed_precision.policy_evaluator import EvaluationCache, PolicyEvaluator

if TYPE_CHECKING:  # torch is imported when a problem is built, not with this module
    import torch

    from quant_envs.mixed_precision.quantize import FakeQuantModel
    from quant_envs.mixed_precision.tasks import Task

@dataclass(frozen=True)
class Evaluation:
    """The outcome of one policy: accuracy, costs and budget use."""

    policy: Policy
    accuracy: float
    float_accuracy: float
    latency_s: float
    energy_j: float
    size_bytes: float
    budget_metric: str
    budget: float
    budget_used: float  # cost of the budget metric / budget (<= 1 means within budget)
    latency_fraction: float  # of the all-8-bit latency
    energy_fraction: float
    size_fraction: float
    finetune_steps: int
    split: str
    eval_time_s: float
    cached: bool

    @property
    def within_budget(self) -> bool:
        return self.budget_used <= 1.0 + RELATIVE_SLACK

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["policy"] = [list(p) for p in self.policy]
        return d


def metric_fields(costs: Mapping[str, float], fractions: Mapping[str, float]) -> dict[str, float]:
    """:class:`Evaluation`'s cost and fraction fields (``latency_s=``, ..., ``latency_fraction=``, ...)
    from per-metric costs and fractions of the all-8-bit cost; a metric they lack (a table that
    publishes no energy) is NaN, and metrics beyond ``METRICS`` (a table's BOPs) are left out."""
    out: dict[str, float] = {}
    for m, info in METRIC_INFO.items():
        out[info.cost_field] = costs.get(m, math.nan)
        out[info.fraction_field] = fractions.get(m, math.nan)
    return out


class MixedPrecisionProblem(FeasibilityModel):
    """Task + accelerator + budget: costs, feasibility, masks and the accuracy of any policy.

    Args:
        task: a task name (``make_task``; default "mnist1d-cnn") or a built
            :class:`~quant_envs.mixed_precision.tasks.Task`.
        hardware: an ``hw_sim`` profile name (``hw_sim.PROFILES``, or a shipped measured table in
            ``hw_sim.MEASURED``), or an ``hw_sim.Accelerator`` instance (e.g. a user's own model or
            ``hw_sim.TableAccelerator``; a table must have been measured on the task's layers).
        bits: the allowed widths, ascending (default 2..8).
        budget_metric: "latency", "energy" or "size".
        budget_fraction: the budget as a fraction of the all-8-bit cost (every layer at 8 bits,
            whatever ``bits`` allows); ignored if ``budget`` is set. None (default):
            :meth:`default_budget_fraction` (>= 1000 feasible policies; see ``DEFAULT_MIN_FEASIBLE``).
        budget: the budget in SI units of the metric (seconds, joules, bytes), or None.
        finetune_steps: default retraining mini-batches per evaluation (0 = post-training
            quantization); None (default): the task's recipe (``Task.finetune_steps``).
        keep_first_last_8bit: HAQ's choice of fixing the first and last layers at 8 bits.
        eval_split: the split the accuracy is measured on ("val"; "test" for final reports).
        eval_seed: seeds the retraining (batch order).
        cache_size: policies kept in the LRU cache of evaluations.
        batch: the batch size the accelerator is costed at (default: the accelerator's own,
            ``default_batch``: 16 for ``bismo-cloud`` as in HAQ, 1 for ``bismo-edge``).
        task_kwargs: extra arguments for ``make_task``.
        cache_dir: where trained float models are cached (see ``model_cache``).
        device: where policies are retrained and scored ("cpu", default; "cuda" or "cuda:N"): the
            float model, calibration and data stay on the CPU, batches move to the device. On
            the CPU policies are scored one at a time (``evaluate_many`` at 0 steps walks their
            shared prefixes), bit-identical to the recorded tables. On CUDA, with the built-in
            networks, every reward (``evaluate`` and ``evaluate_many``, at any steps) comes from
            the batched pass (:mod:`~quant_envs.mixed_precision.policy_batch`: up to 32 policies'
            networks stacked and retrained together with grouped convolutions, float32 without
            TF32, deterministic kernels), so a policy's accuracy does not depend on the call or
            its batch-mates; it is not bit-identical to the CPU's (other kernels sum in another
            order), as any GPU training is not. Other networks run one at a time on either.
    """

    #: the quantizable layers in execution order (``QuantLayer``; a table's units are ``TableLayer``)
    layers: Sequence[LayerFacts]

    def __init__(
        self,
        task: Any = DEFAULTS_V1.task,
        hardware: Any = DEFAULTS_V1.hardware,
        bits: Iterable[int] = DEFAULTS_V1.bits,
        budget_metric: str = DEFAULTS_V1.budget_metric,
        budget_fraction: float | None = DEFAULTS_V1.budget_fraction,
        budget: float | None = DEFAULTS_V1.budget,
        finetune_steps: int | None = DEFAULTS_V1.finetune_steps,
        keep_first_last_8bit: bool = DEFAULTS_V1.keep_first_last_8bit,
        eval_split: str = DEFAULTS_V1.eval_split,
        eval_seed: int = DEFAULTS_V1.eval_seed,
        cache_size: int = DEFAULTS_V1.cache_size,
        batch: int | None = DEFAULTS_V1.batch,
        task_kwargs: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = DEFAULTS_V1.cache_dir,
        device: Any = DEFAULTS_V1.device,
    ) -> None:
        # Checked before the task is built: a bad argument must not cost a float model's training.
        self._build(ProblemConfig(
            task=task, hardware=hardware, bits=bits, budget_metric=budget_metric, budget_fraction=budget_fraction,
            budget=budget, finetune_steps=finetune_steps, keep_first_last_8bit=keep_first_last_8bit,
            eval_split=eval_split, eval_seed=eval_seed, cache_size=cache_size, batch=batch,
            task_kwargs=task_kwargs, cache_dir=cache_dir, device=device))

    @classmethod
    def from_config(cls, config: ProblemConfig) -> MixedPrecisionProblem:
        """The problem of a validated :class:`~quant_envs.mixed_precision.config.ProblemConfig`."""
        if not isinstance(config, ProblemConfig):
            raise TypeError(f"config={config!r} must be a ProblemConfig, got {type(config).__name__}")
        problem = cls.__new__(cls)
        problem._build(config)
        return problem

    def _build(self, config: ProblemConfig) -> None:
        #: the validated arguments this problem was made from
        self.config = config
        self.bits = tuple(config.bits)
        self.budget_metric = config.budget_metric
        self.eval_split = config.eval_split
        self.eval_seed = config.eval_seed
        self.cache_size = config.cache_size
        self.keep_first_last_8bit = config.keep_first_last_8bit
        self.accelerator = check_hardware(config.hardware)
        self.hardware = self.accelerator.name
        # the task, its quantizable layers, retraining and the bounded evaluation cache
        self.evaluator = PolicyEvaluator.from_config(config)
        self._task = self.evaluator.task
        self.finetune_steps = self.evaluator.finetune_steps
        self.layers = self.evaluator.layers
        self.device = self.evaluator.device
        self.num_layers = len(self.layers)
        # costs, budget and masks: the torch-free model of the layers' shapes (checks the budget)
        self.cost_model = CostModel([layer.shape for layer in self.layers], config)
        self.weight_std = np.array([float(self._float_weight(i).std()) for i in range(self.num_layers)])
        cm = self.cost_model
        self.costs, self.allowed, self._min_completion = cm.costs, cm.allowed, cm._min_completion
        self.reference_cost, self.min_cost = cm.reference_cost, cm.min_cost
        self.budget, self.budget_fraction = cm.budget, cm.budget_fraction
        self._evaluations = self.evaluator.cache  # (policy, finetune_steps, split) -> Evaluation

    @property
    def task(self) -> Task:
        """The trained float network, its data and its retraining recipe."""
        return self._task

    # ---------------------------------------------------------------------------------- checks
    _check_hardware = staticmethod(check_hardware)  # moved to quant_envs.mixed_precision.config
    check_bits = staticmethod(check_bits)

    _check_bits = check_bits  # the former private name

    # ------------------------------------------------------------ costs (the cost model's)
    def layer_costs(self, metric: str) -> np.ndarray:
        """The [layers, w-bits, a-bits] cost table of ``metric``."""
        return self.cost_model.layer_costs(metric)

    def cost(self, policy: Policy) -> dict[str, float]:
        """Latency (s), energy (J) and size (B) of ``policy``."""
        return self.cost_model.cost(policy)

    def min_completion(self, metric: str, equal_bits: bool) -> np.ndarray:
        """[layers + 1]: the least cost of layers i.. over allowed choices (0 at the end)."""
        return self.cost_model.min_completion(metric, equal_bits)

    # -------------------------------------------------------------------------------- accuracy
    def _float_weight(self, i: int) -> torch.Tensor:
        return self.evaluator.float_weight(i)

    def fake_quant_model(self) -> FakeQuantModel:
        """The task's model wrapped for fake quantization (built once, shared between evaluations)."""
        return self.evaluator.fake_quant_model()

    def quantized_model(self, policy: Sequence[Sequence[int]], finetune_steps: int | None = None,
                        seed: int | None = None):
        """The task's model quantized with ``policy`` and retrained (a model shared between calls).

        ``seed`` seeds the retraining (default ``eval_seed``).
        """
        pol = self.check_policy(policy)
        steps = self.finetune_steps if finetune_steps is None else check_int("finetune_steps", finetune_steps, min_value=0)
        seed = self.eval_seed if seed is None else check_int("seed", seed, min_value=0)
        return self.evaluator.quantized_model(pol, steps, seed)

    def evaluate(self, policy: Sequence[Sequence[int]], finetune_steps: int | None = None,
                 split: str | None = None) -> Evaluation:
        """Accuracy and costs of ``policy`` (answered from the cache when seen before)."""
        pol = self.check_policy(policy)
        steps = self.finetune_steps if finetune_steps is None else check_int("finetune_steps", finetune_steps, min_value=0)
        split = self.eval_split if split is None else check_choice("split", split, EVAL_SPLITS)
        key = (pol, steps, split)
        hit = self._recall(key)
        if hit is not None:
            return self._cached_copy(hit)
        start = time.perf_counter()
        acc = self.evaluator.accuracy(pol, steps, split)
        return self._remember(key, self._evaluation(pol, steps, split, acc, time.perf_counter() - start))

    def evaluate_many(self, policies: Sequence[Sequence[Sequence[int]]], finetune_steps: int | None = None,
                      split: str | None = None) -> list[Evaluation]:
        """``[self.evaluate(p, finetune_steps, split) for p in policies]``: the same records
        (see :func:`~quant_envs.mixed_precision.evaluator.evaluate_many`)."""
        if type(self).evaluate is not MixedPrecisionProblem.evaluate:  # scored otherwise (a table's look-ups)
            return [self.evaluate(p, finetune_steps, split) for p in policies]
        return evaluator.evaluate_many(self, policies, finetune_steps, split)

    def evaluate_splits(self, policies: Sequence[Sequence[Sequence[int]]], splits: Sequence[str],
                        finetune_steps: int | None = None) -> list[dict[str, Evaluation]]:
        """Per policy, ``{split: Evaluation}`` from one retraining
        (see :func:`~quant_envs.mixed_precision.evaluator.evaluate_splits`)."""
        if type(self).evaluate is not MixedPrecisionProblem.evaluate:  # scored otherwise (a table's look-ups)
            return [{s: self.evaluate(p, finetune_steps, s) for s in splits} for p in policies]
        return evaluator.evaluate_splits(self, policies, splits, finetune_steps)

    def _cached_copy(self, hit: Evaluation) -> Evaluation:
        """What a cache hit returns: the cached record marked as cached."""
        return Evaluation(**{**hit.__dict__, "cached": True, "eval_time_s": 0.0})

    def _evaluation(self, pol: Policy, steps: int, split: str, accuracy: float, elapsed: float) -> Evaluation:
        """The record of ``pol`` scored ``accuracy`` on ``split`` (costs and budget use added)."""
        costs = self.cost(pol)
        frac = self.budget_fractions(costs)
        return Evaluation(
            policy=pol, accuracy=accuracy, float_accuracy=self.float_accuracy(split),
            budget_metric=self.budget_metric, budget=self.budget,
            budget_used=costs[self.budget_metric] / self.budget,
            **metric_fields(costs, frac),  # latency_s=, ..., latency_fraction=, ...
            finetune_steps=steps, split=split, eval_time_s=elapsed, cached=False,
        )

    # ------------------------------------------------- the evaluation cache (the evaluator's)
    #: the cache and counters (a TableProblem has its own, for its look-ups)
    _evaluations: EvaluationCache

    def _recall(self, key: tuple) -> Any:
        """Count a query; the cached evaluation of ``key`` (now the most recently used), or None."""
        return self._evaluations.recall(key)

    def _remember(self, key: tuple, result: Any) -> Any:
        """Count an evaluation that ran and cache it (LRU: the least recently used beyond
        ``cache_size`` is dropped); returns ``result``."""
        return self._evaluations.remember(key, result)

    @property
    def _cache(self) -> OrderedDict[tuple, Any]:
        return self._evaluations.entries

    @property
    def num_evaluations(self) -> int:
        """Evaluations that ran (cache misses)."""
        return self._evaluations.num_evaluations

    @num_evaluations.setter
    def num_evaluations(self, value: int) -> None:
        self._evaluations.num_evaluations = value

    @property
    def num_queries(self) -> int:
        """All calls of evaluate(), cache hits included."""
        return self._evaluations.num_queries

    @num_queries.setter
    def num_queries(self, value: int) -> None:
        self._evaluations.num_queries = value

    def cache_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this problem: its evaluation cache and counters (picklable)."""
        return self._evaluations.state()

    def load_cache_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`cache_state` returned (a resumed run then retrains nothing it had seen)."""
        self._evaluations.load_state(state)

    def float_accuracy(self, split: str | None = None) -> float:
        return self.evaluator.float_accuracy(self.eval_split if split is None else split)

    def final_evaluation(self, policy: Sequence[Sequence[int]], finetune_steps: int | None = None,
                         seeds: Sequence[int] = (0, 1, 2), split: str = "test") -> list[float]:
        """The final-evaluation protocol: ``policy`` retrained longer, once per seed, scored on ``split``.

        As the papers report a searched policy: retrained for ``finetune_steps`` mini-batches
        (default: the task's ``final_finetune_steps``; MNIST-1D 300, about 1.3 epochs) with the
        task's recipe, under each retraining seed in ``seeds`` (default 0, 1, 2, the same for every
        method, so methods are compared on equal terms), and evaluated on the test split. Returns
        one accuracy per seed; nothing is cached and the search's evaluation count is unchanged.
        """
        pol = self.check_policy(policy)
        steps = self.task.final_finetune_steps if finetune_steps is None else finetune_steps
        check_int("finetune_steps", steps, min_value=0)
        check_choice("split", split, EVAL_SPLITS)
        if isinstance(seeds, (str, bytes)) or not seeds:
            raise ValueError(f"seeds={seeds!r} is not allowed; expected a non-empty sequence of integers >= 0")
        return [self.task.evaluate(self.quantized_model(pol, steps, seed=check_int("seeds", s, min_value=0)), split)
                for s in seeds]


#: How many problems :func:`shared_problem` keeps for later callers, least recently used dropped
#: first. A problem holds its evaluation cache and a fake-quantized copy of the network (a few MB);
#: one still used by a live environment is shared whatever this bound (weak references).
SHARED_PROBLEMS = 16
#: How many built tasks (float network and data splits) :func:`shared_problem` keeps, least
#: recently used dropped first: problems that differ only in hardware, budget or retraining
#: settings share one task instead of loading their own copy.
SHARED_TASKS = 4

_SHARED: OrderedDict[tuple, MixedPrecisionProblem] = OrderedDict()
_LIVE: weakref.WeakValueDictionary[tuple, MixedPrecisionProblem] = weakref.WeakValueDictionary()
_SHARED_TASKS: OrderedDict[tuple, Task] = OrderedDict()


def _keep(cache: OrderedDict, key: tuple, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of numbers, strings, None, lists and dicts only (its repr is its identity)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def shared_problem(**config: Any) -> MixedPrecisionProblem:
    """A :class:`MixedPrecisionProblem` shared by every caller with the same configuration.

    Environments built in one process (e.g. the copies inside an SB3 ``DummyVecEnv``) then share
    one float model and one evaluation cache instead of retraining the same policy per copy.
    Memory stays bounded: the last :data:`SHARED_PROBLEMS` configurations are kept (and any still
    in use), and problems with the same task and task arguments share one built task (the last
    :data:`SHARED_TASKS` kept). Configurations holding a built ``Task`` object are never shared.
    """
    task = config.get("task", "mnist1d-cnn")
    task_kwargs = config.get("task_kwargs")
    if not isinstance(task, str) or not _plain(task_kwargs):
        # a built task, or task arguments holding arrays (a float_state): repr() would not tell them apart
        return MixedPrecisionProblem(**config)
    key = tuple(sorted((k, repr(v)) for k, v in config.items()))
    problem = _SHARED.get(key)
    if problem is None:
        problem = _LIVE.get(key)
    if problem is None:
        # the task does not depend on the hardware, budget or retraining; the cache directory
        # (argument or environment variable) decides which trained network is loaded
        task_key = (task, repr(sorted(task_kwargs.items()) if isinstance(task_kwargs, dict) else task_kwargs),
                    repr(config.get("cache_dir")), os.environ.get("QUANT_ENVS_CACHE"))
        built = _SHARED_TASKS.get(task_key)
        # a new task is built by the problem itself, after its arguments are checked
        problem = MixedPrecisionProblem(**config) if built is None else MixedPrecisionProblem(**{**config, "task": built})
        _keep(_SHARED_TASKS, task_key, problem.task, SHARED_TASKS)
        _LIVE[key] = problem
    _keep(_SHARED, key, problem, SHARED_PROBLEMS)
    return problem


def haq_final_action_wall(problem: MixedPrecisionProblem, policy: Sequence[Sequence[int]]) -> Policy:
    """HAQ's end-of-episode budget rule (``_final_action_wall`` of mit-han-lab/haq).

    Source: mit-han-lab/haq, ``lib/env/linear_quantize_env.py``, ``LinearQuantizeEnv._final_action_wall``
    (commit 20e4ed3, Apache-2.0). While the policy costs more than the budget (and more than the
    all-lowest-width policy), sweep the layers **last to first**; in each layer take one width off
    the **activations**, check the budget, then one off the **weights**, check again; stop as soon
    as the budget is met. HAQ lowers by one bit; here by one allowed width (the same for the
    default contiguous 2..8). Layers fixed by ``keep_first_last_8bit`` stay at 8 bits (HAQ resets
    them after every decrement, which leaves them unchanged too). Budget comparisons use the
    problem's float slack (``RELATIVE_SLACK``).
    """
    pol = problem.check_policy(policy)
    table = problem.layer_costs(problem.budget_metric)
    index = {b: j for j, b in enumerate(problem.bits)}
    w = [index[p[0]] for p in pol]
    a = [index[p[1]] for p in pol]
    fixed = {0, problem.num_layers - 1} if problem.keep_first_last_8bit else set()
    target = problem.budget * (1 + RELATIVE_SLACK)

    def current() -> float:
        return float(sum(table[i, w[i], a[i]] for i in range(problem.num_layers)))

    lowest = [(i, 0, 0) if i not in fixed else (i, w[i], a[i]) for i in range(problem.num_layers)]
    min_cost = float(sum(table[i, wi, ai] for i, wi, ai in lowest))
    cost = current()
    while min_cost < cost and target < cost:
        for i in reversed(range(problem.num_layers)):
            if i not in fixed and a[i] > 0:
                a[i] -= 1
                cost = current()
            if target >= cost:
                break
            if i not in fixed and w[i] > 0:
                w[i] -= 1
                cost = current()
            if target >= cost:
                break
    return tuple((problem.bits[wi], problem.bits[ai]) for wi, ai in zip(w, a))
