"""Fake quantization bit-identical to torch's ops, from plain elementwise tensor ops.

``torch.fake_quantize_per_tensor_affine`` runs a scalar loop on the CPU (measured 4.3 ms on a
(1000, 32, 20) float32 tensor where ``mul``/``round``/``clamp`` take 0.13 ms): it dominated the
cost of a reward. The functions here compute the same values and the same gradients with
vectorised tensor ops, following torch's CPU kernels step by step (``QuantizedOpKernels.cpp``):

* per tensor: ``inv_scale = 1.0f / scale`` in float32; ``q = zero_point + nearbyint(x * inv_scale)``
  (float32, round half to even); output ``(min(max(q, quant_min), quant_max) - zero_point) * scale``
  with ``fmax``'s rule that NaN gives ``quant_min``; gradient ``grad * (quant_min <= q <= quant_max)``.
* per channel: the same with one scale and zero point per slice along ``axis``, except that ``q``
  is cast to int64 *before* clamping (torch's per-channel kernel), so NaN and values at or beyond
  2^63 land on ``quant_min``.

Every intermediate is exact or rounded once in float32, like torch's: ``x * inv_scale`` is one
float32 product, adding an integer zero point below 2^24 is exact, and ``(q - zero_point) *
scale`` is one float32 product of an integer and the float32 scale.

Which implementation the quantizers of :mod:`quant_envs.mixed_precision.quantize` use is chosen by
:func:`set_impl` / :func:`use_impl` ("fast", the default, or "torch": torch's own ops, kept as the
reference for the bit-identity tests and the benchmark).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from quant_envs.checks import check_choice

#: the implementations :func:`set_impl` accepts
IMPLS = ("fast", "torch")
_impl = "fast"

# float32 value of 2^63: the per-channel kernel's int64 cast is undefined from here on, and x86
# gives INT64_MIN (so the value clamps to quant_min)
_INT64_LIMIT = float(2**63)


def get_impl() -> str:
    """The fake-quantization implementation in use: "fast" or "torch"."""
    return _impl


def set_impl(impl: str) -> None:
    """Use ``impl`` ("fast": this module's ops; "torch": torch's fake-quantize ops) from now on."""
    global _impl
    _impl = check_choice("impl", impl, IMPLS)


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Within the block, fake-quantize with ``impl`` ("fast" or "torch"); restored on leaving it."""
    previous = get_impl()
    set_impl(impl)
    try:
        yield
    finally:
        set_impl(previous)


def float32_scale(scale: float) -> tuple[float, float]:
    """(scale, 1 / scale) as torch's per-tensor kernel holds them: the scale rounded to float32,
    and its float32 reciprocal (both exactly representable in float32, returned as Python floats)."""
    sc = np.float32(scale)
    return float(sc), float(np.float32(1.0) / sc)


def _per_tensor_values(x: torch.Tensor, scale: float, inv_scale: float, zero_point: int,
                       quant_min: int, quant_max: int, need_mask: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    q = torch.mul(x, inv_scale)
    q.round_()  # round half to even, as nearbyint in the default rounding mode
    if zero_point:
        q.add_(zero_point)
    mask = q.ge(quant_min).logical_and_(q.le(quant_max)) if need_mask else None
    q.clamp_(quant_min, quant_max)
    q.nan_to_num_(nan=float(quant_min))  # fmax(NaN, quant_min) is quant_min in torch's kernel
    # torch subtracts in integers: adding -zero_point (+0.0 when it is 0) also turns -0.0 into +0.0
    q.add_(float(-zero_point))
    return q.mul_(scale), mask


def _per_channel_values(w: torch.Tensor, scale: torch.Tensor, inv_scale: torch.Tensor, zero_point: torch.Tensor,
                        neg_zero_point: torch.Tensor, quant_min: int, quant_max: int, need_mask: bool
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    q = torch.mul(w, inv_scale)
    q.round_()
    q.add_(zero_point)
    mask = q.ge(quant_min).logical_and_(q.le(quant_max)) if need_mask else None
    # torch casts to int64 before clamping: NaN and |q| >= 2^63 become INT64_MIN, i.e. quant_min
    q = torch.where(q < _INT64_LIMIT, q, float(quant_min))
    q.clamp_(quant_min, quant_max)
    q.add_(neg_zero_point)  # as in the per-tensor case: integer arithmetic has no -0.0
    return q.mul_(scale), mask


#: computes (fake-quantized values, in-range mask) of a detached tensor
_Quantizer = Callable[[torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


class _StraightThrough(torch.autograd.Function):
    """Straight-through gradient masked outside the clipping range (torch's ``grad * mask``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, quantize: _Quantizer) -> torch.Tensor:
        values, mask = quantize(x)
        ctx.save_for_backward(mask)
        return values

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def fake_quantize_per_tensor(x: torch.Tensor, scale: float, zero_point: int, quant_min: int,
                             quant_max: int) -> torch.Tensor:
    """``torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)``:
    the same values and gradient (float32 ``x``), with the implementation chosen by :func:`set_impl`."""
    if _impl == "torch":
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)
    sc, inv = float32_scale(scale)
    zp = int(zero_point)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _per_tensor_values(x, sc, inv, zp, quant_min, quant_max, need_mask=False)[0]
    return _StraightThrough.apply(x, lambda t: _per_tensor_values(t, sc, inv, zp, quant_min, quant_max, True))


def fake_quantize_per_channel(w: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int,
                              quant_min: int, quant_max: int) -> torch.Tensor:
    """``torch.fake_quantize_per_channel_affine(w, scale, zero_point, axis, quant_min, quant_max)``:
    the same values and gradient (float32 ``w`` and ``scale``, integer ``zero_point``), with the
    implementation chosen by :func:`set_impl`."""
    if _impl == "torch":
        return torch.fake_quantize_per_channel_affine(w, scale, zero_point, axis, quant_min, quant_max)
    shape = [1] * w.dim()
    shape[axis] = -1
    sc = scale.detach().to(torch.float32).reshape(shape)
    inv = torch.ones_like(sc).div_(sc)  # 1.0f / scale per channel, one correctly rounded division
    zp_int = zero_point.detach().reshape(shape)
    zp, neg_zp = zp_int.to(torch.float32), (-zp_int).to(torch.float32)
    if not (torch.is_grad_enabled() and w.requires_grad):
        return _per_channel_values(w, sc, inv, zp, neg_zp, quant_min, quant_max, need_mask=False)[0]
    return _StraightThrough.apply(w, lambda t: _per_channel_values(t, sc, inv, zp, neg_zp, quant_min, quant_max, True))


def _grouped_values(x: torch.Tensor, scale: torch.Tensor, inv_scale: torch.Tensor, zero_point: torch.Tensor,
                    neg_zero_point: torch.Tensor, quant_min: torch.Tensor, quant_max: torch.Tensor,
                    int64_rule: bool, need_mask: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    q = torch.mul(x, inv_scale)
    q.round_()
    q.add_(zero_point)  # adding +0.0 may turn -0.0 into +0.0; the final add does so anyway
    mask = q.ge(quant_min).logical_and_(q.le(quant_max)) if need_mask else None
    if int64_rule:  # the per-channel kernel's int64 cast: NaN and |q| >= 2^63 become quant_min
        q = torch.where(q < _INT64_LIMIT, q, quant_min)
    q = torch.clamp(q, quant_min, quant_max)
    if not int64_rule:  # fmax(NaN, quant_min) is quant_min in the per-tensor kernel
        q = torch.where(q.isnan(), quant_min, q)
    q.add_(neg_zero_point)
    return q.mul_(scale), mask


def fake_quantize_grouped(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, quant_min: torch.Tensor,
                          quant_max: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Fake quantization whose parameters vary across ``x``: ``scale`` (float32), ``zero_point``,
    ``quant_min`` and ``quant_max`` (float32 tensors holding integers) broadcast against ``x``.

    Each element gets, bit for bit, the value and gradient that :func:`fake_quantize_per_tensor`
    (``per_channel=False``) or :func:`fake_quantize_per_channel` (``per_channel=True``: its NaN
    rule) gives it with its own parameters: the same float32 operations, elementwise. This is how
    several policies' quantizers, stacked along the channels, run as one op (``policy_batch``).
    """
    sc = scale.detach().to(torch.float32)
    inv = torch.ones_like(sc).div_(sc)  # 1.0f / scale, one correctly rounded float32 division
    zp = zero_point.detach().to(torch.float32)
    neg_zp = torch.zeros_like(zp).sub_(zp)  # 0 - zp: +0.0 where zp is 0, as integer arithmetic gives
    lo, hi = quant_min.detach().to(torch.float32), quant_max.detach().to(torch.float32)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _grouped_values(x, sc, inv, zp, neg_zp, lo, hi, per_channel, need_mask=False)[0]
    return _StraightThrough.apply(x, lambda t: _grouped_values(t, sc, inv, zp, neg_zp, lo, hi, per_channel, True))
