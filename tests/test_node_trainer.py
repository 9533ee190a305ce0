"""Mini-batch node classification (NodeTask): accuracy on real data with gnnscale's encoders and
PyG's models, checkpoints, resume, logs and plots, and how the Trainer reports early stopping."""
import json

import pytest
import torch
from torch_geometric.nn import GAT, GraphSAGE

from conftest import requires_cuda
from gnnscale import load_dataset
from gnnscale.datasets import generate_synthetic
from gnnscale.train import LoopConfig, NodeConfig, NodeTask, OptimizerConfig, Trainer


def small_dataset():
    return generate_synthetic(1500, 12000, 16, 4, homophily=0.8, feature_signal=0.3, seed=4)


CORA_TASK = dict(fanouts=[10, 10], batch_size=32)
CORA_TRAINING = dict(lr=0.01, weight_decay=5e-4, epochs=30, progress=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sampled_graphsage_on_cora_reaches_the_bar(data_root, precision):
    cora = load_dataset("cora", root=data_root)
    accuracies = []
    for seed in range(3):
        trainer = Trainer(NodeTask(cora, "sage", hidden=64, **CORA_TASK), seed=seed, precision=precision,
                          **CORA_TRAINING)
        result = trainer.fit()
        assert result.metric == "accuracy" and result.throughput_unit == "seed nodes/s" and result.throughput > 0
        accuracies.append(result.metrics["test"])
    # The forward pass ran in the precision asked for; the parameters stay float32.
    batch = next(iter(trainer.task.loader))
    with trainer.autocast():
        out = trainer.model(batch.x.float(), batch.edge_index, batch.num_sampled_nodes, batch.num_sampled_edges)
    assert out.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert sum(accuracies) / 3 >= 0.78, accuracies


@pytest.mark.parametrize("make_model", [
    lambda: GraphSAGE(1433, 64, num_layers=2, out_channels=7, dropout=0.5),
    lambda: GAT(1433, 16, num_layers=2, out_channels=7, heads=4, dropout=0.5),
], ids=["pyg-graphsage", "pyg-gat"])
def test_pyg_models_on_sampled_cora_reach_the_bar(data_root, make_model):
    cora = load_dataset("cora", root=data_root)
    accuracies = []
    for seed in range(2):
        torch.manual_seed(seed)  # the model's initial parameters follow the seed, as the encoders' do
        model = make_model()
        # Evaluated every 5 epochs: full-neighbourhood evaluation costs more than an epoch of training.
        trainer = Trainer(NodeTask(cora, model, **CORA_TASK), seed=seed, eval_every=5, **CORA_TRAINING)
        assert trainer.model is model
        accuracies.append(trainer.fit().metrics["test"])
    assert sum(accuracies) / 2 >= 0.78, accuracies


def test_a_pyg_model_of_another_depth_than_the_fanouts_is_refused(data_root):
    cora = load_dataset("cora", root=data_root)
    with pytest.raises(ValueError, match="the model has 3 layers but fanouts has 2 entries"):
        Trainer(NodeTask(cora, GraphSAGE(1433, 16, num_layers=3, out_channels=7), fanouts=[5, 5]), progress=False)


@requires_cuda
@pytest.mark.parametrize("sample_on_device", [False, True])
def test_graphsage_on_the_gpu_reads_pinned_features_and_reaches_the_bar(data_root, sample_on_device):
    cora = load_dataset("cora", root=data_root)
    accuracies = []
    for seed in range(3):
        task = NodeTask(cora, "sage", hidden=64, sample_on_device=sample_on_device, **CORA_TASK)
        trainer = Trainer(task, seed=seed, device="cuda", **CORA_TRAINING)
        assert task.features.is_pinned and task.features.data.data_ptr() == cora.features.data_ptr()
        batch = next(iter(task.loader))
        assert batch.x.is_cuda and torch.equal(batch.x.cpu(), cora.features[batch.n_id.cpu()])
        accuracies.append(trainer.fit().metrics["test"])
        task.features.unpin_()
    assert sum(accuracies) / 3 >= 0.78, accuracies


def test_layerwise_inference_equals_full_graph_forward():
    data = small_dataset()
    trainer = Trainer(NodeTask(data, "sage", fanouts=[4, 4], batch_size=200, hidden=32, eval_batch_size=97),
                      epochs=1, progress=False)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(data.features, data.graph.edge_index())
    assert torch.allclose(trainer.task.inference(), expected, atol=1e-5)


def test_resumed_run_ends_where_an_uninterrupted_run_ends(tmp_path):
    data = small_dataset()

    def trainer(**loop):
        task = NodeTask(data, "sage", fanouts=[5, 5], batch_size=128, hidden=32)
        return Trainer(task, **{"epochs": 4, "seed": 7, "progress": False, **loop})

    straight = trainer().fit()
    # The same run, killed after two epochs, then resumed by a new process-like trainer.
    trainer(epochs=2, checkpoint_dir=tmp_path).fit()
    resumed = trainer(checkpoint_dir=tmp_path, resume=True).fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert resumed.metrics == straight.metrics
    assert not straight.stopped_early and not resumed.stopped_early


def test_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    data = small_dataset()

    def fit():
        Trainer(NodeTask(data, "gcn", fanouts=[3], batch_size=256, hidden=16), epochs=1, checkpoint_dir=tmp_path,
                progress=False).fit()

    fit()
    good = (tmp_path / "last.pt").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        fit()
    assert (tmp_path / "last.pt").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_metrics_log_and_plot(tmp_path):
    data = small_dataset()
    result = Trainer(NodeTask(data, "gat", fanouts=[4, 4], batch_size=64, hidden=16), lr=0.01, epochs=3,
                     eval_every=2, log_path=tmp_path / "metrics.jsonl", plot_path=tmp_path / "curves.png",
                     progress=False).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert "valid" in rows[1] and "valid" in rows[2] and "valid" not in rows[0]  # every 2nd epoch and the last
    assert all(row["seed_nodes_per_second"] > 0 for row in rows)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    majority = float(torch.bincount(data.labels).max()) / data.labels.numel()
    assert result.metrics["test"] > majority + 0.2, result.metrics


def test_bad_settings_are_rejected(data_root):
    data = small_dataset()
    with pytest.raises(ValueError, match="checkpoint_dir"):
        Trainer(NodeTask(data), resume=True)
    with pytest.raises(ValueError, match="needs features"):
        NodeTask(load_dataset("blogcatalog", root=data_root))
    with pytest.raises(ValueError, match="fanouts"):
        NodeTask(data, fanouts=[5, 0])
    with pytest.raises(ValueError, match="precision"):
        Trainer(NodeTask(data), precision="fp16")


def test_a_trainer_refuses_what_is_not_a_task_and_tasks_refuse_unknown_options():
    data = small_dataset()
    with pytest.raises(ValueError, match="task must be a gnnscale.train Task .*got NodeConfig"):
        Trainer(NodeConfig())
    with pytest.raises(ValueError, match="task must be a gnnscale.train Task .*got str"):
        Trainer("sage")
    with pytest.raises(ValueError, match="NodeTask: unknown option.s. fanout; the options are fanouts, "):
        NodeTask(data, fanout=[5, 5])
    # A task option given to the Trainer is refused with the options it knows.
    with pytest.raises(ValueError, match=r"Trainer: unknown option\(s\) batch_size; loop options are .*epochs"):
        Trainer(NodeTask(data), batch_size=64)
    with pytest.raises(ValueError, match="pass either a NodeConfig or keyword options, not both"):
        NodeTask(data, config=NodeConfig(), hidden=8)


def test_keyword_options_equal_the_configs_they_stand_for():
    data = small_dataset()
    by_keywords = Trainer(NodeTask(data, "sage", fanouts=[3], batch_size=256, hidden=16), epochs=2, seed=3,
                          lr=0.01, progress=False)
    keyword_losses = [row["loss"] for row in by_keywords.fit().history]
    by_configs = Trainer(NodeTask(data, "sage", config=NodeConfig(fanouts=(3,), batch_size=256, hidden=16)),
                         loop=LoopConfig(epochs=2, seed=3, progress=False), optimizer=OptimizerConfig(lr=0.01))
    assert by_keywords.fingerprint() == by_configs.fingerprint()
    assert [row["loss"] for row in by_configs.fit().history] == keyword_losses


def test_a_run_is_a_function_of_its_seed_whatever_is_drawn_before_fit():
    data = small_dataset()

    def trainer():
        return Trainer(NodeTask(data, "sage", fanouts=[3], batch_size=256, hidden=16), epochs=2, seed=3,
                       progress=False)

    alone = [row["loss"] for row in trainer().fit().history]
    first, second = trainer(), trainer()  # the second's construction draws from torch's generator
    torch.rand(3)
    assert [row["loss"] for row in first.fit().history] == alone
    assert [row["loss"] for row in second.fit().history] == alone


def plateau(monkeypatch):
    """The validation metric never improves after the first evaluation."""
    monkeypatch.setattr(NodeTask, "evaluate", lambda self: {"train": 0.5, "valid": 0.5, "test": 0.5})


def test_the_trainer_says_when_it_stops_early(monkeypatch, capsys):
    plateau(monkeypatch)
    task = NodeTask(small_dataset(), "sage", fanouts=[3], batch_size=512, hidden=8)
    result = Trainer(task, epochs=6, patience=2, progress=True).fit()
    # Evaluations after epochs 2 and 3 bring no gain over epoch 1's: epoch 4 is not trained.
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    output = capsys.readouterr()
    stop_lines = [line for line in (output.out + output.err).splitlines() if "stopped early" in line]
    assert stop_lines == [f"{task.name}: stopped early after epoch 3: 2 evaluation(s) without a better valid "
                          f"accuracy than epoch 1's"], output


def test_a_run_of_all_its_epochs_did_not_stop_early(monkeypatch, capsys):
    plateau(monkeypatch)
    task = NodeTask(small_dataset(), "sage", fanouts=[3], batch_size=512, hidden=8)
    # Patience 2 is spent only after the third evaluation, which falls on the last epoch.
    result = Trainer(task, epochs=3, patience=2, progress=True).fit()
    assert not result.stopped_early and len(result.history) == 3
    output = capsys.readouterr()
    assert "stopped early" not in output.out + output.err
    unlimited = Trainer(task, epochs=2, progress=False).fit()
    assert not unlimited.stopped_early and len(unlimited.history) == 2


@pytest.mark.parametrize("native", [False, True])
def test_bf16_warns_on_cpus_that_emulate_it(monkeypatch, recwarn, native):
    monkeypatch.setattr("gnnscale.train.trainer.cpu_has_bf16_matmul", lambda: native)
    Trainer(NodeTask(small_dataset()), precision="bf16", progress=False)
    emulated = [w for w in recwarn if "emulated" in str(w.message)]
    assert len(emulated) == (0 if native else 1)
