
import pytest
import torch
from scipy import stats

from gnnscale import Graph
from gnnscale.datasets import generate_synthetic
from conftest import requires_cuda
from gnnscale.sampling import LinkNeighborSampler, NegativeSampler, NeighborSampler


def reference_sample_all(graph: Graph, seeds, num_hops):
    """PyG's NeighborLoader semantics with every neighbour taken, written out plainly."""
    csc = graph.csc()
    node = list(seeds)
    local = {v: i for i, v in enumerate(node)}
    row, col, edge, num_nodes, num_edges = [], [], [], [len(node)], []
    begin = 0
    for _ in range(num_hops):
        end = len(node)
        added = 0
        for position in range(begin, end):
            v = node[position]
            for slot in range(int(csc.indptr[v]), int(csc.indptr[v + 1])):
                u = int(csc.indices[slot])
                if u not in local:
                    local[u] = len(node)
                    node.append(u)
                row.append(local[u])
                col.append(position)
                edge.append(int(csc.edge_ids[slot]))
                added += 1
        num_edges.append(added)
        num_nodes.append(len(node) - end)
        begin = end
    return node, row, col, edge, num_nodes, num_edges


def _input_edges(graph: Graph) -> torch.Tensor:
    """The edge_index the graph was built from: edge ids number its columns."""
    edges = torch.empty(2, graph.num_edges, dtype=torch.long)
    edges[:, graph.edge_ids] = graph.edge_index()
    return edges


@pytest.fixture(scope="module")
def graph():
    return generate_synthetic(3000, 30000, 4, 4, seed=1).graph


@pytest.fixture(scope="module")
def directed_graph():
    gen = torch.Generator().manual_seed(5)
    return Graph.from_edge_index(torch.randint(0, 200, (2, 3000), generator=gen), 200)


def test_full_neighbourhood_matches_reference_exactly(directed_graph):
    seeds = [3, 17, 150, 42]
    out = NeighborSampler(directed_graph, [-1, -1]).sample(torch.tensor(seeds))
    node, row, col, edge, num_nodes, num_edges = reference_sample_all(directed_graph, seeds, 2)
    assert out.node.tolist() == node
    assert out.row.tolist() == row and out.col.tolist() == col and out.edge.tolist() == edge
    assert out.num_sampled_nodes == num_nodes and out.num_sampled_edges == num_edges


@pytest.mark.parametrize("replace", [False, True])
def test_samples_are_real_edges_of_the_right_size(graph, replace):
    fanouts = [7, 3]
    out = NeighborSampler(graph, fanouts, replace=replace, seed=3).sample(torch.arange(0, 3000, 7))
    source, target = out.node[out.row], out.node[out.col]
    edge_index = graph.edge_index()
    # Every sampled edge exists, with the edge id the graph gives it.
    assert torch.equal(edge_index[0, out.edge], source) and torch.equal(edge_index[1, out.edge], target)
    in_degree = graph.degree("in")
    offset = 0
    for hop, fanout in enumerate(fanouts):
        begin = sum(out.num_sampled_nodes[:hop])
        frontier = out.node[begin:begin + out.num_sampled_nodes[hop]]
        hop_targets = out.col[offset:offset + out.num_sampled_edges[hop]]
        counts = torch.bincount(hop_targets - begin, minlength=frontier.numel())
        degree = in_degree[frontier]
        expected = torch.where(degree > 0, torch.full_like(degree, fanout), 0) if replace \
            else torch.clamp(degree, max=fanout)
        assert torch.equal(counts, expected)
        if not replace:  # no edge twice for the same target
            pairs = hop_targets * graph.num_edges + out.edge[offset:offset + out.num_sampled_edges[hop]]
            assert pairs.unique().numel() == pairs.numel()
        offset += out.num_sampled_edges[hop]
    # Local ids round-trip to global ids; nodes are unique; seeds come first.
    assert out.node.unique().numel() == out.node.numel()
    assert torch.equal(out.node[:out.batch_size], torch.arange(0, 3000, 7))


def test_same_seed_same_sample_any_thread_count(graph):
    seeds = torch.arange(0, 3000, 3)
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(NeighborSampler(graph, [5, 5]).sample(seeds, seed=11))
    finally:
        torch.set_num_threads(previous)
    other = NeighborSampler(graph, [5, 5]).sample(seeds, seed=12)
    assert torch.equal(results[0].edge, results[1].edge) and torch.equal(results[0].node, results[1].node)
    assert not torch.equal(results[0].edge, other.edge)


def _star(num_leaves, weight=None):
    # Leaves 1..n all point at node 0, so node 0's in-neighbours are the leaves.
    edge_index = torch.stack([torch.arange(1, num_leaves + 1), torch.zeros(num_leaves, dtype=torch.long)])
    return Graph.from_edge_index(edge_index, num_leaves + 1, edge_weight=weight)


@pytest.mark.parametrize("replace", [False, True])
def test_uniform_sampling_is_uniform(replace):
    sampler = NeighborSampler(_star(20), [4], replace=replace)
    counts = torch.zeros(21)
    for trial in range(3000):
        out = sampler.sample(torch.tensor([0]), seed=trial)
        counts.index_add_(0, out.node[out.row], torch.ones(out.row.numel()))
    observed = counts[1:].numpy()
    assert stats.chisquare(observed).pvalue > 1e-3


@pytest.mark.parametrize("replace", [False, True])
def test_weighted_sampling_follows_weights(replace):
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 10.0])
    sampler = NeighborSampler(_star(6, weight), [1], replace=replace, weighted=True)
    counts = torch.zeros(7)
    for trial in range(6000):
        out = sampler.sample(torch.tensor([0]), seed=trial)
        counts.index_add_(0, out.node[out.row], torch.ones(out.row.numel()))
    assert counts[5] == 0  # zero-weight edge never drawn
    observed = counts[[1, 2, 3, 4, 6]].numpy()
    expected = (weight[[0, 1, 2, 3, 5]] / weight.sum() * observed.sum()).numpy()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_weighted_without_replacement_takes_each_positive_edge_once():
    weight = torch.tensor([1.0, 0.0, 5.0, 2.0])
    out = NeighborSampler(_star(4, weight), [10], weighted=True).sample(torch.tensor([0]))
    assert sorted(out.node[out.row].tolist()) == [1, 3, 4]


def test_bad_input_is_rejected_before_the_kernel(graph):
    sampler = NeighborSampler(graph, [2])
    with pytest.raises(ValueError, match="out of range"):
        sampler.sample(torch.tensor([0, 3000]))
    with pytest.raises(ValueError, match="negative"):
        sampler.sample(torch.tensor([-1]))
    with pytest.raises(ValueError, match="empty"):
        sampler.sample(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="duplicate"):
        sampler.sample(torch.tensor([4, 4]))
    for fanouts in ([0], [-2], [], [2.5]):
        with pytest.raises(ValueError, match="fanouts"):
            NeighborSampler(graph, fanouts)
    broken = Graph(torch.tensor([0, 1, 2]), torch.tensor([1, 7]), validate=False)
    with pytest.raises(ValueError, match="out of range"):
        NeighborSampler(broken, [1])
    for bad, message in ((float("nan"), "non-finite"), (-1.0, "negative")):
        star = _star(3)
        star.edge_weight = torch.tensor([1.0, bad, 1.0])  # corrupted after construction
        with pytest.raises(ValueError, match=message):
            NeighborSampler(star, [1], weighted=True)
    with pytest.raises(ValueError, match="edge_weight"):
        NeighborSampler(_star(3), [1], weighted=True)


def test_blocks_are_csc_per_layer(directed_graph):
    out = NeighborSampler(directed_graph, [4, 3]).sample(torch.tensor([1, 2, 3]))
    first, last = out.blocks()
    assert last.num_dst == 3 and last.num_src == 3 + out.num_sampled_nodes[1]
    assert first.num_dst == last.num_src and first.num_src == out.node.numel()
    for block in (first, last):
        # Rebuild (source, target) global pairs from the CSC block and check they are edges.
        targets = torch.repeat_interleave(torch.arange(block.num_dst), block.indptr[1:] - block.indptr[:-1])
        edge_index = _input_edges(directed_graph)
        assert torch.equal(edge_index[0, block.edge_ids], out.node[block.indices])
        assert torch.equal(edge_index[1, block.edge_ids], out.node[targets])


def test_negative_sampler_rejects_true_edges(graph):
    negative = NegativeSampler(graph, "uniform", max_tries=50)
    src = torch.arange(0, 3000, 3)
    dst = negative.sample(src, 5, seed=1)
    assert dst.shape == (1000, 5)
    edges = set(map(tuple, graph.edge_index().t().tolist()))
    pairs = [(u, v) for u, row in zip(src.tolist(), dst.tolist()) for v in row]
    assert not any(pair in edges or pair[0] == pair[1] for pair in pairs)


def test_degree_negatives_follow_degree_power(graph):
    negative = NegativeSampler(graph, "degree", power=0.75, reject_edges=False)
    draws = negative.sample_nodes(400_000, seed=3)
    weight = graph.degree("in").double() ** 0.75
    # Compare on degree buckets (enough expected counts per bucket for a chi-square test).
    bucket = torch.bucketize(graph.degree("in").double(), torch.tensor([5.0, 10, 20, 40, 80]))
    observed = torch.bincount(bucket[draws], minlength=6).double()
    expected = torch.zeros(6, dtype=torch.float64).index_add_(0, bucket, weight)
    expected *= draws.numel() / expected.sum()
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3


def test_negatives_from_candidates_are_uniform_over_them_and_still_reject_edges(directed_graph):
    candidates = torch.arange(0, 200, 7)  # 29 of the 200 nodes
    negative = NegativeSampler(directed_graph, "uniform", candidates=torch.cat([candidates, candidates[:5]]),
                               max_tries=50)
    src = torch.arange(200).repeat(20)
    draws = negative.sample(src, 3, seed=4)
    assert bool(torch.isin(draws, candidates).all())
    edges = set(map(tuple, directed_graph.edge_index().t().tolist()))
    pairs = [(u, v) for u, row in zip(src.tolist(), draws.tolist()) for v in row]
    # A source whose edges cover every candidate keeps its last draw; with 29 candidates none does here.
    assert not any(pair in edges or pair[0] == pair[1] for pair in pairs)
    # Repeated candidates count once: 12,000 draws with rejection off, p-value bar 1e-3.
    plain = NegativeSampler(directed_graph, "uniform", candidates=candidates, reject_edges=False)
    observed = torch.bincount(plain.sample(src, 1, seed=5).reshape(-1), minlength=200)[candidates]
    assert int(observed.sum()) == src.numel()
    assert stats.chisquare(observed.numpy()).pvalue > 1e-3
    assert bool(torch.isin(plain.sample_nodes(5000, seed=1), candidates).all())


def test_degree_negatives_among_candidates_follow_their_degree_power(graph):
    degree = graph.degree("in").double()
    candidates = torch.nonzero(degree > 0).flatten()[::3]
    negative = NegativeSampler(graph, "degree", candidates=candidates, reject_edges=False)
    draws = negative.sample_nodes(200_000, seed=2)
    assert bool(torch.isin(draws, candidates).all())
    bucket = torch.bucketize(degree, torch.tensor([5.0, 10, 20, 40]))
    chosen = torch.zeros(graph.num_nodes, dtype=torch.float64)
    chosen[candidates] = 1.0
    expected = torch.zeros(5, dtype=torch.float64).index_add_(0, bucket, chosen * degree ** 0.75)
    expected *= draws.numel() / expected.sum()
    observed = torch.bincount(bucket[draws], minlength=5).double()
    keep = expected > 0
    assert stats.chisquare(observed[keep].numpy(), expected[keep].numpy()).pvalue > 1e-3


def test_negative_candidates_are_checked(directed_graph):
    with pytest.raises(ValueError, match="candidates holds id 200, out of range for 200 nodes"):
        NegativeSampler(directed_graph, candidates=torch.tensor([3, 200]))
    with pytest.raises(ValueError, match="candidates is empty"):
        NegativeSampler(directed_graph, candidates=torch.tensor([], dtype=torch.int64))
    isolated = Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 4)
    with pytest.raises(ValueError, match="every candidate has in-degree 0"):
        NegativeSampler(isolated, "degree", candidates=torch.tensor([2, 3]), reject_edges=False)


def test_alias_table_is_exact_for_a_small_distribution():
    from gnnscale import ops

    weight = torch.tensor([0.5, 0.0, 2.0, 1.5])
    prob, alias = ops.alias_table(weight)
    # Probability mass of each outcome from the table equals its normalised weight.
    mass = prob.clone() / 4
    mass.index_add_(0, alias, (1 - prob) / 4)
    assert torch.allclose(mass, (weight / weight.sum()).double())
    with pytest.raises(ValueError, match="all be zero"):
        ops.alias_table(torch.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        ops.alias_table(torch.tensor([1.0, -1.0]))


def test_link_sampler_labels_and_endpoints(graph):
    sampler = LinkNeighborSampler(graph, [3, 2], num_negatives=2)
    edge_index = graph.edge_index()
    src, dst = edge_index[0, :50], edge_index[1, :50]
    sample = sampler.sample(src, dst, seed=4)
    node = sample.subgraph.node
    assert sample.edge_label.tolist() == [1.0] * 50 + [0.0] * 100
    assert torch.equal(node[sample.edge_label_index[0, :50]], src)
    assert torch.equal(node[sample.edge_label_index[1, :50]], dst)
    assert torch.equal(node[sample.edge_label_index[0, 50:]], src.repeat_interleave(2))
    # Every endpoint is a seed of the subgraph.
    assert int(sample.edge_label_index.max()) < sample.subgraph.batch_size


@requires_cuda
@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("indices_on", ["device", "host"])
def test_gpu_sampler_draws_the_cpu_sample(graph, replace, indices_on):
    seeds = torch.arange(0, 3000, 5)
    for fanouts in ([5, 3], [-1, 2], [80]):
        cpu = NeighborSampler(graph, fanouts, replace=replace).sample(seeds, seed=21)
        gpu = NeighborSampler(graph, fanouts, replace=replace, device="cuda", indices_on=indices_on).sample(
            seeds, seed=21)
        for name in ("node", "row", "col", "edge"):
            assert torch.equal(getattr(cpu, name), getattr(gpu, name).cpu()), name
        assert cpu.num_sampled_nodes == gpu.num_sampled_nodes
        assert cpu.num_sampled_edges == gpu.num_sampled_edges


@requires_cuda
def test_gpu_sampler_with_int32_indices_and_loader():
    data = generate_synthetic(2000, 20000, 4, 3, seed=3, index_dtype=torch.int32)
    cpu = NeighborSampler(data.graph, [4, 4]).sample(torch.arange(100), seed=2)
    gpu = NeighborSampler(data.graph, [4, 4], device="cuda").sample(torch.arange(100), seed=2)
    assert torch.equal(cpu.edge, gpu.edge.cpu())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU is visible")
def test_cuda_sampler_without_a_gpu_says_so(graph):
    with pytest.raises(ValueError, match="no CUDA GPU"):
        NeighborSampler(graph, [2], device="cuda")
