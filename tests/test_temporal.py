"""TemporalGraph, the temporal neighbour sampler, node memory, the TGN attention, PRES, the
streaming model (save/load) and TGN's accuracy on the JODIE Wikipedia stream."""
import pytest
import torch
from scipy import stats

from conftest import requires_cuda
from gnnscale import TemporalGraph, ops
from gnnscale.programs.main import main
from gnnscale.datasets import TemporalDataset, load_dataset
from gnnscale.loader import TemporalLoader
from gnnscale.nn import MemoryTrend, NodeMemory, TemporalAttentionEmbedding, TemporalLinkModel
from gnnscale.sampling import TemporalNeighborSampler
from gnnscale.train import TemporalTask, Trainer


def random_stream(num_nodes=30, num_events=400, seed=0, features=0):
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(num_nodes, (num_events,), generator=generator)
    dst = torch.randint(num_nodes, (num_events,), generator=generator)
    # Integer times with ties, as in real streams.
    t = torch.sort(torch.randint(0, num_events // 2, (num_events,), generator=generator)).values.double()
    edge = torch.randn(num_events, features, generator=generator) if features else None
    return src, dst, t, edge


def brute_force_visible(src, dst, t, node, time, limit):
    """Events of ``node`` (either endpoint) strictly before ``time`` and with id < ``limit``."""
    return [(int(dst[e]) if int(src[e]) == node else int(src[e]), e, float(t[e])) for e in range(len(src))
            if node in (int(src[e]), int(dst[e])) and float(t[e]) < time and e < limit]


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_most_recent_neighbours_match_brute_force(index_dtype):
    src, dst, t, _ = random_stream()
    graph = TemporalGraph(src, dst, t)
    csr = graph.csr()
    generator = torch.Generator().manual_seed(1)
    nodes = torch.randint(graph.num_nodes, (200,), generator=generator)
    times = torch.randint(0, 220, (200,), generator=generator).double()
    limits = torch.randint(0, 450, (200,), generator=generator)
    for limit in (None, limits):
        got_nodes, got_edges, got_times = ops.temporal_neighbor_sample(
            csr.indptr, csr.neighbors.to(index_dtype), csr.edge_ids, csr.edge_times, nodes, times, 7,
            event_limit=limit)
        for i in range(nodes.numel()):
            visible = brute_force_visible(src, dst, t, int(nodes[i]), float(times[i]),
                                          len(src) if limit is None else int(limit[i]))[-7:]
            expected_nodes = [v[0] for v in visible] + [-1] * (7 - len(visible))
            expected_edges = [v[1] for v in visible] + [-1] * (7 - len(visible))
            assert got_nodes[i].tolist() == expected_nodes
            assert got_edges[i].tolist() == expected_edges
            assert got_times[i, :len(visible)].tolist() == [v[2] for v in visible]


def test_uniform_neighbours_are_distinct_visible_events_and_reproducible():
    src, dst, t, _ = random_stream()
    graph = TemporalGraph(src, dst, t)
    sampler = TemporalNeighborSampler(graph, k=5, strategy="uniform", seed=3)
    nodes = torch.arange(graph.num_nodes).repeat(4)
    times = torch.full((nodes.numel(),), 150.0)
    sample = sampler.sample(nodes, times)
    again = sampler.sample(nodes, times)
    assert torch.equal(sample.edge_ids, again.edge_ids)
    for i in range(nodes.numel()):
        visible = {v[1] for v in brute_force_visible(src, dst, t, int(nodes[i]), 150.0, len(src))}
        chosen = sample.edge_ids[i][sample.mask[i]].tolist()
        assert len(chosen) == min(5, len(visible)) and len(set(chosen)) == len(chosen)
        assert set(chosen) <= visible and chosen == sorted(chosen)  # chronological


def test_uniform_neighbours_are_uniform():
    # Node 0 has 20 visible events; each draw of 4 should include every event with probability 1/5.
    n = 20
    graph = TemporalGraph(torch.zeros(n, dtype=torch.int64), torch.arange(1, n + 1), torch.arange(n).double())
    sampler = TemporalNeighborSampler(graph, k=4, strategy="uniform", seed=0)
    draws = 4000
    sample = sampler.sample(torch.zeros(draws, dtype=torch.int64), torch.full((draws,), 1e9))
    observed = torch.bincount(sample.edge_ids.reshape(-1), minlength=n).numpy()
    assert observed.sum() == 4 * draws
    assert stats.chisquare(observed).pvalue > 1e-3


def test_temporal_graph_grows_and_checks_its_input():
    src, dst, t, _ = random_stream(num_events=100)
    graph = TemporalGraph(src[:60], dst[:60], t[:60])
    ids = graph.append(src[60:], dst[60:], t[60:])
    assert ids.tolist() == list(range(60, 100))
    whole = TemporalGraph(src, dst, t)
    for a, b in zip(vars(graph.csr()).values(), vars(whole.csr()).values()):
        assert torch.equal(a, b)
    graph.append(torch.tensor([40]), torch.tensor([41]), torch.tensor([float(t[-1])]))
    assert graph.num_nodes == 42 and graph.csr().indptr.numel() == 43
    with pytest.raises(ValueError, match="before the last event"):
        graph.append(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="time order"):
        TemporalGraph(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        TemporalGraph(torch.tensor([0]), torch.tensor([1]), torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="negative"):
        TemporalGraph(torch.tensor([-1]), torch.tensor([1]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="edge_features"):
        TemporalGraph(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.0]), torch.zeros(2, 3))


def reference_attention(module, memory, query_rows, neighbor_rows, mask, dt, edge):
    """TGN's attention written out: keys and values projected per interaction."""
    own = memory[query_rows]
    heads, head_dim = module.heads, module.head_dim
    query = module.query(torch.cat([own, module.time_encoder(memory.new_zeros(len(own)))], 1))
    x = torch.cat([memory[neighbor_rows], module.time_encoder(dt), edge], 2)
    key, value = module.key(x), module.value(x)
    out = memory.new_zeros(len(own), heads * head_dim)
    for q in range(len(own)):
        for h in range(heads):
            part = slice(h * head_dim, (h + 1) * head_dim)
            if not mask[q].any():
                continue
            logits = (key[q, :, part] @ query[q, part]) / head_dim ** 0.5
            weights = torch.softmax(logits.masked_fill(~mask[q], float("-inf")), 0)
            out[q, part] = weights @ value[q, :, part]
    return module.merge(torch.cat([out, own], 1))


@pytest.mark.parametrize("edge_dim", [0, 3])
def test_factored_attention_equals_per_interaction_projections(edge_dim):
    torch.manual_seed(0)
    module = TemporalAttentionEmbedding(8, 6, edge_dim, 12, heads=3, dropout=0.1).eval()
    memory = torch.randn(10, 8)
    query_rows = torch.tensor([0, 3, 5, 9])
    neighbor_rows = torch.randint(10, (4, 5))
    mask = torch.rand(4, 5) > 0.3
    mask[2] = False  # a node without earlier interactions
    dt = torch.rand(4, 5) * 100
    edge = torch.randn(4, 5, edge_dim)
    got = module(memory, query_rows, neighbor_rows, mask, dt, edge)
    expected = reference_attention(module, memory, query_rows, neighbor_rows, mask, dt, edge)
    assert torch.allclose(got, expected, atol=1e-5)


def attention_operands(dtype, queries=7, k=5, heads=3, width=9, rows=11, seed=0):
    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(rows, width, generator=generator, dtype=dtype)
    index = torch.randint(rows, (queries, k), generator=generator)
    index[torch.rand(queries, k, generator=generator) < 0.3] = -1  # padding
    index[0, :3] = 4  # one row read several times by one query
    per_query = torch.randn(queries, heads, width, generator=generator, dtype=dtype)
    weights = torch.randn(queries, k, heads, generator=generator, dtype=dtype)
    return table, index, per_query, weights


def test_gather_dot_and_weighted_sum_match_dense_gathers():
    table, rows, vectors, weights = attention_operands(torch.float32)
    gathered = table[rows.clamp_min(0)] * (rows >= 0).unsqueeze(2)  # [Q, k, W], zero on padding
    expected_dot = torch.einsum("qkw,qhw->qkh", gathered, vectors)
    expected_sum = torch.einsum("qkh,qkw->qhw", weights, gathered)
    assert torch.allclose(ops.gather_dot(table, rows, vectors), expected_dot, atol=1e-5)
    assert torch.allclose(ops.gather_weighted_sum(table, rows, weights), expected_sum, atol=1e-5)


def test_gather_dot_and_weighted_sum_gradients():
    table, rows, vectors, weights = attention_operands(torch.float64)
    table.requires_grad_(), vectors.requires_grad_(), weights.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ops.gather_dot(a, rows, b), (table, vectors))
    assert torch.autograd.gradcheck(lambda a, b: ops.gather_weighted_sum(a, rows, b), (table, weights))



def time_encoding_reference(dt, frequency, phase):
    return torch.cos(dt.double().unsqueeze(1) * frequency.double() + phase.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_encoding_is_the_cosine_of_the_exact_angle(dtype):
    generator = torch.Generator().manual_seed(0)
    # Gaps of a month-long stream in seconds and TGN's frequencies: angles up to millions of radians.
    dt = torch.cat([torch.zeros(1), torch.rand(999, generator=generator, dtype=torch.float64) * 3e6])
    frequency = (1.0 / 10 ** torch.linspace(0, 9, 100, dtype=torch.float64)).to(dtype)
    phase = (torch.randn(100, generator=generator, dtype=torch.float64)).to(dtype)
    got = ops.time_encode(dt, frequency, phase)
    assert got.dtype == dtype and got.shape == (1000, 100)
    expected = time_encoding_reference(dt, frequency, phase)
    assert (got.double() - expected).abs().max() < (1e-6 if dtype == torch.float32 else 1e-8)
    # Gradients in both parameters: sum over events of -sin(angle) * grad (times dt for the frequency).
    weights = torch.randn(1000, 100, generator=generator, dtype=torch.float64)
    grads = []
    for encode in (ops.time_encode, time_encoding_reference):
        parameters = [frequency.clone().requires_grad_(), phase.clone().requires_grad_()]
        (encode(dt, *parameters).double() * weights).sum().backward()
        grads.append([p.grad.double() for p in parameters])
    for got, expected in zip(*grads):
        scale = expected.abs().max()
        assert (got - expected).abs().max() < (1e-5 if dtype == torch.float32 else 1e-10) * scale



@requires_cuda
def test_time_encoding_on_cuda_equals_the_cpu_kernel():
    generator = torch.Generator().manual_seed(1)
    dt = torch.rand(500, generator=generator, dtype=torch.float64) * 3e6
    frequency = (1.0 / 10 ** torch.linspace(0, 9, 64)).requires_grad_()
    phase = torch.randn(64, generator=generator).requires_grad_()
    cuda_parameters = [frequency.detach().cuda().requires_grad_(), phase.detach().cuda().requires_grad_()]
    cpu, gpu = ops.time_encode(dt, frequency, phase), ops.time_encode(dt.cuda(), *cuda_parameters)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-6)
    weights = torch.randn(500, 64, generator=generator)
    (cpu * weights).sum().backward(), (gpu * weights.cuda()).sum().backward()
    for host, device in zip((frequency, phase), cuda_parameters):
        assert torch.allclose(device.grad.cpu(), host.grad, rtol=1e-4, atol=1e-4 * float(host.grad.abs().max()))

def test_time_encoding_rejects_bad_operands():
    frequency, phase = torch.ones(4), torch.zeros(4)
    with pytest.raises(ValueError, match="dt must be a 1-D floating"):
        ops.time_encode(torch.ones(3, dtype=torch.int64), frequency, phase)
    with pytest.raises(ValueError, match="same length"):
        ops.time_encode(torch.ones(3), frequency, torch.zeros(5))
    with pytest.raises(ValueError, match="not differentiable in dt"):
        ops.time_encode(torch.ones(3, requires_grad=True), frequency, phase)

@requires_cuda
def test_gather_ops_on_cuda_equal_the_cpu_kernels():
    table, rows, vectors, weights = attention_operands(torch.float64)
    for op, per_query in ((ops.gather_dot, vectors), (ops.gather_weighted_sum, weights)):
        cpu_inputs = [table.clone().requires_grad_(), per_query.clone().requires_grad_()]
        gpu_inputs = [x.detach().cuda().requires_grad_() for x in cpu_inputs]
        cpu, gpu = op(cpu_inputs[0], rows, cpu_inputs[1]), op(gpu_inputs[0], rows.cuda(), gpu_inputs[1])
        assert torch.allclose(gpu.cpu(), cpu)
        cpu.sum().backward(), gpu.sum().backward()
        for x, y in zip(cpu_inputs, gpu_inputs):
            assert torch.allclose(y.grad.cpu(), x.grad)
    empty = table[:0].cuda()
    assert ops.gather_dot(empty, torch.full((2, 3), -1).cuda(), vectors[:2].cuda()).eq(0).all()


def test_gather_ops_reject_bad_operands():
    table, rows, vectors, weights = attention_operands(torch.float32)
    with pytest.raises(ValueError, match="out of range"):
        ops.gather_dot(table, rows.clamp_min(0) + 100, vectors)
    with pytest.raises(ValueError, match="rows must be"):
        ops.gather_dot(table, rows.int(), vectors)
    with pytest.raises(ValueError, match="vectors must be"):
        ops.gather_dot(table, rows, vectors[:, :, :4])
    with pytest.raises(ValueError, match="weights must have the table's dtype"):
        ops.gather_weighted_sum(table, rows, weights.double())


@pytest.mark.parametrize("edge_dim", [0, 3])
def test_factored_attention_gradients_equal_the_reference(edge_dim):
    torch.manual_seed(1)
    module = TemporalAttentionEmbedding(8, 6, edge_dim, 12, heads=3, dropout=0.0).double()
    memory = torch.randn(10, 8, dtype=torch.float64, requires_grad=True)
    query_rows = torch.tensor([0, 3, 5, 9, 3])
    neighbor_rows = torch.randint(10, (5, 4))
    mask = torch.rand(5, 4) > 0.3
    mask[2] = False
    dt = torch.rand(5, 4, dtype=torch.float64) * 100
    edge = torch.randn(5, 4, edge_dim, dtype=torch.float64)
    weights = torch.randn(5, 12, dtype=torch.float64)
    grads = []
    for forward in (module, lambda *args: reference_attention(module, *args)):
        module.zero_grad()
        memory.grad = None
        (forward(memory, query_rows, neighbor_rows, mask, dt, edge) * weights).sum().backward()
        grads.append([memory.grad.clone()] + [p.grad.clone() for p in module.parameters()])
    for got, expected in zip(*grads):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("aggregator", ["last", "mean"])
def test_memory_applies_pending_messages_with_the_gru(aggregator):
    torch.manual_seed(0)
    memory = NodeMemory(5, memory_dim=4, time_dim=3, aggregator=aggregator)
    memory.memory = torch.randn(5, 4)
    memory.last_update = torch.tensor([0.0, 1.0, 0.0, 2.0, 0.0], dtype=torch.float64)
    before = memory.memory.clone()
    # Node 1 takes part in two events of the batch, node 3 in one.
    src, dst, t = torch.tensor([1, 3]), torch.tensor([4, 1]), torch.tensor([5.0, 7.0], dtype=torch.float64)
    memory.store_messages(src, dst, t, None, torch.device("cpu"))

    def raw(node, other, time):
        dt = torch.tensor([time - float(memory.last_update[node])])
        return torch.cat([before[node], before[other], memory.time_encoder(dt)[0]])

    expected_mail = {1: [raw(1, 4, 5.0), raw(1, 3, 7.0)], 3: [raw(3, 1, 7.0)], 4: [raw(4, 1, 5.0)]}
    read = memory.read(torch.tensor([0, 1, 3]), torch.device("cpu"))
    assert read.pending.tolist() == [1, 2]
    for row, node in ((1, 1), (2, 3)):
        mail = expected_mail[node]
        message = mail[-1] if aggregator == "last" else torch.stack(mail).mean(0)
        expected = memory.updater(message.unsqueeze(0), before[node].unsqueeze(0))[0]
        assert torch.allclose(read.updated[row], expected, atol=1e-6)
    assert torch.equal(read.updated[0], before[0])
    assert read.last_update.tolist() == [0.0, 7.0, 7.0]


@pytest.mark.parametrize("aggregator", ["last", "mean"])
def test_committed_memory_starts_an_empty_mailbox(aggregator):
    torch.manual_seed(0)
    memory = NodeMemory(4, memory_dim=3, time_dim=2, aggregator=aggregator)
    cpu = torch.device("cpu")
    memory.store_messages(torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([1.0, 2.0]), None, cpu)
    read = memory.read(torch.tensor([0]), cpu)
    memory.commit(torch.tensor([0]), read.updated, read.last_update)
    committed = memory.memory.clone()
    memory.store_messages(torch.tensor([0]), torch.tensor([3]), torch.tensor([5.0]), None, cpu)
    # Only the message stored after the commit is pending, whatever the aggregator.
    dt = torch.tensor([5.0 - 2.0])
    message = torch.cat([committed[0], committed[3], memory.time_encoder(dt)[0]])
    expected = memory.updater(message.unsqueeze(0), committed[:1])[0]
    read = memory.read(torch.tensor([0]), cpu)
    assert torch.allclose(read.updated[0], expected, atol=1e-6)
    assert read.last_update.tolist() == [5.0]


def test_memory_trend_learns_the_change_of_each_node():
    for kind in ("gmm", "ema"):
        trend = MemoryTrend(3, 4, kind)
        steady = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 3.0, 3.0]])
        for _ in range(200):
            trend.observe(torch.tensor([0, 2]), steady + 0.01 * torch.randn(2, 4))
        predicted = trend.predict(torch.tensor([0, 1, 2]))
        assert torch.allclose(predicted[0], steady[0], atol=0.05), kind
        assert torch.allclose(predicted[2], steady[1], atol=0.05), kind
        assert predicted[1].abs().max() < 0.05, kind  # never observed: no change expected


def small_dataset(num_events=600, features=0):
    src, dst, t, edge = random_stream(num_nodes=40, num_events=num_events, features=features)
    train_end, valid_end = int(0.7 * num_events), int(0.85 * num_events)
    return TemporalDataset("stream", src, dst, t, edge, None, 40, {
        "train": torch.arange(train_end), "valid": torch.arange(train_end, valid_end),
        "test": torch.arange(valid_end, num_events)})


def test_pres_with_gamma_one_and_no_coherence_changes_nothing():
    dataset = small_dataset()
    results = []
    for pres in (False, True):
        task = TemporalTask(dataset, "tgn", batch_size=50, memory_dim=16, time_dim=16, embedding_dim=16, pres=pres,
                            pres_gamma=1.0, pres_learn_gamma=False, pres_coherence=0.0)
        trainer = Trainer(task, epochs=2, progress=False)
        results.append(trainer.fit().history)
    assert [row["loss"] for row in results[0]] == [row["loss"] for row in results[1]]



def stream_graph(features=0):
    dataset = small_dataset(features=features)
    return TemporalGraph.from_dataset(dataset, torch.arange(dataset.num_events))


@pytest.mark.parametrize("in_batch_visible", [True, False])
def test_queries_see_only_events_before_their_own(in_batch_visible):
    graph = stream_graph()
    loader = TemporalLoader(graph, 100, start=300, stop=500, num_negatives=2, in_batch_visible=in_batch_visible)
    for batch in loader:
        # Queries: sources, destinations, negatives, each in event order.
        own_event = torch.cat([batch.event_ids, batch.event_ids, batch.event_ids.repeat_interleave(2)])
        neighborhood = batch.neighborhood
        used = neighborhood.edge_ids[neighborhood.mask]
        assert bool((neighborhood.edge_ids < own_event.unsqueeze(1)).all())  # never the event itself or a later one
        assert bool((used >= int(batch.event_ids[0])).any()) == in_batch_visible
        nodes, _, negatives = batch.split(neighborhood.nodes[neighborhood.query_rows])
        assert torch.equal(nodes, batch.src) and torch.equal(negatives, batch.negatives)


def test_loader_batches_the_range_in_time_order():
    graph = stream_graph(features=3)
    loader = TemporalLoader(graph, 64, start=100, stop=400, num_negatives=3, num_neighbors=4)
    batches = list(loader.iterate(1))
    assert len(loader) == len(batches) == 5 and [b.num_events for b in batches] == [64] * 4 + [44]
    assert torch.equal(torch.cat([b.event_ids for b in batches]), torch.arange(100, 400))
    for batch in batches:
        ids = batch.event_ids
        assert torch.equal(batch.src, graph.src[ids]) and torch.equal(batch.t, graph.t[ids])
        assert torch.equal(batch.edge_features, graph.edge_features[ids])
        assert batch.negatives.shape == (ids.numel(), 3)
        neighborhood = batch.neighborhood
        assert neighborhood.mask.shape == (5 * ids.numel(), 4)
        expected = graph.edge_features[neighborhood.edge_ids.clamp_min(0)] * neighborhood.mask.unsqueeze(2)
        assert torch.equal(neighborhood.edge_features, expected)
    # Without neighbours (JODIE, replay) only the queries' own rows.
    jodie = next(iter(TemporalLoader(graph, 64, num_neighbors=0)))
    assert not jodie.neighborhood.has_neighbors
    assert torch.equal(jodie.neighborhood.nodes[jodie.neighborhood.query_rows][:64], graph.src[:64])


def draws_of(loader, epoch):
    return [(batch.negatives, batch.neighborhood.edge_ids) for batch in loader.iterate(epoch)]


def test_negatives_are_a_function_of_seed_epoch_and_batch():
    graph = stream_graph()
    options = dict(num_negatives=2, strategy="uniform", num_neighbors=3, seed=11)
    loader = TemporalLoader(graph, 50, stop=400, num_threads=2, **options)
    draws_of(loader, 1), draws_of(loader, 2)
    third = draws_of(loader, 3)
    # The same from a fresh loader that starts at epoch 3 (a resumed run), prepared in this thread.
    resumed = draws_of(TemporalLoader(graph, 50, stop=400, num_threads=0, **options), 3)
    for (negatives, neighbours), (again, neighbours_again) in zip(third, resumed):
        assert torch.equal(negatives, again) and torch.equal(neighbours, neighbours_again)
    other_epoch = draws_of(loader, 4)
    assert not any(torch.equal(a[0], b[0]) for a, b in zip(third, other_epoch))
    other_seed = draws_of(TemporalLoader(graph, 50, stop=400, **dict(options, seed=12)), 3)
    assert not any(torch.equal(a[0], b[0]) for a, b in zip(third, other_seed))
    assert not torch.equal(third[0][0], third[1][0])  # batches of one epoch draw apart


def test_negatives_are_uniform_over_the_destinations():
    graph = stream_graph()
    destinations = torch.tensor([1, 4, 5, 9, 13, 20, 21, 22, 30, 38])
    loader = TemporalLoader(graph, 60, destinations=destinations, num_negatives=5, num_neighbors=1, seed=3)
    draws = torch.cat([batch.negatives.reshape(-1) for epoch in range(1, 5) for batch in loader.iterate(epoch)])
    assert draws.numel() == 4 * 5 * graph.num_events
    assert bool(torch.isin(draws, destinations).all())
    observed = torch.bincount(draws, minlength=graph.num_nodes)[destinations]
    # 12,000 draws over 10 destinations: uniform unless p < 1e-3.
    assert stats.chisquare(observed.numpy()).pvalue > 1e-3


def test_loader_refuses_bad_arguments():
    graph = stream_graph()
    for size in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            TemporalLoader(graph, size)
    for start, stop in ((0, 601), (-1, 10), (300, 300), (400, 200), (600, None)):
        with pytest.raises(ValueError, match=r"event range .* is empty or outside the graph's events \[0, 600\)"):
            TemporalLoader(graph, 10, start=start, stop=stop)
    with pytest.raises(ValueError, match="start must be an int"):
        TemporalLoader(graph, 10, start=1.0)
    with pytest.raises(ValueError, match="destinations holds id 40, out of range for 40 nodes"):
        TemporalLoader(graph, 10, destinations=torch.tensor([3, 40]))
    with pytest.raises(ValueError, match="destinations is empty"):
        TemporalLoader(graph, 10, destinations=torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match="num_negatives must be an int >= 0"):
        TemporalLoader(graph, 10, num_negatives=-1)
    with pytest.raises(ValueError, match="num_neighbors must be an int >= 0"):
        TemporalLoader(graph, 10, num_neighbors=-2)
    with pytest.raises(ValueError, match="strategy must be one of"):
        TemporalLoader(graph, 10, strategy="latest")
    with pytest.raises(ValueError, match="graph must be a TemporalGraph"):
        TemporalLoader(graph.static_graph(), 10)
    with pytest.raises(ValueError, match="epoch must be an int >= 1"):
        TemporalLoader(graph, 10).iterate(0)


def test_the_model_embeds_the_loaders_neighbourhoods_and_samples_nothing(monkeypatch):
    graph = stream_graph(features=3)
    model = TemporalLinkModel(graph, memory_dim=8, time_dim=8, embedding_dim=8).eval()
    kept = [name for module in model.modules() for name, value in vars(module).items()
            if isinstance(value, TemporalNeighborSampler)]
    assert kept == []
    batches = list(TemporalLoader(graph, 100, stop=300, **model.config.loader_options()))

    def no_sampling(*args, **kwargs):
        raise AssertionError("forward sampled neighbours itself")

    monkeypatch.setattr(TemporalNeighborSampler, "sample", no_sampling)
    with torch.no_grad():
        for batch in batches:
            out = model(batch)
            assert out.positive.shape == (100,) and out.negative.shape == (100, 1)
            model.commit(out)
    without = next(iter(TemporalLoader(graph, 100, num_neighbors=0)))
    with pytest.raises(ValueError, match="TGN embeds from sampled neighbours"):
        model(without)


def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    dataset = small_dataset()
    options = dict(batch_size=50, memory_dim=8, time_dim=8, embedding_dim=8, strategy="uniform")

    def task():
        return TemporalTask(dataset, "tgn", **options)

    straight = Trainer(task(), epochs=2, progress=False).fit()
    Trainer(task(), epochs=1, checkpoint_dir=tmp_path, progress=False).fit()
    resumed = Trainer(task(), epochs=2, checkpoint_dir=tmp_path, resume=True, progress=False).fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert resumed.metrics == straight.metrics and resumed.metric == "ap"

@pytest.mark.parametrize("model", ["tgn", "jodie"])
def test_saved_model_scores_identically_and_streams_on_identically(tmp_path, model):
    dataset = small_dataset(features=3)
    trainer = Trainer(TemporalTask(dataset, model, batch_size=64, memory_dim=16, time_dim=16, embedding_dim=16,
                                   pres=True), epochs=1, progress=False)
    trainer.fit()
    original = trainer.model
    original.save(tmp_path / "model.pt")
    loaded = TemporalLinkModel.load(tmp_path / "model.pt").eval()
    src, dst = torch.tensor([0, 5, 7]), torch.tensor([3, 2, 39])
    now = float(dataset.t[-1]) + 1
    assert torch.equal(original.score(src, dst, now), loaded.score(src, dst, now))
    for key, value in original.memory.state().items():
        assert torch.equal(value, loaded.memory.state()[key])
    new = (torch.tensor([1, 2, 41]), torch.tensor([2, 3, 0]), torch.tensor([now, now + 1, now + 2]),
           torch.randn(3, 3))
    original.observe(*new)
    loaded.observe(*new)
    assert loaded.graph.num_nodes == 42
    later = now + 10
    assert torch.equal(original.score(src, dst, later), loaded.score(src, dst, later))
    assert torch.equal(original.embed(torch.tensor([41]), later), loaded.embed(torch.tensor([41]), later))
    (tmp_path / "other.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot be read"):
        TemporalLinkModel.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="before the last event"):
        original.observe(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.0]), torch.zeros(1, 3))
    seen = original.graph.num_events
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        original.observe(torch.tensor([0]), torch.tensor([1]), torch.tensor([later]), torch.zeros(1, 3), batch_size=0)
    assert original.graph.num_events == seen  # a refused call adds nothing


def test_trainer_rejects_bad_settings():
    dataset = small_dataset()
    with pytest.raises(ValueError, match="batch_size"):
        TemporalTask(dataset, batch_size=0)
    with pytest.raises(ValueError, match="model must be one of"):
        TemporalTask(dataset, "transformer")
    with pytest.raises(ValueError, match="new_node_fraction"):
        TemporalTask(dataset, new_node_fraction=1.5)
    with pytest.raises(ValueError, match="TemporalTask: unknown option.s. fanouts"):
        TemporalTask(dataset, fanouts=[10])


def test_tgn_on_wikipedia_reaches_high_precision(data_root):
    # TGN reports 0.985 with the 172-dim edge features this copy lacks. With 10% of the later nodes
    # held out, batch 200 and 3 epochs measure 0.966 (inductive 0.965; 5 epochs: 0.973 and 0.968);
    # threaded gradient sums vary in their last bits between runs, so the bars leave room.
    torch.set_num_threads(2)
    wikipedia = load_dataset("wikipedia", root=data_root)
    result = Trainer(TemporalTask(wikipedia, "tgn", batch_size=200), epochs=3, progress=False).fit()
    assert result.metrics["test"] >= 0.96, result.metrics
    assert result.metrics["test_inductive"] >= 0.95, result.metrics
    assert result.throughput_unit == "events/s" and result.throughput > 0


def test_temporal_command_writes_metrics_and_plot(data_root, tmp_path):
    code = main(["temporal", "--root", str(data_root), "--max-events", "3000", "--batch-size", "100,400",
                 "--epochs", "1", "--memory-dim", "16", "--mrr-negatives", "9", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    import json

    report = json.loads((tmp_path / "temporal_wikipedia-first3000_tgn.json").read_text())
    assert [row["batch_size"] for row in report["runs"]] == [100, 400]
    assert all(0.0 < row["test_mrr"] <= 1.0 and 0.0 < row["test"] <= 1.0 for row in report["runs"])
    assert (tmp_path / "temporal_wikipedia-first3000_tgn_ap.png").stat().st_size > 0
    assert main(["temporal", "--dataset", "cora", "--root", str(data_root), "--quiet"]) == 2


def _snap_stream(path, num_events=2000, num_nodes=80, seed=0):
    """A unipartite ``src dst timestamp`` file with a header: each node meets its next three."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(num_nodes, (num_events,), generator=generator)
    dst = (src + torch.randint(1, 4, (num_events,), generator=generator)) % num_nodes
    t = torch.sort(torch.randint(0, 10 * num_events, (num_events,), generator=generator)).values
    path.write_text("src dst timestamp\n" + "".join(f"{a} {b} {c}\n" for a, b, c in
                                                    zip(src.tolist(), dst.tolist(), t.tolist())))
    return src, dst


def test_temporal_command_trains_on_a_temporal_edge_list_file(tmp_path, capsys):
    import json
    import math

    src, dst = _snap_stream(tmp_path / "stream.txt")
    largest = int(max(src.max(), dst.max()))
    code = main(["temporal", "--dataset", str(tmp_path / "stream.txt"), "--max-events", "1500", "--epochs", "1",
                 "--batch-size", "200", "--memory-dim", "8", "--mrr-negatives", "0", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "temporal_stream-first1500_tgn.json").read_text())
    # one id space, ids as written (not shifted as a bipartite file's destinations would be)
    assert (report["dataset"], report["num_nodes"], report["num_events"]) == ("stream-first1500", largest + 1, 1500)
    (run,) = report["runs"]
    assert math.isfinite(run["test"]) and 0.0 < run["test"] <= 1.0 and run["batch_size"] == 200
    assert report["provenance"]["config"]["bipartite"] == "auto"
    assert (tmp_path / "out" / "temporal_stream-first1500_tgn_ap.png").stat().st_size > 0


def test_temporal_bipartite_option(tmp_path, capsys):
    from gnnscale.programs.temporal import load_events

    src, dst = _snap_stream(tmp_path / "stream.csv", num_events=300)
    assert load_events(str(tmp_path / "stream.csv")).num_nodes == int(max(src.max(), dst.max())) + 1
    forced = load_events(str(tmp_path / "stream.csv"), bipartite="yes")  # destinations after the sources
    assert forced.num_nodes == int(src.max()) + 1 + int(dst.max()) + 1
    assert torch.equal(forced.src, src) and torch.equal(forced.dst, dst + int(src.max()) + 1)
    jodie = tmp_path / "jodie.csv"
    jodie.write_text("user_id,item_id,timestamp,state_label\n0,0,1,0\n1,0,2,0\n0,1,3,1\n")
    assert load_events(str(jodie)).dst.tolist() == [2, 2, 3]  # JODIE: items after the users
    assert load_events(str(jodie), bipartite="no").dst.tolist() == [0, 0, 1]
    assert main(["temporal", "--dataset", "wikipedia", "--bipartite", "yes", "--device", "cpu"]) == 2
    assert "--bipartite yes: applies to an event file" in capsys.readouterr().err
