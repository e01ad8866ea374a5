"""What decides whether a retraining repeats bit for bit on this machine: torch's version, the
instruction set of its CPU kernels and the CPU model. A generated table records them in its
``meta`` (:mod:`~quant_envs.mixed_precision.tables.build`), and its re-checks compare them with
this machine's (:mod:`~quant_envs.mixed_precision.tables.live`)."""

from __future__ import annotations

import platform

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def numerics() -> dict[str, str]:
    """What decides whether a retraining repeats bit for bit here: torch's version, the instruction
    set of its CPU kernels and the CPU model (MKL and oneDNN choose kernels by CPU, too)."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_model": cpu_model()}
