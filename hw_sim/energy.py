"""Energy per operation and per bit moved, from Horowitz, "Computing's energy problem (and what we
can do about it)", ISSCC 2014, 45 nm at 0.9 V (the figure every accelerator paper cites).

Published figures used here (pJ):

========================  =====================  ===========
operation                 8 bit                  32 bit
========================  =====================  ===========
integer add               0.03                   0.1
integer multiply          0.2                    3.1
SRAM read, 64-bit word    8 KB: 10, 32 KB: 20, 1 MB: 100
DRAM access, 64-bit word  1300 - 2600
========================  =====================  ===========

Modelling choices (the paper gives only the points above):

* Multiplier energy is quadratic in operand width, ``E = 0.2 pJ * (b_w * b_a) / 64``: an array
  multiplier has ``b_w * b_a`` partial-product cells. It reproduces the 32-bit point within 3 %
  (0.2 * 16 = 3.2 pJ vs. 3.1 pJ published).
* Every MAC also pays one accumulator add at ``accumulator_bits`` (adder energy linear in width,
  through the 8- and 32-bit points).
* SRAM energy per bit is interpolated linearly in log2(size) between the three published sizes and
  clamped outside them; callers pass the *bank* size their buffers are built from.
* DRAM energy is the midpoint of the published range: 1950 pJ per 64-bit access = 30.5 pJ/bit.
* Leakage and control energy are not modelled.
"""

from __future__ import annotations

import numpy as np

PJ = 1e-12

#: Horowitz ISSCC 2014, 45 nm: 8-bit integer multiply.
MULT8_ENERGY_J = 0.2 * PJ
#: Horowitz ISSCC 2014, 45 nm: 8-bit and 32-bit integer add.
ADD8_ENERGY_J = 0.03 * PJ
ADD32_ENERGY_J = 0.1 * PJ
#: Horowitz ISSCC 2014: 64-bit SRAM read for 8 KB, 32 KB and 1 MB arrays.
_SRAM_POINTS_BYTES = np.array([8 * 1024, 32 * 1024, 1024 * 1024], dtype=float)
_SRAM_POINTS_J_PER_64B = np.array([10.0, 20.0, 100.0]) * PJ
#: Horowitz ISSCC 2014: DRAM 1.3-2.6 nJ per 64-bit access; we take the midpoint.
DRAM_ENERGY_PER_BIT_J = 0.5 * (1300.0 + 2600.0) * PJ / 64.0


def mult_energy_j(w_bits, a_bits):
    """Energy of one ``w_bits x a_bits`` integer multiply (quadratic in width; numpy-broadcasting)."""
    return (
        MULT8_ENERGY_J * (np.asarray(w_bits, dtype=float) * np.asarray(a_bits, dtype=float)) / 64.0
    )


def add_energy_j(bits):
    """Energy of one integer add, linear in width through Horowitz's 8- and 32-bit points."""
    bits = np.asarray(bits, dtype=float)
    return ADD8_ENERGY_J + (bits - 8.0) * (ADD32_ENERGY_J - ADD8_ENERGY_J) / 24.0


def mac_energy_j(w_bits, a_bits, accumulator_bits: int = 32):
    """One multiply-accumulate: multiply at the operand widths plus an accumulator add."""
    return mult_energy_j(w_bits, a_bits) + add_energy_j(accumulator_bits)


def sram_energy_per_bit_j(bank_bytes: float) -> float:
    """SRAM read energy per bit for a bank of ``bank_bytes`` (log-size interpolation, clamped)."""
    x = np.log2(np.clip(float(bank_bytes), _SRAM_POINTS_BYTES[0], _SRAM_POINTS_BYTES[-1]))
    per_word = np.interp(x, np.log2(_SRAM_POINTS_BYTES), _SRAM_POINTS_J_PER_64B)
    return float(per_word / 64.0)
