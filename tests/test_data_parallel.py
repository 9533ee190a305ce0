"""Data-parallel training: N gloo ranks with per-rank batch B/N train as one process with batch B
(same losses per epoch, same parameters, same evaluation), for the node, link and LargeGT tasks;
the loaders split every global batch exactly; a task that cannot run data-parallel says so."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from gnnscale import Graph
from gnnscale.datasets import LinkDataset, generate_synthetic
from gnnscale.loader import LinkLoader, NodeLoader
from gnnscale.distributed.launch import spawn
from gnnscale.train import LargeGTTask, LinkTask, NodeTask, TemporalTask, Trainer

from conftest import PROJECT

SPAWN_TIMEOUT_S = 30.0
GLOBAL_BATCH = 128  # 900 training nodes: 7 full batches and one of 4 (2 per rank)


def node_dataset():
    return generate_synthetic(1500, 12000, 16, 4, homophily=0.8, feature_signal=0.3, seed=4)


def link_dataset():
    data = generate_synthetic(600, 3000, 8, 4, homophily=0.9, feature_signal=1.0, seed=1)
    row, col = data.graph.edge_index()
    undirected = torch.stack([row[row < col], col[row < col]], dim=1)
    gen = torch.Generator().manual_seed(1)
    undirected = undirected[torch.randperm(undirected.size(0), generator=gen)]
    held_out = undirected.size(0) // 10
    valid, test, train = undirected[:held_out], undirected[held_out:2 * held_out], undirected[2 * held_out:]
    graph = Graph.from_edge_index(train.t().contiguous(), 600, symmetrize=True)
    split = {"train": {"edge": train},
             "valid": {"edge": valid, "edge_neg": torch.randint(0, 600, (300, 2), generator=gen)},
             "test": {"edge": test, "edge_neg": torch.randint(0, 600, (300, 2), generator=gen)}}
    return LinkDataset(name="communities", graph=graph, features=data.features, edge_split=split, metric="hits@20")


# Full neighbourhoods (fanout -1) and no dropout: nothing random but the batch order and the
# negatives, which the ranks take from the one global draw.
def make_task(kind, world_size):
    batch_size = GLOBAL_BATCH // world_size
    if kind == "node":
        return NodeTask(node_dataset(), "sage", fanouts=[-1, -1], batch_size=batch_size, hidden=32, dropout=0.0)
    if kind == "link":
        return LinkTask(link_dataset(), "sage", fanouts=[-1, -1], batch_size=batch_size * 4, hidden=32,
                        dropout=0.0, eval_batch_size=100)
    return LargeGTTask(node_dataset(), num_tokens=8, fanouts=[4, 2], hidden=32, heads=2, dropout=0.0,
                       attention_dropout=0.0, use_global=False, batch_size=batch_size)


def train_each(kinds, world_size):
    return {kind: train(kind, world_size) for kind in kinds}


def train(kind, world_size, epochs=3):
    """Runs on every rank (or alone): what must match between 1 and N ranks."""
    torch.set_num_threads(1)
    trainer = Trainer(make_task(kind, world_size), epochs=epochs, lr=0.01, seed=3, progress=False)
    result = trainer.fit()
    return {"losses": [row["loss"] for row in result.history], "metrics": result.metrics,
            "items": result.history[0][next(k for k in result.history[0] if k.endswith("_per_second"))] *
            result.history[0]["seconds"],
            "parameters": {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}}


KINDS = ("node", "link", "largegt")


@pytest.fixture(scope="module")
def two_ranks():
    """Each kind of task trained on 2 ranks (one start of the ranks for all: starting costs more
    than training here)."""
    return spawn(2, train_each, KINDS, 2, timeout_s=SPAWN_TIMEOUT_S)


@pytest.mark.parametrize("kind", KINDS)
def test_two_ranks_train_as_one_process_with_their_summed_batch(kind, two_ranks):
    alone = train(kind, 1)
    ranks = [outcomes[kind] for outcomes in two_ranks]
    for outcome in ranks:
        assert outcome["losses"] == pytest.approx(alone["losses"], rel=1e-4)
        assert outcome["metrics"] == pytest.approx(alone["metrics"], abs=1e-6)
        assert outcome["items"] == pytest.approx(alone["items"])  # every item trained on, once
        # LargeGT's attention has parameters with no gradient but rounding noise (key biases, a
        # pooling score's bias), which Adam scales up to full steps: its outputs match, not those.
        for name, value in alone["parameters"].items() if kind != "largegt" else ():
            torch.testing.assert_close(outcome["parameters"][name], value, rtol=1e-3, atol=1e-5, msg=name)
    # the ranks hold identical models
    for name, value in ranks[0]["parameters"].items():
        assert torch.equal(ranks[1]["parameters"][name], value), name


def test_node_loader_ranks_split_every_global_batch_of_the_one_order():
    dataset = node_dataset()
    seeds = dataset.splits["train"]
    shares = [NodeLoader(dataset.graph, None, seeds, [2], 42, seed=7, num_threads=0, rank=r, world_size=3)
              for r in range(3)]
    single = NodeLoader(dataset.graph, None, seeds, [2], 126, seed=7, num_threads=0)
    assert all(len(share) == len(single) == 8 for share in shares)  # 900 = 7 * 126 + 18
    # batch b of 3 ranks of 42 seeds each holds batch b of one process of 126, in order
    for epoch in (1, 2):
        expected = [b.n_id[:b.batch_size].tolist() for b in single.iterate(epoch)]
        together = [sum((b.n_id[:b.batch_size].tolist() for b in batches), [])
                    for batches in zip(*[list(share.iterate(epoch)) for share in shares])]
        assert together == expected


def test_a_final_batch_smaller_than_the_ranks_is_dropped_on_every_rank():
    dataset = node_dataset()
    seeds = dataset.splits["train"][:10]  # 10 = 2 * (2 ranks * 2) + 2 left over, fewer than 3 ranks
    counts = [len(NodeLoader(dataset.graph, None, seeds, [2], 3, rank=r, world_size=3)) for r in range(3)]
    assert counts == [1, 1, 1]  # one global batch of 9; the 10th seed would leave two ranks empty
    assert len(NodeLoader(dataset.graph, None, seeds, [2], 3)) == 4


def test_link_loader_ranks_take_their_share_of_the_global_negatives():
    dataset = link_dataset()
    edges = dataset.edge_split["train"]["edge"].t()
    alone = next(iter(LinkLoader(dataset.graph, None, edges, [2], 100, num_negatives=2, seed=5, num_threads=0)))
    shares = [next(iter(LinkLoader(dataset.graph, None, edges, [2], 50, num_negatives=2, seed=5, num_threads=0,
                                   rank=r, world_size=2))) for r in range(2)]

    def pairs(batch):  # global ids of (source, target, label), positives then negatives
        ids = batch.n_id[batch.edge_label_index]
        return [tuple(p) + (int(l),) for p, l in zip(ids.t().tolist(), batch.edge_label.tolist())]

    positives = [p for batch in shares for p in pairs(batch) if p[2] == 1]
    negatives = [p for batch in shares for p in pairs(batch) if p[2] == 0]
    assert positives == [p for p in pairs(alone) if p[2] == 1]
    assert negatives == [p for p in pairs(alone) if p[2] == 0]


def test_a_task_that_trains_in_one_process_refuses_many_ranks(monkeypatch):
    from gnnscale.datasets.base import TemporalDataset
    from gnnscale.distributed import Ranks
    from gnnscale.train import trainer

    events = 200
    stream = TemporalDataset(name="tiny", src=torch.randint(0, 20, (events,)), dst=torch.randint(20, 40, (events,)),
                             t=torch.arange(events, dtype=torch.float64), edge_features=None, labels=None,
                             num_nodes=40, splits={"train": torch.arange(140), "valid": torch.arange(140, 170),
                                                   "test": torch.arange(170, events)})
    monkeypatch.setattr(trainer, "current_ranks", lambda: Ranks(1, 2))  # as rank 1 of a torchrun job
    with pytest.raises(ValueError, match="TemporalTask trains in one process, but this is rank 1 of 2"):
        Trainer(TemporalTask(stream), epochs=1, progress=False)


# ---------------------------------------------------------------------- one table per machine
def _resident_peak_while_training(folder, world_size):
    """Trains an epoch from the dataset saved in ``folder`` while a thread samples this process's
    memory in two parts: the resident size of its mappings of the dataset's files (the pages every
    rank shares) and the proportional set size of everything else. Returns each part's peak rise
    over its size before loading. Counting the files' pages by resident size, once over the ranks,
    keeps the sum independent of which rank happened to fault a page in first (a proportional share
    looks whole until every rank has mapped the page, and the kernel may drop and refault pages of
    a clean file mapping at any time). The interpreter and torch (some 400 MiB per process) are left
    out: they are the same for any data-parallel trainer."""
    import threading

    from gnnscale import load_dataset

    torch.set_num_threads(1)
    folder_prefix = os.path.realpath(folder) + os.sep
    peak, done = [0, 0], threading.Event()

    def memory():
        table, other, in_table = 0, 0, False
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                field = line.split()
                if not field[0].endswith(":"):  # a mapping's header: address range ... [path]
                    in_table = len(field) >= 6 and field[5].startswith(folder_prefix)
                elif field[0] == "Rss:" and in_table:
                    table += int(field[1]) * 1024
                elif field[0] == "Pss:" and not in_table:
                    other += int(field[1]) * 1024
        return table, other

    def sample():
        while not done.is_set():
            for part, value in enumerate(memory()):
                peak[part] = max(peak[part], value)
            done.wait(0.02)

    if world_size > 1:
        torch.distributed.barrier()  # every rank has imported what it needs before the baseline
    before = memory()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    dataset = load_dataset(folder)
    assert float(dataset.features.sum()) == dataset.features.numel()  # every page of the table read
    task = NodeTask(dataset, "sage", fanouts=[5, 5], batch_size=512 // world_size, hidden=16)
    Trainer(task, epochs=1, progress=False).train_epoch(1)
    done.set()
    sampler.join()
    return peak[0] - before[0], peak[1] - before[1]


def test_ranks_share_one_memory_mapped_feature_table(tmp_path):
    import numpy as np

    from gnnscale.datasets import NodeDataset, save_dataset

    num_nodes, width = 2 ** 18, 1024  # a 1 GiB feature table: several times one process's own memory
    gen = torch.Generator().manual_seed(0)
    graph = Graph.from_edge_index(torch.randint(0, num_nodes, (2, 2 ** 17), generator=gen), num_nodes, symmetrize=True)
    features = torch.from_numpy(np.ones((num_nodes, width), dtype=np.float32))
    order = torch.randperm(num_nodes, generator=gen)
    dataset = NodeDataset("wide", graph, features, torch.randint(0, 4, (num_nodes,), generator=gen),
                          {"train": order[:2048], "valid": order[2048:3072], "test": order[3072:4096]}, num_classes=4)
    save_dataset(dataset, tmp_path / "wide")
    del dataset, features
    (one,) = spawn(1, _resident_peak_while_training, str(tmp_path / "wide"), 1, timeout_s=SPAWN_TIMEOUT_S)
    two = spawn(2, _resident_peak_while_training, str(tmp_path / "wide"), 2, timeout_s=SPAWN_TIMEOUT_S)
    assert one[0] > 0.95 * 2 ** 30  # the whole table is resident
    shared_once = max(table for table, _ in two) + sum(other for _, other in two)
    mib = [[round(part / 2 ** 20) for part in rank] for rank in (one, *two)]
    assert shared_once < 1.3 * sum(one), mib  # a copy of the table per rank would be 2x


# ---------------------------------------------------------------------- torchrun jobs
JOB = str(Path(__file__).with_name("data_parallel_job.py"))
JOB_TIMEOUT_S = 240  # importing torch in several processes on a busy 2-core machine


def _torchrun(nproc, *options):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           JOB, *map(str, options)], cwd=PROJECT, capture_output=True, text=True,
                          timeout=JOB_TIMEOUT_S, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_killed_torchrun_job_resumes_to_the_uninterrupted_result(tmp_path):
    whole = _torchrun(2, "--epochs", 4, "--out", tmp_path / "whole.json")
    assert whole.returncode == 0, whole.stderr[-3000:]
    checkpoints = tmp_path / "checkpoints"
    killed = _torchrun(2, "--epochs", 4, "--checkpoint-dir", checkpoints, "--kill-at", 3)
    assert killed.returncode != 0 and not (tmp_path / "resumed.json").exists()
    shutil.copytree(checkpoints, tmp_path / "after-the-kill")
    resumed = _torchrun(2, "--epochs", 4, "--checkpoint-dir", checkpoints, "--resume", "--out", tmp_path / "resumed.json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((tmp_path / "whole.json").read_text())
    assert json.loads((tmp_path / "resumed.json").read_text()) == expected  # bit for bit, dropout included

    # One process resumes the two ranks' checkpoint from the epoch after it (batches of 64 from there)
    alone = subprocess.run([sys.executable, JOB, "--epochs", "5", "--checkpoint-dir", str(tmp_path / "after-the-kill"),
                            "--resume", "--out", str(tmp_path / "alone.json")], cwd=PROJECT, capture_output=True,
                           text=True, timeout=JOB_TIMEOUT_S)
    assert alone.returncode == 0, alone.stderr[-3000:]
    continued = json.loads((tmp_path / "alone.json").read_text())
    assert continued["world_size"] == 1 and continued["epochs"] == [1, 2, 3, 4, 5]
    assert continued["losses"][:2] == expected["losses"][:2]


def test_a_killed_rank_makes_the_survivor_exit_naming_it(tmp_path):
    from test_parallel_failures import _free_port, _rank_environment

    port, started, timeout_s = _free_port(), tmp_path / "started", 10
    logs = [tmp_path / f"rank{rank}.log" for rank in range(2)]
    ranks = [subprocess.Popen([sys.executable, JOB, "--epochs", "1000", "--started", str(started),
                               "--timeout", str(timeout_s)], cwd=PROJECT, stdout=open(log, "w"),
                              stderr=subprocess.STDOUT, env={**os.environ, **_rank_environment(rank, 2, port)})
              for rank, log in enumerate(logs)]
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not Path(f"{started}.rank1").exists():
            assert time.monotonic() < deadline and ranks[0].poll() is None, logs[0].read_text()[-3000:]
            time.sleep(0.1)
        ranks[1].kill()
        killed = time.monotonic()
        status = ranks[0].wait(timeout=timeout_s + 60)
        waited = time.monotonic() - killed
    finally:
        for rank in ranks:
            rank.kill()
            rank.wait()
    output = logs[0].read_text()
    assert status != 0 and waited < timeout_s + 30, (status, waited, output[-3000:])
    assert "rank 1" in output, output[-3000:]


def test_bench_ogb_trains_on_ranks_it_starts_and_records_their_number(tmp_path):
    from conftest import real_data_root

    run = subprocess.run([sys.executable, "-m", "gnnscale", "bench", "ogb", "--dataset", "cora", "--nproc", "2",
                          "--epochs", "8", "--fanouts", "10,10", "--batch-size", "32", "--quiet", "--out",
                          str(tmp_path)], cwd=PROJECT, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
                         env={**os.environ, "GNNSCALE_DATA": str(real_data_root())})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "Cora_sage.json").read_text())
    assert report["world_size"] == 2 and "2 ranks" in run.stdout
    assert report["runs"][0]["test"] >= 0.7  # batches of 2 x 32 seeds, 8 epochs
    assert not any(path.name.startswith("gnnscale-shared-") for path in Path(tempfile.gettempdir()).iterdir()
                   if path.stat().st_mtime > time.time() - JOB_TIMEOUT_S), "the shared copy was left behind"
