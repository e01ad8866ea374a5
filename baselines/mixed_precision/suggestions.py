"""How every suggesting method turns a suggestion into a reward evaluation (one rule for all).

A method that proposes policies freely (Optuna's samplers, regularised evolution, the (mu + lambda)
evolution's offspring) may propose one over the budget. Such a suggestion is **projected** onto the
feasible set by the problem's exact masks (:meth:`SearchSpace.project`: the layers are visited in
an order drawn from the method's seeded generator; a layer keeps its width if the mask allows it,
else takes the allowed width of nearest cost), and the projected policy is what is evaluated, counted
and told back to the method as the suggestion's score. A feasible suggestion is unchanged. So every
policy a method evaluates is within budget and every answer is feasible.

An evaluation is a *distinct* policy: a suggestion whose projection was evaluated before costs
nothing (its score is told again). A method stops when its allowance is spent or after
``patience`` suggestions in a row brought no new policy (the small tables have fewer feasible
policies than the largest allowance).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from baselines.mixed_precision.space import Choice, SearchSpace

#: Suggestions in a row that brought no new policy before a method gives up (every method alike).
PATIENCE = 200


class Evaluate(Protocol):
    """What a method sees of :func:`baselines.mixed_precision.solve`'s evaluator."""

    max_evaluations: int

    @property
    def remaining(self) -> int: ...

    def evaluated(self, choice: Choice) -> bool: ...

    def __call__(self, choice: Choice) -> Any: ...


def evaluate_suggestion(space: SearchSpace, evaluate: Evaluate, suggestion: Choice,
                        rng: np.random.Generator) -> tuple[np.ndarray, Any, bool]:
    """(projected choice, its evaluation, whether it was a new policy) of ``suggestion``."""
    choice = space.project(np.asarray(suggestion, dtype=int), rng.permutation(space.num_layers))
    new = not evaluate.evaluated(choice)
    return choice, evaluate(choice), new
