"""Tasks: a trained float model, its data splits, and how to retrain and evaluate it.

Built-in tasks (no download, trained on first use and cached, see :mod:`model_cache`):

* ``mnist1d-cnn`` (default): a plain 1-D CNN (8 quantizable layers) on MNIST-1D (Greydanus &
  Kobak, ICML 2024), 30000 / 5000 / 5000 train / validation / test signals generated locally.
* ``mnist1d-mbnet``: a MobileNet-style 1-D CNN (12 quantizable layers) on the same data.
* ``mnist1d-small``: a plain 1-D CNN (5 quantizable layers) on the same data, for the exhaustive table.
* ``digits-mbnet``: a MobileNet-style CNN (10 quantizable layers) on scikit-learn's digits.
* ``digits-cnn``: a tiny 4-layer CNN, small enough for exact ground truth by enumeration.
* ``torchvision:<arch>`` (e.g. ``torchvision:mobilenet_v2``, ``torchvision:resnet18``): a torchvision
  architecture on the user's local data (an ImageFolder tree or the CIFAR-10 python folder), from
  the user's checkpoint or trained here once; ``dataset="fake"`` uses torchvision's FakeData.

The built-in tasks take ``float_state=`` (a state_dict) to use a given float network instead of the
cached one: how an exhaustive table's live problem starts from the very network the table was made
from (:mod:`quant_envs.mixed_precision.tables.live`).

New tasks: ``register_task(name, factory)`` where ``factory(**kwargs) -> Task``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from quant_envs.checks import check_bool, check_choice, check_int
from quant_envs.datasets import MNIST1D_SAMPLES, digits_splits, mnist1d_splits
from quant_envs.mixed_precision.model_cache import (
    load_or_train,
    non_finite_tensors,
    resolve_cache_dir,
    state_digest,
)
from quant_envs.mixed_precision.models import (
    DigitsCNN,
    DigitsMobileNet,
    Mnist1dCNN,
    Mnist1dMobileNet,
    Mnist1dSmallCNN,
)
from quant_envs.mixed_precision.training import (
    accuracy,
    dataset_size,
    recalibrate_batchnorm,
    torch_threads,
    train_steps,
)


@dataclass
class Task:
    """A trained float model with its data; everything an environment or a solver needs from it."""

    name: str
    model: nn.Module
    train_set: Dataset
    val_set: Dataset
    test_set: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    finetune_lr: float = 1e-3
    batch_size: int = 64
    #: the retraining mini-batches a reward evaluation runs by default (the task's recipe)
    finetune_steps: int = 20
    #: the longer retraining of the final-evaluation protocol (``MixedPrecisionProblem.final_evaluation``)
    final_finetune_steps: int = 200
    max_eval_samples: int | None = None
    calibration_size: int = 256
    #: training inputs on which batch-norm statistics are re-estimated before retraining (0: keep
    #: the float model's statistics)
    bn_recalibration_size: int = 0
    #: intra-op threads for retraining and evaluation (None: torch's default); see ``torch_threads``
    num_threads: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros((batch, *self.input_shape))

    def calibration_inputs(self) -> torch.Tensor:
        """The first ``calibration_size`` training inputs (a fixed set: calibration is deterministic)."""
        n = min(self.calibration_size, dataset_size(self.train_set))
        return torch.stack([self.train_set[i][0] for i in range(n)])

    def finetune(self, model: nn.Module, steps: int, seed: int = 0) -> nn.Module:
        """Quantization-aware retraining for ``steps`` mini-batches (batch norm statistics frozen).

        With ``bn_recalibration_size`` > 0 the batch-norm statistics are first re-estimated on the
        first that many training inputs (deterministic, so not a source of seed noise).
        """
        with torch_threads(self.num_threads):
            if self.bn_recalibration_size:
                n = min(self.bn_recalibration_size, dataset_size(self.train_set))
                recalibrate_batchnorm(model, self._train_inputs(n))
            return train_steps(model, self.train_set, steps, lr=self.finetune_lr, batch_size=self.batch_size,
                               seed=seed, freeze_bn=True, cosine=False)

    def _train_inputs(self, n: int) -> torch.Tensor:
        if isinstance(self.train_set, TensorDataset):
            return self.train_set.tensors[0][:n]
        return torch.stack([self.train_set[i][0] for i in range(n)])

    def evaluate(self, model: nn.Module, split: str = "val") -> float:
        """Top-1 accuracy in [0, 1] on ``split`` ("train", "val" or "test")."""
        check_choice("split", split, ("train", "val", "test"))
        dataset = {"train": self.train_set, "val": self.val_set, "test": self.test_set}[split]
        with torch_threads(self.num_threads):
            return accuracy(model, dataset, max_samples=self.max_eval_samples)

    def float_accuracy(self, split: str = "val") -> float:
        """Accuracy of the float model on ``split`` (the reference of the reward), computed once."""
        key = f"float_{split}_accuracy"
        if key not in self.meta:
            self.meta[key] = self.evaluate(self.model, split)
        return float(self.meta[key])


TaskFactory = Callable[..., Task]
_TASKS: dict[str, TaskFactory] = {}


def register_task(name: str, factory: TaskFactory) -> None:
    """Make ``make_task(name, **kwargs)`` call ``factory(**kwargs)``."""
    _TASKS[name] = factory


def available_tasks() -> list[str]:
    return sorted(_TASKS) + ["torchvision:<arch>"]


def make_task(name: str, **kwargs: Any) -> Task:
    """Build (or load from the cache) the task called ``name``; see the module docstring."""
    if not isinstance(name, str):
        raise TypeError(f"task={name!r} must be a string, got {type(name).__name__}")
    if name.startswith("torchvision:"):
        return torchvision_task(name.split(":", 1)[1], **kwargs)
    check_choice("task", name, available_tasks())
    return _TASKS[name](**kwargs)


def _config_key(name: str, config: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def _float_model(key: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], dict[str, Any]],
                 cache_dir: str | os.PathLike[str] | None, float_state: Mapping[str, Any] | None
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The task's float network: ``float_state`` when given (an exhaustive table's own network, which
    another CPU kind would not train bit for bit), else the cached one, trained on first use."""
    if float_state is None:
        return load_or_train(key, build, train, cache_dir)
    if not isinstance(float_state, Mapping):
        raise TypeError(f"float_state must map parameter names to arrays (a state_dict), got {type(float_state).__name__}")
    model = build()
    try:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in float_state.items()})
    except RuntimeError as e:
        raise ValueError(f"float_state does not fit the {key.rsplit('-', 1)[0]} network: {str(e).splitlines()[0]}") from None
    bad = non_finite_tensors(model.state_dict())
    if bad:
        raise ValueError(f"float_state holds NaN or inf in {', '.join(bad[:3])}")
    return model.eval(), {"float_state": "given"}


def data_digest(task: Task) -> str:
    """SHA-256 over a task's train, validation and test tensors (inputs and labels, in order): which
    data a table's entries were computed on. Only for tasks held as ``TensorDataset`` splits."""
    tensors = {}
    for name, split in (("train", task.train_set), ("val", task.val_set), ("test", task.test_set)):
        if not isinstance(split, TensorDataset):
            raise TypeError(f"task {task.name!r}: data_digest needs TensorDataset splits, got {type(split).__name__}")
        tensors.update({f"{name}.{i}": t for i, t in enumerate(split.tensors)})
    return state_digest(tensors, {})  # the model cache's digest, over the splits instead of weights


# --------------------------------------------------------------------------------------------------
# digits tasks


def _digits_task(name: str, build: Callable[[], nn.Module], *, seed: int, train_steps_: int, lr: float,
                 cache_dir: str | os.PathLike[str] | None, float_state: Mapping[str, Any] | None = None) -> Task:
    check_int("seed", seed, min_value=0)
    splits = digits_splits(seed=0)  # the data split is fixed; ``seed`` seeds the float training

    def tensors(split) -> TensorDataset:
        return TensorDataset(torch.from_numpy(split.x.copy()), torch.from_numpy(split.y.copy()))

    train_set, val_set, test_set = tensors(splits.train), tensors(splits.val), tensors(splits.test)
    config = {"seed": seed, "steps": train_steps_, "lr": lr, "weight_decay": 1e-4, "batch": 64, "v": 2}  # v2: trained single-threaded (reproducible)

    def seeded_build() -> nn.Module:
        torch.manual_seed(seed)  # initial weights
        return build()

    def train(model: nn.Module) -> dict[str, Any]:
        with torch_threads(1):
            train_steps(model, train_set, train_steps_, lr=lr, weight_decay=1e-4, batch_size=64, seed=seed)
        return {"float_val_accuracy": accuracy(model, val_set), "float_test_accuracy": accuracy(model, test_set)}

    model, meta = _float_model(_config_key(name, config), seeded_build, train, cache_dir, float_state)
    for p in model.parameters():
        p.requires_grad_(False)  # the float model is a reference; quantized copies are retrained
    return Task(name=name, model=model, train_set=train_set, val_set=val_set, test_set=test_set,
                input_shape=(1, 8, 8), num_classes=10, finetune_lr=1e-3, batch_size=64, num_threads=1, meta=meta)


def digits_mbnet(seed: int = 0, cache_dir: str | os.PathLike[str] | None = None,
                 float_state: Mapping[str, Any] | None = None) -> Task:
    """MobileNet-style CNN on the digits (800 Adam steps, lr 1e-2 cosine; ~98% validation accuracy)."""
    return _digits_task("digits-mbnet", DigitsMobileNet, seed=seed, train_steps_=800, lr=1e-2, cache_dir=cache_dir, float_state=float_state)


def digits_cnn(seed: int = 0, cache_dir: str | os.PathLike[str] | None = None,
               float_state: Mapping[str, Any] | None = None) -> Task:
    """Tiny 4-layer CNN on the digits (600 Adam steps, lr 1e-2 cosine)."""
    return _digits_task("digits-cnn", DigitsCNN, seed=seed, train_steps_=600, lr=1e-2, cache_dir=cache_dir, float_state=float_state)


register_task("digits-mbnet", digits_mbnet)
register_task("digits-cnn", digits_cnn)


# --------------------------------------------------------------------------------------------------
# MNIST-1D tasks

#: The default task of the mixed-precision environments and solvers.
DEFAULT_TASK = "mnist1d-cnn"

class TrainRecipe(TypedDict):
    steps: int
    lr: float
    weight_decay: float
    batch: int


class FinetuneRecipe(TypedDict):
    steps: int
    lr: float
    batch: int
    bn_recalibration: int
    max_eval_samples: int | None
    final_steps: int


#: Float training of the MNIST-1D networks: Adam, cosine learning rate, single-threaded.
MNIST1D_TRAIN: TrainRecipe = {"steps": 1000, "lr": 1e-2, "weight_decay": 1e-4, "batch": 128}

#: The retraining recipe of a reward evaluation on MNIST-1D (chosen with
#: benchmarks/bench_reward_noise.py; see its docstring for the measurements).
MNIST1D_FINETUNE: FinetuneRecipe = {"steps": 10, "lr": 1e-4, "batch": 128, "bn_recalibration": 512, "max_eval_samples": None,
                    "final_steps": 300}


def _mnist1d_task(name: str, build: Callable[[], nn.Module], *, seed: int, num_samples: int,
                  cache_dir: str | os.PathLike[str] | None, float_state: Mapping[str, Any] | None = None) -> Task:
    check_int("seed", seed, min_value=0)
    check_int("num_samples", num_samples, min_value=1000)
    root = resolve_cache_dir(cache_dir)
    splits = mnist1d_splits(root, num_samples=num_samples, seed=0)  # fixed data; ``seed`` seeds training

    def tensors(split) -> TensorDataset:
        return TensorDataset(torch.from_numpy(split.x.copy()), torch.from_numpy(split.y.copy()))

    train_set, val_set, test_set = tensors(splits.train), tensors(splits.val), tensors(splits.test)
    recipe = MNIST1D_TRAIN
    config = {"seed": seed, "num_samples": num_samples, **recipe, "width": 16, "v": 1}

    def seeded_build() -> nn.Module:
        torch.manual_seed(seed)  # initial weights
        return build()

    def train(model: nn.Module) -> dict[str, Any]:
        with torch_threads(1):
            train_steps(model, train_set, recipe["steps"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                        batch_size=recipe["batch"], seed=seed)
            return {"float_val_accuracy": accuracy(model, val_set), "float_test_accuracy": accuracy(model, test_set)}

    model, meta = _float_model(_config_key(name, config), seeded_build, train, root, float_state)
    for p in model.parameters():
        p.requires_grad_(False)
    ft = MNIST1D_FINETUNE
    return Task(name=name, model=model, train_set=train_set, val_set=val_set, test_set=test_set,
                input_shape=(1, 40), num_classes=10, finetune_lr=ft["lr"], batch_size=ft["batch"],
                finetune_steps=ft["steps"], final_finetune_steps=ft["final_steps"],
                bn_recalibration_size=ft["bn_recalibration"],
                max_eval_samples=ft["max_eval_samples"], num_threads=1, meta=meta)


def mnist1d_cnn(seed: int = 0, num_samples: int = MNIST1D_SAMPLES,
                cache_dir: str | os.PathLike[str] | None = None,
                float_state: Mapping[str, Any] | None = None) -> Task:
    """Plain 8-layer 1-D CNN on MNIST-1D (trained as ``MNIST1D_TRAIN``; float accuracy in docs/problems/mixed-precision.md)."""
    return _mnist1d_task("mnist1d-cnn", Mnist1dCNN, seed=seed, num_samples=num_samples, cache_dir=cache_dir, float_state=float_state)


def mnist1d_mbnet(seed: int = 0, num_samples: int = MNIST1D_SAMPLES,
                  cache_dir: str | os.PathLike[str] | None = None,
                  float_state: Mapping[str, Any] | None = None) -> Task:
    """MobileNet-style 12-layer 1-D CNN on MNIST-1D (trained as ``MNIST1D_TRAIN``)."""
    return _mnist1d_task("mnist1d-mbnet", Mnist1dMobileNet, seed=seed, num_samples=num_samples, cache_dir=cache_dir, float_state=float_state)


def mnist1d_small(seed: int = 0, num_samples: int = MNIST1D_SAMPLES,
                  cache_dir: str | os.PathLike[str] | None = None,
                  float_state: Mapping[str, Any] | None = None) -> Task:
    """Plain 5-layer 1-D CNN on MNIST-1D (trained as ``MNIST1D_TRAIN``): the exhaustive table's task."""
    return _mnist1d_task("mnist1d-small", Mnist1dSmallCNN, seed=seed, num_samples=num_samples, cache_dir=cache_dir, float_state=float_state)


register_task("mnist1d-cnn", mnist1d_cnn)
register_task("mnist1d-mbnet", mnist1d_mbnet)
register_task("mnist1d-small", mnist1d_small)


# --------------------------------------------------------------------------------------------------
# torchvision architectures on the user's data

_DATA_HELP = (
    "put an ImageFolder tree at data_dir (data_dir/train/<class>/*.jpg and data_dir/val/<class>/*.jpg, "
    "optionally data_dir/test/<class>/*.jpg), or the CIFAR-10 python folder at "
    "data_dir/cifar-10-batches-py (as torchvision's CIFAR10 unpacks it); or pass dataset='fake' "
    "for torchvision's FakeData"
)


def _torchvision_datasets(dataset: str, data_dir: str | os.PathLike[str] | None, image_size: int,
                          fake_size: int, fake_classes: int, seed: int,
                          missing_test: str = "error") -> tuple[Dataset, Dataset, Dataset, int]:
    import torchvision
    from torchvision import transforms

    if dataset == "fake":
        tf = transforms.ToTensor()
        shape = (3, image_size, image_size)
        train = torchvision.datasets.FakeData(fake_size, shape, fake_classes, transform=tf, random_offset=0)
        val = torchvision.datasets.FakeData(max(fake_size // 4, 8), shape, fake_classes, transform=tf, random_offset=10**6)
        test = torchvision.datasets.FakeData(max(fake_size // 4, 8), shape, fake_classes, transform=tf, random_offset=2 * 10**6)
        return train, val, test, fake_classes
    if data_dir is None:
        raise ValueError(f"data_dir=None: a torchvision task needs local data; {_DATA_HELP}")
    root = Path(data_dir).expanduser()
    if dataset == "auto":
        dataset = "cifar10" if (root / "cifar-10-batches-py").is_dir() else "imagefolder"
    normalize = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if dataset == "cifar10":
        if not (root / "cifar-10-batches-py").is_dir():
            raise ValueError(f"data_dir={str(root)!r} has no cifar-10-batches-py folder; {_DATA_HELP}")
        tf = transforms.Compose([transforms.Resize(image_size), transforms.ToTensor(), normalize])
        train = torchvision.datasets.CIFAR10(root, train=True, transform=tf, download=False)
        held_out = torchvision.datasets.CIFAR10(root, train=False, transform=tf, download=False)
        perm = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed)).tolist()
        half = len(perm) // 2  # the official test set, split in half: validation / test
        return train, Subset(held_out, perm[:half]), Subset(held_out, perm[half:]), 10
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise ValueError(f"data_dir={str(root)!r} has no {part}/ folder; {_DATA_HELP}")
    tf = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                             transforms.ToTensor(), normalize])
    train = torchvision.datasets.ImageFolder(root / "train", transform=tf)
    val = torchvision.datasets.ImageFolder(root / "val", transform=tf)
    if (root / "test").is_dir():
        test = torchvision.datasets.ImageFolder(root / "test", transform=tf)
    elif missing_test == "use_val":  # the caller's explicit choice, said out loud
        warnings.warn(f"data_dir={str(root)!r} has no test/ folder; missing_test='use_val': the 'test' accuracy "
                      "is the validation accuracy (not a held-out estimate)", stacklevel=3)
        test = val
    else:
        raise ValueError(f"data_dir={str(root)!r} has no test/ folder; add data_dir/test/<class>/*.jpg, or pass "
                         "missing_test='use_val' to report the validation accuracy as the test accuracy")
    return train, val, test, len(train.classes)


def torchvision_task(
    arch: str,
    data_dir: str | os.PathLike[str] | None = None,
    dataset: str = "auto",
    checkpoint: str | os.PathLike[str] | None = None,
    image_size: int = 32,
    pretrain_steps: int = 2000,
    pretrain_lr: float = 1e-3,
    finetune_lr: float = 1e-4,
    batch_size: int = 64,
    max_eval_samples: int | None = 2000,
    fake_size: int = 256,
    fake_classes: int = 10,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    num_threads: int | None = 1,
    missing_test: str = "error",
    progress: bool = True,
) -> Task:
    """A torchvision architecture (built with ``weights=None``, never downloaded) on local data.

    With ``checkpoint`` (a state_dict, or a dict holding one under "state_dict"), those weights are
    the float model; without, the model is trained here for ``pretrain_steps`` and cached.
    Evaluation uses at most ``max_eval_samples`` validation images, for speed.

    ``num_threads``: torch intra-op threads for pretraining, retraining and evaluation (1 like the
    built-in tasks: reproducible, and fastest when cores are shared; None leaves torch's setting).
    ``missing_test``: an ImageFolder tree without ``test/`` is an error ("error", default), or
    "use_val" reports the validation accuracy as the test accuracy, with a warning.
    ``progress``: show a progress bar while pretraining (its length, ``pretrain_steps``, up front).
    """
    import torchvision

    check_choice("dataset", dataset, ("auto", "imagefolder", "cifar10", "fake"))
    check_int("image_size", image_size, min_value=8)
    check_int("pretrain_steps", pretrain_steps, min_value=0)
    if num_threads is not None:
        check_int("num_threads", num_threads, min_value=1)
    check_choice("missing_test", missing_test, ("error", "use_val"))
    check_bool("progress", progress)
    archs = torchvision.models.list_models(module=torchvision.models)
    check_choice("arch (torchvision:<arch>)", arch, archs)
    train_set, val_set, test_set, num_classes = _torchvision_datasets(
        dataset, data_dir, image_size, fake_size, fake_classes, seed, missing_test)

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)

    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ValueError(f"checkpoint={str(path)!r} does not exist; expected a file saved with torch.save(model.state_dict())")
        model = build()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
            model.load_state_dict(state)
        except Exception as exc:  # not a state_dict, damaged, another architecture: one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"checkpoint={str(path)!r} cannot be loaded into torchvision:{arch} ({first}); "
                             "expected a file saved with torch.save(model.state_dict())") from None
        bad = non_finite_tensors(state)
        if bad:
            raise ValueError(f"checkpoint={str(path)!r} holds NaN or inf in {', '.join(bad[:3])}; not used")
        meta: dict[str, Any] = {"checkpoint": str(path)}
    else:
        config = {"arch": arch, "dataset": dataset, "data_dir": str(data_dir), "image_size": image_size,
                  "steps": pretrain_steps, "lr": pretrain_lr, "seed": seed, "fake": [fake_size, fake_classes]}

        def train(model: nn.Module) -> dict[str, Any]:
            label = f"pretraining torchvision:{arch} ({pretrain_steps} steps, cached after)"
            with torch_threads(num_threads):
                train_steps(model, train_set, pretrain_steps, lr=pretrain_lr, batch_size=batch_size, seed=seed,
                            progress=label if progress and pretrain_steps > 0 else None)
            return {"pretrain_steps": pretrain_steps}

        model, meta = load_or_train(_config_key(f"torchvision-{arch}", config), build, train, cache_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    return Task(name=f"torchvision:{arch}", model=model.eval(), train_set=train_set, val_set=val_set,
                test_set=test_set, input_shape=(3, image_size, image_size), num_classes=num_classes,
                finetune_lr=finetune_lr, batch_size=batch_size, max_eval_samples=max_eval_samples,
                calibration_size=min(64, dataset_size(train_set)), num_threads=num_threads, meta=meta)
