"""The mixed-precision problem's cost and feasibility model: torch-free, from layer shapes alone.

:class:`CostModel` prices every (weight bits, activation bits) choice of every layer on an
``hw_sim`` accelerator (``hw_sim.CostTable``), sets the budget (a fraction of the all-8-bit cost,
an absolute one, or the default search of :meth:`FeasibilityModel.default_budget_fraction`), and
answers which partial policies can still meet it (exact masks from the minimum completion cost)
and how many policies fit (counted exactly). It needs the layers' ``hw_sim.LayerShape``s and a
:class:`~quant_envs.mixed_precision.config.ProblemConfig`, never a network: a baseline, a table
builder or a notebook can cost policies without torch.

:class:`FeasibilityModel` holds what is written against the model's interface only (``bits``,
``allowed``, ``budget``, ``layer_costs``, ``min_completion``, ``cost``): masks, counts, the
default budget search. :class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem` (which
composes a ``CostModel`` with the policy evaluation) and the table benchmark's ``TableProblem``
share it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import hw_sim
from hw_sim.metrics import METRIC_INFO, METRICS
from hw_sim.metrics import UNITS as METRIC_UNITS
from quant_envs.checks import check_choice
from quant_envs.mixed_precision.config import DEFAULTS_V1, ProblemConfig, check_hardware

__all__ = ["COUNT_LIMIT", "DEFAULT_BUDGET_FLOOR", "DEFAULT_BUDGET_STEP", "DEFAULT_MIN_FEASIBLE", "RELATIVE_SLACK",
           "CostModel", "FeasibilityModel", "PartialPolicy", "Policy"]

#: One (weight bits, activation bits) pair per quantizable layer.
Policy = tuple[tuple[int, int], ...]
#: the widths of an episode so far: None for a width not yet chosen
PartialPolicy = tuple[tuple[int | None, int | None], ...]

#: Relative slack when comparing summed costs with the budget (float round-off of the sums).
RELATIVE_SLACK = 1e-9


#: The default budget (``budget_fraction=None``) is the smallest multiple of ``DEFAULT_BUDGET_STEP``
#: of the all-8-bit cost, at least ``DEFAULT_BUDGET_FLOOR``, that leaves at least
#: ``DEFAULT_MIN_FEASIBLE`` feasible one-width-per-layer policies (every policy when there are
#: fewer), counted exactly (:meth:`FeasibilityModel.count_feasible`). A fixed fraction cannot
#: serve every accelerator: 0.25 of the all-8-bit latency is infeasible on Bit Fusion and left
#: digits-cnn 4 feasible policies on bismo-edge. Networks too large to count (more than
#: ``COUNT_LIMIT`` choices in a half of the layers) get ``min_cost + DEFAULT_BUDGET_FLOOR x
#: (all-8-bit cost - min_cost)``.
DEFAULT_BUDGET_STEP = 0.05
DEFAULT_BUDGET_FLOOR = 0.25
DEFAULT_MIN_FEASIBLE = 1000
COUNT_LIMIT = 2_000_000


class FeasibilityModel:
    """Masks, counts and the default budget search, written against the cost model's interface.

    A subclass provides ``bits``, ``num_layers``, ``keep_first_last_8bit``, ``allowed``
    ([layers, w-bits, a-bits] bool), ``budget``, ``budget_metric``, ``reference_cost``,
    ``min_cost`` and the methods ``layer_costs``, ``cost`` and ``min_completion``.
    """

    bits: tuple[int, ...]
    num_layers: int
    keep_first_last_8bit: bool
    allowed: np.ndarray
    budget: float
    budget_metric: str
    reference_cost: dict[str, float]
    min_cost: float

    def layer_costs(self, metric: str) -> np.ndarray:
        raise NotImplementedError

    def cost(self, policy: Policy) -> dict[str, float]:
        raise NotImplementedError

    def min_completion(self, metric: str, equal_bits: bool) -> np.ndarray:
        raise NotImplementedError

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

    def uniform_policy(self, b: int) -> Policy:
        """Every layer at ``b`` bits (fixed layers stay at 8)."""
        pol = [(b, b)] * self.num_layers
        if self.keep_first_last_8bit:
            pol[0] = pol[-1] = (8, 8)
        return tuple(pol)

    def is_feasible(self, policy: Policy) -> bool:
        return self.cost(policy)[self.budget_metric] <= self.budget * (1 + RELATIVE_SLACK)

    def allowed_grid(self, equal_bits: bool) -> np.ndarray:
        """The per-layer allowed (w, a) grid; ``equal_bits`` keeps only w == a (one step per layer)."""
        if not equal_bits:
            return self.allowed
        return self.allowed & np.eye(len(self.bits), dtype=bool)[None]

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


class CostModel(FeasibilityModel):
    """Costs, budget and feasibility of policies for layers of the given shapes on one accelerator.

    Args:
        shapes: the quantizable layers' ``hw_sim.LayerShape`` in execution order.
        config: the problem's configuration; only ``hardware``, ``bits``, ``budget_metric``,
            ``budget_fraction``, ``budget``, ``keep_first_last_8bit`` and ``batch`` are used
            (default: :data:`~quant_envs.mixed_precision.config.DEFAULTS_V1`'s).

    Raises ``ValueError`` stating the feasible range when the budget is below the cheapest policy.
    """

    def __init__(self, shapes: Sequence[hw_sim.LayerShape], config: ProblemConfig = DEFAULTS_V1) -> None:
        if not isinstance(config, ProblemConfig):
            raise TypeError(f"config={config!r} must be a ProblemConfig, got {type(config).__name__}")
        self.config = config
        self.shapes = list(shapes)
        self.num_layers = len(self.shapes)
        self.bits = tuple(config.bits)
        self.budget_metric = config.budget_metric
        self.keep_first_last_8bit = config.keep_first_last_8bit
        self.accelerator = check_hardware(config.hardware)
        self.hardware = self.accelerator.name
        budget, budget_fraction, batch = config.budget, config.budget_fraction, config.batch
        self.costs = hw_sim.CostTable(self.shapes, self.accelerator, bits=self.bits, batch=batch)

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
        eight = hw_sim.CostTable(self.shapes, self.costs.accelerator, bits=(8,),
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

    def layer_costs(self, metric: str) -> np.ndarray:
        """The [layers, w-bits, a-bits] cost table of ``metric``."""
        return getattr(self.costs, check_choice("metric", metric, METRICS))

    def cost(self, policy: Policy) -> dict[str, float]:
        """Latency (s), energy (J) and size (B) of ``policy``."""
        total = self.costs.policy_costs(np.array(policy, dtype=int))  # [L, 2] (w, a) pairs
        return {m: getattr(total, info.cost_field) for m, info in METRIC_INFO.items()}

    def min_completion(self, metric: str, equal_bits: bool) -> np.ndarray:
        """[layers + 1]: the least cost of layers i.. over allowed choices (0 at the end)."""
        key = (metric, bool(equal_bits))
        if key not in self._min_completion:
            self._min_completion[key] = np.asarray(
                self.costs.min_completion_cost(metric, allowed=self.allowed_grid(equal_bits)))
        return self._min_completion[key]
