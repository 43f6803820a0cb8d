"""Contrastive losses for the batches graphbatch composes: InfoNCE (NT-Xent), DCL and HCL on two views.

Hard batches bring false negatives; :func:`dcl` corrects the negative term for them with a
class prior, :func:`hcl` also weights negatives by hardness, and every loss takes a
``false_negative_mask`` of pairs known (or suspected) to be positives, removed from the
denominator. See :mod:`.contrastive` and ``docs/concepts.md`` (section 8).

Example:
    >>> import torch
    >>> from graphbatch.losses import info_nce
    >>> z = torch.randn(16, 8)
    >>> bool(info_nce(z, z + 0.01 * torch.randn(16, 8), temperature=0.1) < info_nce(z, torch.randn(16, 8)))
    True
"""
from .contrastive import dcl, hcl, info_nce

__all__ = ["info_nce", "dcl", "hcl"]
