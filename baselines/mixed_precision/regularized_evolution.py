"""Regularised (aging) evolution (Real, Aggarwal, Huang and Le, AAAI 2019) as a mixed-precision baseline.

The population is a queue of ``population`` policies, first filled with uniform feasible samples.
Each cycle draws ``sample`` members uniformly (without replacement), takes the best of them as the
parent, mutates one layer (drawn uniformly) to another of its widths (drawn uniformly), appends the
child and removes the *oldest* member, whatever its score: the aging that regularises the search.
Defaults are the paper's (P = 100, S = 25). A child over the budget is projected onto the feasible
set and the projection is the child (:mod:`baselines.mixed_precision.suggestions`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from baselines.mixed_precision.space import SearchSpace
from baselines.mixed_precision.suggestions import PATIENCE, Evaluate, evaluate_suggestion
from quant_envs.checks import check_int


def regularized_evolution(space: SearchSpace, evaluate: Evaluate, rng: np.random.Generator, population: int = 100,
                          sample: int = 25, patience: int = PATIENCE) -> dict[str, Any]:
    check_int("population", population, min_value=2)
    check_int("sample", sample, min_value=1)
    if sample > population:
        raise ValueError(f"sample={sample} is not allowed; expected 1 <= sample <= population={population}")
    check_int("patience", patience, min_value=1)
    queue: deque[tuple[float, np.ndarray]] = deque()
    stale = 0
    while len(queue) < population and evaluate.remaining > 0 and stale < patience:
        draw = space.sample_uniform(rng, 1)
        start = draw[0] if draw else space.sample_masked(rng)
        choice, evaluation, new = evaluate_suggestion(space, evaluate, start, rng)
        queue.append((float(evaluation.accuracy), choice))
        stale = 0 if new else stale + 1
    mutable = np.flatnonzero(space.sizes > 1)
    cycles = 0
    while evaluate.remaining > 0 and stale < patience and len(mutable):
        entrants = rng.choice(len(queue), size=min(sample, len(queue)), replace=False)
        parent = queue[max(entrants, key=lambda j: (queue[j][0], j))][1]  # ties: the younger one
        child = parent.copy()
        i = int(rng.choice(mutable))
        others = np.delete(np.arange(space.sizes[i]), child[i])
        child[i] = int(rng.choice(others))
        choice, evaluation, new = evaluate_suggestion(space, evaluate, child, rng)
        queue.append((float(evaluation.accuracy), choice))
        queue.popleft()
        cycles += 1
        stale = 0 if new else stale + 1
    return {"population": population, "sample": sample, "cycles": cycles}
