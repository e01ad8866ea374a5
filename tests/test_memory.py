"""Memory stays bounded when one process makes many mixed-precision environments.

The figures come from the process itself (``resource.getrusage``'s peak RSS). Before the shared
problems were bounded and shared one task, each ``MixedPrecision-v1`` with a budget of its own
held its own copy of the task's data: about 7 MB an environment with the default MNIST-1D task
(692 MB over 100), 0.5 MB with digits-cnn (54 MB over 100).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.mixed_precision import problem as problem_module

REPO = Path(__file__).resolve().parents[1]

#: a fresh process (its peak RSS is the sweep's alone): 200 environments, each with a budget
#: fraction of its own, made, reset and closed in turn (collected every 20)
_SWEEP = """
import gc, json, resource, sys
import gymnasium as gym, torch
import quant_envs
torch.set_num_threads(1)
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
kwargs = json.loads(sys.argv[1])
for i in range(200):
    env = gym.make("quant_envs/MixedPrecision-v1", budget_fraction=0.50 + 0.002 * i, **kwargs)
    env.reset(seed=i)
    env.close()
    del env
    if i % 20 == 0:
        gc.collect()  # a full collection costs about 0.1 s with torch loaded
    if i == 0:
        first = peak()
print(json.dumps({"first_mb": first, "last_mb": peak()}))
"""


@pytest.mark.parametrize("kwargs", [
    {"task": "digits-cnn"},  # the task the other tests train
    pytest.param({}, marks=pytest.mark.slow),  # the id's own default task (MNIST-1D: trains a network once)
])
def test_two_hundred_budgets_grow_peak_rss_by_at_most_100_mb(kwargs: dict) -> None:
    out = subprocess.run([sys.executable, "-c", _SWEEP, json.dumps(kwargs)], cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    rss = json.loads(out.stdout.splitlines()[-1])
    assert rss["last_mb"] - rss["first_mb"] <= 100, rss


def test_distinct_budgets_share_one_task_and_the_kept_problems_are_bounded() -> None:
    envs = [gym.make("quant_envs/MixedPrecision-v1", task="digits-cnn", budget_fraction=0.5 + 0.01 * i)
            for i in range(problem_module.SHARED_PROBLEMS + 3)]
    problems = [e.unwrapped.problem for e in envs]
    assert len({id(p) for p in problems}) == len(envs)  # a budget of its own: a problem of its own
    assert all(p.task is problems[0].task for p in problems)  # one float network and one copy of the data
    assert len(problem_module._SHARED) <= problem_module.SHARED_PROBLEMS
    # the same configuration again is the same problem, even once it has left the kept ones:
    # an environment still uses it
    again = gym.make("quant_envs/MixedPrecision-v1", task="digits-cnn", budget_fraction=0.5)
    assert again.unwrapped.problem is problems[0]
    for e in [*envs, again]:
        e.close()
