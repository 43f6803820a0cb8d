"""graphbatch.losses against per-pair formulas written with explicit loops, and gradcheck in float64."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphbatch.losses import dcl, hcl, info_nce


def unit(z):
    z = np.asarray(z, dtype=np.float64)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def anchors(z1, z2, t, in_view, mask, extra, symmetric):
    """(positive similarity, [negative similarities]) for every anchor, enumerated pair by pair."""
    a, b = unit(z1), unit(z2)
    e = unit(extra) if extra is not None else np.zeros((0, a.shape[1]))
    n = a.shape[0]
    out = []
    for first, second in ((a, b), (b, a)) if symmetric else ((a, b),):
        for i in range(n):
            pos = float(first[i] @ second[i]) / t
            neg = []
            for j in range(n):
                if j == i or (mask is not None and mask[i][j]):
                    continue
                neg.append(float(first[i] @ second[j]) / t)
                if in_view:
                    neg.append(float(first[i] @ first[j]) / t)
            neg += [float(first[i] @ e[k]) / t for k in range(e.shape[0])]
            out.append((pos, neg))
    return out


def ref_info_nce(z1, z2, t, in_view=True, mask=None, extra=None, symmetric=True):
    terms = [-pos + math.log(math.exp(pos) + sum(math.exp(v) for v in neg))
             for pos, neg in anchors(z1, z2, t, in_view, mask, extra, symmetric)]
    per_direction = len(terms) // (2 if symmetric else 1)
    return sum(terms) / per_direction / (2 if symmetric else 1)


def ref_debiased(z1, z2, t, tau_plus, beta, in_view=True, mask=None, extra=None, symmetric=True):
    terms = []
    for pos, neg in anchors(z1, z2, t, in_view, mask, extra, symmetric):
        m = len(neg)
        w = [math.exp(beta * v) for v in neg]
        reweighted = sum(wi * math.exp(v) for wi, v in zip(w, neg)) / (sum(w) / m) if m else 0.0
        ng = max((reweighted - tau_plus * m * math.exp(pos)) / (1 - tau_plus), m * math.exp(-1 / t))
        terms.append(-math.log(math.exp(pos) / (math.exp(pos) + ng)))
    return sum(terms) / len(terms)


def random_views(rng, n, d):
    z1 = rng.normal(size=(n, d))
    return z1, z1 + 0.7 * rng.normal(size=(n, d))


@pytest.mark.parametrize("in_view", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_info_nce_equals_the_per_pair_formula(rng, in_view, symmetric):
    for _ in range(3):
        n, d = int(rng.integers(2, 9)), int(rng.integers(2, 6))
        z1, z2 = random_views(rng, n, d)
        t = float(rng.choice([0.05, 0.2, 1.0]))
        mask = rng.random((n, n)) < 0.3
        extra = rng.normal(size=(3, d))
        for m, e in ((None, None), (mask, None), (mask, extra)):
            got = info_nce(torch.tensor(z1), torch.tensor(z2), temperature=t, symmetric=symmetric,
                           in_view_negatives=in_view, negatives=None if e is None else torch.tensor(e),
                           false_negative_mask=None if m is None else torch.tensor(m))
            assert got.item() == pytest.approx(ref_info_nce(z1, z2, t, in_view, m, e, symmetric), rel=1e-10)


@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_dcl_and_hcl_equal_the_per_pair_formula(rng, beta):
    for _ in range(3):
        n, d = int(rng.integers(3, 9)), int(rng.integers(2, 6))
        z1, z2 = random_views(rng, n, d)
        t, tau_plus = float(rng.choice([0.1, 0.5])), float(rng.choice([0.0, 0.1, 0.3]))
        mask = rng.random((n, n)) < 0.25
        for m in (None, mask):
            kw = dict(temperature=t, tau_plus=tau_plus, false_negative_mask=None if m is None else torch.tensor(m))
            want = ref_debiased(z1, z2, t, tau_plus, beta, mask=m)
            got = hcl(torch.tensor(z1), torch.tensor(z2), beta=beta, **kw)
            assert got.item() == pytest.approx(want, rel=1e-10)
            if beta == 0.0:
                assert dcl(torch.tensor(z1), torch.tensor(z2), **kw).item() == pytest.approx(want, rel=1e-10)


def test_dcl_without_prior_is_info_nce_and_the_lower_bound_binds(rng):
    z1, z2 = random_views(rng, 6, 4)
    a, b = torch.tensor(z1), torch.tensor(z2)
    assert dcl(a, b, tau_plus=0.0, temperature=0.5).item() == pytest.approx(
        info_nce(a, b, temperature=0.5).item(), rel=1e-12)
    # a large prior drives the debiased estimate below its floor M e^{-1/t}: the clamp must hold it
    assert dcl(a, a, tau_plus=0.9, temperature=0.5).item() == pytest.approx(
        ref_debiased(z1, z1, 0.5, 0.9, 0.0), rel=1e-10)


def test_gradients_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    z2 = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[0, 1] = mask[2, 4] = True
    for fn in (lambda a, b: info_nce(a, b, temperature=0.3, false_negative_mask=mask),
               lambda a, b: dcl(a, b, temperature=0.5, tau_plus=0.1),
               lambda a, b: hcl(a, b, temperature=0.5, tau_plus=0.1, beta=1.0, false_negative_mask=mask)):
        assert torch.autograd.gradcheck(fn, (z1, z2), eps=1e-6, atol=1e-6)


def test_bad_inputs():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        info_nce(z, torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="tau_plus"):
        dcl(z, z, tau_plus=1.0)
    with pytest.raises(ValueError, match="beta"):
        hcl(z, z, beta=-1.0)
    with pytest.raises(ValueError, match="false_negative_mask"):
        info_nce(z, z, false_negative_mask=torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="z1"):
        info_nce(z.numpy(), z)
