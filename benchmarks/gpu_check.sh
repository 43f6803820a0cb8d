#!/usr/bin/env bash
# graphbatch GPU check: CuPy RWR engine (device, stream, memory), torch-CUDA solvers, host syncs,
# deterministic-algorithms mode, the `-m gpu` tests and the GPU benchmarks (issue 16).
# Run from the repository root on a CUDA machine:   OUT=/some/dir bash benchmarks/gpu_check.sh
# Hard wall-clock budget: BUDGET_S (default 470 s, under 8 minutes); every step gets min(its cap, time left).
# Results under $OUT: run.log, probe.json, pytest_gpu.xml, pytest_standin.xml, bench_rwr.json,
# bench_build.json, bench_sampler_walk.json, bench_sampler_ppr.json, summary.json (each step's rc and time).
# DRY_RUN=1 runs the same steps on CPU with tiny sizes and no install (checks the script on a machine
# without a GPU; probes that need CuPy or CUDA then record their error).
set -u
REPO="${REPO:-$(pwd)}"; cd "$REPO" || exit 2
OUT="${OUT:-$REPO/gpu-out}"; mkdir -p "$OUT"
PY="${PYTHON:-python3}"
BUDGET_S="${BUDGET_S:-470}"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 OUT
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/graphbatch-numba-cache}"   # one JIT compile for all steps
T0=$(date +%s); DEADLINE=$((T0 + BUDGET_S))
exec > >(tee -a "$OUT/run.log") 2>&1
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
STEPS=""
# step NAME CAP cmd...: run with timeout = min(CAP, seconds left - 5); skip when under 15 s are left
step() {
  local name=$1 cap=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) - 5 )); local t=$(( cap < left ? cap : left ))
  if [ "$t" -lt 15 ]; then say "SKIP $name (budget spent)"; STEPS="$STEPS{\"step\": \"$name\", \"rc\": null},"; return 0; fi
  say "START $name (timeout ${t}s)"
  local s0; s0=$(date +%s)
  timeout -k 10 "$t" "$@"; local rc=$?
  say "END $name rc=$rc$([ $rc -eq 124 ] && echo ' (TIMED OUT)')"
  STEPS="$STEPS{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - s0 ))},"
  return 0
}

if [ "${DRY_RUN:-0}" = 1 ]; then
  DEV=cpu; export PROBE_DEVICE=cpu
  BUILD_SIZES="2000 5000"; RWR_SIZES="5000"; RWR_SEEDS="16"; SAMP_SIZES="5000"; SAMP_K="10"
  RWR_BACKENDS="torch"; PYTEST_MARK="gpu or not gpu"; PYTEST_FILES="tests/test_backend.py tests/graph/test_graph.py"
  BUILD_FLAGS="--cpu-only"
else
  DEV=cuda; export PROBE_DEVICE=cuda
  BUILD_SIZES="10000 100000 1000000"; RWR_SIZES="100000,1000000"; RWR_SEEDS="64,512"
  SAMP_SIZES="50000 1000000"; SAMP_K="20 100"; RWR_BACKENDS="torch,cupy"; PYTEST_MARK="gpu"; PYTEST_FILES="tests"
  BUILD_FLAGS=""
fi

# ---------------------------------------------------------------- 1. environment and install
say "host: $(hostname) $(nproc) cores; repo: $REPO; commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
TORCH_CUDA=$($PY -c "import torch; print(torch.version.cuda or '')" 2>/dev/null)
HAS_CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
say "torch $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null) built for CUDA '${TORCH_CUDA}', cuda available: $HAS_CUDA"
if [ "${DRY_RUN:-0}" != 1 ] && [ "$HAS_CUDA" != 1 ]; then say "no usable CUDA device: nothing to check"; exit 3; fi
case "$TORCH_CUDA" in
  12.*) EXTRA=cuda12 ;;   # -> cupy-cuda12x
  13.*) EXTRA=cuda13 ;;   # -> cupy-cuda13x
  *)    EXTRA="" ;;
esac
say "CUDA extra for this torch: ${EXTRA:-none}"
# CuPy usable already?  (import alone proves nothing: it succeeds even without a driver)
CUPY_OK=$($PY - <<'EOF' 2>/dev/null || echo 0
import cupy, cupyx.scipy.sparse as s
a = s.csr_matrix((cupy.ones(1), cupy.zeros(1, dtype=cupy.int32), cupy.array([0, 1], dtype=cupy.int32)), shape=(1, 1))
print(int(float((a @ cupy.ones((1, 2))).sum()) == 2.0))
EOF
)
say "installed CuPy works: $CUPY_OK ($($PY -m pip list 2>/dev/null | grep -i '^cupy' | tr '\n' ' '))"
if [ "${DRY_RUN:-0}" = 1 ] || [ "${SKIP_INSTALL:-0}" = 1 ]; then
  say "no install (DRY_RUN or SKIP_INSTALL)"
else
  WANT=".[test]"; [ "$CUPY_OK" != 1 ] && [ -n "$EXTRA" ] && WANT=".[test,$EXTRA]"
  # a package index may or may not be reachable from the GPU machine: try the full install, else the package alone
  if ! timeout 90 $PY -m pip install -q --retries 1 --timeout 10 -e "$WANT"; then
    say "full install failed (no package index?): editable install without dependencies (missing test extras only skip tests)"
    step "pip install --no-deps -e ." 60 $PY -m pip install -q --no-deps --no-build-isolation --no-index -e .
  fi
fi
if ! $PY -c "import graphbatch,os,sys; sys.exit(0 if os.path.realpath(graphbatch.__file__).startswith(os.path.realpath('$REPO')) else 1)" 2>/dev/null; then
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"; say "using PYTHONPATH=$PYTHONPATH"
fi
$PY -c "import importlib.util as u; print('  modules:', {m: u.find_spec(m) is not None for m in ('cupy', 'numba', 'scipy', 'torch_geometric', 'pynndescent', 'sklearn', 'hypothesis', 'sentence_transformers', 'datasets', 'nbclient')})"

# ---------------------------------------------------------------- 2. the gpu-marked tests (and the CPU stand-ins)
step "pytest -m '$PYTEST_MARK'" 150 $PY -m pytest -m "$PYTEST_MARK" -q -rA -p no:cacheprovider \
     --junitxml="$OUT/pytest_gpu.xml" $PYTEST_FILES
# the CPU stand-ins of the GPU paths, the capability probe and the import-time check (CuPy installed here)
step "pytest stand-ins + packaging" 45 $PY -m pytest -q -p no:cacheprovider --junitxml="$OUT/pytest_standin.xml" \
     tests/solvers/test_gpu_paths.py tests/test_backend.py \
     "tests/test_packaging.py::test_import_does_not_pull_optional_heavy_packages"

# ---------------------------------------------------------------- 3. targeted probes (JSON written after each)
PROBE=$(mktemp /tmp/gb-probe-XXXX.py)
cat > "$PROBE" <<'EOF'
"""GPU probes for graphbatch (issue 16): each check is independent and rewrites $OUT/probe.json as it finishes."""
import json, os, subprocess, sys, time, traceback, warnings
warnings.filterwarnings("ignore")
import numpy as np
import torch

sys.path[:0] = ["tests", "tests/solvers"]  # helpers.mixture, test_solvers.random_digraph
OUT = os.environ.get("OUT", ".")
DEV = os.environ.get("PROBE_DEVICE", "cuda")
SMALL = os.environ.get("DRY_RUN") == "1"
res = {}
path = os.path.join(OUT, "probe.json")


def save():
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=str)


def probe(name):
    def deco(fn):
        t = time.perf_counter()
        try:
            res[name] = {"ok": True, **(fn() or {})}
        except Exception as e:  # noqa: BLE001
            res[name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc(limit=4)}
        res[name]["seconds"] = round(time.perf_counter() - t, 2)
        print(f"[probe] {name}: {json.dumps(res[name], default=str)[:600]}", flush=True)
        save()
        return fn
    return deco


def sync():
    if DEV.startswith("cuda"):
        torch.cuda.synchronize()


def knn_like(n, k, seed=0, window=100):
    g = torch.Generator().manual_seed(seed)
    off = torch.randint(-window, window + 1, (n, k), generator=g)
    idx = (torch.arange(n).unsqueeze(1) + off) % n
    from graphbatch import ProximityGraph
    return ProximityGraph.from_neighbors(idx, torch.rand(n, k, generator=g) + 0.1)


def count_syncs(fn):
    """Run fn with torch's CUDA sync debug mode on "warn"; return (result, number of synchronizing calls)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = fn()
            torch.cuda.synchronize()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return out, sum("synchroniz" in str(w.message) for w in caught)


@probe("env")
def _():
    import graphbatch
    from graphbatch import backend
    out = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "capabilities": backend.capabilities(), "cupy_usable": backend.cupy_usable(warn=False),
           "graphbatch_file": graphbatch.__file__, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
        out["device_count"] = torch.cuda.device_count()
        out["allow_tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    try:
        import cupy as cp
        out["cupy"] = cp.__version__
        out["cupy_runtime"] = cp.cuda.runtime.runtimeGetVersion()
        out["cupy_driver"] = cp.cuda.runtime.driverGetVersion()
    except Exception as e:  # noqa: BLE001
        out["cupy_error"] = f"{type(e).__name__}: {e}"
    code = "import sys, graphbatch; print(sorted({'cupy','cupyx','numba','pynndescent'} & set(sys.modules)))"
    out["import_graphbatch_pulls"] = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                                    text=True).stdout.strip()
    return out


@probe("cupy_sanity")
def _():
    import cupy as cp
    import cupyx.scipy.sparse as cpsp
    a = cpsp.csr_matrix((cp.ones(3), cp.array([1, 2, 0], dtype=cp.int32), cp.array([0, 1, 2, 3], dtype=cp.int32)),
                        shape=(3, 3))
    y = a @ cp.arange(6, dtype=cp.float64).reshape(3, 2)
    t = torch.from_dlpack(y)
    return {"spmm": y.get().tolist(), "y_f_contiguous": bool(y.flags.f_contiguous), "torch_strides": t.stride(),
            "from_torch_ok": bool(cp.from_dlpack(torch.arange(3, device=DEV)).sum() == 3)}


@probe("rwr_backends")
def _():
    from graphbatch.solvers import rwr
    from graphbatch.solvers.power import DEFAULT_TOL, _resolve_backend
    n = 2000 if SMALL else 20000
    g = knn_like(n, 20)
    gd = g.to(DEV)
    seeds = torch.randperm(n, generator=torch.Generator().manual_seed(1))[:64]
    ref = rwr(g, seeds, 0.2, backend="scipy", tol=1e-12)
    out = {"default_tol": {str(k): v for k, v in DEFAULT_TOL.items()}}
    for name in ("torch", "cupy"):
        try:
            for dtype in (torch.float64, torch.float32):  # float32 at its default tol (item 3)
                sync(); t = time.perf_counter()
                r, info = rwr(gd, seeds.to(DEV), 0.2, backend=name, dtype=dtype,
                              tol=1e-12 if dtype == torch.float64 else None, return_info=True, max_iter=1000)
                sync()
                out[f"{name}_{str(dtype)[6:]}"] = {
                    "l1_vs_scipy": float((r.double().cpu() - ref).abs().sum(1).max()), "iters": info.iterations,
                    "converged": info.converged, "residual": info.residual,
                    "bound": info.residual * 0.8 / 0.2, "s": round(time.perf_counter() - t, 3),
                    "device": str(r.device), "dtype": str(r.dtype)}
        except Exception as e:  # noqa: BLE001
            out[name] = f"{type(e).__name__}: {e}"
    out["auto_backend_for_cuda_graph"] = _resolve_backend("auto", gd)
    return out


@probe("rwr_cupy_on_side_stream")
def _():
    from graphbatch.solvers import rwr
    g = knn_like(5000, 10).to(DEV)
    seeds = torch.arange(0, 5000, 100, device=DEV)
    a = rwr(g, seeds, 0.2, backend="cupy", tol=1e-10)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        b = rwr(g, seeds, 0.2, backend="cupy", tol=1e-10)
        c = b * 1.0  # consumer work on the side stream
    torch.cuda.synchronize()
    return {"max_abs_diff": float((a - c).abs().max())}


@probe("cupy_memory_pool")
def _():
    import cupy as cp
    from graphbatch.solvers import rwr
    n, s = (20000, 64) if SMALL else (200000, 256)
    g = knn_like(n, 20).to(DEV)
    pool = cp.get_default_memory_pool()
    torch.cuda.synchronize()
    before = {"cupy_used": pool.used_bytes(), "cupy_total": pool.total_bytes(),
              "torch_alloc": torch.cuda.memory_allocated(), "torch_reserved": torch.cuda.memory_reserved()}
    r = rwr(g, torch.arange(s, device=DEV), 0.2, backend="cupy", max_iter=30)
    torch.cuda.synchronize()
    during = {"cupy_used": pool.used_bytes(), "cupy_total": pool.total_bytes(),
              "torch_alloc": torch.cuda.memory_allocated(), "torch_peak": torch.cuda.max_memory_allocated()}
    del r
    torch.cuda.synchronize()
    after = {"cupy_used": pool.used_bytes(), "cupy_total": pool.total_bytes(),
             "torch_alloc": torch.cuda.memory_allocated(), "torch_reserved": torch.cuda.memory_reserved()}
    reuse = torch.empty(n * s * 8, dtype=torch.uint8, device=DEV)  # torch reuses the freed blocks: reserved flat
    del reuse
    return {"block_bytes": n * s * 8, "before": before, "result_alive": during, "after_del": after,
            "reserved_after_reuse": torch.cuda.memory_reserved(),
            "pool_grew_bytes": after["cupy_total"] - before["cupy_total"],
            "torch_alloc_returned": after["torch_alloc"] - before["torch_alloc"]}


@probe("cupy_second_gpu")
def _():
    if torch.cuda.device_count() < 2:
        return {"skipped": "one GPU"}
    from graphbatch.solvers import rwr
    g = knn_like(20000, 10).to("cuda:1")
    torch.cuda.synchronize(0)
    before0 = torch.cuda.memory_allocated(0)
    r = rwr(g, [0, 1, 2], 0.2, backend="cupy")
    torch.cuda.synchronize(1)
    return {"result_device": str(r.device), "device0_alloc_change": torch.cuda.memory_allocated(0) - before0,
            "l1_vs_cpu": float((r.cpu() - rwr(g.to("cpu"), [0, 1, 2], 0.2)).abs().sum(1).max())}


@probe("rwr_truncated_engines")
def _():
    from test_solvers import random_digraph
    from graphbatch.solvers import rwr, rwr_truncated
    rng = np.random.default_rng(0)
    out = {"cuda_vs_cpu_numba_l1_minus_err_sum": -1.0, "cuda_vs_cpu_torch_l1_minus_err_sum": -1.0,
           "cuda_vs_cpu_numba_max_abs": 0.0, "cuda_repeat_bit_diffs": 0}
    for trial in range(5):
        g = random_digraph(rng, 300, avg_deg=5, zero_weight_rows=3)
        seeds = rng.integers(0, 300, 8).tolist()
        (tc, ic), (tc2, _) = [rwr_truncated(g.to(DEV), seeds, 0.2, eps=1e-5, return_info=True) for _ in range(2)]
        tn, i_n = rwr_truncated(g, seeds, 0.2, eps=1e-5, return_info=True)
        tt, i_t = rwr_truncated(g, seeds, 0.2, eps=1e-5, engine="torch", return_info=True)
        tc, tc2, tn, tt = (x.to_dense().cpu() for x in (tc, tc2, tn, tt))
        ec, en, et = ic.error.cpu(), i_n.error.cpu(), i_t.error.cpu()
        # the engines may differ by up to their errors (push order), never by more: these must stay <= 0
        out["cuda_vs_cpu_numba_l1_minus_err_sum"] = max(out["cuda_vs_cpu_numba_l1_minus_err_sum"],
                                                       float(((tc - tn).abs().sum(1) - ec - en).max()))
        out["cuda_vs_cpu_torch_l1_minus_err_sum"] = max(out["cuda_vs_cpu_torch_l1_minus_err_sum"],
                                                       float(((tc - tt).abs().sum(1) - ec - et).max()))
        out["cuda_vs_cpu_numba_max_abs"] = max(out["cuda_vs_cpu_numba_max_abs"], float((tc - tn).abs().max()))
        out["cuda_repeat_bit_diffs"] += int((tc != tc2).sum())
        exact = rwr(g, seeds, 0.2, tol=1e-13)
        out.setdefault("cuda_error_exact", []).append(float(((exact - tc).sum(1) - ec).abs().max()))
    # a larger graph: does the CUDA push differ bitwise between runs (float atomics in index_add_)?
    g = knn_like(3000 if SMALL else 50000, 20)
    gd = g.to(DEV)
    seeds = torch.arange(0, g.num_nodes, g.num_nodes // 128)
    a = rwr_truncated(gd, seeds, 0.2, eps=1e-4, weighted=False)
    b = rwr_truncated(gd, seeds, 0.2, eps=1e-4, weighted=False)
    same_struct = torch.equal(a.crow_indices(), b.crow_indices()) and torch.equal(a.col_indices(), b.col_indices())
    out["big_same_support"] = bool(same_struct)
    out["big_value_bit_diffs"] = int((a.values() != b.values()).sum()) if same_struct else None
    return out


@probe("host_syncs")
def _():
    from graphbatch import build_proximity_graph
    from graphbatch.build import neighbor_table
    from graphbatch.solvers import push
    out = {}
    g = knn_like(20000, 10).to(DEV)
    seeds = torch.arange(0, 20000, 400, device=DEV)
    for weighted in (True, False):
        push._push_setup(g, weighted)
        (_, _, rounds, _), n = count_syncs(lambda: push._torch_push(g, seeds, 0.2, 1e-5, 10**6, weighted,
                                                                   seeds.numel(), False))
        out[f"push_weighted={weighted}"] = {"rounds": rounds, "syncs": n}  # expect syncs ~ rounds + 3
    ragged = knn_like(20000, 10)
    from graphbatch import ProximityGraph
    ragged = ProximityGraph.from_coo(ragged.row(), ragged.col, torch.rand(ragged.nnz) * (torch.rand(ragged.nnz) > 0.4),
                                     num_nodes=20000).to(DEV)
    push._push_setup(ragged, True)
    (_, _, rounds, _), n = count_syncs(lambda: push._torch_push(ragged, seeds, 0.2, 1e-5, 10**6, True,
                                                               seeds.numel(), False))
    out["push_ragged"] = {"rounds": rounds, "syncs": n, "grid": push._push_setup(ragged, True)[4] is not None}
    x = torch.randn(20000, 32, device=DEV)
    for chunk in (1 << 26, 1 << 20):  # same syncs whatever the number of score blocks
        _, n = count_syncs(lambda: neighbor_table(x, 10, method="exact", chunk_size=chunk))
        out[f"exact_chunk={chunk}"] = n
    for m in (200, 2000):
        _, n = count_syncs(lambda: build_proximity_graph(x, 10, candidates=m, seed=0))
        out[f"candidates_M={m}"] = n
    return out


@probe("ppr_plan_determinism")
def _():
    from helpers import mixture
    from graphbatch import RWRBatchSampler, build_proximity_graph
    rng = np.random.default_rng(1)
    n, b = (2000, 32) if SMALL else (20000, 128)
    emb, _ = mixture(rng, n, clusters=n // 200)
    g = build_proximity_graph(emb.to(DEV), 20, candidates=500, seed=0)
    plans = [np.concatenate([np.asarray(x) for x in RWRBatchSampler(n, b, k=20, candidates=500, graph=g, mode="ppr",
                                                                     seed=5)]) for _ in range(3)]
    walk_dev = np.concatenate([np.asarray(x) for x in RWRBatchSampler(n, b, k=20, candidates=500, graph=g, seed=5)])
    walk_cpu = np.concatenate([np.asarray(x) for x in RWRBatchSampler(n, b, k=20, candidates=500, graph=g.to("cpu"), seed=5)])
    g_cpu = build_proximity_graph(emb, 20, candidates=500, seed=0)
    return {"ppr_runs_identical": [bool(np.array_equal(plans[0], p)) for p in plans[1:]],
            "walk_plan_cuda_graph_equals_cpu_copy": bool(np.array_equal(walk_dev, walk_cpu)),
            "graph_cuda_build_equals_cpu_build": bool(g.to("cpu").equal(g_cpu, atol=1e-5)),
            "graph_cuda_vs_cpu_same_cols_frac": float((g.col.cpu() == g_cpu.col).float().mean())
            if g.nnz == g_cpu.nnz else None}


@probe("deterministic_mode")
def _():
    from graphbatch import build_proximity_graph
    from graphbatch.solvers import rwr, rwr_monte_carlo, rwr_truncated, sample_neighbors
    g = knn_like(2000, 10).to(DEV)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    out = {}
    torch.use_deterministic_algorithms(True)
    try:
        for name, fn in [("sample_neighbors_weighted", lambda: sample_neighbors(g, torch.arange(10, device=DEV), weighted=True, generator=gen())),
                         ("rwr_monte_carlo", lambda: rwr_monte_carlo(g, [0, 1], 0.2, num_walks=10, generator=gen())),
                         ("rwr_truncated", lambda: rwr_truncated(g, [0, 1], 0.2, engine="torch")),
                         ("rwr_torch", lambda: rwr(g, [0, 1], 0.2, backend="torch")),
                         ("rwr_cupy", lambda: rwr(g, [0, 1], 0.2, backend="cupy")),
                         ("build", lambda: build_proximity_graph(torch.randn(500, 8, device=DEV), 5, candidates=50, seed=0))]:
            try:
                r = fn(); out[name] = "ok"
                if name == "rwr_monte_carlo":  # same walks as the CPU copy with the same generator
                    out["mc_equals_cpu"] = bool(torch.equal(r.cpu(), rwr_monte_carlo(g.to("cpu"), [0, 1], 0.2, num_walks=10,
                                                                                     generator=gen())))
            except Exception as e:  # noqa: BLE001
                out[name] = f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        torch.use_deterministic_algorithms(False)
    return out
EOF
step "probes" 110 $PY "$PROBE"

# ---------------------------------------------------------------- 4. GPU benchmarks
step "bench_rwr" 80 $PY benchmarks/bench_rwr.py --device $DEV --sizes $RWR_SIZES --seeds $RWR_SEEDS --k 20 \
     --backends $RWR_BACKENDS --variants dense,truncated,montecarlo --engines torch --iters 3 --walks 1000 \
     --max-block-gb 4 --json "$OUT/bench_rwr.json"
step "bench_build" 60 $PY benchmarks/bench_build.py --sizes $BUILD_SIZES --methods candidates exact \
     --repeat 2 --exact-max-n 20000 --recall-rows 500 $BUILD_FLAGS --json "$OUT/bench_build.json"
# walk and ppr as two steps: one failing does not lose the other's rows
step "bench_sampler walk" 50 $PY benchmarks/bench_sampler.py --device $DEV --sizes $SAMP_SIZES --batch 256 --k $SAMP_K \
     --modes walk --repeats 3 --warmup-epochs 1 --reference-max 0 --json "$OUT/bench_sampler_walk.json"
step "bench_sampler ppr" 45 $PY benchmarks/bench_sampler.py --device $DEV --sizes $SAMP_SIZES --batch 256 --k $SAMP_K \
     --modes ppr --ppr-repeats 1 --reference-max 0 --json "$OUT/bench_sampler_ppr.json"
echo "{\"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo '?')\", \"dry_run\": ${DRY_RUN:-0}, \"seconds\": $(( $(date +%s) - T0 )), \"steps\": [${STEPS%,}]}" > "$OUT/summary.json"
say "done; files in $OUT:"; ls -la "$OUT"; sleep 1
