"""Checkpoints of parallel full-graph training (each rank its own share): a run whose rank is killed with SIGKILL resumes
to the result of an uninterrupted run, also from the files a kill between two ranks' writes
leaves; a resume with other settings, another world size or a damaged file is refused clearly."""
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from torch.multiprocessing.spawn import ProcessException

from gnnscale.datasets import generate_synthetic
from gnnscale.distributed.launch import spawn

from conftest import PROJECT, real_data_root
from test_parallel import trainer_for
from test_parallel_failures import _free_port, _rank_environment

# Two pipeline stages (each rank owns other layers) over two chunks (history buffers carry state
# across epochs), with dropout (per-layer generators carry state too).
PIPELINE = dict(stages=2, chunks=2, num_layers=4, hidden=8, dropout=0.5, lr=0.02, epochs=6, seed=5,
                partitioner="contiguous")
KILLED_AFTER = 3  # rank 1 SIGKILLs itself once the checkpoint of this many epochs is written
SPAWN_TIMEOUT_S = 20.0


def tiny_graph():
    return generate_synthetic(200, 1000, num_features=12, num_classes=3, seed=0)


def _files(folder):
    return sorted(path.name for path in folder.iterdir())


def _newest_epochs(folder):
    """rank -> the newest epoch of its checkpoints in ``folder``."""
    newest = {}
    for name in _files(folder):
        rank, epochs = map(int, name[len("rank"):-len(".pt")].split("-epoch"))
        newest[rank] = max(epochs, newest.get(rank, 0))
    return newest


def _outcome(trainer, result):
    """What must match between a resumed and an uninterrupted run, from one rank."""
    return {"best_epoch": result.best_epoch, "metrics": result.metrics,
            "losses": [row["loss"] for row in result.history],
            "validation": [row.get("valid") for row in result.history], "traffic": trainer.task.traffic(),
            "parameters": {name: p.detach().clone() for name, p in trainer.modules.named_parameters()}}


# ---------------------------------------------------------------------- on the ranks
def _train_until_rank_one_is_killed(folder):
    trainer = trainer_for(tiny_graph(), dict(PIPELINE, checkpoint_dir=folder))

    def kill_rank_one(row):
        if trainer.ranks.rank == 1 and row["epoch"] == KILLED_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer.fit(on_epoch_end=kill_rank_one)


def _refusal(options):
    try:
        trainer_for(tiny_graph(), options).fit()
    except ValueError as error:
        return str(error)
    return None


def _resume_runs(killed, torn, damaged):
    dataset = tiny_graph()
    runs = {}
    reference = trainer_for(dataset, PIPELINE)
    runs["reference"] = _outcome(reference, reference.fit())

    resumed = trainer_for(dataset, dict(PIPELINE, checkpoint_dir=killed, resume=True))

    def leave_torn_files(row):
        # Rank 1's file of the epoch after the kill, beside rank 0's older one: what a SIGKILL
        # of rank 0 between the two ranks' writes of that epoch leaves.
        if resumed.ranks.rank == 1 and row["epoch"] == KILLED_AFTER + 1:
            shutil.copy(resumed.checkpoints.path(KILLED_AFTER + 1), torn)

    runs["resumed"] = _outcome(resumed, resumed.fit(on_epoch_end=leave_torn_files))
    torn_trainer = trainer_for(dataset, dict(PIPELINE, checkpoint_dir=torn, resume=True))
    runs["torn"] = _outcome(torn_trainer, torn_trainer.fit())
    runs["other lr"] = _refusal(dict(PIPELINE, lr=0.05, checkpoint_dir=killed, resume=True))
    runs["damaged"] = _refusal(dict(PIPELINE, checkpoint_dir=damaged, resume=True))
    return runs


# ---------------------------------------------------------------------- the tests
def test_resume_after_a_rank_is_killed_matches_an_uninterrupted_run(tmp_path):
    killed, torn, damaged = tmp_path / "killed", tmp_path / "torn", tmp_path / "damaged"
    with pytest.raises(ProcessException):
        spawn(2, _train_until_rank_one_is_killed, str(killed), timeout_s=SPAWN_TIMEOUT_S)
    # Rank 0 could not finish another epoch without rank 1: both stopped at the same checkpoint
    # (rank 0 may not have deleted its previous one before it was ended).
    assert _newest_epochs(killed) == {0: KILLED_AFTER, 1: KILLED_AFTER}
    shutil.copytree(killed, torn)
    shutil.copytree(killed, damaged)
    rank1 = damaged / f"rank1-epoch{KILLED_AFTER}.pt"
    rank1.write_bytes(rank1.read_bytes()[:200])  # rank 1's file only: rank 0 must not go on alone

    ranks = spawn(2, _resume_runs, str(killed), str(torn), str(damaged), timeout_s=SPAWN_TIMEOUT_S)

    for rank, runs in enumerate(ranks):
        reference = runs["reference"]
        for name in ("resumed", "torn"):
            run = runs[name]
            assert run["best_epoch"] == reference["best_epoch"], (rank, name)
            assert run["metrics"] == reference["metrics"], (rank, name)
            assert run["losses"] == reference["losses"], (rank, name)
            assert run["validation"] == reference["validation"], (rank, name)
            assert run["traffic"] == reference["traffic"], (rank, name)
            assert set(run["parameters"]) == set(reference["parameters"])
            for parameter, value in reference["parameters"].items():
                assert torch.equal(run["parameters"][parameter], value), (rank, name, parameter)
        assert "optimizer.lr: 0.02 in the checkpoint, 0.05 now" in runs["other lr"], runs["other lr"]
        assert f"rank1-epoch{KILLED_AFTER}.pt cannot be read" in runs["damaged"], runs["damaged"]
    assert set(ranks[0]["reference"]["parameters"]).isdisjoint(ranks[1]["reference"]["parameters"])
    assert _files(killed) == ["rank0-epoch6.pt", "rank1-epoch6.pt"]
    assert _files(torn) == ["rank0-epoch6.pt", "rank1-epoch6.pt"]

    # The 2-rank checkpoint resumed by one process: the world size and the layout differ.
    with pytest.raises(ValueError) as refused:
        trainer_for(tiny_graph(), dict(PIPELINE, stages=1, checkpoint_dir=str(killed), resume=True)).fit()
    message = str(refused.value)
    assert "world_size: 2 in the checkpoint, 1 now" in message and "config.stages: 2" in message, message


# ---------------------------------------------------------------------- one process
SINGLE = dict(num_layers=2, hidden=8, dropout=0.5, epochs=4, seed=1, chunks=2, partitioner="contiguous")


@pytest.fixture(scope="module")
def graph():
    return tiny_graph()


def _single(graph, folder, resume=False, **overrides):
    return trainer_for(graph, {**SINGLE, **overrides, "checkpoint_dir": str(folder), "resume": resume})


def test_single_process_resume_grows_epochs_and_equals_one_run(graph, tmp_path):
    whole = trainer_for(graph, {**SINGLE, "epochs": 6}).fit()
    _single(graph, tmp_path, epochs=2).fit()
    assert _files(tmp_path) == ["rank0-epoch2.pt"]
    resumed = _single(graph, tmp_path, resume=True, epochs=6).fit()
    # Epoch 2 was evaluated as the last of the first run; training itself is unchanged.
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in whole.history]
    assert [row["valid"] for row in resumed.history[2:]] == [row["valid"] for row in whole.history[2:]]
    assert _files(tmp_path) == ["rank0-epoch6.pt"]
    with pytest.raises(ValueError, match="has trained 6 epochs, more than epochs=5; resume with epochs >= 6"):
        _single(graph, tmp_path, resume=True, epochs=5).fit()


def test_damaged_or_foreign_checkpoints_are_clear_errors(graph, tmp_path):
    _single(graph, tmp_path, epochs=1).fit()
    path = tmp_path / "rank0-epoch1.pt"
    torch.save({"parameters": {}}, path)
    with pytest.raises(ValueError, match="does not record the settings of the run that wrote it"):
        _single(graph, tmp_path, resume=True).fit()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="rank0-epoch1.pt cannot be read"):
        _single(graph, tmp_path, resume=True).fit()
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        trainer_for(graph, {**SINGLE, "resume": True})


def test_a_fresh_run_replaces_older_checkpoints(graph, tmp_path):
    (tmp_path / "rank0-epoch9.pt").write_bytes(b"from an older run")
    (tmp_path / ".rank0-epoch3.pt.0123abcd.tmp").write_bytes(b"a write a kill cut short")
    _single(graph, tmp_path, epochs=1).fit()
    assert _files(tmp_path) == ["rank0-epoch1.pt"]


# ---------------------------------------------------------------------- the command line
def test_rank_command_checkpoints_and_refuses_a_resume_with_other_settings(tmp_path):
    """``python -m gnnscale.programs.pipe`` as torchrun starts it, as one rank (cheaper than two)."""
    checkpoints = tmp_path / "checkpoints"
    command = [sys.executable, "-m", "gnnscale.programs.pipe", "--dataset", "cora", "--root", str(real_data_root()),
               "--mode", "pipeline", "--layers", "2", "--hidden", "8", "--partitioner", "contiguous", "--quiet",
               "--out", str(tmp_path), "--checkpoint-dir", str(checkpoints)]

    def run(*options):
        return subprocess.run(command + list(options), capture_output=True, text=True, cwd=PROJECT, timeout=300,
                              env={**os.environ, **_rank_environment(0, 1, _free_port())})

    first = run("--epochs", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert _files(checkpoints) == ["rank0-epoch2.pt"]
    refused = run("--epochs", "3", "--lr", "0.1", "--resume")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "optimizer.lr: 0.005 in the checkpoint, 0.1 now" in refused.stderr, refused.stderr[-3000:]
    assert _files(checkpoints) == ["rank0-epoch2.pt"]


def test_pipe_resume_needs_a_checkpoint_dir(capsys):
    from gnnscale.programs.main import main

    assert main(["pipe", "--resume"]) == 2  # refused before torchrun starts any rank
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err
