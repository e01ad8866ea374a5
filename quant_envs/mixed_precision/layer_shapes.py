"""Quantizable layers of a torch model, found with forward hooks, as hw_sim shapes and cost tables.

``quantizable_layers(model, example_input)`` runs one forward pass (eval mode, no grad) with a hook
on every ``nn.Conv1d``, ``nn.Conv2d`` and ``nn.Linear`` (subclasses included, so fake-quantized
wrappers count) and
lists them in execution order with their GEMM view (:class:`hw_sim.LayerShape`).
``cost_table_for_model`` adds an accelerator profile and returns the :class:`hw_sim.CostTable`.
This is the layer-shape extraction HAQ never released (mit-han-lab/haq issues #15, #17).

Conventions:

* Shapes are per sample: the example input's first dimension is the batch and is divided out;
  the batch an accelerator runs is given to the cost table separately.
* A ``Linear`` applied to a sequence (input ``[B, *, in_features]``) gets ``tokens`` = the product
  of the middle dimensions.
* A 1-D convolution over length ``L`` is the 2-D convolution of a ``1 x L`` map with a ``1 x k``
  kernel (stride, padding and dilation ``(1, s)``, ``(0, p)``, ``(1, d)``): ``in_hw = (1, L)``,
  ``out_hw = (1, L_out)``, and hw_sim sees ``k = c_in/groups * k``, ``n = L_out``.
* Non-square kernels and strides: ``QuantLayer.kernel`` / ``.stride`` hold the larger of the two
  sides (a single int, as in HAQ's state features); the ``LayerShape`` uses the exact sides.
* A module called more than once per forward pass (weight sharing) is listed once, at its first
  call, because a quantization policy gives a module one bit width. Its ``LayerShape`` counts every
  call: output positions, input and output activations are summed over calls (weights once).
  Calls with different per-call shapes are summed the same way; ``in_hw``/``out_hw`` are those of
  the first call.
* TorchScript modules run no Python hooks. For them the forward pass runs under
  ``torch.profiler`` with ``record_shapes``: every executed ``aten::conv2d`` / ``aten::linear`` op
  gives one layer (shapes, stride, padding, dilation and groups from the op's arguments, so they
  are exact), and its ``name`` is the first not-yet-used ``Conv2d``/``Linear`` submodule with the
  same weight shape, in definition order (``"aten::conv2d#<i>"`` when none matches). A scripted
  module called twice therefore appears twice.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass

import torch
from torch import nn

import hw_sim
from quant_envs.checks import check_int
from quant_envs.mixed_precision.hooks import eval_mode_hooks

KINDS = ("conv", "depthwise", "linear")
#: The module types whose weights a policy quantizes.
QUANTIZABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class QuantLayer:
    """One quantizable layer of a model, in execution order."""

    index: int
    #: qualified module name, as in ``model.named_modules()``
    name: str
    #: "conv", "depthwise" (groups == c_in == c_out > 1) or "linear"
    kind: str
    c_in: int
    c_out: int
    #: square kernel side; max(kh, kw) for a non-square kernel; 1 for linear layers
    kernel: int
    #: max(stride_h, stride_w); 1 for linear layers
    stride: int
    groups: int
    #: input spatial size (H, W) of the first call; (1, tokens) for linear layers
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    num_weights: int
    shape: hw_sim.LayerShape


def _as_2d(module: nn.Conv1d | nn.Conv2d, x: torch.Tensor) -> dict:
    """The 2-D convolution arguments of ``module`` on input ``x`` (a 1-D one as a 1 x L map)."""
    if isinstance(module, nn.Conv1d):
        pad = module.padding if isinstance(module.padding, str) else (0, int(module.padding[0]))
        return {"kernel": (1, int(module.kernel_size[0])), "in_hw": (1, int(x.shape[-1])),
                "stride": (1, int(module.stride[0])), "padding": pad,
                "dilation": (1, int(module.dilation[0]))}
    pad = module.padding if isinstance(module.padding, str) else (int(module.padding[0]), int(module.padding[1]))
    return {"kernel": (int(module.kernel_size[0]), int(module.kernel_size[1])),
            "in_hw": (int(x.shape[-2]), int(x.shape[-1])),
            "stride": (int(module.stride[0]), int(module.stride[1])), "padding": pad,
            "dilation": (int(module.dilation[0]), int(module.dilation[1]))}


def _conv_shape(module: nn.Conv1d | nn.Conv2d, x: torch.Tensor) -> hw_sim.LayerShape:
    return hw_sim.LayerShape.conv2d(c_in=module.in_channels, c_out=module.out_channels,
                                    groups=module.groups, **_as_2d(module, x))


class _Recorder:
    """Forward-hook state: first-call metadata and per-call shapes, per module."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.order: list[str] = []
        self.first: dict[str, dict] = {}
        self.shapes: dict[str, list[hw_sim.LayerShape]] = {}

    def hook(self, name: str):
        def record(module: nn.Module, inputs: tuple, output) -> None:
            x = inputs[0]
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                spatial = 1 if isinstance(module, nn.Conv1d) else 2
                if x.dim() == spatial + 1:  # unbatched [C, *spatial]
                    x = x.unsqueeze(0)
                args = _as_2d(module, x)
                shape = _conv_shape(module, x)
                out_hw = (1, int(output.shape[-1])) if spatial == 1 else (int(output.shape[-2]), int(output.shape[-1]))
                h_out = shape.output_count // module.out_channels
                if h_out != out_hw[0] * out_hw[1]:
                    raise RuntimeError(
                        f"module {name!r}: hw_sim's output size {h_out} disagrees with torch's {out_hw}"
                    )
                meta = {
                    "kind": shape.kind,
                    "c_in": module.in_channels,
                    "c_out": module.out_channels,
                    "kernel": max(args["kernel"]),
                    "stride": max(args["stride"]),
                    "groups": module.groups,
                    "in_hw": args["in_hw"],
                    "out_hw": out_hw,
                }
            else:
                assert isinstance(module, nn.Linear)  # hooked on QUANTIZABLE_TYPES only
                per_sample = x.numel() // (self.batch * module.in_features) if x.dim() > 1 else 1
                tokens = max(1, per_sample)
                shape = hw_sim.LayerShape.linear(
                    module.in_features, module.out_features, tokens=tokens
                )
                meta = {
                    "kind": "linear",
                    "c_in": module.in_features,
                    "c_out": module.out_features,
                    "kernel": 1,
                    "stride": 1,
                    "groups": 1,
                    "in_hw": (1, tokens),
                    "out_hw": (1, tokens),
                }
            if name not in self.first:
                self.order.append(name)
                self.first[name] = meta
                self.shapes[name] = []
            self.shapes[name].append(shape)

        return record


def _merge_calls(shapes: list[hw_sim.LayerShape]) -> hw_sim.LayerShape:
    first = shapes[0]
    if len(shapes) == 1:
        return first
    return hw_sim.LayerShape(
        m=first.m,
        k=first.k,
        n=sum(s.n for s in shapes),
        groups=first.groups,
        kernel_area=first.kernel_area,
        input_elems=sum(s.input_count for s in shapes),
        output_elems=sum(s.output_count for s in shapes),
        kind=first.kind,
    )


def quantizable_layers(model: nn.Module, example_input: torch.Tensor) -> list[QuantLayer]:
    """Every ``nn.Conv1d``, ``nn.Conv2d`` and ``nn.Linear`` of ``model`` that runs on ``example_input``, in order.

    ``example_input`` is a batched tensor (``[B, C, H, W]`` for image models, ``[B, C, L]`` for 1-D ones); modules that do not
    run in the forward pass are not listed. The model's train/eval mode is restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1:
        raise TypeError("example_input must be a batched torch.Tensor (first dimension = batch)")
    batch = check_int("example_input.shape[0]", int(example_input.shape[0]), min_value=1)
    if isinstance(model, torch.jit.ScriptModule):
        return _scripted_layers(model, example_input, batch)
    recorder = _Recorder(batch)
    hooks = [(m, recorder.hook(name)) for name, m in model.named_modules() if isinstance(m, QUANTIZABLE_TYPES)]
    with eval_mode_hooks(model, hooks, pre=False), torch.no_grad():
        model(example_input)
    if not recorder.order:
        raise ValueError("model has no nn.Conv1d, nn.Conv2d or nn.Linear layer that runs on example_input")
    modules = dict(model.named_modules())
    layers = []
    for index, name in enumerate(recorder.order):
        shape = _merge_calls(recorder.shapes[name])
        layers.append(
            QuantLayer(
                index=index,
                name=name,
                num_weights=int(modules[name].weight.numel()),
                shape=shape,
                **recorder.first[name],
            )
        )
    return layers


def cost_table_for_model(
    model: nn.Module,
    example_input: torch.Tensor,
    profile: str | hw_sim.Accelerator,
    bits=range(2, 9),
    batch: int = 1,
) -> tuple[list[QuantLayer], hw_sim.CostTable]:
    """``(quantizable_layers(model, example_input), CostTable(shapes, profile, bits, batch))``."""
    layers = quantizable_layers(model, example_input)
    table = hw_sim.CostTable([ly.shape for ly in layers], profile, bits=bits, batch=batch)
    return layers, table


# ---------------------------------------------------------------------------- TorchScript
@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the profiler backend's native log lines (written straight to fd 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _scripted_layers(
    model: torch.jit.ScriptModule, example_input: torch.Tensor, batch: int
) -> list[QuantLayer]:
    from torch.profiler import ProfilerActivity, profile

    with (
        eval_mode_hooks(model),
        _quiet_native_stderr(),
        profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof,
        torch.no_grad(),
    ):
        model(example_input)
    ops = [e for e in prof.events() if e.name in ("aten::conv2d", "aten::linear")]
    if not ops:
        raise ValueError("model runs no conv2d or linear op on example_input")
    candidates = [
        (name, tuple(m.weight.shape))
        for name, m in model.named_modules()
        if getattr(m, "original_name", "") in ("Conv2d", "Linear") and hasattr(m, "weight")
    ]
    used: set[str] = set()
    layers = []
    for index, op in enumerate(ops):
        x_shape, w_shape = list(op.input_shapes[0]), tuple(op.input_shapes[1])
        name = next(
            (n for n, ws in candidates if ws == w_shape and n not in used), f"{op.name}#{index}"
        )
        used.add(name)
        if op.name == "aten::conv2d":
            stride, padding, dilation, groups = op.concrete_inputs[3:7]
            c_out, c_in_g, kh, kw = w_shape
            c_in = c_in_g * int(groups)
            in_hw = (int(x_shape[-2]), int(x_shape[-1]))
            shape = hw_sim.LayerShape.conv2d(
                c_in,
                c_out,
                (kh, kw),
                in_hw,
                stride=tuple(stride),
                padding=padding if isinstance(padding, str) else tuple(padding),
                groups=int(groups),
                dilation=tuple(dilation),
            )
            out_hw = (
                _out_side(in_hw[0], kh, stride[0], padding, dilation[0], 0),
                _out_side(in_hw[1], kw, stride[1], padding, dilation[1], 1),
            )
            layers.append(
                QuantLayer(
                    index=index,
                    name=name,
                    kind=shape.kind,
                    c_in=c_in,
                    c_out=c_out,
                    kernel=max(kh, kw),
                    stride=max(int(stride[0]), int(stride[1])),
                    groups=int(groups),
                    in_hw=in_hw,
                    out_hw=out_hw,
                    num_weights=c_out * c_in_g * kh * kw,
                    shape=shape,
                )
            )
        else:
            out_f, in_f = w_shape
            numel = math.prod(int(d) for d in x_shape)
            tokens = max(1, numel // (batch * in_f))
            shape = hw_sim.LayerShape.linear(in_f, out_f, tokens=tokens)
            layers.append(
                QuantLayer(
                    index=index,
                    name=name,
                    kind="linear",
                    c_in=in_f,
                    c_out=out_f,
                    kernel=1,
                    stride=1,
                    groups=1,
                    in_hw=(1, tokens),
                    out_hw=(1, tokens),
                    num_weights=in_f * out_f,
                    shape=shape,
                )
            )
    return layers


def _out_side(size: int, k: int, stride: int, padding, dilation: int, axis: int) -> int:
    if isinstance(padding, str):
        return (
            math.ceil(size / stride)
            if padding == "same"
            else (size - dilation * (k - 1) - 1) // stride + 1
        )
    return (size + 2 * int(padding[axis]) - dilation * (k - 1) - 1) // stride + 1
