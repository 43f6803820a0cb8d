"""graphbatch.evaluation against brute force: every pair enumerated with explicit loops."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from graphbatch.evaluation import (
    Table,
    batch_hardness,
    epoch_summary,
    global_mean_cosine,
    random_batch_reference,
)


# ----------------------------------------------------------------------------- brute force
def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _brute_global_mean(emb):
    n = len(emb)
    total, count = 0.0, 0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += _cos(emb[i], emb[j])
                count += 1
    return total / count


def _brute_mean_cos_of(emb, batch):
    vals = [_cos(emb[batch[p]], emb[batch[q]]) for p in range(len(batch)) for q in range(p + 1, len(batch))]
    return float(np.mean(vals)), float(np.max(vals))


def _brute_batch(emb, batch, labels, tau):
    b = len(batch)
    mean_cos, max_cos = _brute_mean_cos_of(emb, batch) if b > 1 else (math.nan, math.nan)
    same, pairs = 0, 0
    for p in range(b):
        for q in range(p + 1, b):
            pairs += 1
            same += int(labels[batch[p]] == labels[batch[q]])
    fn = same / pairs if pairs else math.nan
    counts = {}
    for i in batch:
        counts[labels[i]] = counts.get(labels[i], 0) + 1
    entropy = -sum((c / b) * math.log(c / b) for c in counts.values())
    loss = 0.0
    for p in range(b):
        logits = [_cos(emb[batch[p]], emb[batch[q]]) / tau for q in range(b)]
        m = max(logits)
        lse = m + math.log(sum(math.exp(v - m) for v in logits))
        loss += lse - logits[p]
    return {"mean_cosine": mean_cos, "max_cosine": max_cos, "false_negative_rate": fn,
            "label_entropy": entropy, "infonce": loss / b}


def _random_batches(rng, n, sizes):
    return [rng.choice(n, size=s, replace=False).tolist() for s in sizes]


# ----------------------------------------------------------------------------- tests
def test_global_mean_matches_all_pairs(rng):
    emb = rng.normal(size=(int(rng.integers(2, 40)), int(rng.integers(1, 6)))) + rng.normal(size=1)
    assert global_mean_cosine(emb) == pytest.approx(_brute_global_mean(emb), abs=1e-12)
    assert global_mean_cosine(torch.from_numpy(emb).float()) == pytest.approx(_brute_global_mean(emb), abs=1e-5)


@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_batch_metrics_match_brute_force(rng, tau):
    n, d = 60, int(rng.integers(2, 8))
    emb = rng.normal(size=(n, d)) + 0.5 * rng.normal(size=d)  # a shared offset: non-zero global mean
    labels = rng.integers(0, 4, size=n)
    sizes = [int(s) for s in rng.integers(1, 12, size=8)]
    batches = _random_batches(rng, n, sizes)
    batches.append([3, 3, 7, 9])  # an index repeated inside a batch counts as a pair with itself
    table = batch_hardness(emb, batches, labels=labels, temperature=tau)
    mu = _brute_global_mean(emb)
    assert len(table) == len(batches)
    for i, batch in enumerate(batches):
        ref = _brute_batch(emb, batch, labels, tau)
        row = table[i]
        assert row["size"] == len(batch)
        assert row["position"] == pytest.approx(i / len(batches))
        for key, val in ref.items():
            if math.isnan(val):
                assert math.isnan(row[key]), key
            else:
                assert row[key] == pytest.approx(val, abs=1e-9), key
        if len(batch) > 1:
            assert row["excess_hardness"] == pytest.approx(ref["mean_cosine"] - mu, abs=1e-9)
    assert table[len(batches) - 1]["in_batch_duplicates"] == 1
    assert table[len(batches) - 1]["max_cosine"] == pytest.approx(1.0)


def test_infonce_bounds_and_labels_optional(rng):
    emb = rng.normal(size=(30, 5))
    batches = _random_batches(rng, 30, [6, 6, 6])
    t = batch_hardness(emb, batches)
    assert "false_negative_rate" not in t and "label_entropy" not in t
    assert np.all(t["infonce"] >= 0) and np.all(t["infonce"] <= math.log(6) + 1e-12)
    # string labels work like integer labels
    lab = rng.integers(0, 3, size=30)
    t_int = batch_hardness(emb, batches, labels=lab)
    t_str = batch_hardness(emb, batches, labels=np.array([f"c{v}" for v in lab]))
    np.testing.assert_allclose(t_int["false_negative_rate"], t_str["false_negative_rate"])


def test_analytic_reference_equals_enumeration_of_all_subsets(rng):
    n, b = int(rng.integers(6, 10)), int(rng.integers(2, 5))
    emb = rng.normal(size=(n, 3)) + rng.normal(size=3)
    means = []
    for subset in itertools.combinations(range(n), b):
        means.append(_brute_mean_cos_of(emb, list(subset))[0])
    mean, sd = random_batch_reference(emb, b)
    assert mean == pytest.approx(np.mean(means), abs=1e-12)
    assert sd == pytest.approx(np.std(means), abs=1e-12)
    # z-score uses that sd
    batch = list(range(b))
    t = batch_hardness(emb, [batch])
    assert t["z_score"][0] == pytest.approx((means[0] - np.mean(means)) / np.std(means), rel=1e-9)


def test_sampled_reference_close_to_analytic(rng):
    emb = rng.normal(size=(200, 4)) + 0.3
    _, sd = random_batch_reference(emb, 16)
    _, sd_s = random_batch_reference(emb, 16, method="sampled", num_random=4000, seed=int(rng.integers(1 << 30)))
    assert sd_s == pytest.approx(sd, rel=0.08)
    batches = _random_batches(rng, 200, [16, 16])
    ta = batch_hardness(emb, batches)
    ts = batch_hardness(emb, batches, reference="sampled", num_random=4000)
    np.testing.assert_allclose(ts["z_score"], ta["z_score"], rtol=0.1)


def test_row_chunking_and_float32_input(rng, monkeypatch):
    import graphbatch.evaluation.hardness as metrics

    emb = rng.normal(size=(50, 4)) + 0.3
    batches = _random_batches(rng, 50, [7, 7, 7])
    ref = batch_hardness(emb, batches)
    ref_sd = random_batch_reference(emb, 7)
    monkeypatch.setattr(metrics, "_ROW_CHUNK_ELEMS", 12)  # 3 rows per chunk: many chunks
    chunked = batch_hardness(emb, batches)
    for col in ("mean_cosine", "z_score", "infonce"):
        np.testing.assert_allclose(chunked[col], ref[col], rtol=1e-10)
    assert random_batch_reference(emb, 7) == pytest.approx(ref_sd, rel=1e-10)
    assert global_mean_cosine(emb) == pytest.approx(_brute_global_mean(emb), abs=1e-12)
    single = batch_hardness(emb.astype(np.float32), batches)  # float32 in, float64 maths on its values
    np.testing.assert_allclose(single["mean_cosine"], ref["mean_cosine"], atol=1e-6)


def test_full_batch_has_zero_spread(rng):
    emb = rng.normal(size=(7, 3))
    t = batch_hardness(emb, [list(range(7))])
    assert t["excess_hardness"][0] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(t["z_score"][0])


def test_chunking_does_not_change_results(rng):
    emb = rng.normal(size=(80, 6))
    batches = _random_batches(rng, 80, [10] * 8)
    labels = rng.integers(0, 5, size=80)
    a = batch_hardness(emb, batches, labels=labels)
    b = batch_hardness(emb, batches, labels=labels, max_chunk_bytes=1)
    np.testing.assert_allclose(a["mean_cosine"], b["mean_cosine"], rtol=1e-12)
    np.testing.assert_allclose(a["infonce"], b["infonce"], rtol=1e-12)
    np.testing.assert_allclose(a["false_negative_rate"], b["false_negative_rate"], rtol=1e-12)


def test_epoch_summary_against_direct_count(rng):
    n = 50
    emb = rng.normal(size=(n, 4))
    batches = [rng.integers(0, n, size=8).tolist() for _ in range(9)]
    labels = rng.integers(0, 3, size=n)
    t = batch_hardness(emb, batches, labels=labels)
    s = epoch_summary(t, batches, num_nodes=n)
    flat = [i for b in batches for i in b]
    assert s["coverage"] == pytest.approx(len(set(flat)) / n)
    assert s["duplicates"] == len(flat) - len(set(flat))
    assert s["num_batches"] == 9 and s["num_samples"] == 72
    assert s["mean_infonce"] == pytest.approx(float(np.mean(t["infonce"])))
    assert s["mean_false_negative_rate"] == pytest.approx(float(np.mean(t["false_negative_rate"])))
    slope = np.polyfit(np.arange(9) / 9, t["excess_hardness"], 1)[0]
    assert s["hardness_slope"] == pytest.approx(slope)
    seg = s["hardness_by_segment"]
    assert len(seg) == 4
    assert seg[0] == pytest.approx(np.mean(t["excess_hardness"][:3]))  # positions 0, 1/9, 2/9 < 1/4


def test_epoch_means_weigh_batches_by_their_pairs(rng):
    """1,282 = 20 x 64 + 2 items: the 2-item batch weighed as much as a full one (0.081 read instead of 0.052)."""
    n, b = 1282, 64
    emb = rng.normal(size=(n, 6)) + rng.normal(size=(1, 6)) * 0.5
    labels = rng.integers(0, 10, size=n)
    perm = rng.permutation(n)
    batches = [perm[i:i + b].tolist() for i in range(0, n, b)]
    assert len(batches[-1]) == 2
    s = epoch_summary(batch_hardness(emb, batches, labels=labels), batches, num_nodes=n)
    # independent reference: every in-batch pair of the epoch pooled
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos, same = [], []
    for bt in batches:
        i, j = np.triu_indices(len(bt), 1)
        cos.append((u[bt][i] * u[bt][j]).sum(1))
        same.append(labels[bt][i] == labels[bt][j])
    cos, same = np.concatenate(cos), np.concatenate(same)
    assert s["mean_mean_cosine"] == pytest.approx(cos.mean(), rel=1e-9)
    assert s["mean_false_negative_rate"] == pytest.approx(same.mean(), rel=1e-9)
    g = u @ u.T
    mu = (g.sum() - np.trace(g)) / (n * (n - 1))
    assert s["mean_excess_hardness"] == pytest.approx(cos.mean() - mu, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("labels, err", [(np.linspace(0, 1, 50), "look continuous")])
def test_continuous_labels_are_refused(labels, err):
    """1,282 distinct floats were taken as classes (false-negative rate 0.002)."""
    emb = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match=err):
        batch_hardness(emb, [list(range(10))], labels=labels)


def test_nearly_unique_labels_warn(rng):
    n = 60
    emb = rng.normal(size=(n, 3))
    with pytest.warns(RuntimeWarning, match="distinct values for 60 rows"):
        batch_hardness(emb, [list(range(10))], labels=rng.permutation(n))
    batch_hardness(emb, [list(range(10))], labels=np.arange(n) % 5 * 1.0)  # integral floats: classes, quiet


def test_table_helpers():
    t = Table({"name": ["a", "bb"], "x": np.array([1.0, np.nan]), "k": [1, 2], "s": [{"p": 1}, {"p": 2}]})
    assert t.columns == ["name", "x", "k", "s"]
    assert t[0] == {"name": "a", "x": 1.0, "k": 1, "s": {"p": 1}}
    recs = t.to_records(json_safe=True)
    assert recs[1]["x"] is None
    json.dumps(recs)
    text = t.to_string()
    assert "nan" in text and "p=2" in text and text.count("\n") == 2
    with pytest.raises(ValueError, match="'x'"):
        Table({"a": [1, 2], "x": [1]})
    with pytest.raises(KeyError, match="zzz"):
        t["zzz"]


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs(rng):
    emb = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="labels"):
        batch_hardness(emb, [[0, 1]], labels=np.zeros(9))
    bad = emb.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="embeddings"):
        batch_hardness(bad, [[0, 1]])
    zero = emb.copy()
    zero[4] = 0
    with pytest.raises(ValueError, match="embeddings row 4"):
        batch_hardness(zero, [[0, 1]])
    with pytest.raises(ValueError, match=r"batches\[1\]"):
        batch_hardness(emb, [[0, 1], [3, 10]])
    with pytest.raises(ValueError, match=r"batches\[0\]"):
        batch_hardness(emb, [[]])
    with pytest.raises(ValueError, match="batches"):
        batch_hardness(emb, [])
    with pytest.raises(ValueError, match="temperature"):
        batch_hardness(emb, [[0, 1]], temperature=0)
    with pytest.raises(ValueError, match="reference"):
        batch_hardness(emb, [[0, 1]], reference="bootstrap")
    with pytest.raises(ValueError, match="batch_size"):
        random_batch_reference(emb, 11)
    with pytest.raises(ValueError, match="num_nodes|batches"):
        epoch_summary(batch_hardness(emb, [[0, 1]]), [[0, 1], [2, 3]], num_nodes=10)


@pytest.mark.gpu
def test_cuda_matches_cpu(rng):
    emb = rng.normal(size=(300, 16)) + 0.2
    labels = rng.integers(0, 7, size=300)
    batches = _random_batches(rng, 300, [32] * 9 + [12])
    cpu = batch_hardness(emb, batches, labels=labels)
    gpu = batch_hardness(torch.from_numpy(emb).cuda(), batches, labels=torch.from_numpy(labels).cuda())
    for col in cpu.columns:
        np.testing.assert_allclose(gpu[col], cpu[col], rtol=1e-9, atol=1e-12, err_msg=col)
    assert global_mean_cosine(torch.from_numpy(emb).cuda()) == pytest.approx(global_mean_cosine(emb), abs=1e-12)


# ----------------------------------------------------------------------------- compare_samplers
def _sequential(n, b, **kwargs):
    return [list(range(i, min(i + b, n))) for i in range(0, n, b)]


class _Repeating:
    """A sampler-like object: set_epoch plus iteration; draws with replacement (duplicates, partial coverage)."""

    def __init__(self, n, b, *, seed=0, embeddings=None, rounds=3):
        self.n, self.b, self.seed, self.rounds = n, b, seed, rounds
        self.stats = {"random_jumps": 5}

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        g = np.random.default_rng(self.seed + self.epoch)
        for _ in range(self.rounds):
            yield g.integers(0, self.n, size=self.b).tolist()


def test_compare_samplers_matches_direct_metrics(rng):
    from graphbatch.evaluation import SamplerSpec, compare_samplers

    n, b = 45, 8
    emb = rng.normal(size=(n, 5))
    labels = rng.integers(0, 3, size=n)
    specs = [SamplerSpec("seq", _sequential), ("rep", _Repeating, {"rounds": 4})]
    table, details = compare_samplers(emb, labels, batch_size=b, samplers=specs, seed=3, return_details=True)
    assert list(table["name"]) == ["seq", "rep"]
    for name in ("seq", "rep"):
        batches = details[name]["batches"]
        direct = batch_hardness(emb, batches, labels)
        row = table[list(table["name"]).index(name)]
        pairs = direct["size"] * (direct["size"] - 1) / 2  # epoch means are pair-weighted
        assert row["mean_cosine"] == pytest.approx(float(np.average(direct["mean_cosine"], weights=pairs)))
        assert row["false_negative_rate"] == pytest.approx(
            float(np.average(direct["false_negative_rate"], weights=pairs)))
        flat = [i for bb in batches for i in bb]
        assert row["coverage"] == pytest.approx(len(set(flat)) / n)
        assert row["duplicates"] == len(flat) - len(set(flat))
        assert row["build_s"] >= 0 and row["plan_s"] >= 0
    assert table[0]["coverage"] == 1.0 and table[0]["duplicates"] == 0 and math.isnan(table[0]["random_jump_share"])
    assert table[1]["num_batches"] == 4 and table[1]["settings"] == {"rounds": 4}
    assert table[1]["random_jump_share"] == pytest.approx(5 / 32)
    # the seed reaches the sampler
    again = compare_samplers(emb, labels, batch_size=b, samplers=specs[1:], seed=3, return_details=True)[1]
    assert again["rep"]["batches"] == details["rep"]["batches"]


def test_compare_samplers_bad_inputs(rng):
    from graphbatch.evaluation import SamplerSpec, compare_samplers

    emb = rng.normal(size=(20, 3))
    spec = [SamplerSpec("seq", _sequential)]
    with pytest.raises(ValueError, match="batch_size"):
        compare_samplers(emb, batch_size=21, samplers=spec)
    with pytest.raises(ValueError, match="labels"):
        compare_samplers(emb, np.zeros(19), batch_size=4, samplers=spec)
    with pytest.raises(ValueError, match="distinct names"):
        compare_samplers(emb, batch_size=4, samplers=spec + spec)
    with pytest.raises(ValueError, match="samplers"):
        compare_samplers(emb, batch_size=4, samplers=[])
    with pytest.raises(TypeError, match=r"samplers\[0\]"):
        compare_samplers(emb, batch_size=4, samplers=["random"])
    nan = emb.copy()
    nan[0, 0] = np.inf
    with pytest.raises(ValueError, match="embeddings"):
        compare_samplers(nan, batch_size=4, samplers=spec)


def test_default_grid_names_and_settings():
    from graphbatch.evaluation import default_sampler_grid

    specs = default_sampler_grid(500, 32, k=8, candidates=(100, None, 1000), restart_probs=(0.2,),
                                 ppr_restart_probs=(0.5,), ppr_candidates=(100,))
    names = [s.name for s in specs]
    from graphbatch import backend

    controls = ["rwr-walk rounds M=all p=0.3", "knn rounds k=4B", "knn capped rounds"] + (
        ["metis (B3)"] if backend.WITH_PYMETIS else [])
    assert names == ["random", "knn", "cluster", "bandwidth", "rwr-walk M=100 p=0.2", "rwr-walk M=all p=0.2",
                     "rwr-ppr M=100 p=0.5"] + controls  # None and 1000 both mean all 500 instances: deduplicated
    capped = specs[names.index("knn capped rounds")].settings
    assert capped == {"k": 255, "candidates": 500, "community_size": 48, "max_per_community": 12, "plan": "rounds"}
    assert specs[4].settings == {"mode": "walk", "k": 8, "candidates": 100, "restart_prob": 0.2}
    assert specs[1].settings == {"k": 31, "candidates": 500}  # kNN baseline: seed + its B - 1 exact neighbours
    assert specs[2].settings == {"num_clusters": 16}
    with pytest.raises(ValueError, match="batch_size"):
        default_sampler_grid(10, 11)


def test_compare_samplers_warm_up_does_not_warn_about_its_own_small_sample(rng):
    """The untimed warm-up runs on max(2B, 64) rows, where k=100 is clamped; only the real run may warn."""
    import warnings

    import graphbatch as gb
    from graphbatch.evaluation import compare_samplers

    emb = rng.normal(size=(400, 6))
    spec = ("walk", gb.RWRBatchSampler, {"k": 100, "candidates": 300})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare_samplers(emb, batch_size=16, samplers=[spec], seed=0)
    assert not [w for w in caught if "only 64 instances" in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:  # the real run still warns when it clamps
        warnings.simplefilter("always")
        compare_samplers(emb[:60], batch_size=16, samplers=[spec], seed=0)
    assert any("only 60 instances" in str(w.message) for w in caught)
