"""Neighbour sampling throughput: gnnscale's C++ sampler against torch-sparse's ``neighbor_sample``
(the backend of PyG's NeighborLoader when pyg-lib is absent), and the loaders end to end
(sample + gather features) against PyG's NeighborLoader, on the same graphs and seeds.

    python bench/sampling.py [--quick]

torch-sparse is a peer, not a dependency: install it from ../shared/wheels to compare; without
it the peer rows are skipped with a message. On a CUDA machine the GPU sampler is measured too,
with the indices in GPU memory and in pinned host memory.
"""
import argparse
import importlib.util
import time

import torch

from common import write_result
from gnnscale.datasets import generate_preset, generate_synthetic
from gnnscale.loader import NodeLoader
from gnnscale.sampling import NeighborSampler

HAS_TORCH_SPARSE = importlib.util.find_spec("torch_sparse") is not None


def batches_of_seeds(num_nodes, batch_size, count, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(num_nodes, generator=gen)[:batch_size] for _ in range(count)]


def timed(fn, batches):
    fn(batches[0])  # warm-up (first-touch allocations, thread pool start)
    edges = 0
    start = time.perf_counter()
    for seeds in batches[1:]:
        edges += fn(seeds)
    seconds = time.perf_counter() - start
    return {"batches_per_second": (len(batches) - 1) / seconds, "edges_per_second": edges / seconds}


def sampler_rows(name, dataset, fanouts, args):
    graph = dataset.graph
    sampler = NeighborSampler(graph, fanouts)
    rows = []
    batches = batches_of_seeds(graph.num_nodes, args.batch_size, args.batches + 1)
    ours = timed(lambda seeds: sampler.sample(seeds).row.numel(), batches)
    rows.append({"graph": name, "fanouts": fanouts, "method": "gnnscale NeighborSampler", **ours})
    if torch.cuda.is_available():
        for indices_on in ("device", "host"):
            gpu = NeighborSampler(graph, fanouts, device="cuda", indices_on=indices_on)
            gpu_batches = [seeds.cuda() for seeds in batches]
            where = "GPU memory" if indices_on == "device" else "pinned host memory, zero-copy"
            method = f"gnnscale NeighborSampler (cuda, indices in {where})"
            rows.append({"graph": name, "fanouts": fanouts, "method": method,
                         **timed(lambda seeds: gpu.sample(seeds).row.numel(), gpu_batches)})
            del gpu
    if HAS_TORCH_SPARSE:
        import torch_sparse  # noqa: F401  (registers torch.ops.torch_sparse)

        colptr, row = sampler.indptr, sampler.indices.to(torch.int64)
        peer_batches = batches[: max(3, args.batches // 4) + 1]

        def peer(seeds):
            out = torch.ops.torch_sparse.neighbor_sample(colptr, row, seeds, fanouts, False, True)
            return out[1].numel()

        theirs = timed(peer, peer_batches)
        rows.append({"graph": name, "fanouts": fanouts, "method": "torch-sparse neighbor_sample", **theirs})
        for row in rows[:-1]:
            row["speedup"] = row["edges_per_second"] / theirs["edges_per_second"]
    return rows


def loader_rows(name, dataset, fanouts, args):
    rows = []
    seeds = dataset.splits["train"]
    count = args.batches

    def run(loader):
        iterator = iter(loader)
        next(iterator)
        start = time.perf_counter()
        done = 0
        for _ in range(count):
            if next(iterator, None) is None:
                break
            done += 1
        return {"batches_per_second": done / (time.perf_counter() - start)}

    for threads in (1, 2):
        loader = NodeLoader(dataset.graph, dataset.features, seeds, fanouts, args.batch_size,
                            labels=dataset.labels, num_threads=threads, prefetch=threads + 1)
        rows.append({"graph": name, "fanouts": fanouts, "method": f"gnnscale NodeLoader ({threads} threads)",
                     **run(loader)})
    if HAS_TORCH_SPARSE:
        from torch_geometric.data import Data
        from torch_geometric.loader import NeighborLoader

        data = Data(edge_index=dataset.graph.edge_index(), x=dataset.features, y=dataset.labels,
                    num_nodes=dataset.graph.num_nodes)
        loader = NeighborLoader(data, num_neighbors=fanouts, batch_size=args.batch_size, input_nodes=seeds,
                                shuffle=True)
        peer = run(loader)
        rows.append({"graph": name, "fanouts": fanouts, "method": "PyG NeighborLoader (torch-sparse)", **peer})
        for row in rows[-3:-1]:
            row["speedup"] = row["batches_per_second"] / peer["batches_per_second"]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="the small graph only")
    args = parser.parse_args()
    if not HAS_TORCH_SPARSE:
        print("torch-sparse is not installed: peer rows skipped "
              "(pip install ../shared/wheels/torch_scatter-*.whl ../shared/wheels/torch_sparse-*.whl)")
    graphs = [("random 0.5M/10M", lambda: generate_synthetic(500_000, 5_000_000, 100, 47, seed=0))]
    if not args.quick:
        graphs.append(("products-shaped 2.4M/62M", lambda: generate_preset("products", seed=0)))
    results = []
    print(f"{'graph':<26} {'fanouts':<13} {'method':<60} {'batches/s':>10} {'M edges/s':>10} {'speed-up':>9}")
    for name, make in graphs:
        dataset = make()
        for fanouts in ([15, 10, 5], [10, 10, 10]):
            for row in sampler_rows(name, dataset, fanouts, args) + loader_rows(name, dataset, fanouts, args):
                results.append(row)
                edges = f"{row['edges_per_second'] / 1e6:10.2f}" if "edges_per_second" in row else " " * 10
                speedup = f"{row['speedup']:8.1f}x" if "speedup" in row else ""
                print(f"{name:<26} {str(fanouts):<13} {row['method']:<60} {row['batches_per_second']:10.2f} "
                      f"{edges} {speedup}", flush=True)
        del dataset
    path = write_result("sampling", {"batch_size": args.batch_size, "torch_sparse": HAS_TORCH_SPARSE,
                                     "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
