"""Shared test configuration.

Trained float models are cached under ``<repo>/.cache/test-models`` (ignored by git) unless the
user set ``QUANT_ENVS_CACHE``: a clean checkout (CI) trains them once per run, a developer's
machine keeps them between runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("QUANT_ENVS_CACHE", str(REPO / ".cache" / "test-models"))


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A model that is given no logger makes an empty tempdir/SB3-<time> folder per learn() call;
    # pointed here, the test run's are removed with pytest's other temporary folders.
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3-logs")))


@pytest.fixture(autouse=True, scope="session")
def _few_torch_threads() -> None:
    # The test models are tiny: intra-op threads only add contention (see training.torch_threads).
    import torch

    torch.set_num_threads(1)
