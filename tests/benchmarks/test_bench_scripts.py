"""The benchmark scripts run end to end on tiny sizes and write the JSON rows they print.

The GPU check (``benchmarks/gpu_check.sh``) calls these scripts on a device machine, where a broken
script costs device time; this runs the same entry points on CPU on every CI run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, out: Path) -> list[dict]:
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    data = json.loads(out.read_text())
    return data["rows"] if isinstance(data, dict) else data


@pytest.mark.parametrize("mode", ["walk", "ppr"])
def test_bench_sampler_rows(tmp_path, mode):
    rows = _run("bench_sampler.py", "--sizes", "1500", "--batch", "64", "--k", "8", "--modes", mode,
                "--repeats", "1", "--ppr-repeats", "1", "--warmup-epochs", "0", "--reference-max", "0",
                out=tmp_path / "s.json")
    assert [r["mode"] for r in rows] == [mode]
    r = rows[0]
    assert r["N"] == 1500 and r["exact_epoch"] and r["batches"] == -(-1500 // 64)
    assert r["engine"] == ("push" if mode == "ppr" else "walk")
