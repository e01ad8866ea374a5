"""Hardware as a distribution: seeded draws of accelerators from a parametrised family around a profile.

An :class:`AcceleratorFamily` perturbs one base accelerator (a profile name or an instance) along
the axes that decide which bit widths pay off:

==================  ===========================================================================
axis                draw (each independent; log-uniform factors multiply the base's value)
==================  ===========================================================================
peak throughput     ``frequency_hz`` x U_log[``frequency``] (default 0.5 .. 2): every width's
                    peak ops/s scales with the clock
arithmetic          one of ``arithmetic`` (default: the base's own kind): ``"bit-serial"``
                    (BISMO's array: cost ~ w x a), ``"bit-fused"`` (Bit Fusion's 2-bit bricks:
                    cost steps at 2/4/8 bits), ``"fixed-width"`` (8-bit MACs: only memory
                    traffic shrinks below 8 bits); a kind other than the base's takes the compute
                    array of its template profile (:data:`ARITHMETIC`) and keeps the base's
                    memory system
DRAM bandwidth      ``dram_bandwidth_bytes_per_s`` x U_log[``bandwidth``] (default 0.25 .. 4)
on-chip buffers     every buffer x U_log[``buffer``] (default 0.25 .. 4), one factor for all
batch               uniform over ``batch`` (default: the base's own ``default_batch`` only)
==================  ===========================================================================

Each draw is an ordinary frozen :class:`~hw_sim.Accelerator` (``dataclasses.replace`` of a
profile), so its :class:`~hw_sim.CostTable` builds exactly as fast as the profile's; its name is
``"<base>~<8 hex digits>"``, a function of the generator's state, so one seed gives the same
accelerators (names included) on every run.

>>> import hw_sim
>>> fam = hw_sim.AcceleratorFamily("bismo-edge", arithmetic=("bit-serial", "fixed-width"))
>>> a, b = fam.sample(seed=0, n=2)
>>> [x.name for x in fam.sample(seed=0, n=2)] == [a.name, b.name]
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hw_sim.accelerators import (
    Accelerator,
    BitFusionAccelerator,
    BitParallelAccelerator,
    BitSerialAccelerator,
)
from hw_sim.profiles import get_accelerator

#: Arithmetic kinds and the profile whose compute array a draw of that kind takes.
ARITHMETIC: dict[str, str] = {"bit-serial": "bismo-edge", "bit-fused": "bitfusion", "fixed-width": "int8-npu"}

#: Fields holding the memory system a draw keeps from its base when it changes arithmetic.
_MEMORY_FIELDS = ("frequency_hz", "dram_bandwidth_bytes_per_s", "weight_buffer_bytes", "input_buffer_bytes",
                  "default_batch", "dram_energy_per_bit_j")


def arithmetic_kind(accelerator: Accelerator) -> str:
    """``"bit-serial"``, ``"bit-fused"`` or ``"fixed-width"``: how ``accelerator`` computes below 8 bits."""
    if isinstance(accelerator, BitSerialAccelerator):
        return "bit-serial"
    if isinstance(accelerator, BitFusionAccelerator) and accelerator.bitbrick_bits < accelerator.max_fused_bits:
        return "bit-fused"
    if isinstance(accelerator, (BitFusionAccelerator, BitParallelAccelerator)):
        return "fixed-width"
    raise ValueError(f"accelerator={accelerator.name!r} ({type(accelerator).__name__}) has no arithmetic kind; "
                     f"expected a bit-serial, bit-fused or bit-parallel hw_sim model")


def _check_range(name: str, value: Any) -> tuple[float, float]:
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r} must be a (low, high) pair of positive numbers") from None
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"{name}={value!r} is not allowed; expected 0 < low <= high < inf")
    return lo, hi


@dataclasses.dataclass(frozen=True)
class AcceleratorFamily:
    """Accelerators drawn around ``base``; see the module docstring for every axis and its default."""

    base: str | Accelerator
    frequency: tuple[float, float] = (0.5, 2.0)
    bandwidth: tuple[float, float] = (0.25, 4.0)
    buffer: tuple[float, float] = (0.25, 4.0)
    arithmetic: tuple[str, ...] | None = None
    batch: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        base = get_accelerator(self.base)
        arithmetic_kind(base)  # the base must be a model, not a measured table
        object.__setattr__(self, "base", base)
        for name in ("frequency", "bandwidth", "buffer"):
            object.__setattr__(self, name, _check_range(name, getattr(self, name)))
        kinds = (arithmetic_kind(base),) if self.arithmetic is None else self.arithmetic
        if isinstance(kinds, str) or not kinds or any(k not in ARITHMETIC for k in kinds):
            raise ValueError(f"arithmetic={self.arithmetic!r} is not allowed; expected a non-empty tuple of "
                             f"{sorted(ARITHMETIC)} or None (the base's own kind)")
        object.__setattr__(self, "arithmetic", tuple(kinds))
        batch = (base.default_batch,) if self.batch is None else self.batch
        if isinstance(batch, (str, bytes)) or not batch or any(
                isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1 for b in batch):
            raise ValueError(f"batch={self.batch!r} is not allowed; expected a non-empty tuple of integers >= 1 "
                             f"or None (the base's default batch)")
        object.__setattr__(self, "batch", tuple(int(b) for b in batch))

    # __post_init__ resolves ``base`` to an Accelerator and fills in ``arithmetic`` and ``batch``;
    # these read them back with those types
    @property
    def _base(self) -> Accelerator:
        assert isinstance(self.base, Accelerator)
        return self.base

    @property
    def _kinds(self) -> tuple[str, ...]:
        assert self.arithmetic is not None
        return self.arithmetic

    @property
    def _batches(self) -> tuple[int, ...]:
        assert self.batch is not None
        return self.batch

    @property
    def name(self) -> str:
        return self._base.name

    def _template(self, kind: str) -> Accelerator:
        base = self._base
        if kind == arithmetic_kind(base):
            return base
        template = get_accelerator(ARITHMETIC[kind])
        return dataclasses.replace(template, **{f: getattr(base, f) for f in _MEMORY_FIELDS})

    def draw(self, rng: np.random.Generator) -> Accelerator:
        """One accelerator from ``rng`` (a ``numpy.random.Generator``)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng={rng!r} must be a numpy.random.Generator, got {type(rng).__name__}")

        def log_uniform(lo_hi: tuple[float, float]) -> float:
            lo, hi = lo_hi
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

        kind = self._kinds[int(rng.integers(len(self._kinds)))]
        f, bw, buf = log_uniform(self.frequency), log_uniform(self.bandwidth), log_uniform(self.buffer)
        batch = self._batches[int(rng.integers(len(self._batches)))]
        tag = f"{int(rng.integers(1 << 32)):08x}"
        t = self._template(kind)
        changes: dict[str, Any] = dict(
            name=f"{self.name}~{tag}",
            description=(f"{kind} draw around {self.name}: clock x{f:.3g}, DRAM bandwidth x{bw:.3g}, "
                         f"buffers x{buf:.3g}, batch {batch}"),
            frequency_hz=t.frequency_hz * f,
            dram_bandwidth_bytes_per_s=t.dram_bandwidth_bytes_per_s * bw,
            weight_buffer_bytes=t.weight_buffer_bytes * buf,
            input_buffer_bytes=t.input_buffer_bytes * buf,
            default_batch=batch,
        )
        if isinstance(t, BitFusionAccelerator):
            changes["output_buffer_bytes"] = t.output_buffer_bytes * buf
        return dataclasses.replace(t, **changes)

    def sample(self, seed: int | np.random.Generator | None = None, n: int = 1) -> list[Accelerator]:
        """``n`` accelerators drawn with ``numpy.random.default_rng(seed)`` (or the generator given)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r} is not allowed; expected an integer >= 1")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return [self.draw(rng) for _ in range(int(n))]


def sample_accelerators(bases: Sequence[str | Accelerator | AcceleratorFamily], n: int, seed: int | None = None,
                        **family: Any) -> list[Accelerator]:
    """``n`` draws spread round-robin over ``bases`` (profiles, instances or families; ``family``
    keyword arguments build a family around each plain profile), from one seeded generator."""
    fams = [b if isinstance(b, AcceleratorFamily) else AcceleratorFamily(b, **family) for b in bases]
    if not fams:
        raise ValueError("bases=() is not allowed; expected at least one profile or family")
    rng = np.random.default_rng(seed)
    return [fams[i % len(fams)].draw(rng) for i in range(n)]
