"""Sentence adapter: strings, (anchor, positive) pairs or a Hugging Face dataset -> views + node index.

:class:`SentenceDataset` returns ``{"index", "views": (anchor, positive)}`` items: SimCSE style
(the same sentence twice, dropout makes the views) or pairs, from lists or dataset columns.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Union

import torch

from .._validation import check_choice
from .base import IndexedDataset

__all__ = ["SentenceDataset"]

_MODES = ("simcse", "pair")


def _is_hf_dataset(data: Any) -> bool:
    """Duck-typed ``datasets.Dataset`` (no import of ``datasets``)."""
    return hasattr(data, "column_names") and hasattr(data, "__getitem__") and hasattr(data, "__len__") \
        and not isinstance(data, (list, tuple, dict))


def _column(data: Any, name: str) -> list[Any]:
    if name not in data.column_names:
        raise ValueError(f"column {name!r} is not in the dataset (columns: {list(data.column_names)})")
    return list(data[name])


def _check_strings(values: Sequence[Any], what: str) -> list[str]:
    out = list(values)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise TypeError(f"{what} {i} must be a str, got {type(s).__name__} ({s!r})")
    return out


class SentenceDataset(IndexedDataset):
    """Sentences as graph nodes: each item is ``{"index": i, "views": (anchor, positive), "label": y}``.

    * ``mode="simcse"``: one sentence per node, yielded twice (SimCSE: the two
      views differ only through dropout inside the encoder);
    * ``mode="pair"``: an ``(anchor, positive)`` pair per node.

    ``data`` is a list of strings (SimCSE), a list of ``(anchor, positive)``
    pairs (pair), or a Hugging Face ``datasets.Dataset`` (duck-typed; the
    package is not imported): ``column`` names one text column (SimCSE) or a
    pair of columns (pair). With ``column=None`` a dataset with columns
    ``anchor`` and ``positive`` is read as pairs and one with a single text
    column as SimCSE. ``mode=None`` infers the mode from the data.

    The node's text (what is embedded to build the graph) is the anchor,
    :attr:`texts`. Default collate gives ``batch["index"]`` ``(B,)`` and
    ``batch["views"]`` = ``[anchors, positives]`` (two tuples of ``B`` strings).

    Args:
        data: list of str, list of pairs, or a ``datasets.Dataset``.
        mode: ``"simcse"``, ``"pair"`` or ``None`` (infer).
        column: dataset column name(s) (see above).
        labels: optional per-node labels (length ``N``).
        label_column: dataset column holding labels.

    Raises:
        TypeError: an element is not a string / a pair of strings.
        ValueError: bad ``mode``, missing column, or lengths disagree.

    Example:
        >>> from graphbatch.adapters import SentenceDataset
        >>> ds = SentenceDataset(["A man plays a guitar.", "A dog runs in the park."])
        >>> ds[1]
        {'index': 1, 'views': ('A dog runs in the park.', 'A dog runs in the park.')}
        >>> SentenceDataset([("q1", "d1"), ("q2", "d2")], mode="pair")[0]["views"]
        ('q1', 'd1')
    """

    def __init__(self, data: Any, *, mode: str | None = None,
                 column: Union[str, tuple[str, str], None] = None, labels: Sequence[Any] | None = None,
                 label_column: str | None = None) -> None:
        super().__init__(None)
        if mode is not None:
            check_choice("mode", mode, _MODES)
        anchors: list[str]
        positives: list[str] | None = None
        if _is_hf_dataset(data):
            cols = list(data.column_names)
            if column is None:
                if "anchor" in cols and "positive" in cols and mode != "simcse":
                    column = ("anchor", "positive")
                elif len(cols) == 1 or (mode == "simcse" and "anchor" in cols):
                    column = "anchor" if "anchor" in cols else cols[0]
                else:
                    raise ValueError(f"column must name the text column(s); the dataset has columns {cols}")
            if isinstance(column, str):
                if mode == "pair":
                    raise ValueError(f"mode='pair' needs column=(anchor_column, positive_column), got {column!r}")
                anchors = _check_strings(_column(data, column), f"column {column!r} row")
            elif isinstance(column, (tuple, list)) and len(column) == 2 and all(isinstance(c, str) for c in column):
                if mode == "simcse":
                    raise ValueError(f"mode='simcse' needs one column name, got {column!r}")
                anchors = _check_strings(_column(data, column[0]), f"column {column[0]!r} row")
                positives = _check_strings(_column(data, column[1]), f"column {column[1]!r} row")
            else:
                raise TypeError(f"column must be a column name or a pair of names, got {column!r}")
            if label_column is not None:
                labels = _column(data, label_column)
        else:
            if column is not None or label_column is not None:
                raise ValueError("column / label_column apply to a datasets.Dataset only; got a "
                                 f"{type(data).__name__}")
            if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
                raise TypeError(f"data must be a list of strings, a list of (anchor, positive) pairs or a "
                                f"datasets.Dataset, got {type(data).__name__}")
            data = list(data)
            if len(data) == 0:
                raise ValueError("data must hold at least one sentence")
            if isinstance(data[0], str):
                anchors = _check_strings(data, "sentence")
            elif isinstance(data[0], (tuple, list)):
                anchors, positives = [], []
                for i, p in enumerate(data):
                    if not isinstance(p, (tuple, list)) or len(p) != 2 or not all(isinstance(s, str) for s in p):
                        raise TypeError(f"pair {i} must be an (anchor, positive) pair of str, got {p!r}")
                    anchors.append(p[0])
                    positives.append(p[1])
            else:
                raise TypeError(f"sentence 0 must be a str or an (anchor, positive) pair, got "
                                f"{type(data[0]).__name__} ({data[0]!r})")
        if len(anchors) == 0:
            raise ValueError("data must hold at least one sentence")
        if mode is None:
            mode = "pair" if positives is not None else "simcse"
        elif mode == "pair" and positives is None:
            raise ValueError("mode='pair' needs (anchor, positive) pairs or two columns; got single sentences")
        elif mode == "simcse" and positives is not None:
            raise ValueError("mode='simcse' needs single sentences; got (anchor, positive) pairs "
                             "(use mode='pair')")
        self.mode = mode
        self.anchors = anchors
        self.positives = positives
        self.labels = None
        if labels is not None:
            labels = list(labels)
            if len(labels) != len(anchors):
                raise ValueError(f"labels must have one entry per sentence ({len(anchors)}), got {len(labels)}")
            self.labels = labels
        self.views = 2

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def texts(self) -> list[str]:
        """The node texts (anchors), in node order."""
        return self.anchors

    def _get(self, i: int) -> dict:
        a = self.anchors[i]
        p = self.positives[i] if self.positives is not None else a
        views = (a, p)[: self.views]
        item = {"index": i, "views": views}
        if self.labels is not None:
            y = self.labels[i]
            item["label"] = y if isinstance(y, (str, torch.Tensor)) else torch.as_tensor(y)
        return item

    def for_embedding(self) -> SentenceDataset:
        """One view (the anchor) per node, for embedding."""
        other = copy.copy(self)
        other.views = 1
        return other

    def __repr__(self) -> str:
        return f"SentenceDataset({len(self)} nodes, mode={self.mode!r})"
