"""Training, short retraining and evaluation loops shared by every task.

All randomness (batch order) comes from an explicit ``torch.Generator``, so a finetuning run is a
deterministic function of its seed.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sized

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

#: Batch size of batch-norm re-estimation and of evaluation (``recalibrate_batchnorm``, ``accuracy``):
#: the faster scoring paths (``prefix_reuse``, ``policy_batch``) cut their data into the same batches.
EVAL_BATCH = 512


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without parameters): the loops move
    each batch there, so data stays on the CPU and a model may live on a GPU."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def dataset_size(dataset: Dataset) -> int:
    """``len(dataset)``: the tasks' datasets are map-style, with a length."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"dataset {type(dataset).__name__} has no len(); expected a map-style dataset")
    return len(dataset)


def _batches(dataset: Dataset, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches; each pass over the data is a fresh permutation."""
    if isinstance(dataset, TensorDataset):
        # In-memory data: index the tensors directly, 10-50x faster than per-sample collation.
        x, y = dataset.tensors
        n = len(y)
        while True:
            perm = torch.randperm(n, generator=generator)
            stop = n - n % batch_size if n > batch_size else n
            for i in range(0, stop, batch_size):
                idx = perm[i : i + batch_size]
                yield x[idx], y[idx]
    if not isinstance(dataset, Sized):  # a random permutation needs the length
        raise TypeError(f"dataset {type(dataset).__name__} has no len(); expected a map-style dataset")
    sampler = RandomSampler(dataset, generator=generator)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=len(dataset) > batch_size)
    while True:
        yield from loader


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (None: leave torch's setting alone).

    Tiny networks gain nothing from intra-op parallelism and lose a lot to it when the cores are
    shared (measured: 25 retraining steps of digits-mbnet took 0.7 s on one thread and 20-30 s on two
    threads beside other busy processes), so the built-in tasks run single-threaded.
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _freeze_batchnorm(model: nn.Module) -> None:
    # Short retraining with small batches: running statistics stay those of the float model.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = EVAL_BATCH) -> nn.Module:
    """Re-estimate every batch norm's running mean and variance on ``inputs`` (a fixed set: deterministic).

    Quantization shifts each layer's output statistics; re-estimating them (cumulative average
    over ``inputs``, ``momentum=None``) recovers much of the post-training accuracy without any
    gradient step. Returns the model in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    device = model_device(model)
    try:
        for x in inputs.split(batch_size):
            model(x.to(device))
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
    return model.eval()


def train_steps(
    model: nn.Module,
    dataset: Dataset,
    steps: int,
    *,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    weight_decay: float = 0.0,
    freeze_bn: bool = False,
    cosine: bool = True,
    progress: str | None = None,
) -> nn.Module:
    """Run ``steps`` Adam steps of cross-entropy training on ``dataset`` (in place) and return the model.

    ``progress``: a label for a tqdm progress bar (on stderr, total ``steps`` known up front), for
    training long enough that silence would look like a hang; None shows nothing.
    """
    if steps <= 0:
        return model.eval()
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if cosine else None
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    if freeze_bn:
        _freeze_batchnorm(model)
    batches = itertools.islice(_batches(dataset, batch_size, generator), steps)
    if progress is not None:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=steps, desc=progress, unit="step")
    device = model_device(model)
    for x, y in batches:
        x, y = x.to(device), y.to(device)  # no copy on the CPU
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = EVAL_BATCH, max_samples: int | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (or its first ``max_samples``), in [0, 1]."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    correct = total = 0
    batches = (
        zip(*(t.split(batch_size) for t in dataset.tensors))
        if isinstance(dataset, TensorDataset)
        else DataLoader(dataset, batch_size=batch_size, shuffle=False)
    )
    for x, y in batches:
        if max_samples is not None and total >= max_samples:
            break
        if max_samples is not None:
            x, y = x[: max_samples - total], y[: max_samples - total]
        correct += int((model(x.to(device)).argmax(dim=1) == y.to(device)).sum())
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)
