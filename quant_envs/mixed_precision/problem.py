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

import hw_sim
from hw_sim.metrics import METRIC_INFO, METRICS, Metric, metric_info  # noqa: F401  (re-exported)
from hw_sim.metrics import UNITS as METRIC_UNITS
from quant_envs.checks import check_bool, check_choice, check_float, check_int, check_mapping
from quant_envs.mixed_precision import evaluator
from quant_envs.mixed_precision.evaluator import check_device
from quant_envs.mixed_precision.features import LayerFacts

if TYPE_CHECKING:  # torch is imported when a problem is built, not with this module
    import torch

    from quant_envs.mixed_precision.quantize import FakeQuantModel
    from quant_envs.mixed_precision.tasks import Task

#: One (weight bits, activation bits) pair per quantizable layer.
Policy = tuple[tuple[int, int], ...]
#: the widths of an episode so far: None for a width not yet chosen
PartialPolicy = tuple[tuple[int | None, int | None], ...]

#: The widths a policy may use (the documented 2..8: the fake quantizer needs a sign bit and one more).
MIN_BITS, MAX_BITS = 2, 8

#: Relative slack when comparing summed costs with the budget (float round-off of the sums).
RELATIVE_SLACK = 1e-9


#: The default budget (``budget_fraction=None``) is the smallest multiple of ``DEFAULT_BUDGET_STEP``
#: of the all-8-bit cost, at least ``DEFAULT_BUDGET_FLOOR``, that leaves at least
#: ``DEFAULT_MIN_FEASIBLE`` feasible one-width-per-layer policies (every policy when there are
#: fewer), counted exactly (:meth:`MixedPrecisionProblem.count_feasible`). A fixed fraction cannot
#: serve every accelerator: 0.25 of the all-8-bit latency is infeasible on Bit Fusion and left
#: digits-cnn 4 feasible policies on bismo-edge. Networks too large to count (more than
#: ``COUNT_LIMIT`` choices in a half of the layers) get ``min_cost + DEFAULT_BUDGET_FLOOR x
#: (all-8-bit cost - min_cost)``.
DEFAULT_BUDGET_STEP = 0.05
DEFAULT_BUDGET_FLOOR = 0.25
DEFAULT_MIN_FEASIBLE = 1000
COUNT_LIMIT = 2_000_000


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


class MixedPrecisionProblem:
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
            float model, calibration and data stay on the CPU, batches move to the device. The
            fake quantizers equal torch's ops bit for bit on either; retraining on a GPU gives
            other (not bit-identical) accuracies than on the CPU, as any GPU training does.
    """

    #: the quantizable layers in execution order (``QuantLayer``; a table's units are ``TableLayer``)
    layers: Sequence[LayerFacts]

    def __init__(
        self,
        task: Any = "mnist1d-cnn",
        hardware: Any = "bismo-edge",
        bits: Iterable[int] = range(2, 9),
        budget_metric: str = "latency",
        budget_fraction: float | None = None,
        budget: float | None = None,
        finetune_steps: int | None = None,
        keep_first_last_8bit: bool = False,
        eval_split: str = "val",
        eval_seed: int = 0,
        cache_size: int = 4096,
        batch: int | None = None,
        task_kwargs: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: Any = "cpu",
    ) -> None:
        # lazy: the task and its layer shapes bring torch; the problem's module (and the environments') import without it
        from quant_envs.mixed_precision.layer_shapes import quantizable_layers
        from quant_envs.mixed_precision.tasks import Task, make_task

        self.bits = self.check_bits(bits)
        self.budget_metric = check_choice("budget_metric", budget_metric, METRICS)
        if finetune_steps is not None:
            check_int("finetune_steps", finetune_steps, min_value=0)
        self.eval_split = check_choice("eval_split", eval_split, ("train", "val", "test"))
        self.eval_seed = check_int("eval_seed", eval_seed, min_value=0)
        self.cache_size = check_int("cache_size", cache_size, min_value=0)
        self.keep_first_last_8bit = check_bool("keep_first_last_8bit", keep_first_last_8bit)
        if self.keep_first_last_8bit and 8 not in self.bits:
            raise ValueError(f"keep_first_last_8bit=True needs 8 among bits, got bits={list(self.bits)}")
        self.accelerator = self._check_hardware(hardware)
        self.hardware = self.accelerator.name
        self.device = check_device(device)

        # Checked before the task is built: a bad budget must not cost a float model's training.
        if budget is None:
            if budget_fraction is not None:  # None: the default, computed once the costs are known
                budget_fraction = check_float("budget_fraction", budget_fraction, min_value=0.0, min_inclusive=False)
        else:
            budget = check_float("budget", budget, min_value=0.0, min_inclusive=False)
        batch = None if batch is None else check_int("batch", batch, min_value=1)  # None: the accelerator's own
        task_kwargs = check_mapping("task_kwargs", task_kwargs)
        if isinstance(task, Task):
            self._task = task
        else:
            kwargs = dict(task_kwargs)
            if cache_dir is not None:
                kwargs.setdefault("cache_dir", cache_dir)
            self._task = make_task(task, **kwargs)
        self.finetune_steps = int(self.task.finetune_steps if finetune_steps is None else finetune_steps)

        self.layers = quantizable_layers(self.task.model, self.task.example_input())
        self.num_layers = len(self.layers)
        self.costs = hw_sim.CostTable([layer.shape for layer in self.layers],
                                      self.accelerator, bits=self.bits, batch=batch)
        self.weight_std = np.array([float(self._float_weight(i).std()) for i in range(self.num_layers)])

        # Per-layer restriction of the (w, a) grid: HAQ's fixed 8-bit first and last layers.
        nb = len(self.bits)
        self.allowed = np.ones((self.num_layers, nb, nb), dtype=bool)
        if self.keep_first_last_8bit:
            at8 = self.bits.index(8)
            for i in {0, self.num_layers - 1}:
                self.allowed[i] = False
                self.allowed[i, at8, at8] = True

        self._min_completion: dict[tuple[str, bool], np.ndarray] = {}
        # all-8-bit cost by metric (every layer at 8 bits, even when ``bits`` has no 8)
        eight = hw_sim.CostTable([layer.shape for layer in self.layers], self.costs.accelerator, bits=(8,),
                                 batch=self.costs.batch).policy_costs(np.full((self.num_layers, 2), 8))
        self.reference_cost = {m: getattr(eight, info.cost_field) for m, info in METRIC_INFO.items()}
        self.min_cost = float(self.min_completion(self.budget_metric, equal_bits=False)[0])
        if budget is None:
            if budget_fraction is None:
                budget_fraction = self.default_budget_fraction()
            self.budget_fraction = float(budget_fraction)
            self.budget = budget_fraction * self.reference_cost[self.budget_metric]
        else:
            self.budget = budget
            self.budget_fraction = self.budget / self.reference_cost[self.budget_metric]
        if self.budget < self.min_cost * (1 - RELATIVE_SLACK):
            ref = self.reference_cost[self.budget_metric]
            unit = METRIC_UNITS[self.budget_metric]
            raise ValueError(
                f"budget={self.budget:.6g} {unit} ({self.budget / ref:.4f} of the all-8-bit {self.budget_metric}) "
                f"is infeasible: the cheapest policy costs {self.min_cost:.6g} {unit} "
                f"({self.min_cost / ref:.4f} of all-8-bit); feasible budgets are >= {self.min_cost:.6g} {unit}, "
                f"i.e. budget_fraction >= {self.min_cost / ref:.4f}"
            )

        self._fq: FakeQuantModel | None = None
        self._cache: OrderedDict[tuple, Evaluation] = OrderedDict()
        self.num_evaluations = 0  # evaluations that ran (cache misses)
        self.num_queries = 0  # all calls of evaluate(), cache hits included

    @property
    def task(self) -> Task:
        """The trained float network, its data and its retraining recipe."""
        return self._task

    # ---------------------------------------------------------------------------------- checks
    @staticmethod
    def _check_hardware(hardware: Any):
        """An ``hw_sim.Accelerator`` from a profile name, a measured table's name or an instance."""
        if isinstance(hardware, hw_sim.Accelerator):
            return hardware
        names = sorted(hw_sim.PROFILES) + sorted(hw_sim.MEASURED)
        if not isinstance(hardware, str):
            raise TypeError(
                f"hardware={hardware!r} must be a profile name or an hw_sim.Accelerator, got "
                f"{type(hardware).__name__}"
            )
        if hardware not in names:
            raise ValueError(f"hardware={hardware!r} is not allowed; expected an hw_sim.Accelerator or one of: {', '.join(names)}")
        return hw_sim.get_accelerator(hardware)

    @staticmethod
    def check_bits(bits: Iterable[int]) -> tuple[int, ...]:
        """The widths as a sorted tuple; each an integer in 2..8 (the fake quantizer's range)."""
        if isinstance(bits, (str, bytes)) or not isinstance(bits, Iterable):
            raise TypeError(f"bits={bits!r} must be a list of integers in {MIN_BITS}..{MAX_BITS}, "
                            f"got {type(bits).__name__}")
        values = []
        for b in bits:
            try:
                values.append(check_int("bits", b, min_value=MIN_BITS, max_value=MAX_BITS))
            except TypeError:
                raise TypeError(f"bits={bits!r} must be a list of integers in {MIN_BITS}..{MAX_BITS}; "
                                f"{b!r} is a {type(b).__name__}") from None
            except ValueError:
                raise ValueError(f"bits={bits!r} is not allowed: {b} is outside {MIN_BITS}..{MAX_BITS}") from None
        if not values:
            raise ValueError(f"bits={bits!r} is not allowed; expected at least one width in {MIN_BITS}..{MAX_BITS}")
        return tuple(sorted(set(values)))

    _check_bits = check_bits  # the former private name

    def check_policy(self, policy: Sequence[Sequence[int]]) -> Policy:
        """Return ``policy`` as a tuple of (w, a) int pairs, or raise ValueError naming what is wrong."""
        try:
            pol = tuple((int(w), int(a)) for w, a in policy)
        except (TypeError, ValueError):
            raise ValueError(f"policy must be a sequence of (w_bits, a_bits) pairs, got {policy!r}") from None
        if len(pol) != self.num_layers:
            raise ValueError(f"policy has {len(pol)} layers; the task has {self.num_layers} quantizable layers")
        for i, (w, a) in enumerate(pol):
            if w not in self.bits or a not in self.bits:
                raise ValueError(f"policy[{i}]=({w}, {a}) is not allowed; widths must be in {list(self.bits)}")
            if not self.allowed[i, self.bits.index(w), self.bits.index(a)]:
                raise ValueError(f"policy[{i}]=({w}, {a}) is not allowed: layer {i} is fixed at 8 bits")
        return pol

    # ----------------------------------------------------------------------------------- costs
    def uniform_policy(self, b: int) -> Policy:
        """Every layer at ``b`` bits (fixed layers stay at 8)."""
        pol = [(b, b)] * self.num_layers
        if self.keep_first_last_8bit:
            pol[0] = pol[-1] = (8, 8)
        return tuple(pol)

    def layer_costs(self, metric: str) -> np.ndarray:
        """The [layers, w-bits, a-bits] cost table of ``metric``."""
        return getattr(self.costs, check_choice("metric", metric, METRICS))

    def cost(self, policy: Policy) -> dict[str, float]:
        """Latency (s), energy (J) and size (B) of ``policy``."""
        total = self.costs.policy_costs(np.array(policy, dtype=int))  # [L, 2] (w, a) pairs
        return {m: getattr(total, info.cost_field) for m, info in METRIC_INFO.items()}

    def is_feasible(self, policy: Policy) -> bool:
        return self.cost(policy)[self.budget_metric] <= self.budget * (1 + RELATIVE_SLACK)

    def allowed_grid(self, equal_bits: bool) -> np.ndarray:
        """The per-layer allowed (w, a) grid; ``equal_bits`` keeps only w == a (one step per layer)."""
        if not equal_bits:
            return self.allowed
        return self.allowed & np.eye(len(self.bits), dtype=bool)[None]

    def min_completion(self, metric: str, equal_bits: bool) -> np.ndarray:
        """[layers + 1]: the least cost of layers i.. over allowed choices (0 at the end)."""
        key = (metric, bool(equal_bits))
        if key not in self._min_completion:
            self._min_completion[key] = np.asarray(
                self.costs.min_completion_cost(metric, allowed=self.allowed_grid(equal_bits)))
        return self._min_completion[key]

    def allowed_pairs(self, layer: int, spent: float, equal_bits: bool, rest_min: float | None = None) -> np.ndarray:
        """The exact mask: the [w-bits, a-bits] grid of ``layer``'s pairs that keep the budget reachable.

        ``spent`` is the budget-metric cost of the layers already chosen; ``rest_min`` the least cost
        of the layers still open besides ``layer`` (default: layers ``layer + 1 ..``, the
        environments' order). A pair is allowed iff some completion of the open layers fits.
        """
        if rest_min is None:
            rest_min = float(self.min_completion(self.budget_metric, equal_bits)[layer + 1])
        table = self.layer_costs(self.budget_metric)[layer]
        fits = spent + table + rest_min <= self.budget * (1 + RELATIVE_SLACK)
        return self.allowed_grid(equal_bits)[layer] & fits

    def budget_fractions(self, costs: dict[str, float]) -> dict[str, float]:
        return {m: costs[m] / self.reference_cost[m] for m in METRICS}

    def _half_sums(self, equal_bits: bool) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Budget-metric costs of every choice for the first and (sorted) second half of the layers."""
        grid = self.allowed_grid(equal_bits)
        table = self.layer_costs(self.budget_metric)
        options = [table[i][grid[i]] for i in range(self.num_layers)]  # allowed costs per layer
        sizes = [len(o) for o in options]
        half = self.num_layers // 2
        if max(int(np.prod(sizes[:half], dtype=float)), int(np.prod(sizes[half:], dtype=float))) > COUNT_LIMIT:
            return None

        def sums(parts: list[np.ndarray]) -> np.ndarray:
            total = np.zeros(1)
            for costs in parts:
                total = (total[:, None] + costs[None, :]).reshape(-1)
            return total

        return sums(options[:half]), np.sort(sums(options[half:])), int(np.prod(sizes, dtype=object))

    def count_feasible(self, equal_bits: bool = True, budget: float | None = None) -> tuple[int, int]:
        """(policies within ``budget`` (default: the problem's), all allowed policies), counted exactly.

        Meet in the middle: the costs of every choice for each half of the layers are enumerated,
        one half sorted, and the pairs within budget counted with ``searchsorted``. Cheap up to
        ~14 layers x 7 widths with ``equal_bits`` (one width per layer); raises ValueError beyond
        ``COUNT_LIMIT`` choices per half.
        """
        halves = self._half_sums(equal_bits)
        if halves is None:
            raise ValueError(f"the task has {self.num_layers} layers: too many policies to count "
                             f"(more than {COUNT_LIMIT} choices in a half of the layers)")
        left, right, total = halves
        limit = (self.budget if budget is None else budget) * (1 + RELATIVE_SLACK)
        return int(np.searchsorted(right, limit - left, side="right").sum()), total

    def default_budget_fraction(self) -> float:
        """The default budget as a fraction of the all-8-bit cost (see ``DEFAULT_MIN_FEASIBLE``)."""
        ref = self.reference_cost[self.budget_metric]
        halves = self._half_sums(equal_bits=True)
        if halves is None:
            return (self.min_cost + DEFAULT_BUDGET_FLOOR * (ref - self.min_cost)) / ref
        left, right, total = halves
        need = min(DEFAULT_MIN_FEASIBLE, total)
        k = max(round(DEFAULT_BUDGET_FLOOR / DEFAULT_BUDGET_STEP), 1)
        while True:
            fraction = round(k * DEFAULT_BUDGET_STEP, 10)
            limit = fraction * ref * (1 + RELATIVE_SLACK)
            if int(np.searchsorted(right, limit - left, side="right").sum()) >= need:
                return fraction
            k += 1

    # -------------------------------------------------------------------------------- accuracy
    def _float_weight(self, i: int) -> torch.Tensor:
        import torch

        weight = self.task.model.get_submodule(self.layers[i].name).weight
        assert isinstance(weight, torch.Tensor)  # a quantizable layer's parameter
        return weight.detach()

    def fake_quant_model(self) -> FakeQuantModel:
        """The task's model wrapped for fake quantization (built once, shared between evaluations)."""
        if self._fq is None:
            # lazy: fake quantization is torch (see __init__)
            from quant_envs.mixed_precision.quantize import FakeQuantModel

            self._fq = FakeQuantModel(self.task.model, [layer.name for layer in self.layers],
                                      self.task.calibration_inputs()).to(self.device)
        return self._fq

    def quantized_model(self, policy: Sequence[Sequence[int]], finetune_steps: int | None = None,
                        seed: int | None = None):
        """The task's model quantized with ``policy`` and retrained (a model shared between calls).

        ``seed`` seeds the retraining (default ``eval_seed``).
        """
        pol = self.check_policy(policy)
        steps = self.finetune_steps if finetune_steps is None else check_int("finetune_steps", finetune_steps, min_value=0)
        seed = self.eval_seed if seed is None else check_int("seed", seed, min_value=0)
        fq = self.fake_quant_model()
        fq.reset_weights()
        model = fq.set_policy(pol)
        return self.task.finetune(model, steps, seed=seed)

    def evaluate(self, policy: Sequence[Sequence[int]], finetune_steps: int | None = None,
                 split: str | None = None) -> Evaluation:
        """Accuracy and costs of ``policy`` (answered from the cache when seen before)."""
        pol = self.check_policy(policy)
        steps = self.finetune_steps if finetune_steps is None else check_int("finetune_steps", finetune_steps, min_value=0)
        split = self.eval_split if split is None else check_choice("split", split, ("train", "val", "test"))
        key = (pol, steps, split)
        hit = self._recall(key)
        if hit is not None:
            return self._cached_copy(hit)
        start = time.perf_counter()
        acc = self.task.evaluate(self.quantized_model(pol, steps), split)
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

    def _recall(self, key: tuple) -> Any:
        """Count a query; the cached evaluation of ``key`` (now the most recently used), or None."""
        self.num_queries += 1
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
        return hit

    def _remember(self, key: tuple, result: Any) -> Any:
        """Count an evaluation that ran and cache it (LRU: the least recently used beyond
        ``cache_size`` is dropped); returns ``result``."""
        self.num_evaluations += 1
        if self.cache_size:
            self._cache[key] = result
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return result

    def cache_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this problem: its evaluation cache and counters (picklable)."""
        return {"_cache": self._cache, "num_evaluations": self.num_evaluations, "num_queries": self.num_queries}

    def load_cache_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`cache_state` returned (a resumed run then retrains nothing it had seen)."""
        self._cache.clear()
        self._cache.update(state["_cache"])
        self.num_evaluations = int(state["num_evaluations"])
        self.num_queries = int(state["num_queries"])

    def float_accuracy(self, split: str | None = None) -> float:
        return self.task.float_accuracy(self.eval_split if split is None else split)

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
        check_choice("split", split, ("train", "val", "test"))
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
