"""The command line: demo end-to-end in a subprocess, analyze on generated data, bad inputs."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphbatch import cli
from graphbatch.evaluation import report as report_mod

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _env():
    env = dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="Agg")
    return env


def _leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def _brute_mean_cos(emb, batch):
    vals = []
    for p in range(len(batch)):
        for q in range(p + 1, len(batch)):
            a, b = emb[batch[p]], emb[batch[q]]
            vals.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return float(np.mean(vals))


def _brute_fn(labels, batch):
    same = [labels[batch[p]] == labels[batch[q]] for p in range(len(batch)) for q in range(p + 1, len(batch))]
    return float(np.mean(same))


def _pair_mean(values, batches):
    """The epoch mean the report gives: batches weighted by their number of pairs (every in-batch pair once)."""
    w = np.array([len(b) * (len(b) - 1) / 2 for b in batches])
    return float(np.sum(np.asarray(values) * w) / w.sum())


def _clustered(rng, n=240, d=8, classes=6):
    centres = rng.normal(size=(classes, d)) * 3
    y = rng.integers(0, classes, size=n)
    emb = centres[y] + rng.normal(size=(n, d))
    return emb.astype(np.float32), y


# ----------------------------------------------------------------------------- demo (subprocess)
@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "graphbatch", "demo", "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(out) in proc.stdout
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["samplers"]]
    for expected in ("random", "knn", "cluster", "bandwidth"):
        assert expected in names
    assert any(n.startswith("rwr-walk") for n in names) and any(n.startswith("rwr-ppr") for n in names)
    for s in report["samplers"]:
        for key in ("mean_cosine", "excess_hardness", "z_score", "false_negative_rate", "infonce", "coverage"):
            assert s[key] is not None and math.isfinite(s[key]), (s["name"], key)
        assert isinstance(s["settings"], dict)
        assert s["coverage"] == pytest.approx(1.0) and s["duplicates"] == 0  # exact epochs
    rwr = [s for s in report["samplers"] if s["name"].startswith("rwr-walk")]
    assert {"candidates", "restart_prob", "k"} <= set(rwr[0]["settings"])
    # the report's global mean equals the brute-force mean over all pairs of the documented embedding
    emb, y, _ = report_mod.digits_embeddings(32)
    e = emb.astype(np.float64) / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    full = e @ e.T
    n = len(e)
    assert report["global_mean_cosine"] == pytest.approx((full.sum() - np.trace(full)) / (n * (n - 1)), abs=1e-6)
    # per-sampler numbers agree with a brute-force recomputation from the written batches
    batches = json.loads((out / "batches.json").read_text())
    for s in report["samplers"][:2]:
        bl = batches[s["name"]]
        assert sorted(i for b in bl for i in b) == list(range(n))
        fn = _pair_mean([_brute_fn(y, b) for b in bl], bl)
        assert s["false_negative_rate"] == pytest.approx(fn, abs=1e-9)
        mc = np.mean([_brute_mean_cos(emb.astype(np.float64), b) for b in bl[:3]])
        rows = [r for r in csv.DictReader(open(out / "per_batch.csv")) if r["sampler"] == s["name"]]
        assert np.mean([float(r["mean_cosine"]) for r in rows[:3]]) == pytest.approx(mc, abs=1e-6)
    for f in report["files"]:
        assert (out / f).is_file(), f
    pngs = [f for f in report["files"] if f.endswith(".png")]
    assert len(pngs) == 3
    for f in pngs:
        assert (out / f).read_bytes()[:8] == PNG_MAGIC
    assert report["environment"]["numpy"] == np.__version__
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- analyze (in process)
_SMALL = ["--batch-size", "32", "--k", "5", "--candidates", "40,all", "--restart-probs", "0.3",
          "--ppr-restart-probs", "", "--quiet"]


def test_analyze_own_embeddings(tmp_path, rng, capsys):
    emb, y = _clustered(rng)
    np.save(tmp_path / "E.npy", emb)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "res"
    rc = cli.main(["analyze", "--embeddings", str(tmp_path / "E.npy"), "--labels", str(tmp_path / "y.npy"),
                   "--out", str(out), *_SMALL])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "rwr-walk M=40 p=0.3" in captured.out and str(out) in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["num_instances"] == 240 and report["batch_size"] == 32
    assert report["command"][0] == "analyze" and report["seed"] == 0 and report["device"] == "cpu"
    names = [s["name"] for s in report["samplers"]]
    assert names[:6] == ["random", "knn", "cluster", "bandwidth", "rwr-walk M=40 p=0.3", "rwr-walk M=all p=0.3"]
    assert names[6:9] == ["rwr-walk rounds M=all p=0.3", "knn rounds k=4B", "knn capped rounds"]  # the controls
    batches = json.loads((out / "batches.json").read_text())
    for s in report["samplers"]:
        assert len(s["hardness_by_quarter"]) == 4
        bl = batches[s["name"]]
        assert len(bl) == s["num_batches"] == math.ceil(240 / 32)
        assert s["false_negative_rate"] == pytest.approx(_pair_mean([_brute_fn(y, b) for b in bl], bl), abs=1e-9)
        assert s["mean_cosine"] == pytest.approx(_pair_mean([_brute_mean_cos(emb.astype(np.float64), b)
                                                             for b in bl], bl), abs=1e-6)
    # rerunning into the same (graphbatch-made) folder replaces it
    rc = cli.main(["analyze", "--embeddings", str(tmp_path / "E.npy"), "--out", str(out), "--no-plots", *_SMALL])
    assert rc == 0
    report2 = json.loads((out / "report.json").read_text())
    assert "false_negative_rate" not in report2["samplers"][0]
    assert not any(f.endswith(".png") for f in report2["files"])
    assert not list(out.glob("*.png"))
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- bad inputs
def _run_bad(tmp_path, capsys, args, match):
    out = tmp_path / "out"
    rc = cli.main(["analyze", "--out", str(out), *args, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("graphbatch: error:") and "Traceback" not in err
    assert match in err, err
    assert not out.exists()
    assert _leftovers(tmp_path) == []
    return err


def test_bad_inputs_give_clear_errors(tmp_path, rng, capsys):
    emb, y = _clustered(rng, n=50)
    np.save(tmp_path / "E.npy", emb)
    np.save(tmp_path / "y_short.npy", y[:-1])
    nan = emb.copy()
    nan[7, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "flat.npy", emb[:, 0])
    E = str(tmp_path / "E.npy")
    _run_bad(tmp_path, capsys, ["--embeddings", E, "--labels", str(tmp_path / "y_short.npy")], "labels has 49")
    _run_bad(tmp_path, capsys, ["--embeddings", str(tmp_path / "nan.npy"), "--batch-size", "16"], "NaN")
    _run_bad(tmp_path, capsys, ["--embeddings", E, "--batch-size", "51"], "--batch-size 51")
    _run_bad(tmp_path, capsys, ["--embeddings", str(tmp_path / "flat.npy"), "--batch-size", "16"], "2-D")
    _run_bad(tmp_path, capsys, ["--embeddings", str(tmp_path / "missing.npy")], "not found")
    _run_bad(tmp_path, capsys, ["--embeddings", E, "--batch-size", "16", "--temperature", "0"], "--temperature")
    _run_bad(tmp_path, capsys, ["--embeddings", E, "--batch-size", "16", "--device", "toaster"], "--device")
    _run_bad(tmp_path, capsys, ["--embeddings", E, "--batch-size", "16", "--device", "cuda:99"], "--device")
    # unwritable output folder: its parent is a regular file (works even as root)
    (tmp_path / "afile").write_text("x")
    rc = cli.main(["analyze", "--embeddings", E, "--out", str(tmp_path / "afile" / "out"), "--batch-size", "16",
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot write the output folder" in err and "Traceback" not in err
    rc = cli.main(["analyze", "--embeddings", E, "--out", str(tmp_path / "afile"), "--batch-size", "16", "--quiet"])
    assert rc == 1 and "is not a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "x"
    # a non-empty folder that graphbatch did not make is not replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    rc = cli.main(["analyze", "--embeddings", E, "--out", str(other), "--batch-size", "16", "--quiet"])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert (other / "precious.txt").read_text() == "keep"
    # argparse usage errors exit 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["analyze", "--embeddings", E, "--out", str(tmp_path / "o"), "--restart-probs", "1.5"])
    assert exc.value.code == 2


def test_failure_mid_run_leaves_previous_output_intact(tmp_path, rng, capsys, monkeypatch):
    emb, y = _clustered(rng, n=60)
    np.save(tmp_path / "E.npy", emb)
    out = tmp_path / "out"
    args = ["analyze", "--embeddings", str(tmp_path / "E.npy"), "--out", str(out), "--batch-size", "16", "--quiet",
            "--no-plots", "--candidates", "30", "--restart-probs", "0.3", "--ppr-restart-probs", ""]
    assert cli.main(args) == 0  # an earlier, complete output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    def boom(*args, **kwargs):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(report_mod, "compare_samplers", boom)
    rc = cli.main(args)
    err = capsys.readouterr().err
    assert rc == 1 and "sampler exploded" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


def test_output_folder_never_deletes_files_it_did_not_write(tmp_path, rng, capsys):
    """A folder holding a report.json (but not written by graphbatch) used to be replaced wholesale."""
    emb, _ = _clustered(rng, n=60)
    np.save(tmp_path / "E.npy", emb)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.json").write_text('{"my": "own report"}')
    (out / "notes.txt").write_text("keep me")
    args = ["analyze", "--embeddings", str(tmp_path / "E.npy"), "--out", str(out), "--batch-size", "16", "--quiet",
            "--no-plots", "--candidates", "30", "--restart-probs", "0.3", "--ppr-restart-probs", ""]
    assert cli.main(args) == 1 and "--overwrite" in capsys.readouterr().err
    assert (out / "report.json").read_text() == '{"my": "own report"}'
    assert cli.main(args + ["--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"  # other files are kept
    assert json.loads((out / "report.json").read_text())["tool"] == "graphbatch"
    assert cli.main(args) == 1  # notes.txt is still not ours: refused again without --overwrite
    (out / "notes.txt").unlink()
    assert cli.main(args) == 0  # now it holds exactly what graphbatch wrote: replaced
    assert _leftovers(tmp_path) == []


def test_sigterm_leaves_no_partial_folder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    x = np.random.default_rng(0).normal(size=(20000, 32)).astype(np.float32)
    np.save(tmp_path / "E.npy", x)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "graphbatch", "analyze", "--embeddings", str(tmp_path / "E.npy"),
                             "--out", str(out), "--quiet", "--batch-size", "64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".out.partial-*")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.partial-*")), "the run did not start writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated" in err
    assert _leftovers(tmp_path) == [] and not out.exists()


def test_cli_process_error_has_no_traceback(tmp_path, rng):
    emb, y = _clustered(rng, n=30)
    np.save(tmp_path / "E.npy", emb)
    np.save(tmp_path / "y.npy", y[:10])
    proc = subprocess.run([sys.executable, "-m", "graphbatch", "analyze", "--embeddings", str(tmp_path / "E.npy"),
                           "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 1
    assert "labels has 10 entries but embeddings has 30 rows" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_help_and_parser():
    parser = cli.build_parser()
    args = parser.parse_args(["demo", "--candidates", "20,all", "--restart-probs", "0.1,0.5"])
    assert args.candidates == [20, None] and args.restart_probs == [0.1, 0.5]
    assert parser.parse_args(["demo", "--ppr-restart-probs", ""]).ppr_restart_probs == []
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["demo", "--help"])
    assert exc.value.code == 0
    assert cli.main([]) == 2


# ----------------------------------------------------------------------------- plots
def test_tradeoff_plot_draws_the_table(rng):
    from graphbatch.evaluation import Table
    from graphbatch.evaluation.plots import plot_hardness_distribution, plot_tradeoff

    rows = [("random", "random", {}, 0.0, 0.1)]
    for p in (0.2, 0.5):
        for m in (200, 50, 1000):  # deliberately unsorted: lines must follow increasing M
            rows.append((f"rwr-walk M={m} p={p}", "rwr-walk", {"candidates": m, "restart_prob": p},
                         float(rng.uniform()), float(rng.uniform())))
    table = Table({"name": [r[0] for r in rows], "family": [r[1] for r in rows], "settings": [r[2] for r in rows],
                   "excess_hardness": [r[3] for r in rows], "false_negative_rate": [r[4] for r in rows]})
    fig = plot_tradeoff(table)
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    for p in (0.2, 0.5):
        mine = sorted((r for r in rows if r[2].get("restart_prob") == p), key=lambda r: r[2]["candidates"])
        np.testing.assert_allclose(lines[f"rwr-walk p={p:g}"].get_xdata(), [r[3] for r in mine])
        np.testing.assert_allclose(lines[f"rwr-walk p={p:g}"].get_ydata(), [r[4] for r in mine])
    np.testing.assert_allclose(lines["random"].get_xdata(), [0.0])
    with pytest.raises(ValueError, match="y"):
        plot_tradeoff(Table({"name": ["a"], "excess_hardness": [0.1]}))
    with pytest.raises(TypeError, match="details"):
        plot_hardness_distribution({})


@pytest.mark.gpu
def test_analyze_on_cuda(tmp_path, rng, capsys):
    emb, y = _clustered(rng)
    np.save(tmp_path / "E.npy", emb)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "res"
    rc = cli.main(["analyze", "--embeddings", str(tmp_path / "E.npy"), "--labels", str(tmp_path / "y.npy"),
                   "--out", str(out), "--device", "cuda", "--no-plots", *_SMALL])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["device"].startswith("cuda")
    batches = json.loads((out / "batches.json").read_text())
    for s in report["samplers"]:
        bl = batches[s["name"]]
        assert sorted(i for b in bl for i in b) == list(range(240))
        assert s["false_negative_rate"] == pytest.approx(np.mean([_brute_fn(y, b) for b in bl]), abs=1e-9)


def _analyze(tmp_path, emb_arg, labels_arg=None, extra=()):
    out = tmp_path / f"out{abs(hash(emb_arg)) % 10**6}"
    args = ["analyze", "--embeddings", emb_arg, "--out", str(out), "--batch-size", "16", "--quiet", "--no-plots",
            "--candidates", "30", "--restart-probs", "0.3", "--ppr-restart-probs", "", *extra]
    if labels_arg:
        args += ["--labels", labels_arg]
    rc = cli.main(args)
    return rc, out


def test_analyze_reads_npz_csv_tsv_txt_and_fingerprints(tmp_path, rng, capsys):
    emb, y = _clustered(rng, n=64)
    ref = None
    np.savez(tmp_path / "one.npz", emb=emb)
    np.savez(tmp_path / "two.npz", emb=emb, other=emb[:3])
    np.savetxt(tmp_path / "e.csv", emb, delimiter=",", header="a,b,c,d,e,f,g,h"[: 2 * emb.shape[1] - 1],
               comments="")
    np.savetxt(tmp_path / "e.tsv", emb, delimiter="\t")
    np.savetxt(tmp_path / "e.txt", emb)
    (tmp_path / "y.csv").write_text("label\n" + "\n".join(f"class-{v}" for v in y) + "\n")
    for arg in (str(tmp_path / "one.npz"), str(tmp_path / "two.npz") + ":emb", str(tmp_path / "e.csv"),
                str(tmp_path / "e.tsv"), str(tmp_path / "e.txt")):
        rc, out = _analyze(tmp_path, arg, str(tmp_path / "y.csv"))
        assert rc == 0, capsys.readouterr().err
        rows = {r["name"]: r for r in json.loads((out / "report.json").read_text())["samplers"]}
        if ref is None:
            ref = rows
        assert rows["random"]["false_negative_rate"] == pytest.approx(ref["random"]["false_negative_rate"])
        assert rows["knn"]["excess_hardness"] == pytest.approx(ref["knn"]["excess_hardness"], abs=1e-5)
    rc, _ = _analyze(tmp_path, str(tmp_path / "two.npz"))
    assert rc == 1 and "two.npz:NAME" in capsys.readouterr().err
    fp = rng.random((64, 40)) < 0.3
    np.save(tmp_path / "fp.npy", fp)
    rc, _ = _analyze(tmp_path, str(tmp_path / "fp.npy"))
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize("content, match", [(b"", "is empty"), (b"\x93NUMPY garbage", "cannot read")])
def test_unreadable_npy_is_one_line_not_a_traceback(tmp_path, content, match):
    import subprocess
    import sys

    (tmp_path / "bad.npy").write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "graphbatch", "analyze", "--embeddings", str(tmp_path / "bad.npy"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 1 and match in proc.stderr and "Traceback" not in proc.stderr


def test_small_candidates_do_not_blame_a_k_the_user_never_set(tmp_path, rng, capsys):
    """--candidates 20 with batch 64 used to fail with 'candidates must be >= k=63' (the kNN baseline's k)."""
    emb, y = _clustered(rng, n=200)
    np.save(tmp_path / "E.npy", emb)
    rc = cli.main(["analyze", "--embeddings", str(tmp_path / "E.npy"), "--out", str(tmp_path / "o"), "--quiet",
                   "--no-plots", "--batch-size", "64", "--k", "10", "--candidates", "20", "--ppr-restart-probs", ""])
    assert rc == 0, capsys.readouterr().err


def test_samplers_drop_last_metric_and_timings(tmp_path, rng, capsys):
    """--samplers picks the grid, --drop-last fills every batch, --metric reaches the graphs, times per step."""
    emb, y = _clustered(rng, n=70)  # 70 = 4 x 16 + 6
    np.save(tmp_path / "E.npy", emb)
    rc, out = _analyze(tmp_path, str(tmp_path / "E.npy"), None,
                       ["--samplers", "random,knn,rwr", "--drop-last", "--metric", "euclidean"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    fams = [r["family"] for r in rep["samplers"]]
    assert fams == ["random", "knn", "rwr-walk"]  # ppr has no restart probabilities here
    batches = json.loads((out / "batches.json").read_text())
    assert all(len(b) == 16 for bs in batches.values() for b in bs) and all(len(bs) == 4 for bs in batches.values())
    assert all(r["settings"].get("metric") == "euclidean" for r in rep["samplers"] if r["family"] != "random")
    t = rep["timings"]
    assert {"load", "warm-up", "samplers", "graph builds", "planning", "metrics", "plots and files"} <= set(t)
    assert t["total"] == pytest.approx(t["load"] + t["warm-up"] + t["samplers"] + t["plots and files"])
    assert t["samplers"] == pytest.approx(t["graph builds"] + t["planning"] + t["metrics"])
    assert "time: load" in capsys.readouterr().out
    rc, _ = _analyze(tmp_path, str(tmp_path / "E.npy"), None, ["--samplers", "knn,nonsense"])
    assert rc == 1 and "unknown sampler 'nonsense'" in capsys.readouterr().err


def test_tanimoto_fingerprint_graph_is_the_jaccard_knn(tmp_path, rng, capsys):
    n = 60
    fp = rng.random((n, 48)) < 0.25
    fp[fp.sum(1) == 0, 0] = True  # the metrics need non-zero rows
    np.save(tmp_path / "fp.npy", fp)
    rc, out = _analyze(tmp_path, str(tmp_path / "fp.npy"), None, ["--samplers", "knn", "--metric", "tanimoto"])
    assert rc == 0, capsys.readouterr().err
    first = json.loads((out / "batches.json").read_text())["knn"][0]
    f = fp.astype(np.int64)
    inter = f @ f.T
    jac = inter / (f.sum(1)[:, None] + f.sum(1)[None, :] - inter)
    np.fill_diagonal(jac, -1)
    seed = first[0]  # the kNN batch: a seed and its 15 most Jaccard-similar instances
    kth = np.sort(jac[seed])[::-1][14]
    assert all(jac[seed, j] >= kth - 1e-6 for j in first[1:])


@pytest.mark.parametrize("flag, bar", [((), False), (("--progress",), True)])
def test_progress_bar_only_for_a_terminal_unless_asked(tmp_path, rng, flag, bar):
    emb, _ = _clustered(rng, n=40)
    np.save(tmp_path / "E.npy", emb)
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("TQDM_DISABLE", None)
    proc = subprocess.run([sys.executable, "-m", "graphbatch", "analyze", "--embeddings", str(tmp_path / "E.npy"),
                           "--out", str(tmp_path / "o"), "--no-plots", "--samplers", "random", "--batch-size", "8",
                           *flag], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ("samplers:" in proc.stderr) == bar  # stderr is a pipe here, not a terminal


def test_help_and_errors_import_no_heavy_modules():
    """--help and an input error stay fast: no numba, scipy, scikit-learn, matplotlib or PyG imported."""
    code = ("import sys\nfrom graphbatch.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numba', 'scipy', 'sklearn', 'matplotlib', 'torch_geometric', 'pynndescent')"
            " if m in sys.modules), file=sys.stderr)")
    for args in (["--help"], ["analyze", "--embeddings", "missing.npy", "--out", "o"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
