import threading

import pytest
import torch

from conftest import requires_cuda
from gnnscale.datasets import generate_synthetic
from gnnscale.loader import LinkLoader, NodeLoader, prefetch


@pytest.fixture(scope="module")
def dataset():
    return generate_synthetic(4000, 40000, 8, 5, seed=2)


def test_node_loader_batches_cover_seeds_with_gathered_features(dataset):
    seeds = dataset.splits["train"]
    loader = NodeLoader(dataset.graph, dataset.features, seeds, [5, 3], 256, labels=dataset.labels, num_threads=2)
    seen = []
    for batch in loader:
        node = batch.subgraph.node
        assert torch.equal(batch.x, dataset.features[node])
        assert torch.equal(batch.y, dataset.labels[node[:batch.batch_size]])
        seen.append(node[:batch.batch_size])
    assert len(seen) == len(loader) == -(-seeds.numel() // 256)
    assert torch.equal(torch.sort(torch.cat(seen)).values, torch.sort(seeds).values)


def test_node_loader_is_reproducible_whatever_the_threads(dataset):
    def run(threads):
        loader = NodeLoader(dataset.graph, None, dataset.splits["train"], [4, 4], 300, seed=9, num_threads=threads)
        return [batch.subgraph.edge for batch in loader]

    serial, threaded = run(0), run(3)
    assert len(serial) == len(threaded)
    assert all(torch.equal(a, b) for a, b in zip(serial, threaded))


@pytest.mark.parametrize("cores, local_ranks, expected", [(2, None, 1), (2, "2", 0), (4, "2", 1), (1, None, 0)])
def test_default_loader_threads_leave_a_rank_with_one_core_to_its_training_step(dataset, monkeypatch, cores,
                                                                               local_ranks, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    if local_ranks is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_ranks)
    loader = NodeLoader(dataset.graph, None, dataset.splits["train"], [2], 100)
    assert loader.num_threads == expected
    assert NodeLoader(dataset.graph, None, dataset.splits["train"], [2], 100, num_threads=3).num_threads == 3


def test_epochs_reshuffle(dataset):
    loader = NodeLoader(dataset.graph, None, dataset.splits["train"], [2], 100, seed=1)
    first = next(iter(loader)).n_id[:100]
    second = next(iter(loader)).n_id[:100]
    assert not torch.equal(first, second)
    # A plain loop counts epochs from 1 itself; iterate(epoch) replays any of them.
    assert torch.equal(next(iter(loader.iterate(1))).n_id[:100], first)
    assert torch.equal(next(iter(loader.iterate(2))).n_id[:100], second)
    for epoch in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match="epoch must be an int >= 1"):
            loader.iterate(epoch)


def test_prefetch_runs_ahead_in_order():
    started = []
    gate = threading.Event()

    def prepare(i):
        started.append(i)
        if i == 0:
            gate.wait(timeout=5)
        return i * i

    results = prefetch(range(6), prepare, num_threads=2, depth=3)
    first = next(results)  # the consumer holds batch 0 while later batches are prepared
    assert first == 0 or gate.is_set()
    gate.set()
    assert [first] + list(results) == [0, 1, 4, 9, 16, 25]
    assert len(started) == 6


def test_link_loader_batches(dataset):
    edges = dataset.graph.edge_index()[:, :1000]
    loader = LinkLoader(dataset.graph, dataset.features, edges, [3, 3], 200, negative="degree", num_negatives=2)
    batch = next(iter(loader))
    node = batch.subgraph.node
    assert batch.edge_label.sum() == 200 and batch.edge_label.numel() == 600
    assert torch.equal(batch.x, dataset.features[node])
    positives = node[batch.edge_label_index[:, :200]]
    edge_set = set(map(tuple, edges.t().tolist()))
    assert all(tuple(pair) in edge_set for pair in positives.t().tolist())
    data = batch.to_pyg()
    assert data.edge_label_index.shape == (2, 600)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(seeds=torch.tensor([0, 4000])), "out of range"),
        (dict(seeds=torch.tensor([-3])), "negative"),
        (dict(seeds=torch.tensor([], dtype=torch.long)), "empty"),
        (dict(fanouts=[3, -5]), "fanouts"),
        (dict(batch_size=0), "batch_size"),
        (dict(features=torch.zeros(10, 3)), "one row per node"),
    ],
)
def test_node_loader_rejects_bad_input(dataset, kwargs, message):
    arguments = dict(graph=dataset.graph, features=None, seeds=torch.arange(10), fanouts=[2], batch_size=4)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        NodeLoader(**arguments)


def test_link_loader_rejects_bad_edges(dataset):
    with pytest.raises(ValueError, match="shape"):
        LinkLoader(dataset.graph, None, torch.zeros(3, 5, dtype=torch.long), [2], 4)
    with pytest.raises(ValueError, match="out of range"):
        LinkLoader(dataset.graph, None, torch.tensor([[0], [5000]]), [2], 4)


@requires_cuda
def test_node_loader_samples_and_gathers_onto_the_gpu(dataset):
    loader = NodeLoader(dataset.graph, dataset.features, dataset.splits["train"], [4, 2], 128,
                        labels=dataset.labels, device="cuda", sample_on_device=True, seed=3)
    cpu_loader = NodeLoader(dataset.graph, dataset.features, dataset.splits["train"], [4, 2], 128,
                            labels=dataset.labels, seed=3)
    for gpu_batch, cpu_batch in zip(loader, cpu_loader):
        assert gpu_batch.x.is_cuda and gpu_batch.subgraph.node.is_cuda
        assert torch.equal(gpu_batch.x.cpu(), cpu_batch.x)
        assert torch.equal(gpu_batch.subgraph.edge.cpu(), cpu_batch.subgraph.edge)


def test_node_loader_reads_features_from_a_feature_store_or_cache(dataset):
    from gnnscale.storage import FeatureCache, FeatureStore

    store = FeatureStore()
    store.put_tensor(dataset.features, group_name=None, attr_name="x", index=None)
    cache = FeatureCache.by_degree(store.table(None, "x"), dataset.graph, 400 * 32, device="cpu")
    for source in (store, cache):
        batch = next(iter(NodeLoader(dataset.graph, source, dataset.splits["train"], [3], 64)))
        assert torch.equal(batch.x, dataset.features[batch.subgraph.node])
    assert cache.requests > 0


def test_a_loader_reuses_feature_buffers_only_once_no_batch_refers_to_them():
    data = generate_synthetic(3_000, 24_000, 24, 3, seed=2)
    loader = NodeLoader(data.graph, data.features, torch.arange(3_000), [4, 4], 200, num_threads=1)
    kept = list(loader.iterate(1))  # every batch held: none may be written over
    views = [batch.x[5:] for batch in loader.iterate(2)]  # views alone keep buffers too
    for batch in kept:
        assert torch.equal(batch.x, data.features[batch.subgraph.node])
    assert loader._buffers.reused == 0
    second = list(loader.iterate(2))
    for view, batch in zip(views, second):
        assert torch.equal(view, data.features[batch.subgraph.node][5:])
    del kept, views, second
    pointers = set()
    for batch in loader.iterate(3):  # each batch let go of before the next is asked for
        assert torch.equal(batch.x, data.features[batch.subgraph.node])
        pointers.add(batch.x.data_ptr())
    assert loader._buffers.reused > 0 and len(pointers) < len(loader)


def test_a_buffer_ring_hands_out_a_storage_again_only_when_it_holds_the_last_reference():
    from gnnscale.loader.buffers import BufferRing

    ring = BufferRing(2)
    first = ring.empty(100, 8, torch.float32)
    address = first.data_ptr()
    view = first[10:]
    del first
    held = ring.empty(100, 8, torch.float32)
    assert held.data_ptr() != address  # the view still uses the first storage
    del view
    again = ring.empty(90, 8, torch.float32)  # smaller fits the free storage
    assert again.data_ptr() == address and ring.reused == 1
    assert ring.empty(1000, 8, torch.float32).data_ptr() not in (address, held.data_ptr())
