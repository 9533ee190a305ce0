"""Time and peak memory of generating a large synthetic graph (default: 10M nodes, 200M edges,
directed, int32 indices, 64 features). Usage: python bench/synthetic_scale.py [--nodes --edges]"""
import argparse
import resource
import time

import torch

from common import write_result
from gnnscale.datasets import generate_synthetic


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=10_000_000)
    parser.add_argument("--edges", type=int, default=200_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--undirected", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    data = generate_synthetic(args.nodes, args.edges, args.features, 47, directed=not args.undirected,
                              index_dtype=torch.int32)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{data.graph} with {args.features} features: {seconds:.1f} s, peak RSS {peak_gib:.1f} GiB")
    write_result("synthetic_scale", {"nodes": args.nodes, "requested_edges": args.edges,
                                     "stored_edges": data.graph.num_edges,
                                     "index_dtype": str(data.graph.indices.dtype), "directed": not args.undirected,
                                     "features": args.features, "seconds": seconds, "peak_rss_gib": peak_gib})


if __name__ == "__main__":
    main()
