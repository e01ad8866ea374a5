"""The search space a mixed-precision solver walks: allowed choices per layer, costs, exact masks.

A solver searches the same space as the environment it is compared with:

* one step per layer (``equal_bits=True``): every layer takes one width for weights and
  activations, ``(b, b)``;
* two steps per layer (``equal_bits=False``): any allowed ``(w, a)`` pair.

A *choice vector* holds, per layer, an index into that layer's allowed ``(w, a)`` pairs
(:attr:`SearchSpace.pairs`), which are listed in ascending (w, a) order.

:func:`allowed_at_step` is the environments' exact mask (``MixedPrecisionProblem.allowed_pairs``,
written once in the problem model): a ``(w, a)`` pair of a layer is allowed iff some completion of
the layers still open fits the budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeAlias

import numpy as np

from quant_envs.mixed_precision.problem import RELATIVE_SLACK, MixedPrecisionProblem, Policy

# a choice vector (per layer, an index into that layer's pairs): the solvers build int arrays,
# callers may hand plain sequences
Choice: TypeAlias = np.ndarray | Sequence[int]


def allowed_at_step(problem: MixedPrecisionProblem, layer: int, spent: float, equal_bits: bool,
                    rest_min: float | None = None) -> np.ndarray:
    """The [w-bits, a-bits] bool grid of ``layer``'s pairs that keep the budget reachable.

    ``spent`` is the budget-metric cost of the layers already chosen; ``rest_min`` the least cost of
    the layers still open besides ``layer`` (default: layers ``layer + 1 ..``, the environments'
    left-to-right order, from ``problem.min_completion``). With ``equal_bits`` only ``w == a`` pairs
    are allowed. Same comparison as the environments (budget with a 1e-9 relative slack).
    """
    return problem.allowed_pairs(layer, spent, equal_bits, rest_min)


class SearchSpace:
    """The allowed (w, a) pairs of every layer with their budget-metric costs.

    Attributes:
        pairs: per layer, an int array [k, 2] of (w-index, a-index) into ``problem.bits``.
        widths: per layer, an int array [k, 2] of the (w_bits, a_bits) themselves.
        costs: per layer, the budget-metric cost (SI units) of each pair.
        layer_min: per layer, the cheapest pair's cost.
        top: per layer, the index of the widest pair (all-max-bits: the sensitivity reference).
    """

    def __init__(self, problem: MixedPrecisionProblem, equal_bits: bool) -> None:
        self.problem = problem
        self.equal_bits = bool(equal_bits)
        grid = problem.allowed_grid(self.equal_bits)
        table = problem.layer_costs(problem.budget_metric)
        bits = np.asarray(problem.bits)
        self.num_layers = problem.num_layers
        self.pairs = [np.argwhere(grid[i]) for i in range(self.num_layers)]
        self.widths = [bits[p] for p in self.pairs]
        self.costs = [table[i, p[:, 0], p[:, 1]] for i, p in enumerate(self.pairs)]
        self.layer_min = np.array([c.min() for c in self.costs])
        self.top = [int(np.lexsort((w[:, 1], w[:, 0]))[-1]) for w in self.widths]
        self.min_next = problem.min_completion(problem.budget_metric, self.equal_bits)
        self.limit = problem.budget * (1 + RELATIVE_SLACK)
        self.sizes = np.array([len(p) for p in self.pairs])

    # ------------------------------------------------------------------------ conversions
    def policy(self, choice: Choice) -> Policy:
        return tuple((int(self.widths[i][k, 0]), int(self.widths[i][k, 1])) for i, k in enumerate(choice))

    def choice(self, policy: Policy) -> np.ndarray:
        """Choice vector of ``policy`` (ValueError if a pair is outside this space)."""
        out = np.empty(self.num_layers, dtype=int)
        for i, (w, a) in enumerate(policy):
            hit = np.flatnonzero((self.widths[i][:, 0] == w) & (self.widths[i][:, 1] == a))
            if not len(hit):
                raise ValueError(f"policy[{i}]=({w}, {a}) is outside the search space "
                                 f"({'w == a' if self.equal_bits else 'any allowed (w, a)'})")
            out[i] = hit[0]
        return out

    def cost(self, choice: Choice) -> float:
        return float(sum(self.costs[i][k] for i, k in enumerate(choice)))

    def feasible(self, choice: Choice) -> bool:
        return self.problem.is_feasible(self.policy(choice))

    @property
    def has_feasible(self) -> bool:
        return bool(self.min_next[0] <= self.limit)

    def step_mask(self, layer: int, spent: float, rest_min: float | None = None) -> np.ndarray:
        """Bool mask over ``pairs[layer]`` of the choices that keep the budget reachable."""
        grid = allowed_at_step(self.problem, layer, spent, self.equal_bits, rest_min)
        p = self.pairs[layer]
        return grid[p[:, 0], p[:, 1]]

    # -------------------------------------------------------------------------- sampling
    def sample_uniform(self, rng: np.random.Generator, count: int, max_draws: int = 1 << 21) -> list[np.ndarray]:
        """Up to ``count`` choice vectors drawn uniformly from the feasible policies (exact).

        Rejection sampling from the uniform distribution over the whole grid: every feasible policy
        is equally likely. Returns fewer than ``count`` when ``max_draws`` candidates were not enough.
        """
        out: list[np.ndarray] = []
        drawn = 0
        batch = 8192
        while len(out) < count and drawn < max_draws:
            cand = np.stack([rng.integers(n, size=batch) for n in self.sizes], axis=1)  # [batch, L]
            cost = np.zeros(batch)
            for i in range(self.num_layers):
                cost += self.costs[i][cand[:, i]]
            out.extend(cand[cost <= self.limit])
            drawn += batch
        return [c for c in out[:count] if self.feasible(c)]

    def sample_masked(self, rng: np.random.Generator, random_order: bool = True) -> np.ndarray:
        """One feasible choice vector: layer by layer, uniformly among the choices the exact mask allows.

        In the environments' left-to-right order, or (``random_order``) in a random order of layers,
        which spreads the budget evenly instead of favouring the first layers.
        """
        order = rng.permutation(self.num_layers) if random_order else np.arange(self.num_layers)
        return self.project(np.zeros(self.num_layers, dtype=int), order, uniform_rng=rng)

    def project(self, choice: Choice, order: Choice | None = None,
                uniform_rng: np.random.Generator | None = None) -> np.ndarray:
        """Make ``choice`` feasible: visit layers in ``order`` (default left to right); keep each
        layer's pair if the exact mask allows it, else take the allowed pair of nearest cost (the
        cheaper one on a tie).

        A feasible ``choice`` is returned unchanged (its own remaining pairs are a completion). With
        ``uniform_rng`` every layer instead draws uniformly among its allowed pairs.
        """
        out = np.asarray(choice, dtype=int).copy()
        visit = np.arange(self.num_layers) if order is None else np.asarray(order, dtype=int)
        in_order = np.array_equal(visit, np.arange(self.num_layers))
        spent = 0.0
        for t, i in enumerate(visit):
            # the open layers' least cost: min_completion's suffix in layer order, else their minima
            rest_min = None if in_order else float(self.layer_min[visit[t + 1:]].sum())
            allowed = np.flatnonzero(self.step_mask(int(i), spent, rest_min))
            if uniform_rng is not None:
                out[i] = allowed[uniform_rng.integers(len(allowed))]
            elif out[i] not in allowed:
                gap = np.abs(self.costs[i][allowed] - self.costs[i][out[i]])
                out[i] = allowed[np.lexsort((self.costs[i][allowed], gap))[0]]
            spent += float(self.costs[i][out[i]])
        return out

    # ----------------------------------------------------------------------- enumeration
    def count_feasible(self, limit: int) -> int:
        """Number of feasible policies, counting stops at ``limit + 1`` (exact masks prune the tree)."""
        count = 0
        for _ in self.iter_feasible():
            count += 1
            if count > limit:
                break
        return count

    def iter_feasible(self) -> Iterator[np.ndarray]:
        """Every feasible choice vector, depth first in layer order (lexicographic)."""
        choice = np.zeros(self.num_layers, dtype=int)

        def walk(i: int, spent: float) -> Iterator[np.ndarray]:
            if i == self.num_layers:
                yield choice.copy()
                return
            for k in np.flatnonzero(self.step_mask(i, spent)):
                choice[i] = k
                yield from walk(i + 1, spent + float(self.costs[i][k]))

        yield from walk(0, 0.0)
