"""A dataset split over machines: parts written deterministically and refused when they do not
match their manifest; sampling over the parts equals the single-machine sampler; remote feature
rows equal a local gather (gloo ranks standing in for machines)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from gnnscale.datasets import generate_synthetic
from gnnscale.distributed.launch import spawn
from gnnscale.distributed.partition import open_partition, partition_dataset
from gnnscale.sampling import NeighborSampler

SPAWN_TIMEOUT_S = 30.0


def dataset():
    return generate_synthetic(2000, 16000, 8, 4, homophily=0.8, seed=5)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    for num_parts in (2, 3):
        partition_dataset(dataset(), num_parts, folder / f"p{num_parts}", seed=1)
    return folder


def test_parts_hold_every_node_edge_and_row_once(parts):
    data = dataset()
    manifest = json.loads((parts / "p3" / "partitions.json").read_text())
    opened = [open_partition(parts / "p3", p) for p in range(3)]
    old = opened[0].node_ids
    assert torch.equal(torch.sort(old).values, torch.arange(2000))
    assert sum(part.indices.numel() for part in opened) == data.graph.num_edges == manifest["num_edges"]
    incoming = data.graph.csc()
    remote = 0
    for part in opened:
        owned_old = old[part.first:part.stop]
        assert torch.equal(part.features, data.features[owned_old]) and torch.equal(part.labels, data.labels[owned_old])
        for v in (0, part.num_owned // 2, part.num_owned - 1):  # in-edges in the dataset's order, as new ids
            start, stop = incoming.indptr[owned_old[v]], incoming.indptr[owned_old[v] + 1]
            mine = slice(int(part.indptr[v]), int(part.indptr[v + 1]))
            assert torch.equal(old[part.indices[mine].long()], incoming.indices[start:stop].long())
            assert torch.equal(part.edge_ids[mine], incoming.edge_ids[start:stop])
        outside = (part.indices < part.first) | (part.indices >= part.stop)
        remote += int(outside.sum())
        assert torch.equal(torch.sort(part.halo).values, torch.unique(part.indices[outside].long()))
        assert bool((part.halo_references[:-1] >= part.halo_references[1:]).all())  # most referenced first
    assert manifest["edge_cut"] == pytest.approx(remote / data.graph.num_edges)
    assert manifest["edge_cut"] < 0.5 and max(manifest["balance"].values()) < 1.5  # METIS, not a random split
    for split in ("train", "valid", "test"):
        together = torch.cat([old[part.splits[split]] for part in opened])
        assert torch.equal(torch.sort(together).values, torch.sort(data.splits[split]).values)


def test_partitioning_is_deterministic_for_a_seed(parts, tmp_path):
    partition_dataset(dataset(), 3, tmp_path / "again", seed=1)
    first = json.loads((parts / "p3" / "partitions.json").read_text())["files"]
    assert json.loads((tmp_path / "again" / "partitions.json").read_text())["files"] == first


def test_parts_that_do_not_match_their_manifest_are_refused(parts, tmp_path):
    shutil.copytree(parts / "p2", tmp_path / "p")
    features = tmp_path / "p" / "part-1" / "features.npy"
    data = bytearray(features.read_bytes())
    data[-3] ^= 0xFF
    features.write_bytes(bytes(data))
    open_partition(tmp_path / "p", 0)  # the other part is sound
    with pytest.raises(ValueError, match="part-1/features.npy: its sha256 checksum differs"):
        open_partition(tmp_path / "p", 1)
    features.write_bytes(bytes(data[:-8]))
    with pytest.raises(ValueError, match="features.npy is .* bytes but"):
        open_partition(tmp_path / "p", 1, verify=False)
    manifest_path = tmp_path / "p" / "partitions.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["node_offsets"] = [0, 5, 3, 2000]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="node_offsets"):
        open_partition(tmp_path / "p", 0)
    manifest["node_offsets"], manifest["files"]["../escape.npy"] = [0, 1000, 2000], manifest["files"]["node_ids.npy"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="outside its parts"):
        open_partition(tmp_path / "p", 0)
    with pytest.raises(ValueError, match="part must be an int"):
        open_partition(parts / "p2", 2)
    with pytest.raises(FileNotFoundError, match="partitions.json"):
        open_partition(tmp_path, 0)


def test_bad_partitioning_requests_are_refused(tmp_path):
    data = dataset()
    with pytest.raises(ValueError, match="num_parts"):
        partition_dataset(data, 0, tmp_path / "x")
    with pytest.raises(ValueError, match="would own no node"):
        partition_dataset(data, 3, tmp_path / "x", parts=torch.zeros(2000, dtype=torch.int64))
    assert not (tmp_path / "x").exists()


def test_the_partition_command_reports_and_verifies(tmp_path, capsys):
    from gnnscale.programs.main import main

    out = tmp_path / "parts"
    assert main(["partition", "--dataset", "synthetic-arxiv", "--scale", "0.01", "--parts", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 parts written" in printed and "edge cut" in printed and "part 1:" in printed and "halo" in printed
    assert main(["partition", "--verify", str(out)]) == 0
    assert "match their sizes and sha256 checksums" in capsys.readouterr().out
    assert main(["partition", "--dataset", "synthetic-arxiv", "--out", str(out)]) == 2
    assert "--parts" in capsys.readouterr().err


# ---------------------------------------------------------------------- on gloo ranks
def _sample_on_parts(folder, settings):
    """Runs on every rank: samples around its own nodes for each (fanouts, replace) of ``settings``."""
    from gnnscale.distributed.ranks import current_ranks
    from gnnscale.distributed.sampler import DistributedNeighborSampler

    rank = current_ranks().rank
    part = open_partition(folder, rank)
    outcomes = []
    for fanouts, replace in settings:
        sampler = DistributedNeighborSampler(part, fanouts, replace=replace)
        samples = []
        for step in range(3):
            gen = torch.Generator().manual_seed(100 * rank + step)
            owned = part.first + torch.randperm(part.num_owned, generator=gen)[:40 + 10 * rank]
            sample = sampler.sample(owned, seed=step)
            samples.append({"seeds": part.node_ids[owned], "node": part.node_ids[sample.node], "row": sample.row,
                            "col": sample.col, "edge": sample.edge, "nodes": sample.num_sampled_nodes,
                            "edges": sample.num_sampled_edges})
        outcomes.append((samples, sampler.requests, sampler.served))
    return outcomes


SAMPLING = {2: [([5, 3], False), ([6, 2, 2], True)], 3: [([4, -1], False)]}


@pytest.mark.parametrize("num_parts", sorted(SAMPLING))
def test_sampling_over_parts_equals_the_single_machine_sampler(parts, num_parts):
    data = dataset()
    ranks = spawn(num_parts, _sample_on_parts, str(parts / f"p{num_parts}"), SAMPLING[num_parts],
                  timeout_s=SPAWN_TIMEOUT_S)
    for index, (fanouts, replace) in enumerate(SAMPLING[num_parts]):
        reference = NeighborSampler(data.graph, fanouts, replace=replace)
        for samples, requests, _ in (outcomes[index] for outcomes in ranks):
            for step, got in enumerate(samples):
                expected = reference.sample(got["seeds"], seed=step)
                assert torch.equal(got["node"], expected.node)
                assert torch.equal(got["row"], expected.row) and torch.equal(got["col"], expected.col)
                assert torch.equal(got["edge"], expected.edge)
                assert got["nodes"] == expected.num_sampled_nodes and got["edges"] == expected.num_sampled_edges
            assert requests > 0  # the parts did ask each other
        # every request answered once
        assert sum(o[index][1] for o in ranks) == sum(o[index][2] for o in ranks)


def _gather_on_parts(folder, caches):
    """Runs on every rank: gathers random rows through a store for each (cache_bytes, policy)."""
    from gnnscale.distributed.features import DistributedFeatures, presampled_hot_ids
    from gnnscale.distributed.ranks import current_ranks
    from gnnscale.distributed.sampler import DistributedNeighborSampler

    rank = current_ranks().rank
    part = open_partition(folder, rank)
    outcomes = []
    for cache_bytes, policy in caches:
        hot = None
        if policy == "presampling":
            sampler = DistributedNeighborSampler(part, [5, 5])
            hot = presampled_hot_ids(sampler, part.splits["train"], batch_size=64, num_batches=4)
            assert hot.numel() > 200 and not bool(((hot >= part.first) & (hot < part.stop)).any())
        features = DistributedFeatures(part, cache_bytes=cache_bytes, hot_ids=hot)
        gathered = []
        for step in range(4):
            gen = torch.Generator().manual_seed(10 * rank + step)
            ids = torch.randint(0, part.num_nodes, (300 + 50 * rank,), generator=gen)
            if step == 2 and rank == 1:
                ids = ids[:0]  # a rank asking for nothing still answers the others
            gathered.append((part.node_ids[ids], features.gather(ids)))
        outcomes.append((gathered, features.stats()))
    return outcomes


def test_remote_rows_equal_a_local_gather(parts):
    data = dataset()
    caches = [(0, "references"), (200 * 8 * 4, "references"), (200 * 8 * 4, "presampling")]
    ranks = spawn(3, _gather_on_parts, str(parts / "p3"), caches, timeout_s=SPAWN_TIMEOUT_S)
    for index, (cache_bytes, _) in enumerate(caches):
        for gathered, stats in (outcomes[index] for outcomes in ranks):
            for old_ids, rows in gathered:
                assert torch.equal(rows, data.features[old_ids])
            remote = stats["requests"] - stats["local"]
            assert 0 < stats["fetched"] <= remote - stats["cache_hits"]  # duplicates fetched once
            if cache_bytes:
                assert stats["cached_rows"] == 200 and 0 < stats["cache_hit_rate"] < 1
            else:
                assert stats["cached_rows"] == 0 and stats["cache_hits"] == 0
            assert stats["fetched_bytes"] == stats["fetched"] * 8 * 4
        assert sum(o[index][1]["fetched"] for o in ranks) == sum(o[index][1]["served"] for o in ranks)


# ---------------------------------------------------------------------- training over the parts
def _train_on_parts(folder, batch_size):
    from gnnscale.train import Trainer
    from gnnscale.train.partitioned import PartitionedNodeTask

    torch.set_num_threads(1)
    task = PartitionedNodeTask(folder, "sage", fanouts=[-1, -1], batch_size=batch_size, hidden=16, dropout=0.0,
                               cache_gib=1e-4, eval_batch_size=150)  # parts of unequal sizes take unequal steps
    result = Trainer(task, epochs=2, lr=0.01, seed=3, progress=False).fit()
    return [row["loss"] for row in result.history], result.metrics, task.feature_tiers()


def test_training_over_parts_equals_one_machine_with_the_global_batch(parts):
    """Full neighbourhoods and no dropout: the same global batches (each rank training on the
    nodes it owns) give the one process's losses and metrics."""
    from gnnscale.datasets import NodeDataset
    from gnnscale.train import NodeTask, Trainer

    data = dataset()
    splits = {**data.splits, "train": torch.sort(data.splits["train"]).values}  # the order parts train in
    alone = NodeDataset(data.name, data.graph, data.features, data.labels, splits, num_classes=data.num_classes)
    task = NodeTask(alone, "sage", fanouts=[-1, -1], batch_size=128, hidden=16, dropout=0.0, num_threads=0)
    expected = Trainer(task, epochs=2, lr=0.01, seed=3, progress=False).fit()
    ranks = spawn(2, _train_on_parts, str(parts / "p2"), 64, timeout_s=60.0)
    for losses, metrics, tiers in ranks:
        assert losses == pytest.approx([row["loss"] for row in expected.history], rel=1e-4)
        assert metrics == pytest.approx(expected.metrics, abs=1e-6)
        assert tiers["remote_fetch"]["rows"] > 0 and 0 < tiers["remote_cache"]["hit_rate"] < 1


# ---------------------------------------------------------------------- two machines under torchrun
def _machine(node_rank, port, folder, out, log, *options):
    """One 'machine' of a two-node torchrun job on the loopback interface."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node_rank}",
               "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "gnnscale", "bench",
               "ogb", "--partitions", str(folder), "--fanouts", "5,5", "--batch-size", "64", "--hidden", "16",
               "--device", "cpu", "--out", str(out), *map(str, options)]
    from conftest import PROJECT

    return subprocess.Popen(command, cwd=PROJECT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)


def test_two_machines_under_torchrun_train_over_their_parts(parts, tmp_path):
    from test_parallel_failures import _free_port

    port = _free_port()
    logs = [tmp_path / f"machine{rank}.log" for rank in range(2)]
    machines = [_machine(rank, port, parts / "p2", tmp_path / "out", logs[rank], "--epochs", 3, "--quiet",
                         "--remote-cache-gib", 0.0001) for rank in range(2)]
    try:
        status = [machine.wait(timeout=240) for machine in machines]
    finally:
        for machine in machines:
            if machine.poll() is None:
                os.killpg(machine.pid, signal.SIGKILL)
    assert status == [0, 0], [log.read_text()[-2000:] for log in logs]
    report = json.loads((tmp_path / "out" / "synthetic_sage.json").read_text())
    assert report["world_size"] == 2 and len(report["runs"]) == 1
    assert report["runs"][0]["feature_tiers"]["remote_fetch"]["rows"] > 0
    assert "remote cache" in logs[0].read_text()


def test_a_killed_machine_makes_the_other_exit_naming_it(parts, tmp_path):
    from test_parallel_failures import _free_port

    port, timeout_s = _free_port(), 10
    logs = [tmp_path / f"machine{rank}.log" for rank in range(2)]
    machines = [_machine(rank, port, parts / "p2", tmp_path / "out", logs[rank], "--epochs", 100000,
                         "--dist-timeout", timeout_s) for rank in range(2)]
    try:
        deadline = time.monotonic() + 240
        while "loss=" not in logs[0].read_text():  # both machines are training
            assert time.monotonic() < deadline and machines[0].poll() is None, logs[0].read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(machines[1].pid, signal.SIGKILL)
        killed = time.monotonic()
        status = machines[0].wait(timeout=timeout_s + 90)
        waited = time.monotonic() - killed
    finally:
        for machine in machines:
            if machine.poll() is None:
                os.killpg(machine.pid, signal.SIGKILL)
            machine.wait()
    output = logs[0].read_text()
    assert status != 0 and waited < timeout_s + 60, (status, waited, output[-3000:])
    assert "rank 1" in output, output[-3000:]
