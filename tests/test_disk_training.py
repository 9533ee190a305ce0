"""Training and evaluation with the features read through the disk tier (DiskTensor and its host
cache) give what they give from the table in memory, say what each tier served, and layer-wise
evaluation puts layers larger than its memory budget on disk and cleans up after itself."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnscale.datasets import generate_synthetic, load_dataset, save_dataset
from gnnscale.nn import GNNEncoder, full_neighbourhood_outputs, pyg_models
from gnnscale.programs.main import main
from gnnscale.programs.ogb_runner import run_benchmark
from gnnscale.storage import DiskTensor
from gnnscale.train import LinkConfig, LinkTask, LoopConfig, NodeConfig, NodeTask, OptimizerConfig, Trainer
from test_link_trainer import community_link_dataset


def saved(dataset, folder: Path):
    """``dataset`` saved and opened again: its features are mapped from the folder's file."""
    save_dataset(dataset, folder)
    opened = load_dataset(str(folder))
    assert opened.feature_file == folder / "features.npy"
    return opened


def trained(task, epochs=3):
    result = Trainer(task, loop=LoopConfig(epochs=epochs, progress=False), optimizer=OptimizerConfig(lr=0.01),
                     device="cpu").fit()
    return result, task


def history_without_time(result):
    """Losses and metrics of every epoch (not the timings: 'seconds', '..._per_second')."""
    return [{k: v for k, v in row.items() if "second" not in k} for row in result.history]


@pytest.fixture(scope="module")
def saved_cora(data_root, tmp_path_factory):
    return saved(load_dataset("cora", root=data_root), tmp_path_factory.mktemp("cora") / "cora")


def test_node_training_through_the_disk_tier_matches_training_in_memory(saved_cora):
    options = dict(fanouts=[5, 5], batch_size=64, hidden=16)
    in_memory, _ = trained(NodeTask(saved_cora, "sage", **options))
    on_disk, task = trained(NodeTask(saved_cora, "sage", host_cache_gib=0.001, **options))
    assert isinstance(task.features, DiskTensor)
    assert history_without_time(on_disk) == history_without_time(in_memory)
    assert on_disk.metrics == in_memory.metrics and in_memory.metrics["test"] > 0.5
    tiers = task.feature_tiers()
    assert on_disk.feature_tiers == tiers and in_memory.feature_tiers == {}
    row_bytes = 1433 * 4
    assert tiers["disk"]["rows_read"] > 0 and tiers["disk"]["bytes_read"] >= tiers["disk"]["rows_read"] * row_bytes
    # A 1 MiB cache holds a sixth of Cora's rows: some reads hit it, most go to the disk.
    assert 0 < tiers["host_cache"]["hits"] < tiers["host_cache"]["requests"]
    assert tiers["host_cache"]["hit_rate"] == pytest.approx(tiers["host_cache"]["hits"] /
                                                            tiers["host_cache"]["requests"])
    assert NodeTask(saved_cora, "sage", **options).feature_tiers() == {}


def test_link_training_through_the_disk_tier_matches_training_in_memory(tmp_path):
    dataset = saved(community_link_dataset(), tmp_path / "links")
    options = dict(fanouts=[5, 5], batch_size=4096, hidden=16)
    in_memory, _ = trained(LinkTask(dataset, "sage", **options), epochs=1)
    on_disk, task = trained(LinkTask(dataset, "sage", host_cache_gib=0.5, **options), epochs=1)
    assert history_without_time(on_disk) == history_without_time(in_memory)
    assert on_disk.metrics == in_memory.metrics
    tiers = task.feature_tiers()
    assert tiers["disk"]["rows_read"] == 2000  # every row once: the cache holds them all
    assert tiers["host_cache"]["hits"] > 0


def test_the_disk_tier_needs_a_feature_file_that_matches(saved_cora, tmp_path):
    in_memory = generate_synthetic(300, 2000, 8, 3, seed=0)
    with pytest.raises(ValueError, match="no feature file.*save_dataset"):
        NodeTask(in_memory, "sage", host_cache_gib=1).build(torch.device("cpu"), 0)
    other = saved(generate_synthetic(300, 2000, 8, 3, seed=0), tmp_path / "other")
    other.feature_file = saved_cora.feature_file
    with pytest.raises(ValueError, match="holds torch.float32 of shape \\(2708, 1433\\)"):
        NodeTask(other, "sage", host_cache_gib=1).build(torch.device("cpu"), 0)
    other.feature_file = tmp_path / "missing.npy"
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        NodeTask(other, "sage", host_cache_gib=1).build(torch.device("cpu"), 0)
    for bad in (-1, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="host_cache_gib"):
            NodeConfig(host_cache_gib=bad)
    for bad in (0, -1.0, float("inf"), None):
        with pytest.raises(ValueError, match="inference_memory_gib"):
            LinkConfig(inference_memory_gib=bad)
    with pytest.raises(ValueError, match="full_graph"):
        LinkConfig(full_graph=True, host_cache_gib=1)


# ---------------------------------------------------------------------------------------------
# Layer-wise evaluation through the disk

@pytest.fixture
def recorded_spills(monkeypatch):
    """The paths of the layer tables evaluation writes to disk."""
    paths = []

    class Recording(DiskTensor):
        def __init__(self, path, **options):
            paths.append(Path(path))
            super().__init__(path, **options)

    monkeypatch.setattr(pyg_models, "DiskTensor", Recording)
    return paths


def small_graph():
    data = generate_synthetic(500, 4000, 12, 4, seed=1)
    return data.graph, data.features


@pytest.mark.parametrize("kind", ["sage", "gcn", "gat"])
def test_layers_over_the_budget_go_to_disk_and_give_the_same_outputs(kind, tmp_path, recorded_spills):
    graph, x = small_graph()
    torch.manual_seed(0)
    model = GNNEncoder(kind, 12, 24, 5, 3, 0.5)
    expected = full_neighbourhood_outputs(model, graph, x, 64, "cpu")
    assert not recorded_spills
    got = full_neighbourhood_outputs(model, graph, x, 64, "cpu", layer_memory_bytes=1000, spill_dir=tmp_path)
    assert len(recorded_spills) == 2  # the two inner layers; the logits stay in memory
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert list(tmp_path.iterdir()) == []
    # Within the budget, nothing is written.
    full_neighbourhood_outputs(model, graph, x, 64, "cpu", layer_memory_bytes=500 * 24 * 4, spill_dir=tmp_path)
    assert len(recorded_spills) == 2


def test_pyg_graphsage_with_jumping_knowledge_reads_its_layers_back_from_disk(tmp_path, recorded_spills):
    from torch_geometric.nn import GraphSAGE

    graph, x = small_graph()
    np.save(tmp_path / "x.npy", x.numpy())
    features = DiskTensor(tmp_path / "x.npy")  # the first layer's input from disk too
    spill = tmp_path / "spill"
    spill.mkdir()
    torch.manual_seed(0)
    for jk in (None, "cat"):
        model = GraphSAGE(12, 24, num_layers=3, out_channels=5, jk=jk)
        expected = full_neighbourhood_outputs(model, graph, x, 64, "cpu")
        got = full_neighbourhood_outputs(model, graph, features, 64, "cpu", layer_memory_bytes=1000, spill_dir=spill)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), jk
        assert list(spill.iterdir()) == []
    assert len(recorded_spills) == 2 + 2  # the inner layers of each model


def _outputs_on_ranks_past_the_budget(folder):
    """Runs on every rank: the model's outputs with each inner layer's table over the budget, and
    the layer files this rank read."""
    from gnnscale.distributed.ranks import current_ranks

    paths, original = [], pyg_models.DiskTensor

    class Recording(original):
        def __init__(self, path, **options):
            paths.append(str(path))
            super().__init__(path, **options)

    pyg_models.DiskTensor = Recording
    try:
        graph, x = small_graph()
        torch.manual_seed(0)
        model = GNNEncoder("sage", 12, 24, 5, 3, 0.5)
        outputs = full_neighbourhood_outputs(model, graph, x, 64, "cpu", current_ranks(), layer_memory_bytes=1000,
                                             spill_dir=folder)
    finally:
        pyg_models.DiskTensor = original
    return outputs, paths


def test_data_parallel_ranks_share_each_spilled_layer_in_one_file(tmp_path):
    from gnnscale.distributed.launch import spawn

    graph, x = small_graph()
    torch.manual_seed(0)
    expected = full_neighbourhood_outputs(GNNEncoder("sage", 12, 24, 5, 3, 0.5), graph, x, 64, "cpu")
    ranks = spawn(2, _outputs_on_ranks_past_the_budget, str(tmp_path), timeout_s=30.0)
    for outputs, paths in ranks:
        assert torch.allclose(outputs, expected, rtol=1e-5, atol=1e-6)
        assert len(paths) == 2 and paths == ranks[0][1]  # the two inner layers, one file each for both ranks
    assert list(tmp_path.iterdir()) == []


def test_spilled_layers_are_removed_when_evaluation_fails(tmp_path, recorded_spills, monkeypatch):
    graph, x = small_graph()
    model = GNNEncoder("sage", 12, 24, 5, 3, 0.0)
    original = GNNEncoder.layer

    def failing_layer(self, i, *args):
        if i == 2:
            raise RuntimeError("layer 2 failed")
        return original(self, i, *args)

    monkeypatch.setattr(GNNEncoder, "layer", failing_layer)
    with pytest.raises(RuntimeError, match="layer 2 failed"):
        full_neighbourhood_outputs(model, graph, x, 64, "cpu", layer_memory_bytes=1000, spill_dir=tmp_path)
    assert len(recorded_spills) == 2 and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="layer_memory_bytes"):
        full_neighbourhood_outputs(model, graph, x, 64, "cpu", layer_memory_bytes=0)


def test_a_tiny_inference_budget_changes_no_metric(saved_cora, recorded_spills):
    options = dict(fanouts=[5, 5], batch_size=256, hidden=16)
    in_memory, _ = trained(NodeTask(saved_cora, "sage", **options), epochs=1)
    spilled, _ = trained(NodeTask(saved_cora, "sage", inference_memory_gib=1e-6, host_cache_gib=0.01, **options),
                         epochs=1)
    assert len(recorded_spills) >= 1 and spilled.metrics == in_memory.metrics


# ---------------------------------------------------------------------------------------------
# The runner

def test_the_runner_reports_what_each_tier_served(tmp_path, capsys):
    save_dataset(generate_synthetic(400, 3000, 8, 3, seed=0), tmp_path / "data")
    code = main(["bench", "ogb", "--dataset", str(tmp_path / "data"), "--host-cache-gib", "0.0001", "--epochs",
                 "1", "--fanouts", "5,5", "--hidden", "16", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    assert "host cache" in capsys.readouterr().out
    (json_path,) = (tmp_path / "out").glob("*.json")
    report = json.loads(json_path.read_text())
    assert report["options"]["host_cache_gib"] == 0.0001
    tiers = report["runs"][0]["feature_tiers"]
    assert tiers["disk"]["bytes_read"] >= 400 * 8 * 4 and 0 < tiers["host_cache"]["hit_rate"] < 1
    plain = run_benchmark(str(tmp_path / "data"), epochs=1, progress=False, options={"fanouts": [5, 5]})
    assert plain.runs[0].feature_tiers == {}


def test_a_closed_disk_tensor_refuses_to_read(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.float32).reshape(6, 2))
    table = DiskTensor(tmp_path / "x.npy")
    assert table.gather(torch.tensor([5])).tolist() == [[10.0, 11.0]]
    table.close()
    assert table.closed and "closed" in repr(table)
    with pytest.raises(ValueError, match="closed"):
        table.gather(torch.tensor([0]))
    with pytest.raises(ValueError, match="closed"):
        table.stats()
