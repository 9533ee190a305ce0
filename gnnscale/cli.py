"""The ``gnnscale`` command: ``info`` describes a dataset, ``demo`` runs the default training job,
``bench ogb`` runs the OGB benchmark runner, ``embed`` and ``embed-eval`` train and evaluate node
embeddings, ``temporal`` trains dynamic-graph models (TGN, JODIE, PRES) on event streams, ``pipe``
trains deep GNNs on the full graph over several ranks (graph-parallel, pipelined, hybrid)."""
import argparse
import sys
import time
from typing import List, Optional

import torch

from .datasets import LinkDataset, NodeDataset, TemporalDataset, load_dataset
from .graph import Graph
from .train.config import DEMO_LOOP, DEMO_OPTIMIZER, DEMO_TASK, LoopConfig

DEMO_DATASET = "synthetic-products"
DEMO_SCALE = 0.05


def _degree_line(graph: Graph) -> str:
    degree = graph.degree("out").to(torch.float64)
    if degree.numel() == 0:
        return "no nodes"
    return (f"min {int(degree.min())}, median {int(degree.median())}, mean {float(degree.mean()):.2f}, "
            f"max {int(degree.max())}, isolated {int((degree == 0).sum())}")


def _edge_line(graph: Graph) -> str:
    if graph.is_symmetric():
        loops = graph.num_self_loops()
        undirected = (graph.num_edges - loops) // 2 + loops
        return f"{graph.num_edges} directed ({undirected} undirected)"
    return f"{graph.num_edges} directed"


def describe(dataset) -> List[str]:
    """Lines of ``gnnscale info``: sizes, features, classes, splits and degree statistics."""
    lines = [("dataset", dataset.name)]
    if isinstance(dataset, TemporalDataset):
        lines += [("nodes", str(dataset.num_nodes)), ("events", str(dataset.num_events)),
                  ("edge features", str(0 if dataset.edge_features is None else dataset.edge_features.size(1))),
                  ("time span", f"{dataset.t.min().item()} .. {dataset.t.max().item()}")]
        graph = dataset.graph
    else:
        graph = dataset.graph
        lines += [("nodes", str(graph.num_nodes)), ("edges", _edge_line(graph)),
                  ("features", str(dataset.num_features))]
    if isinstance(dataset, NodeDataset) and dataset.labels is not None:
        kind = "labels (multi-label)" if dataset.multilabel else "classes"
        lines.append((kind, str(dataset.num_classes)))
    if isinstance(dataset, LinkDataset):
        for split, parts in dataset.edge_split.items():
            sizes = ", ".join(f"{key} {len(value)}" for key, value in parts.items())
            lines.append((f"{split} edges", sizes))
        lines.append(("metric", dataset.metric))
    elif getattr(dataset, "splits", None):
        lines.append(("splits", " / ".join(f"{name} {len(index)}" for name, index in dataset.splits.items())))
    lines.append(("out-degree", _degree_line(graph)))
    width = max(len(key) for key, _ in lines)
    return [f"{key:<{width}}  {value}" for key, value in lines]


def _info(args) -> int:
    dataset = load_dataset(args.name, root=args.root)
    print("\n".join(describe(dataset)))
    return 0


def _demo(args) -> int:
    from .train import NodeTask, Trainer

    start = time.perf_counter()
    dataset = load_dataset(DEMO_DATASET, scale=args.scale, seed=args.seed)
    print(f"generated {dataset.name} (scale {args.scale}) in {time.perf_counter() - start:.1f} s:")
    print("\n".join("  " + line for line in describe(dataset)))
    fanouts = args.fanouts
    print(f"training a {len(fanouts)}-layer {args.model.upper()} (hidden {args.hidden}) on sampled neighbourhoods "
          f"(fanouts {fanouts}, batch {args.batch_size}) for {args.epochs} epochs on {args.device}")
    task = NodeTask(dataset, args.model, fanouts=fanouts, batch_size=args.batch_size, hidden=args.hidden,
                    num_threads=args.threads)
    # Evaluated three times in all (DEMO_LOOP.eval_every at the default epochs).
    trainer = Trainer(task, epochs=args.epochs, eval_every=max(1, args.epochs // 3), seed=args.seed, lr=args.lr,
                      device=args.device)
    result = trainer.fit()
    accuracy = result.metrics
    print(f"best validation at epoch {result.best_epoch}; layer-wise full-neighbourhood evaluation")
    print(f"accuracy  train {accuracy['train']:.3f}  valid {accuracy['valid']:.3f}  test {accuracy['test']:.3f}")
    print(f"speed     {result.seconds_per_epoch:.2f} s per training epoch, "
          f"{result.throughput:.0f} {result.throughput_unit} (sampling, gathering, forward and backward)")
    return 0


def _bench_ogb(args) -> int:
    from .train.benchmark import run_benchmark

    dataset_options = {"scale": args.scale} if args.dataset.startswith("synthetic-") else {}
    options = {"fanouts": args.fanouts, "batch_size": args.batch_size, "hidden": args.hidden, "lr": args.lr,
               "dropout": args.dropout, "eval_every": args.eval_every, "patience": args.patience,
               "num_threads": args.threads, "precision": args.precision}
    if args.full_graph or args.layers or args.grad_clip or args.corrupt or args.predictor_layers:
        options.update(full_graph=args.full_graph or None, num_layers=args.layers, grad_clip=args.grad_clip,
                       corrupt=args.corrupt, predictor_layers=args.predictor_layers)
    if args.model == "largegt":
        options.update(num_tokens=args.num_tokens, num_centroids=args.codebook, cache_dir=args.token_cache,
                       use_global=False if args.no_global else None, eval_rounds=args.eval_rounds)
    elif args.num_tokens or args.codebook or args.no_global or args.token_cache or args.eval_rounds:
        raise ValueError("--num-tokens, --codebook, --no-global, --token-cache and --eval-rounds apply to "
                         "--model largegt only")
    report = run_benchmark(args.dataset, args.model, runs=args.runs, epochs=args.epochs, device=args.device,
                           root=args.root, dataset_options=dataset_options, options=options,
                           progress=not args.quiet)
    print(report.table())
    paths = report.write(args.out)
    print(f"wrote {paths['json']} and {paths['csv']}")
    return 0


def _fanouts(text: str) -> List[int]:
    try:
        fanouts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"fanouts must be comma-separated integers, got {text!r}") from None
    if not fanouts or any(f == 0 or f < -1 for f in fanouts):
        raise argparse.ArgumentTypeError(f"each fanout must be positive or -1 (all neighbours), got {text!r}")
    return fanouts


def _thread_count(text: str) -> int:
    try:
        threads = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threads must be an integer, got {text!r}") from None
    if threads < 0:
        raise argparse.ArgumentTypeError(f"threads must be 0 (batches prepared in the training thread) or more, "
                                         f"got {threads}")
    return threads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnnscale", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="describe a dataset: sizes, features, classes, splits, degrees")
    info.add_argument("name", help="dataset name (cora, blogcatalog, ogbl-ddi, synthetic-products...) or a file")
    info.add_argument("--root", default=None, help="data root (default: $GNNSCALE_DATA, else ./datasets)")
    info.set_defaults(run=_info)

    demo = commands.add_parser("demo", help=f"train GraphSAGE on sampled mini-batches of a small {DEMO_DATASET} graph")
    demo.add_argument("--model", default="sage", choices=("sage", "gcn", "gat"))
    demo.add_argument("--scale", type=float, default=DEMO_SCALE, help="size relative to ogbn-products")
    demo.add_argument("--fanouts", type=_fanouts, default=list(DEMO_TASK.fanouts),
                      help="neighbours sampled per layer, comma separated")
    demo.add_argument("--batch-size", type=int, default=DEMO_TASK.batch_size)
    demo.add_argument("--hidden", type=int, default=DEMO_TASK.hidden)
    demo.add_argument("--lr", type=float, default=DEMO_OPTIMIZER.lr)
    demo.add_argument("--epochs", type=int, default=DEMO_LOOP.epochs)
    demo.add_argument("--threads", type=_thread_count, default=DEMO_TASK.num_threads,
                      help="loader threads preparing batches ahead (0: none, batches prepared in turn)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(run=_demo)

    from .embedding.command import register as register_embedding

    register_embedding(commands)

    from .train.temporal_command import register as register_temporal

    register_temporal(commands)

    from .parallel.command import register as register_parallel

    register_parallel(commands)

    bench = commands.add_parser("bench", help="benchmark runners")
    runners = bench.add_subparsers(dest="runner", required=True)
    ogb = runners.add_parser("ogb", help="OGB-style benchmark: runs x epochs, mean ± std table, JSON and CSV",
                             description="Loads with ogb's dataset classes (offline, from --root), scores with "
                                         "ogb's Evaluator; also runs on Planetoid datasets and synthetic presets.")
    ogb.add_argument("--dataset", required=True,
                     help="ogbn-arxiv, ogbn-products, ogbn-papers100M, ogbl-ddi, ogbl-collab, cora, "
                          "synthetic-products...")
    ogb.add_argument("--model", default="sage", choices=("sage", "gcn", "gat", "largegt"))
    ogb.add_argument("--runs", type=int, default=1)
    ogb.add_argument("--epochs", type=int, default=LoopConfig.epochs)
    ogb.add_argument("--device", default="cpu")
    ogb.add_argument("--root", default=None, help="data root (default: $GNNSCALE_DATA, else ./datasets)")
    ogb.add_argument("--out", default="bench-results", help="directory for <dataset>_<model>.json and .csv")
    ogb.add_argument("--scale", type=float, default=0.05, help="size of a synthetic preset relative to OGB")
    ogb.add_argument("--fanouts", type=_fanouts, default=None,
                     help="neighbours per layer (default 15,10,5 for nodes, 10,10 for links); for largegt, "
                          "the per-hop bound of the neighbourhood its tokens come from (default 20,10)")
    ogb.add_argument("--batch-size", type=int, default=None)
    ogb.add_argument("--hidden", type=int, default=None)
    ogb.add_argument("--lr", type=float, default=None)
    ogb.add_argument("--dropout", type=float, default=None)
    ogb.add_argument("--eval-every", type=int, default=None)
    ogb.add_argument("--patience", type=int, default=None, help="evaluations without gain before stopping")
    ogb.add_argument("--threads", type=_thread_count, default=None,
                     help="loader threads preparing batches ahead (0: none, batches prepared in turn)")
    ogb.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                     help="bf16: training forward passes in bfloat16 autocast (evaluation stays float32)")
    ogb.add_argument("--full-graph", action="store_true",
                     help="link prediction: encode the whole graph with full neighbourhoods at every step "
                          "(OGB's full-batch examples; for small dense graphs such as ogbl-ddi)")
    ogb.add_argument("--layers", type=int, default=None, help="with --full-graph: encoder layers (default 2)")
    ogb.add_argument("--grad-clip", type=float, default=None, help="link prediction: cap on each module's "
                     "gradient norm per step (OGB's ogbl-ddi example: 1.0)")
    ogb.add_argument("--predictor-layers", type=int, default=None,
                     help="link prediction: layers of the MLP edge decoder (default 3)")
    ogb.add_argument("--corrupt", choices=("target", "both"), default=None,
                     help="link prediction negatives: 'target' keeps the positive's source (default), 'both' "
                          "draws random non-edges (OGB's examples)")
    ogb.add_argument("--num-tokens", type=int, default=None, help="largegt: token nodes per node (default 100)")
    ogb.add_argument("--codebook", type=int, default=None, help="largegt: global codebook centroids (default 4096)")
    ogb.add_argument("--no-global", action="store_true", help="largegt: local attention only")
    ogb.add_argument("--token-cache", default=None, help="largegt: folder caching the token table between runs")
    ogb.add_argument("--eval-rounds", type=int, default=None,
                     help="largegt: token draws whose class probabilities evaluation averages (default 1)")
    ogb.add_argument("--quiet", action="store_true", help="no progress bars")
    ogb.set_defaults(run=_bench_ogb)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # OSError: a missing file, a full disk, no permission
        command = " ".join(filter(None, (args.command, getattr(args, "runner", None))))
        print(f"gnnscale {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
