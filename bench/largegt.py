"""LargeGT against GraphSAGE and a NAGphormer-style hop-token transformer on a products-shaped
synthetic graph (same Trainer loop, same epochs), plus the token builder's time and peak memory
on a 2M-node graph, in one run.

    python bench/largegt.py [--scale 0.01] [--epochs 10] [--builder-nodes 2000000] [--quick]

Models: LargeGT (local attention over sampled 1/2-hop tokens + global codebook), LargeGT without
the global module, NAGphormer-style (the node's own hop tokens X..Â^3X only, no sampling, no
codebook: LargeGT's local module with one token node), GraphSAGE (fanouts [15, 10, 5]).
The builder runs in a child process on a graph saved to disk and opened memory-mapped, so its
peak resident memory is its own.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from common import write_result
from gnnscale.datasets import generate_preset
from gnnscale.train import LargeGTTrainer, NodeTrainer

PRODUCTS_NODES = 2_449_029


def train(name, make_trainer, epochs):
    start = time.perf_counter()
    trainer = make_trainer()
    setup = time.perf_counter() - start
    result = trainer.fit()
    row = {"model": name, "setup_seconds": setup, "seconds_per_epoch": result.seconds_per_epoch,
           "best_epoch": result.best_epoch, **{f"{k}_accuracy": v for k, v in result.accuracy.items()},
           "parameters": sum(p.numel() for p in trainer.modules.parameters())}
    print(f"{name:<22} {result.seconds_per_epoch:8.2f} s/epoch  test {result.accuracy['test']:.4f}  "
          f"(setup {setup:.1f} s)", flush=True)
    return row


def accuracy_part(args):
    dataset = generate_preset("products", scale=args.scale, seed=0)
    print(f"{dataset.name}: {dataset.graph.num_nodes:,} nodes, {dataset.graph.num_edges:,} edges, "
          f"{len(dataset.splits['train']):,} training nodes, {args.epochs} epochs", flush=True)
    common = dict(epochs=args.epochs, eval_every=args.epochs, seed=0, progress=False)
    transformer = dict(hidden=args.hidden, batch_size=args.batch_size, lr=1e-3, dropout=0.1, **common)
    rows = [
        train("largegt", lambda: LargeGTTrainer(dataset, num_tokens=args.tokens, num_centroids=args.codebook,
                                                **transformer), args.epochs),
        train("largegt (local only)", lambda: LargeGTTrainer(dataset, num_tokens=args.tokens, use_global=False,
                                                             **transformer), args.epochs),
        train("nagphormer-style", lambda: LargeGTTrainer(dataset, num_tokens=1, hops=3, use_global=False,
                                                         **transformer), args.epochs),
        train("graphsage", lambda: NodeTrainer(dataset, "sage", fanouts=[15, 10, 5], batch_size=1024, hidden=256,
                                               lr=0.003, **common), args.epochs),
    ]
    return {"dataset": dataset.name, "nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges,
            "epochs": args.epochs, "num_tokens": args.tokens, "codebook": args.codebook, "models": rows}


def builder_child(args):
    """Runs in its own process: open the saved graph and features memory-mapped, build the table."""
    from gnnscale import Graph
    from gnnscale.storage import TokenTable, UnifiedTensor

    work = Path(args.builder_child)
    graph = Graph.load(work / "graph")
    features = UnifiedTensor.from_npy(work / "features.npy")
    start = time.perf_counter()
    table = TokenTable.build(graph, features, num_tokens=args.tokens_at_scale, hops=2, fanouts=(20, 10),
                             cache_dir=work / "cache")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      "table_gib": (table.hop_features.nbytes + table.neighbours.nbytes) / 2**30}))


def builder_part(args):
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        work = Path(work)
        start = time.perf_counter()
        dataset = generate_preset("products", scale=args.builder_nodes / PRODUCTS_NODES, seed=0)
        dataset.graph.save(work / "graph")
        import numpy as np

        np.save(work / "features.npy", dataset.features.numpy())
        shape = {"nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges,
                 "features": dataset.num_features, "generate_seconds": time.perf_counter() - start}
        del dataset
        child = subprocess.run([sys.executable, __file__, "--builder-child", str(work),
                                "--tokens-at-scale", str(args.tokens_at_scale)],
                               check=True, capture_output=True, text=True)
        measured = json.loads(child.stdout.strip().splitlines()[-1])
    row = {**shape, "num_tokens": args.tokens_at_scale, **measured}
    print(f"token builder: {row['nodes']:,} nodes, {row['edges']:,} edges, {row['num_tokens']} tokens: "
          f"{row['seconds']:.0f} s, peak RSS {row['peak_rss_gib']:.1f} GiB, table {row['table_gib']:.1f} GiB")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="accuracy graph size relative to ogbn-products")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=30, help="token nodes per node in the accuracy runs")
    parser.add_argument("--codebook", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--builder-nodes", type=int, default=2_000_000)
    parser.add_argument("--tokens-at-scale", type=int, default=100)
    parser.add_argument("--workdir", default=None, help="where the builder's graph and cache go (default: /tmp)")
    parser.add_argument("--skip-builder", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a tiny graph and 2 epochs, to check the script")
    parser.add_argument("--builder-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.builder_child:
        return builder_child(args)
    if args.quick:
        args.scale, args.epochs, args.builder_nodes = 0.002, 2, 20_000
    payload = {"accuracy": accuracy_part(args)}
    if not args.skip_builder:
        payload["token_builder"] = builder_part(args)
    if not args.quick:
        print(f"wrote {write_result('largegt', payload)}")


if __name__ == "__main__":
    main()
