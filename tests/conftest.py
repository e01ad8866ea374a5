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
def _few_torch_threads() -> None:
    # The test models are tiny: intra-op threads only add contention (see training.torch_threads).
    import torch

    torch.set_num_threads(1)
