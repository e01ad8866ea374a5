"""Many policies retrained and scored in one vectorised pass: the batched path of ``evaluate_many``.

P policies' networks are stacked along the channels: a layer with C output channels becomes one
with P * C, policy p owning channels p*C .. p*C + C - 1. Then

* each convolution is one grouped convolution (``groups`` times P; ``layer_ops="grouped"``) or P
  convolutions on the channel slices (``"loop"``); the linear head is one batched matrix product
  (``"grouped"``) or P ``F.linear`` calls (``"loop"``);
* batch norm is one ``F.batch_norm`` over the P * C channels: its statistics are per channel, so
  each policy's are its own, in the re-estimation (train mode, ``momentum=None``: the cumulative
  average ``recalibrate_batchnorm`` computes) and frozen during retraining (eval mode), as in
  :meth:`~quant_envs.mixed_precision.tasks.Task.finetune`;
* fake quantization is one elementwise op with per-channel parameters
  (:func:`~quant_envs.mixed_precision.fast_quant.fake_quantize_grouped`): each policy's widths,
  clip ratios and activation ranges, the very values its one-at-a-time quantizers use;
* each policy keeps its own parameter tensors (the float network's shapes), concatenated for each
  forward pass, and one Adam over all of them (elementwise, so per policy the same update as its
  own optimiser), on the same mini-batches in the same order (``eval_seed``), cross-entropy
  averaged per policy and summed over policies (each policy's gradient is its own loss's).

Why stacking rather than ``torch.func.vmap`` over ``functional_call``: vmap's batching rule for a
convolution with batched weights is this same grouped convolution, but vmap cannot update the
batch norms' running statistics in place (the re-estimation) and needs vmap rules for the
straight-through quantizer; stacked channels give per-policy batch norm natively, and per-policy
parameter tensors keep Adam's arithmetic exactly that of the one-at-a-time path.

Exactness. With ``layer_ops="loop"`` every operation a policy's values go through is the one its
one-at-a-time evaluation runs, on the same operands (the quantizers' elementwise float32 steps,
batch norm's per-channel reductions, the per-row cross-entropy, Adam's elementwise update), so on
the CPU the accuracies and retrained weights are equal bit for bit (tests/test_policy_batch.py).
``"grouped"`` (the GPU's choice, one kernel per layer) lets the grouped convolution's and the
batched matrix product's backward sum in another order than the ungrouped kernels: measured on
the CPU (16 random policies each, digits-cnn and mnist1d-cnn), the forward pass and so the 0-step
accuracies were still bit-identical, the retrained weights differed by at most 1.6e-7, and no
accuracy differed; a fake quantizer can turn such a difference into one quantization step, so the
tests allow a few samples. On CUDA, cuDNN's kernels differ from the CPU's anyway (GPU training is
not bit-identical to CPU training). One policy's result never depends on its batch-mates: nothing
mixes the channels of two policies, and on CUDA every pass is filled up to the same number of
policies, so the kernels (chosen by shape) are the same whoever shares the pass.

Applies where :func:`~quant_envs.mixed_precision.prefix_reuse.stages` does (the built-in chain
networks: blocks of quantized layer, batch norm, ReLU; optional pool; linear head), tasks with the
base ``Task.finetune``/``evaluate`` and data held as tensors; elsewhere :func:`batched_accuracies`
returns None and the caller scores the policies one at a time.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from quant_envs.checks import check_bool, check_choice, check_int
from quant_envs.mixed_precision import fast_quant
from quant_envs.mixed_precision.prefix_reuse import stages
from quant_envs.mixed_precision.quantize import QuantLayerWrapper
from quant_envs.mixed_precision.tasks import Task
from quant_envs.mixed_precision.training import (
    EVAL_BATCH,
    _batches,
    dataset_size,
    model_device,
    torch_threads,
)

if TYPE_CHECKING:
    from quant_envs.mixed_precision.cost_model import Policy
    from quant_envs.mixed_precision.policy_evaluator import PolicyEvaluator
    from quant_envs.mixed_precision.quantize import FakeQuantModel

__all__ = ["LAYER_OPS", "POLICY_CHUNK", "batched_accuracies"]

#: how the stacked convolutions and linear head run: one grouped op, or one op per policy
LAYER_OPS = ("auto", "grouped", "loop")
#: policies per stacked pass (on CUDA every pass is filled up to it: see ``batched_accuracies``)
POLICY_CHUNK = 32
_BATCH = EVAL_BATCH  # the batches of recalibrate_batchnorm and accuracy, so results are bit-identical


def _copies(value: torch.Tensor, p: int, device: torch.device) -> list[torch.Tensor]:
    """``p`` trainable copies of a float parameter on ``device`` (one host-to-device copy)."""
    base = value.to(device)
    return [base.clone().requires_grad_(True) for _ in range(p)]


def _float32(values: Sequence[float], repeat: int, device: torch.device) -> torch.Tensor:
    """``values`` (one per policy), each repeated ``repeat`` times, as a float32 tensor."""
    return torch.tensor(values, dtype=torch.float32, device=device).repeat_interleave(repeat)


@dataclass
class _Quant:
    """Fake-quantization parameters of a stacked tensor, one entry per channel (shaped to broadcast)."""

    scale: torch.Tensor
    zero_point: torch.Tensor
    quant_min: torch.Tensor
    quant_max: torch.Tensor

    def apply(self, x: torch.Tensor, per_channel: bool) -> torch.Tensor:
        return fast_quant.fake_quantize_grouped(x, self.scale, self.zero_point, self.quant_min, self.quant_max,
                                                per_channel)


class _Layer:
    """One quantizable layer for P policies: their parameters, weight and input quantizers."""

    def __init__(self, wrapper: QuantLayerWrapper, index: int, fq: FakeQuantModel, policies: Sequence[Policy],
                 prefix: str, device: torch.device) -> None:
        layer = wrapper.layer
        assert isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear))  # what QuantLayerWrapper takes
        self.module: nn.Conv1d | nn.Conv2d | nn.Linear = layer
        self.linear = isinstance(layer, nn.Linear)
        # the input: P * c_in channels (conv: dim 1) or P * c_in features (linear: the last dim)
        self.c_in = int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)
        c_out = int(layer.weight.shape[0])
        state = fq.float_state()
        p = len(policies)
        self.key = f"{prefix}.layer"  # its name in the fake-quantized model's state_dict
        self.weights = _copies(state[f"{prefix}.weight"], p, device)
        bias = state.get(f"{prefix}.bias")
        self.biases = None if bias is None else _copies(bias, p, device)
        ratios, w_qmax, a_scale, a_zp, a_qmax = [], [], [], [], []
        for policy in policies:
            w_bits, a_bits = policy[index]
            ratio, (lo, hi) = fq.layer_settings(index, w_bits, a_bits)  # type: ignore[misc]
            assert ratio is not None
            ratios.append(ratio)
            w_qmax.append(float(2 ** (w_bits - 1) - 1))
            levels = 2**a_bits - 1
            scale = (hi - lo) / levels  # as QuantLayerWrapper.quantize_input computes them
            a_scale.append(fast_quant.float32_scale(scale)[0])
            a_zp.append(float(round(-lo / scale)))
            a_qmax.append(float(levels))
        self.w_ratio = torch.cat(ratios).to(device)
        qmax = _float32(w_qmax, c_out, device)
        self.w_qmax = qmax
        w_shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        self.w_quant_bounds = (qmax.neg().reshape(w_shape), qmax.reshape(w_shape))
        c_in = self.c_in
        a_shape = (1, -1) if self.linear else (1, -1) + (1,) * (layer.weight.dim() - 2)
        self.a_quant = _Quant(_float32(a_scale, c_in, device).reshape(a_shape),
                              _float32(a_zp, c_in, device).reshape(a_shape),
                              torch.zeros(1, device=device), _float32(a_qmax, c_in, device).reshape(a_shape))
        self.p = p

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + (self.biases or [])

    def state(self, i: int) -> dict[str, torch.Tensor]:
        out = {f"{self.key}.weight": self.weights[i].detach()}
        if self.biases is not None:
            out[f"{self.key}.bias"] = self.biases[i].detach()
        return out

    def quantized_weight(self) -> torch.Tensor:
        """The P policies' weights fake-quantized and stacked ([P * C_out, ...]), as
        ``QuantLayerWrapper.quantized_weight`` computes each (straight-through while retraining)."""
        w = torch.cat(self.weights)
        absmax = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1).clamp_min(1e-12)
        scale = (self.w_ratio * absmax / self.w_qmax).float()
        shape = self.w_quant_bounds[0].shape
        quant = _Quant(scale.reshape(shape), torch.zeros(shape, device=w.device), *self.w_quant_bounds)
        return quant.apply(w, per_channel=True)

    def forward(self, x: torch.Tensor, weight: torch.Tensor, grouped: bool) -> torch.Tensor:
        """Stacked input (conv: [N, P * C_in, ...]; linear: [N, P * F]) to stacked output (conv:
        [N, P * C_out, ...]; linear: [P, N, out])."""
        x = self.a_quant.apply(x, per_channel=False)
        p = self.p
        if self.linear:
            n, f = x.shape[0], self.c_in
            w = weight.reshape(p, -1, f)
            if grouped:
                xs = x.reshape(n, p, f).transpose(0, 1)
                out = torch.bmm(xs, w.transpose(1, 2))
                return out if self.biases is None else out + torch.stack(self.biases)[:, None, :]
            return torch.stack([F.linear(x[:, i * f:(i + 1) * f].contiguous(), w[i],
                                         None if self.biases is None else self.biases[i]) for i in range(p)])
        conv = self.module
        assert not isinstance(conv, nn.Linear)
        op: Callable[..., torch.Tensor] = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
        bias = None if self.biases is None else torch.cat(self.biases)
        if grouped:
            return op(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups * p)
        c_in, c_out = self.c_in, conv.out_channels
        return torch.cat([
            op(x[:, i * c_in:(i + 1) * c_in].contiguous(), weight[i * c_out:(i + 1) * c_out],
               None if bias is None else bias[i * c_out:(i + 1) * c_out],
               conv.stride, conv.padding, conv.dilation, conv.groups)
            for i in range(p)], dim=1)


class _Norm:
    """One batch norm for P policies: per-policy affine parameters, stacked running statistics."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, prefix: str, fq: FakeQuantModel, p: int,
                 device: torch.device) -> None:
        state = fq.float_state()
        self.key = prefix
        self.eps = norm.eps
        self.momentum = norm.momentum
        self.weights = _copies(state[f"{prefix}.weight"], p, device)
        self.biases = _copies(state[f"{prefix}.bias"], p, device)
        self.running_mean = state[f"{prefix}.running_mean"].to(device).repeat(p)
        self.running_var = state[f"{prefix}.running_var"].to(device).repeat(p)
        self.num_batches_tracked = 0

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def state(self, i: int) -> dict[str, torch.Tensor]:
        c = len(self.running_mean) // len(self.weights)
        return {f"{self.key}.weight": self.weights[i].detach(), f"{self.key}.bias": self.biases[i].detach(),
                f"{self.key}.running_mean": self.running_mean[i * c:(i + 1) * c],
                f"{self.key}.running_var": self.running_var[i * c:(i + 1) * c]}

    def reset_for_recalibration(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked = 0

    def forward(self, x: torch.Tensor, recalibrating: bool) -> torch.Tensor:
        weight, bias = torch.cat(self.weights), torch.cat(self.biases)
        if recalibrating:  # nn.BatchNorm in train mode with momentum=None: a cumulative average
            self.num_batches_tracked += 1
            return F.batch_norm(x, self.running_mean, self.running_var, weight, bias, True,
                                1.0 / float(self.num_batches_tracked), self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, weight, bias, False, 0.0, self.eps)


class _StackedNetwork:
    """The chain network for P policies: blocks of (layer, batch norm, ReLU), optional pool, linear head."""

    def __init__(self, fq: FakeQuantModel, policies: Sequence[Policy], device: torch.device) -> None:
        model = fq.model
        names = {id(m): n for n, m in model.named_modules()}
        self.p = len(policies)
        self.blocks: list[list[_Layer | _Norm | str]] = []
        index = 0
        assert isinstance(model.features, nn.Sequential)
        for block in model.features:
            ops: list[_Layer | _Norm | str] = []
            for m in block.children() if isinstance(block, nn.Sequential) else [block]:
                name = names[id(m)]
                if isinstance(m, QuantLayerWrapper):
                    ops.append(_Layer(m, index, fq, policies, fq.layer_names[index], device))
                    index += 1
                elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                    ops.append(_Norm(m, name, fq, self.p, device))
                elif isinstance(m, nn.ReLU):
                    ops.append("relu")
                else:
                    raise _NotStackable(f"{type(m).__name__} in {name}")
            self.blocks.append(ops)
        pool = getattr(model, "pool", None)
        if pool is not None and not isinstance(pool, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
            raise _NotStackable(f"pool {type(pool).__name__}")
        self.pool = pool
        assert isinstance(model.classifier, QuantLayerWrapper)
        self.head = _Layer(model.classifier, index, fq, policies, fq.layer_names[index], device)
        self.layers = [op for ops in self.blocks for op in ops if isinstance(op, _Layer)] + [self.head]
        self.norms = [op for ops in self.blocks for op in ops if isinstance(op, _Norm)]

    def parameters(self) -> list[torch.Tensor]:
        return [t for m in self.layers for t in m.parameters()] + [t for n in self.norms for t in n.parameters()]

    def state(self, i: int) -> dict[str, torch.Tensor]:
        """Policy ``i``'s parameters and batch-norm statistics, by their names in the fake-quantized
        model's ``state_dict`` (for comparison with the one-at-a-time path)."""
        out = {k: v for m in self.layers for k, v in m.state(i).items()}
        return out | {k: v for n in self.norms for k, v in n.state(i).items()}

    def quantized_weights(self) -> list[torch.Tensor]:
        return [layer.quantized_weight() for layer in self.layers]

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor], grouped: bool,
                recalibrating: bool = False) -> torch.Tensor:
        """The P policies' logits ([P, N, classes]) on the inputs ``x`` ([N, C, ...], shared)."""
        x = x.repeat(1, self.p, *([1] * (x.dim() - 2)))  # every policy's input: the same batch
        k = 0
        for ops in self.blocks:
            for op in ops:
                if isinstance(op, _Layer):
                    x = op.forward(x, weights[k], grouped)
                    k += 1
                elif isinstance(op, _Norm):
                    x = op.forward(x, recalibrating)
                else:
                    x = torch.relu(x)
        if self.pool is not None:
            x = self.pool(x)
        return self.head.forward(torch.flatten(x, 1), weights[k], grouped)


class _NotStackable(Exception):
    """The network holds a module the stacked forward pass does not cover."""


def _finetune(net: _StackedNetwork, task: Task, steps: int, seed: int, device: torch.device, grouped: bool) -> None:
    """``Task.finetune`` for the P policies at once (re-estimation, then ``train_steps`` with batch
    norm frozen, Adam at the task's rate, the mini-batches of ``seed``)."""
    if task.bn_recalibration_size:
        n = min(task.bn_recalibration_size, dataset_size(task.train_set))
        with torch.no_grad():
            for norm in net.norms:
                norm.reset_for_recalibration()
            weights = net.quantized_weights()
            for x in task._train_inputs(n).split(_BATCH):
                net.forward(x.to(device), weights, grouped, recalibrating=True)
    if steps <= 0:
        return
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=task.finetune_lr, weight_decay=0.0)
    for x, y in itertools.islice(_batches(task.train_set, task.batch_size, generator), steps):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = net.forward(x, net.quantized_weights(), grouped)
        p, n = logits.shape[:2]
        # per policy the mean cross-entropy of its batch (nn.CrossEntropyLoss()); the sum's
        # gradient with respect to a policy's parameters is that policy's loss's
        losses = F.cross_entropy(logits.reshape(p * n, -1), y.repeat(p), reduction="none")
        losses.reshape(p, n).mean(dim=1).sum().backward()
        optimizer.step()


@torch.no_grad()
def _accuracies(net: _StackedNetwork, task: Task, split: str, device: torch.device, grouped: bool) -> list[float]:
    """Per policy, ``Task.evaluate`` on ``split`` (batches of 512, at most ``max_eval_samples``)."""
    dataset = {"train": task.train_set, "val": task.val_set, "test": task.test_set}[split]
    assert isinstance(dataset, TensorDataset)
    x_all, y_all = dataset.tensors
    if task.max_eval_samples is not None:
        x_all, y_all = x_all[: task.max_eval_samples], y_all[: task.max_eval_samples]
    weights = net.quantized_weights()
    correct = torch.zeros(net.p, dtype=torch.int64, device=device)
    for x, y in zip(x_all.split(_BATCH), y_all.split(_BATCH)):
        logits = net.forward(x.to(device), weights, grouped)
        correct += (logits.argmax(dim=2) == y.to(device)).sum(dim=1)
    total = max(len(y_all), 1)
    return [int(c) / total for c in correct.tolist()]


def _retrained(evaluator: PolicyEvaluator, policies: Sequence[Policy], steps: int,
               layer_ops: str) -> tuple[_StackedNetwork, Task, torch.device, bool] | None:
    """The stacked network of ``policies`` retrained for ``steps`` (None where the pass does not apply)."""
    check_choice("layer_ops", layer_ops, LAYER_OPS)
    task = evaluator.task
    if type(task).finetune is not Task.finetune or type(task).evaluate is not Task.evaluate:
        return None
    if not all(isinstance(d, TensorDataset) for d in (task.train_set, task.val_set, task.test_set)):
        return None
    fq = evaluator.fake_quant_model()
    if stages(fq) is None:
        return None
    device = model_device(fq.model)
    grouped = layer_ops == "grouped" or (layer_ops == "auto" and device.type == "cuda")
    try:
        net = _StackedNetwork(fq, policies, device)
    except _NotStackable:
        return None
    with torch_threads(task.num_threads):
        _finetune(net, task, steps, evaluator.eval_seed, device, grouped)
    return net, task, device, grouped


@contextlib.contextmanager
def _exact_cuda_numerics(device: torch.device) -> Iterator[None]:
    """On CUDA: float32 convolutions (no TF32, which cuDNN allows by default and which would round
    the fake-quantized operands to 10 mantissa bits) by deterministic algorithms, none chosen by
    timing (so a policy's result is the same from run to run); restored on leaving."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = False, True, False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved


def batched_accuracies(evaluator: PolicyEvaluator, policies: Sequence[Policy], steps: int,
                       splits: Sequence[str], layer_ops: str = "auto", chunk: int = POLICY_CHUNK,
                       pad: bool | None = None) -> list[dict[str, float]] | None:
    """Per policy, ``{split: evaluator.accuracy(policy, steps, split)}`` from stacked passes over
    ``policies`` (``chunk`` at a time, each chunk retrained together for ``steps`` mini-batches
    seeded by the evaluator's ``eval_seed``), on the evaluator's device; None where the batched
    pass does not apply (see the module docstring).

    ``layer_ops``: "grouped" (grouped convolutions, one batched matrix product), "loop" (the
    layers one policy at a time: bit-identical to the one-at-a-time path on the CPU), or "auto"
    ("grouped" on CUDA, "loop" elsewhere). ``pad``: fill the last chunk up to ``chunk`` policies
    (repeating its last), so that every pass runs kernels of one shape and a policy's result
    cannot depend on how many others share its call; None: pad on CUDA (where kernels are chosen
    by shape), not on the CPU.
    """
    check_choice("layer_ops", layer_ops, LAYER_OPS)
    check_int("chunk", chunk, min_value=1)
    if pad is not None:
        check_bool("pad", pad)
    if not policies:
        return []
    device = model_device(evaluator.fake_quant_model().model)
    pad = device.type == "cuda" if pad is None else pad
    out: list[dict[str, float]] = []
    for start in range(0, len(policies), chunk):
        part = list(policies[start:start + chunk])
        n = len(part)
        if pad:
            part += [part[-1]] * (chunk - n)
        with _exact_cuda_numerics(device):
            retrained = _retrained(evaluator, part, steps, layer_ops)
            if retrained is None:
                return None
            net, task, device, grouped = retrained
            with torch_threads(task.num_threads):
                per_split = {s: _accuracies(net, task, s, device, grouped) for s in splits}
        out += [{s: per_split[s][i] for s in splits} for i in range(n)]
    return out
