"""``quant_envs/MixedPrecisionMultiHardware-v0``: one policy for many accelerators.

Each episode runs on an accelerator drawn (or cycled) from a list or an ``hw_sim.AcceleratorFamily``;
the episode itself is an ordinary ``MixedPrecision-v0`` episode (or a ``MixedPrecisionTable-v0``
one with ``table=``) on that accelerator, built once per accelerator and reused (composition, not a
new problem model). The observation appends a fixed-length hardware descriptor
(:func:`hardware_descriptor`, :data:`DESCRIPTOR_GROUPS`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

import hw_sim
from quant_envs.base import QuantEnv
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.mixed_precision import features
from quant_envs.mixed_precision.actions import Action
from quant_envs.mixed_precision.config import DEFAULTS_V0
from quant_envs.mixed_precision.env import MixedPrecisionEnv
from quant_envs.mixed_precision.features import Observation
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.tables.costs import equal_width_costs
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv
from quant_envs.mixed_precision.tables.fidelity import at_fidelity
from quant_envs.mixed_precision.tables.policy_table import PolicyTable
from quant_envs.mixed_precision.tables.registry import load_table

if TYPE_CHECKING:
    from quant_envs.mixed_precision.problem import PartialPolicy
    from quant_envs.mixed_precision.tables.problem import TableProblem

HARDWARE_ORDERS = ("draw", "cycle")

#: The descriptor's feature groups in order, and their lengths for ``nb`` widths (see
#: :func:`hardware_descriptor`); ``descriptor=`` keeps a subset (the others read 0, same length).
DESCRIPTOR_GROUPS = ("layer_cost", "peak", "memory", "arithmetic", "network")

#: An accelerator's array is saturated by this GEMM (4096 x 4096 x 4096): its compute time gives
#: the peak MAC rate at each width.
_PEAK_LAYER = hw_sim.LayerShape.linear(4096, 4096, tokens=4096)


def descriptor_size(num_bits: int) -> int:
    return 2 * num_bits + 5 + 3 + 2


def _group_slices(nb: int) -> dict[str, slice]:
    sizes = {"layer_cost": nb, "peak": nb, "memory": 5, "arithmetic": 3, "network": 2}
    out, start = {}, 0
    for g in DESCRIPTOR_GROUPS:
        out[g] = slice(start, start + sizes[g])
        start += sizes[g]
    return out


def _unit(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    return np.clip((np.asarray(x, dtype=float) - lo) / (hi - lo), 0.0, 1.0)


def hardware_descriptor(accelerator: hw_sim.Accelerator, table: hw_sim.CostTable, metric: str,
                        budget: float, groups: Sequence[str] = DESCRIPTOR_GROUPS) -> np.ndarray:
    """[layers, D] hardware features, all in [0, 1] (D = ``2 * len(bits) + 10``):
    * ``layer_cost`` (len(bits)): the layer's ``metric`` cost at each width (w = a) / at the widest;
    * ``peak`` (len(bits)): ``(log10(peak MAC/s) - 9) / 6`` at each width (w = a), from the compute
      time of a 4096^3 GEMM at the accelerator's batch (1e9 .. 1e15 MAC/s);
    * ``memory`` (5): ``(log10(DRAM bytes/s) - 8) / 4``; ``(log2(weight + input buffer bytes) - 10) / 20``;
      ``log2(batch) / 6``; the layer is memory-bound at the widest / at the narrowest width (0/1);
    * ``arithmetic`` (3): one-hot bit-serial, bit-fused, fixed-width (:func:`hw_sim.arithmetic_kind`);
    * ``network`` (2): the cheapest policy's and the budget's cost as fractions of the all-widest cost.

    Groups not in ``groups`` are 0 (the length never changes).
    """
    nb = len(table.bits)
    diag = np.arange(nb)
    cost = np.asarray(getattr(table, metric))[:, diag, diag]  # [L, nb]
    n = cost.shape[0]
    d = np.zeros((n, descriptor_size(nb)))
    s = _group_slices(nb)
    widest = cost[:, -1:]
    d[:, s["layer_cost"]] = np.clip(np.divide(cost, widest, out=np.ones_like(cost), where=widest > 0), 0.0, 1.0)
    batch = table.batch
    macs = _PEAK_LAYER.macs * batch
    widths = np.asarray(table.bits)  # validated by the table; one vectorised evaluation for all widths
    peak = macs / accelerator.evaluate([_PEAK_LAYER], widths, widths, batch)["compute_s"].reshape(-1)
    d[:, s["peak"]] = _unit(np.log10(peak), 9.0, 15.0)
    bound = np.asarray(table.memory_bound)[:, diag, diag]
    d[:, s["memory"]] = np.column_stack([
        np.full(n, _unit(math.log10(accelerator.dram_bandwidth_bytes_per_s), 8.0, 12.0)),
        np.full(n, _unit(math.log2(accelerator.weight_buffer_bytes + accelerator.input_buffer_bytes), 10.0, 30.0)),
        np.full(n, _unit(math.log2(batch), 0.0, 6.0)),
        bound[:, -1], bound[:, 0]])
    kind = hw_sim.arithmetic_kind(accelerator)
    d[:, s["arithmetic"]] = [k == kind for k in hw_sim.ARITHMETIC]
    all_widest = float(cost[:, -1].sum())
    d[:, s["network"]] = np.clip([cost.min(axis=1).sum() / all_widest, budget / all_widest], 0.0, 1.0)
    for g in DESCRIPTOR_GROUPS:
        if g not in groups:
            d[:, s[g]] = 0.0
    return d.astype(np.float32)


def _family_of(spec: dict[str, Any]) -> hw_sim.AcceleratorFamily:
    """A family from a plain mapping (``--env-kwargs`` YAML): ``{"family": profile, **AcceleratorFamily kwargs}``."""
    kw = dict(spec)
    if "family" not in kw:
        raise ValueError(f"hardware entry {spec!r} is not allowed; a mapping needs a 'family' key naming the base "
                         f"profile, with optional frequency, bandwidth, buffer, arithmetic, batch")
    base = kw.pop("family")
    allowed = {"frequency", "bandwidth", "buffer", "arithmetic", "batch"}
    if set(kw) - allowed:
        raise ValueError(f"hardware entry {spec!r} is not allowed; unknown keys {sorted(set(kw) - allowed)}, "
                         f"expected some of {sorted(allowed)}")
    return hw_sim.AcceleratorFamily(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})


def _check_hardware(hardware: Any) -> list[hw_sim.Accelerator | hw_sim.AcceleratorFamily]:
    single = (str, dict, hw_sim.Accelerator, hw_sim.AcceleratorFamily)
    items = [hardware] if isinstance(hardware, single) else hardware
    try:
        items = list(items)
    except TypeError:
        items = None
    if not items:
        raise TypeError(f"hardware={hardware!r} must be a profile name, an hw_sim.Accelerator, an "
                        f"hw_sim.AcceleratorFamily or a non-empty list of them")
    out: list[hw_sim.Accelerator | hw_sim.AcceleratorFamily] = []
    for h in items:
        if isinstance(h, hw_sim.AcceleratorFamily):
            out.append(h)
        elif isinstance(h, dict):
            out.append(_family_of(h))
        elif isinstance(h, (str, hw_sim.Accelerator)):
            acc = hw_sim.get_accelerator(h)
            hw_sim.arithmetic_kind(acc)  # a model, not a measured table: the descriptor needs its parameters
            out.append(acc)
        else:
            raise TypeError(f"hardware entry {h!r} must be a profile name, an hw_sim.Accelerator or an "
                            f"hw_sim.AcceleratorFamily, got {type(h).__name__}")
    return out


@dataclasses.dataclass
class _Device:
    """One accelerator's episode machinery: the inner environment and its descriptor rows."""

    accelerator: hw_sim.Accelerator
    env: MixedPrecisionEnv | MixedPrecisionTableEnv
    descriptor: np.ndarray  # [layers, D]
    budget_clipped: bool


class MixedPrecisionMultiHardwareEnv(QuantEnv[Observation, Action]):
    """Mixed-precision quantization on an accelerator drawn per episode, with the hardware in the state.

    ## Description

    HAQ (Wang et al., CVPR 2019, Table 1) shows that a policy searched for one accelerator is wrong
    for another, and every new accelerator costs a new search. Here each ``reset`` puts the episode
    on an accelerator drawn (or cycled) from ``hardware``: a list of ``hw_sim`` profiles or
    accelerators, and/or ``hw_sim.AcceleratorFamily`` distributions (a family draws a fresh
    accelerator each time it is picked). The episode is exactly ``MixedPrecision-v0``'s on that
    accelerator (or, with ``table=``, ``MixedPrecisionTable-v0``'s: rewards read from an exhaustive
    table, so accuracy is hardware-independent and only costs, masks and budget change), and the
    observation gains a fixed-length descriptor of the hardware, so one policy can read the device
    and answer for one it never saw. ``reset(options={"hardware": h})`` pins the episode to ``h``
    (a name, an accelerator or a family), e.g. to evaluate on held-out devices.

    ## Action Space

    ``Discrete(len(bits))`` as ``MixedPrecision-v0``: action ``j`` is the width ``bits[j]`` of the
    current layer (weights and activations). ``action_masks()`` is the inner environment's exact
    budget mask on the current accelerator; masked actions are projected or raise
    (``invalid_action``).

    ## Observation Space

    ``Box(low, high, (13 + D,), float32)``, ``D = 2 * len(bits) + 10`` (24 for 2..8 bits):
    features 0-12 are ``MixedPrecision-v0``'s (12 = budget left, in [-1, 1]; all others in
    [0, 1]), then the descriptor of :func:`hardware_descriptor`, all in [0, 1]: the current layer's
    cost at each width relative to its widest (``layer_cost``), log peak MAC/s at each width
    (``peak``), log DRAM bandwidth, log on-chip buffer, log batch and the current layer's
    memory-bound flags at the widest and narrowest width (``memory``), the arithmetic kind one-hot
    (``arithmetic``), the cheapest policy's and the budget's fractions of the all-widest cost
    (``network``). ``descriptor=`` keeps a subset of these groups (the rest read 0), for ablations.

    ## Rewards

    The inner environment's: 0 until the last step, then ``reward_scale * 100 * (accuracy -
    float_accuracy)`` (``MixedPrecision-v0``; on a table, the table's reward). ``info`` as the
    inner environment's (policy, accuracy, costs, ``budget_used``; on a table also ``regret`` and
    ``optimum_score`` for this accelerator at this budget), plus ``hardware`` (the accelerator's
    name) on every step and ``budget_clipped`` (see ``budget_fraction``). ``info["cached"]`` is
    True when this environment asked for the policy on this accelerator before; ``info`` holds no
    wall-clock time (the last evaluation's is ``last_eval_time_s``).

    ## Starting State

    The first layer, nothing spent, on an accelerator chosen by ``hardware_order``: ``"draw"``
    (default) picks a list entry uniformly with the environment's seeded generator (a family
    entry then draws from it), ``"cycle"`` walks the list in order. Same seed, same accelerators,
    same episodes.

    ## Episode End

    Terminated after the last layer; never truncated (``num_layers`` steps).

    ## Arguments

    * ``hardware``: a profile name, ``hw_sim.Accelerator``, ``hw_sim.AcceleratorFamily`` (or a
      mapping ``{"family": profile, **its keyword arguments}``, as ``--env-kwargs`` YAML gives), or
      a list of them (default: the five ``hw_sim`` profiles). Measured tables are refused: the
      descriptor needs the model's parameters.
    * ``hardware_order``: "draw" (default) or "cycle".
    * ``table``: None (default: live retraining, ``MixedPrecision-v0``) or a table registered for
      ``MixedPrecisionTable-v0`` that records its layers' shapes (e.g. "digits-cnn"): its costs are
      recomputed for each accelerator with ``hw_sim``.
    * ``task``, ``finetune_steps``, ``eval_split``, ``eval_seed``, ``cache_size``, ``task_kwargs``,
      ``cache_dir``: as ``MixedPrecision-v0`` (live mode only).
    * ``bits``: widths (default 2..8; live mode only: a table has its own).
    * ``budget_metric``: "latency" (default), "energy" or "size".
    * ``budget_level``: ``cheapest + level * (all-8-bit - cheapest)`` per accelerator (HAWQ-V3's
      budget, always feasible; default 0.3), or ``budget_fraction``: the budget as a fraction of
      each accelerator's own all-8-bit cost. A fixed fraction is infeasible on many devices (on
      digits-cnn's latency the cheapest policy costs 0.22 of all-8-bit on a bit-serial draw and
      0.98 on a bit-fused one); there the budget becomes the cheapest policy's cost and
      ``info["budget_clipped"]`` is True. At most one of the two.
    * ``descriptor``: the descriptor groups to fill (default all of ``DESCRIPTOR_GROUPS``).
    * ``invalid_action``, ``reward_scale`` (default 0.1), ``render_mode``: as ``MixedPrecision-v0``.
    * ``max_devices``: inner environments kept (least recently used dropped; default 256).
    * ``fidelity``: with ``table``, the retraining steps of its scores (one the table holds; None:
      its default), as ``MixedPrecisionTable-v0``'s.

    ## Version History

    * v0: initial release. ``info`` is a function of the instance's own history (Gymnasium's strict
      determinism check passes): the wall-clock ``info["eval_time_s"]`` is gone (see
      ``last_eval_time_s``), ``info["cached"]`` is this instance's own history; observations and
      rewards unchanged, so no version bump. The ``fidelity`` argument (table mode) serves a
      table's other fidelities; its default is the table's own, as before.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Discrete

    def __init__(self, hardware: Any = tuple(hw_sim.PROFILES), hardware_order: str = "draw",
                 table: str | None = None, task: str = DEFAULTS_V0.task,
                 bits: Iterable[int] = DEFAULTS_V0.bits,
                 budget_metric: str = DEFAULTS_V0.budget_metric, budget_fraction: float | None = None,
                 budget_level: float | None = None, descriptor: Sequence[str] = DESCRIPTOR_GROUPS,
                 finetune_steps: int | None = DEFAULTS_V0.finetune_steps, invalid_action: str = "project",
                 reward_scale: float = 0.1, eval_split: str = DEFAULTS_V0.eval_split,
                 eval_seed: int = DEFAULTS_V0.eval_seed, cache_size: int = DEFAULTS_V0.cache_size,
                 task_kwargs: dict[str, Any] | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 max_devices: int = 256, render_mode: str | None = None, fidelity: int | None = None) -> None:
        self.hardware = _check_hardware(hardware)
        self.hardware_order = check_choice("hardware_order", hardware_order, HARDWARE_ORDERS)
        self._set_render_mode(render_mode)
        self.budget_metric = check_choice("budget_metric", budget_metric, hw_sim.METRICS)
        if budget_fraction is not None and budget_level is not None:
            raise ValueError("pass at most one of budget_fraction, budget_level; got both")
        if budget_level is not None:
            self._budget = ("level", check_float("budget_level", budget_level, min_value=0.0))
        elif budget_fraction is not None:
            self._budget = ("fraction", check_float("budget_fraction", budget_fraction, min_value=0.0,
                                                    min_inclusive=False))
        else:  # a fixed fraction is infeasible on many devices (digits-cnn's cheapest: 0.22 .. 0.98 of 8-bit)
            self._budget = ("level", 0.3)
        if isinstance(descriptor, str) or any(g not in DESCRIPTOR_GROUPS for g in descriptor):
            raise ValueError(f"descriptor={descriptor!r} is not allowed; expected a subset of {DESCRIPTOR_GROUPS}")
        self.descriptor = tuple(descriptor)
        self.max_devices = check_int("max_devices", max_devices, min_value=1)
        self.table = table
        self._inner_kwargs: dict[str, Any] = dict(invalid_action=invalid_action, reward_scale=reward_scale,
                                                  render_mode=render_mode)
        if table is not None:
            self._table = at_fidelity(table if isinstance(table, PolicyTable) else load_table(table), fidelity)
            shapes = self._table.meta.get("hw_layer_shapes")
            if shapes is None:
                raise ValueError(f"table={table!r} is not allowed: it records no hw_sim layer shapes "
                                 f"(meta['hw_layer_shapes']), so its costs cannot follow the accelerator")
            self._shapes = [hw_sim.LayerShape(**s) for s in shapes]
            self.bits = tuple(self._table.bits)
        else:  # live: build the task once; every accelerator's problem shares it
            if fidelity is not None:
                raise ValueError(f"fidelity={fidelity!r} is not allowed without a table; the live environment "
                                 "takes finetune_steps")
            first = self.hardware[0]
            # MixedPrecision-v0's problem defaults; the budget is set per accelerator (_get_device)
            probe = MixedPrecisionProblem.from_config(DEFAULTS_V0.replace(
                task=task, hardware=first.base if isinstance(first, hw_sim.AcceleratorFamily) else first,
                bits=bits, budget_metric=self.budget_metric, budget_fraction=1.0, finetune_steps=finetune_steps,
                eval_split=eval_split, eval_seed=eval_seed, cache_size=cache_size, task_kwargs=task_kwargs,
                cache_dir=cache_dir))
            self._shapes = list(probe.costs.layers)  # the layers' hw_sim shapes
            self.bits = probe.bits
            self._inner_kwargs.update(task=probe.task, bits=self.bits, finetune_steps=finetune_steps,
                                      eval_split=eval_split, eval_seed=eval_seed, cache_size=cache_size)
        self.num_layers = self.num_steps = len(self._shapes)
        self._devices: OrderedDict[str, _Device] = OrderedDict()
        nb = len(self.bits)
        dim = features.NUM_FEATURES + descriptor_size(nb)
        low = np.zeros(dim, dtype=np.float32)
        low[features.Feature.BUDGET_LEFT] = -1.0
        self.observation_space = spaces.Box(low, np.ones(dim, dtype=np.float32), dtype=np.float32)
        self.action_space = spaces.Discrete(nb)
        self._cycle = 0
        first = self.hardware[0]  # a valid state before reset, consuming neither the cycle nor np_random
        self._device = self._get_device(first.draw(np.random.default_rng(0))
                                        if isinstance(first, hw_sim.AcceleratorFamily) else first)

    # ---------------------------------------------------------------------------- devices
    def _choose_hardware(self, pinned: Any) -> hw_sim.Accelerator:
        if pinned is not None:
            entry = _check_hardware(pinned)[0]
        elif self.hardware_order == "cycle":
            entry = self.hardware[self._cycle % len(self.hardware)]
            self._cycle += 1
        else:
            entry = self.hardware[int(self.np_random.integers(len(self.hardware)))]
        return entry.draw(self.np_random) if isinstance(entry, hw_sim.AcceleratorFamily) else entry

    def _get_device(self, acc: hw_sim.Accelerator) -> _Device:
        key = repr(acc)  # frozen dataclass: equal parameters, same device (names alone may collide)
        dev = self._devices.get(key)
        if dev is not None:
            self._devices.move_to_end(key)
            return dev
        costs = hw_sim.CostTable(self._shapes, acc, bits=self.bits)
        nb = len(self.bits)
        diag = np.arange(nb)
        metric = np.asarray(getattr(costs, self.budget_metric))
        if self.table is None:  # w and a free per layer in MixedPrecision-v0: its cheapest pair
            cheapest = float(metric.min(axis=(1, 2)).sum())
        else:
            cheapest = float(metric[:, diag, diag].min(axis=1).sum())
        widest = float(metric[:, -1, -1].sum())
        kind, value = self._budget
        budget = value * widest if kind == "fraction" else cheapest + value * (widest - cheapest)
        clipped = budget < cheapest
        budget = max(budget, cheapest)
        env = self._inner_env(acc, costs, budget)
        dev = _Device(acc, env, hardware_descriptor(acc, costs, self.budget_metric, budget, self.descriptor), clipped)
        self._devices[key] = dev
        if len(self._devices) > self.max_devices:
            self._devices.popitem(last=False)
        return dev

    def _inner_env(self, acc: hw_sim.Accelerator, costs: hw_sim.CostTable,
                   budget: float) -> MixedPrecisionEnv | MixedPrecisionTableEnv:
        if self.table is None:
            return MixedPrecisionEnv(hardware=acc, budget_metric=self.budget_metric, budget=budget,
                                     **self._inner_kwargs)

        own = equal_width_costs(costs)
        table = dataclasses.replace(self._table, costs={acc.name: own}, default_hardware=acc.name)
        return MixedPrecisionTableEnv(table=table, hardware=acc.name, budget_metric=self.budget_metric,
                                      budget=budget, **self._inner_kwargs)

    @property
    def accelerator(self) -> hw_sim.Accelerator:
        """The accelerator of the current episode."""
        return self._device.accelerator

    @property
    def inner(self) -> MixedPrecisionEnv | MixedPrecisionTableEnv:
        """The current accelerator's ``MixedPrecision-v0`` (or table) environment."""
        return self._device.env

    @property
    def last_eval_time_s(self) -> float:
        """Wall time (s) of the current accelerator's last evaluation (not in ``info``)."""
        return self._device.env.last_eval_time_s

    @property
    def problem(self) -> MixedPrecisionProblem | TableProblem:
        """The current accelerator's problem (costs, budget, optimum on a table)."""
        return self._device.env.problem

    # ---------------------------------------------------------------------------- episode
    def _observation(self, inner_obs: Observation, layer: int) -> Observation:
        return np.concatenate([inner_obs.astype(np.float32), self._device.descriptor[layer]])

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info["hardware"] = self._device.accelerator.name
        info["budget_clipped"] = self._device.budget_clipped
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._cycle = 0
        pinned = (options or {}).get("hardware")
        self._device = self._get_device(self._choose_hardware(pinned))
        obs, info = self._device.env.reset()
        return self._observation(obs, info["layer"]), self._info(info)

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._device.env.step(action)
        return self._observation(obs, info["layer"]), reward, terminated, truncated, self._info(info)

    def action_masks(self) -> np.ndarray:
        """Boolean mask over ``bits`` of the widths allowed at this step on this accelerator."""
        return self._device.env.action_masks()

    @property
    def policy(self) -> PartialPolicy:
        return self._device.env.policy

    # The episode guard is the inner environment's (the same QuantEnv guard); rendering too.
    def _render_ansi(self) -> str:
        return (f"hardware {self._device.accelerator.name}: {self._device.accelerator.description}\n"
                f"{self._device.env.render()}")

    def _render_rgb_array(self) -> np.ndarray:
        frame = self._device.env.render()
        assert isinstance(frame, np.ndarray)  # the inner environment renders in the same mode
        return frame
