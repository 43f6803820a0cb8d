"""Integrations with training frameworks (optional dependencies, imported lazily).

* :mod:`graphbatch.integrations.sentence_transformers` --
  ``GraphBatchSampler`` for ``SentenceTransformerTrainer`` (``pip install 'graphbatch[sentence]'``).
"""
__all__ = ["sentence_transformers"]
