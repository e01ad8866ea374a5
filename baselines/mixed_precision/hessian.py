"""HAWQ-style second-order sensitivities: Hutchinson Hessian traces times quantization perturbations.

HAWQ-V2 (Dong et al., NeurIPS 2020) and HAWQ-V3 (Yao et al., ICML 2021) rank a layer's quantization
to ``b`` bits by

    Omega_i(b) = avg_trace(H_i) * ||Q_b(W_i) - W_i||^2,    avg_trace = Tr(H_i) / n_i,

the second-order term of the loss change with the Hessian block ``H_i`` of layer ``i``'s weights
replaced by its average eigenvalue. ``Tr(H_i)`` comes from Hutchinson's estimator
``E[v^T H v]`` over Rademacher vectors ``v``, with Hessian-vector products by double backward
through the training loss of the float model (as PyHessian does).

For activation widths (HAQ's two steps per layer) the same second-order term is used for the
layer's input ``X_i`` over the Hessian data: ``Omega^a_i(a) = Tr(H_X_i) / numel(X_i) *
||Q_a(X_i) - X_i||^2``, where ``H_X_i`` is the Hessian of the same loss with respect to that input
(taken through a zero-valued leaf added to it). Both terms estimate the same quantity (the loss
increase), so they add: ``Omega_i(w, a) = Omega^w_i(w) + Omega^a_i(a)``.

The perturbations use the repository's own quantizers (``FakeQuantModel``: MSE-clipped per-channel
weights, calibrated per-tensor activations), so they are those of the policies evaluated.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

from quant_envs.mixed_precision.hooks import eval_mode_hooks
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.training import dataset_size


@dataclass(frozen=True)
class HessianTraces:
    """Hutchinson estimates of per-layer Hessian traces of the training loss."""

    weight_trace: np.ndarray  # [L] Tr(H) of each layer's weight block
    weight_numel: np.ndarray  # [L] number of weights
    activation_trace: np.ndarray | None  # [L] Tr(H) w.r.t. each layer's input over the data, or None
    activation_numel: np.ndarray | None  # [L] input values over the data
    samples: int
    data_size: int

    @property
    def weight_avg_trace(self) -> np.ndarray:
        return self.weight_trace / self.weight_numel

    @property
    def activation_avg_trace(self) -> np.ndarray | None:
        if self.activation_trace is None:
            return None
        return self.activation_trace / self.activation_numel


def _first_examples(dataset: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(n, dataset_size(dataset))
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors
        return x[:n], y[:n]
    items = [dataset[i] for i in range(n)]
    return torch.stack([torch.as_tensor(x) for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


def _rademacher(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, like.shape, generator=generator, dtype=like.dtype) * 2 - 1


def _leaf_adder(leaves: list[torch.Tensor | None], i: int):
    """Forward pre-hook: add a zero-valued leaf to the layer's input, so d/d(leaf) = d/d(input)."""
    def add_leaf(_module: nn.Module, args: tuple) -> tuple | None:
        if leaves[i] is None:  # a module called twice: its first input is the one quantized
            leaves[i] = torch.zeros_like(args[0], requires_grad=True)
            return (args[0] + leaves[i], *args[1:])
        return None
    return add_leaf


def _recorder(seen: dict[int, torch.Tensor], i: int):
    """Forward pre-hook: keep the layer's (first) input."""
    def record(_module: nn.Module, args: tuple) -> None:
        seen.setdefault(i, args[0].detach())
    return record


def hutchinson_traces(model: nn.Module, layer_names: Sequence[str], inputs: torch.Tensor, targets: torch.Tensor,
                      samples: int, seed: int, batch_size: int = 256, activations: bool = False) -> HessianTraces:
    """Per-layer Hessian traces of the mean cross-entropy of ``model`` on (``inputs``, ``targets``).

    The model is copied and put in eval mode (batch norm uses its running statistics, as for the
    deployed model). Every block (a layer's weights; with ``activations`` also a layer's input) gets
    ``samples`` Rademacher probes of its own, drawn from a ``torch.Generator`` seeded with ``seed``:
    ``v^T H_jj v`` with ``H_jj v`` from a double backward of that block's gradient alone, so the other
    blocks' cross terms add no variance (a probe shared by all blocks is unbiased too but, measured
    here, several times noisier per Hessian-vector product). The loss over the data is split into
    batches of ``batch_size`` whose Hessians add up (each batch's loss weighted by its share).
    """
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    modules = [model.get_submodule(n) for n in layer_names]
    weights: list[torch.Tensor] = []
    for name, m in zip(layer_names, modules, strict=True):
        w = m.weight
        if not isinstance(w, torch.Tensor):  # nn.Module attributes may also be submodules
            raise TypeError(f"layer {name!r} has no weight tensor (got {type(w).__name__})")
        weights.append(w.requires_grad_(True))
    generator = torch.Generator().manual_seed(seed)
    n_data = len(targets)
    w_trace = np.zeros(len(modules))
    a_trace = np.zeros(len(modules))
    a_numel = np.zeros(len(modules))
    for start in range(0, n_data, batch_size):
        x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
        leaves: list[torch.Tensor | None] = [None] * len(modules)
        handles = []
        if activations:
            handles = [m.register_forward_pre_hook(_leaf_adder(leaves, i)) for i, m in enumerate(modules)]
        try:
            loss = F.cross_entropy(model(x), y) * (len(y) / n_data)
        finally:
            for h in handles:
                h.remove()
        inputs_seen = [leaf for leaf in leaves if leaf is not None]
        if activations and len(inputs_seen) < len(leaves):
            raise RuntimeError("a quantizable layer was not called in the forward pass")
        blocks = weights + (inputs_seen if activations else [])
        grads = torch.autograd.grad(loss, blocks, create_graph=True)
        quad = np.zeros(len(blocks))
        for _ in range(samples):
            for j, (block, grad) in enumerate(zip(blocks, grads, strict=True)):
                # a probe on block j alone: v^T H_jj v, free of the other blocks' cross terms
                v = _rademacher(block, generator)
                (hv,) = torch.autograd.grad(grad, block, grad_outputs=v, retain_graph=True, allow_unused=True)
                quad[j] += 0.0 if hv is None else float((v * hv).sum())
        w_trace += quad[:len(weights)] / samples
        if activations:
            a_trace += quad[len(weights):] / samples
            a_numel += np.array([leaf.numel() for leaf in inputs_seen])
    return HessianTraces(
        weight_trace=w_trace, weight_numel=np.array([w.numel() for w in weights], dtype=float),
        activation_trace=a_trace if activations else None, activation_numel=a_numel if activations else None,
        samples=samples, data_size=n_data,
    )


@torch.no_grad()
def weight_perturbations(problem: MixedPrecisionProblem) -> np.ndarray:
    """[L, len(bits)]: ||Q_b(W_i) - W_i||^2 with the repository's weight quantizer."""
    fq = problem.fake_quant_model()
    fq.reset_weights()
    out = np.zeros((problem.num_layers, len(problem.bits)))
    for j, b in enumerate(problem.bits):
        fq.set_policy([(b, None)] * problem.num_layers)
        for i, wrapper in enumerate(fq.wrappers):
            out[i, j] = float(((wrapper.quantized_weight() - wrapper.layer.weight) ** 2).sum())
    return out


@torch.no_grad()
def activation_perturbations(problem: MixedPrecisionProblem, inputs: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """[L, len(bits)]: ||Q_a(X_i) - X_i||^2 summed over ``inputs``, X_i the float model's layer inputs,
    Q_a the repository's calibrated activation quantizer."""
    fq = problem.fake_quant_model()
    fq.reset_weights()
    names = [layer.name for layer in problem.layers]
    model = problem.task.model
    out = np.zeros((problem.num_layers, len(problem.bits)))
    for start in range(0, len(inputs), batch_size):
        seen: dict[int, torch.Tensor] = {}
        with eval_mode_hooks(model, [(model.get_submodule(n), _recorder(seen, i)) for i, n in enumerate(names)]):
            model(inputs[start:start + batch_size])
        for j, a in enumerate(problem.bits):
            fq.set_policy([(None, a)] * problem.num_layers)
            for i, wrapper in enumerate(fq.wrappers):
                out[i, j] += float(((wrapper.quantize_input(seen[i]) - seen[i]) ** 2).sum())
    return out


def hawq_sensitivities(problem: MixedPrecisionProblem, samples: int, data_size: int, seed: int,
                       activations: bool, batch_size: int = 256) -> tuple[np.ndarray, HessianTraces]:
    """The [L, len(bits), len(bits)] table Omega_i(w, a) = Omega^w_i(w) (+ Omega^a_i(a)) and the traces."""
    x, y = _first_examples(problem.task.train_set, data_size)
    names = [layer.name for layer in problem.layers]
    traces = hutchinson_traces(problem.task.model, names, x, y, samples, seed, batch_size, activations)
    omega_w = traces.weight_avg_trace[:, None] * weight_perturbations(problem)
    omega = np.repeat(omega_w[:, :, None], len(problem.bits), axis=2)
    a_avg = traces.activation_avg_trace  # None unless activations
    if a_avg is not None:
        omega_a = a_avg[:, None] * activation_perturbations(problem, x, batch_size)
        omega = omega + omega_a[:, None, :]
    return omega, traces
