"""``quant_envs/MixedPrecisionTable-v0`` and ``quant_envs/MixedPrecisionTableContinuous-v0``: the
mixed-precision problem with rewards read from a table (discrete widths, or HAQ's continuous action)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from quant_envs.base import QuantEnv
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.mixed_precision import features
from quant_envs.mixed_precision.actions import (
    INVALID_ACTION_MODES,
    Action,
    choose_continuous_width,
    choose_width,
)
from quant_envs.mixed_precision.asked import AskedBefore
from quant_envs.mixed_precision.features import Observation
from quant_envs.mixed_precision.problem import PartialPolicy
from quant_envs.mixed_precision.tables.policy_table import PolicyTable
from quant_envs.mixed_precision.tables.problem import TableEvaluation, TableProblem
from quant_envs.rendering import figure_to_rgb, new_figure


class MixedPrecisionTableEnv(QuantEnv[Observation, Action]):
    """Choose a bit width per layer of a network whose every policy's score is in a shipped table.

    ## Description

    The problem of ``quant_envs/MixedPrecision-v0`` (one width per layer, exact budget masks) with
    the reward looked up instead of retrained, so an episode costs microseconds and a search can be
    scored against the table's **exact optimum** at the budget (its *regret*). Registered tables
    (``quant_envs.mixed_precision.tables.registry.TABLES``; any ``.npz`` in the generic format works too):
    * ``"hawq-resnet18"`` (default), ``"hawq-resnet50"``: HAWQ-V3's published ImageNet data
      (Hessian traces, quantization errors, sizes, BOPs, measured T4 latencies; ICML 2021,
      github.com/Zhen-Dong/HAWQ ``ILP.ipynb``); widths {4, 8}; 16 and 48 decision units (HAWQ's
      tied layers share one); the score is minus HAWQ's perturbation ``sum Tr(H)/n ||W - Q_b(W)||^2``.
      Optimum by enumeration (ResNet-18, 2^16 policies) or ``scipy.optimize.milp`` (ResNet-50).
    * ``"digits-cnn"``: all 2401 policies of the 4-layer digits CNN at 2..8 bits retrained and
      evaluated exactly as ``MixedPrecision-v0`` does (20 retraining steps, retraining seed 0;
      validation and test accuracy), with the costs of every ``hw_sim`` profile (recomputed from
      the current ``hw_sim`` models); optimum by enumeration.
    * ``"mnist1d-small"``: all 1024 policies of the 5-layer MNIST-1D CNN (task ``mnist1d-small``)
      at {2, 3, 4, 8} bits, retrained as ``MixedPrecision-v0`` does on it (the task's 10 retraining
      steps, retraining seed 0), with the same columns and costs as digits-cnn.

    ## Action Space

    ``Discrete(len(bits))``: action ``j`` is the width ``bits[j]`` of the current unit (weights and
    activations alike). ``action_masks()`` gives the exact mask (a width is allowed iff some
    completion of the remaining units fits the budget); ``info["action_mask"]`` the same as int8. A
    masked action is projected to the nearest allowed width (``invalid_action="project"``, default;
    ``info["projected_from"]`` records it) or raises ``ValueError`` (``"raise"``).

    ## Observation Space

    ``Box(low, high, (13,), float32)``, the layout of ``MixedPrecision-v0``
    (:mod:`quant_envs.mixed_precision.features`): 0 unit index, 1 depthwise flag, 2 c_in, 3 c_out,
    4 stride, 5 kernel, 6 number of weights, 7 input feature-map size, 8 weight/activation flag
    (always 1: one step per unit), 9 last action, 10 weight spread, 11 the unit's share of the
    all-widest cost, 12 budget left. Where the table cannot carry a feature: HAWQ's tables have no
    weight standard deviation, so feature 10 holds ``sqrt(||W - Q_8(W)||^2 / n)`` (proportional to
    the weights' range), normalised the same way; a tied unit shows its first layer's shape with
    the weights of all its layers. The digits-cnn table carries the live task's features, so its
    observations equal ``MixedPrecision-v0``'s at the same hardware, metric and budget.

    With ``budget_range`` (see Arguments) the budget is drawn per episode and shown: the space is
    ``Box(low, high, (14,), float32)``, feature 13 the episode's budget level in [0, 1] (feature 12
    stays the fraction of *that* budget left).

    ## Rewards

    0 on every step but the last; on the last, ``reward_scale * score_scale * (score - score_offset)``:
    for accuracy tables ``reward_scale * 100 * (accuracy - float_accuracy)`` as in
    ``MixedPrecision-v0`` (default ``reward_scale`` 0.1), for HAWQ's tables minus the perturbation
    (default ``reward_scale`` 1). ``info`` of the last step holds the policy, score (in
    ``accuracy``), costs (``latency_s``, ``size_bytes``, ``energy_j`` where the table has them, left out
    where it does not, e.g. HAWQ-V3's energy; all
    of the hardware's metrics, ``bops`` included, in ``costs``), ``budget_used``, extra columns
    (``columns["test_accuracy"]``), the exact optimum's score (``optimum_score``), the policy's
    ``regret``: ``score_scale * (optimum_score - score) >= 0`` in the table's ``regret_unit``, and
    ``cached`` (True for a policy this environment answered before: not a new reward evaluation,
    as in ``MixedPrecision-v0``), and ``table_digest``, the table's version (a regenerated table
    has another; ``train.py validate`` reports a saved result made on another version), and
    ``eval_cost_cpu_s``: the CPU seconds one evaluation of the live environment costs at the
    table's fidelity (recorded by the generator; left out where the table has no live counterpart,
    as HAWQ's), so that multi-fidelity methods can be charged for what they would spend live.

    ## Starting State

    The first unit, nothing spent: deterministic (a table has no randomness), unless
    ``budget_range`` is given: then ``reset`` draws the episode's budget level uniformly from its
    grid with the environment's generator (``reset(seed=...)`` seeds it; before the first reset
    the budget is the range's highest level).

    ## Episode End

    Terminated after the last unit; never truncated (an episode has exactly ``num_layers`` steps).

    ## Arguments

    * ``table``: a registered name ("hawq-resnet18" default, "hawq-resnet50", "digits-cnn",
      "mnist1d-small"), the path of an ``.npz`` table, or a
      :class:`~quant_envs.mixed_precision.tables.policy_table.PolicyTable`.
    * ``hardware``: one of the table's hardware (HAWQ: "t4"; digits-cnn and mnist1d-small: every
      ``hw_sim`` profile, default "bismo-edge").
    * ``budget_metric``: one of the hardware's metrics (HAWQ: "latency" default, "size", "bops";
      digits-cnn and mnist1d-small: "latency" default, "energy", "size").
    * ``budget_fraction`` (of the all-widest cost), ``budget_level`` (HAWQ-V3's: ``cost(all-narrowest)
      + level * (cost(all-widest) - cost(all-narrowest))``) or ``budget`` (absolute, in the metric's
      unit): at most one; default the table's (HAWQ: level 0.5; digits-cnn: fraction 0.4, where 349
      of the 2401 policies fit on bismo-edge; at ``MixedPrecision-v0``'s default 0.25 only 4 do;
      mnist1d-small: fraction 0.25 as ``MixedPrecision-v0``, where 215 of the 1024 policies fit).
    * ``fidelity``: retraining steps of the scores, one of those the table holds
      (:func:`quant_envs.mixed_precision.tables.fidelity.fidelities`; a table made at several
      fidelities holds each as columns); None (default): the table's own. The exact optimum, the
      regret and ``table_digest`` are those of the chosen fidelity.
    * ``budget_range``: ``(lo, hi)`` with ``0 <= lo <= hi <= 1``, or None (default: off, one fixed
      budget). On: every episode's budget is a HAWQ-V3 budget level drawn at ``reset`` uniformly from
      ``budget_grid`` (default 21) evenly spaced levels from ``lo`` to ``hi`` and shown as feature 13
      of the observation (and ``info["budget_level"]``); the masks, the exact optimum and the regret
      are those of the drawn budget; ``info["cached"]`` says whether this environment answered the
      policy before at any budget (a policy's score does not depend on the budget). The level is
      the Pareto track's normalised cost (0 = the cheapest policy, 1 = the dearest), so a range
      (0, 1) asks for the whole front. Not with ``budget_fraction``, ``budget_level`` or ``budget``.
    * ``invalid_action``: "project" (default) or "raise".
    * ``reward_scale``: multiplies the reward (default: the table's).
    * ``render_mode``: "ansi", "rgb_array" (bits per unit and each unit's cost share) or None.

    ## Version History

    * v0: initial release. Added since without a new id: ``budget_range`` and ``budget_grid``
      (off by default: episodes without them are unchanged). Changed since without a new id: ``info`` no longer carries
      ``eval_time_s`` (a look-up's, always 0.0: ``last_eval_time_s``), as no mixed-precision id
      reports wall-clock time in ``info``; ``info["table_digest"]`` names the
      table's version, and the digits-cnn and mnist1d-small tables were regenerated with their
      float network shipped, which changed their scores: digests ``370d5dc2199885ca`` and
      ``fa0679c68315d28b`` (before: ``4cbf513bfcac416d`` and ``8af5590dd67552a5``); a result
      saved on an older version does not replay (``train.py validate`` says so).
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Discrete | spaces.Box[np.float32]  # Box in the continuous version
    #: a look-up takes no evaluation time (the live environments' attribute of the same name)
    last_eval_time_s = 0.0

    def __init__(self, table: str | PolicyTable = "hawq-resnet18", hardware: str | None = None,
                 budget_metric: str | None = None, budget_fraction: float | None = None,
                 budget_level: float | None = None, budget: float | None = None,
                 invalid_action: str = "project", reward_scale: float | None = None,
                 render_mode: str | None = None, fidelity: int | None = None,
                 budget_range: Sequence[float] | None = None, budget_grid: int = 21) -> None:
        self.invalid_action = check_choice("invalid_action", invalid_action, INVALID_ACTION_MODES)
        self._set_render_mode(render_mode)
        #: the budget levels an episode's budget is drawn from (None: one fixed budget)
        self.budget_levels = None if budget_range is None else _budget_levels(
            budget_range, budget_grid, budget_fraction=budget_fraction, budget_level=budget_level, budget=budget)
        if self.budget_levels is not None:
            budget_level = float(self.budget_levels[-1])  # until the first reset draws one
        self.problem = TableProblem(table=table, hardware=hardware, budget_metric=budget_metric,
                                    budget_fraction=budget_fraction, budget_level=budget_level, budget=budget,
                                    fidelity=fidelity)
        p = self.problem
        self._level = len(self.budget_levels) - 1 if self.budget_levels is not None else -1
        self._problems = {self._level: p}  # one problem per budget level drawn (its masks and optimum)
        self._problem_args = {"table": table, "hardware": p.hardware, "budget_metric": p.budget_metric,
                              "fidelity": fidelity}
        self._asked = AskedBefore(p.cache_size)  # info["cached"] across budgets (budget_range only)
        self.table = p.table
        self.reward_scale = check_float("reward_scale", self.table.default_reward_scale if reward_scale is None
                                        else reward_scale, min_value=0.0, min_inclusive=False)
        self._reward_factor = self.reward_scale * self.table.score_scale
        self.two_steps_per_layer = False  # baselines read this: one width per unit
        self.bits = p.bits
        self.num_layers = self.num_steps = p.num_layers
        self.action_space = spaces.Discrete(len(self.bits))
        size = features.NUM_FEATURES + (self.budget_levels is not None)  # + the budget level
        low = np.zeros(size, dtype=np.float32)
        low[features.Feature.BUDGET_LEFT] = -1.0
        self.observation_space = spaces.Box(low, np.ones(size, dtype=np.float32), dtype=np.float32)
        widest = p.unit_cost[:, -1]
        self._static = features.static_features(p.layers, p.weight_std, widest / widest.sum()).astype(np.float32)
        span = self.bits[-1] - self.bits[0]
        self._action_value = [(b - self.bits[0]) / span if span else 1.0 for b in self.bits]
        self._reset_state()

    # ------------------------------------------------------------------------------ episode
    def _reset_state(self) -> None:
        self._t = 0
        self._idx = np.full(self.num_layers, -1, dtype=int)
        self._spent = 0.0
        self._last_action = 1.0
        self._last_evaluation: TableEvaluation | None = None
        self._mask = self.problem.step_mask(0, 0.0)
        self._begin_episode()  # stepping before reset() was always allowed

    def action_masks(self) -> np.ndarray:
        """Boolean mask over ``bits`` of the widths allowed at this step (all True once done)."""
        return self._mask.copy()

    def _observation(self) -> Observation:
        obs = features.observation(self._static, min(self._t, self.num_layers - 1), self._t < self.num_steps,
                                   self._last_action, (self.problem.budget - self._spent) / self.problem.budget)
        if self.budget_levels is None:
            return obs
        return np.append(obs, np.float32(self.budget_levels[self._level]))

    def _info(self) -> dict[str, Any]:
        info = {"action_mask": self._mask.astype(np.int8), "layer": min(self._t, self.num_layers - 1)}
        if self.budget_levels is not None:
            info["budget_level"] = float(self.budget_levels[self._level])
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        if self.budget_levels is not None:  # only then is the generator drawn from: default episodes unchanged
            self._level = int(self.np_random.integers(len(self.budget_levels)))
            self.problem = self._problem_at(self._level)
        self._reset_state()
        return self._observation(), self._info()

    def _problem_at(self, level: int) -> TableProblem:
        if level not in self._problems:
            assert self.budget_levels is not None
            self._problems[level] = TableProblem(**self._problem_args, budget_level=float(self.budget_levels[level]))
        return self._problems[level]

    def _choose(self, action: Action) -> tuple[int, dict[str, Any]]:
        return choose_width(action, self._mask, self.bits, self.invalid_action, self._t)

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        j, extra = self._choose(action)
        i = self._t
        self._idx[i] = j
        self._spent += float(self.problem.unit_cost[i, j])
        self._last_action = self._action_value[j]
        self._t += 1
        done = self._done = self._t == self.num_steps
        self._mask = np.ones(len(self.bits), dtype=bool) if done else self.problem.step_mask(self._t, self._spent)
        info = self._info()
        if extra:
            info.update(extra)
        reward = 0.0
        if done:
            evaluation = self.problem.evaluate_indices(self._idx)
            self._last_evaluation = evaluation
            reward = self._reward_factor * (evaluation.score - self.table.score_offset)
            # a metric the table does not publish (HAWQ-V3's energy) is left out, never reported as NaN
            info.update({k: v for k, v in evaluation.__dict__.items()
                         if k != "eval_time_s" and not (isinstance(v, float) and math.isnan(v))})
            info["policy"] = [list(p) for p in evaluation.policy]
            if self.budget_levels is not None:  # one problem per budget: "asked before" across all of them
                info["cached"] = self._asked.seen(tuple(self._idx.tolist()))
        return self._observation(), float(reward), done, False, info

    @property
    def policy(self) -> PartialPolicy:
        """The widths chosen so far ((w, a) per unit; None for units not yet set)."""
        return tuple((self.bits[k], self.bits[k]) if k >= 0 else (None, None) for k in self._idx)

    def _render_rgb_array(self) -> np.ndarray:
        x = np.arange(self.num_layers)
        fig = new_figure()
        ax = fig.add_subplot()
        ax.bar(x, [self.bits[k] if k >= 0 else 0 for k in self._idx], 0.6, label="bits")
        ax.set_xlabel("unit")
        ax.set_ylabel("bits")
        ax.set_ylim(0, max(self.bits) + 1)
        ax2 = ax.twinx()
        ax2.plot(x, self._static[:, features.Feature.COST_SHARE], "k.-")
        ax2.set_ylabel(f"share of all-widest {self.problem.budget_metric}")
        fig.tight_layout()
        return figure_to_rgb(fig)

    def _render_ansi(self) -> str:
        p = self.problem
        unit = self.table.metric_units[p.budget_metric]
        lines = [f"{'#':>3} {'unit':<64} {'bits':>4} {p.budget_metric + ' (' + unit + ')':>18}"]
        for i, names in enumerate(self.table.units):
            k = self._idx[i]
            cost = float(p.unit_cost[i, k]) if k >= 0 else float("nan")
            lines.append(f"{i:>3} {'+'.join(names)[:64]:<64} {self.bits[k] if k >= 0 else '-'!s:>4} {cost:>18.6g}")
        lines.append(f"spent {self._spent:.6g} {unit} of budget {p.budget:.6g} {unit} ({self._spent / p.budget:.1%})")
        if self._last_evaluation is not None:
            e = self._last_evaluation
            lines.append(f"score {e.score:.6g} (optimum {e.optimum_score:.6g}); regret {e.regret:.6g} "
                         f"{self.table.regret_unit}")
        return "\n".join(lines) + "\n"


def _budget_levels(budget_range: Sequence[float], budget_grid: int, **fixed: float | None) -> np.ndarray:
    """The evenly spaced budget levels of ``budget_range`` an episode's budget is drawn from."""
    given = sorted(k for k, v in fixed.items() if v is not None)
    if given:
        raise ValueError(f"budget_range draws each episode's budget; pass none of {given} with it "
                         "(or leave budget_range out for one fixed budget)")
    if isinstance(budget_range, (str, bytes)) or not isinstance(budget_range, Sequence) or len(budget_range) != 2:
        raise TypeError(f"budget_range={budget_range!r} must be a pair (lo, hi) of budget levels in [0, 1]")
    lo = check_float("budget_range[0]", budget_range[0], min_value=0.0, max_value=1.0)
    hi = check_float("budget_range[1]", budget_range[1], min_value=lo, max_value=1.0)
    n = check_int("budget_grid", budget_grid, min_value=1 if lo == hi else 2)
    return np.linspace(lo, hi, n)


class MixedPrecisionTableContinuousEnv(MixedPrecisionTableEnv):
    """HAQ's continuous-action version of :class:`MixedPrecisionTableEnv`.

    ## Description

    The table benchmark of ``quant_envs/MixedPrecisionTable-v0`` (rewards looked up, exact optimum
    and regret in ``info``) with the continuous action of ``quant_envs/MixedPrecisionContinuous-v1``
    (HAQ, Wang et al., CVPR 2019), for DDPG-style agents such as ``train.py --algo ddpg_haq``. The
    action is mapped onto the widths the budget still allows at this step (the exact masks of the
    discrete version), so every episode ends within budget, and a policy's reward, score and regret
    are those the discrete version gives the same widths.

    ## Action Space

    ``Box(0, 1, (1,), float32)``. With ``n`` allowed widths (ascending), action ``u`` selects
    allowed width number ``min(floor(u * n), n - 1)``: equal-length intervals, as HAQ's rounding of
    ``u`` onto the range of widths (the rule of ``MixedPrecisionContinuous-v1``,
    :func:`quant_envs.mixed_precision.actions.choose_continuous_width`). ``action_masks()`` and
    ``info["action_mask"]`` show the allowed widths; no action is invalid.

    ## Observation Space

    As ``MixedPrecisionTable-v0``: ``Box(low, high, (13,), float32)`` (14 with ``budget_range``).

    ## Rewards

    As ``MixedPrecisionTable-v0``: ``reward_scale * score_scale * (score - score_offset)`` on the
    last step, with the same ``info`` (policy, score, costs, ``regret``, ``cached``, ``table_digest``).

    ## Starting State

    As ``MixedPrecisionTable-v0``: the first unit, nothing spent.

    ## Episode End

    As ``MixedPrecisionTable-v0``: terminated after the last unit, never truncated.

    ## Arguments

    Those of ``MixedPrecisionTable-v0`` but ``invalid_action`` (no action is invalid): ``table``,
    ``hardware``, ``budget_metric``, ``budget_fraction`` / ``budget_level`` / ``budget``,
    ``budget_range`` and ``budget_grid``, ``fidelity``, ``reward_scale``, ``render_mode``.

    ## Version History

    * v0: initial release.
    """

    def __init__(self, **kwargs: Any) -> None:
        if "invalid_action" in kwargs:
            raise TypeError("invalid_action is not an argument of the continuous table environment: "
                            "its action is mapped onto the allowed widths, so no action is invalid")
        super().__init__(**kwargs)
        self.action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def _choose(self, action: Action) -> tuple[int, dict[str, Any]]:
        return choose_continuous_width(action, self._mask), {}
