"""Scoring many policies of a :class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem`.

:func:`evaluate_many` answers a list of policies with the very records ``problem.evaluate``
gives one by one (cache hits, counters and all); :func:`evaluate_splits` scores each policy on
several splits from a single retraining (what the exhaustive-table generator needs).

Where the policies still to score are scored:

* on CUDA (``device="cuda"``), with the built-in networks: all of them in one batched pass
  (:mod:`~quant_envs.mixed_precision.policy_batch`: their networks stacked along the channels,
  retrained and scored together with grouped convolutions, 32 policies per pass, every pass
  filled up to 32), at any number of retraining steps; ``problem.evaluate`` on CUDA takes the
  same pass, so a record is the same whichever call computed it;
* on the CPU, at 0 retraining steps: by a walk over the tree of their shared prefixes
  (:mod:`~quant_envs.mixed_precision.prefix_reuse`: each distinct prefix's layers run once, with
  bit-identical results);
* otherwise one after another. The batched pass was measured *slower* per policy on the CPU for
  these small networks, so it is not used there unless asked for (``batched=True``, which on the
  CPU gives the one-at-a-time accuracies bit for bit: how the tests check it without a GPU).

One policy's result never depends on which others share the call. The functions take the problem
as their first argument so that the problem class keeps only thin methods.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from quant_envs.checks import check_bool, check_choice, check_int

if TYPE_CHECKING:
    from quant_envs.mixed_precision.cost_model import Policy
    from quant_envs.mixed_precision.problem import Evaluation, MixedPrecisionProblem

SPLITS = ("train", "val", "test")


def check_device(device: Any) -> Any:
    """``device`` as a ``torch.device`` ("cpu", "cuda", "cuda:N", or a ``torch.device``); a device
    this machine lacks is a ValueError naming it."""
    import torch

    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device={device!r} must be a string such as 'cpu' or 'cuda:0', or a torch.device; "
                        f"got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device={device!r} is not allowed; expected 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device={device!r} is not allowed; expected 'cpu', 'cuda' or 'cuda:N'")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0 or (dev.index is not None and dev.index >= count):
        raise ValueError(f"device={device!r} is not available: this machine has {count} CUDA device(s); "
                         "use device='cpu'")
    return dev


def _steps_and_splits(problem: MixedPrecisionProblem, finetune_steps: int | None,
                      splits: Sequence[str]) -> tuple[int, tuple[str, ...]]:
    steps = problem.finetune_steps if finetune_steps is None else check_int("finetune_steps", finetune_steps, min_value=0)
    if isinstance(splits, str) or not splits:
        raise ValueError(f"splits={splits!r} is not allowed; expected a non-empty sequence of {list(SPLITS)}")
    return steps, tuple(check_choice("splits", s, SPLITS) for s in splits)


def evaluate_splits(problem: MixedPrecisionProblem, policies: Sequence[Sequence[Sequence[int]]],
                    splits: Sequence[str], finetune_steps: int | None = None,
                    batched: bool | None = None) -> list[dict[str, Evaluation]]:
    """For each policy, ``{split: Evaluation}`` over ``splits``, from one retraining per policy.

    Each record is the one ``problem.evaluate(policy, finetune_steps, split)`` would return (the
    retraining is seeded by ``eval_seed`` whatever the split, so one retrained network serves
    every split); records already cached are answered from the cache (``cached=True``) and the
    others are cached. Every policy is checked before any is retrained. ``batched``: score the
    policies not cached in the batched pass (True), not (False), or where the device is CUDA
    (None, default); see the module docstring.
    """
    steps, splits = _steps_and_splits(problem, finetune_steps, splits)
    checked = [problem.check_policy(p) for p in policies]
    if batched is None:
        batched = problem.evaluator.batched_by_default()
    if check_bool("batched", batched):
        scored = _batched(problem, checked, splits, steps)
    else:
        scored = _zero_step_batch(problem, checked, splits) if steps == 0 else {}
    out: list[dict[str, Evaluation]] = []
    for pol in checked:
        records: dict[str, Evaluation] = {}
        missing = []
        for split in splits:
            hit = problem._recall((pol, steps, split))
            if hit is None:
                missing.append(split)
            else:
                records[split] = problem._cached_copy(hit)
        if missing and pol in scored:
            accuracies, share = scored[pol]
            for split in missing:
                record = problem._evaluation(pol, steps, split, accuracies[split], share / len(missing))
                records[split] = problem._remember((pol, steps, split), record)
        elif missing:
            start = time.perf_counter()
            model = problem.quantized_model(pol, steps)
            for split in missing:
                acc = problem.task.evaluate(model, split)
                record = problem._evaluation(pol, steps, split, acc, time.perf_counter() - start)
                records[split] = problem._remember((pol, steps, split), record)
                start = time.perf_counter()  # a further split costs only its own pass
        out.append({s: records[s] for s in splits})
    return out


def _missing(problem: MixedPrecisionProblem, policies: Sequence[Policy], splits: tuple[str, ...],
             steps: int) -> list[Policy]:
    """The distinct ``policies`` with a split not yet cached (looking counts nothing: the caller's
    loop counts queries and evaluations exactly as one call at a time would)."""
    entries = problem._evaluations.entries
    return list(dict.fromkeys(p for p in policies if any((p, steps, s) not in entries for s in splits)))


def _batched(problem: MixedPrecisionProblem, policies: Sequence[Policy], splits: tuple[str, ...], steps: int
             ) -> dict[Policy, tuple[dict[str, float], float]]:
    """The accuracies on ``splits`` of the distinct ``policies`` not yet cached, from the batched
    pass (one at a time where it does not apply), with each policy's share of the wall time."""
    todo = _missing(problem, policies, splits, steps)
    if not todo:
        return {}
    start = time.perf_counter()
    accuracies = problem.evaluator.accuracies(todo, steps, splits, batched=True)
    share = (time.perf_counter() - start) / len(todo)
    return {p: (acc, share) for p, acc in zip(todo, accuracies)}


#: What a stage costs in the prefix walk relative to one-at-a-time scoring: the walk runs a stage on
#: a whole split at once, whose activations overflow the CPU caches that one policy's batch-by-batch
#: pass stays in (measured 1.3x per policy on random mixed policies, which share almost no prefix:
#: ``benchmarks/bench_reward.py``, section 2 at 0 steps, before this rule).
WALK_OVERHEAD = 1.5


def walk_pays(policies: Sequence[Policy]) -> bool:
    """Whether the prefix walk runs fewer stages, overhead counted, than scoring ``policies`` one
    at a time: ``WALK_OVERHEAD x distinct prefixes < policies x layers``."""
    layers = len(policies[0])
    prefixes = sum(len({p[:d] for p in policies}) for d in range(1, layers + 1))
    return WALK_OVERHEAD * prefixes < len(policies) * layers


def _zero_step_batch(problem: MixedPrecisionProblem, policies: Sequence[Policy], splits: tuple[str, ...]
                     ) -> dict[Policy, tuple[dict[str, float], float]]:
    """The 0-step accuracies on ``splits`` of the distinct ``policies`` not yet cached, from one
    walk over their shared prefixes (:mod:`~quant_envs.mixed_precision.prefix_reuse`), with each
    policy's share of the wall time; empty where fewer than two need scoring, where they share
    too little to pay (:func:`walk_pays`) or where the walk does not apply (then they are scored
    one at a time). Looking at the cache here counts nothing:
    the caller's loop counts queries and evaluations exactly as one call at a time would."""
    todo = _missing(problem, policies, splits, 0)
    if len(todo) < 2 or not walk_pays(todo):
        return {}
    # lazy: the prefix walk is torch; this module imports without it
    from quant_envs.mixed_precision.prefix_reuse import zero_step_accuracies

    start = time.perf_counter()
    accuracies = zero_step_accuracies(problem.evaluator, todo, splits)
    if accuracies is None:
        return {}
    share = (time.perf_counter() - start) / len(todo)
    return {p: (acc, share) for p, acc in zip(todo, accuracies)}


def evaluate_many(problem: MixedPrecisionProblem, policies: Sequence[Sequence[Sequence[int]]],
                  finetune_steps: int | None = None, split: str | None = None,
                  batched: bool | None = None) -> list[Evaluation]:
    """``[problem.evaluate(p, finetune_steps, split) for p in policies]``, the same records (a
    policy repeated in the list is answered from the cache the second time, as it would be one
    call at a time), with every policy checked before any is retrained; ``batched`` as in
    :func:`evaluate_splits`."""
    split = problem.eval_split if split is None else check_choice("split", split, SPLITS)
    return [r[split] for r in evaluate_splits(problem, policies, (split,), finetune_steps, batched)]

