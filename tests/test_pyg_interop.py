"""gnnscale's sampler inside PyG: BaseSampler for NodeLoader/LinkLoader, and trim_to_layer."""
import importlib.util

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import LinkLoader as PyGLinkLoader
from torch_geometric.loader import NodeLoader as PyGNodeLoader
from torch_geometric.nn import SAGEConv
from torch_geometric.sampler import NegativeSampling
from torch_geometric.utils import trim_to_layer

from gnnscale import Graph
from gnnscale.sampling import NeighborSampler
from gnnscale.sampling.pyg import PyGNeighborSampler


def small_data(num_nodes=80, num_edges=500, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    return Data(edge_index=edge_index, num_nodes=num_nodes, x=torch.randn(num_nodes, 6, generator=gen),
                edge_attr=torch.arange(num_edges, dtype=torch.float32), y=torch.arange(num_nodes))


class TrimmedSAGE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.convs = torch.nn.ModuleList([SAGEConv(6, 8), SAGEConv(8, 3)])

    def forward(self, x, edge_index, num_sampled_nodes=None, num_sampled_edges=None):
        for i, conv in enumerate(self.convs):
            if num_sampled_nodes is not None:
                x, edge_index, _ = trim_to_layer(i, num_sampled_nodes, num_sampled_edges, x, edge_index)
            x = conv(x, edge_index)
            if i == 0:
                x = x.relu()
        return x


def test_trim_to_layer_on_full_neighbourhoods_equals_full_graph():
    data = small_data()
    seeds = torch.tensor([5, 9, 33, 60])
    sample = NeighborSampler(Graph.from_pyg(data), [-1, -1]).sample(seeds)
    batch = sample.to_pyg(x=data.x[sample.node])
    model = TrimmedSAGE()
    with torch.no_grad():
        expected = model(data.x, data.edge_index)[seeds]  # the whole graph, by hand
        trimmed = model(batch.x, batch.edge_index, batch.num_sampled_nodes, batch.num_sampled_edges)
        untrimmed = model(batch.x, batch.edge_index)
    assert torch.allclose(trimmed[:4], expected, atol=1e-5)
    assert torch.allclose(untrimmed[:4], expected, atol=1e-5)


def test_trim_to_layer_runs_on_sampled_batches():
    data = small_data()
    sample = NeighborSampler(Graph.from_pyg(data), [3, 2]).sample(torch.arange(10))
    batch = sample.to_pyg(x=data.x[sample.node])
    with torch.no_grad():
        out = TrimmedSAGE()(batch.x, batch.edge_index, batch.num_sampled_nodes, batch.num_sampled_edges)
    # Trimming leaves the seeds and the first hop after the last layer; the seeds come first.
    assert out.shape == (10 + sample.num_sampled_nodes[1], 3) and bool(torch.isfinite(out).all())


def test_pyg_node_loader_with_gnnscale_sampler():
    data = small_data()
    loader = PyGNodeLoader(data, node_sampler=PyGNeighborSampler(data, [4, 3]), input_nodes=torch.arange(40),
                           batch_size=16, shuffle=False)
    batches = list(loader)
    assert [b.batch_size for b in batches] == [16, 16, 8]
    for batch in batches:
        assert torch.equal(batch.x, data.x[batch.n_id]) and torch.equal(batch.y, data.y[batch.n_id])
        # Edge attributes are those of the sampled edges, and the edges exist.
        assert torch.equal(batch.edge_attr, data.edge_attr[batch.e_id])
        assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
    assert batches[0].n_id[:16].tolist() == list(range(16))


def test_pyg_link_loader_with_gnnscale_sampler():
    data = small_data()
    loader = PyGLinkLoader(data, link_sampler=PyGNeighborSampler(data, [3, 2]),
                           edge_label_index=data.edge_index[:, :64], batch_size=32,
                           neg_sampling=NegativeSampling("binary", amount=1), shuffle=False)
    batch = next(iter(loader))
    assert batch.edge_label.tolist() == [1.0] * 32 + [0.0] * 32
    positives = batch.n_id[batch.edge_label_index[:, :32]]
    assert torch.equal(positives, data.edge_index[:, :32])
    assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])


@pytest.mark.skipif(importlib.util.find_spec("torch_sparse") is None,
                    reason="torch-sparse (PyG's own sampler backend) is not installed")
def test_same_sample_as_pyg_neighbor_loader():
    from torch_geometric.loader import NeighborLoader

    data = small_data()
    seeds = torch.tensor([3, 7, 11, 20, 42])
    theirs = next(iter(NeighborLoader(data, num_neighbors=[-1, -1], batch_size=5, input_nodes=seeds,
                                      shuffle=False)))
    ours = NeighborSampler(Graph.from_pyg(data), [-1, -1]).sample(seeds).to_pyg()
    # PyG orders each node's neighbours by an unstable sort, so compare per hop as sets.
    assert ours.n_id[:5].tolist() == theirs.n_id[:5].tolist()
    assert sorted(ours.n_id.tolist()) == sorted(theirs.n_id.tolist())

    def triples(batch):
        return sorted(zip(batch.n_id[batch.edge_index[0]].tolist(), batch.n_id[batch.edge_index[1]].tolist(),
                          batch.e_id.tolist()))

    assert triples(ours) == triples(theirs)


# ---------------------------------------------------------------------------------------------
# gnnscale's loader batches read as PyG's NeighborLoader / LinkNeighborLoader batches

PYG_NODE_FIELDS = ("n_id", "e_id", "edge_index", "num_sampled_nodes", "num_sampled_edges", "batch_size")


def test_node_batch_holds_the_fields_of_a_pyg_neighbor_loader_batch():
    from gnnscale.loader import NodeLoader

    data = small_data()
    loader = NodeLoader(Graph.from_pyg(data), data.x, torch.arange(10, 40), [3, 2], batch_size=16,
                        labels=data.y, shuffle=False)
    batch = next(iter(loader))
    sub = batch.subgraph
    assert torch.equal(batch.n_id, sub.node) and torch.equal(batch.e_id, sub.edge)
    assert torch.equal(batch.edge_index, sub.edge_index) and torch.equal(batch.edge_index, torch.stack([sub.row, sub.col]))
    assert batch.num_sampled_nodes == sub.num_sampled_nodes and batch.num_sampled_edges == sub.num_sampled_edges
    assert batch.batch_size == 16 and batch.n_id[:16].tolist() == list(range(10, 26))
    assert batch.num_nodes == sum(batch.num_sampled_nodes) == batch.x.size(0)
    assert batch.edge_index.size(1) == sum(batch.num_sampled_edges) == batch.num_edges
    # What PyG's batches mean by them: rows of x and y by n_id, edges of the graph by e_id, flow
    # source -> target with the seeds as the first hop's targets.
    assert torch.equal(batch.x, data.x[batch.n_id])
    assert torch.equal(batch.y[:batch.batch_size], data.y[batch.n_id[:batch.batch_size]])
    assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
    assert int(batch.edge_index[1, :batch.num_sampled_edges[0]].max()) < batch.batch_size
    # The same values as the torch_geometric Data the batch converts to.
    pyg = batch.to_pyg()
    for name in PYG_NODE_FIELDS:
        ours, theirs = getattr(batch, name), getattr(pyg, name)
        assert torch.equal(ours, theirs) if isinstance(ours, torch.Tensor) else ours == theirs, name


def test_node_batch_moves_to_a_device_in_place_as_pyg_data_does():
    from gnnscale.loader import NodeLoader

    data = small_data()
    batch = next(iter(NodeLoader(Graph.from_pyg(data), data.x, torch.arange(8), [2], batch_size=8, labels=data.y)))
    moved = batch.to("meta")  # a device every machine has: the copies are real, their contents are not
    assert moved is batch
    assert {t.device.type for t in (batch.x, batch.y, batch.edge_index, batch.n_id, batch.e_id)} == {"meta"}


def test_link_batch_holds_the_fields_of_a_pyg_link_neighbor_loader_batch():
    from gnnscale.loader import LinkLoader

    data = small_data()
    edges = data.edge_index[:, :24]
    loader = LinkLoader(Graph.from_pyg(data), data.x, edges, [3, 2], batch_size=8, shuffle=False)
    batch = next(iter(loader))
    assert torch.equal(batch.n_id, batch.subgraph.node) and torch.equal(batch.e_id, batch.subgraph.edge)
    assert torch.equal(batch.edge_index, batch.subgraph.edge_index)
    assert batch.num_sampled_nodes == batch.subgraph.num_sampled_nodes
    assert batch.num_sampled_edges == batch.subgraph.num_sampled_edges
    assert torch.equal(batch.x, data.x[batch.n_id])
    assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
    # The positives come first in edge_label_index, as local ids of the seed edges' endpoints.
    assert batch.edge_label.tolist() == [1.0] * 8 + [0.0] * 8
    assert torch.equal(batch.n_id[batch.edge_label_index[:, :8]], edges[:, :8])
    moved = batch.to("meta")
    assert moved is batch and batch.edge_label_index.is_meta and batch.edge_label.is_meta and batch.x.is_meta


def test_a_pyg_training_loop_runs_unchanged_on_node_loader_batches(data_root):
    from torch.nn import functional as F
    from torch_geometric.nn import GraphSAGE

    from gnnscale import load_dataset
    from gnnscale.loader import NodeLoader

    cora = load_dataset("cora", root=data_root)
    device = torch.device("cpu")
    torch.manual_seed(0)
    loader = NodeLoader(cora.graph, cora.features, cora.splits["train"], [10, 10], batch_size=32,
                        labels=cora.labels, shuffle=True)
    model = GraphSAGE(cora.num_features, 64, num_layers=2, out_channels=cora.num_classes, dropout=0.5).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    # The loop as PyG's NeighborLoader examples write it.
    for _ in range(15):
        model.train()
        for batch in loader:
            batch = batch.to(device)
            optimizer.zero_grad()
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
            loss = F.cross_entropy(out, batch.y[:batch.batch_size])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predictions = model(cora.features, cora.graph.edge_index()).argmax(1)
    test = cora.splits["test"]
    accuracy = (predictions[test] == cora.labels[test]).float().mean().item()
    assert accuracy >= 0.75, accuracy
