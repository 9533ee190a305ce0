"""Device feature cache: hit rate and gather time of the "frequency" policy (gnnscale's dynamic
one: decayed request counts, refreshed every few gathers) against the static caches users
otherwise build, torch-quiver's by in-degree and GNNLab's by pre-sampling, on the access stream of
GraphSAGE sampling ([15, 10, 5], batch 1024) over the training nodes of a papers100M-shaped graph,
at cache sizes of 5, 10 and 20% of the rows.

    python bench/device_cache.py [--scale 0.005] [--batches 60] [--device cpu|cuda]

Every policy sees the same batches, sampled once. Hit rates count the batches after the first
--warmup ones (a cold dynamic cache fills during those); gather times are the median per batch over
the same batches, on --device (cpu here: the policies' bookkeeping costs are the same tensor
operations the GPU runs, the transfer the GPU saves is not in it).
"""
import argparse
import statistics
import time

import torch

from common import write_result
from gnnscale.datasets import generate_preset
from gnnscale.sampling import NeighborSampler
from gnnscale.storage import FeatureCache, UnifiedTensor

FANOUTS = [15, 10, 5]


def sampled_batches(dataset, batches: int, batch_size: int, seed: int):
    sampler = NeighborSampler(dataset.graph, FANOUTS)
    train = dataset.splits["train"]
    order = torch.randperm(train.numel(), generator=torch.Generator().manual_seed(seed))
    starts = [(b * batch_size) % max(1, train.numel() - batch_size + 1) for b in range(batches)]
    return sampler, [sampler.sample(train[order[s:s + batch_size]], seed=seed + b).node for b, s in enumerate(starts)]


def caches(source, dataset, sampler, budget: int, device: str):
    graph = dataset.graph
    by_degree = torch.topk(graph.degree("in"), FeatureCache.rows_for_budget(source, budget)).indices
    yield "static by in-degree (quiver)", FeatureCache(source, by_degree, device)
    yield "static by pre-sampling (GNNLab)", FeatureCache.by_presampling(
        source, sampler, dataset.splits["train"], budget, device=device, seed=10_000)
    yield "frequency, cold", FeatureCache.dynamic(source, budget, device)
    yield "frequency, warmed by in-degree", FeatureCache.dynamic(source, budget, device, warm_ids=by_degree)


def measure(cache, batches, warmup: int, device: str):
    times, hits, requests = [], 0, 0
    for b, ids in enumerate(batches):
        before = cache.hits
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        cache.gather(ids)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if b >= warmup:
            hits += cache.hits - before
            requests += ids.numel()
    return {"hit_rate": hits / requests, "median_gather_seconds": statistics.median(times[warmup:]),
            "rows_per_batch": requests / max(1, len(batches) - warmup), "rows_read_by_refreshes": cache.refreshed_rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.005)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    dataset = generate_preset("papers100M", scale=args.scale, seed=0)
    source = UnifiedTensor(dataset.features)
    sampler, batches = sampled_batches(dataset, args.batches, args.batch_size, seed=0)
    rows = []
    for fraction in (0.05, 0.10, 0.20):
        budget = int(fraction * dataset.graph.num_nodes) * source.row_bytes
        for policy, cache in caches(source, dataset, sampler, budget, args.device):
            rows.append({"cache_fraction": fraction, "policy": policy,
                         **measure(cache, batches, args.warmup, args.device)})
            print(f"{fraction:>5.0%}  {policy:<36} hit rate {rows[-1]['hit_rate']:6.1%}  "
                  f"gather {rows[-1]['median_gather_seconds'] * 1e3:7.2f} ms")
    ratios = {}
    for fraction in (0.05, 0.10, 0.20):
        by_policy = {row["policy"]: row for row in rows if row["cache_fraction"] == fraction}
        static = by_policy["static by in-degree (quiver)"]
        warm, cold = by_policy["frequency, warmed by in-degree"], by_policy["frequency, cold"]
        ratios[f"{fraction:.2f}"] = {
            "frequency_warm_hit_rate_over_static_degree": warm["hit_rate"] / static["hit_rate"],
            "frequency_cold_hit_rate_over_static_degree": cold["hit_rate"] / static["hit_rate"],
            "frequency_warm_gather_time_over_static_degree": warm["median_gather_seconds"] / static["median_gather_seconds"]}
    path = write_result("device_cache", {
        "preset": "papers100M", "scale": args.scale, "nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges,
        "row_bytes": source.row_bytes, "fanouts": FANOUTS, "batch_size": args.batch_size, "batches": args.batches,
        "warmup": args.warmup, "device": args.device, "rows": rows, "ratios": ratios})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
