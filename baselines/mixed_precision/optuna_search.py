"""Optuna's samplers as mixed-precision baselines: TPE and CMA-ES (budgeted), NSGA-II (Pareto track).

Every layer's width is one integer parameter ``u<i>`` (an index into the layer's allowed widths,
ascending: the widths are ordinal, which CMA-ES needs; a categorical parameter would send CMA-ES
to its random fallback). The study uses the ask-and-tell interface with the sampler's library
defaults and ``seed``; a suggestion is projected onto the feasible set and the projected policy's
score is told (:mod:`baselines.mixed_precision.suggestions`: the rule every method follows).

* ``tpe`` -- :class:`optuna.samplers.TPESampler` (Bergstra et al., NeurIPS 2011; Optuna's defaults:
  10 random start-up trials, univariate Parzen estimators).
* ``cmaes`` -- :class:`optuna.samplers.CmaEsSampler` (Hansen's CMA-ES through the ``cmaes``
  package; Optuna's defaults: one random start-up trial, integer parameters rounded).

The NSGA-II entrant of the Pareto track is :func:`nsga2_front_search` (two objectives, no budget),
used by :mod:`baselines.mixed_precision.pareto`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from baselines.mixed_precision.space import SearchSpace
from baselines.mixed_precision.suggestions import PATIENCE, Evaluate, evaluate_suggestion


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # a declared dependency; a clear message if an environment lacks it
        raise ImportError("the tpe, cmaes and nsga2 baselines need optuna (pip install 'optuna>=4,<6' cmaes)") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    return optuna


def _distributions(sizes: np.ndarray) -> dict[str, Any]:
    optuna = _optuna()
    return {f"u{i}": optuna.distributions.IntDistribution(0, int(n) - 1) for i, n in enumerate(sizes)}


def _sampler(name: str, seed: int) -> Any:
    optuna = _optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
    raise ValueError(f"sampler={name!r} is not allowed; expected one of ['tpe', 'cmaes', 'nsga2']")


def _ask_tell(space: SearchSpace, evaluate: Evaluate, rng: np.random.Generator, sampler_name: str,
              patience: int) -> dict[str, Any]:
    optuna = _optuna()
    seed = int(rng.integers(2**31 - 1))  # the sampler's seed, drawn from the run's seed
    study = optuna.create_study(direction="maximize", sampler=_sampler(sampler_name, seed))
    dists = _distributions(space.sizes)
    trials = projected = stale = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CMA-ES's notes on integer rounding, one per trial
        while evaluate.remaining > 0 and stale < patience:
            trial = study.ask(dists)
            suggestion = np.array([trial.params[f"u{i}"] for i in range(space.num_layers)])
            choice, evaluation, new = evaluate_suggestion(space, evaluate, suggestion, rng)
            study.tell(trial, float(evaluation.accuracy))
            trials += 1
            projected += int(not np.array_equal(choice, suggestion))
            stale = 0 if new else stale + 1
    return {"trials": trials, "projected_suggestions": projected, "sampler": type(study.sampler).__name__,
            "optuna_version": optuna.__version__}


def tpe(space: SearchSpace, evaluate: Evaluate, rng: np.random.Generator, patience: int = PATIENCE) -> dict[str, Any]:
    return _ask_tell(space, evaluate, rng, "tpe", patience)


def cmaes(space: SearchSpace, evaluate: Evaluate, rng: np.random.Generator, patience: int = PATIENCE) -> dict[str, Any]:
    return _ask_tell(space, evaluate, rng, "cmaes", patience)


def nsga2_front_search(sizes: np.ndarray, objectives: Callable[[np.ndarray], tuple[float, float]],
                       max_evaluations: int, seed: int, patience: int = PATIENCE) -> list[np.ndarray]:
    """NSGA-II (Deb et al., 2002; Optuna's defaults: population 50) on ``objectives(choice) ->
    (score maximised, cost minimised)`` over every width-index vector (no budget).

    Returns the distinct choices evaluated, in order (a repeat is told its score again, not
    counted), at most ``max_evaluations``; stops early after ``patience`` repeats in a row.
    """
    optuna = _optuna()
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler("nsga2", seed))
    dists = _distributions(np.asarray(sizes))
    seen: dict[tuple[int, ...], tuple[float, float]] = {}
    order: list[np.ndarray] = []
    stale = 0
    while len(order) < max_evaluations and stale < patience:
        trial = study.ask(dists)
        choice = np.array([trial.params[f"u{i}"] for i in range(len(sizes))])
        key = tuple(choice.tolist())
        if key in seen:
            stale += 1
        else:
            seen[key] = objectives(choice)
            order.append(choice)
            stale = 0
        study.tell(trial, list(seen[key]))
    return order
