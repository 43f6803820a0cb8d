"""In-batch contrastive losses on two views: InfoNCE (NT-Xent), debiased (DCL) and hardness-weighted (HCL).

Every loss takes the two views' embeddings ``z1``, ``z2`` of shape ``(N, d)`` (row ``i`` of
both is instance ``i``), L2-normalises them and scores pairs by ``s = <z_a, z_b> / temperature``.
The anchors are the rows of ``z1`` (and, with ``symmetric=True``, of ``z2``, the two directions
averaged); anchor ``i``'s positive is the other view of ``i``; its negatives are the other
instances' other view, with ``in_view_negatives=True`` also their same view (SimCLR's NT-Xent:
``2N - 2`` negatives), plus the rows of ``negatives`` (e.g. a MoCo queue).
``false_negative_mask[i, j] = True`` marks instance ``j`` as a known or suspected positive of
``i``: both its views leave ``i``'s negatives (the diagonal is ignored). The formulas are in
``docs/concepts.md`` (section 8); tests check each against a per-pair loop and ``gradcheck``.

Example:
    >>> import torch
    >>> from graphbatch.losses import info_nce, dcl, hcl
    >>> z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    >>> bool(info_nce(z1, z2) > 0), torch.allclose(hcl(z1, z2, beta=0.0), dcl(z1, z2))
    (True, True)
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validation import check_bool, check_probability, check_real, describe

__all__ = ["info_nce", "dcl", "hcl"]


def _check(z1: Any, z2: Any, temperature: Any, negatives: Any, false_negative_mask: Any):
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point():
            raise TypeError(f"{name} must be a 2-D floating tensor (N, d), got {describe(z)}")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 1:
        raise ValueError("z1 must hold at least one row")
    t = check_real("temperature", temperature, low=0.0, low_open=True)
    if negatives is not None:
        if not isinstance(negatives, torch.Tensor) or negatives.dim() != 2 or negatives.shape[1] != z1.shape[1]:
            raise ValueError(f"negatives must be a (K, {z1.shape[1]}) tensor, got {describe(negatives)}")
    n = z1.shape[0]
    if false_negative_mask is not None:
        m = false_negative_mask
        if not isinstance(m, torch.Tensor) or m.shape != (n, n) or m.dtype != torch.bool:
            raise ValueError(f"false_negative_mask must be a ({n}, {n}) bool tensor, got {describe(m)}")
    return t


def _logits(z1: torch.Tensor, z2: torch.Tensor, t: float, negatives: torch.Tensor | None, in_view: bool,
            mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive logits ``(N,)`` of the view-1 anchors and their negative logits ``(N, M)`` (-inf = excluded)."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = a.shape[0]
    cross = a @ b.t() / t
    pos = cross.diagonal()
    eye = torch.eye(n, dtype=torch.bool, device=a.device)
    drop = eye if mask is None else eye | mask.to(a.device)
    parts = [cross.masked_fill(drop, float("-inf"))]
    if in_view:
        parts.append((a @ a.t() / t).masked_fill(drop, float("-inf")))
    if negatives is not None:
        parts.append(a @ F.normalize(negatives.to(a), dim=1).t() / t)
    return pos, torch.cat(parts, dim=1)


def _directions(z1, z2, symmetric, fn):
    """``fn(anchors, others)`` for the view-1 anchors, averaged with the view-2 anchors when symmetric."""
    loss = fn(z1, z2)
    return 0.5 * (loss + fn(z2, z1)) if symmetric else loss


def info_nce(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1, symmetric: bool = True,
             in_view_negatives: bool = True, negatives: torch.Tensor | None = None,
             false_negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE / NT-Xent: ``mean_i -log( exp(s_i+) / (exp(s_i+) + sum_neg exp(s_ij)) )``.

    Args:
        z1, z2: ``(N, d)`` embeddings of the two views.
        temperature: ``tau`` (> 0).
        symmetric: average the view-1 and view-2 anchors (NT-Xent); ``False``: view-1 anchors only
            (SimCSE's direction).
        in_view_negatives: the other instances' same view are negatives too (SimCLR); ``False``:
            only their other view (CLIP / SimCSE).
        negatives: ``(K, d)`` extra negatives for every anchor.
        false_negative_mask: ``(N, N)`` bool, ``True`` where instance ``j`` must not be a negative of ``i``.

    Returns:
        A scalar tensor.
    """
    t = _check(z1, z2, temperature, negatives, false_negative_mask)
    symmetric, in_view = check_bool("symmetric", symmetric), check_bool("in_view_negatives", in_view_negatives)

    def one(a, b):
        pos, neg = _logits(a, b, t, negatives, in_view, false_negative_mask)
        return (torch.logsumexp(torch.cat([pos[:, None], neg], dim=1), dim=1) - pos).mean()

    return _directions(z1, z2, symmetric, one)


def _debiased(z1, z2, temperature, tau_plus, beta, symmetric, in_view, negatives, mask):
    t = _check(z1, z2, temperature, negatives, mask)
    tau_plus = check_probability("tau_plus", tau_plus, open_low=False, closed_high=False)
    beta = check_real("beta", beta, low=0.0)
    symmetric, in_view = check_bool("symmetric", symmetric), check_bool("in_view_negatives", in_view)

    def one(a, b):
        pos_logit, neg_logit = _logits(a, b, t, negatives, in_view, mask)
        live = torch.isfinite(neg_logit)
        count = live.sum(dim=1).to(pos_logit.dtype)  # M_i: negatives of anchor i
        pos = pos_logit.exp()
        neg = torch.where(live, neg_logit.exp(), torch.zeros_like(neg_logit))
        if beta == 0.0:
            weighted = neg.sum(dim=1)  # uniform weights: DCL
        else:
            # HCL: importance weights exp(beta s_ij), normalised to mean 1 over the anchor's negatives
            w = torch.where(live, (beta * neg_logit).exp(), torch.zeros_like(neg_logit))
            mean_w = torch.where(count > 0, w.sum(dim=1) / count.clamp_min(1.0), torch.ones_like(count))
            weighted = (w * neg).sum(dim=1) / mean_w  # an anchor without negatives keeps 0
        ng = (weighted - tau_plus * count * pos) / (1.0 - tau_plus)
        ng = torch.maximum(ng, count * math.exp(-1.0 / t))  # the estimator's lower bound
        return (-torch.log(pos / (pos + ng))).mean()

    return _directions(z1, z2, symmetric, one)


def dcl(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1, tau_plus: float = 0.1,
        symmetric: bool = True, in_view_negatives: bool = True, negatives: torch.Tensor | None = None,
        false_negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Debiased contrastive loss (Chuang et al., NeurIPS 2020).

    With ``M_i`` negatives and class prior ``tau_plus`` (the chance a "negative" shares the
    anchor's class), the negative term is debiased as
    ``Ng_i = max((sum_j e^{s_ij} - tau_plus M_i e^{s_i+}) / (1 - tau_plus), M_i e^{-1/tau})`` and the
    loss is ``mean_i -log(e^{s_i+} / (e^{s_i+} + Ng_i))``. ``tau_plus = 0`` is InfoNCE.

    Args:
        z1, z2, temperature, symmetric, in_view_negatives, negatives, false_negative_mask: as :func:`info_nce`.
        tau_plus: class prior in ``[0, 1)``.

    Returns:
        A scalar tensor.
    """
    return _debiased(z1, z2, temperature, tau_plus, 0.0, symmetric, in_view_negatives, negatives,
                     false_negative_mask)


def hcl(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1, tau_plus: float = 0.1,
        beta: float = 1.0, symmetric: bool = True, in_view_negatives: bool = True,
        negatives: torch.Tensor | None = None, false_negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hard-negative contrastive loss (Robinson et al., ICLR 2021): DCL with hardness-weighted negatives.

    Each negative's ``e^{s_ij}`` is weighted by ``w_ij = e^{beta s_ij}`` normalised to mean 1 over
    the anchor's negatives (``sum_j w_ij e^{s_ij} / mean_j w_ij`` replaces ``sum_j e^{s_ij}`` in
    :func:`dcl`); ``beta = 0`` gives uniform weights, i.e. exactly :func:`dcl`.

    Args:
        z1, z2, temperature, tau_plus, symmetric, in_view_negatives, negatives, false_negative_mask: as :func:`dcl`.
        beta: concentration on hard negatives (``>= 0``).

    Returns:
        A scalar tensor.
    """
    return _debiased(z1, z2, temperature, tau_plus, beta, symmetric, in_view_negatives, negatives,
                     false_negative_mask)
