"""The QSGD stochastic quantizer (Alistarh et al., NeurIPS 2017), batched over devices, in torch.

For a vector ``v`` in R^d and ``s`` >= 1 levels, every coordinate is sent as
``Q_s(v_i) = ||v||_2 * sign(v_i) * xi_i`` where ``xi_i`` is ``l/s`` or ``(l+1)/s`` with
``l = floor(s |v_i| / ||v||_2)``; the upper value is chosen with probability
``s |v_i| / ||v||_2 - l``. Hence ``E[Q_s(v)] = v`` (unbiased) and
``E||Q_s(v) - v||^2 <= min(d / s^2, sqrt(d) / s) ||v||^2`` (QSGD Lemma 3.1).

The wire format and its bit count live in :mod:`quant_envs.feel.model` (``bits_per_upload``);
this module only draws the random quantized values the simulator aggregates.
"""

from __future__ import annotations

import torch

#: ``levels[k] == FULL_PRECISION`` means device k sends its gradient unquantized (float32).
FULL_PRECISION = 0


def qsgd_quantize(grads: torch.Tensor, levels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantize each row of ``grads`` ([K, d]) with its own number of levels ``levels`` ([K]).

    Rows whose level is ``FULL_PRECISION`` (0) are returned unchanged; a zero row stays zero.
    Randomness comes only from ``generator`` (one uniform draw per coordinate), so a seeded
    generator gives the same quantized values on every run.
    """
    if grads.ndim != 2:
        raise ValueError(f"grads must be a [devices, dim] tensor, got shape {tuple(grads.shape)}")
    levels = torch.as_tensor(levels, device=grads.device)
    if levels.shape != grads.shape[:1]:
        raise ValueError(f"levels must have shape ({grads.shape[0]},), got {tuple(levels.shape)}")
    if bool((levels < 0).any()):
        raise ValueError("levels must be >= 1, or 0 (FULL_PRECISION) for an unquantized upload")
    norm = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
    s = levels.to(grads.dtype).clamp_min(1.0).unsqueeze(1)
    # Scaled magnitude in [0, s]; a zero-norm row is all zeros and stays all zeros.
    scaled = grads.abs() / torch.where(norm > 0, norm, torch.ones_like(norm)) * s
    lower = torch.floor(scaled)
    u = torch.rand(grads.shape, generator=generator, dtype=grads.dtype, device=grads.device)
    xi = lower + (u < (scaled - lower)).to(grads.dtype)
    quantized = norm * torch.sign(grads) * xi / s
    full = (levels == FULL_PRECISION).unsqueeze(1)
    return torch.where(full, grads, quantized)
