"""Gymnasium environments for hardware-aware mixed-precision quantization."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
from gymnasium import spaces

from quant_envs.base import QuantEnv
from quant_envs.checks import check_bool, check_choice, check_float
from quant_envs.mixed_precision import features
from quant_envs.mixed_precision.actions import (
    INVALID_ACTION_MODES,
    Action,
    choose_continuous_width,
    choose_width,
)
from quant_envs.mixed_precision.asked import AskedBefore
from quant_envs.mixed_precision.config import DEFAULTS_V1, ProblemConfig
from quant_envs.mixed_precision.features import Observation
from quant_envs.mixed_precision.problem import (
    METRIC_UNITS,
    Evaluation,
    MixedPrecisionProblem,
    PartialPolicy,
    Policy,
    haq_final_action_wall,
    shared_problem,
)
from quant_envs.rendering import figure_to_rgb, new_figure


class MixedPrecisionEnv(QuantEnv[Observation, Action]):
    """Choose a bit width for every layer of a trained network under an accelerator's budget.

    ## Description

    The agent walks through the quantizable layers (convolutions and linear layers) of a trained
    float network and picks each layer's bit width, as in HAQ (Wang et al., CVPR 2019) and in the
    reinforcement-learning assignment of Wang, Ma, Yang, Yang, Wei (Computers, Materials & Continua
    79(1), 2024). The state carries each layer's weight standard deviation; a simulated accelerator
    (``hw_sim``: bit-serial BISMO, bit-fused Bit Fusion, fixed-width NPUs) prices every choice, and
    its cost **masks** the widths that would break the budget: a width is allowed exactly when some
    completion of the remaining layers still fits (from the table's minimum completion cost), so
    every episode ends within budget and no feasible width is ever masked. After the last layer the
    network is fake-quantized with torch's ops, retrained for a few mini-batches and evaluated; that
    accuracy is the reward.

    ## Action Space

    ``Discrete(len(bits))``: action ``j`` is the width ``bits[j]`` (default 2..8 bits, so action
    0 = 2 bits ... 6 = 8 bits). With ``two_steps_per_layer=False`` (default) one step sets both the
    weight and the activation width of a layer; with ``True`` (HAQ's scheme) a layer takes two
    steps, weight bits then activation bits.

    ``action_masks()`` returns the boolean mask of allowed actions for the current step (as
    sb3-contrib's ``MaskablePPO`` expects); ``info["action_mask"]`` carries the same mask as int8.
    A masked action sent anyway is handled by ``invalid_action``: ``"project"`` (default) replaces it
    with the nearest allowed width (the narrower one on a tie) and reports the original in
    ``info["projected_from"]``; ``"raise"`` raises ``ValueError``.

    ## Observation Space

    ``Box(low, high, (13,), float32)`` describing the current layer and step; see
    :mod:`quant_envs.mixed_precision.features` for each feature's normalisation:
    0 layer index, 1 depthwise flag, 2 c_in, 3 c_out, 4 stride, 5 kernel size, 6 number of weights,
    7 input feature-map size, 8 weight/activation flag, 9 last action (HAQ's ten), 10 the layer's
    weight standard deviation, 11 the layer's share of the all-8-bit cost, 12 the fraction of the
    budget still unspent. Features 0-11 lie in [0, 1], feature 12 in [-1, 1].

    ## Rewards

    0 on every step but the last. On the last step:
    ``reward_scale * 100 * (accuracy - float_accuracy)``, where ``accuracy`` is the validation
    accuracy of the quantized network after ``finetune_steps`` mini-batches of quantization-aware
    retraining (0 = post-training quantization) and ``float_accuracy`` that of the float network.
    With the default ``reward_scale=0.1`` (HAQ's), one accuracy point is worth 0.1. ``info`` of the
    last step holds the policy, accuracy, float accuracy, latency (s), energy (J), size (bytes), their
    fractions of the all-8-bit costs, ``budget_used``, the fidelity (``finetune_steps``, ``split``)
    and ``cached``: True when this environment instance asked for the same policy at the same
    fidelity before (among its last ``cache_size`` distinct policies), so the answer is not a new
    reward evaluation. ``info`` depends only on this instance's own history: an evaluation cache
    shared with other instances (``share_problem``) never retrains a policy twice, but does not
    show in ``info``; neither does wall-clock time (the last evaluation's wall time is the
    attribute ``last_eval_time_s``, 0.0 when a shared cache answered; ``train.py`` records it in
    ``evaluations.csv``).

    ## Starting State

    The first layer, nothing spent: deterministic. ``reset(seed=...)`` seeds the environment's
    generator; the retraining is seeded by ``eval_seed``, so a policy's accuracy does not depend on
    the episode and episodes replay exactly.

    ## Episode End

    Terminated after the last layer's (last) step; never truncated (an episode has exactly
    ``num_layers`` steps, or ``2 * num_layers`` with ``two_steps_per_layer``).

    ## Arguments

    * ``task``: "mnist1d-cnn" (default; 8 layers on MNIST-1D), "mnist1d-mbnet" (12 layers),
      "digits-mbnet" (10 layers on 8x8 digits), "digits-cnn" (4 layers),
      "torchvision:<arch>" with ``task_kwargs`` (``data_dir``, ``checkpoint``, ...), or any
      registered task; trained once on first use and cached on disk (``cache_dir`` or
      ``$QUANT_ENVS_CACHE``).
    * ``hardware``: an ``hw_sim`` profile ("bismo-edge" default, "bismo-cloud", "bitfusion",
      "int8-npu", "gpu-int4-int8", or one added with ``hw_sim.register_profile``), a shipped
      measured table (``hw_sim.MEASURED``), or an ``hw_sim.Accelerator`` instance.
    * ``bits``: allowed widths (default 2..8).
    * ``budget_metric``: "latency" (default), "energy" or "size".
    * ``budget_fraction``: the budget as a fraction of the all-8-bit cost (every layer at 8 bits;
      default None: the smallest multiple of 0.05, at least 0.25, that leaves at least 1000
      feasible one-width-per-layer policies on this task and accelerator, see
      ``MixedPrecisionProblem.default_budget_fraction``), or
      ``budget``: an absolute budget in seconds, joules or bytes. A budget below the cheapest
      policy raises ``ValueError`` stating the feasible range.
    * ``finetune_steps``: retraining mini-batches per evaluation (default None: the task's
      recipe, ``Task.finetune_steps``; 0 = post-training).
    * ``two_steps_per_layer``: HAQ's weight-then-activation steps (default False).
    * ``keep_first_last_8bit``: HAQ's fixed 8-bit first and last layers (default False).
    * ``invalid_action``: "project" (default) or "raise".
    * ``reward_scale``: reward per accuracy point (default 0.1).
    * ``eval_split`` ("val"), ``eval_seed`` (0), ``cache_size`` (4096 policies), ``batch`` (the
      batch the accelerator is costed at; default the accelerator's own: 1 for "bismo-edge", 16
      for "bismo-cloud" as in HAQ), ``render_mode`` ("ansi" or "rgb_array").
    * ``share_problem``: environments built in one process with the same arguments share one
      float model and evaluation cache (default True); False gives this environment its own, so
      its evaluation count is its own (as ``train.py compare`` needs).
    * ``device``: where the reward's retraining runs ("cpu", default; "cuda" or "cuda:N").

    ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` runs N episodes in
    lockstep in one process and scores the policies of episodes ending on the same step together
    (:class:`~quant_envs.mixed_precision.vector_env.MixedPrecisionVectorEnv`).

    ## Version History

    In every version: ``info`` is a function of the instance's own history (Gymnasium's strict
    determinism check passes): ``info["cached"]`` says whether this instance asked for the policy
    before, no longer whether a cache shared with other instances held it, and the wall-clock
    ``info["eval_time_s"]`` is gone (see ``last_eval_time_s``). Observations and rewards are
    unchanged, so no version was bumped.

    * v1: default task MNIST-1D (``mnist1d-cnn``) with its retraining recipe
      (``tasks.MNIST1D_FINETUNE``), default budget leaving >= 1000 feasible policies on every
      task, profile and metric (``problem.DEFAULT_MIN_FEASIBLE``); ``budget_fraction`` is of the all-8-bit cost even
      when ``bits`` has no 8 (it was of the all-``max(bits)`` cost).
    * v0: initial release; registered with ``task="digits-mbnet"``, ``budget_fraction=0.25``,
      ``finetune_steps=20``.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Discrete | spaces.Box[np.float32]  # Box in the continuous version

    def __init__(
        self,
        task: str = DEFAULTS_V1.task,
        hardware: Any = DEFAULTS_V1.hardware,
        bits: Iterable[int] = DEFAULTS_V1.bits,
        budget_metric: str = DEFAULTS_V1.budget_metric,
        budget_fraction: float | None = DEFAULTS_V1.budget_fraction,
        budget: float | None = DEFAULTS_V1.budget,
        finetune_steps: int | None = DEFAULTS_V1.finetune_steps,
        two_steps_per_layer: bool = False,
        keep_first_last_8bit: bool = DEFAULTS_V1.keep_first_last_8bit,
        invalid_action: str = "project",
        reward_scale: float = 0.1,
        eval_split: str = DEFAULTS_V1.eval_split,
        eval_seed: int = DEFAULTS_V1.eval_seed,
        cache_size: int = DEFAULTS_V1.cache_size,
        batch: int | None = DEFAULTS_V1.batch,
        task_kwargs: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = DEFAULTS_V1.cache_dir,
        share_problem: bool = True,
        render_mode: str | None = None,
        device: Any = DEFAULTS_V1.device,
    ) -> None:
        self.invalid_action = check_choice("invalid_action", invalid_action, INVALID_ACTION_MODES)
        self.reward_scale = check_float("reward_scale", reward_scale, min_value=0.0, min_inclusive=False)
        self._set_render_mode(render_mode)
        self.two_steps_per_layer = check_bool("two_steps_per_layer", two_steps_per_layer)
        #: the problem's validated arguments (the registered version's defaults where not given)
        self.config = ProblemConfig(
            task=task, hardware=hardware, bits=bits, budget_metric=budget_metric, budget_fraction=budget_fraction,
            budget=budget, finetune_steps=finetune_steps, keep_first_last_8bit=keep_first_last_8bit,
            eval_split=eval_split, eval_seed=eval_seed, cache_size=cache_size, batch=batch,
            task_kwargs=task_kwargs, cache_dir=cache_dir, device=device)
        make_problem = shared_problem if check_bool("share_problem", share_problem) else MixedPrecisionProblem
        self._asked = AskedBefore(self.config.cache_size)  # info["cached"]: this instance's own history
        #: wall time (s) of the last episode's evaluation (0.0 if a shared cache answered); not in info
        self.last_eval_time_s = 0.0
        self.problem: MixedPrecisionProblem = make_problem(**self.config.as_kwargs())
        p = self.problem
        self.bits = p.bits
        self.num_layers = p.num_layers
        self.num_steps = self.num_layers * (2 if self.two_steps_per_layer else 1)
        self.action_space = spaces.Discrete(len(self.bits))
        low = np.zeros(features.NUM_FEATURES, dtype=np.float32)
        low[features.Feature.BUDGET_LEFT] = -1.0
        self.observation_space = spaces.Box(low, np.ones(features.NUM_FEATURES, dtype=np.float32), dtype=np.float32)

        metric_table = p.layer_costs(p.budget_metric)
        cost8 = metric_table[:, -1, -1]
        self._static = features.static_features(p.layers, p.weight_std, cost8 / cost8.sum())
        self._table = metric_table
        self._reset_state()

    @property
    def _enforce_budget(self) -> bool:
        """Whether the mask keeps every episode within budget (the continuous version may leave
        that to HAQ's end-of-episode rule)."""
        return True

    # ------------------------------------------------------------------------------ episode
    def _reset_state(self) -> None:
        self._t = 0
        self._w_idx = np.full(self.num_layers, -1, dtype=int)
        self._a_idx = np.full(self.num_layers, -1, dtype=int)
        self._spent = 0.0
        self._last_action = 1.0
        self._last_evaluation: Evaluation | None = None
        self._prefetched: dict[Policy, Evaluation] = {}
        self._mask = self._compute_mask()
        self._begin_episode()  # the first layer is ready: stepping before reset() was always allowed

    @property
    def _layer(self) -> int:
        return self._t // 2 if self.two_steps_per_layer else self._t

    @property
    def _is_weight_step(self) -> bool:
        return not self.two_steps_per_layer or self._t % 2 == 0

    def action_masks(self) -> np.ndarray:
        """Boolean mask over ``bits`` of the widths allowed at this step (all True once done)."""
        return self._mask.copy()

    def _compute_mask(self) -> np.ndarray:
        # Computed once per state (after reset and each step); action_masks() hands out copies.
        if self._t >= self.num_steps:
            return np.ones(len(self.bits), dtype=bool)
        i = self._layer
        if self._enforce_budget:
            ok = self.problem.allowed_pairs(i, self._spent, equal_bits=not self.two_steps_per_layer)  # [w, a]
        else:
            ok = self.problem.allowed[i]
        if not self.two_steps_per_layer:
            return ok.diagonal().copy()
        return np.asarray(ok.any(axis=1)) if self._is_weight_step else ok[self._w_idx[i]].copy()

    def _observation(self) -> Observation:
        layer = min(self._layer, self.num_layers - 1)
        is_weight = self._is_weight_step if self._t < self.num_steps else False
        return features.observation(self._static, layer, is_weight, self._last_action,
                                    (self.problem.budget - self._spent) / self.problem.budget)

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self._mask.astype(np.int8), "layer": min(self._layer, self.num_layers - 1)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        self._reset_state()
        return self._observation(), self._info()

    def _choose(self, action: Action) -> tuple[int, dict[str, Any]]:
        """Validate ``action`` against the mask; return the width index actually applied."""
        return choose_width(action, self._mask, self.bits, self.invalid_action, self._t)

    def _apply(self, j: int) -> None:
        i = self._layer
        if not self.two_steps_per_layer:
            self._w_idx[i] = self._a_idx[i] = j
        elif self._is_weight_step:
            self._w_idx[i] = j
        else:
            self._a_idx[i] = j
        if self._a_idx[i] >= 0:  # the layer is complete: its cost is spent
            self._spent += float(self._table[i, self._w_idx[i], self._a_idx[i]])
        span = self.bits[-1] - self.bits[0]
        self._last_action = (self.bits[j] - self.bits[0]) / span if span else 1.0
        self._t += 1
        self._mask = self._compute_mask()

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        j, extra = self._choose(action)
        self._apply(j)
        reward, terminated = 0.0, False
        info = self._info()
        info.update(extra)
        if self._t == self.num_steps:
            terminated = self._done = True
            policy = self._finalise_policy()
            # HAQ's budget rule may have lowered widths: the state shows the policy evaluated.
            self._w_idx[:] = self.problem.costs.bit_index([w for w, _ in policy])
            self._a_idx[:] = self.problem.costs.bit_index([a for _, a in policy])
            self._spent = self.problem.cost(policy)[self.problem.budget_metric]
            # a vector environment may have scored it already, with its batch-mates
            evaluation = self._prefetched.pop(policy, None) or self.problem.evaluate(policy)
            self._last_evaluation = evaluation
            reward = self.reward_scale * 100.0 * (evaluation.accuracy - evaluation.float_accuracy)
            info.update(self._evaluation_info(evaluation))
        return self._observation(), float(reward), terminated, False, info

    def terminal_policy(self, action: Action) -> Policy | None:
        """The policy ``action`` would end the episode with, or None if it would not end it (or
        would be refused); the environment's state is left as it was. What a vector environment
        asks before a step, to score the policies ending together in one ``evaluate_many`` call."""
        if self._t != self.num_steps - 1:
            return None
        saved = (self._t, self._w_idx.copy(), self._a_idx.copy(), self._spent, self._last_action, self._mask)
        try:
            self._apply(self._choose(action)[0])
            return self._finalise_policy()
        except ValueError:  # a refused action: step() raises it
            return None
        finally:
            self._t, self._w_idx, self._a_idx, self._spent, self._last_action, self._mask = saved

    def prefetch(self, evaluation: Evaluation) -> None:
        """Hand over the evaluation of the policy the next step will end the episode with
        (:meth:`terminal_policy`): that step then uses it instead of calling ``problem.evaluate``."""
        self._prefetched = {evaluation.policy: evaluation}

    def _evaluation_info(self, evaluation: Evaluation) -> dict[str, Any]:
        """The last step's ``info`` entries: ``evaluation``'s fields, ``cached`` from this instance's
        own history and no wall-clock time (kept as ``last_eval_time_s``)."""
        self.last_eval_time_s = evaluation.eval_time_s  # the problem's: 0.0 for a cache hit
        out = evaluation.as_dict()
        del out["eval_time_s"]
        out["cached"] = self._asked.seen((evaluation.policy, evaluation.finetune_steps, evaluation.split))
        return out

    def _finalise_policy(self) -> Policy:
        return tuple((self.bits[w], self.bits[a]) for w, a in zip(self._w_idx, self._a_idx))

    @property
    def policy(self) -> PartialPolicy:
        """The widths chosen so far ((w, a) per layer; None for layers not yet set)."""
        return tuple((self.bits[w] if w >= 0 else None, self.bits[a] if a >= 0 else None)
                     for w, a in zip(self._w_idx, self._a_idx))

    # ----------------------------------------------------------------------------- rendering
    def _rows(self) -> list[tuple[int, str, str, Any, Any, float]]:
        p = self.problem
        rows = []
        for i, layer in enumerate(p.layers):
            w, a = self._w_idx[i], self._a_idx[i]
            cost = float(self._table[i, w, a]) if w >= 0 and a >= 0 else float("nan")
            rows.append((i, layer.name, layer.kind, self.bits[w] if w >= 0 else "-",
                         self.bits[a] if a >= 0 else "-", cost))
        return rows

    def _render_ansi(self) -> str:
        p = self.problem
        unit = METRIC_UNITS[p.budget_metric]
        lines = [f"{'#':>3} {'layer':<28} {'kind':<9} {'w':>2} {'a':>2} {p.budget_metric + ' (' + unit + ')':>16}"]
        for i, name, kind, w, a, cost in self._rows():
            lines.append(f"{i:>3} {name:<28} {kind:<9} {w!s:>2} {a!s:>2} {cost:>16.6g}")
        lines.append(f"spent {self._spent:.6g} {unit} of budget {p.budget:.6g} {unit} "
                     f"({self._spent / p.budget:.1%})")
        if self._last_evaluation is not None:
            e = self._last_evaluation
            lines.append(f"accuracy {e.accuracy:.4f} (float {e.float_accuracy:.4f})")
        return "\n".join(lines) + "\n"

    def _render_rgb_array(self) -> np.ndarray:
        rows = self._rows()
        x = np.arange(len(rows))
        w = [r[3] if r[3] != "-" else 0 for r in rows]
        a = [r[4] if r[4] != "-" else 0 for r in rows]
        share = self._static[:, features.Feature.COST_SHARE]
        fig = new_figure()
        ax = fig.add_subplot()
        ax.bar(x - 0.2, w, 0.4, label="weight bits")
        ax.bar(x + 0.2, a, 0.4, label="activation bits")
        ax.set_xlabel("layer")
        ax.set_ylabel("bits")
        ax.set_ylim(0, max(self.bits) + 1)
        ax2 = ax.twinx()
        ax2.plot(x, share, "k.-", label="share of all-8-bit cost")
        ax2.set_ylabel(f"share of all-8-bit {self.problem.budget_metric}")
        ax.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        return figure_to_rgb(fig)


class MixedPrecisionContinuousEnv(MixedPrecisionEnv):
    """HAQ's continuous-action version of :class:`MixedPrecisionEnv`.

    ## Description

    The same problem as ``quant_envs/MixedPrecision-v0`` with HAQ's (Wang et al., CVPR 2019)
    continuous action, for DDPG-style agents. By default the action is mapped onto the widths the
    budget still allows at this step (exact masking, as in the discrete environment), so every
    episode ends within budget. With ``budget_enforcement="haq"`` the action maps onto all widths
    and, after the last step, HAQ's ``_final_action_wall`` lowers widths until the policy fits:
    sweeps from the last layer to the first, one width off the activations then one off the
    weights, until the budget is met (:func:`~quant_envs.mixed_precision.problem.haq_final_action_wall`).
    The lowered policy is the one evaluated and reported in ``info["policy"]``.

    ## Action Space

    ``Box(0, 1, (1,), float32)``. With ``n`` allowed widths (ascending), action ``u`` selects
    allowed width number ``min(floor(u * n), n - 1)``: equal-length intervals, as HAQ's rounding of
    ``u`` onto the range of widths.

    ## Observation Space

    As ``MixedPrecision-v0``: ``Box(low, high, (13,), float32)``; feature 12 (budget left) can be
    negative with ``budget_enforcement="haq"``.

    ## Rewards

    As ``MixedPrecision-v0``: ``reward_scale * 100 * (accuracy - float_accuracy)`` on the last step.

    ## Starting State

    As ``MixedPrecision-v0``: the first layer, nothing spent.

    ## Episode End

    As ``MixedPrecision-v0``: terminated after the last step, never truncated.

    ## Arguments

    Those of ``MixedPrecision-v0`` (but ``invalid_action``, as no action is invalid) and
    ``budget_enforcement``: "mask" (default) or "haq".

    ## Version History

    In every version, as ``MixedPrecision-v1``: ``info["cached"]`` is this instance's own history
    and ``info`` holds no wall-clock time (``eval_time_s`` is gone; see ``last_eval_time_s``).

    * v1: defaults of ``MixedPrecision-v1`` (MNIST-1D task, per-profile budgets, the task's
      retraining recipe).
    * v0: initial release; ``task="digits-mbnet"``, ``budget_fraction=0.25``, ``finetune_steps=20``.
      Its ``budget_enforcement="haq"`` lowered widths first-to-last, weights first, which is not
      HAQ's rule; it now follows HAQ's ``_final_action_wall`` (last-to-first, activations first) in
      every version, since the old rule was a bug, not a variant.
    """

    def __init__(self, *, budget_enforcement: str = "mask", **kwargs: Any) -> None:
        # set before the base class builds the first state: its mask depends on it
        self.budget_enforcement = check_choice("budget_enforcement", budget_enforcement, ("mask", "haq"))
        super().__init__(**kwargs)
        self.action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    @property
    def _enforce_budget(self) -> bool:
        return self.budget_enforcement == "mask"

    def _choose(self, action: Action) -> tuple[int, dict[str, Any]]:
        return choose_continuous_width(action, self.action_masks()), {}

    def _finalise_policy(self) -> Policy:
        policy = super()._finalise_policy()
        if self._enforce_budget:
            return policy
        return haq_lower_to_budget(self.problem, policy)


def haq_lower_to_budget(problem: MixedPrecisionProblem, policy: Policy) -> Policy:
    """HAQ's end-of-episode rule (kept name): :func:`~quant_envs.mixed_precision.problem.haq_final_action_wall`."""
    return haq_final_action_wall(problem, policy)
