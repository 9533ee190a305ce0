"""Training over the parts of a partitioned dataset on loopback: a products-shaped synthetic graph
split by METIS for 2 and 4 machines (one gloo rank each, all on this machine), GraphSAGE [15, 10, 5]
with a global batch of 1024, against one process training on the whole graph with that batch.

    python bench/distributed.py [--scale 0.05] [--epochs 3] [--parts 2,4] [--cache-fraction 0.1]

Per configuration: training seconds per epoch (the mean over the epochs after the first), the
remote feature rows and bytes fetched per epoch summed over the machines, remote sampling
requests (frontier nodes another machine drew for) per epoch, the edge cut, and test accuracy
after the epochs. Each partitioned configuration runs twice on the same batches: without a
cache, which fetches what DistDGL's design fetches (every remote row a batch needs, once per
batch), and with each machine caching --cache-fraction of the rows it does not own (those that
pre-sampling of its training nodes reaches most); the ratio of their fetched bytes is the cache's
saving. Writes
bench/results/distributed.json.
"""
import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import write_result

FANOUTS = [15, 10, 5]
GLOBAL_BATCH = 1024
TARGETS = {"fetched_bytes_with_cache_over_without": 0.5, "epoch_time_two_machines_over_one": 1.5}


def train_one_machine(dataset, epochs: int):
    from gnnscale.train import NodeTask, Trainer

    torch.set_num_threads(2)
    trainer = Trainer(NodeTask(dataset, "sage", fanouts=FANOUTS, batch_size=GLOBAL_BATCH, hidden=256),
                      epochs=epochs, seed=0, progress=False)
    seconds = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        seconds.append(time.perf_counter() - start)
    return {"epoch_seconds": seconds, "metrics": trainer.evaluate()}


def train_on_parts(folder: str, epochs: int, cache_bytes: int):
    """Runs on every rank: epochs of training, then one evaluation; this rank's counts."""
    from gnnscale.train import PartitionedNodeTask, Trainer
    from gnnscale.distributed.ranks import current_ranks

    torch.set_num_threads(1)
    world_size = current_ranks().world_size
    task = PartitionedNodeTask(folder, "sage", fanouts=FANOUTS, batch_size=GLOBAL_BATCH // world_size, hidden=256,
                               cache_gib=cache_bytes / 2 ** 30, verify=False)
    trainer = Trainer(task, epochs=epochs, seed=0, progress=False)
    seconds = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        seconds.append(time.perf_counter() - start)
    training = dict(task.features.stats())
    requests = task.sampler.requests
    metrics = trainer.evaluate()
    return {"epoch_seconds": seconds, "metrics": metrics, "fetched_rows": training["fetched"],
            "fetched_bytes": training["fetched_bytes"], "cache_hits": training["cache_hits"],
            "remote_rows_requested": training["requests"] - training["local"], "cached_rows": training["cached_rows"],
            "remote_sampling_requests": requests, "halo": task.part.halo.numel()}


def steady(seconds):
    return statistics.mean(seconds[1:]) if len(seconds) > 1 else seconds[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--parts", default="2,4")
    parser.add_argument("--cache-fraction", type=float, default=0.1)
    args = parser.parse_args()
    import json

    from gnnscale.datasets import generate_preset
    from gnnscale.distributed.launch import spawn
    from gnnscale.distributed.partition import MANIFEST, partition_dataset

    dataset = generate_preset("products", scale=args.scale, seed=0)
    one = train_one_machine(dataset, args.epochs)
    print(f"one machine: {steady(one['epoch_seconds']):.2f} s per epoch, test {one['metrics']['test']:.4f}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="gnnscale-parts-", dir="/work" if Path("/work").is_dir() else None))
    rows = []
    try:
        for num_parts in (int(p) for p in args.parts.split(",")):
            out = folder / f"p{num_parts}"
            start = time.perf_counter()
            partition_dataset(dataset, num_parts, out, seed=0)
            partition_seconds = time.perf_counter() - start
            manifest = json.loads((out / MANIFEST).read_text())
            row_bytes = dataset.features.size(1) * dataset.features.element_size()
            remote_rows = dataset.graph.num_nodes - min(part["nodes"] for part in manifest["parts"])
            cache_bytes = int(args.cache_fraction * remote_rows) * row_bytes
            runs = {}
            for name, budget in (("no_cache", 0), ("cache", cache_bytes)):
                ranks = spawn(num_parts, train_on_parts, str(out), args.epochs, budget, timeout_s=120.0)
                runs[name] = {
                    "epoch_seconds": steady([max(r["epoch_seconds"][e] for r in ranks) for e in range(args.epochs)]),
                    "test": ranks[0]["metrics"]["test"], "valid": ranks[0]["metrics"]["valid"],
                    **{key: sum(r[key] for r in ranks) / args.epochs
                       for key in ("fetched_rows", "fetched_bytes", "cache_hits", "remote_rows_requested",
                                   "remote_sampling_requests")},
                    "cached_rows": [r["cached_rows"] for r in ranks], "halo": [r["halo"] for r in ranks]}
            row = {"parts": num_parts, "edge_cut": manifest["edge_cut"], "balance": manifest["balance"],
                   "partition_seconds": partition_seconds, "cache_bytes_per_machine": cache_bytes, **runs,
                   "fetched_bytes_with_cache_over_without": runs["cache"]["fetched_bytes"] / runs["no_cache"]["fetched_bytes"],
                   "cache_hit_rate": runs["cache"]["cache_hits"] / max(1, runs["cache"]["remote_rows_requested"]),
                   "epoch_time_over_one_machine": runs["cache"]["epoch_seconds"] / steady(one["epoch_seconds"])}
            rows.append(row)
            print(f"{num_parts} machines: edge cut {row['edge_cut']:.1%}, {runs['cache']['epoch_seconds']:.2f} s per "
                  f"epoch ({row['epoch_time_over_one_machine']:.2f}x one machine), remote rows per epoch "
                  f"{runs['no_cache']['fetched_rows']:,.0f} without a cache, {runs['cache']['fetched_rows']:,.0f} with "
                  f"({row['fetched_bytes_with_cache_over_without']:.2f}x; hit rate {row['cache_hit_rate']:.1%}), "
                  f"sampling requests {runs['cache']['remote_sampling_requests']:,.0f} per epoch, "
                  f"test {runs['cache']['test']:.4f}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    two = next((row for row in rows if row["parts"] == 2), None)
    checks = {"fetched_bytes_with_cache_over_without": max(row["fetched_bytes_with_cache_over_without"] for row in rows),
              **({"epoch_time_two_machines_over_one": two["epoch_time_over_one_machine"]} if two else {})}
    verdict = {name: {"value": value, "target": TARGETS[name], "met": value <= TARGETS[name]}
               for name, value in checks.items()}
    print(json.dumps(verdict, indent=1))
    path = write_result("distributed", {
        "preset": "products", "scale": args.scale, "nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges,
        "fanouts": FANOUTS, "global_batch": GLOBAL_BATCH, "epochs": args.epochs, "cache_fraction": args.cache_fraction,
        "one_machine": {"epoch_seconds": steady(one["epoch_seconds"]), **one["metrics"]}, "partitioned": rows,
        "targets": verdict})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
