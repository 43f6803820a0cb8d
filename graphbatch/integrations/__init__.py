"""Integrations with training frameworks (optional dependencies, imported lazily).

* :mod:`graphbatch.integrations.sentence_transformers` --
  ``GraphBatchSampler`` for ``SentenceTransformerTrainer`` (``pip install 'graphbatch[sentence]'``).
* :mod:`graphbatch.integrations.lightning` --
  ``GraphBatchCallback`` for a PyTorch Lightning ``Trainer`` (``pip install 'graphbatch[lightning]'``).
"""
__all__ = ["sentence_transformers", "lightning"]
