"""Shared test fixtures and the GPU/optional-package plumbing.

Tests marked ``gpu`` are skipped, with the reason, when torch sees no CUDA device.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from graphbatch import backend

os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_collection_modifyitems(config, items):
    if backend.WITH_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A fresh, seeded-per-test numpy generator (seed printed on failure via the test id)."""
    seed = int.from_bytes(os.urandom(4), "little")
    request.node.user_properties.append(("seed", seed))
    print(f"rng seed: {seed}")
    return np.random.default_rng(seed)


@pytest.fixture
def torch_gen(rng) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(rng.integers(2**31)))
    return g
