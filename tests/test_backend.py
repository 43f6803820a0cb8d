"""The capability module: flags agree with what actually imports; errors name package and extra."""
from __future__ import annotations

import importlib.util

import pytest

from graphbatch import backend


def test_flags_are_bools_and_consistent():
    caps = backend.capabilities()
    assert set(caps) >= {"WITH_CUDA", "WITH_CUPY", "WITH_TORCH_SPARSE", "WITH_PYNNDESCENT"}
    assert all(isinstance(v, bool) for v in caps.values())
    assert backend.WITH_PYNNDESCENT == (importlib.util.find_spec("pynndescent") is not None)
    if backend.WITH_CUPY:
        assert importlib.util.find_spec("cupy") is not None


def test_require_returns_module():
    mod = backend.require("networkx")
    assert hasattr(mod, "pagerank")


@pytest.mark.parametrize("name,needle", [
    ("cupy", "graphbatch[cuda12]"),
    ("torch_sparse", "graphbatch[torch-sparse]"),
    ("definitely_not_a_package_xyz", "pip install definitely_not_a_package_xyz"),
])
def test_require_missing_names_package_and_extra(name, needle):
    if importlib.util.find_spec(name.split(".")[0]) is not None:
        pytest.skip(f"{name} is installed here, so the missing-package message cannot be produced")
    with pytest.raises(backend.MissingDependencyError, match=name) as info:
        backend.require(name, purpose="a test")
    msg = str(info.value)
    assert needle in msg and "a test" in msg
    assert isinstance(info.value, ImportError)
