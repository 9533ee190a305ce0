"""CPU kernels on the training path against the torch calls a user would otherwise make, in one
run on the same data:

- ``ops.scaled_spmm`` (FastRP's random-walk products, LargeGT's ÂX) against torch's CSR x dense
  product, on BlogCatalog at width 512 and on a random graph of 1M nodes / 10M stored edges at
  width 128 (whose tile slices no longer fit in cache, so whole rows are streamed);
- ``ops.dropout`` against ``F.dropout``, forward and backward, on a [131072, 256] activation (a
  link decoder's hidden layer at OGB's 64k-edge batches).

Usage: GNNSCALE_DATA=... python bench/cpu_kernels.py [--repeats 5]
"""
import argparse

import torch
from torch.nn import functional as F

from common import best_of, write_result
from gnnscale import Graph, ops
from gnnscale.datasets import load_dataset


def spmm_case(name, graph, width, repeats):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(graph.num_nodes, width, generator=gen)
    inverse_degree = 1.0 / graph.degree().float().clamp_min(1)
    values = inverse_degree[graph.row()]
    matrix = graph.sparse_csr(values)
    ours = ops.scaled_spmm(graph.indptr, graph.indices, x, row_scale=inverse_degree)
    torch.testing.assert_close(ours, matrix @ x, rtol=1e-4, atol=1e-5)
    ours_s = best_of(lambda: ops.scaled_spmm(graph.indptr, graph.indices, x, row_scale=inverse_degree), repeats)
    torch_s = best_of(lambda: matrix @ x, repeats)
    row = {"case": name, "nodes": graph.num_nodes, "edges": graph.num_edges, "width": width,
           "gnnscale_seconds": ours_s, "torch_seconds": torch_s, "speedup": torch_s / ours_s}
    print(f"spmm {name:<28} gnnscale {ours_s * 1e3:8.1f} ms  torch {torch_s * 1e3:8.1f} ms  "
          f"{torch_s / ours_s:.2f}x", flush=True)
    return row


def dropout_case(shape, p, repeats):
    x = torch.randn(*shape, requires_grad=True)
    grad = torch.randn(*shape)

    def step(fn):
        x.grad = None
        fn(x).backward(grad)

    ours_s = best_of(lambda: step(lambda t: ops.dropout(t, p)), repeats)
    torch_s = best_of(lambda: step(lambda t: F.dropout(t, p)), repeats)
    ours_fwd = best_of(lambda: ops.dropout(x.detach(), p), repeats)
    torch_fwd = best_of(lambda: F.dropout(x.detach(), p), repeats)
    row = {"shape": list(shape), "p": p, "gnnscale_forward_backward_seconds": ours_s,
           "torch_forward_backward_seconds": torch_s, "gnnscale_forward_seconds": ours_fwd,
           "torch_forward_seconds": torch_fwd, "speedup": torch_s / ours_s}
    print(f"dropout {list(shape)} p={p}: forward+backward gnnscale {ours_s * 1e3:.1f} ms, torch {torch_s * 1e3:.1f} ms "
          f"({torch_s / ours_s:.1f}x); forward {ours_fwd * 1e3:.1f} vs {torch_fwd * 1e3:.1f} ms", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads")
    blog = load_dataset("blogcatalog").graph
    gen = torch.Generator().manual_seed(1)
    edges = torch.randint(0, 1_000_000, (2, 5_000_000), generator=gen)
    random_graph = Graph.from_edge_index(edges, 1_000_000, symmetrize=True)
    spmm = [spmm_case("BlogCatalog", blog, 512, args.repeats),
            spmm_case("random 1M nodes", random_graph, 128, max(2, args.repeats // 2))]
    dropout = [dropout_case((131072, 256), 0.5, args.repeats)]
    path = write_result("cpu_kernels", {"spmm": spmm, "dropout": dropout})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
