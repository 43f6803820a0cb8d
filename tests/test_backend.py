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


def _stub_cupy(tmp_path, body):
    pkg = tmp_path / "stubs" / "cupy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    return str(tmp_path / "stubs")


def test_import_graphbatch_with_cupy_installed_imports_no_cupy(tmp_path):
    """A CuPy on sys.path is located (WITH_CUPY) but not imported by ``import graphbatch``."""
    import os
    import subprocess
    import sys

    stubs = _stub_cupy(tmp_path, "raise RuntimeError('the stub cupy was imported')\n")
    code = "import sys, graphbatch; print(graphbatch.backend.WITH_CUPY, 'cupy' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=stubs + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_unusable_cupy_falls_back_to_torch_with_a_warning(monkeypatch):
    """An importable CuPy whose first GPU call fails is probed once; rwr(backend='auto') then uses torch."""
    import sys
    import types

    import torch

    from graphbatch.solvers import power

    broken = types.ModuleType("cupy")

    def fail(*args, **kwargs):
        raise RuntimeError("CUDA driver not found (simulated)")

    broken.ones = broken.zeros = broken.array = fail
    broken.int32 = "int32"
    sparse = types.ModuleType("cupyx.scipy.sparse")
    sparse.csr_matrix = fail
    monkeypatch.setitem(sys.modules, "cupy", broken)
    monkeypatch.setitem(sys.modules, "cupyx", types.ModuleType("cupyx"))
    monkeypatch.setitem(sys.modules, "cupyx.scipy", types.ModuleType("cupyx.scipy"))
    monkeypatch.setitem(sys.modules, "cupyx.scipy.sparse", sparse)
    monkeypatch.setattr(backend, "WITH_CUPY", True)
    monkeypatch.setattr(backend, "WITH_CUDA", True)
    monkeypatch.setattr(backend, "_PROBES", {})
    on_gpu = types.SimpleNamespace(device=torch.device("cuda"))
    with pytest.warns(RuntimeWarning, match="CuPy is installed but unusable.*simulated"):
        assert power._resolve_backend("auto", on_gpu) == "torch"
    assert power._resolve_backend("auto", on_gpu) == "torch"  # probed once: no second warning needed
    assert backend._PROBES["cupy"][0] is False


@pytest.mark.parametrize("broken", ["cupyx.scipy.sparse", "cupy"])
def test_cupy_whose_modules_fail_to_import_is_unusable(monkeypatch, broken):
    """A located CuPy whose import fails (e.g. a missing libnvJitLink) is probed as unusable, never raised."""
    import sys
    import types

    import torch

    from graphbatch.solvers import power

    for name in ("cupy", "cupyx", "cupyx.scipy", "cupyx.scipy.sparse"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, broken, None)  # importing it raises ImportError
    monkeypatch.setattr(backend, "WITH_CUPY", True)
    monkeypatch.setattr(backend, "WITH_CUDA", True)
    monkeypatch.setattr(backend, "_PROBES", {})
    with pytest.warns(RuntimeWarning, match="unusable.*(ModuleNotFound|Import)Error"):
        assert power._resolve_backend("auto", types.SimpleNamespace(device=torch.device("cuda"))) == "torch"
    assert backend.cupy_usable(warn=False) is False
