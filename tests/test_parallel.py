"""Parallel full-graph training: layouts, per-chunk plans, and graph-parallel / pipelined / hybrid
training on 2 and 4 local gloo ranks, checked against single-process full-graph training."""
import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from gnnscale.datasets import load_dataset
from gnnscale.nn.deep_gnn import DeepGNN, dropout_generators
from gnnscale.parallel import (ParallelConfig, Propagation, build_partition_plan, choose_layout, normalized_adjacency,
                               partition_graph, partition_halos, plan_layouts, predict_bytes)
from gnnscale.train import ParallelFullGraphTask, Trainer
from gnnscale.distributed.launch import spawn
from gnnscale.parallel.planner import stage_parameter_bytes

from conftest import PROJECT, real_data_root

SMALL = dict(num_layers=4, hidden=16)
ACCURACY = dict(num_layers=8, hidden=64, dropout=0.6, lr=0.005, epochs=100, eval_every=5)
ENGINE_OPTIONS = {field.name for field in dataclasses.fields(ParallelConfig)}
WEIGHT_DECAY = ParallelFullGraphTask.default_optimizer.weight_decay
ACCURACY_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def cora(data_root):
    return load_dataset("cora", root=data_root)


def trainer_for(dataset, options) -> Trainer:
    """The Trainer of a ParallelFullGraphTask: ``options`` holds the engine's, the loop's and the
    optimiser's options in one dict."""
    engine = {k: v for k, v in options.items() if k in ENGINE_OPTIONS}
    loop = {k: v for k, v in options.items() if k not in ENGINE_OPTIONS}
    return Trainer(ParallelFullGraphTask(dataset, **engine), progress=False, **loop)


# ---------------------------------------------------------------------- single-process references
def reference_training(dataset, options):
    """Plain full-graph training of the same model: (loss per epoch, gradients of the last epoch).
    One thread, as each spawned rank uses: a GEMM split over threads sums in another order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _reference_training(dataset, options)
    finally:
        torch.set_num_threads(threads)


def _reference_training(dataset, options):
    config = ParallelConfig(**{k: v for k, v in options.items() if k in ENGINE_OPTIONS})
    dtype = getattr(torch, config.dtype)
    torch.manual_seed(options["seed"])
    model = DeepGNN(dataset.features.size(1), config.hidden, dataset.num_classes, config.num_layers,
                    conv=config.conv, dropout=config.dropout, norm=config.norm).to(dtype)
    adjacency = normalized_adjacency(dataset.graph, "gcn" if config.conv == "gcn" else "mean", dtype=dtype)
    propagate = Propagation(adjacency.indptr, adjacency.indices, adjacency.values, adjacency.num_nodes)
    optimizer = torch.optim.Adam(model.parameters(), lr=options["lr"], weight_decay=WEIGHT_DECAY)
    generators = dropout_generators(options["seed"], config.num_layers)
    x, train = dataset.features.to(dtype), torch.sort(dataset.splits["train"]).values
    losses = []
    for _ in range(options["epochs"]):
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x, propagate, generators).index_select(0, train), dataset.labels[train])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad.clone() for name, p in model.named_parameters()}


def _config(**overrides) -> dict:
    return {**dict(SMALL, epochs=3, dropout=0.0, seed=3, chunks=1, lr=0.01), **overrides}


# ---------------------------------------------------------------------- ranks
def _train_on_ranks(root, configs):
    """Each config trained on the ranks of this process group: result, stage and gradients."""
    dataset = load_dataset("cora", root=root)
    runs = []
    for options in configs:
        trainer = trainer_for(dataset, options)
        result = trainer.fit()
        engine = trainer.task.engine
        grads = {name: p.grad.clone() for name, p in trainer.modules.named_parameters() if p.grad is not None}
        runs.append({"result": result, "grads": grads, "stage": engine.stage, "halo_rows": engine.halo_rows,
                     "traffic": trainer.task.traffic()})
    return runs


def _merged_grads(ranks, index):
    merged = {}
    for rank in ranks:
        merged.update(rank[index]["grads"])
    return merged


def _predicted(dataset, run, options):
    config = ParallelConfig(**{k: v for k, v in options.items() if k in ENGINE_OPTIONS})
    itemsize = 8 if config.dtype == "float64" else 4
    sizes = stage_parameter_bytes(dataset.num_features, config.hidden, dataset.num_classes, config.num_layers,
                                  config.stages, conv=config.conv, norm=config.norm, itemsize=itemsize)
    return predict_bytes(num_nodes=dataset.graph.num_nodes, halo_rows=run["halo_rows"], num_layers=config.num_layers,
                         hidden=config.hidden, stages=config.stages, partitions=config.partitions,
                         parameter_bytes=sizes, itemsize=itemsize)


def _check_exact_pipeline(cora, ranks, index, config):
    """One chunk, no partitions: the same loss every epoch, bit for bit, and the same gradients."""
    losses, grads = reference_training(cora, config)
    assert [row["loss"] for row in ranks[0][index]["result"].history] == losses
    merged = _merged_grads(ranks, index)
    assert set(merged) == set(grads)
    for name, grad in grads.items():
        assert torch.equal(merged[name], grad), name


def _check_graph_parallel(cora, ranks, index, config):
    """Partitions sum gradients in another order than one process: equal to float64 rounding."""
    losses, grads = reference_training(cora, config)
    measured = [row["loss"] for row in ranks[0][index]["result"].history]
    assert measured == pytest.approx(losses, rel=1e-12, abs=0)
    for rank in ranks:  # every replica of a stage holds the same all-reduced gradients
        for name, grad in rank[index]["grads"].items():
            torch.testing.assert_close(grad, grads[name], rtol=1e-10, atol=1e-13)
    assert ranks[0][index]["traffic"]["train"] == _predicted(cora, ranks[0][index], config)


def test_two_ranks_pipeline_and_graph_parallel(cora, data_root):
    configs = [_config(stages=2, dropout=0.5, epochs=4),
               _config(partitions=2, dtype="float64"),
               _config(stages=2, conv="sage", norm=True, dropout=0.5)]
    ranks = spawn(2, _train_on_ranks, str(data_root), configs)
    _check_exact_pipeline(cora, ranks, 0, configs[0])
    _check_graph_parallel(cora, ranks, 1, configs[1])
    _check_exact_pipeline(cora, ranks, 2, configs[2])


def test_four_ranks_pipeline_graph_hybrid_and_accuracy(cora, data_root):
    configs = [_config(stages=4, dropout=0.5, epochs=4),
               _config(partitions=4, dtype="float64"),
               _config(stages=2, partitions=2, dtype="float64"),
               _config(stages=2, partitions=2, chunks=3, epochs=2, dropout=0.5),
               ] + [dict(stages=4, chunks=4, seed=seed, **ACCURACY) for seed in ACCURACY_SEEDS]
    ranks = spawn(4, _train_on_ranks, str(data_root), configs)
    _check_exact_pipeline(cora, ranks, 0, configs[0])
    _check_graph_parallel(cora, ranks, 1, configs[1])
    _check_graph_parallel(cora, ranks, 2, configs[2])
    # Chunked hybrid: halo rows exchanged once per chunk they belong to; bytes as the planner says.
    chunked = ranks[0][3]
    assert chunked["traffic"]["train"] == _predicted(cora, chunked, configs[3])
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in chunked["result"].history)

    # Cora, 8-layer residual GCN: 4 stages x 4 chunks within 2 points of one process (mean of 3 seeds).
    pipelined = [ranks[0][4 + i]["result"] for i in range(len(ACCURACY_SEEDS))]
    assert ranks[0][4]["traffic"]["train"] == _predicted(cora, ranks[0][4], configs[4])
    single = [trainer_for(cora, dict(seed=seed, **ACCURACY)).fit() for seed in ACCURACY_SEEDS]
    pipelined_test = sum(r.metrics["test"] for r in pipelined) / len(pipelined)
    single_test = sum(r.metrics["test"] for r in single) / len(single)
    assert single_test >= 0.77
    assert abs(pipelined_test - single_test) <= 0.02, (pipelined_test, single_test)


def _engine(dataset, **options):
    """An engine alone, with an optimiser of learning rate 0 over its stage: the model never changes."""
    from gnnscale.parallel import PipelineEngine

    engine = PipelineEngine(dataset, ParallelConfig(**options), torch.device("cpu"), seed=3)
    return engine, torch.optim.Adam(engine.parameters, lr=0.0)


def test_warmup_fills_history_and_clipping_bounds_the_gradient(cora):
    engine, frozen = _engine(cora, **SMALL, dropout=0.0, chunks=3, warmup_epochs=1)
    assert all(float(h.abs().sum()) == 0 for h in engine.history)
    loss = engine.train_epoch(1, frozen, clip_norm=0.05)  # one chunk: fills every layer's history
    assert all(bool((h.abs().sum(dim=1) > 0).all()) for h in engine.history)
    norm = torch.sqrt(sum(p.grad.double().pow(2).sum() for p in engine.parameters))
    assert float(norm) == pytest.approx(0.05, rel=1e-4)
    # Later epochs run as 3 chunks reading the history. With lr 0 the model is unchanged, so the
    # history is current and the chunked forward pass computes the same loss.
    assert engine.train_epoch(2, frozen) == pytest.approx(loss, rel=1e-6)
    changed, frozen = _engine(cora, **SMALL, dropout=0.0, chunks=3)
    assert changed.train_epoch(1, frozen) != pytest.approx(loss, rel=1e-6)  # an empty history is not current


def test_non_finite_loss_stops_training_naming_the_epoch(cora):
    features = cora.features.clone()
    features[0, 0] = float("nan")
    poisoned = dataclasses.replace(cora, features=features)
    with pytest.raises(ValueError, match="loss is nan at epoch 1"):
        trainer_for(poisoned, _config(epochs=2)).fit()


# ---------------------------------------------------------------------- layouts and plans
def test_layout_is_contiguous_and_metis_cuts_fewer_edges(cora):
    n = cora.graph.num_nodes
    layout = partition_graph(cora.graph, 4, 3)
    assert torch.equal(torch.sort(layout.order).values, torch.arange(n))
    assert torch.equal(layout.position[layout.order], torch.arange(n))
    assert layout.partition_offsets.tolist()[0] == 0 and layout.partition_offsets.tolist()[-1] == n
    sizes = layout.partition_offsets.diff()
    assert int(sizes.max()) <= 1.05 * n / 4  # balanced
    assert torch.equal(layout.chunk_offsets[:, 0], layout.partition_offsets[:-1])
    assert torch.equal(layout.chunk_offsets[:, -1], layout.partition_offsets[1:])
    nodes = torch.arange(n)
    for p in range(4):
        for c in range(3):
            start, end = int(layout.chunk_offsets[p, c]), int(layout.chunk_offsets[p, c + 1])
            assert end > start
            assert bool((layout.chunk_of(nodes[start:end]) == c).all())
            assert bool((layout.partition_of(nodes[start:end]) == p).all())

    def halo_rows(partitioner):
        lay = partition_graph(cora.graph, 4, partitioner=partitioner)
        return sum(h.numel() for h in partition_halos(normalized_adjacency(cora.graph, layout=lay), lay))

    assert halo_rows("metis") < 0.25 * halo_rows("contiguous")


def test_halos_match_brute_force(cora):
    layout = partition_graph(cora.graph, 3, 2)
    position = layout.position
    src, dst = cora.graph.edge_index()
    src, dst = position[src], position[dst]
    halos = partition_halos(normalized_adjacency(cora.graph, layout=layout), layout)
    for p in range(3):
        owner = layout.partition_of(dst) == p
        expected = sorted({int(u) for u in src[owner] if int(layout.partition_of(u.view(1))) != p})
        assert halos[p].tolist() == expected


def test_gcn_normalisation_matches_pyg(cora):
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    edge_index, weight = gcn_norm(cora.graph.edge_index(), num_nodes=cora.graph.num_nodes, add_self_loops=True)
    n = cora.graph.num_nodes
    expected = torch.zeros(n, n).index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    adjacency = normalized_adjacency(cora.graph)
    ours = torch.sparse_csr_tensor(adjacency.indptr, adjacency.indices, adjacency.values, size=(n, n)).to_dense()
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("partitions,chunks", [(1, 4), (3, 2)])
def test_chunk_plans_reproduce_full_aggregation(cora, partitions, chunks):
    """Fresh rows plus historical rows give exactly Â h for every chunk when the history is current."""
    layout = partition_graph(cora.graph, partitions, chunks)
    adjacency = normalized_adjacency(cora.graph, layout=layout, dtype=torch.float64)
    full = Propagation(adjacency.indptr, adjacency.indices, adjacency.values, adjacency.num_nodes)
    h = torch.randn(cora.graph.num_nodes, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = full(h)
    for p in range(partitions):
        plan = build_partition_plan(adjacency, layout, p)
        local = h[torch.cat([torch.arange(plan.own_start, plan.own_end), plan.halo])]
        for chunk in plan.chunks:
            halo = local[chunk.halo_positions]
            out = chunk.fresh(torch.cat([local[chunk.start:chunk.end], halo]))
            if chunk.history is not None:
                out = out + chunk.history(local)
            rows = slice(plan.own_start + chunk.start, plan.own_start + chunk.end)
            torch.testing.assert_close(out, expected[rows], rtol=1e-12, atol=1e-12)
            # what this chunk sends is what the other partitions list as their halo rows in it
            assert sum(chunk.send_counts) == chunk.send_index.numel()
            assert chunk.send_counts[p] == 0 and chunk.recv_counts[p] == 0


def test_planner_prefers_pipeline_for_deep_models_on_cut_heavy_graphs():
    from gnnscale.datasets import generate_synthetic

    dataset = generate_synthetic(3000, 60_000, num_features=300, num_classes=4, homophily=0.2, seed=1)
    shape = dict(num_features=300, num_classes=4, num_layers=8, hidden=32)
    predictions = plan_layouts(dataset.graph, 4, **shape)
    kinds = {p.kind: p for p in predictions}
    assert set(kinds) == {"graph", "hybrid", "pipeline"}
    assert choose_layout(predictions).kind == "pipeline"
    assert kinds["pipeline"].bytes_per_epoch["activations"] == 2 * 3 * 3000 * 32 * 4
    assert kinds["graph"].bytes_per_epoch["halo"] == 2 * 8 * kinds["graph"].halo_rows * 32 * 4
    # The pipeline's first stage holds every node's features: a budget below that picks the hybrid.
    assert kinds["hybrid"].peak_rank_bytes < kinds["pipeline"].peak_rank_bytes
    fitting = plan_layouts(dataset.graph, 4, memory_budget=kinds["hybrid"].peak_rank_bytes, **shape)
    assert choose_layout(fitting).kind == "hybrid"
    with pytest.raises(ValueError, match="no layout fits"):
        choose_layout(plan_layouts(dataset.graph, 4, memory_budget=1, **shape))


def test_bad_configurations_are_rejected(cora):
    with pytest.raises(ValueError, match="must equal the 1 ranks"):
        Trainer(ParallelFullGraphTask(cora, stages=2), progress=False)
    with pytest.raises(ValueError, match="each stage needs a layer"):
        ParallelConfig(stages=4, num_layers=2)
    with pytest.raises(ValueError, match="unknown option.*clip_norm"):
        ParallelFullGraphTask(cora, clip_norm=1.0)  # the optimiser's grad_clip, given to the Trainer
    with pytest.raises(ValueError, match="unknown partitioner"):
        partition_graph(cora.graph, 2, partitioner="random")
    with pytest.raises(ValueError, match="exceed the"):
        partition_graph(cora.graph, 2, 2000)


def test_pipe_command_runs_under_torchrun(tmp_path):
    root = real_data_root()
    result = subprocess.run(
        [sys.executable, "-m", "gnnscale", "pipe", "--nproc", "2", "--dataset", "cora", "--root", str(root),
         "--mode", "pipeline", "--layers", "4", "--hidden", "16", "--epochs", "3", "--chunks", "2", "--quiet",
         "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "parallel_Cora_pipeline_2.json").read_text())
    assert (report["stages"], report["partitions"], report["chunks"]) == (2, 1, 2)
    assert report["bytes_per_epoch"] == report["predicted_bytes_per_epoch"]
    assert len(report["history"]) == 3 and "sent per epoch" in result.stdout
    assert report["metric"] == "accuracy" and 0.0 <= report["metrics"]["test"] <= 1.0


def test_pipe_command_and_python_api_share_their_defaults():
    import argparse

    from gnnscale.programs import pipe

    parser = argparse.ArgumentParser()
    pipe.add_arguments(parser)
    args = vars(parser.parse_args([]))
    model, loop, optimizer = (ParallelConfig(), ParallelFullGraphTask.default_loop,
                              ParallelFullGraphTask.default_optimizer)
    assert (args["chunks"], args["layers"], args["hidden"], args["conv"], args["dropout"], args["warmup_epochs"],
            args["partitioner"], args["norm"]) == (model.chunks, model.num_layers, model.hidden, model.conv,
                                                   model.dropout, model.warmup_epochs, model.partitioner, model.norm)
    assert (args["epochs"], args["eval_every"], args["seed"]) == (loop.epochs, loop.eval_every, loop.seed)
    assert (args["lr"], args["weight_decay"], args["grad_clip"]) == (optimizer.lr, optimizer.weight_decay,
                                                                     optimizer.grad_clip)
