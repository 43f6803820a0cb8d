"""Contrastive image training (SimCLR-style) on scikit-learn's digits with hard-negative batches.

    python examples/train_images.py --steps 30

Every image is a node; ``RWRBatchSampler`` forms each batch by a random walk on
the proximity graph of the current embeddings, so the in-batch negatives look
alike. After each step the batch's embeddings go back to the sampler.
"""
from __future__ import annotations

import argparse
import time

import torch
from sklearn.datasets import load_digits

from graphbatch import RWRBatchSampler
from graphbatch.adapters import ImageDataset, embed_dataset, make_loader
from graphbatch.adapters import augment as A
from graphbatch.losses import info_nce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="training steps")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    images = torch.from_numpy(digits.images / 16.0).float()  # (1797, 8, 8) in [0, 1]
    augment = A.Compose([A.RandomResizedCrop(8, scale=(0.6, 1.0)), A.ColorJitter(brightness=0.3, contrast=0.3),
                         A.GaussianNoise(0.05)])
    dataset = ImageDataset(images, augment, labels=digits.target, seed=args.seed)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    # initial graph from the untrained encoder (skips the random warm-up epoch)
    emb = embed_dataset(model, dataset, progress=False)
    sampler = RWRBatchSampler(len(dataset), args.batch_size, k=20, candidates=200, refresh_every=10,
                              embeddings=emb, seed=args.seed)
    loader = make_loader(dataset, sampler)

    step, epoch, t0 = 0, 0, time.perf_counter()
    while step < args.steps:
        sampler.set_epoch(epoch)  # batches (and, through them, the augmentations) follow the epoch
        epoch += 1
        for batch in loader:
            v1, v2 = batch["views"]
            z1, z2 = model(v1), model(v2)
            loss = info_nce(z1, z2, temperature=0.2, in_view_negatives=False)  # symmetric, cross-view
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
