"""The fast fake quantizers against torch's own ops: bit-identical values and gradients.

The reference is torch itself (``torch.fake_quantize_per_tensor_affine`` /
``torch.fake_quantize_per_channel_affine``), run on the same tensors in the same process, so the
comparison holds on whatever CPU runs it. Inputs: random values, exact rounding ties, values at
and around the clamping boundaries, large magnitudes, infinities and NaN; every width 2..8;
scales and zero points as the environment computes them (``quantize.best_activation_range`` and
``QuantLayerWrapper.quantized_weight``) and a few arbitrary ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quant_envs.mixed_precision import fast_quant
from quant_envs.mixed_precision.quantize import best_activation_range, best_weight_clip_ratio

BITS = range(2, 9)


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit (NaN payloads and the sign of zero included)."""
    return a.shape == b.shape and torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def _edge_values(scale: float, zero_point: int, qmin: int, qmax: int, rng: np.random.Generator) -> torch.Tensor:
    """Values whose ``x * inv_scale`` lands on or next to a tie, on the clamp limits, and far outside."""
    sc = np.float32(scale)
    ks = np.arange(qmin - zero_point - 3, qmax - zero_point + 4, dtype=np.float64)
    centres = np.concatenate([(ks + 0.5) * sc, ks * sc, (ks - 0.5) * sc]).astype(np.float32)
    around = [np.nextafter(centres, np.float32(np.inf)), np.nextafter(centres, np.float32(-np.inf))]
    big = np.array([1e6, -1e6, 1e20, -1e20, 3e38, -3e38, np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)
    noise = rng.standard_normal(2000).astype(np.float32) * sc * (qmax - qmin) / 2
    return torch.from_numpy(np.concatenate([centres, *around, big, noise]))


def _exact_ties(scale: float, zero_point: int, qmin: int, qmax: int) -> torch.Tensor:
    """Values x with ``float32(x * inv_scale)`` exactly k + 0.5 (checked), where they exist."""
    sc, inv = fast_quant.float32_scale(scale)
    out = []
    for k in range(qmin - zero_point - 2, qmax - zero_point + 2):
        x0 = np.float32((k + 0.5) * sc)
        for x in (x0, np.nextafter(x0, np.float32(np.inf)), np.nextafter(x0, np.float32(-np.inf))):
            if np.float32(x) * np.float32(inv) == np.float32(k + 0.5):
                out.append(x)
    return torch.tensor(np.array(out, dtype=np.float32))


def _check_per_tensor(x: torch.Tensor, scale: float, zp: int, qmin: int, qmax: int) -> None:
    ref_x = x.clone().requires_grad_(True)
    ref = torch.fake_quantize_per_tensor_affine(ref_x, scale, zp, qmin, qmax)
    fast_x = x.clone().requires_grad_(True)
    out = fast_quant.fake_quantize_per_tensor(fast_x, scale, zp, qmin, qmax)
    assert _bits_equal(out.detach(), ref.detach()), f"values differ at scale={scale!r} zp={zp} [{qmin}, {qmax}]"
    grad = torch.linspace(-3, 3, x.numel()).reshape(x.shape)
    ref.backward(grad)
    out.backward(grad)
    assert fast_x.grad is not None and ref_x.grad is not None
    assert _bits_equal(fast_x.grad, ref_x.grad), f"gradients differ at scale={scale!r} zp={zp}"
    with torch.no_grad():  # the path without autograd (evaluation) gives the same values
        assert _bits_equal(fast_quant.fake_quantize_per_tensor(x, scale, zp, qmin, qmax), ref.detach())


@pytest.mark.parametrize("bits", BITS)
def test_per_tensor_matches_torch_with_the_environments_ranges(bits: int) -> None:
    rng = np.random.default_rng(bits)
    levels = 2**bits - 1
    # calibrated values as the quantizer sees them: post-ReLU (lo = 0) and signed (lo < 0, zp > 0)
    for values in (torch.randn(4096).relu(), torch.randn(4096) * 2 + 0.3):
        lo, hi = best_activation_range(values, bits)
        scale = (hi - lo) / levels  # as QuantLayerWrapper.quantize_input
        zp = round(-lo / scale)
        x = torch.cat([torch.from_numpy(rng.standard_normal((64, 8, 20)).astype(np.float32)).reshape(-1) * hi,
                       _edge_values(scale, zp, 0, levels, rng), _exact_ties(scale, zp, 0, levels)])
        _check_per_tensor(x, scale, zp, 0, levels)


@pytest.mark.parametrize("scale", [2.0**-4, 0.1, 1 / 3, 7.123456789e-3, 1e-8, 3.0])
@pytest.mark.parametrize("zp_share", [0.0, 0.4])
def test_per_tensor_matches_torch_on_edge_values(scale: float, zp_share: float) -> None:
    rng = np.random.default_rng(0)
    for bits in BITS:
        qmax = 2**bits - 1
        zp = round(zp_share * qmax)  # torch wants the zero point within [quant_min, quant_max]
        ties = _exact_ties(scale, zp, 0, qmax)
        if scale == 2.0**-4:
            assert len(ties) > 0  # a power-of-two scale has exact ties at every level
        _check_per_tensor(torch.cat([_edge_values(scale, zp, 0, qmax, rng), ties]), scale, zp, 0, qmax)


def _check_per_channel(w: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int, qmax: int, axis: int = 0) -> None:
    ref_w = w.clone().requires_grad_(True)
    ref = torch.fake_quantize_per_channel_affine(ref_w, scale, zp, axis, qmin, qmax)
    fast_w = w.clone().requires_grad_(True)
    out = fast_quant.fake_quantize_per_channel(fast_w, scale, zp, axis, qmin, qmax)
    assert _bits_equal(out.detach(), ref.detach())
    grad = torch.linspace(-2, 2, w.numel()).reshape(w.shape)
    ref.backward(grad)
    out.backward(grad)
    assert fast_w.grad is not None and ref_w.grad is not None
    assert _bits_equal(fast_w.grad, ref_w.grad)
    with torch.no_grad():
        assert _bits_equal(fast_quant.fake_quantize_per_channel(w, scale, zp, axis, qmin, qmax), ref.detach())


@pytest.mark.parametrize("bits", BITS)
def test_per_channel_matches_torch_with_the_environments_scales(bits: int) -> None:
    rng = np.random.default_rng(100 + bits)
    qmax = 2 ** (bits - 1) - 1
    for shape in ((16, 8, 5), (10, 32), (6, 3, 3, 3)):
        w = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) * 0.2
        ratio = best_weight_clip_ratio(w, bits)
        # as QuantLayerWrapper.quantized_weight
        absmax = w.reshape(shape[0], -1).abs().amax(dim=1).clamp_min(1e-12)
        scale = (ratio * absmax / qmax).float()
        zp = torch.zeros(shape[0], dtype=torch.int32)
        # plant ties, clamp limits and large values in every channel
        flat = w.reshape(shape[0], -1).clone()
        for c in range(shape[0]):
            sc = np.float32(scale[c])
            special = np.array([(qmax + 0.5) * sc, -(qmax + 0.5) * sc, qmax * sc, 0.5 * sc, -1.5 * sc,
                                1e20, -1e20, np.inf, np.nan], dtype=np.float32)
            k = min(len(special), flat.shape[1])
            flat[c, :k] = torch.from_numpy(special[:k])
        _check_per_channel(flat.reshape(shape), scale, zp, -qmax, qmax)


def test_per_channel_matches_torch_with_zero_points_and_another_axis() -> None:
    rng = np.random.default_rng(7)
    w = torch.from_numpy(rng.standard_normal((4, 6, 5)).astype(np.float32))
    scale = torch.tensor([0.1, 2.0**-3, 1 / 3, 0.05, 0.7, 1e-3], dtype=torch.float32)
    zp = torch.tensor([0, 3, -2, 1, 0, 7], dtype=torch.int32)
    _check_per_channel(w, scale, zp, -8, 7, axis=1)
    _check_per_channel(w, scale, zp.abs(), 0, 255, axis=1)


def test_the_torch_implementation_is_selectable() -> None:
    x = torch.randn(100)
    with fast_quant.use_impl("torch"):
        assert fast_quant.get_impl() == "torch"
        out = fast_quant.fake_quantize_per_tensor(x.requires_grad_(True), 0.1, 0, 0, 15)
        assert out.grad_fn is not None and "FakeQuantize" in type(out.grad_fn).__name__
    assert fast_quant.get_impl() == "fast"
    with pytest.raises(ValueError, match="impl"):
        fast_quant.set_impl("numpy")
