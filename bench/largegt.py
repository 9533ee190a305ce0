"""LargeGT against GraphSAGE and a NAGphormer-style hop-token transformer on a products-shaped
synthetic graph (same Trainer loop, same epochs, each scored at its best validation epoch), its ablations on Cora (public split, 3 seeds),
and the token builder's time and peak memory on a 2M-node graph, in one run.

    python bench/largegt.py [--scale 0.01] [--epochs 60] [--builder-nodes 2000000] [--quick]

Cora ablations: the full model, without the global module, and with 1-hop-only tokens (token
nodes from the 1-hop neighbourhood carrying X and ÂX: a 2-hop receptive field instead of 4).

Models: LargeGT (local attention over sampled 1/2-hop tokens + global codebook; fresh token nodes
every epoch; evaluated on the mean class probabilities of 4 token draws), NAGphormer-style (the
node's own hop tokens X..Â^3X only, no sampling, no codebook: LargeGT's local module with one token
node), GraphSAGE (fanouts [15, 10, 5], evaluated by layer-wise full-neighbourhood inference).
The builder runs in a child process on a graph saved to disk and opened memory-mapped, so its
peak resident memory is its own.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from common import RESULTS, write_result
from gnnscale.datasets import generate_preset
import torch

from gnnscale.train import LargeGTConfig, LargeGTTask, NodeConfig, NodeTask, Trainer
from gnnscale.train.config import split_options

PRODUCTS_NODES = 2_449_029


def largegt_trainer(dataset, **options) -> Trainer:
    """A Trainer of LargeGT from flat options (task, optimiser and loop options together)."""
    loop, optimizer, task = split_options(options, LargeGTConfig)
    return Trainer(LargeGTTask(dataset, **task), **loop, **optimizer)


def graphsage_trainer(dataset, **options) -> Trainer:
    loop, optimizer, task = split_options(options, NodeConfig)
    return Trainer(NodeTask(dataset, "sage", **task), **loop, **optimizer)


def train(name, make_trainer, epochs):
    start = time.perf_counter()
    trainer = make_trainer()
    setup = time.perf_counter() - start
    result = trainer.fit()
    row = {"model": name, "setup_seconds": setup, "seconds_per_epoch": result.seconds_per_epoch,
           "best_epoch": result.best_epoch, **{f"{k}_accuracy": v for k, v in result.metrics.items()},
           "parameters": sum(p.numel() for p in trainer.modules.parameters())}
    if isinstance(trainer.task, LargeGTTask):  # how much of the attention readout the model kept
        row["attention_gate"] = trainer.model.local.attention_gate.detach().item()
    print(f"{name:<22} {result.seconds_per_epoch:8.2f} s/epoch  test {result.metrics['test']:.4f}  "
          f"(setup {setup:.1f} s)", flush=True)
    return row


def accuracy_part(args):
    dataset = generate_preset("products", scale=args.scale, seed=0)
    print(f"{dataset.name}: {dataset.graph.num_nodes:,} nodes, {dataset.graph.num_edges:,} edges, "
          f"{len(dataset.splits['train']):,} training nodes, {args.epochs} epochs", flush=True)
    common = dict(epochs=args.epochs, eval_every=args.eval_every, seed=0, progress=False)
    transformer = dict(hidden=args.hidden, batch_size=args.batch_size, lr=5e-3, dropout=0.5, attention_dropout=0.0,
                       weight_decay=0.05, **common)
    rows = [
        train("largegt", lambda: largegt_trainer(dataset, num_tokens=args.tokens, num_centroids=args.codebook,
                                                eval_rounds=args.eval_rounds, **transformer), args.epochs),
        train("nagphormer-style", lambda: largegt_trainer(dataset, num_tokens=1, hops=3, use_global=False,
                                                         **transformer), args.epochs),
        train("graphsage", lambda: graphsage_trainer(dataset, fanouts=[15, 10, 5], batch_size=128, hidden=256,
                                               lr=0.003, **common), args.epochs),
    ]
    return {"dataset": dataset.name, "nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges,
            "epochs": args.epochs, "eval_every": args.eval_every, "num_tokens": args.tokens, "codebook": args.codebook,
            "eval_rounds": args.eval_rounds,
            "models": rows}


# The settings the test suite holds to its Cora bar (tests/test_largegt.py).
CORA_SETTINGS = dict(num_tokens=15, hidden=64, num_centroids=64, batch_size=32, dropout=0.5, weight_decay=0.05,
                     lr=0.002, epochs=40, eval_every=2, progress=False)
CORA_VARIANTS = {"largegt": {}, "without global module": {"use_global": False},
                 "1-hop-only tokens": {"hops": 1, "fanouts": (20,)}}


def cora_part(args):
    from gnnscale import load_dataset

    cora = load_dataset("cora", root=args.root)
    rows = []
    for name, change in CORA_VARIANTS.items():
        tests = [largegt_trainer(cora, **{**CORA_SETTINGS, **change}, seed=seed).fit().metrics["test"]
                 for seed in range(args.seeds)]
        rows.append({"variant": name, "test_accuracy": tests, "mean": statistics.fmean(tests),
                     "std": statistics.stdev(tests) if len(tests) > 1 else 0.0})
        print(f"cora {name:<24} test {rows[-1]['mean']:.4f} ± {rows[-1]['std']:.4f}", flush=True)
    return {"settings": {k: v for k, v in CORA_SETTINGS.items() if k != "progress"}, "seeds": args.seeds,
            "variants": rows}


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
    peak_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"seconds": seconds, "peak_rss_gib": peak_rss_gib,
                      "table_gib": (table.hop_features.nbytes + table.neighbours.nbytes) / 2**30,
                      "propagation": compare_propagation(graph, features.data)}))


def compare_propagation(graph, features):
    """One product with Â: gnnscale's kernel (normalisation on the fly) against torch.sparse.mm on
    an explicit CSR of Â (self-loops and edge values built first, timed separately)."""
    from gnnscale import ops

    x = features.float().contiguous()
    inv_sqrt_degree = (graph.degree().float() + 1.0).rsqrt()
    start = time.perf_counter()
    ours = ops.gcn_propagate(graph.indptr, graph.indices, inv_sqrt_degree, x)
    gnnscale_seconds = time.perf_counter() - start
    start = time.perf_counter()
    n = graph.num_nodes
    loops = torch.arange(n)
    row = torch.cat([graph.row(), loops])
    col = torch.cat([graph.indices.long(), loops])
    values = inv_sqrt_degree[row] * inv_sqrt_degree[col]
    adjacency = torch.sparse_coo_tensor(torch.stack([row, col]), values, (n, n)).coalesce().to_sparse_csr()
    del row, col, values
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = torch.sparse.mm(adjacency, x)
    torch_seconds = time.perf_counter() - start
    return {"gnnscale_seconds": gnnscale_seconds, "torch_sparse_mm_seconds": torch_seconds,
            "torch_build_seconds": build_seconds, "max_abs_difference": float((ours - theirs).abs().max())}


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
    product = row["propagation"]
    print(f"one product with Â: gnnscale {product['gnnscale_seconds']:.2f} s, torch.sparse.mm "
          f"{product['torch_sparse_mm_seconds']:.2f} s (+{product['torch_build_seconds']:.2f} s to build its CSR), "
          f"max difference {product['max_abs_difference']:.1e}")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="accuracy graph size relative to ogbn-products")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--eval-rounds", type=int, default=4, help="LargeGT: token draws averaged at evaluation")
    parser.add_argument("--tokens", type=int, default=100, help="token nodes per node in the accuracy runs")
    parser.add_argument("--codebook", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=64, help="transformer width")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--builder-nodes", type=int, default=2_000_000)
    parser.add_argument("--tokens-at-scale", type=int, default=100)
    parser.add_argument("--workdir", default=None, help="where the builder's graph and cache go (default: /tmp)")
    parser.add_argument("--parts", default="accuracy,cora,builder",
                        help="which parts to run; the others keep their figures in the existing JSON")
    parser.add_argument("--root", default=None, help="data root holding Cora (default: $GNNSCALE_DATA)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per Cora variant")
    parser.add_argument("--quick", action="store_true", help="a tiny graph and 2 epochs, to check the script")
    parser.add_argument("--builder-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.builder_child:
        return builder_child(args)
    if args.quick:
        args.scale, args.epochs, args.eval_every, args.builder_nodes, args.seeds = 0.002, 2, 1, 20_000, 1
        CORA_SETTINGS["epochs"] = 2
    parts = {"accuracy": accuracy_part, "cora": cora_part, "builder": builder_part}
    chosen = args.parts.split(",")
    unknown = set(chosen) - set(parts)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {sorted(parts)}")
    payload = {name: parts[name](args) for name in chosen}
    if not args.quick:
        previous = RESULTS / "largegt.json"
        if previous.is_file():
            kept = json.loads(previous.read_text())
            payload = {**{k: kept[k] for k in parts if k in kept and k not in payload}, **payload}
        print(f"wrote {write_result('largegt', payload)}")


if __name__ == "__main__":
    main()
