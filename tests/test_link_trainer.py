"""Mini-batch link prediction (LinkTask) on a community graph: ranks true edges far above random
pairs, with gnnscale's encoders and with PyG's models."""
import pytest
import torch
from torch_geometric.nn import GraphSAGE

from gnnscale import Graph
from gnnscale.datasets import LinkDataset, generate_synthetic
from gnnscale.loader import EdgePairLoader, LinkLoader
from gnnscale.train import LinkTask, Trainer, hits_at_k


def community_link_dataset(seed=0, with_features=True):
    data = generate_synthetic(2000, 16000, 16, 8, homophily=0.95, feature_signal=1.0, seed=seed)
    row, col = data.graph.edge_index()
    undirected = torch.stack([row[row < col], col[row < col]], dim=1)
    gen = torch.Generator().manual_seed(seed)
    undirected = undirected[torch.randperm(undirected.size(0), generator=gen)]
    held_out = undirected.size(0) // 10
    valid, test, train = undirected[:held_out], undirected[held_out:2 * held_out], undirected[2 * held_out:]
    graph = Graph.from_edge_index(train.t().contiguous(), 2000, symmetrize=True)
    negatives = lambda: torch.randint(0, 2000, (2000, 2), generator=gen)  # noqa: E731
    split = {"train": {"edge": train}, "valid": {"edge": valid, "edge_neg": negatives()},
             "test": {"edge": test, "edge_neg": negatives()}}
    return LinkDataset(name="communities", graph=graph, features=data.features if with_features else None,
                       edge_split=split, metric="hits@50")


def test_hits_at_k_matches_its_definition():
    negative = torch.arange(100.0)  # the 10th highest negative is 90
    assert hits_at_k(torch.tensor([95.0, 91.0, 90.0, 10.0]), negative, 10) == 0.5


# A random scorer puts about 50 / 2000 = 2.5% of positives above the 50th negative. Trained runs
# reach 0.20-0.28 across seeds (random negatives from the same community are plausible edges
# too), so the bar is six times chance.
BAR = 0.15


def test_link_task_ranks_true_edges_above_random_pairs():
    dataset = community_link_dataset()
    result = Trainer(LinkTask(dataset, "sage", fanouts=[5, 5], batch_size=1024, hidden=32), lr=0.01, epochs=8,
                     eval_every=4, progress=False).fit()
    assert result.metric == "hits@50" and result.throughput_unit == "edges/s" and result.throughput > 0
    assert result.metrics["test"] > BAR, result.metrics


def test_a_pyg_model_ranks_true_edges_above_random_pairs():
    dataset = community_link_dataset()
    torch.manual_seed(0)
    encoder = GraphSAGE(16, 32, num_layers=2, out_channels=32, dropout=0.5)
    trainer = Trainer(LinkTask(dataset, encoder, fanouts=[5, 5], batch_size=1024, hidden=32), lr=0.01, epochs=8,
                      eval_every=4, progress=False)
    assert trainer.modules["encoder"] is encoder
    result = trainer.fit()
    assert result.metrics["test"] > BAR, result.metrics


def test_featureless_nodes_get_learned_embeddings():
    dataset = community_link_dataset(with_features=False)
    trainer = Trainer(LinkTask(dataset, "gcn", fanouts=[3], batch_size=2048, hidden=16), epochs=1, progress=False)
    before = trainer.modules["embedding"].weight.detach().clone()
    trainer.fit()
    assert not torch.equal(before, trainer.modules["embedding"].weight)


def test_full_neighbourhood_training_ranks_true_edges_above_random_pairs():
    dataset = community_link_dataset()
    trainer = Trainer(LinkTask(dataset, "sage", full_graph=True, num_layers=2, batch_size=1024, hidden=32), lr=0.01,
                      grad_clip=1.0, epochs=8, eval_every=4, progress=False)
    assert trainer.task.adjacency.layout == torch.sparse_csr
    # The same bar as on sampled neighbourhoods: six times chance.
    assert trainer.fit().metrics["test"] > BAR


def test_edge_pair_batches_hold_the_link_loaders_pairs():
    """Full-neighbourhood training sees the pairs, negatives included, that sampled training sees."""
    dataset = community_link_dataset()
    edges = dataset.edge_split["train"]["edge"].t()
    pairs = EdgePairLoader(dataset.graph, edges, 500, num_negatives=2, seed=3)
    sampled = LinkLoader(dataset.graph, None, edges, [2], 500, num_negatives=2, seed=3)
    for epoch in (1, 2):  # two epochs: both reshuffle alike
        batches = list(zip(pairs.iterate(epoch), sampled.iterate(epoch), strict=True))
        assert len(batches) == len(pairs) == -(-edges.size(1) // 500)
        for plain, link in batches:
            assert torch.equal(plain.edge_label_index, link.n_id[link.edge_label_index])
            assert torch.equal(plain.edge_label, link.edge_label)
    with pytest.raises(ValueError, match="num_negatives"):
        EdgePairLoader(dataset.graph, edges, 500, num_negatives=-1)
    with pytest.raises(ValueError, match=r"\[2, num_edges\]"):
        EdgePairLoader(dataset.graph, edges.t(), 500)


@pytest.mark.parametrize("corrupt", ["target", "both"])
def test_negative_pairs_are_non_edges_with_the_chosen_sources(corrupt):
    dataset = community_link_dataset()
    graph, edges = dataset.graph, dataset.edge_split["train"]["edge"].t()
    batch = next(iter(EdgePairLoader(graph, edges, 4000, num_negatives=2, corrupt=corrupt, seed=1)))
    positives, negatives = batch.edge_label_index[:, :4000], batch.edge_label_index[:, 4000:]
    assert negatives.size(1) == 8000 and torch.equal(batch.edge_label, torch.cat([torch.ones(4000), torch.zeros(8000)]))
    existing = set(zip(*graph.edge_index().tolist()))
    assert not existing & set(zip(*negatives.tolist()))
    same_source = (negatives[0] == positives[0].repeat_interleave(2)).float().mean()
    if corrupt == "target":
        assert same_source == 1.0
    else:  # random sources: a match with the positive's source is a 1-in-2000 coincidence
        assert same_source < 0.01 and negatives[0].unique().numel() > 1500


def test_link_task_rejects_inconsistent_settings():
    dataset = community_link_dataset()
    with pytest.raises(ValueError, match="num_layers applies to full_graph"):
        LinkTask(dataset, fanouts=[5, 5], num_layers=3)
    with pytest.raises(ValueError, match="grad_clip"):
        Trainer(LinkTask(dataset), grad_clip=0.0)
    with pytest.raises(ValueError, match="corrupt must be one of"):
        LinkTask(dataset, corrupt="source")  # refused with the options, before anything is built
    with pytest.raises(ValueError, match="negative must be 'uniform' or 'degree'"):
        LinkTask(dataset, negative="zipf")
    with pytest.raises(ValueError, match="LinkTask: unknown option.s. grad_clip; the options are fanouts"):
        LinkTask(dataset, grad_clip=1.0)  # an optimiser option: it goes to the Trainer


@pytest.mark.parametrize("model, full_graph", [("sage", False), ("gcn", False), ("sage", True)])
def test_link_task_resumes_exactly(tmp_path, model, full_graph):
    dataset = community_link_dataset(seed=1)

    def trainer(**loop):
        task = LinkTask(dataset, model, fanouts=[3], full_graph=full_graph, batch_size=2048, hidden=16)
        return Trainer(task, **{"epochs": 3, "seed": 5, "grad_clip": 1.0, "progress": False, **loop})

    straight = trainer().fit()
    trainer(epochs=1, checkpoint_dir=tmp_path).fit()
    resumed = trainer(checkpoint_dir=tmp_path, resume=True).fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert resumed.metrics == straight.metrics


@pytest.mark.slow
def test_ogbl_ddi_graphsage_reaches_hits_at_20(data_root, tmp_path):
    """OGB's full-batch GraphSAGE recipe for ogbl-ddi (learned 256-d node embeddings, 2 layers on
    full neighbourhoods, 2-layer MLP decoder, dropout 0.5, lr 0.005, 64k edges per step, random
    non-edges as negatives, gradient norms clipped at 1) for 60 epochs instead of OGB's 200, with
    ogb's Evaluator. About 37 s per epoch on 2 cores, 38 minutes in all: a marked slow test, run
    with `make test-slow`. Measured: best validation at epoch 60, valid 0.629, test 0.530."""
    from gnnscale.datasets import load_dataset

    ddi = load_dataset("ogbl-ddi", root=data_root)
    task = LinkTask(ddi, "sage", full_graph=True, num_layers=2, predictor_layers=2, batch_size=64 * 1024,
                    corrupt="both", num_threads=2)
    result = Trainer(task, grad_clip=1.0, epochs=60, eval_every=5, log_path=tmp_path / "ddi.jsonl",
                     progress=False).fit()
    print(result.metrics, result.seconds_per_epoch)
    assert result.metric == "hits@20"
    # The OGB leaderboard's full-batch GraphSAGE (200 epochs): 0.539 +- 0.047 test Hits@20. Test
    # Hits@20 on ddi swings between evaluations (0.35 at epoch 50, 0.44 at 55), hence the margin.
    assert result.metrics["test"] >= 0.40, result.metrics
