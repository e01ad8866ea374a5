"""ProblemConfig: validated once, naming the argument; one set of defaults per registered version."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import gymnasium as gym
import pytest

import quant_envs
from quant_envs.mixed_precision.config import (
    DEFAULTS,
    DEFAULTS_V0,
    DEFAULTS_V1,
    ProblemConfig,
    defaults_for,
)


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"bits": [1, 4]}, ValueError, "bits="),
    ({"bits": "248"}, TypeError, "bits="),
    ({"budget_metric": "area"}, ValueError, "budget_metric="),
    ({"finetune_steps": -1}, ValueError, "finetune_steps="),
    ({"eval_split": "dev"}, ValueError, "eval_split="),
    ({"eval_seed": 1.5}, TypeError, "eval_seed="),
    ({"cache_size": -3}, ValueError, "cache_size="),
    ({"keep_first_last_8bit": "yes"}, TypeError, "keep_first_last_8bit="),
    ({"keep_first_last_8bit": True, "bits": (2, 4)}, ValueError, "keep_first_last_8bit=True"),
    ({"hardware": "tpu-v9"}, ValueError, "hardware="),
    ({"hardware": 3}, TypeError, "hardware="),
    ({"budget_fraction": 0.0}, ValueError, "budget_fraction="),
    ({"budget": -1.0}, ValueError, "budget="),
    ({"batch": 0}, ValueError, "batch="),
    ({"task_kwargs": [("a", 1)]}, TypeError, "task_kwargs="),
    ({"cache_dir": 5}, TypeError, "cache_dir="),
    ({"task": 7}, TypeError, "task="),
    ({"device": "gpu"}, ValueError, "device='gpu' is not allowed"),
    ({"device": 0}, TypeError, "device=0 must be a string"),
])
def test_bad_values_name_the_argument(kwargs, error, names):
    with pytest.raises(error, match=names):
        ProblemConfig(**kwargs)


def test_replace_validates_again_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="eval_split="):
        DEFAULTS_V1.replace(eval_split="nope")
    with pytest.raises(TypeError, match=r"unknown problem argument\(s\) \['budget_levl'\]"):
        ProblemConfig.from_kwargs(budget_levl=0.3)


def test_frozen_and_normalised():
    c = ProblemConfig(bits=[8, 4, 4, 2], task_kwargs=None)
    assert c.bits == (2, 4, 8) and c.task_kwargs == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.bits = (8,)  # type: ignore[misc]


def test_budget_wins_over_budget_fraction():
    # documented by MixedPrecisionProblem: budget_fraction is ignored when budget is set
    c = DEFAULTS_V0.replace(budget=1e-3)
    assert c.budget == 1e-3 and c.budget_fraction == 0.25


def test_defaults_per_version():
    # the v0 ids' original registration: task digits-mbnet, budget_fraction 0.25, finetune_steps 20
    assert DEFAULTS_V0.changes_from(DEFAULTS_V1) == {"task": "digits-mbnet", "budget_fraction": 0.25,
                                                     "finetune_steps": 20}
    assert DEFAULTS == {"v0": DEFAULTS_V0, "v1": DEFAULTS_V1}
    assert defaults_for("quant_envs/MixedPrecisionContinuous-v0") is DEFAULTS_V0
    with pytest.raises(ValueError, match="env_id="):
        defaults_for("quant_envs/MixedPrecision-v7")
    for env_id in ("quant_envs/MixedPrecision-v0", "quant_envs/MixedPrecisionContinuous-v0"):
        assert gym.spec(env_id).kwargs == DEFAULTS_V0.changes_from(DEFAULTS_V1)
        assert quant_envs.ENV_KWARGS[env_id] == {"task": "digits-mbnet", "budget_fraction": 0.25, "finetune_steps": 20}
    for env_id in ("quant_envs/MixedPrecision-v1", "quant_envs/MixedPrecisionContinuous-v1"):
        assert gym.spec(env_id).kwargs == {}


def test_constructors_default_to_their_versions_config():
    from quant_envs.mixed_precision.env import MixedPrecisionEnv
    from quant_envs.mixed_precision.multi_hardware import MixedPrecisionMultiHardwareEnv
    from quant_envs.mixed_precision.problem import MixedPrecisionProblem

    for cls, defaults in ((MixedPrecisionEnv, DEFAULTS_V1), (MixedPrecisionProblem, DEFAULTS_V1),
                          (MixedPrecisionMultiHardwareEnv, DEFAULTS_V0)):
        params = inspect.signature(cls).parameters
        for name in ProblemConfig.field_names():
            # multi-hardware: a list of accelerators and a per-accelerator budget of its own
            if name in params and name not in ("task_kwargs", "budget_fraction", "hardware"):
                assert params[name].default == getattr(defaults, name), (cls.__name__, name)


def test_registering_imports_no_torch():
    code = "import sys, quant_envs; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_env_and_problem_share_the_config():
    from quant_envs.mixed_precision.problem import MixedPrecisionProblem

    env = gym.make("quant_envs/MixedPrecision-v0", task="digits-cnn", share_problem=False).unwrapped
    assert env.config == DEFAULTS_V0.replace(task="digits-cnn")
    assert env.problem.config == env.config
    again = MixedPrecisionProblem.from_config(env.config)
    assert (again.budget, again.finetune_steps, again.bits) == (env.problem.budget, 20, env.problem.bits)
    with pytest.raises(TypeError, match="config="):
        MixedPrecisionProblem.from_config({"task": "digits-cnn"})  # type: ignore[arg-type]


def test_cost_model_is_the_problems_and_needs_no_torch():
    from quant_envs.mixed_precision.cost_model import CostModel
    from quant_envs.mixed_precision.problem import MixedPrecisionProblem

    problem = MixedPrecisionProblem(task="digits-cnn", hardware="bitfusion", finetune_steps=0)
    model = CostModel(problem.costs.layers, problem.config)  # the layers' hw_sim shapes only
    assert problem.cost_model.budget == model.budget == problem.budget
    assert model.budget_fraction == problem.budget_fraction  # the default search, run again
    assert model.count_feasible() == problem.count_feasible()
    pol = problem.uniform_policy(4)
    assert model.cost(pol) == problem.cost(pol) and model.is_feasible(pol) == problem.is_feasible(pol)
    assert (model.allowed_pairs(1, 0.0, True) == problem.allowed_pairs(1, 0.0, True)).all()
    # a bad budget is refused by the cost model, before anything else
    with pytest.raises(ValueError, match="is infeasible: the cheapest policy costs"):
        CostModel(problem.costs.layers, problem.config.replace(budget_fraction=1e-6))
    code = ("import sys, hw_sim; from quant_envs.mixed_precision.cost_model import CostModel; "
            "m = CostModel([hw_sim.LayerShape.linear(64, 64), hw_sim.LayerShape.linear(64, 10)]); "
            "assert m.count_feasible()[1] == 49 and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluation_cache_is_a_bounded_lru_with_counts():
    from quant_envs.mixed_precision.policy_evaluator import EvaluationCache

    cache = EvaluationCache(2)
    for key in ("a", "b"):
        assert cache.recall((key,)) is None
        cache.remember((key,), key.upper())
    assert cache.recall(("a",)) == "A"  # "a" is now the most recently used
    cache.remember(("c",), "C")  # drops "b", the least recently used
    assert list(cache.entries) == [("a",), ("c",)]
    assert (cache.num_queries, cache.num_evaluations) == (3, 3)
    again = EvaluationCache(2)
    again.load_state(cache.state())
    assert again.entries == cache.entries and again.num_queries == 3
    none = EvaluationCache(0)  # cache_size=0 keeps nothing but still counts
    none.remember(("a",), 1)
    assert not none.entries and none.num_evaluations == 1


def test_problem_composes_cost_model_and_evaluator():
    from quant_envs.mixed_precision.problem import MixedPrecisionProblem

    problem = MixedPrecisionProblem(task="digits-cnn", finetune_steps=0, cache_size=1)
    assert problem.layers == problem.evaluator.layers and problem.task is problem.evaluator.task
    first, second = problem.uniform_policy(8), problem.uniform_policy(6)
    a = problem.evaluate(first)
    assert problem.evaluate(first).cached and problem.num_queries == 2 and problem.num_evaluations == 1
    problem.evaluate(second)  # the cache holds one policy: the first is dropped
    assert not problem.evaluate(first).cached and problem.evaluate(first).accuracy == a.accuracy
    assert problem.evaluator.cache.num_evaluations == problem.num_evaluations == 3
