"""Dataset adapters (images, sentences, graphs), augmentations, loader integration and embed_dataset."""
from __future__ import annotations

import pickle

import networkx as nx
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch_geometric.data import Batch, Data
from torch_geometric.datasets import TUDataset
from torch_geometric.loader import DataLoader as PygLoader
from torch_geometric.utils import is_undirected

from graphbatch.adapters import (
    AttributeMasking,
    EdgePerturbation,
    GraphDataset,
    ImageDataset,
    NodeDropping,
    RandomSubgraph,
    SentenceDataset,
    attach_node_index,
    batch_index,
    check_sampler,
    embed_dataset,
    make_loader,
)
from graphbatch.adapters import augment as A
from graphbatch.samplers import RWRBatchSampler

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "A woman is slicing tomatoes in the kitchen.",
    "Two dogs are running through a snowy field.",
    "The stock market fell sharply on Monday morning.",
    "Children are building a sandcastle at the beach.",
    "The chef is frying onions in a large pan.",
    "A cyclist rides along a mountain road.",
    "Heavy rain caused flooding in the city centre.",
    "A cat is sleeping on a warm windowsill.",
    "The orchestra performed a symphony by Brahms.",
    "Scientists discovered a new species of frog.",
    "A boy kicks a football across the park.",
    "The train to Berlin was delayed by an hour.",
    "She is reading a novel under a tree.",
    "The company reported record profits this quarter.",
    "A pilot lands the plane on a short runway.",
    "Two girls are dancing to loud music.",
    "The museum opened a new exhibition on Egypt.",
    "An old man feeds pigeons in the square.",
    "Volunteers are cleaning plastic from the river.",
]


class Recording:
    """Wraps a batch sampler and records the batches it hands out (keeps num_nodes for check_sampler)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.num_nodes = sampler.num_nodes
        self.batches = []

    def __iter__(self):
        for b in self.sampler:
            self.batches.append(list(b))
            yield b

    def __len__(self):
        return len(self.sampler)


def _digits():
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target


# ====================================================================== images


def test_image_digits_loader_carries_sampler_indices(rng):
    images, target = _digits()
    n = images.shape[0]
    t = A.Compose([A.RandomResizedCrop(8, scale=(0.5, 1.0)), A.RandomHorizontalFlip(), A.GaussianNoise(0.05)])
    ds = ImageDataset(images, t, labels=target, seed=int(rng.integers(1000)))
    assert len(ds) == n
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16))
    emb = embed_dataset(model, ds, progress=False)
    sampler = Recording(RWRBatchSampler(n, 128, k=10, candidates=100, embeddings=emb, seed=int(rng.integers(100))))
    loader = make_loader(ds, sampler)
    seen = []
    for step, batch in enumerate(loader):
        idx = batch_index(batch)
        seen.append(idx.tolist())
        v1, v2 = batch["views"]
        assert v1.shape == v2.shape == (idx.numel(), 1, 8, 8)
        assert torch.equal(batch["label"], torch.as_tensor(target)[idx])
        z = model(v1)
        sampler.sampler.update(idx, z.detach())
        if step == 3:
            break
    assert seen == sampler.batches[: len(seen)]
    # the un-augmented image is the digit itself
    i = int(rng.integers(n))
    assert torch.equal(ds.image(i), torch.from_numpy(images[i])[None])
    assert torch.equal(ds.for_embedding()[i]["views"][0], torch.from_numpy(images[i])[None])


def test_image_from_map_style_datasets(rng):
    x = rng.integers(0, 256, size=(12, 5, 6, 3), dtype=np.uint8)  # channel-last uint8 images
    y = rng.integers(0, 3, size=12)
    items = [(x[i], int(y[i])) for i in range(12)]
    ds = ImageDataset(items, channels_last=True, views=1)
    it = ds[7]
    ref = torch.from_numpy(x[7].astype(np.float32) / 255.0).permute(2, 0, 1)
    assert torch.allclose(it["views"][0], ref)
    assert int(it["label"]) == y[7] and it["index"] == 7
    # torch TensorDataset (tuple items), dict items, bare images
    td = torch.utils.data.TensorDataset(torch.rand(4, 1, 3, 3), torch.arange(4))
    assert int(ImageDataset(td)[2]["label"]) == 2
    dict_items = [{"img": torch.rand(3, 3), "y": k} for k in range(3)]
    assert ImageDataset(dict_items, image_key="img", label_key="y")[1]["views"][0].shape == (1, 3, 3)
    PIL = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    pil_items = [{"image": PIL.fromarray(x[i]), "label": int(y[i])} for i in range(3)]  # HF image-dataset style
    pil = ImageDataset(pil_items)[2]
    assert torch.allclose(pil["views"][0], torch.from_numpy(x[2].astype(np.float32) / 255.0).permute(2, 0, 1))
    gray = ImageDataset([(PIL.fromarray(x[0, :, :, 0]), 0)])[0]["views"][0]
    assert gray.shape == (1, 5, 6)
    f64 = ImageDataset(rng.random((3, 4, 4)))[0]["views"][0]
    assert f64.dtype == torch.float32 and f64.shape == (1, 4, 4)
    bare = ImageDataset([torch.rand(2, 3, 3) for _ in range(3)])
    assert "label" not in bare[0] and bare[-1]["index"] == 2


def test_image_seed_reproducible_and_epoch_dependent(rng):
    imgs = torch.rand(6, 3, 10, 10, generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))
    seed = int(rng.integers(1000))
    ds = ImageDataset(imgs, A.simclr_augment(8, blur=True), seed=seed)
    a, b = ds[3], ds[3]
    assert all(torch.equal(u, v) for u, v in zip(a["views"], b["views"]))
    assert not torch.equal(a["views"][0], a["views"][1])
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["views"][0], a["views"][0])
    # a plain callable using torch's global RNG is made reproducible too
    noisy = ImageDataset(imgs, lambda x: x + torch.randn_like(x), seed=seed)
    assert torch.equal(noisy[2]["views"][0], noisy[2]["views"][0])


def test_image_bad_inputs():
    with pytest.raises(TypeError, match="transform returned"):
        ImageDataset(torch.rand(3, 4, 4), lambda x: x.numpy())[0]
    with pytest.raises(TypeError, match="transform returned a tensor of shape"):
        ImageDataset(torch.rand(3, 4, 4), lambda x: x[0])[0]
    with pytest.raises(TypeError, match="image key 'image'"):
        ImageDataset([{"pixels": torch.rand(2, 2)}])[0]
    with pytest.raises(TypeError, match="empty tuple"):
        ImageDataset([()])[0]
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(torch.rand(3, 4, 4), labels=[0, 1])
    with pytest.raises(ValueError, match="views"):
        ImageDataset(torch.rand(3, 4, 4), views=0)
    with pytest.raises(TypeError, match="transform"):
        ImageDataset(torch.rand(3, 4, 4), transform=3)
    with pytest.raises(ValueError, match="data array"):
        ImageDataset(torch.rand(3, 4))
    with pytest.raises(IndexError, match="out of range"):
        ImageDataset(torch.rand(3, 4, 4))[3]
    with pytest.raises(TypeError, match="image must be"):
        ImageDataset(["not an image"])[0]


# ====================================================================== augmentations


def test_image_augment_against_references(rng):
    x = torch.from_numpy(rng.random((3, 9, 9))).float()
    # full-area square crop resized to the same size is the identity
    assert torch.allclose(A.RandomResizedCrop(9, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x), x, atol=1e-6)
    assert torch.equal(A.RandomHorizontalFlip(p=1.0)(x), torch.from_numpy(x.numpy()[..., ::-1].copy()))
    assert torch.equal(A.RandomHorizontalFlip(p=0.0)(x), x)
    f = float(rng.uniform(0.3, 0.9))
    assert torch.allclose(A.ColorJitter(brightness=(f, f))(x), torch.from_numpy(np.clip(x.numpy() * f, 0, 1)))
    c = float(rng.uniform(0.3, 0.9))
    xn = x.numpy()
    gray = (xn * np.array([0.299, 0.587, 0.114])[:, None, None]).sum(0)
    ref = np.clip(c * xn + (1 - c) * gray.mean(), 0, 1)
    assert np.allclose(A.ColorJitter(contrast=(c, c))(x).numpy(), ref, atol=1e-6)
    # blur: reference separable convolution with numpy (reflect padding)
    s = float(rng.uniform(0.5, 1.5))
    out = A.GaussianBlur(3, sigma=(s, s))(x).numpy()
    k = np.exp(-0.5 * (np.arange(-1, 2) / s) ** 2)
    k /= k.sum()
    pad = np.pad(xn, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    ref = sum(k[i] * k[j] * pad[:, i:i + 9, j:j + 9] for i in range(3) for j in range(3))
    assert np.allclose(out, ref, atol=1e-5)
    noise = A.GaussianNoise(0.2, clamp=False)(torch.zeros(1, 100, 100), generator=torch.Generator().manual_seed(1))
    assert abs(float(noise.std()) - 0.2) < 0.01
    crop = A.RandomResizedCrop((4, 6))(x)
    assert crop.shape == (3, 4, 6)
    y = A.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(x)
    assert torch.allclose(y, (x - 0.5) / 0.25)


def test_augment_seeding_and_errors(rng):
    x = torch.rand(3, 8, 8)
    seed = int(rng.integers(1000))
    t1, t2 = A.simclr_augment(6, seed=seed), A.simclr_augment(6, seed=seed)
    assert torch.equal(t1(x), t2(x))
    with pytest.raises(TypeError, match="torch.Tensor image"):
        A.RandomHorizontalFlip()(np.zeros((1, 2, 2)))
    with pytest.raises(TypeError, match="floating-point"):
        A.GaussianNoise()(torch.zeros(1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="kernel_size"):
        A.GaussianBlur(4)
    with pytest.raises(ValueError, match="scale"):
        A.RandomResizedCrop(4, scale=(0.5, 2.0))
    with pytest.raises(ValueError, match="p must"):
        A.RandomHorizontalFlip(p=1.5)
    with pytest.raises(TypeError, match="generator"):
        A.GaussianNoise()(x, generator=3)
    with pytest.raises(ValueError, match="weights"):
        A.RandomChoice([A.GaussianNoise(), A.GaussianNoise()], weights=[1.0, -1.0])


# ====================================================================== sentences


def test_sentences_simcse_loader(rng):
    ds = SentenceDataset(SENTENCES)
    assert len(ds) == len(SENTENCES) and ds.mode == "simcse"
    sampler = Recording(RWRBatchSampler(len(ds), 6, k=4, candidates=10, embeddings=torch.randn(len(ds), 5),
                                        seed=int(rng.integers(100))))
    for batch in make_loader(ds, sampler):
        idx = batch_index(batch).tolist()
        anchors, positives = batch["views"]
        assert list(anchors) == [SENTENCES[i] for i in idx] == list(positives)
    assert sorted(sum(sampler.batches, [])) == list(range(len(SENTENCES)))
    assert ds.for_embedding()[4] == {"index": 4, "views": (SENTENCES[4],)}


def test_sentences_pairs_and_labels():
    pairs = [(SENTENCES[i], SENTENCES[i + 1]) for i in range(0, 10, 2)]
    ds = SentenceDataset(pairs, labels=[0, 1, 0, 1, 1])
    assert ds.mode == "pair" and ds.texts == [p[0] for p in pairs]
    batch = next(iter(make_loader(ds, [[3, 0]])))
    assert list(batch["views"][0]) == [pairs[3][0], pairs[0][0]]
    assert list(batch["views"][1]) == [pairs[3][1], pairs[0][1]]
    assert batch["label"].tolist() == [1, 0]


class _DuckDataset:
    """Minimal stand-in with the datasets.Dataset access pattern (column_names, ds[col])."""

    def __init__(self, cols):
        self.cols = cols
        self.column_names = list(cols)

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.cols[key]
        return {c: v[key] for c, v in self.cols.items()}

    def __len__(self):
        return len(next(iter(self.cols.values())))


def test_sentences_from_dataset_columns():
    duck = _DuckDataset({"anchor": SENTENCES[:6], "positive": SENTENCES[6:12], "score": [0.5] * 6})
    ds = SentenceDataset(duck)
    assert ds.mode == "pair" and ds[2]["views"] == (SENTENCES[2], SENTENCES[8])
    ds1 = SentenceDataset(duck, column="positive")
    assert ds1.mode == "simcse" and ds1[1]["views"] == (SENTENCES[7], SENTENCES[7])
    ds2 = SentenceDataset(duck, column=("positive", "anchor"), label_column="score")
    assert ds2[0]["views"] == (SENTENCES[6], SENTENCES[0]) and float(ds2[0]["label"]) == 0.5
    datasets = pytest.importorskip("datasets", reason="datasets is not installed")
    hf = datasets.Dataset.from_dict({"text": SENTENCES[:5]})
    ds3 = SentenceDataset(hf)
    assert ds3.texts == SENTENCES[:5] and ds3[4]["views"] == (SENTENCES[4], SENTENCES[4])


def test_sentences_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        SentenceDataset(SENTENCES, mode="pair")
    with pytest.raises(ValueError, match="mode"):
        SentenceDataset(SENTENCES, mode="triplet")
    with pytest.raises(TypeError, match="sentence 2"):
        SentenceDataset(["a", "b", 3])
    with pytest.raises(TypeError, match="pair 1"):
        SentenceDataset([("a", "b"), ("c",)])
    with pytest.raises(ValueError, match="column 'body'"):
        SentenceDataset(_DuckDataset({"text": ["a"]}), column="body")
    with pytest.raises(ValueError, match="column must name"):
        SentenceDataset(_DuckDataset({"a": ["x"], "b": ["y"], "c": ["z"]}))
    with pytest.raises(TypeError, match="column 'text' row 1"):
        SentenceDataset(_DuckDataset({"text": ["a", None]}))
    with pytest.raises(ValueError, match="at least one"):
        SentenceDataset([])
    with pytest.raises(TypeError, match="data must be"):
        SentenceDataset("just one string")


# ====================================================================== graphs


def _random_graphs(rng, num, lo=5, hi=12):
    """Random connected undirected graphs as (num_nodes, sorted undirected edge list, node labels, graph label)."""
    out = []
    for _ in range(num):
        n = int(rng.integers(lo, hi + 1))
        g = nx.gnp_random_graph(n, 0.35, seed=int(rng.integers(1 << 30)))
        comps = [sorted(c) for c in nx.connected_components(g)]
        for a, b in zip(comps, comps[1:]):
            g.add_edge(a[0], b[0])
        edges = sorted((min(u, v), max(u, v)) for u, v in g.edges())
        out.append((n, edges, rng.integers(0, 3, size=n), int(rng.integers(0, 2))))
    return out


def _write_tu(root, name, graphs):
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    a_lines, ind, nlab, glab = [], [], [], []
    offset = 0
    for gid, (n, edges, node_labels, label) in enumerate(graphs, start=1):
        for u, v in edges:
            a_lines.append(f"{u + offset + 1}, {v + offset + 1}")
            a_lines.append(f"{v + offset + 1}, {u + offset + 1}")
        ind += [str(gid)] * n
        nlab += [str(int(c)) for c in node_labels]
        glab.append(str(label))
        offset += n
    (raw / f"{name}_A.txt").write_text("\n".join(a_lines) + "\n")
    (raw / f"{name}_graph_indicator.txt").write_text("\n".join(ind) + "\n")
    (raw / f"{name}_node_labels.txt").write_text("\n".join(nlab) + "\n")
    (raw / f"{name}_graph_labels.txt").write_text("\n".join(glab) + "\n")


@pytest.fixture
def tu_dataset(tmp_path, rng):
    graphs = _random_graphs(rng, 24)
    _write_tu(tmp_path, "TOY", graphs)
    return TUDataset(str(tmp_path), "TOY"), graphs


def test_tu_dataset_loads_what_was_written(tu_dataset):
    tu, graphs = tu_dataset
    assert len(tu) == len(graphs)
    lowest = min(int(c) for g in graphs for c in g[2])  # TU one-hot encodes node labels from the smallest one
    for data, (n, edges, node_labels, label) in zip(tu, graphs):
        assert data.num_nodes == n and int(data.y) == label
        got = sorted({(min(u, v), max(u, v)) for u, v in data.edge_index.t().tolist()})
        assert got == edges
        assert data.x.argmax(1).tolist() == [int(c) - lowest for c in node_labels]


def test_graph_loader_carries_sampler_indices(tu_dataset, rng):
    tu, graphs = tu_dataset
    ds = GraphDataset(tu)
    feats = torch.stack([torch.cat([d.x.mean(0), torch.tensor([float(d.num_nodes)])]) for d in tu])
    sampler = Recording(RWRBatchSampler(len(ds), 5, k=4, candidates=12, embeddings=feats,
                                        seed=int(rng.integers(100))))
    seen = []
    for batch in PygLoader(ds, batch_sampler=sampler):
        assert isinstance(batch, Batch)
        idx = batch.node_index
        assert idx.shape == (batch.num_graphs,) and idx.dtype == torch.long
        seen.append(idx.tolist())
        assert batch.y.tolist() == [graphs[i][3] for i in idx.tolist()]
        assert batch.num_nodes == sum(graphs[i][0] for i in idx.tolist())
        assert int(batch.edge_index.max()) < batch.num_nodes
        sampler.sampler.update(idx, torch.randn(idx.numel(), feats.shape[1]))
    assert seen == sampler.batches
    # the make_loader route gives the same batches
    again = [batch_index(b).tolist() for b in make_loader(ds, [[3, 1, 0]])]
    assert again == [[3, 1, 0]]
    # the original dataset is untouched
    assert "node_index" not in tu[0]


def test_graph_two_views_collate_to_two_batches(tu_dataset, rng):
    tu, graphs = tu_dataset
    aug = A.RandomChoice([NodeDropping(0.2), EdgePerturbation(0.2), AttributeMasking(0.2), RandomSubgraph(0.2)])
    seed = int(rng.integers(1000))
    ds = GraphDataset(tu, augment=aug, seed=seed)
    order = [int(i) for i in rng.permutation(len(tu))[:7]]
    out = next(iter(PygLoader(ds, batch_sampler=[order])))
    assert isinstance(out, list) and len(out) == 2
    for view in out:
        assert isinstance(view, Batch) and view.num_graphs == 7
        assert view.node_index.tolist() == order
        assert view.y.tolist() == [graphs[i][3] for i in order]
        assert int(view.edge_index.max()) < view.num_nodes
    # reproducible by seed, graph by graph
    again = next(iter(PygLoader(GraphDataset(tu, augment=aug, seed=seed), batch_sampler=[order])))
    for a, b in zip(out, again):
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    # items pickle (DataLoader workers) and still batch node_index without increments
    v1, v2 = pickle.loads(pickle.dumps(ds[5]))
    assert Batch.from_data_list([v1, v2, attach_node_index(tu[1], 1)]).node_index.tolist() == [5, 5, 1]


class PairData(Data):
    """A user-defined Data subclass (must keep its class and batching behaviour)."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "edge_index_t":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


def test_generated_graphs_and_custom_data_class(rng):
    graphs = []
    for n, edges, _, label in _random_graphs(rng, 6):
        ei = torch.tensor(edges, dtype=torch.long).t()
        graphs.append(PairData(x=torch.randn(n, 3), edge_index=ei, edge_index_t=ei.flip(0), y=torch.tensor([label])))
    ds = GraphDataset(graphs)
    b = next(iter(PygLoader(ds, batch_sampler=[[4, 2, 0]])))
    assert b.node_index.tolist() == [4, 2, 0]
    assert torch.equal(b.edge_index_t, b.edge_index.flip(0))  # the user's increments still apply
    item = pickle.loads(pickle.dumps(ds[3]))
    assert isinstance(item, PairData) and int(item.node_index) == 3


# ---------------------------------------------------------------------- GraphCL augmentations


def _graph_with_ids(rng, n=30, p=0.2):
    g = nx.gnp_random_graph(n, p, seed=int(rng.integers(1 << 30)))
    for a, b in zip(range(n - 1), range(1, n)):
        g.add_edge(a, b)  # connected
    und = sorted((min(u, v), max(u, v)) for u, v in g.edges())
    ei = torch.tensor(und + [(v, u) for u, v in und], dtype=torch.long).t()
    eid = torch.tensor([min(u, v) * n + max(u, v) for u, v in ei.t().tolist()], dtype=torch.float)
    data = Data(x=torch.arange(n, dtype=torch.float)[:, None] + 1.0, edge_index=ei, edge_attr=eid[:, None],
                y=torch.tensor([1]))
    return data, set(und)


def test_node_dropping_keeps_valid_induced_subgraph(rng):
    data, und = _graph_with_ids(rng)
    ratio = float(rng.uniform(0.1, 0.6))
    out = NodeDropping(ratio)(data, generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))
    n = data.num_nodes
    assert out.num_nodes == n - round(ratio * n)
    assert int(out.edge_index.max()) < out.num_nodes and int(out.edge_index.min()) >= 0
    ids = (out.x[:, 0] - 1).long().tolist()  # original node ids carried by x
    kept = set(ids)
    got = {(min(ids[u], ids[v]), max(ids[u], ids[v])) for u, v in out.edge_index.t().tolist()}
    assert got == {(u, v) for u, v in und if u in kept and v in kept}
    assert out.edge_index.shape[1] == out.edge_attr.shape[0] and torch.equal(out.y, data.y)
    assert data.num_nodes == n  # input untouched


def test_edge_perturbation_counts_and_symmetry(rng):
    data, und = _graph_with_ids(rng)
    n, m = data.num_nodes, len(und)
    ratio = float(rng.uniform(0.1, 0.5))
    k = round(ratio * m)
    before = data.edge_index.clone()
    out = EdgePerturbation(ratio)(data, generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))
    assert is_undirected(out.edge_index, num_nodes=n)
    pairs = [(min(u, v), max(u, v)) for u, v in out.edge_index.t().tolist()]
    uniq = set(pairs)
    assert len(uniq) == m and len(pairs) == 2 * m  # same number of edges, no duplicates
    assert len(uniq & und) == m - k  # exactly k removed, k added
    assert all(u != v for u, v in uniq)
    # kept edges keep their own attributes; added edges copy an existing edge's attribute
    for (u, v), a in zip(out.edge_index.t().tolist(), out.edge_attr[:, 0].tolist()):
        key = min(u, v) * n + max(u, v)
        if (min(u, v), max(u, v)) in und:
            assert a == key
        else:
            assert int(a) in {x * n + y for x, y in und}
    assert torch.equal(data.edge_index, before)
    only_drop = EdgePerturbation(ratio, add=False, seed=0)(data)
    assert only_drop.edge_index.shape[1] == 2 * (m - k)


def test_attribute_masking_fraction(rng):
    n = int(rng.integers(40, 80))
    x = torch.from_numpy(rng.random((n, 5))).float() + 1.0
    data = Data(x=x, edge_index=torch.zeros(2, 0, dtype=torch.long))
    ratio = float(rng.uniform(0.1, 0.7))
    out = AttributeMasking(ratio, fill=0.0, seed=int(rng.integers(1000)))(data)
    masked = (out.x == 0).all(dim=1)
    assert abs(masked.float().mean().item() - ratio) <= 1.0 / n
    assert torch.equal(out.x[~masked], x[~masked])
    assert bool((data.x >= 1).all())  # input not modified in place


def test_random_subgraph_size_and_connectivity(rng):
    data, und = _graph_with_ids(rng, n=40, p=0.05)
    ratio = float(rng.uniform(0.2, 0.8))
    aug = RandomSubgraph(ratio)
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    out = aug(data, generator=g)
    assert out.num_nodes == 40 - round(ratio * 40)
    ids = (out.x[:, 0] - 1).long().tolist()
    sub = nx.Graph()
    sub.add_nodes_from(ids)
    sub.add_edges_from((ids[u], ids[v]) for u, v in out.edge_index.t().tolist())
    assert nx.is_connected(sub)  # BFS growth on a connected graph stays connected
    assert set(sub.edges()) <= {e for e in und} | {(v, u) for u, v in und}


def test_graph_augment_determinism_and_errors(rng):
    data, _ = _graph_with_ids(rng)
    for aug_cls in (NodeDropping, EdgePerturbation, AttributeMasking, RandomSubgraph):
        a = aug_cls(0.3)(data, generator=torch.Generator().manual_seed(7))
        b = aug_cls(0.3)(data, generator=torch.Generator().manual_seed(7))
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
        with pytest.raises(ValueError, match="ratio"):
            aug_cls(1.5)
        with pytest.raises(TypeError, match="torch_geometric.data.Data"):
            aug_cls(0.2)(torch.zeros(3))
    with pytest.raises(ValueError, match="data.x"):
        AttributeMasking(0.2)(Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=3))
    with pytest.raises(TypeError, match="graph 0"):
        GraphDataset([torch.zeros(2)])[0]
    with pytest.raises(TypeError, match="augment returned"):
        GraphDataset([data], augment=lambda d: d.x)[0]
    with pytest.raises(TypeError, match="augment"):
        GraphDataset([data], augment=(NodeDropping(),))


# ====================================================================== integration helpers


def test_check_sampler_and_make_loader_errors():
    ds = SentenceDataset(SENTENCES[:10])
    with pytest.raises(ValueError, match="num_nodes=12"):
        check_sampler(ds, RWRBatchSampler(12, 4, k=2, candidates=5))
    with pytest.raises(ValueError, match="num_nodes=12"):
        make_loader(ds, RWRBatchSampler(12, 4, k=2, candidates=5))
    with pytest.raises(ValueError, match="outside"):
        make_loader(ds, [[0, 10]])
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(ds, [[0]], batch_size=4)
    with pytest.raises(TypeError, match="length"):
        check_sampler(iter([1, 2]), [[0]])
    assert check_sampler(ds, RWRBatchSampler(10, 4, k=2, candidates=5)) == 10
    with pytest.raises(TypeError, match="'index'"):
        batch_index({"views": []})


def test_embed_dataset_images_order_and_mode(rng):
    images, _ = _digits()
    x = torch.from_numpy(images[:103])
    ds = ImageDataset(x, A.GaussianNoise(0.5))  # augmentation must NOT be applied when embedding
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(64, 7))
    model.train()
    z = embed_dataset(model, ds, batch_size=16, progress=False)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        ref = model(x[:, None])
    assert torch.allclose(z, ref, atol=1e-5)
    z2 = embed_dataset(model, ds, batch_size=64, progress=False)
    assert not model.training and torch.allclose(z2, ref, atol=1e-5)
    with pytest.raises(TypeError, match="must return a tensor"):
        embed_dataset(lambda v: v.tolist(), ds, progress=False)


def test_embed_dataset_sentences_and_graphs(tu_dataset):
    def toy(texts):  # a deterministic "encoder": character statistics
        return torch.tensor([[len(t), t.count("a"), t.count(" ")] for t in texts], dtype=torch.float)

    ds = SentenceDataset(SENTENCES)
    z = embed_dataset(toy, ds, batch_size=7, progress=False)
    assert torch.equal(z, toy(SENTENCES))

    class Encoder(torch.nn.Module):  # sentence-transformers style: has .encode, forward is not for strings
        def encode(self, texts, convert_to_tensor=True, show_progress_bar=False):
            return toy(texts) * 2

    assert torch.equal(embed_dataset(Encoder(), ds, batch_size=6, progress=False), 2 * toy(SENTENCES))
    tu, graphs = tu_dataset
    from torch_geometric.nn import global_mean_pool

    gd = GraphDataset(tu, augment=NodeDropping(0.5))
    zg = embed_dataset(torch.nn.Identity(), gd, batch_size=5, progress=False,
                       forward=lambda m, b: global_mean_pool(m(b.x), b.batch))
    ref = torch.stack([d.x.mean(0) for d in tu])
    assert torch.allclose(zg, ref, atol=1e-6)


def test_loaders_with_worker_processes(tu_dataset, rng):
    """Items cross process boundaries intact: indices, views and seeded augmentations."""
    tu, _ = tu_dataset
    seed = int(rng.integers(1000))
    ds = GraphDataset(tu, augment=(NodeDropping(0.3), AttributeMasking(0.3)), seed=seed)
    order = [[5, 0, 9], [2, 7]]
    main = [next(iter(PygLoader(ds, batch_sampler=[b]))) for b in order]
    work = list(PygLoader(ds, batch_sampler=order, num_workers=1))
    for (a1, a2), (b1, b2), b in zip(main, work, order):
        assert b1.node_index.tolist() == b2.node_index.tolist() == b
        assert torch.equal(a1.x, b1.x) and torch.equal(a2.x, b2.x) and torch.equal(a1.edge_index, b1.edge_index)
    images, _ = _digits()
    ids = ImageDataset(images[:40], A.GaussianNoise(0.1), seed=seed)
    got = list(make_loader(ids, [[3, 1], [39, 0, 2]], num_workers=1))
    assert [batch_index(b).tolist() for b in got] == [[3, 1], [39, 0, 2]]
    assert torch.equal(got[0]["views"][1][0], ids[3]["views"][1])


@pytest.mark.gpu
def test_gpu_embedding_and_graph_augment_on_device(tu_dataset):
    """CUDA path: batches follow the model to the GPU; augmentations keep graphs on their device."""
    tu, _ = tu_dataset
    dev = torch.device("cuda")
    images, _ = _digits()
    x = torch.from_numpy(images[:50])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5)).to(dev)
    z = embed_dataset(model, ImageDataset(x), batch_size=16, progress=False)
    assert z.device.type == "cuda"
    with torch.no_grad():
        assert torch.allclose(z, model(x[:, None].to(dev)), atol=1e-5)
    data = tu[0].to(dev)
    for aug in (NodeDropping(0.3), EdgePerturbation(0.3), AttributeMasking(0.3), RandomSubgraph(0.3)):
        out = aug(data, generator=torch.Generator().manual_seed(0))
        ref = aug(tu[0], generator=torch.Generator().manual_seed(0))
        assert out.edge_index.device.type == "cuda" and torch.equal(out.edge_index.cpu(), ref.edge_index)
        assert torch.equal(out.x.cpu(), ref.x)


@pytest.mark.parametrize("script, extra", [("train_images.py", []),
                                           ("train_sentences.py", ["--num-sentences", "120"]),
                                           ("train_graphs.py", ["--num-graphs", "60", "--batch-size", "16"])])
def test_examples_run(script, extra, monkeypatch, capsys):
    """The per-modality examples train a few steps end to end (in-process, --steps 3)."""
    import pathlib
    import runpy

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / script
    monkeypatch.setattr("sys.argv", [str(path), "--steps", "3", *extra])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "step    3  loss" in out and "done in" in out


def test_examples_readme_block_runs_as_written():
    """The Python block of examples/README.md is executed exactly as printed there."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "examples" / "README.md").read_text()
    blocks = re.findall(r"```python\n(.+?)```", text, re.S)
    assert len(blocks) == 1
    scope: dict = {}
    exec(compile(blocks[0], "examples/README.md", "exec"), scope)
    assert scope["sampler"].stats["batches"] == 2 * len(scope["sampler"])


@pytest.mark.parametrize("workers", [0, 2])
def test_views_change_across_epochs_with_only_the_samplers_set_epoch(workers):
    """Trap: a seeded ImageDataset gave the same views in every epoch unless dataset.set_epoch was called too.

    A graphbatch sampler's batches carry their epoch, and the adapters draw the views from it.
    """
    ds = ImageDataset(torch.rand(48, 1, 6, 6), A.GaussianNoise(0.3), seed=0)
    sampler = RWRBatchSampler(48, 8, k=4, candidates=20, embeddings=torch.randn(48, 3), seed=1)
    loader = make_loader(ds, sampler, num_workers=workers)

    def views(epoch):
        sampler.set_epoch(epoch)
        out = {}
        for batch in loader:
            for i, v in zip(batch["index"].tolist(), batch["views"][0]):
                out[i] = v
        return out

    e0, e1, e0_again = views(0), views(1), views(0)
    assert sorted(e0) == list(range(48))
    assert not any(torch.equal(e0[i], e1[i]) for i in range(48))  # new views in a new epoch
    assert all(torch.equal(e0[i], e0_again[i]) for i in range(48))  # and reproducible per epoch


def test_simclr_augment_flip_switch():
    x = torch.arange(16.0).view(1, 4, 4) / 16
    no_flip = A.simclr_augment(4, strength=0.0, flip=False)
    assert not any(isinstance(t, A.RandomHorizontalFlip) for t in no_flip.transforms)
    assert any(isinstance(t, A.RandomHorizontalFlip) for t in A.simclr_augment(4).transforms)
    with pytest.raises(TypeError, match="flip"):
        A.simclr_augment(4, flip="no")
    assert no_flip(x, generator=torch.Generator().manual_seed(0)).shape == (1, 4, 4)


def test_batch_index_refuses_a_node_index_that_pyg_offset(rng):
    """A hand-made node_index on plain Data collates [3, 7, 11] -> [3, 12, 21] and was accepted (issue 15)."""
    from torch_geometric.data import Batch, Data

    ids = rng.choice(100, 3, replace=False).tolist()
    sizes = rng.integers(2, 6, 3).tolist()
    plain = [Data(x=torch.randn(s, 2), node_index=torch.tensor([i])) for s, i in zip(sizes, ids)]
    b = Batch.from_data_list(plain)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    assert b.node_index.tolist() == (np.array(ids) + offsets).tolist()  # what PyG does
    with pytest.raises(ValueError, match="offset by PyG's collation"):
        batch_index(b)
    ok = Batch.from_data_list([attach_node_index(Data(x=torch.randn(s, 2)), i) for s, i in zip(sizes, ids)])
    assert batch_index(ok).tolist() == ids
    assert batch_index(plain[0]).tolist() == [ids[0]]  # a single Data is not collated
