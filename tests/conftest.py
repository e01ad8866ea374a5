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
    # CI has 2 cores; more intra-op threads than cores only adds contention for tiny models.
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))
