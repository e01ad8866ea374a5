"""Scoring many policies of a :class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem`.

:func:`evaluate_many` answers a list of policies with the very records ``problem.evaluate``
gives one by one (cache hits, counters and all); :func:`evaluate_splits` scores each policy on
several splits from a single retraining (what the exhaustive-table generator needs).

Policies are retrained and scored one after another, on the problem's device, except at 0
retraining steps, where the policies still to score are walked as a tree of shared prefixes
(:mod:`~quant_envs.mixed_precision.prefix_reuse`: each distinct prefix's layers run once, with
bit-identical results). A batched pass (P policies at once with grouped convolutions) was
measured *slower* per policy on the CPU for these small networks, so it is not used there. One
policy's result never depends on which others share the call. The functions take the problem as their first argument so that the problem class keeps
only thin methods.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from quant_envs.checks import check_choice, check_int

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
                    splits: Sequence[str], finetune_steps: int | None = None) -> list[dict[str, Evaluation]]:
    """For each policy, ``{split: Evaluation}`` over ``splits``, from one retraining per policy.

    Each record is the one ``problem.evaluate(policy, finetune_steps, split)`` would return (the
    retraining is seeded by ``eval_seed`` whatever the split, so one retrained network serves
    every split); records already cached are answered from the cache (``cached=True``) and the
    others are cached. Every policy is checked before any is retrained.
    """
    steps, splits = _steps_and_splits(problem, finetune_steps, splits)
    checked = [problem.check_policy(p) for p in policies]
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


def _zero_step_batch(problem: MixedPrecisionProblem, policies: Sequence[Policy], splits: tuple[str, ...]
                     ) -> dict[Policy, tuple[dict[str, float], float]]:
    """The 0-step accuracies on ``splits`` of the distinct ``policies`` not yet cached, from one
    walk over their shared prefixes (:mod:`~quant_envs.mixed_precision.prefix_reuse`), with each
    policy's share of the wall time; empty where fewer than two need scoring or the walk does
    not apply (then they are scored one at a time). Looking at the cache here counts nothing:
    the caller's loop counts queries and evaluations exactly as one call at a time would."""
    entries = problem._evaluations.entries
    todo = list(dict.fromkeys(p for p in policies if any((p, 0, s) not in entries for s in splits)))
    if len(todo) < 2:
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
                  finetune_steps: int | None = None, split: str | None = None) -> list[Evaluation]:
    """``[problem.evaluate(p, finetune_steps, split) for p in policies]``, the same records (a
    policy repeated in the list is answered from the cache the second time, as it would be one
    call at a time), with every policy checked before any is retrained."""
    split = problem.eval_split if split is None else check_choice("split", split, SPLITS)
    return [r[split] for r in evaluate_splits(problem, policies, (split,), finetune_steps)]

