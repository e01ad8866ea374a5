"""Per-problem adapters of ``train.py compare``: how each problem's runs are set up, run and scored.

An adapter knows, for the environment ids of one problem,

* how to build the problem instance from the environment arguments (:meth:`ProblemAdapter.prepare`,
  which raises ``ValueError`` / ``TypeError`` on bad arguments before any run);
* which solvers it can run (``baselines.<problem>.METHODS``) and which by default;
* the objective in the problem's own unit and its direction, and how a solver's answer and an
  agent's run are scored in it (:meth:`ProblemAdapter.run`, which turns a failure into a record).

Problems and their objectives:

* mixed precision (:class:`MixedPrecisionAdapter`): test accuracy after the final retraining
  (fraction, higher is better) of the policy each run found; the table id runs a regret study
  against the table's exact optimum (:class:`TableAdapter`);
* compander (:class:`CompanderAdapter`): SQNR in dB (higher is better) of the quantizer on the
  environment's source and number of levels;
* FEEL (:class:`FeelAllocationAdapter`, :class:`FeelTrainingAdapter`): total training time in s
  (lower is better) on one scenario: the closed-form time for the allocation ids, the simulator's
  measured time to the target for the training ids;
* CVT (:class:`CVTAdapter`): CVT energy over the reference energy, E/E* (lower is better);
* mixed precision on several accelerators (:class:`MultiHardwareAdapter`): the validation accuracy
  of the best policy found per device, averaged over the devices (fraction, higher is better).

An agent run on one of these (all but the first) trains the agent (its YAML hyperparameters) on the
environment for at most ``max_evaluations`` episodes or ``timesteps`` steps; its objective is
its best episode's (every training episode, and one deterministic episode of the trained
policy from reset seed = the run's seed). A solver run solves the same instance with the run's
seed. The learnability benchmark (``benchmarks/bench_learnability.py``) scores its rows with the
objective and solver functions of this module.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

import hw_sim
import quant_envs
from agents import AGENTS, check_compatible, make_agent, run_defaults
from agents.compare_plan import CompareConfig
from agents.records import ComparisonRun, ObjectiveRun
from agents.runs import make_vec_env
from agents.training import train
from baselines import compander as compander_solvers
from baselines import cvt as cvt_solvers
from baselines import feel as feel_solvers
from baselines import mixed_precision as mp_solvers
from baselines.mixed_precision.regret import TABLE_METHODS
from quant_envs.cvt.reference import cached_reference_energy
from quant_envs.mixed_precision.unwrap import mixed_precision_env

#: Retraining seeds of mixed precision's final evaluation: the same for every method and run.
FINAL_SEEDS = (0, 1, 2)


def entry_module(env_id: str) -> str:
    """The module of ``env_id``'s entry point (``quant_envs.compander.env``); ValueError if unknown."""
    if env_id not in gym.registry:
        raise ValueError(f"env_id={env_id!r} is not a registered environment; expected one of: "
                         f"{', '.join(sorted(quant_envs.ENV_IDS))}")
    entry = gym.registry[env_id].entry_point
    return entry.split(":")[0] if isinstance(entry, str) else str(getattr(entry, "__module__", ""))


class ProblemAdapter:
    """What ``compare`` needs to know about one problem (subclasses fill in the class attributes)."""

    name: ClassVar[str]
    #: The record type of this problem's runs.csv rows.
    record_type: ClassVar[type] = ObjectiveRun
    #: The record field that scores a run, its unit and direction.
    value_field: ClassVar[str] = "objective"
    unit: ClassVar[str] = ""
    objective_label: ClassVar[str] = "objective"
    higher_is_better: ClassVar[bool] = True
    default_agents: ClassVar[tuple[str, ...]] = ("ppo",)
    default_seeds: ClassVar[int] = 10
    #: compare.json keys that must match for ``resume`` to keep earlier runs.
    resume_keys: ClassVar[tuple[str, ...]] = ("env_id", "env_kwargs", "max_evaluations", "timesteps", "hyperparams")

    def handles(self, env_id: str) -> bool:
        raise NotImplementedError

    def methods(self, env_id: str) -> tuple[str, ...]:
        """The solvers this problem can run (``baselines.<problem>.METHODS``, or those that fit ``env_id``)."""
        raise NotImplementedError

    def default_baselines(self, env_id: str) -> tuple[str, ...]:
        return self.methods(env_id)

    def agents_for(self, env_id: str) -> tuple[str, ...]:
        """The agents run when none are named."""
        return self.default_agents

    def prepare(self, config: CompareConfig, out: Path) -> dict[str, Any]:
        """The JSON-ready settings every run shares (instance, budgets); bad arguments raise now."""
        raise NotImplementedError

    def check_agents(self, config: CompareConfig, action_space: Any) -> None:
        """ValueError unless every agent of ``config`` (default: :attr:`default_agents`) can act in ``action_space``."""
        for algo in self.agents_for(config.env_id) if config.agents is None else config.agents:
            if algo in AGENTS:  # an unknown name is reported with the allowed ones by the caller
                check_compatible(algo, action_space)

    def run(self, kind: str, method: str, seed: int, settings: Mapping[str, Any]) -> Any:
        """One run as a record of :attr:`record_type`; a failure is a record with its error, not a raise."""
        raise NotImplementedError

    def describe(self, settings: Mapping[str, Any]) -> str:
        """One sentence naming the instance (for the table's header)."""
        return f"{settings['env_id']} with {settings['env_kwargs'] or 'its registered arguments'}"


# ------------------------------------------------------------------------------ mixed precision
MIXED_PRECISION_IDS = ("quant_envs/MixedPrecision-v1", "quant_envs/MixedPrecisionContinuous-v1",
                       "quant_envs/MixedPrecision-v0", "quant_envs/MixedPrecisionContinuous-v0")
DEFAULT_BASELINES = ("uniform", "random", "greedy_std", "greedy_sensitivity", "hawq_v3", "evolution")
#: The table benchmark: ``compare`` on it is a regret study against the table's exact optimum.
TABLE_ENV_ID = "quant_envs/MixedPrecisionTable-v0"
#: The same table benchmark with HAQ's continuous action: the same regret study (the solvers search
#: the table; each agent runs on the id its action space needs).
TABLE_IDS = (TABLE_ENV_ID, "quant_envs/MixedPrecisionTableContinuous-v0")


def _search(kind: str, method: str, seed: int, cfg: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Run one search; return (result fields, the best policy, the problem it was searched on)."""
    if kind == "agent":
        summary = train(env_id=cfg["env_id"], algo=method, timesteps=cfg["timesteps"], seed=seed,
                        env_kwargs={**cfg["env_kwargs"], "share_problem": False},
                        hyperparams=cfg["hyperparams"].get(method), out=Path(cfg["out"]) / "runs" / f"{method}-s{seed}",
                        checkpoint_freq=cfg["timesteps"], max_evaluations=cfg["max_evaluations"],
                        progress_bar=False, test_best=True, verbose=False)
        best = summary["best"]
        env = gym.make(cfg["env_id"], **cfg["env_kwargs"])  # shared problem: the float model is loaded once
        fields = {"val_accuracy": best["accuracy"], "test_accuracy": summary["best_test_accuracy"],
                  "budget_used": best["budget_used"], "reward_evaluations": summary["reward_evaluations"]}
        return fields, best["policy"], mixed_precision_env(env).problem

    env = gym.make(cfg["env_id"], **{**cfg["env_kwargs"], "share_problem": False})
    result = mp_solvers.solve(env, method, max_evaluations=cfg["max_evaluations"], seed=seed)
    problem = mixed_precision_env(env).problem
    fields = {"val_accuracy": result.accuracy, "test_accuracy": problem.evaluate(result.policy, split="test").accuracy,
              "budget_used": result.evaluation.budget_used, "reward_evaluations": result.num_evaluations}
    return fields, [list(p) for p in result.policy], problem


def run_one(kind: str, method: str, seed: int, cfg: Mapping[str, Any]) -> ComparisonRun:
    """One (method, seed) of a mixed-precision comparison, searched then finally evaluated; a failure
    is a record, not a raise.

    A top-level function so worker processes can run it. The searched policy is retrained for
    ``final_finetune_steps`` under each of :data:`FINAL_SEEDS` and scored on the test split
    (``MixedPrecisionProblem.final_evaluation``); ``final_test_accuracy`` is their mean.
    """
    import torch  # lazy: the CLI imports this module; torch is imported by the runs only

    torch.set_num_threads(1)
    start = time.perf_counter()

    def record(**outcome: Any) -> ComparisonRun:  # from_dict: numpy numbers and lists become plain types
        return ComparisonRun.from_dict({"method": method, "kind": kind, "seed": seed, **outcome,
                                        "wall_time_s": time.perf_counter() - start}, f"run {method} seed {seed}")

    try:
        fields, policy, problem = _search(kind, method, seed, cfg)
        steps = problem.task.final_finetune_steps if cfg.get("final_finetune_steps") is None else cfg["final_finetune_steps"]
        finals = problem.final_evaluation(policy, steps, seeds=FINAL_SEEDS)
        return record(**fields, status="ok", final_test_accuracy=float(np.mean(finals)),
                      final_test_accuracies=[round(a, 6) for a in finals], final_finetune_steps=steps, policy=policy)
    except Exception as exc:  # reported in runs.csv and the table; the other runs go on
        return record(status="failed", error=_error_text(exc))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


class MixedPrecisionAdapter(ProblemAdapter):
    """Mixed precision on a live network: final test accuracy (fraction) of each run's best policy."""

    name = "mixed_precision"
    record_type = ComparisonRun
    value_field = "final_test_accuracy"
    unit = "fraction"
    objective_label = "final test accuracy"
    higher_is_better = True
    default_agents = ("maskable_ppo",)
    resume_keys = ("env_id", "env_kwargs", "max_evaluations", "timesteps", "hyperparams", "final_steps")

    def handles(self, env_id: str) -> bool:
        return env_id in MIXED_PRECISION_IDS

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(mp_solvers.METHODS)

    def default_baselines(self, env_id: str) -> tuple[str, ...]:
        return DEFAULT_BASELINES

    def agents_for(self, env_id: str) -> tuple[str, ...]:
        return ("ddpg_haq",) if "Continuous" in env_id else self.default_agents  # HAQ's agent for its Box(1,) ids

    def prepare(self, config: CompareConfig, out: Path) -> dict[str, Any]:
        env_kwargs = dict(config.env_kwargs)
        probe = gym.make(config.env_id, **env_kwargs)  # bad env_kwargs fail now; the float model is trained once
        self.check_agents(config, probe.action_space)
        steps_per_episode = mixed_precision_env(probe).num_steps
        problem = mixed_precision_env(probe).problem
        probe.close()
        final_steps = (problem.task.final_finetune_steps if config.final_finetune_steps is None
                       else config.final_finetune_steps)
        instance = (f"{config.env_id}, {problem.task.name} on {problem.hardware}, {problem.budget_metric} budget "
                    f"{problem.budget / problem.reference_cost[problem.budget_metric]:.3f} of all-8-bit, "
                    f"finetune_steps={problem.finetune_steps}; float accuracy val "
                    f"{problem.float_accuracy('val'):.4f}, test {problem.float_accuracy('test'):.4f}")
        return {"instance": instance, "env_id": config.env_id, "env_kwargs": env_kwargs, "max_evaluations": config.max_evaluations,
                "out": str(out), "timesteps": config.timesteps or 20 * config.max_evaluations * steps_per_episode,
                "hyperparams": dict(config.hyperparams), "final_finetune_steps": config.final_finetune_steps,
                "final_steps": final_steps, "final_seeds": list(FINAL_SEEDS)}

    def run(self, kind: str, method: str, seed: int, settings: Mapping[str, Any]) -> ComparisonRun:
        return run_one(kind, method, seed, settings)

    def describe(self, settings: Mapping[str, Any]) -> str:
        return str(settings["instance"])  # the task, hardware, budget and float accuracies (see prepare)


class TableAdapter(ProblemAdapter):
    """Mixed precision on a table of every policy's accuracy: best-so-far regret against the exact
    optimum (``agents.comparison.compare_table`` runs it; it takes seconds, so it has no resume)."""

    name = "mixed_precision_table"
    record_type = ComparisonRun
    unit = "accuracy points"
    objective_label = "regret"
    higher_is_better = False
    default_agents = ("maskable_ppo",)
    default_seeds = 20

    def handles(self, env_id: str) -> bool:
        return env_id in TABLE_IDS

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(TABLE_METHODS)


# ---------------------------------------------------------------------------- objective problems
def _horizon(env: gym.Env) -> int:
    """Steps of one episode (at most): the registered horizon, the environment's own, else 1."""
    spec_steps = getattr(env.spec, "max_episode_steps", None)
    own = getattr(env.unwrapped, "max_steps", None) or getattr(env.unwrapped, "max_rounds", None)
    return int(spec_steps or own or 1)


def run_episode(env: gym.Env, seed: int, act: Callable[[Any], Any],
                options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Play one episode from ``reset(seed=seed, options=options)`` with ``act(obs)``; return its final ``info``."""
    obs, info = env.reset(seed=seed, options=options)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        done = terminated or truncated
    return info


class ObjectiveAdapter(ProblemAdapter):
    """A problem scored by one objective of an episode's final ``info`` (see the module docstring)."""

    #: Options passed to every ``solve`` call of this problem (e.g. a tolerance).
    solver_options: ClassVar[dict[str, Any]] = {}

    def objective(self, info: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
        """The objective of an episode that ended with ``info`` (in :attr:`unit`)."""
        raise NotImplementedError

    def solve(self, env: Any, method: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int | None, Any]:
        """(objective, evaluations, solution) of solver ``method`` on ``env`` (unwrapped, just reset with ``seed``)."""
        raise NotImplementedError

    def instance_kwargs(self, env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The environment arguments that fix the instance every run is scored on (default: as given)."""
        return env_kwargs

    def context(self, env: Any, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """JSON-ready facts of the instance that scoring needs (e.g. a reference energy)."""
        return {}

    def prepare(self, config: CompareConfig, out: Path) -> dict[str, Any]:
        env_kwargs = self.instance_kwargs(config.env_id, dict(config.env_kwargs))
        probe = gym.make(config.env_id, **env_kwargs)  # bad env_kwargs fail now, before any run
        try:
            self.check_agents(config, probe.action_space)
            probe.reset(seed=0)
            horizon = _horizon(probe)
            context = self.context(probe.unwrapped, env_kwargs)
        finally:
            probe.close()
        return {"env_id": config.env_id, "env_kwargs": env_kwargs, "max_evaluations": config.max_evaluations,
                "timesteps": config.timesteps or config.max_evaluations * horizon, "out": str(out),
                "hyperparams": dict(config.hyperparams), "unit": self.unit, "context": context}

    def run(self, kind: str, method: str, seed: int, settings: Mapping[str, Any]) -> ObjectiveRun:
        import torch  # lazy: the CLI imports this module; torch is imported by the runs only

        torch.set_num_threads(1)
        start = time.perf_counter()

        def record(**outcome: Any) -> ObjectiveRun:
            return ObjectiveRun.from_dict({"method": method, "kind": kind, "seed": seed, "unit": self.unit, **outcome,
                                           "wall_time_s": time.perf_counter() - start}, f"run {method} seed {seed}")

        try:
            if kind == "agent":
                value, episodes, steps = self.train_agent(method, seed, settings)
                return record(status="ok", objective=value, evaluations=episodes, timesteps=steps)
            env = gym.make(settings["env_id"], **settings["env_kwargs"])
            env.reset(seed=seed)
            value, evaluations, solution = self.solve(env.unwrapped, method, seed, settings)
            env.close()
            flat = None if solution is None else [float(v) for v in np.ravel(np.asarray(solution, dtype=float))]
            return record(status="ok", objective=float(value), evaluations=evaluations, solution=flat)
        except Exception as exc:  # reported in runs.csv and the table; the other runs go on
            return record(status="failed", error=_error_text(exc))

    def better(self, a: float, b: float) -> bool:
        """Whether objective ``a`` beats ``b`` (NaN never does)."""
        if math.isnan(a):
            return False
        return math.isnan(b) or (a > b if self.higher_is_better else a < b)

    def episode_group(self, info: Mapping[str, Any]) -> str:
        """Which group an episode counts in (one group, except per device on several devices)."""
        return ""

    def final_episodes(self, settings: Mapping[str, Any]) -> list[dict[str, Any] | None]:
        """The reset options of the trained policy's deterministic episodes (default: one, no options)."""
        return [None]

    def aggregate(self, values: Mapping[str, list[float]]) -> float:
        """An agent run's score from its episodes' objectives by group: the best episode's."""
        return self.best(v for group in values.values() for v in group)

    def best(self, values: Any) -> float:
        best = math.nan
        for v in values:
            best = v if self.better(v, best) else best
        return float(best)

    def train_agent(self, algo: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int, int]:
        """Train ``algo`` (its YAML hyperparameters for the id, ``settings["hyperparams"][algo]`` over
        them) for at most ``max_evaluations`` episodes or ``timesteps`` steps, then play the
        deterministic episodes of :meth:`final_episodes` from reset seed ``seed``; return
        (:meth:`aggregate` of every episode's objective, episodes, timesteps)."""
        from stable_baselines3.common.callbacks import (
            BaseCallback,  # lazy: SB3 imports torch (see run)
        )


        env_id, env_kwargs = settings["env_id"], dict(settings["env_kwargs"])
        adapter, budget = self, int(settings["max_evaluations"])
        values: dict[str, list[float]] = {}

        def add(info: Mapping[str, Any]) -> None:
            values.setdefault(adapter.episode_group(info), []).append(adapter.objective(info, settings))

        class EveryEpisode(BaseCallback):  # the objective of every finished episode; stops at the budget
            episodes = 0

            def _on_step(self) -> bool:
                for done, info in zip(self.locals["dones"], self.locals["infos"]):
                    if done and self.episodes < budget:
                        self.episodes += 1
                        add(info)
                return self.episodes < budget

        venv = make_vec_env(env_id, run_defaults(algo, env_id).get("n_envs", 1), seed, env_kwargs)
        try:
            model = make_agent(algo, venv, env_id=env_id, seed=seed, verbose=0,
                               **dict(settings["hyperparams"].get(algo) or {}))
            recorder = EveryEpisode()
            model.learn(int(settings["timesteps"]), callback=recorder)
        finally:
            venv.close()
        env = gym.make(env_id, **env_kwargs)
        finals = self.final_episodes(settings)
        for options in finals:
            if algo == "maskable_ppo":  # the environment's own masks, as in training
                def act(obs: Any) -> Any:
                    return model.predict(obs, deterministic=True, action_masks=env.unwrapped.action_masks())[0]  # type: ignore[attr-defined]
            else:
                def act(obs: Any) -> Any:
                    return model.predict(obs, deterministic=True)[0]
            add(run_episode(env, seed, act, options))
        env.close()
        return self.aggregate(values), recorder.episodes + len(finals), int(model.num_timesteps)


class CompanderAdapter(ObjectiveAdapter):
    """Companding / scalar quantizers: SQNR (dB) on the environment's source and number of levels."""

    name = "compander"
    unit = "dB"
    objective_label = "SQNR"
    higher_is_better = True

    def handles(self, env_id: str) -> bool:
        return entry_module(env_id) == "quant_envs.compander.env"

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(compander_solvers.METHODS)

    def objective(self, info: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
        return float(info["sqnr_db"])

    def solve(self, env: Any, method: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int | None, Any]:
        if method == "spline_compander" and hasattr(env, "segments"):  # the environment's own spline family
            return spline_solver(env, seed), None, None
        result = compander_solvers.solve(type(env.source).name, method, env.levels)
        return float(result.sqnr_db), getattr(result, "nfev", None), getattr(result, "x", None)

    def describe(self, settings: Mapping[str, Any]) -> str:
        return (f"{super().describe(settings)}; objective: "
                "SQNR in dB of the quantizer at the episode's end (agents) or of the solver's quantizer")


class FeelAllocationAdapter(ObjectiveAdapter):
    """FEEL bandwidth and level allocation: total training time T (s) on one scenario."""

    name = "feel_allocation"
    unit = "s"
    objective_label = "training time T"
    higher_is_better = False

    def handles(self, env_id: str) -> bool:
        return entry_module(env_id) in ("quant_envs.feel.env", "quant_envs.feel.env_v2") and "Allocation" in env_id

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(feel_solvers.METHODS)

    def default_baselines(self, env_id: str) -> tuple[str, ...]:
        return ("ao", "equal_bandwidth", "fixed_levels")  # brute force is the ground truth for small K only

    def instance_kwargs(self, env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
        # one scenario for every run: without scenario_seed each reset draws another (the agent's
        # best episode and a solver's answer would be on different scenarios)
        return {"scenario_seed": 0, **env_kwargs} if env_kwargs.get("scenario_seed") is None else env_kwargs

    def objective(self, info: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
        return float(info["total_time"])

    def solve(self, env: Any, method: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int | None, Any]:
        result = feel_solvers.solve(env.scenario, method)
        return float(result.total_time), result.evaluations, np.concatenate([result.levels, result.bandwidth])

    def describe(self, settings: Mapping[str, Any]) -> str:
        return (f"{settings['env_id']} with {settings['env_kwargs']}; objective: total training time T in s "
                "(rounds x round latency) of the allocation, on this one scenario")


class FeelTrainingAdapter(ObjectiveAdapter):
    """FEEL training episodes: the simulator's measured time (s) to the target; a solver's levels
    (snapped to the environment's level menu) are held every round."""

    name = "feel_training"
    unit = "s"
    objective_label = "time to target"
    higher_is_better = False

    def handles(self, env_id: str) -> bool:
        return entry_module(env_id) == "quant_envs.feel.env" and "Training" in env_id

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(m for m in feel_solvers.METHODS if m != "brute_force")

    def default_baselines(self, env_id: str) -> tuple[str, ...]:
        return ("ao", "fixed_levels")

    def context(self, env: Any, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {"target_gap": env.target_gap, "target_accuracy": env.target_accuracy}

    def objective(self, info: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
        # an episode cut off by the round limit never reached the target: infinitely slow
        target = settings["context"]
        reached = (info["gap"] <= target["target_gap"] if target["target_gap"] is not None
                   else info["accuracy"] >= target["target_accuracy"])
        return float(info["elapsed_time"]) if reached else math.inf

    def solve(self, env: Any, method: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int | None, Any]:
        levels = feel_solvers.solve(env.scenario, method).levels
        return self.objective(feel_training_episode(env, seed, levels, snap=True), settings), None, levels

    def describe(self, settings: Mapping[str, Any]) -> str:
        return (f"{super().describe(settings)}; objective: "
                "the simulator's elapsed training time in s until the target (inf: not reached in the round "
                "limit); a solver's levels, snapped to the level menu, are held every round")


class CVTAdapter(ObjectiveAdapter):
    """Centroidal Voronoi tessellations: E/E*, the energy over the reference CVT energy."""

    name = "cvt"
    unit = "E/E*"
    objective_label = "energy ratio"
    higher_is_better = False
    solver_options = {"tol": 1e-8}

    def handles(self, env_id: str) -> bool:
        return entry_module(env_id).startswith("quant_envs.cvt.")

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(cvt_solvers.METHODS)

    def context(self, env: Any, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        reference = getattr(env, "reference_energy", None)
        if reference is None:  # the v0 ids report E / E0 only: E* as the v1 ids compute it

            reference = cached_reference_energy(env.problem, env_kwargs.get("density", "linear"))
        return {"reference_energy": float(reference)}

    def objective(self, info: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
        return float(info["energy"]) / settings["context"]["reference_energy"]

    def solve(self, env: Any, method: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int | None, Any]:
        # from the episode's starting generators, as the agent starts
        result = cvt_solvers.solve(env.problem, method, seed=seed, z0=env.generators, **self.solver_options)
        return (float(result.energy) / settings["context"]["reference_energy"], getattr(result, "nfev", None),
                getattr(result, "x", None))

    def describe(self, settings: Mapping[str, Any]) -> str:
        return (f"{super().describe(settings)}; objective: "
                f"E/E*, the CVT energy over the reference energy E* = {settings['context']['reference_energy']:.6g}; "
                "solvers start from the generators of the episode with reset seed = the run's seed")


class MultiHardwareAdapter(ObjectiveAdapter):
    """Mixed precision on several accelerators (live networks): the validation accuracy of the best
    feasible policy found for each device of ``hardware``, averaged over the devices (a fraction).

    A solver searches each device on its own (``max_evaluations`` each); an agent trains one policy
    on the environment (devices drawn per episode) and scores, per device, its best episode there
    (training episodes and one deterministic episode pinned to the device), averaged. There is no
    final retraining: the accuracies are the searches' own rewards.
    """

    name = "mixed_precision_multi_hardware"
    unit = "fraction"
    objective_label = "device-mean val. accuracy"
    higher_is_better = True
    default_agents = ("maskable_ppo",)

    def handles(self, env_id: str) -> bool:
        return entry_module(env_id) == "quant_envs.mixed_precision.multi_hardware"

    def methods(self, env_id: str) -> tuple[str, ...]:
        return tuple(mp_solvers.METHODS)

    def default_baselines(self, env_id: str) -> tuple[str, ...]:
        return DEFAULT_BASELINES

    def instance_kwargs(self, env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
        if env_kwargs.get("table") is not None:
            raise ValueError(f"env_kwargs table={env_kwargs['table']!r} is not allowed for a comparison on {env_id}: "
                             "the solvers search live networks; compare on quant_envs/MixedPrecisionTable-v0 "
                             "with hardware=<profile> for a regret study per device")
        return env_kwargs

    def context(self, env: Any, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        names = [getattr(h, "name", None) for h in env.hardware]
        if any(isinstance(h, hw_sim.AcceleratorFamily) or n not in hw_sim.PROFILES for h, n in zip(env.hardware, names)):
            raise ValueError(f"hardware={[str(n) for n in names]} is not allowed for a comparison: each device is "
                             f"pinned by its profile name; expected hw_sim profiles ({', '.join(hw_sim.PROFILES)})")
        return {"devices": names}

    def objective(self, info: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
        return float(info["accuracy"])

    def episode_group(self, info: Mapping[str, Any]) -> str:
        return str(info["hardware"])

    def final_episodes(self, settings: Mapping[str, Any]) -> list[dict[str, Any] | None]:
        return [{"hardware": d} for d in settings["context"]["devices"]]

    def aggregate(self, values: Mapping[str, list[float]]) -> float:
        return float(np.mean([self.best(values[d]) for d in values]))

    def solve(self, env: Any, method: str, seed: int, settings: Mapping[str, Any]) -> tuple[float, int | None, Any]:
        accuracies, evaluations = [], 0
        for device in settings["context"]["devices"]:
            env.reset(seed=seed, options={"hardware": device})
            result = mp_solvers.solve(env.inner, method, max_evaluations=settings["max_evaluations"], seed=seed)
            accuracies.append(float(result.accuracy))
            evaluations += int(result.num_evaluations)
        return float(np.mean(accuracies)), evaluations, None

    def describe(self, settings: Mapping[str, Any]) -> str:
        return (f"{super().describe(settings)} on devices "
                f"{', '.join(settings['context']['devices'])}; objective: the validation accuracy of the best "
                "feasible policy found for each device, averaged over the devices (no final retraining)")


# ---------------------------------------------------------------------------- scoring functions
def spline_solver(env: Any, seed: int = 0) -> float:
    """SQNR (dB) of the spline compander of the environment's family (degree, segments, fit) at its support."""
    x_max = env._reference()[0]
    return _spline_solver_db(type(env.source).name, env.levels, env.degree, env.segments, env.fit, x_max)


@functools.lru_cache(maxsize=8)  # a pure function of its arguments, and each solve searches for a second
def _spline_solver_db(source: str, levels: int, degree: int, segments: int, fit: str, x_max: float) -> float:
    return float(compander_solvers.spline_compander(source, levels, degree=degree, segments=segments, fit=fit, support=x_max).sqnr_db)


def feel_solver_time(env: Any, method: str = "ao") -> float:
    """Total training time (s) of FEEL solver ``method`` on the environment's current scenario."""
    return float(feel_solvers.solve(env.scenario, method).total_time)


def feel_training_time(env: Any, seed: int, levels: Sequence[int] | np.ndarray, snap: bool = False) -> float:
    """Measured elapsed time (s) of a FeelTraining episode from reset ``seed`` holding ``levels``
    every round (:func:`feel_training_episode`)."""
    return float(feel_training_episode(env, seed, levels, snap)["elapsed_time"])


def feel_training_episode(env: Any, seed: int, levels: Sequence[int] | np.ndarray,
                          snap: bool = False) -> dict[str, Any]:
    """The final ``info`` of a FeelTraining episode from reset ``seed`` holding ``levels`` every round,
    run on a twin of ``env`` (same id and arguments). ``snap``: each level to the nearest menu level
    in log scale (else a level outside the menu is a ValueError)."""
    menu = [int(s) for s in env.level_menu.tolist()]
    levels = np.asarray(levels)
    if snap:
        logs = np.log2(np.asarray(menu, dtype=float) + 1.0)
        idx = np.array([int(np.argmin(np.abs(logs - np.log2(float(s) + 1.0)))) for s in levels])
    else:
        if not set(levels.tolist()) <= set(menu):
            raise ValueError(f"levels={levels.tolist()} are not all in the level menu {menu}")
        idx = np.array([menu.index(int(s)) for s in levels])
    twin = gym.make(env.spec.id, **env.spec.kwargs).unwrapped
    info = run_episode(twin, seed, lambda obs: idx)
    twin.close()
    return info


# ------------------------------------------------------------------------------------- registry
#: Every adapter, in the order ids are matched.
ADAPTERS: tuple[ProblemAdapter, ...] = (MixedPrecisionAdapter(), TableAdapter(), CompanderAdapter(),
                                        FeelAllocationAdapter(), FeelTrainingAdapter(), CVTAdapter(),
                                        MultiHardwareAdapter())


def adapter_for(env_id: str) -> ProblemAdapter:
    """The adapter of ``env_id``'s problem; ValueError for an unregistered id or one no adapter takes."""
    entry_module(env_id)  # unregistered: ValueError naming the ids
    for adapter in ADAPTERS:
        if adapter.handles(env_id):
            return adapter
    supported = [i for i in quant_envs.ENV_IDS if any(a.handles(i) for a in ADAPTERS)]
    raise ValueError(f"env_id={env_id!r} has no comparison adapter; expected one of: {', '.join(supported)}")


def adapter_named(name: str) -> ProblemAdapter:
    """The adapter called ``name`` (a run spec's ``problem``)."""
    for adapter in ADAPTERS:
        if adapter.name == name:
            return adapter
    raise ValueError(f"problem={name!r} is not allowed; expected one of: {', '.join(a.name for a in ADAPTERS)}")
