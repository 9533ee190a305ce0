"""CSR construction from random COO edges: gnnscale's counting sort against the two ways a user
would otherwise build one, a ``torch.sort`` of packed (row, col) keys and scipy's ``coo -> csr``.

Each method produces a CSR with rows sorted by neighbour id; gnnscale also returns the edge
permutation. Usage: python bench/graph_build.py [--edges 100000000] [--nodes 10000000]
"""
import argparse
import gc

import numpy as np
import scipy.sparse as sp
import torch

from common import best_of, write_result
from gnnscale import ops


def torch_sort_csr(row, col, num_nodes):
    order = torch.argsort(row * num_nodes + col)
    indices = col[order]
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(row, minlength=num_nodes), 0)
    return indptr, indices, order


def scipy_csr(row, col, num_nodes):
    values = np.ones(row.numel(), dtype=np.float32)
    matrix = sp.coo_matrix((values, (row.numpy(), col.numpy())), shape=(num_nodes, num_nodes)).tocsr()
    matrix.has_sorted_indices = False
    matrix.sort_indices()  # coo -> csr keeps input order within rows; sort to match the others
    return matrix


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edges", type=int, default=100_000_000)
    parser.add_argument("--nodes", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    row = torch.randint(0, args.nodes, (args.edges,), generator=gen)
    col = torch.randint(0, args.nodes, (args.edges,), generator=gen)
    rows = []

    def measure(method, fn):
        gc.collect()
        seconds = best_of(fn, args.repeats)
        rows.append({"method": method, "seconds": seconds, "edges_per_second": args.edges / seconds})
        print(f"{method:<34} {seconds:8.2f} s  {args.edges / seconds / 1e6:8.1f} M edges/s", flush=True)

    # Agreement first: the three must build the same CSR.
    small = slice(0, 1_000_000)
    ours = ops.coo_to_csr(row[small], col[small], args.nodes)
    ref = torch_sort_csr(row[small], col[small], args.nodes)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    sci = scipy_csr(row[small], col[small], args.nodes)
    assert np.array_equal(sci.indptr, ours[0].numpy()) and np.array_equal(sci.indices, ours[1].numpy())

    print(f"CSR from {args.edges:,} random edges on {args.nodes:,} nodes, {torch.get_num_threads()} threads")
    measure("gnnscale coo_to_csr (int64)", lambda: ops.coo_to_csr(row, col, args.nodes))
    row32, col32 = row.to(torch.int32), col.to(torch.int32)
    measure("gnnscale coo_to_csr (int32)", lambda: ops.coo_to_csr(row32, col32, args.nodes))
    del row32, col32
    measure("torch.sort of packed keys", lambda: torch_sort_csr(row, col, args.nodes))
    measure("scipy coo_matrix.tocsr + sort", lambda: scipy_csr(row, col, args.nodes))

    by_method = {r["method"]: r["seconds"] for r in rows}
    ours_s = by_method["gnnscale coo_to_csr (int64)"]
    speedup = {
        "vs_torch_sort": by_method["torch.sort of packed keys"] / ours_s,
        "vs_scipy": by_method["scipy coo_matrix.tocsr + sort"] / ours_s,
    }
    print(f"gnnscale speed-up: {speedup['vs_torch_sort']:.2f}x torch.sort, {speedup['vs_scipy']:.2f}x scipy")
    path = write_result("graph_build", {"edges": args.edges, "nodes": args.nodes, "results": rows,
                                        "speedup": speedup})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
