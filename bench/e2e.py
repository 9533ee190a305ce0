"""End-to-end mini-batch training: GraphSAGE (fanouts [15, 10, 5], batch 1024, hidden 256) on a
products-shaped synthetic graph, gnnscale's Trainer with a NodeTask against PyG's NeighborLoader + SAGEConv
with the same model size, optimiser and epochs, in one run. Reports time per training epoch
(sampling, gathering, forward, backward, step) and test accuracy of a full-neighbourhood pass.

    python bench/e2e.py [--scale 0.1] [--epochs 3] [--device cpu|cuda] [--quick]

With ``--device cuda`` the features stay in host memory for both: gnnscale pins them in place and
the GPU reads each batch's rows zero-copy (sampling on the CPU, and once more on the GPU); PyG
gathers on the CPU and copies each batch to the GPU (``batch.to(device)``, as its examples do).

PyG runs as its examples do (`NeighborLoader`, a `SAGEConv` stack on the whole sampled
subgraph), with one forked loader worker as well as none, and, where pyg-lib supplies per-hop
counts, once more with `trim_to_layer` as gnnscale's encoder uses it. PyG's NeighborLoader needs torch-sparse or pyg-lib (a peer, not a
dependency: install torch-sparse from ../shared/wheels). Where neither is installed, PyG's
`NodeLoader` runs with gnnscale's sampler behind PyG's `BaseSampler` interface instead: the
sampling is then the same, and the rows compare the rest of the path (PyG's feature gather and
copy against gnnscale's).
"""
import argparse
import importlib.util
import statistics
import time

import torch
from torch.nn import functional as F

from common import write_result
from gnnscale.datasets import generate_preset
from gnnscale.train import NodeTask, Trainer

HAS_PYG_LIB = importlib.util.find_spec("pyg_lib") is not None
HAS_PYG_SAMPLER = HAS_PYG_LIB or importlib.util.find_spec("torch_sparse") is not None


class PyGSAGE(torch.nn.Module):
    """GraphSAGE as PyG's mini-batch examples write it, with dropout where gnnscale's encoder has it
    (before every layer, the input features included), so both train the same model."""

    def __init__(self, in_dim, hidden, out_dim, num_layers, dropout):
        from torch_geometric.nn import SAGEConv

        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.convs = torch.nn.ModuleList(SAGEConv(dims[i], dims[i + 1]) for i in range(num_layers))
        self.dropout = dropout

    def forward(self, x, edge_index, num_sampled_nodes=None, num_sampled_edges=None):
        from torch_geometric.utils import trim_to_layer

        for i, conv in enumerate(self.convs):
            if num_sampled_nodes is not None:
                x, edge_index, _ = trim_to_layer(i, num_sampled_nodes, num_sampled_edges, x, edge_index)
            x = conv(F.dropout(x, p=self.dropout, training=self.training), edge_index)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


def run_gnnscale(dataset, args, sample_on_device=False):
    task = NodeTask(dataset, "sage", fanouts=args.fanouts, batch_size=args.batch_size, hidden=args.hidden,
                    num_threads=1, sample_on_device=sample_on_device)
    trainer = Trainer(task, lr=args.lr, epochs=args.epochs, eval_every=args.epochs, seed=0, device=args.device,
                      progress=False)
    result = trainer.fit()
    task.features.unpin_()
    if args.device == "cpu":
        method = "gnnscale Trainer + NodeTask (C++ sampler, threaded gather, 1 prefetch thread)"
    else:
        sampler = "CUDA sampler" if sample_on_device else "C++ sampler"
        method = f"gnnscale Trainer + NodeTask ({sampler}, zero-copy gather from pinned host features)"
    return {"method": method, "epoch_seconds": [row["seconds"] for row in result.history],
            "test_accuracy": result.metrics["test"]}


def run_pyg(dataset, args, *, trim, workers):
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader

    torch.manual_seed(0)
    data = Data(x=dataset.features, edge_index=dataset.graph.edge_index(), y=dataset.labels)
    options = dict(batch_size=args.batch_size, input_nodes=dataset.splits["train"], shuffle=True,
                   num_workers=workers, persistent_workers=workers > 0)
    if HAS_PYG_SAMPLER:
        loader = NeighborLoader(data, num_neighbors=args.fanouts, **options)
        loader_name = "NeighborLoader"
    else:
        from torch_geometric.loader import NodeLoader

        from gnnscale.sampling.pyg import PyGNeighborSampler

        loader = NodeLoader(data, node_sampler=PyGNeighborSampler(dataset.graph, args.fanouts), **options)
        loader_name = "NodeLoader with gnnscale's sampler"
    device = torch.device(args.device)
    model = PyGSAGE(dataset.num_features, args.hidden, dataset.num_classes, len(args.fanouts), 0.5).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    epoch_seconds = []
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        for batch in loader:
            batch = batch.to(device)
            optimizer.zero_grad()
            extra = (batch.num_sampled_nodes, batch.num_sampled_edges) if trim else ()
            out = model(batch.x, batch.edge_index, *extra)[:batch.batch_size]
            F.cross_entropy(out, batch.y[:batch.batch_size]).backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():  # full-neighbourhood pass: what layer-wise inference computes
        predicted = model(data.x.to(device), data.edge_index.to(device)).argmax(dim=-1).cpu()
    test = dataset.splits["test"]
    accuracy = float((predicted[test] == dataset.labels[test]).float().mean())
    name = f"PyG {loader_name} + SAGEConv ({'trim_to_layer' if trim else 'as in its examples'}, " \
           f"{workers} loader worker{'s' if workers != 1 else ''}" \
           f"{', CPU gather + copy to the GPU' if device.type == 'cuda' else ''})"
    return {"method": name, "epoch_seconds": epoch_seconds, "test_accuracy": accuracy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="graph size relative to ogbn-products")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--fanouts", default="15,10,5")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--pyg-workers", default="0,1", help="PyG loader worker counts to run")
    parser.add_argument("--quick", action="store_true", help="a tiny graph and one epoch, to check the script")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.epochs = 0.01, 1
    args.fanouts = [int(f) for f in args.fanouts.split(",")]
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    dataset = generate_preset("products", scale=args.scale, seed=0)
    graph = dataset.graph
    print(f"synthetic-products scale {args.scale}: {graph.num_nodes} nodes, {graph.num_edges} edges, "
          f"{dataset.num_features} features, {dataset.splits['train'].numel()} training nodes "
          f"({time.perf_counter() - start:.0f} s to generate)")

    rows = [run_gnnscale(dataset, args)]
    if args.device == "cuda":
        rows.append(run_gnnscale(dataset, args, sample_on_device=True))
    if not HAS_PYG_SAMPLER:
        print("PyG's NeighborLoader needs torch-sparse or pyg-lib: PyG's NodeLoader runs with gnnscale's sampler")
    for workers in (int(w) for w in args.pyg_workers.split(",")):
        rows.append(run_pyg(dataset, args, trim=False, workers=workers))
    if HAS_PYG_LIB:  # torch-sparse's sampler does not report per-hop counts for trim_to_layer
        rows.append(run_pyg(dataset, args, trim=True, workers=0))
    for row in rows:
        # The first epoch pays one-off costs (thread pools, first-touch allocations): report the rest.
        steady = row["epoch_seconds"][1:] or row["epoch_seconds"]
        row["seconds_per_epoch"] = statistics.median(steady)
    ours = min(row["seconds_per_epoch"] for row in rows if row["method"].startswith("gnnscale"))
    for row in rows:
        if not row["method"].startswith("gnnscale"):
            row["gnnscale_speedup"] = row["seconds_per_epoch"] / ours
    print(f"{'method':<80} {'s/epoch':>8} {'test acc':>9} {'speed-up':>9}")
    for row in rows:
        speedup = f"{row['gnnscale_speedup']:.2f}x" if "gnnscale_speedup" in row else ""
        print(f"{row['method']:<80} {row['seconds_per_epoch']:>8.2f} {row['test_accuracy']:>9.4f} {speedup:>9}")
    if not args.quick:
        path = write_result("e2e", {
            "graph": {"preset": "products", "scale": args.scale, "nodes": graph.num_nodes, "edges": graph.num_edges,
                      "features": dataset.num_features, "train_nodes": int(dataset.splits["train"].numel())},
            "device": args.device, "pyg_sampler": "pyg-lib" if HAS_PYG_LIB else
            "torch-sparse" if HAS_PYG_SAMPLER else "gnnscale (PyG BaseSampler interface)",
            "config": {"fanouts": args.fanouts, "batch_size": args.batch_size, "hidden": args.hidden, "lr": args.lr,
                       "epochs": args.epochs},
            "rows": rows})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
