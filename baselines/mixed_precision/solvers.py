"""Non-RL solvers of the mixed-precision problem behind one interface, :func:`solve`.

Every method searches the space of the environment it is compared with (one width per layer, or
HAQ's (weight, activation) pairs), returns a feasible policy (budget respected), is deterministic
under ``seed`` and never asks for more than ``max_evaluations`` distinct policies' accuracies (the
reward evaluations; a policy already in the problem's cache costs no retraining but still counts
against the allowance, so a method's course does not depend on what the cache holds).

Methods:

* ``uniform`` -- PACT-style fixed bits: the widest uniform width within the budget (1 evaluation).
* ``random`` -- random search: policies drawn uniformly from the feasible set (exact rejection
  sampling over the grid; when feasible policies are too rare for that, layer by layer from the
  exact mask in a random layer order), best of ``max_evaluations``.
* ``greedy_sensitivity`` -- per-layer accuracy drop measured by evaluation (layer ``i`` alone at
  width ``b``, every other layer at the widest; by default post-training, ``sensitivity_finetune_steps
  =0``: a few retraining steps recover almost all of one layer's loss, leaving drops of one or two
  validation images, i.e. noise), made non-increasing in the width, then a greedy allocation: from
  all-widest, lower the layer with the least sensitivity increase per unit of cost saved until the
  policy fits, then raise the layer with the most sensitivity decrease per unit of cost added while
  it still fits. In two-step mode the weight and the activation drops are measured separately and
  added. The probes (over budget, at their own fidelity) count against the allowance and appear in
  the history; the answer is evaluated at the problem's fidelity.
* ``greedy_std`` -- the same greedy with a sensitivity from each layer's weight standard deviation
  (no evaluations before the final one): ``std_i^2 * (4^-w + 4^-a) / 2``, the noise power of a
  uniform quantizer whose step scales with the weights' spread, so wide-spread layers keep bits.
* ``hawq_v3`` -- HAWQ-V3 (Yao et al., ICML 2021) with HAWQ-V2's sensitivity (Dong et al., NeurIPS
  2020): Hutchinson Hessian traces of the float model's training loss, ``Omega_i(b) =
  Tr(H_i)/n_i * ||Q_b(W_i) - W_i||^2``, and an integer program (``scipy.optimize.milp``) choosing
  one width per layer with the least total Omega under the budget (see :mod:`.hessian`,
  :mod:`.ilp`). Only its answer is evaluated (1 evaluation).
* ``evolution`` -- a (mu + lambda) genetic search: feasible initial population (the uniform
  answer and uniform feasible samples), tournament selection, uniform crossover, per-layer
  mutation, repair to feasibility by projecting onto the exact mask in a random layer order,
  elitist survival of the best ``population``.
* ``regularized_evolution`` -- aging evolution (Real et al., AAAI 2019): tournament of ``sample``
  from a queue of ``population``, one layer's width mutated, the oldest member removed
  (:mod:`.regularized_evolution`).
* ``tpe``, ``cmaes`` -- Optuna's TPE and CMA-ES samplers with their library defaults, ask and tell
  (:mod:`.optuna_search`).
* ``enumeration`` -- the exact optimum: every feasible policy evaluated (refused with a
  ValueError when there are more than ``max_evaluations``, e.g. anything beyond digits-cnn).

A suggestion over the budget (evolution's offspring, regularised evolution's children, Optuna's
trials) is projected onto the feasible set by the exact masks and the projection is evaluated and
counted (:mod:`.suggestions`); random search samples feasible policies directly. On a table
(:class:`~quant_envs.mixed_precision.tables.problem.TableProblem`) ``hawq_v3`` reads the
sensitivities shipped with the table (:mod:`.table_hawq`) instead of differentiating a model.

Every method is one function ``fn(space, evaluate, **options) -> extras`` and one line of
:data:`SOLVERS` declaring its options (and whether it takes ``rng`` or ``seed``); :data:`METHODS`
is the registry's names. :func:`solve` returns a :class:`SearchResult` (a
:class:`baselines.result.SolveResult`); a method that asks for more evaluations than its allowance
is stopped there and its best policy so far comes back with ``success=False``, ``status=1``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from baselines.mixed_precision import optuna_search
from baselines.mixed_precision.ilp import solve_assignment_ilp
from baselines.mixed_precision.regularized_evolution import regularized_evolution
from baselines.mixed_precision.space import Choice, SearchSpace
from baselines.mixed_precision.table_hawq import table_omega
from baselines.result import Solver, SolveResult, registered
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.mixed_precision.problem import (
    METRIC_INFO,
    Evaluation,
    MixedPrecisionProblem,
    Policy,
)


class SearchResult(SolveResult):
    """The best policy a method found and what it took: a :class:`baselines.result.SolveResult`.

    Core fields and their older names (both work, for reading and writing)::
        x       policy           the best policy found, one (w_bits, a_bits) per layer; always within budget
        fun     accuracy         its accuracy (the objective, maximised), in [0, 1]
        nfev    num_evaluations  reward evaluations used: policies the problem had to retrain and
                                 evaluate (its cache misses during the call)
        nit     iterations       the search's steps: policies evaluated, in order (``len(history)``)
        success, status, message  False / 1 when the evaluation allowance ran out before the method's
                                 own stopping rule (a method that spends its allowance by design, like
                                 random search, succeeds)
        method, wall_time_s      the method's name; wall-clock time of the whole call, sensitivities
                                 included (s)

    Extras:
        evaluation: the best policy's :class:`~quant_envs.mixed_precision.problem.Evaluation`
            (accuracy, costs).
        history: every policy the method evaluated, in order: (policy, accuracy, cost in the budget
            metric's SI unit). All within budget and at the problem's ``finetune_steps`` except
            greedy_sensitivity's probes (all-widest but one layer, post-training by default), which
            measure sensitivities and are never the answer.
        extra: method-specific details (sensitivities, Hessian traces, ILP objective, ...), and
            ``policies_evaluated`` (distinct policies asked for, cache hits included: what the
            allowance limits), ``equal_bits``, ``max_evaluations``, ``seed``.
    """

    aliases: ClassVar[dict[str, str]] = {
        "policy": "x", "accuracy": "fun", "num_evaluations": "nfev", "iterations": "nit",
    }
    objective: ClassVar[str] = "accuracy of the quantized model after retraining, maximised"

    # for readers and type checkers only: bare annotations make no class attributes, so every
    # field (and alias) is still read from the dict by SolveResult.__getattr__
    x: Policy
    policy: Policy
    fun: float
    accuracy: float
    nfev: int
    num_evaluations: int
    nit: int
    iterations: int
    success: bool
    status: int
    message: str
    method: str
    wall_time_s: float
    evaluation: Evaluation
    history: list[tuple[Policy, float, float]]
    extra: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setdefault("history", [])  # the defaults of the earlier dataclass
        self.setdefault("extra", {})
        self.setdefault("nit", len(self["history"]))

    @property
    def cost(self) -> float:
        """The best policy's cost in the budget metric (SI units)."""
        return _metric_cost(self.evaluation)

    def summary(self) -> str:
        e = self.evaluation
        widths = " ".join(f"{w}" if w == a else f"{w}/{a}" for w, a in self.policy)
        line = (f"{self.method}: accuracy {self.accuracy:.4f} (float {e.float_accuracy:.4f}), "
                f"{e.budget_metric} {e.budget_used:.3f} of budget, {self.num_evaluations} evaluations, "
                f"{self.wall_time_s:.1f} s; bits [{widths}]")
        return line if self.success else f"{line}; {self.message}"


def _metric_cost(e: Evaluation) -> float:
    if hasattr(e, "budget_cost"):  # a table's evaluation carries its own metrics' cost (e.g. BOPs)
        return e.budget_cost
    return float(getattr(e, METRIC_INFO[e.budget_metric].cost_field))


class AllowanceExhausted(Exception):
    """Internal: the method asked for one evaluation more than it is allowed. :func:`solve` catches
    it and returns the best policy found so far with ``success=False``."""


class _Evaluator:
    """Counts distinct policies against the allowance and records the history."""

    def __init__(self, problem: MixedPrecisionProblem, space: SearchSpace, max_evaluations: int) -> None:
        self.problem, self.space, self.max_evaluations = problem, space, max_evaluations
        self.seen: dict[tuple[Policy, int], Evaluation] = {}
        self.history: list[tuple[Policy, float, float]] = []
        self.start_evaluations = problem.num_evaluations

    @property
    def remaining(self) -> int:
        return self.max_evaluations - len(self.seen)

    def evaluated(self, choice: Choice) -> bool:
        return (self.space.policy(choice), self.problem.finetune_steps) in self.seen

    def __call__(self, choice: Choice, finetune_steps: int | None = None) -> Evaluation:
        """Accuracy of ``choice`` at the problem's fidelity (or ``finetune_steps``, for probes)."""
        policy = self.space.policy(choice)
        key = (policy, self.problem.finetune_steps if finetune_steps is None else finetune_steps)
        hit = self.seen.get(key)
        if hit is not None:
            return hit
        if self.remaining <= 0:
            raise AllowanceExhausted
        evaluation = self.problem.evaluate(policy, finetune_steps=key[1])
        self.seen[key] = evaluation
        self.history.append((policy, evaluation.accuracy, _metric_cost(evaluation)))
        return evaluation

    def many(self, choices: Sequence[Choice]) -> list[Evaluation]:
        """``[self(c) for c in choices]`` at the problem's fidelity, the policies not seen before
        scored in one ``problem.evaluate_many`` call. As the loop would, it evaluates the new
        policies that fit the allowance, in order, then raises :class:`AllowanceExhausted` if
        more were asked for."""
        steps = self.problem.finetune_steps
        policies = [self.space.policy(c) for c in choices]
        new: list[Policy] = []
        for policy in policies:
            if (policy, steps) not in self.seen and policy not in new:
                new.append(policy)
        fits = new[:max(self.remaining, 0)]
        evaluate_many = getattr(self.problem, "evaluate_many", None)  # a table's problem may lack it
        records = (evaluate_many(fits, finetune_steps=steps) if evaluate_many is not None
                   else [self.problem.evaluate(p, finetune_steps=steps) for p in fits])
        for policy, evaluation in zip(fits, records):
            self.seen[policy, steps] = evaluation
            self.history.append((policy, evaluation.accuracy, _metric_cost(evaluation)))
        if len(fits) < len(new):
            raise AllowanceExhausted
        return [self.seen[p, steps] for p in policies]

    def best(self) -> Evaluation | None:
        """Highest accuracy among feasible policies at the problem's fidelity; ties to the cheaper,
        then the earlier one. None if no such policy was evaluated."""
        steps = self.problem.finetune_steps
        order = {k: n for n, k in enumerate(self.seen)}
        candidates = [(k, e) for k, e in self.seen.items() if e.within_budget and k[1] == steps]
        if not candidates:
            return None
        return min(candidates, key=lambda ke: (-ke[1].accuracy, ke[1].budget_used, order[ke[0]]))[1]


# ------------------------------------------------------------------------------------------ methods


def _uniform(space: SearchSpace, evaluate: _Evaluator) -> dict[str, Any]:
    choice = _uniform_choice(space)
    if choice is None:
        raise ValueError(f"no uniform width fits the budget ({space.problem.budget:.6g} in "
                         f"{space.problem.budget_metric}); widths tried: {list(space.problem.bits)}")
    evaluation = evaluate(choice)
    return {"bits": evaluation.policy[len(evaluation.policy) // 2][0]}


def _uniform_choice(space: SearchSpace) -> np.ndarray | None:
    """The widest uniform policy (fixed layers stay at 8 bits) within budget, as a choice vector."""
    p = space.problem
    for b in reversed(p.bits):
        policy = p.uniform_policy(b)
        if p.is_feasible(policy):
            return space.choice(policy)
    return None


def _feasible_samples(space: SearchSpace, rng: np.random.Generator, count: int,
                      sampler: str) -> tuple[list[np.ndarray], str]:
    """``count`` feasible choice vectors: exactly uniform (rejection) if feasible policies are common
    enough, else from the exact mask in a random layer order."""
    if sampler == "uniform":
        got = space.sample_uniform(rng, count)
        if len(got) == count:
            return got, "uniform"
        return got + [space.sample_masked(rng) for _ in range(count - len(got))], "uniform+mask"
    return [space.sample_masked(rng, random_order=sampler == "mask") for _ in range(count)], sampler


def _random(space: SearchSpace, evaluate: _Evaluator, rng: np.random.Generator,
            sampler: str = "uniform") -> dict[str, Any]:
    """Best of random feasible policies until the allowance is spent or no new policy turns up."""
    check_choice("sampler", sampler, ("uniform", "mask", "mask_in_order"))
    draws = 0
    used = sampler
    stale = 0
    while evaluate.remaining > 0 and stale < 20:
        batch, now = _feasible_samples(space, rng, evaluate.remaining, sampler)
        if now == "uniform+mask":  # feasible policies are too rare for rejection: stay with the mask
            sampler, used = "mask", now
        draws += len(batch)
        before = len(evaluate.seen)
        evaluate.many(batch)  # the batch is at most the allowance left: never exhausts it
        stale = 0 if len(evaluate.seen) > before else stale + 1
    return {"sampler": used, "draws": draws}


def _greedy(space: SearchSpace, sensitivity: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Lower from all-widest by least sensitivity per cost saved until feasible, then raise by most
    sensitivity decrease per cost added while feasible. Returns the choice and the moves made."""
    choice = np.array(space.top, dtype=int)
    cost = space.cost(choice)
    moves: list[tuple[int, int]] = []
    while cost > space.limit:  # lowering phase
        best = None
        for i in range(space.num_layers):
            cur = choice[i]
            saving = space.costs[i][cur] - space.costs[i]
            for k in np.flatnonzero(saving > 0):
                key = ((sensitivity[i][k] - sensitivity[i][cur]) / saving[k], -saving[k], i, k)
                best = key if best is None or key < best else best
        if best is None:
            raise ValueError("the greedy allocation cannot reach the budget")  # excluded by has_feasible
        _, _, i, k = best
        cost += float(space.costs[i][k] - space.costs[i][choice[i]])
        choice[i] = k
        moves.append((int(i), int(k)))
    while True:  # raising phase
        best = None
        for i in range(space.num_layers):
            cur = choice[i]
            gain = sensitivity[i][cur] - sensitivity[i]
            added = space.costs[i] - space.costs[i][cur]
            for k in np.flatnonzero((gain > 0) & (cost + added <= space.limit)):
                rate = gain[k] / added[k] if added[k] > 0 else np.inf
                key = (-rate, -gain[k], i, k)
                best = key if best is None or key < best else best
        if best is None:
            break
        _, _, i, k = best
        cost += float(space.costs[i][k] - space.costs[i][choice[i]])
        choice[i] = k
        moves.append((int(i), int(k)))
    if not space.feasible(choice):  # float round-off at the very edge of the budget
        choice = space.project(choice)
    return choice, moves


def _interpolate(bits: Sequence[int], measured: dict[int, float], top: int) -> np.ndarray:
    """Drop at every width from drops measured at some, linear in bits, 0 at the widest."""
    points = {top: 0.0, **measured}
    xs = sorted(points)
    return np.interp(bits, xs, [points[x] for x in xs])


def _greedy_sensitivity(space: SearchSpace, evaluate: _Evaluator, sensitivity_bits: Sequence[int] | None = None,
                        sensitivity_finetune_steps: int | None = 0) -> dict[str, Any]:
    p = space.problem
    probe_steps = p.finetune_steps if sensitivity_finetune_steps is None else check_int(
        "sensitivity_finetune_steps", sensitivity_finetune_steps, min_value=0)
    top = max(p.bits)
    lower = [b for b in p.bits if b < top]
    parts = ("w",) if space.equal_bits else ("w", "a")
    free = [i for i in range(space.num_layers) if space.sizes[i] > 1]
    per_width = len(free) * len(parts)
    if sensitivity_bits is None:  # all widths if the allowance permits, else an evenly spread subset
        n = min(len(lower), (evaluate.max_evaluations - 2) // max(per_width, 1))
        if n < 1:
            raise ValueError(
                f"max_evaluations={evaluate.max_evaluations} is too small for greedy_sensitivity: "
                f"it needs at least {per_width + 2} (the all-{top}-bit reference, one measurement per "
                f"layer{' and tensor' if len(parts) == 2 else ''} at one width, the final policy)")
        sensitivity_bits = [lower[j] for j in np.unique(np.round(np.linspace(0, len(lower) - 1, n)).astype(int))]
    else:
        sensitivity_bits = sorted({check_choice("sensitivity_bits", int(b), lower) for b in sensitivity_bits})
        need = per_width * len(sensitivity_bits) + 2
        if need > evaluate.max_evaluations:
            raise ValueError(f"max_evaluations={evaluate.max_evaluations} is too small for greedy_sensitivity "
                             f"with sensitivity_bits={sensitivity_bits}: it needs {need}")
    reference = evaluate(np.array(space.top), probe_steps)
    drops: dict[str, np.ndarray] = {part: np.zeros((space.num_layers, len(p.bits))) for part in parts}
    base = list(p.uniform_policy(top))
    for i in free:
        for part in parts:
            measured = {}
            for b in sensitivity_bits:
                policy = list(base)
                policy[i] = (b, b) if space.equal_bits else ((b, top) if part == "w" else (top, b))
                evaluation = evaluate(space.choice(tuple(policy)), probe_steps)
                measured[b] = reference.accuracy - evaluation.accuracy
            # a narrower width is never less sensitive: the running maximum from the widest down
            # removes measurement noise that would otherwise reward fewer bits
            drops[part][i] = np.maximum.accumulate(_interpolate(p.bits, measured, top)[::-1])[::-1]
    index = {b: j for j, b in enumerate(p.bits)}
    sens = []
    for i in range(space.num_layers):
        w = np.array([index[x] for x in space.widths[i][:, 0]])
        a = np.array([index[x] for x in space.widths[i][:, 1]])
        sens.append(drops["w"][i, w] + (drops["a"][i, a] if "a" in drops else 0.0))
    choice, moves = _greedy(space, sens)
    evaluate(choice)
    out: dict[str, Any] = {"sensitivity_bits": list(sensitivity_bits), "reference_accuracy": reference.accuracy,
                           "sensitivity_finetune_steps": probe_steps, "greedy_moves": len(moves)}
    if space.equal_bits:
        out["accuracy_drop"] = drops["w"]
    else:
        out["weight_accuracy_drop"], out["activation_accuracy_drop"] = drops["w"], drops["a"]
    return out


def _greedy_std(space: SearchSpace, evaluate: _Evaluator) -> dict[str, Any]:
    std = space.problem.weight_std
    sens = [std[i] ** 2 * (4.0 ** -space.widths[i][:, 0] + 4.0 ** -space.widths[i][:, 1]) / 2
            for i in range(space.num_layers)]
    choice, moves = _greedy(space, sens)
    evaluate(choice)
    return {"weight_std": std.copy(), "greedy_moves": len(moves)}


def _hawq_v3(space: SearchSpace, evaluate: _Evaluator, *, seed: int,
             hutchinson_samples: int = 16, hessian_data: int = 256, activations: bool | None = None,
             ilp_time_limit_s: float | None = None) -> dict[str, Any]:
    if hasattr(space.problem, "table"):  # a TableProblem: the sensitivities shipped with the table
        return _hawq_v3_table(space, evaluate, ilp_time_limit_s)
    # lazy: Hessian traces need torch; the other solvers (and table benchmarks) run without it
    from baselines.mixed_precision.hessian import hawq_sensitivities

    check_int("hutchinson_samples", hutchinson_samples, min_value=1)
    check_int("hessian_data", hessian_data, min_value=1)
    if activations is None:
        activations = not space.equal_bits  # HAWQ-V3's objective is over weights; pairs need both
    p = space.problem
    omega, traces = hawq_sensitivities(p, hutchinson_samples, hessian_data, seed, bool(activations))
    index = {b: j for j, b in enumerate(p.bits)}
    objective = [omega[i, [index[w] for w in space.widths[i][:, 0]], [index[a] for a in space.widths[i][:, 1]]]
                 for i in range(space.num_layers)]
    solution = solve_assignment_ilp(objective, space.costs, p.budget, space.feasible, ilp_time_limit_s)
    evaluate(solution.choice)
    return {
        "omega": omega, "ilp_objective": solution.objective, "ilp_status": solution.status,
        "ilp_message": solution.message, "weight_trace": traces.weight_trace,
        "weight_avg_trace": traces.weight_avg_trace, "activation_trace": traces.activation_trace,
        "activation_avg_trace": traces.activation_avg_trace, "activations": bool(activations),
        "hutchinson_samples": hutchinson_samples, "hessian_data": traces.data_size,
    }


def _hawq_v3_table(space: SearchSpace, evaluate: _Evaluator, ilp_time_limit_s: float | None) -> dict[str, Any]:
    p = space.problem
    omega, source = table_omega(p.table)  # type: ignore[attr-defined]  # a TableProblem; its pairs are (b, b)
    index = {b: j for j, b in enumerate(p.bits)}
    objective = [omega[i, [index[w] for w in space.widths[i][:, 0]]] for i in range(space.num_layers)]
    solution = solve_assignment_ilp(objective, space.costs, p.budget, space.feasible, ilp_time_limit_s)
    evaluate(solution.choice)
    return {"omega": omega, "omega_source": source, "ilp_objective": solution.objective,
            "ilp_status": solution.status, "ilp_message": solution.message}


def _evolution(space: SearchSpace, evaluate: _Evaluator, rng: np.random.Generator, population: int = 20,
               mutation_rate: float | None = None, crossover_rate: float = 0.5, tournament: int = 2,
               include_uniform: bool = True) -> dict[str, Any]:
    check_int("population", population, min_value=2)
    check_int("tournament", tournament, min_value=1)
    check_float("crossover_rate", crossover_rate, min_value=0.0, max_value=1.0)
    if mutation_rate is None:
        mutation_rate = max(1.0 / space.num_layers, 0.1)
    check_float("mutation_rate", mutation_rate, min_value=0.0, max_value=1.0)
    size = min(population, evaluate.max_evaluations)
    start: list[np.ndarray] = []
    uniform = _uniform_choice(space) if include_uniform else None
    if uniform is not None:
        start.append(uniform)
    samples, sampler = _feasible_samples(space, rng, 4 * size, "uniform")
    for c in samples:
        if len(start) == size:
            break
        if not any(np.array_equal(c, s) for s in start):
            start.append(c)
    pool = list(zip(evaluate.many(start), start))

    def fitness(item: tuple[Evaluation, np.ndarray]) -> tuple[float, float]:
        return (item[0].accuracy, -item[0].budget_used)

    generations = stale = 0
    while evaluate.remaining > 0 and stale < 10:
        children: list[np.ndarray] = []
        tries = 0
        while len(children) < size and tries < 20 * size:
            tries += 1
            parents = []
            for _ in range(2):
                entrants = rng.choice(len(pool), size=min(tournament, len(pool)), replace=False)
                parents.append(pool[max(entrants, key=lambda j: fitness(pool[j]))][1])
            child = parents[0].copy()
            if rng.random() < crossover_rate:
                take = rng.random(space.num_layers) < 0.5
                child[take] = parents[1][take]
            mutate = rng.random(space.num_layers) < mutation_rate
            for i in np.flatnonzero(mutate):
                child[i] = rng.integers(space.sizes[i])
            child = space.project(child, rng.permutation(space.num_layers))
            if evaluate.evaluated(child) or any(np.array_equal(child, c) for c in children):
                continue
            children.append(child)
        if not children:
            stale += 1
            continue
        stale = 0
        fits = children[:max(evaluate.remaining, 0)]  # new and distinct: one evaluation each
        pool.extend(zip(evaluate.many(fits), fits))
        pool = sorted(pool, key=fitness, reverse=True)[:size]  # elitist (mu + lambda) survival
        generations += 1
    return {"generations": generations, "population": size, "mutation_rate": mutation_rate,
            "initial_sampler": sampler}


def _enumeration(space: SearchSpace, evaluate: _Evaluator) -> dict[str, Any]:
    count = space.count_feasible(evaluate.max_evaluations)
    if count > evaluate.max_evaluations:
        raise ValueError(
            f"enumeration needs one evaluation per feasible policy: there are more than max_evaluations="
            f"{evaluate.max_evaluations} here; use a small task (digits-cnn), fewer bits, a tighter budget "
            f"or a larger max_evaluations")
    feasible = space.iter_feasible()
    while chunk := list(itertools.islice(feasible, 64)):  # evaluate_many over chunks of policies
        evaluate.many(chunk)
    return {"feasible_policies": count}


@dataclass(frozen=True)
class SearchSolver(Solver):
    """A registered method: its function and what :func:`solve` hands it.

    ``run(space, evaluate, [rng=...], [seed=...], **options)`` returns the method's extras; it gets
    ``rng`` (a numpy Generator seeded by ``seed``) and the integer ``seed`` only if it declares them,
    and only the ``options`` listed here (anything else is an :class:`UnknownOptionError`).
    ``min_evaluations`` is the least allowance it can work with.
    """

    min_evaluations: int = 1
    uses_rng: bool = False
    uses_seed: bool = False


#: The one registry of methods, in the order they are listed and run; adding a solver is one
#: function above and one line here.
SOLVERS: dict[str, SearchSolver] = {
    "uniform": SearchSolver(_uniform, ()),
    "random": SearchSolver(_random, ("sampler",), uses_rng=True),
    "greedy_sensitivity": SearchSolver(_greedy_sensitivity, ("sensitivity_bits", "sensitivity_finetune_steps")),
    "greedy_std": SearchSolver(_greedy_std, ()),
    "hawq_v3": SearchSolver(_hawq_v3, ("hutchinson_samples", "hessian_data", "activations", "ilp_time_limit_s"),
                                uses_seed=True),
    "evolution": SearchSolver(_evolution, ("population", "mutation_rate", "crossover_rate", "tournament",
                                               "include_uniform"), min_evaluations=2, uses_rng=True),
    "regularized_evolution": SearchSolver(regularized_evolution, ("population", "sample", "patience"),
                                          uses_rng=True),
    "tpe": SearchSolver(optuna_search.tpe, ("patience",), uses_rng=True),
    "cmaes": SearchSolver(optuna_search.cmaes, ("patience",), uses_rng=True),
    "enumeration": SearchSolver(_enumeration, ()),
}
MethodSpec = SearchSolver  # its name before the registries of the four problems were named alike

#: The methods' names (the registry's keys): ``--method`` choices, ``solve``'s ``method``.
METHODS: tuple[str, ...] = tuple(SOLVERS)


# ---------------------------------------------------------------------------------------- interface


def _resolve(problem_or_env: Any, equal_bits: bool | None) -> tuple[MixedPrecisionProblem, bool]:
    if isinstance(problem_or_env, MixedPrecisionProblem):
        return problem_or_env, True if equal_bits is None else bool(equal_bits)
    if hasattr(problem_or_env, "get_attr") and hasattr(problem_or_env, "num_envs"):  # an SB3 VecEnv
        problem = problem_or_env.get_attr("problem", [0])[0]
        two_steps = problem_or_env.get_attr("two_steps_per_layer", [0])[0]
    else:
        env = getattr(problem_or_env, "unwrapped", problem_or_env)
        problem, two_steps = getattr(env, "problem", None), getattr(env, "two_steps_per_layer", None)
    if not isinstance(problem, MixedPrecisionProblem) or two_steps is None:
        raise TypeError(f"problem_or_env must be a MixedPrecisionProblem or a MixedPrecisionEnv (gym-wrapped, "
                        f"or an SB3 VecEnv of them), got {type(problem_or_env).__name__}")
    env_equal = not two_steps
    if equal_bits is not None and bool(equal_bits) != env_equal:
        raise ValueError(f"equal_bits={equal_bits!r} contradicts the environment (two_steps_per_layer="
                         f"{two_steps}); a baseline searches the environment's own space: leave equal_bits=None")
    return problem, env_equal


def solve(problem_or_env: Any, method: str, max_evaluations: int = 200, seed: int = 0,
          equal_bits: bool | None = None, **options: Any) -> SearchResult:
    """Run a non-RL ``method`` on a mixed-precision problem and return its best feasible policy.

    Args:
        problem_or_env: a :class:`MixedPrecisionProblem`, or a ``MixedPrecisionEnv`` (also through
            ``gym.make`` wrappers, or an SB3 VecEnv of them): its problem is used and its step mode
            sets ``equal_bits``.
        method: one of :data:`METHODS`.
        max_evaluations: the allowance of reward evaluations (distinct policies whose accuracy is
            asked for).
        seed: seeds every random choice (numpy ``default_rng``, torch ``Generator``).
        equal_bits: search w == a per layer (the one-step environment) or any (w, a) pair (two
            steps per layer). Default: the environment's mode, or True for a bare problem.
        **options: method options, e.g. ``sampler`` (random), ``sensitivity_bits``
            (greedy_sensitivity), ``hutchinson_samples``, ``hessian_data``, ``activations``
            (hawq_v3), ``population``, ``mutation_rate``, ``crossover_rate``, ``tournament``,
            ``include_uniform`` (evolution).

    Returns:
        The best feasible policy evaluated (``x``) and its accuracy (``fun``); ``success=False``,
        ``status=1`` if the method ran out of its allowance before its own stopping rule.

    Raises:
        ValueError: an unknown method, an allowance too small for the method, a space with no
            feasible policy, (enumeration) more feasible policies than the allowance, or an
            allowance that ran out before any feasible policy was evaluated.
        UnknownOptionError: an option the method does not take (also a ValueError); the message
            lists the ones it does.
    """
    spec = registered(method, SOLVERS)
    max_evaluations = check_int("max_evaluations", max_evaluations, min_value=1)
    seed = check_int("seed", seed, min_value=0)
    if max_evaluations < spec.min_evaluations:
        raise ValueError(f"max_evaluations={max_evaluations} is too small for {method}; it needs at least "
                         f"{spec.min_evaluations}")
    problem, equal_bits = _resolve(problem_or_env, equal_bits)
    kwargs = spec.accepted(method, options)
    if spec.uses_rng:
        kwargs["rng"] = np.random.default_rng(seed)
    if spec.uses_seed:
        kwargs["seed"] = seed

    start = time.perf_counter()
    space = SearchSpace(problem, equal_bits)
    if not space.has_feasible:
        raise ValueError(
            f"no policy with {'equal weight and activation widths' if equal_bits else 'any widths'} fits "
            f"the budget {problem.budget:.6g} ({problem.budget_metric}); the cheapest costs "
            f"{space.min_next[0]:.6g}")
    evaluate = _Evaluator(problem, space, max_evaluations)
    try:
        extra = spec.run(space, evaluate, **kwargs)
        cut_short = False
    except AllowanceExhausted:  # the method asked for more than its allowance: keep what it found
        extra, cut_short = {}, True
    best = evaluate.best()
    wall = time.perf_counter() - start
    if best is None:  # only probes (greedy_sensitivity's) or over-budget policies were evaluated
        if cut_short:
            raise ValueError(f"the evaluation allowance (max_evaluations={max_evaluations}) ran out before {method} "
                             f"evaluated any policy within the budget; give a larger max_evaluations")
        raise ValueError(f"{method} evaluated no policy within the budget (max_evaluations={max_evaluations})")
    count = len(evaluate.seen)
    extra.update(policies_evaluated=count, equal_bits=equal_bits, max_evaluations=max_evaluations, seed=seed)
    if cut_short:
        status, message = 1, (f"the evaluation allowance (max_evaluations={max_evaluations}) ran out before {method} "
                              f"finished; x is the best of the {count} policies evaluated")
    else:
        status, message = 0, f"{method} finished: {count} of max_evaluations={max_evaluations} policies evaluated"
    return SearchResult(
        x=best.policy, fun=best.accuracy, success=status == 0, status=status, message=message,
        nit=len(evaluate.history), nfev=problem.num_evaluations - evaluate.start_evaluations, method=method,
        wall_time_s=wall, evaluation=best, history=evaluate.history, extra=extra,
    )
