"""Any PyG model in gnnscale: sampled forward with per-hop trimming, depth, and full-neighbourhood
outputs equal to the model's own forward on the whole graph."""
import pytest
import torch
from torch_geometric.nn import GAT, GCN, GIN, GATConv, GCNConv, GraphSAGE, SAGEConv

from gnnscale import Graph
from gnnscale.nn import GNNEncoder, full_neighbourhood_outputs, num_layers_of, pyg_models, sampled_forward
from gnnscale.sampling import NeighborSampler
from gnnscale.storage import UnifiedTensor

IN, OUT = 5, 3


def awkward_graph(num_nodes=60, num_edges=300, seed=0):
    """A directed random graph with self loops (one node with two), duplicate edges and two
    isolated nodes: the cases where a degree or a loop is easy to count wrong."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    extra = torch.tensor([[3, 3, 7], [3, 3, 7]])
    edge_index = torch.cat([edge_index, extra, edge_index[:, :5]], dim=1)
    graph = Graph.from_edge_index(edge_index, num_nodes + 2)
    return graph, torch.randn(num_nodes + 2, IN, generator=gen)


class TwoConvs(torch.nn.Module):
    """A model of none of the known classes, stating its depth as PyG's examples do."""

    def __init__(self, num_layers=2):
        super().__init__()
        self.num_layers = num_layers
        self.convs = torch.nn.ModuleList([SAGEConv(IN, 8), GATConv(8, OUT, heads=2, concat=False)])

    def forward(self, x, edge_index):
        return self.convs[1](self.convs[0](x, edge_index).relu(), edge_index)


class Undeclared(TwoConvs):
    def __init__(self):
        super().__init__()
        del self.num_layers


class HandMadeGCN(torch.nn.Module):
    """GCN layers outside PyG's BasicGNN: their outputs depend on the sources' full degrees."""

    num_layers = 2

    def __init__(self):
        super().__init__()
        self.first, self.second = GCNConv(IN, 8), GCNConv(8, OUT)

    def forward(self, x, edge_index):
        return self.second(self.first(x, edge_index).relu(), edge_index)


MODELS = {
    "pyg-sage": lambda: GraphSAGE(IN, 8, 2, OUT),
    "pyg-gcn": lambda: GCN(IN, 8, 3, OUT),
    "pyg-gcn-improved": lambda: GCN(IN, 8, 2, OUT, improved=True),
    "pyg-gcn-without-loops": lambda: GCN(IN, 8, 2, OUT, add_self_loops=False),
    "pyg-gat": lambda: GAT(IN, 8, 2, OUT, heads=2),
    "pyg-gin": lambda: GIN(IN, 8, 2, OUT),
    "pyg-sage-jk-cat-batch-norm": lambda: GraphSAGE(IN, 8, 3, OUT, jk="cat", norm="batch_norm"),
    "pyg-gcn-jk-lstm": lambda: GCN(IN, 8, 2, OUT, jk="lstm"),
    "pyg-sage-graph-layer-norm": lambda: GraphSAGE(IN, 8, 2, OUT, norm="layer_norm"),
    "pyg-sage-target-to-source": lambda: GraphSAGE(IN, 8, 2, OUT, flow="target_to_source"),
    "gnnscale-sage": lambda: GNNEncoder("sage", IN, 8, OUT, num_layers=2),
    "gnnscale-gcn": lambda: GNNEncoder("gcn", IN, 8, OUT, num_layers=3),
    "gnnscale-gat": lambda: GNNEncoder("gat", IN, 8, OUT, num_layers=2),
    "other-declared-depth": TwoConvs,
    "other-gcn": HandMadeGCN,
}
# Outputs that mix more than each node's in-neighbourhood: only the whole graph gives them.
NEED_THE_WHOLE_GRAPH = {"pyg-sage-graph-layer-norm", "pyg-sage-target-to-source", "other-gcn"}


@pytest.mark.parametrize("name", list(MODELS))
def test_full_neighbourhood_outputs_equal_the_full_graph_forward(name, monkeypatch):
    if name not in NEED_THE_WHOLE_GRAPH:  # these must get there over neighbourhoods
        monkeypatch.setattr(pyg_models, "_whole_graph_outputs", None)
    graph, x = awkward_graph()
    torch.manual_seed(0)
    model = MODELS[name]()
    if name == "pyg-sage-jk-cat-batch-norm":  # running statistics that are not the initial ones
        model.train()
        model(x, graph.edge_index())
    model.eval()
    with torch.no_grad():
        expected = model(x, graph.edge_index())
    outputs = full_neighbourhood_outputs(model, graph, x, 17, "cpu")  # batches that split the graph
    assert outputs.shape == expected.shape
    torch.testing.assert_close(outputs, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:rows of")
def test_gcn_layers_are_weighted_with_the_whole_graphs_degrees():
    graph, x = awkward_graph()
    torch.manual_seed(0)
    model = GCN(IN, 8, 2, OUT).eval()
    conv = model.convs[0]
    with torch.no_grad():
        expected = model(x, graph.edge_index())
        # GCNConv normalising a one-hop sample itself counts the sources' degrees in the sample.
        sample = NeighborSampler(graph, [-1]).sample(torch.arange(20), seed=0)
        own = conv(x[sample.node], sample.edge_index)[:20]
        assert not torch.allclose(own, conv(x, graph.edge_index())[:20], atol=1e-3)
    outputs = full_neighbourhood_outputs(model, graph, UnifiedTensor(x), 9, "cpu")
    torch.testing.assert_close(outputs, expected, atol=1e-5, rtol=1e-5)
    assert all(conv.normalize for conv in model.convs)  # switched back on after evaluation


def test_full_neighbourhood_outputs_restore_each_submodules_mode():
    graph, x = awkward_graph()
    model = GraphSAGE(IN, 8, 2, OUT, dropout=0.5).train()
    model.convs[0].eval()
    first = full_neighbourhood_outputs(model, graph, x, 32, "cpu")
    assert torch.equal(first, full_neighbourhood_outputs(model, graph, x, 32, "cpu"))  # no dropout
    assert model.training and not model.convs[0].training and model.convs[1].training


def test_a_model_of_unknown_depth_is_refused_where_its_depth_is_needed():
    graph, x = awkward_graph()
    model = Undeclared()
    assert num_layers_of(model) is None
    with pytest.raises(ValueError, match="number of layers is unknown"):
        full_neighbourhood_outputs(model, graph, x, 16, "cpu")


def test_full_neighbourhood_outputs_refuse_bad_input():
    graph, x = awkward_graph()
    model = GraphSAGE(IN, 8, 2, OUT)
    with pytest.raises(ValueError, match="batch_size"):
        full_neighbourhood_outputs(model, graph, x, 0, "cpu")
    with pytest.raises(ValueError, match="one row per node"):
        full_neighbourhood_outputs(model, graph, x[:-1], 16, "cpu")
    with pytest.raises(ValueError, match="gnnscale.Graph"):
        full_neighbourhood_outputs(model, graph.edge_index(), x, 16, "cpu")


def test_num_layers_of_known_and_unknown_models():
    assert num_layers_of(GNNEncoder("sage", IN, 8, OUT, num_layers=3)) == 3
    assert num_layers_of(GraphSAGE(IN, 8, 4, OUT)) == 4
    assert num_layers_of(GAT(IN, 8, 2, OUT)) == 2
    assert num_layers_of(torch.nn.DataParallel(GCN(IN, 8, 2, OUT))) == 2  # seen through the wrapper
    assert num_layers_of(TwoConvs(num_layers=2)) == 2
    assert num_layers_of(Undeclared()) is None
    assert num_layers_of(torch.nn.Linear(3, 3)) is None


def sampled_batch(fanouts=(3, 2), num_seeds=10):
    graph, x = awkward_graph()
    sample = NeighborSampler(graph, list(fanouts)).sample(torch.arange(num_seeds), seed=1)
    return sample, x[sample.node]


@pytest.mark.parametrize("make", [lambda: GraphSAGE(IN, 8, 2, OUT), lambda: GNNEncoder("sage", IN, 8, OUT, 2)],
                         ids=["pyg-graphsage", "gnnscale-encoder"])
def test_trimmed_sampled_forward_gives_the_untrimmed_seed_outputs(make):
    sample, x = sampled_batch()
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        untrimmed = model(x, sample.edge_index)
        trimmed = sampled_forward(model, x, sample.edge_index, sample.num_sampled_nodes, sample.num_sampled_edges)
    # Trimming ran: the last layer computed only the seeds and the first hop.
    assert untrimmed.size(0) == sample.num_nodes
    assert trimmed.size(0) == sum(sample.num_sampled_nodes[:2]) < sample.num_nodes
    torch.testing.assert_close(trimmed[:sample.batch_size], untrimmed[:sample.batch_size], atol=1e-5, rtol=1e-5)


def test_sampled_forward_calls_other_models_plainly():
    sample, x = sampled_batch()
    model = TwoConvs().eval()
    with torch.no_grad():
        out = sampled_forward(model, x, sample.edge_index, sample.num_sampled_nodes, sample.num_sampled_edges)
        assert torch.equal(out, model(x, sample.edge_index))


def test_sampled_forward_reads_a_models_signature_once(monkeypatch):
    sample, x = sampled_batch()
    model = GraphSAGE(IN, 8, 2, OUT)
    reads = []
    signature = pyg_models.inspect.signature

    def counted(function, *args, **kwargs):
        reads.append(function)
        return signature(function, *args, **kwargs)

    monkeypatch.setattr(pyg_models.inspect, "signature", counted)
    for _ in range(3):
        sampled_forward(model, x, sample.edge_index, sample.num_sampled_nodes, sample.num_sampled_edges)
    assert reads.count(model.forward) == 1


def test_sampled_forward_refuses_hop_counts_that_do_not_fit_the_batch():
    sample, x = sampled_batch()
    model = GraphSAGE(IN, 8, 2, OUT)
    nodes, edges = sample.num_sampled_nodes, sample.num_sampled_edges
    with pytest.raises(ValueError, match="one entry more"):
        sampled_forward(model, x, sample.edge_index, nodes[:-1], edges)
    with pytest.raises(ValueError, match="x has"):
        sampled_forward(model, x[:-1], sample.edge_index, nodes, edges)
    with pytest.raises(ValueError, match="edge_index has"):
        sampled_forward(model, x, sample.edge_index[:, 1:], nodes, edges)
    with pytest.raises(ValueError, match="both"):
        sampled_forward(model, x, sample.edge_index, nodes, None)
    with pytest.raises(ValueError, match="non-negative ints"):
        sampled_forward(model, x, sample.edge_index, [float(n) for n in nodes], edges)


def test_sampled_forward_refuses_a_model_deeper_than_the_sample():
    sample, x = sampled_batch(fanouts=(3, 2))
    with pytest.raises(ValueError, match="3 message-passing layers but the batch was sampled over 2 hop"):
        sampled_forward(GraphSAGE(IN, 8, 3, OUT), x, sample.edge_index, sample.num_sampled_nodes,
                        sample.num_sampled_edges)


def test_full_neighbourhood_outputs_are_float32_inside_a_bfloat16_autocast_region():
    graph, x = awkward_graph()
    x = x.bfloat16()  # half-precision storage, as a feature table may hold it
    torch.manual_seed(0)
    model = GNNEncoder("gcn", IN, 8, OUT, num_layers=2).eval()
    with torch.no_grad():
        expected = model(x.float(), graph.edge_index())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = full_neighbourhood_outputs(model, graph, x, 16, "cpu")
    assert outputs.dtype == torch.float32
    torch.testing.assert_close(outputs, expected, atol=1e-5, rtol=1e-5)
