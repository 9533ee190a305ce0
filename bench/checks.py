"""What the kernels' own checks of ids, row pointers and output sizes cost: the kernels that read
graph ids, timed through ``gnnscale.ops`` on one graph of a few million edges, in the current
package and in a copy of the package as it was before the checks (``--before``, a folder holding
a ``gnnscale`` package with its built ``_C`` library).

Each implementation runs in its own resident process (both register the same operators). The
two take turns, one call of one case at a time, for ``--trials`` rounds, so that load from other
work on a shared machine falls on both alike; each figure is the fastest call. Kernels run on
``--threads`` threads (1 by default) and are timed in process CPU seconds.

    python bench/checks.py --before /tmp/gnnscale_before [--trials 15] [--threads 1]
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import write_result

NUM_NODES = 500_000
NUM_UNDIRECTED_EDGES = 2_000_000  # 4M stored edges once symmetrized
CASES = ["csr_to_csc", "scaled_spmm (width 64)", "random_walk (50k x 20)", "random_walk node2vec (50k x 20)",
         "neighbour sampling (10 batches of 1024, [15, 10])", "negative_tails (100k x 5)",
         "hop_token_sample (20k x 15, [10, 5])", "temporal_neighbor_sample (100k x 10)",
         "gather_rows (100k x 128 float32)"]


def build_cases(threads):
    """The timed calls, by name, for the gnnscale package on sys.path (warmed up once each)."""
    torch.set_num_threads(threads)
    from gnnscale import Graph, TemporalGraph, ops
    from gnnscale.sampling import NeighborSampler
    from gnnscale.storage.unified import UnifiedTensor

    gen = torch.Generator().manual_seed(0)
    edges = torch.randint(0, NUM_NODES, (2, NUM_UNDIRECTED_EDGES), generator=gen)
    graph = Graph.from_edge_index(edges, NUM_NODES, symmetrize=True)
    indptr, indices = graph.indptr, graph.indices
    x = torch.randn(NUM_NODES, 64, generator=gen)
    inverse_degree = 1.0 / graph.degree().float().clamp_min(1)
    starts = torch.randint(0, NUM_NODES, (50_000,), generator=gen)
    sampler = NeighborSampler(graph, [15, 10])
    seed_batches = [torch.randperm(NUM_NODES, generator=gen)[:1024] for _ in range(10)]
    sources = torch.randint(0, NUM_NODES, (100_000,), generator=gen)
    token_nodes = torch.randint(0, NUM_NODES, (20_000,), generator=gen)
    events = torch.randint(0, 100_000, (2, 2_000_000), generator=gen)
    stream = TemporalGraph(events[0], events[1], torch.arange(2_000_000, dtype=torch.float64))
    csr = stream.csr()
    queries = torch.randint(0, 100_000, (100_000,), generator=gen)
    query_times = torch.randint(0, 2_000_000, (100_000,), generator=gen).double()
    table = UnifiedTensor(torch.randn(NUM_NODES, 128, generator=gen))
    rows = torch.randint(0, NUM_NODES, (100_000,), generator=gen)

    cases = {
        "csr_to_csc": lambda: ops.csr_to_csc(indptr, indices, NUM_NODES),
        "scaled_spmm (width 64)": lambda: ops.scaled_spmm(indptr, indices, x, row_scale=inverse_degree),
        "random_walk (50k x 20)": lambda: ops.random_walk(indptr, indices, starts, 20, seed=1),
        "random_walk node2vec (50k x 20)": lambda: ops.random_walk(indptr, indices, starts, 20, p=0.5, q=2.0),
        "neighbour sampling (10 batches of 1024, [15, 10])": lambda: [sampler.sample(s, seed=i)
                                                                      for i, s in enumerate(seed_batches)],
        "negative_tails (100k x 5)": lambda: ops.negative_tails(indptr, indices, sources, 5),
        "hop_token_sample (20k x 15, [10, 5])": lambda: ops.hop_token_sample(indptr, indices, token_nodes, 15,
                                                                             [10, 5]),
        "temporal_neighbor_sample (100k x 10)": lambda: ops.temporal_neighbor_sample(
            csr.indptr, csr.neighbors, csr.edge_ids, csr.edge_times, queries, query_times, 10),
        "gather_rows (100k x 128 float32)": lambda: table.gather(rows),
    }
    assert list(cases) == CASES
    for fn in cases.values():
        fn()  # warm-up: thread pool, first-touch allocations
    return cases


def serve(threads):
    """Worker: builds the cases, then runs the case named on each stdin line once and prints its
    CPU seconds."""
    cases = build_cases(threads)
    print("ready", flush=True)
    for line in sys.stdin:
        name = line.strip()
        start = time.process_time()
        cases[name]()
        print(time.process_time() - start, flush=True)


class Worker:
    def __init__(self, package_root, threads):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(package_root), str(Path(__file__).resolve().parent)])
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", "--threads", str(threads)], env=env,
                                        cwd=package_root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the worker for {package_root} did not start")

    def time(self, case):
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required="--worker" not in sys.argv,
                        help="folder holding the gnnscale package as it was before the checks")
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(args.threads)
        return
    workers = {"before": Worker(args.before.resolve(), args.threads),
               "after": Worker(Path(__file__).resolve().parents[1], args.threads)}
    best = {name: {} for name in workers}
    for trial in range(args.trials):
        for case in CASES:
            order = list(workers) if trial % 2 == 0 else list(workers)[::-1]
            for name in order:
                best[name][case] = min(workers[name].time(case), best[name].get(case, float("inf")))
    for worker in workers.values():
        worker.close()
    rows = []
    print(f"{args.threads} thread(s), CPU seconds, fastest of {args.trials} alternating calls; "
          f"graph of {NUM_NODES} nodes, {2 * NUM_UNDIRECTED_EDGES} edges")
    for case in CASES:
        before, after = best["before"][case], best["after"][case]
        rows.append({"case": case, "before_seconds": before, "after_seconds": after, "overhead": after / before - 1})
        print(f"{case:<50} before {before * 1e3:8.1f} ms  after {after * 1e3:8.1f} ms  "
              f"{100 * (after / before - 1):+6.1f}%")
    path = write_result("checks", {"num_nodes": NUM_NODES, "num_edges": 2 * NUM_UNDIRECTED_EDGES,
                                   "threads": args.threads, "trials": args.trials,
                                   "timing": "process CPU seconds, fastest of alternating calls", "cases": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
