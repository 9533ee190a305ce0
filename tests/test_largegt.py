"""LargeGT: token sampling and feature propagation against references, the token table and its
cache, the EMA codebook (also across gloo ranks), resume, the runner, and accuracy on Cora."""
import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import stats

from gnnscale import Graph, load_dataset, ops
from gnnscale.programs.main import main as cli_main
from gnnscale.datasets import generate_synthetic
from gnnscale.nn import EMACodebook, LargeGT
from gnnscale.sampling import TokenSampler
from gnnscale.storage import TokenTable, propagate_features
from gnnscale.train import LargeGTTask, Trainer


def random_graph(num_nodes=60, num_edges=240, seed=0, index_dtype=torch.int64):
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(num_nodes, (2, num_edges), generator=gen)
    return Graph.from_edge_index(edges, num_nodes, symmetrize=True, index_dtype=index_dtype)


def neighbourhood_reference(graph, node, hops):
    """Every node within ``hops`` hops of ``node``, the node itself excluded."""
    indptr, indices = graph.indptr.tolist(), graph.indices.tolist()
    reached, frontier = set(), {node}
    for _ in range(hops):
        frontier = {int(v) for u in frontier for v in indices[indptr[u]:indptr[u + 1]]}
        reached |= frontier
    reached.discard(node)
    return reached


def normalized_adjacency_reference(graph):
    n = graph.num_nodes
    a = torch.zeros(n, n, dtype=torch.float64)
    a.index_put_((graph.row(), graph.indices.long()), torch.ones(graph.num_edges, dtype=torch.float64),
                 accumulate=True)  # repeated edges count as often as they appear
    a += torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_all_neighbours_within_two_hops_when_they_fit(index_dtype):
    graph = random_graph(index_dtype=index_dtype)
    sampled = ops.hop_token_sample(graph.indptr, graph.indices, torch.arange(60), 59, [-1, -1], seed=3)
    for node in range(60):
        expected = sorted(neighbourhood_reference(graph, node, 2))
        row = sampled[node].tolist()
        assert row == expected + [-1] * (59 - len(expected))


def test_bounded_samples_are_distinct_neighbours_and_chunking_does_not_change_them():
    graph = random_graph(200, 1600, seed=1)
    sampler = TokenSampler(graph, num_tokens=12, fanouts=(4, 3), seed=5)
    full = sampler.sample(torch.arange(200))
    assert torch.equal(torch.cat([sampler.sample(torch.arange(s, min(s + 37, 200))) for s in range(0, 200, 37)]),
                       full)
    for node in range(200):
        row = [v for v in full[node].tolist() if v >= 0]
        assert len(set(row)) == len(row) and node not in row
        assert set(row) <= neighbourhood_reference(graph, node, 2)
    assert not torch.equal(sampler.sample(torch.arange(200), round=1), full)


def test_token_nodes_are_uniform_over_the_neighbourhood():
    # A node with 30 distinct nodes within two hops, 5 drawn per round: each is drawn with
    # probability 1/6; the counts over 3000 rounds must pass a chi-square test.
    graph = random_graph(80, 200, seed=2)
    node = max(range(80), key=lambda v: len(neighbourhood_reference(graph, v, 2)))
    candidates = sorted(neighbourhood_reference(graph, node, 2))
    sampler = TokenSampler(graph, num_tokens=6, fanouts=(-1, -1), seed=11)
    counts = dict.fromkeys(candidates, 0)
    rounds = 3000
    for r in range(rounds):
        for v in sampler.sample(torch.tensor([node]), round=r)[0].tolist():
            counts[v] += 1
    expected = rounds * 5 / len(candidates)
    assert stats.chisquare(list(counts.values()), [expected] * len(candidates)).pvalue > 1e-3


def test_gcn_propagate_matches_dense_reference_also_between_column_blocks():
    graph = random_graph(50, 300, seed=4, index_dtype=torch.int32)
    x = torch.randn(50, 7)
    adjacency = normalized_adjacency_reference(graph)
    inv_sqrt_degree = (graph.degree().float() + 1).rsqrt()
    out = ops.gcn_propagate(graph.indptr, graph.indices, inv_sqrt_degree, x)
    torch.testing.assert_close(out.double(), adjacency @ x.double(), atol=1e-5, rtol=1e-5)
    table = propagate_features(graph, x, hops=2)
    torch.testing.assert_close(table.double(), torch.cat([x.double(), adjacency @ x.double(),
                                                          adjacency @ adjacency @ x.double()], dim=1),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="overlap"):
        ops.gcn_propagate(graph.indptr, graph.indices, inv_sqrt_degree, table[:, :7], table[:, 3:10])


def test_token_table_gathers_the_rows_of_each_token_node_and_masks_padding():
    graph = random_graph(60, 120, seed=6)
    x = torch.randn(60, 5)
    table = TokenTable.build(graph, x, num_tokens=8, hops=2, fanouts=(3, 2), seed=1)
    nodes = torch.tensor([4, 17, 4, 59])
    tokens, mask = table.gather(nodes)
    assert tokens.shape == (4, 24, 5) and mask.shape == (4, 24)
    hop_rows = propagate_features(graph, x, 2)
    neighbours = table.neighbours.data.long()
    for i, node in enumerate(nodes.tolist()):
        token_nodes = [node] + neighbours[node].tolist()
        for t, token_node in enumerate(token_nodes):
            for hop in range(3):
                if token_node < 0:
                    assert mask[i, 3 * t + hop]
                else:
                    assert not mask[i, 3 * t + hop]
                    torch.testing.assert_close(tokens[i, 3 * t + hop], hop_rows[token_node, 5 * hop:5 * hop + 5])


def test_a_later_sampling_round_draws_what_a_table_built_for_it_would_hold():
    graph = random_graph(80, 400, seed=12)
    x = torch.randn(80, 4)
    table = TokenTable.build(graph, x, num_tokens=6, fanouts=(4, 3), seed=2)
    nodes = torch.tensor([3, 41, 3, 79, 0])
    round_two = table.sampler.sample(torch.arange(80), round=2)
    assert not torch.equal(round_two, table.neighbours.data.long())  # a fresh draw...
    tokens, mask = table.gather(nodes, round=2)
    hop_rows = propagate_features(graph, x, 2)
    for i, node in enumerate(nodes.tolist()):
        for t, token_node in enumerate([node] + round_two[node].tolist()):
            assert bool(mask[i, 3 * t]) == (token_node < 0)
            if token_node >= 0:  # ...of the rows a table built for round 2 holds
                torch.testing.assert_close(tokens[i, 3 * t:3 * t + 3].reshape(-1), hop_rows[token_node])
    assert torch.equal(table.neighbours.data.long(), table.sampler.sample(torch.arange(80), round=0))


def test_token_cache_is_reused_and_keyed_by_settings(tmp_path, monkeypatch):
    graph = random_graph(60, 200, seed=7)
    x = torch.randn(60, 4)
    first = TokenTable.build(graph, x, num_tokens=6, fanouts=(3, 3), cache_dir=tmp_path)
    import gnnscale.storage.tokens as tokens_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached table should have been opened")

    monkeypatch.setattr(tokens_module, "propagate_features", must_not_run)
    again = TokenTable.build(graph, x, num_tokens=6, fanouts=(3, 3), cache_dir=tmp_path)
    assert torch.equal(again.hop_features.data, first.hop_features.data)
    assert torch.equal(again.neighbours.data, first.neighbours.data)
    monkeypatch.undo()
    TokenTable.build(graph, x, num_tokens=6, fanouts=(3, 3), seed=9, cache_dir=tmp_path)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("tokens-")]) == 2


def test_padded_tokens_do_not_change_the_output():
    graph = random_graph(40, 60, seed=8)
    table = TokenTable.build(graph, torch.randn(40, 6), num_tokens=10, fanouts=(-1, -1))
    tokens, mask = table.gather(torch.arange(40))
    assert mask.any()
    model = LargeGT(6, 16, 3, num_centroids=8).eval()
    model.global_attention.codebook.update(torch.randn(64, 16))
    garbage = tokens.clone()
    garbage[mask] = 1e3 * torch.randn(int(mask.sum()), 6)
    with torch.no_grad():
        torch.testing.assert_close(model(garbage, mask), model(tokens, mask))


def test_hop_means_average_each_hop_over_the_node_and_its_present_token_nodes():
    graph = random_graph(40, 60, seed=9)
    features = torch.randn(40, 6)
    table = TokenTable.build(graph, features, num_tokens=10, fanouts=(-1, -1))
    nodes = torch.arange(40)
    tokens, mask = table.gather(nodes)
    assert mask.any() and not mask.all(1).any()
    means = LargeGT(6, 16, 3, use_global=False).local._hop_means(tokens, mask)
    hop_tables = propagate_features(graph, features, hops=2).view(40, 3, 6)
    sampled = table.neighbours.gather(nodes).to(torch.int64)
    for node in range(40):
        members = torch.cat([torch.tensor([node]), sampled[node][sampled[node] >= 0]])
        expected = hop_tables[members].double().mean(0).reshape(-1)
        torch.testing.assert_close(means[node].double(), expected)


def test_ema_codebook_follows_the_moving_averages():
    codebook = EMACodebook(3, 2, decay=0.9)
    codebook.centroids.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    codebook.cluster_size.fill_(1.0)
    codebook.cluster_sum.copy_(codebook.centroids)
    codebook.initialized.fill_(True)
    z = torch.tensor([[1.0, 0.0], [9.0, 1.0], [11.0, -1.0], [0.0, 1.0]])
    codebook.update(z)
    size = 0.9 * torch.ones(3) + 0.1 * torch.tensor([2.0, 2.0, 0.0])
    total = 0.9 * torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]) + 0.1 * torch.tensor(
        [[1.0, 1.0], [20.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(codebook.cluster_size, size)
    torch.testing.assert_close(codebook.centroids, total / size[:, None])


def _codebook_rank(rank, world_size, init_file, z, result_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # different local randomness: the codebook must not depend on it
    codebook = EMACodebook(4, 3, decay=0.8)
    for step in range(3):
        codebook.update(z[step].chunk(world_size)[rank])
    if rank == 0:
        torch.save(codebook.state_dict(), result_file)
    dist.destroy_process_group()


def test_codebook_statistics_are_all_reduced_across_ranks(tmp_path):
    z = torch.randn(3, 40, 3)
    mp.spawn(_codebook_rank, args=(2, str(tmp_path / "init"), z, str(tmp_path / "ranks.pt")), nprocs=2)
    distributed = torch.load(tmp_path / "ranks.pt")
    # One process seeing both ranks' batches, starting from the centroids rank 0 drew from its half.
    single = EMACodebook(4, 3, decay=0.8)
    torch.manual_seed(0)
    single.centroids.copy_(z[0][:20][torch.randint(20, (4,))])
    single.cluster_size.fill_(1.0)
    single.cluster_sum.copy_(single.centroids)
    single.initialized.fill_(True)
    for step in range(3):
        single.update(z[step])
    for name, value in single.state_dict().items():
        torch.testing.assert_close(distributed[name], value)


def small_dataset():
    return generate_synthetic(600, 4000, 12, 4, homophily=0.8, feature_signal=0.3, seed=3)


def test_resumed_run_with_resampling_ends_where_an_uninterrupted_run_ends(tmp_path):
    data = small_dataset()

    def trainer(**loop):
        task = LargeGTTask(data, num_tokens=6, fanouts=(4, 3), hidden=16, num_centroids=16, batch_size=64,
                           resample_every=1)
        return Trainer(task, **{"epochs": 4, "seed": 5, "progress": False, **loop})

    straight = trainer().fit()
    trainer(epochs=2, checkpoint_dir=tmp_path).fit()
    resumed = trainer(checkpoint_dir=tmp_path, resume=True).fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert resumed.metrics == straight.metrics


def test_training_draws_fresh_token_nodes_every_resample_every_epochs():
    data = small_dataset()

    def same_tokens(first, second):
        return all(torch.equal(a.tokens, b.tokens) for a, b in zip(first, second, strict=True))

    every_two = LargeGTTask(data, num_tokens=6, fanouts=(4, 3), hidden=16, num_centroids=8, resample_every=2)
    fixed = LargeGTTask(data, num_tokens=6, fanouts=(4, 3), hidden=16, num_centroids=8, resample_every=None)
    for task in (every_two, fixed):
        Trainer(task, epochs=1, progress=False)
    # Epochs 1 and 2 draw from sampling round 0 (the stored token nodes), epochs 3 and 4 from round 1.
    for epoch, sampling_round in ((1, 0), (2, 0), (3, 1), (4, 1)):
        loader = every_two.loader
        assert same_tokens(every_two.batches(epoch), loader.iterate(epoch, round=sampling_round))
        assert not same_tokens(every_two.batches(epoch), loader.iterate(epoch, round=1 - sampling_round))
    for epoch in (1, 5):
        assert same_tokens(fixed.batches(epoch), fixed.loader.iterate(epoch, round=0))


def test_evaluation_averages_the_class_probabilities_of_several_token_draws():
    data = small_dataset()
    trainer = Trainer(LargeGTTask(data, num_tokens=6, fanouts=(4, 3), hidden=16, num_centroids=8, eval_rounds=2),
                      epochs=1, progress=False)
    trainer.fit()
    nodes = torch.arange(data.graph.num_nodes)
    trainer.model.eval()
    with torch.no_grad():
        draws = [trainer.model(*trainer.task.table.gather(nodes, round=r)).softmax(1) for r in (0, 1)]
    assert not torch.allclose(draws[0], draws[1])
    torch.testing.assert_close(trainer.task.inference().exp(), (draws[0] + draws[1]) / 2, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="eval_rounds"):
        LargeGTTask(data, num_tokens=6, eval_rounds=0)


def test_largegt_trains_with_adamw_by_default():
    data = small_dataset()
    trainer = Trainer(LargeGTTask(data, num_tokens=4, fanouts=(3, 2), hidden=16, num_centroids=8), epochs=1,
                      progress=False)
    assert isinstance(trainer.optimizer, torch.optim.AdamW) and trainer.optimizer.defaults["lr"] == 1e-3
    assert trainer.fingerprint()["task"] == "LargeGTTask"


def test_runner_trains_largegt_and_rejects_a_link_dataset(tmp_path, capsys):
    code = cli_main(["bench", "ogb", "--dataset", "synthetic-arxiv", "--scale", "0.005", "--model", "largegt",
                     "--epochs", "2", "--num-tokens", "8", "--codebook", "32", "--hidden", "32", "--quiet",
                     "--token-cache", str(tmp_path / "tokens"), "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "synthetic-arxiv_largegt.json").read_text())
    assert report["options"]["num_tokens"] == 8 and 0.0 <= report["summary"]["test"]["mean"] <= 1.0
    assert report["options"]["optimizer"] == "adamw"
    assert any(p.name.startswith("tokens-") for p in (tmp_path / "tokens").iterdir())
    assert cli_main(["bench", "ogb", "--dataset", "cora", "--model", "sage", "--num-tokens", "8"]) == 2
    assert "apply to --model largegt only" in capsys.readouterr().err


def test_largegt_on_cora_reaches_the_bar(data_root):
    cora = load_dataset("cora", root=data_root)
    accuracies = [Trainer(LargeGTTask(cora, **CORA_TASK), **CORA_TRAINING, seed=seed, progress=False)
                  .fit().metrics["test"] for seed in range(3)]
    assert sum(accuracies) / 3 >= 0.78, accuracies


CORA_TASK = dict(num_tokens=15, hidden=64, num_centroids=64, batch_size=32, dropout=0.5)
CORA_TRAINING = dict(weight_decay=0.05, lr=0.002, epochs=40, eval_every=5)  # evaluation costs more than training


def test_positional_encoding_feeds_the_global_module():
    data = small_dataset()
    positional = torch.randn(data.graph.num_nodes, 8)
    trainer = Trainer(LargeGTTask(data, num_tokens=4, fanouts=(3, 2), hidden=16, num_centroids=8,
                                  positional=positional), epochs=1, progress=False)
    trainer.fit()
    batch = next(iter(trainer.task.loader))
    trainer.model.eval()
    with torch.no_grad():
        with_encoding = trainer.model(batch.tokens, batch.mask, positional[batch.nodes])
        shifted = trainer.model(batch.tokens, batch.mask, positional[batch.nodes] + 1.0)
        with pytest.raises(ValueError, match="positional"):
            trainer.model(batch.tokens, batch.mask)
    assert not torch.allclose(with_encoding, shifted)
    with pytest.raises(ValueError, match="positional must be"):
        LargeGTTask(data, positional=torch.randn(5, 8))
