"""Inputs and settings that would otherwise give a silent wrong answer or fail late: ids outside a
cached table, NaN losses, resuming a checkpoint with other settings, seed masks of the wrong
length, bad thread counts and devices, and the command line's --threads."""
import pytest
import torch

from gnnscale.programs.main import main
from gnnscale.datasets import generate_synthetic
from gnnscale.loader import NodeLoader, TokenLoader
from gnnscale.storage import FeatureCache, TokenTable, UnifiedTensor
from gnnscale.train import FullGraphNodeTask, LargeGTTask, LinkTask, NodeTask, NonFiniteLossError, Trainer
from gnnscale.train import TemporalTask
from gnnscale.checkpoint import save_checkpoint
from test_link_trainer import community_link_dataset
from test_temporal import small_dataset as small_stream


def small_dataset():
    return generate_synthetic(600, 4000, 12, 4, homophily=0.8, feature_signal=0.3, seed=3)


TASK_OPTIONS = ("fanouts", "batch_size", "hidden", "dropout", "num_threads")


def fast_node_trainer(data, model="sage", **settings):
    """A small NodeTask's Trainer; ``settings`` mix task options and Trainer options."""
    settings = {"fanouts": [4, 4], "batch_size": 128, "hidden": 16, "epochs": 2, "progress": False, **settings}
    task = NodeTask(data, model, **{k: v for k, v in settings.items() if k in TASK_OPTIONS})
    return Trainer(task, **{k: v for k, v in settings.items() if k not in TASK_OPTIONS})


# --- FeatureCache ---------------------------------------------------------------------------------

def test_cache_refuses_ids_outside_the_table():
    table = torch.arange(500 * 32, dtype=torch.float32).view(500, 32)  # 128-byte rows
    cache = FeatureCache(UnifiedTensor(table), torch.tensor([3, 499]), device="cpu")
    with pytest.raises(ValueError, match=r"negative id \(-1\)"):
        cache.gather(torch.tensor([3, -1]))  # -1 would read node 499's cached row
    with pytest.raises(ValueError, match=r"negative id \(-7\)"):
        cache.gather(torch.tensor([-7, 2]))  # not cached
    with pytest.raises(ValueError, match="500"):
        cache.gather(torch.tensor([0, 500]))
    assert cache.requests == 0  # nothing was served
    assert torch.equal(cache.gather(torch.tensor([499, 0])), table[[499, 0]])


# --- non-finite losses ----------------------------------------------------------------------------

def first_batch_holding(loader, node: int) -> int:
    """The 1-based number of the first batch of epoch 1 whose sampled nodes include ``node``."""
    for b, batch in enumerate(loader.iterate(1), start=1):
        if bool((batch.n_id == node).any()):
            return b
    raise AssertionError(f"node {node} is in no batch")


def test_node_trainer_stops_at_the_first_batch_with_a_nan_loss():
    data = small_dataset()
    data.features = data.features.clone()
    trainer = fast_node_trainer(data, dropout=0.0, batch_size=16, fanouts=[1])
    train = data.splits["train"]
    # A training node sampled as few times as can be, and not in the first batch: the batches
    # before the one holding it train normally.
    by_degree = train[torch.argsort(data.graph.degree("in")[train], stable=True)].tolist()
    poisoned, expected = next((node, b) for node in by_degree
                              if (b := first_batch_holding(trainer.task.loader, node)) > 1)
    data.features[poisoned] = float("nan")  # the task reads these features in place
    with pytest.raises(NonFiniteLossError,
                       match=rf"loss is nan at epoch 1, batch {expected} of {len(trainer.task.loader)}"):
        trainer.fit()


def test_link_trainer_stops_on_a_nan_loss():
    dataset = community_link_dataset()
    dataset.features = torch.full_like(dataset.features, float("nan"))
    trainer = Trainer(LinkTask(dataset, "sage", fanouts=[3], batch_size=2048, hidden=16), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"loss is nan at epoch 1, batch 1 of"):
        trainer.fit()


def test_full_neighbourhood_link_trainer_stops_on_a_nan_loss():
    dataset = community_link_dataset()
    dataset.features = torch.full_like(dataset.features, float("nan"))
    trainer = Trainer(LinkTask(dataset, "sage", full_graph=True, num_layers=1, batch_size=2048, hidden=16),
                      epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"loss is nan at epoch 1, batch 1 of"):
        trainer.fit()


def test_largegt_trainer_stops_on_a_nan_loss():
    data = small_dataset()
    data.features = torch.full_like(data.features, float("nan"))
    trainer = Trainer(LargeGTTask(data, num_tokens=4, fanouts=(3, 2), hidden=16, num_centroids=8), epochs=1,
                      progress=False)
    with pytest.raises(ValueError, match=r"loss is nan at epoch 1, batch 1 of"):
        trainer.fit()


def test_temporal_trainer_stops_on_a_nan_loss():
    dataset = small_stream(features=3)
    dataset.edge_features = torch.full_like(dataset.edge_features, float("nan"))
    trainer = Trainer(TemporalTask(dataset, "tgn", batch_size=50, memory_dim=8, time_dim=8, embedding_dim=8),
                      epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"loss is nan at epoch 1, batch \d+ of \d+"):
        trainer.fit()


def test_full_graph_training_stops_on_a_nan_loss():
    data = small_dataset()
    data.features = torch.full_like(data.features, float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, batch 1 of 1"):
        Trainer(FullGraphNodeTask(data, hidden=8), epochs=3, progress=False).fit()


# --- resuming -------------------------------------------------------------------------------------

@pytest.fixture
def checkpointed(tmp_path):
    """A finished two-epoch run's checkpoint folder, its dataset and settings."""
    data = small_dataset()
    settings = dict(seed=7, lr=0.01, checkpoint_dir=tmp_path)
    fast_node_trainer(data, **settings).fit()
    return data, settings, tmp_path / "last.pt"


@pytest.mark.parametrize("change, listed", [
    ({"lr": 0.02}, "optimizer.lr: 0.01 in the checkpoint, 0.02 now"),
    ({"seed": 8}, "seed: 7 in the checkpoint, 8 now"),
    ({"batch_size": 64}, "batch_size: 128 in the checkpoint, 64 now"),
    ({"fanouts": [4, 3]}, r"fanouts: \[4, 4\] in the checkpoint, \[4, 3\] now"),
    ({"hidden": 32}, r"parameters\.convs\.0\.lin_l\.weight: \[16, 12\] in the checkpoint, \[32, 12\] now"),
])
def test_resume_refuses_other_settings(checkpointed, change, listed):
    data, settings, _ = checkpointed
    with pytest.raises(ValueError, match=listed):
        fast_node_trainer(data, **{**settings, **change}, resume=True).fit()


def test_resume_refuses_another_model_or_dataset(checkpointed):
    data, settings, path = checkpointed
    with pytest.raises(ValueError, match="kind: 'sage' in the checkpoint, 'gcn' now"):
        fast_node_trainer(data, "gcn", **settings, resume=True).fit()
    other = generate_synthetic(700, 4000, 12, 4, seed=3)
    with pytest.raises(ValueError, match="dataset.nodes: 600 in the checkpoint, 700 now"):
        fast_node_trainer(other, **settings, resume=True).fit()
    # The record of the run loads with the safe unpickler like the rest of the checkpoint.
    record = torch.load(path, weights_only=True)["fingerprint"]
    assert record["seed"] == 7 and record["task"] == "NodeTask" and "trainer" not in record


def test_resume_may_add_epochs_but_not_drop_trained_ones(checkpointed):
    data, settings, _ = checkpointed
    with pytest.raises(ValueError, match="has trained 2 epochs, more than epochs=1"):
        fast_node_trainer(data, **settings, epochs=1, resume=True).fit()
    continued = fast_node_trainer(data, **settings, epochs=3, resume=True).fit()
    assert [row["epoch"] for row in continued.history] == [1, 2, 3]


def test_resume_refuses_a_checkpoint_without_a_record_of_its_run(checkpointed):
    data, settings, path = checkpointed
    old_format = torch.load(path, weights_only=True)
    del old_format["fingerprint"]
    save_checkpoint(path, old_format)
    with pytest.raises(ValueError, match="does not record the settings"):
        fast_node_trainer(data, **settings, resume=True).fit()


def test_a_run_stopped_early_stays_stopped_when_resumed(tmp_path, monkeypatch):
    # The validation metric never improves after the first evaluation: patience 1 stops at epoch 2.
    monkeypatch.setattr(NodeTask, "evaluate", lambda self: {"train": 0.5, "valid": 0.5, "test": 0.5})
    data = small_dataset()
    settings = dict(epochs=5, patience=1, checkpoint_dir=tmp_path)
    stopped = fast_node_trainer(data, **settings).fit()
    assert len(stopped.history) == 2 and stopped.stopped_early
    resumed = fast_node_trainer(data, **settings, resume=True).fit()
    assert resumed.history == stopped.history and resumed.stopped_early


# --- loader and trainer settings ------------------------------------------------------------------

def test_loaders_refuse_a_mask_of_the_wrong_length():
    data = small_dataset()
    mask = torch.zeros(599, dtype=torch.bool)
    mask[:50] = True
    with pytest.raises(ValueError, match="length 599.*600 nodes"):
        NodeLoader(data.graph, data.features, mask, [3], 16)
    table = TokenTable.build(data.graph, data.features, num_tokens=4, fanouts=(3, 2))
    with pytest.raises(ValueError, match="length 599.*600 nodes"):
        TokenLoader(table, mask, 16)
    full = torch.zeros(600, dtype=torch.bool)
    full[:50] = True
    assert len(NodeLoader(data.graph, data.features, full, [3], 16)) == 4


def test_negative_thread_counts_are_refused_at_construction():
    data = small_dataset()
    with pytest.raises(ValueError, match="num_threads must be an int >= 0"):
        NodeLoader(data.graph, data.features, data.splits["train"], [3], 16, num_threads=-1)
    with pytest.raises(ValueError, match="num_threads must be an int >= 0"):
        fast_node_trainer(data, num_threads=-1)
    with pytest.raises(ValueError, match="num_threads must be an int >= 0"):
        Trainer(LargeGTTask(data, num_tokens=4, num_threads=-1), progress=False)
    with pytest.raises(ValueError, match="num_threads must be an int >= 0"):
        Trainer(LinkTask(community_link_dataset(), num_threads=-1), progress=False)


def test_cuda_without_a_cuda_device_is_refused_at_construction(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = small_dataset()
    message = "device 'cuda' requested but torch has no CUDA device"
    with pytest.raises(ValueError, match=message):
        NodeLoader(data.graph, data.features, data.splits["train"], [3], 16, device="cuda")
    with pytest.raises(ValueError, match=message):
        fast_node_trainer(data, device="cuda")
    with pytest.raises(ValueError, match=message):
        Trainer(TemporalTask(small_stream(), batch_size=50, memory_dim=8, time_dim=8, embedding_dim=8), device="cuda",
                progress=False)
    with pytest.raises(ValueError, match=message):
        FeatureCache(UnifiedTensor(data.features), torch.tensor([0, 1]), device="cuda")


@pytest.mark.parametrize("command", [
    ["demo", "--scale", "0.001", "--epochs", "1"],
    ["bench", "ogb", "--dataset", "synthetic-arxiv", "--scale", "0.005", "--epochs", "1", "--quiet"],
])
def test_cli_refuses_negative_threads_as_a_usage_error(command, capsys, tmp_path):
    out = ["--out", str(tmp_path)] if command[0] == "bench" else []
    with pytest.raises(SystemExit) as exit:
        main(command + out + ["--threads", "-1"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert "argument --threads: threads must be 0" in error and "Traceback" not in error
