"""Set-up files agree with each other: environment.yml's pip section is pyproject's requirements."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml", reason="pyyaml (in the test extra) is needed to parse environment.yml")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli", reason="Python < 3.11 needs tomli to read pyproject.toml")


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "graphbatch"
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    pip = pip_sections[0]
    assert "-e ." in pip, "environment.yml must install graphbatch itself"
    pyproject = _pyproject()["project"]
    wanted = pyproject["dependencies"] + pyproject["optional-dependencies"]["test"]
    listed = [p for p in pip if not p.startswith("-e")]
    assert sorted(listed) == sorted(wanted), "environment.yml pip section drifted from pyproject.toml"
    py = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    minimum = pyproject["requires-python"].lstrip(">=")
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_optional_dependencies_declared():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert _name(extras["cuda12"][0]) == "cupy-cuda12x"
    assert _name(extras["cuda13"][0]) == "cupy-cuda13x"
    assert _name(extras["torch-sparse"][0]) == "torch-sparse"
    core = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    # CuPy and torch-sparse must stay optional: never core dependencies.
    assert not core & {"cupy", "cupy-cuda12x", "cupy-cuda13x", "torch-sparse"}
    assert {"torch", "numpy", "scipy", "networkx", "pynndescent", "torch-geometric"} <= core


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "README must hold the test command in a fenced block after <!-- test-command -->"
    command = m.group(1).strip()
    assert command in ci, f".ci/run must call the README's test command exactly: {command!r}"


def test_import_does_not_pull_optional_heavy_packages():
    import subprocess

    code = ("import sys, graphbatch; heavy = {'pynndescent', 'numba', 'cupy', 'torch_sparse', "
            "'sentence_transformers', 'matplotlib'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import graphbatch imported optional packages eagerly: {out}"


def test_import_compiles_no_kernels():
    """``import graphbatch`` (and building a sampler's graph) leaves numba and the compiled kernels unimported."""
    import subprocess

    code = ("import sys, torch, graphbatch as gb; "
            "gb.build_proximity_graph(torch.randn(50, 4), 3, candidates=10, seed=0); "
            "print(sorted(m for m in sys.modules if m.startswith('numba') or m == 'graphbatch.kernels.compiled'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"numba code was imported eagerly: {out}"


def test_readme_quick_start_runs_as_written():
    """The README's Quick start block runs unchanged, and its sampler ends on a graph (warm-up done)."""
    import re

    text = (ROOT / "README.md").read_text()
    quick = text[text.index("## Quick start"):]
    block = re.search(r"```python\n(.*?)```", quick, re.S).group(1)
    scope: dict = {}
    exec(compile(block, "README.md (Quick start)", "exec"), scope)
    s = scope["sampler"]
    assert s.graph is not None and s.stats["random_epochs"] == 1 and s.stats["refreshes"] >= 1
