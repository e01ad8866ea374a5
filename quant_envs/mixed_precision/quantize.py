"""Mixed-precision fake quantization, bit-identical to torch's own fake-quantize ops.

Each quantizable layer (``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Linear``) is wrapped by :class:`QuantLayerWrapper`:

* **weights**: symmetric, per output channel, ``torch.fake_quantize_per_channel_affine`` on the
  narrow signed range [-(2^(b-1) - 1), 2^(b-1) - 1] (2 bits = ternary). The clipping value of each
  channel is ``ratio * max|w_c|`` with ``ratio`` chosen, per channel and bit width, to minimise the
  weight's quantization MSE over a grid (HAQ picks its clip by KL divergence; MSE is the common
  alternative and needs no histogram of the data). The scale follows the weights during retraining.
* **activations** (the layer's input): asymmetric per tensor, ``torch.fake_quantize_per_tensor_affine``
  on [0, 2^b - 1], range calibrated once on training data: the MSE-optimal clip of the calibrated
  values for each bit width (zero stays exactly representable).

Both ops pass straight-through gradients inside the clipping range, so the same model retrains
(quantization-aware finetuning) without further changes. Batch normalisation and other layers stay
in float, as in HAQ.

The ops are :mod:`~quant_envs.mixed_precision.fast_quant`'s, which give torch's values and
gradients bit for bit at a fraction of the cost; ``fast_quant.use_impl("torch")`` switches back
to torch's ops (the reference). Where the weights cannot change (no autograd: evaluation and
batch-norm re-estimation) each layer's quantized weight is computed once and reused until the
weight, its clip ratio or its width changes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from quant_envs.mixed_precision import fast_quant
from quant_envs.mixed_precision.hooks import eval_mode_hooks

#: Per layer, the (weight bits, activation bits); ``None`` leaves that tensor in float.
LayerBits = tuple[int | None, int | None]

_CLIP_RATIOS = torch.linspace(0.2, 1.0, 33)
_CALIBRATION_VALUES = 32768  # activation values kept per layer for choosing clip ranges


def _weight_qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def best_weight_clip_ratio(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per output channel, the clip ratio (of max |w|) with the smallest quantization MSE."""
    w = weight.detach().reshape(weight.shape[0], -1)  # [C, K]
    absmax = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)  # [C, 1]
    qmax = _weight_qmax(bits)
    best_mse = torch.full((w.shape[0],), float("inf"))
    best = torch.ones(w.shape[0])
    for r in _CLIP_RATIOS.tolist():  # a loop, not a [C, R, K] tensor: large layers stay cheap in memory
        scale = r * absmax / qmax
        mse = ((torch.clamp(torch.round(w / scale), -qmax, qmax) * scale - w) ** 2).mean(dim=1)
        better = mse < best_mse
        best_mse = torch.where(better, mse, best_mse)
        best = torch.where(better, torch.tensor(r), best)
    return best


def best_activation_range(values: torch.Tensor, bits: int) -> tuple[float, float]:
    """The asymmetric clip range [lo, hi] of ``values`` with the smallest quantization MSE."""
    lo_full, hi_full = float(values.min().clamp(max=0.0)), float(values.max().clamp(min=0.0))
    if hi_full - lo_full <= 0:
        return 0.0, 1e-8
    levels = 2**bits - 1
    best, best_mse = (lo_full, hi_full), float("inf")
    for r in _CLIP_RATIOS.tolist():
        lo, hi = lo_full * r, hi_full * r
        scale = (hi - lo) / levels
        zero_point = round(-lo / scale)
        q = fast_quant.fake_quantize_per_tensor(values, scale, zero_point, 0, levels)
        mse = float(((q - values) ** 2).mean())
        if mse < best_mse:
            best, best_mse = (lo, hi), mse
    return best


class QuantLayerWrapper(nn.Module):
    """Wraps one ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Linear`` with fake quantization of its weight and input."""

    w_clip_ratio: torch.Tensor  # a buffer: per-output-channel weight clipping ratio

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            raise TypeError(f"layer must be nn.Conv1d, nn.Conv2d or nn.Linear, got {type(layer).__name__}")
        self.layer = layer
        self.w_bits: int | None = None
        self.a_bits: int | None = None
        self.register_buffer("w_clip_ratio", torch.ones(layer.weight.shape[0]))
        self.act_range: tuple[float, float] | None = None
        # the quantized weight reused while nothing it depends on changes (see quantized_weight)
        self._frozen_weight: torch.Tensor | None = None
        self._frozen_key: tuple | None = None

    def set_bits(self, w_bits: int | None, w_clip_ratio: torch.Tensor | None,
                 a_bits: int | None, act_range: tuple[float, float] | None) -> None:
        self.w_bits, self.a_bits, self.act_range = w_bits, a_bits, act_range
        if w_clip_ratio is not None:
            self.w_clip_ratio.copy_(w_clip_ratio)

    def quantized_weight(self) -> torch.Tensor:
        w = self.layer.weight
        if self.w_bits is None:
            return w
        if fast_quant.get_impl() != "fast" or (torch.is_grad_enabled() and w.requires_grad):
            return self._quantize_weight(w)  # retraining: the weight changes every step
        # No autograd: the quantized weight is a function of the weight's and the clip ratio's
        # contents (their version counters count in-place changes; the storage catches a swapped
        # .data) and the width.
        key = (id(w), w.data_ptr(), w._version, self.w_clip_ratio._version, self.w_bits, w.device)
        if key != self._frozen_key or self._frozen_weight is None:
            with torch.no_grad():
                self._frozen_weight = self._quantize_weight(w)
            self._frozen_key = key
        return self._frozen_weight

    def _quantize_weight(self, w: torch.Tensor) -> torch.Tensor:
        assert self.w_bits is not None
        qmax = _weight_qmax(self.w_bits)
        absmax = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1).clamp_min(1e-12)
        scale = (self.w_clip_ratio * absmax / qmax).float()
        zero_point = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return fast_quant.fake_quantize_per_channel(w, scale, zero_point, 0, -qmax, qmax)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.a_bits is None or self.act_range is None:
            return x
        lo, hi = self.act_range
        levels = 2**self.a_bits - 1
        scale = (hi - lo) / levels
        return fast_quant.fake_quantize_per_tensor(x, scale, round(-lo / scale), 0, levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        w = self.quantized_weight()
        if isinstance(self.layer, (nn.Conv1d, nn.Conv2d)):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return F.linear(x, w, self.layer.bias)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


@torch.no_grad()
def calibration_samples(model: nn.Module, layer_names: Sequence[str], inputs: torch.Tensor,
                        seed: int = 0) -> list[torch.Tensor]:
    """Run ``inputs`` through the float model; return a random subsample of each layer's input values."""
    generator = torch.Generator().manual_seed(seed)
    samples: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_module: nn.Module, args: tuple) -> None:
            if name in samples:  # a module called twice: its first call is the quantized one
                return
            flat = args[0].detach().reshape(-1)
            if flat.numel() > _CALIBRATION_VALUES:
                flat = flat[torch.randint(flat.numel(), (_CALIBRATION_VALUES,), generator=generator)]
            samples[name] = flat.clone()
        return record

    with eval_mode_hooks(model, [(model.get_submodule(n), hook(n)) for n in layer_names]):
        model(inputs)
    return [samples[n] for n in layer_names]


class FakeQuantModel:
    """A copy of a float model whose quantizable layers take any mixed-precision policy.

    Clip ratios and activation ranges are computed lazily per (layer, bit width) and kept, so
    switching policies costs only a weight reset (needed after retraining changed the weights).
    """

    def __init__(self, float_model: nn.Module, layer_names: Sequence[str], calibration_inputs: torch.Tensor) -> None:
        self.layer_names = list(layer_names)
        self.model = copy.deepcopy(float_model).eval()
        for p in self.model.parameters():
            p.requires_grad_(True)  # the task's float model is frozen; its quantized copy retrains
        self._float_state = {k: v.clone() for k, v in float_model.state_dict().items()}
        self._act_values = calibration_samples(self.model, self.layer_names, calibration_inputs)
        self.wrappers: list[QuantLayerWrapper] = []
        for name in self.layer_names:
            wrapper = QuantLayerWrapper(self.model.get_submodule(name))
            _set_submodule(self.model, name, wrapper)
            self.wrappers.append(wrapper)
        self._weight_ratios: dict[tuple[int, int], torch.Tensor] = {}
        self._act_ranges: dict[tuple[int, int], tuple[float, float]] = {}
        self._reset_targets: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def reset_weights(self) -> None:
        """Restore the float weights (and batch-norm statistics) after a retraining.

        The same copies ``load_state_dict`` makes, without its per-call key matching (a few
        milliseconds per reward on a small network); the targets are looked up once.
        """
        if self._reset_targets is None:
            live = self.model.state_dict(keep_vars=True)
            self._reset_targets = [(live[self._wrapped_key(k)], v) for k, v in self._float_state.items()]
        with torch.no_grad():
            for target, value in self._reset_targets:
                target.copy_(value)

    def to(self, device: torch.device | str) -> FakeQuantModel:
        """Move the quantized model to ``device`` (float weights, calibration data stay on the CPU)."""
        self.model.to(device)
        self._reset_targets = None  # moving may replace the tensors
        return self

    def _wrapped_key(self, key: str) -> str:
        for name in self.layer_names:
            if key.startswith(name + "."):
                return f"{name}.layer.{key[len(name) + 1:]}"
        return key

    def set_policy(self, policy: Sequence[LayerBits]) -> nn.Module:
        """Quantize with ``policy`` (one (w_bits, a_bits) per layer) and return the model."""
        if len(policy) != len(self.wrappers):
            raise ValueError(f"policy has {len(policy)} entries; the model has {len(self.wrappers)} quantizable layers")
        for i, (w_bits, a_bits) in enumerate(policy):
            self.set_layer(i, w_bits, a_bits)
        return self.model

    def set_layer(self, i: int, w_bits: int | None, a_bits: int | None) -> None:
        """Quantize layer ``i``'s weight with ``w_bits`` and its input with ``a_bits`` (None: float)."""
        ratio, act_range = self.layer_settings(i, w_bits, a_bits)
        self.wrappers[i].set_bits(w_bits, ratio, a_bits, act_range)

    def layer_settings(self, i: int, w_bits: int | None, a_bits: int | None
                       ) -> tuple[torch.Tensor | None, tuple[float, float] | None]:
        """Layer ``i``'s per-channel weight clip ratio at ``w_bits`` and input range at ``a_bits``
        (None where that width is None), computed on first use and kept."""
        ratio = None
        if w_bits is not None:
            if (i, w_bits) not in self._weight_ratios:
                self._weight_ratios[i, w_bits] = best_weight_clip_ratio(self._float_weight(i), w_bits)
            ratio = self._weight_ratios[i, w_bits]
        act_range = None
        if a_bits is not None:
            if (i, a_bits) not in self._act_ranges:
                self._act_ranges[i, a_bits] = best_activation_range(self._act_values[i], a_bits)
            act_range = self._act_ranges[i, a_bits]
        return ratio, act_range

    def float_state(self) -> dict[str, torch.Tensor]:
        """The float model's state (parameters and buffers by the float model's names; CPU tensors
        that must not be changed): what :meth:`reset_weights` restores."""
        return self._float_state

    def _float_weight(self, i: int) -> torch.Tensor:
        return self._float_state[f"{self.layer_names[i]}.weight"]
