"""Mini-batch node classification: accuracy on real data, checkpoints, resume, logs and plots."""
import json

import pytest
import torch

from conftest import requires_cuda
from gnnscale import load_dataset
from gnnscale.datasets import generate_synthetic
from gnnscale.train import NodeTrainer


def small_dataset():
    return generate_synthetic(1500, 12000, 16, 4, homophily=0.8, feature_signal=0.3, seed=4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sampled_graphsage_on_cora_reaches_the_bar(data_root, precision):
    cora = load_dataset("cora", root=data_root)
    accuracies = []
    for seed in range(3):
        trainer = NodeTrainer(cora, "sage", fanouts=[10, 10], batch_size=32, hidden=64, lr=0.01, weight_decay=5e-4,
                              epochs=30, seed=seed, progress=False, precision=precision)
        accuracies.append(trainer.fit().accuracy["test"])
    # The forward pass ran in the precision asked for; the parameters stay float32.
    batch = next(iter(trainer.loader))
    with trainer.autocast():
        out = trainer.model(batch.x.float(), batch.subgraph.edge_index, batch.subgraph.num_sampled_nodes,
                            batch.subgraph.num_sampled_edges)
    assert out.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert sum(accuracies) / 3 >= 0.78, accuracies


@requires_cuda
@pytest.mark.parametrize("sample_on_device", [False, True])
def test_graphsage_on_the_gpu_reads_pinned_features_and_reaches_the_bar(data_root, sample_on_device):
    cora = load_dataset("cora", root=data_root)
    accuracies = []
    for seed in range(3):
        trainer = NodeTrainer(cora, "sage", fanouts=[10, 10], batch_size=32, hidden=64, lr=0.01, weight_decay=5e-4,
                              epochs=30, seed=seed, device="cuda", sample_on_device=sample_on_device, progress=False)
        assert trainer.features.is_pinned and trainer.features.data.data_ptr() == cora.features.data_ptr()
        batch = next(iter(trainer.loader))
        assert batch.x.is_cuda and torch.equal(batch.x.cpu(), cora.features[batch.subgraph.node.cpu()])
        accuracies.append(trainer.fit().accuracy["test"])
        trainer.features.unpin_()
    assert sum(accuracies) / 3 >= 0.78, accuracies


def test_layerwise_inference_equals_full_graph_forward():
    data = small_dataset()
    trainer = NodeTrainer(data, "sage", fanouts=[4, 4], batch_size=200, hidden=32, epochs=1, eval_batch_size=97,
                          progress=False)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(data.features, data.graph.edge_index())
    assert torch.allclose(trainer.inference(), expected, atol=1e-5)


def test_resumed_run_ends_where_an_uninterrupted_run_ends(tmp_path):
    data = small_dataset()
    settings = dict(fanouts=[5, 5], batch_size=128, hidden=32, epochs=4, seed=7, progress=False)
    straight = NodeTrainer(data, "sage", **settings).fit()
    # The same run, killed after two epochs, then resumed by a new process-like trainer.
    NodeTrainer(data, "sage", **{**settings, "epochs": 2}, checkpoint_dir=tmp_path).fit()
    resumed = NodeTrainer(data, "sage", **settings, checkpoint_dir=tmp_path, resume=True).fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert resumed.accuracy == straight.accuracy


def test_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    data = small_dataset()
    NodeTrainer(data, "gcn", fanouts=[3], batch_size=256, hidden=16, epochs=1, checkpoint_dir=tmp_path,
                progress=False).fit()
    good = (tmp_path / "last.pt").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        NodeTrainer(data, "gcn", fanouts=[3], batch_size=256, hidden=16, epochs=1, checkpoint_dir=tmp_path,
                    progress=False).fit()
    assert (tmp_path / "last.pt").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_metrics_log_and_plot(tmp_path):
    data = small_dataset()
    result = NodeTrainer(data, "gat", fanouts=[4, 4], batch_size=64, hidden=16, lr=0.01, epochs=3, eval_every=2,
                         log_path=tmp_path / "metrics.jsonl", plot_path=tmp_path / "curves.png",
                         progress=False).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert "valid" in rows[1] and "valid" in rows[2] and "valid" not in rows[0]  # every 2nd epoch and the last
    assert all(row["seeds_per_second"] > 0 for row in rows)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    majority = float(torch.bincount(data.labels).max()) / data.labels.numel()
    assert result.accuracy["test"] > majority + 0.2, result.accuracy


def test_bad_settings_are_rejected(data_root):
    data = small_dataset()
    with pytest.raises(ValueError, match="checkpoint_dir"):
        NodeTrainer(data, resume=True)
    with pytest.raises(ValueError, match="needs features"):
        NodeTrainer(load_dataset("blogcatalog", root=data_root))
    with pytest.raises(ValueError, match="fanouts"):
        NodeTrainer(data, fanouts=[5, 0])
    with pytest.raises(ValueError, match="precision"):
        NodeTrainer(data, precision="fp16")


@pytest.mark.parametrize("native", [False, True])
def test_bf16_warns_on_cpus_that_emulate_it(monkeypatch, recwarn, native):
    monkeypatch.setattr("gnnscale.train.loop.cpu_has_bf16_matmul", lambda: native)
    NodeTrainer(small_dataset(), precision="bf16", progress=False)
    emulated = [w for w in recwarn if "emulated" in str(w.message)]
    assert len(emulated) == (0 if native else 1)
