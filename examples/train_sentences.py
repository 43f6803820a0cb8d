"""SimCSE-style sentence training on a short list of sentences with hard-negative batches (pure torch).

    python examples/train_sentences.py --steps 30

The encoder is a tiny hashed bag-of-words model with dropout: the two views of
a sentence are the same text, made different by dropout (SimCSE). For a real
model with the sentence-transformers trainer see ``train_sentence_transformers.py``.
"""
from __future__ import annotations

import argparse
import time
import zlib

import torch

from graphbatch import RWRBatchSampler
from graphbatch.adapters import SentenceDataset, embed_dataset, make_loader
from graphbatch.losses import info_nce

SUBJECTS = ["A man", "A woman", "The child", "An old farmer", "The chef", "A student", "The pilot", "A nurse"]
VERBS = ["is cooking", "is reading", "is repairing", "is painting", "is carrying", "is washing"]
OBJECTS = ["a red bicycle", "the kitchen table", "an old book", "a small boat", "the garden fence",
           "a wooden chair", "a broken clock", "the blue car"]
PLACES = ["in the park.", "at home.", "near the river.", "in the village.", "on the beach."]


def sentences(n: int, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]  # noqa: E731
    out = set()
    while len(out) < n:
        out.add(f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)} {pick(PLACES)}")
    return sorted(out)


class BagOfWords(torch.nn.Module):
    def __init__(self, buckets: int = 4096, dim: int = 64) -> None:
        super().__init__()
        self.buckets = buckets
        self.emb = torch.nn.EmbeddingBag(buckets, dim, mode="mean")
        self.drop = torch.nn.Dropout(0.2)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, texts) -> torch.Tensor:
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            words = t.lower().strip(".").split()
            grams = words + [a + " " + b for a, b in zip(words, words[1:])]
            ids += [zlib.crc32(g.encode()) % self.buckets for g in grams]
        x = self.emb(torch.tensor(ids), torch.tensor(offsets))
        return self.proj(self.drop(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-sentences", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    dataset = SentenceDataset(sentences(args.num_sentences, args.seed))  # SimCSE: views = (s, s)
    model = BagOfWords()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sampler = RWRBatchSampler(len(dataset), args.batch_size, k=10, candidates=100, refresh_every=10,
                              embeddings=embed_dataset(model, dataset, progress=False), seed=args.seed)
    loader = make_loader(dataset, sampler)

    step, epoch, t0 = 0, 0, time.perf_counter()
    while step < args.steps:
        sampler.set_epoch(epoch)  # batches (and, through them, the augmentations) follow the epoch
        epoch += 1
        for batch in loader:
            anchors, positives = batch["views"]
            z1, z2 = model(anchors), model(positives)  # different dropout masks
            loss = info_nce(z1, z2, temperature=0.05, symmetric=False, in_view_negatives=False)  # SimCSE
            opt.zero_grad()
            loss.backward()
            opt.step()
            sampler.update(batch["index"], z1.detach())
            step += 1
            if step % 10 == 0 or step == args.steps:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break
    print(f"done in {time.perf_counter() - t0:.1f}s; sampler refreshes: {sampler.stats['refreshes']}")


if __name__ == "__main__":
    main()
