"""``gnnscale bench ogb``: the command line of the OGB benchmark runner (:mod:`.ogb_runner`)."""
from ..train.config import (DEFAULT_INFERENCE_MEMORY_GIB, LargeGTConfig, LinkConfig, LoopConfig, NodeConfig,
                            OptimizerConfig)
from . import data_parallel
from .arguments import add_device_argument, fanouts, gibibytes, resolve_device, thread_count
from .results import default_out, provenance


def _bench_ogb(args) -> int:
    from .ogb_runner import run_benchmark

    args.device = resolve_device(args.device)  # refused before any data is loaded
    data_parallel.check_tensorboard_dir(args.tensorboard_dir)
    if args.partitions is not None:
        return _bench_partitions(args)
    if args.dataset is None:
        raise ValueError("give --dataset NAME|DIR (or --partitions DIR)")
    if args.remote_cache_gib is not None:
        raise ValueError("--remote-cache-gib applies to --partitions only")
    dataset_options = {"scale": args.scale} if args.dataset.startswith("synthetic-") else {}
    if data_parallel.launches_ranks(args):
        from ..datasets import load_dataset

        return data_parallel.run_on_ranks(args, lambda: load_dataset(args.dataset, root=args.root, **dataset_options),
                                          args.argv)
    dataset = args.dataset
    if args.shared_dataset:
        dataset, dataset_options = args.shared_dataset, {}
    options = {"fanouts": args.fanouts, "batch_size": args.batch_size, "hidden": args.hidden, "lr": args.lr,
               "dropout": args.dropout, "eval_every": args.eval_every, "patience": args.patience,
               "num_threads": args.threads, "precision": args.precision, "dist_timeout": args.dist_timeout,
               "host_cache_gib": args.host_cache_gib, "inference_memory_gib": args.inference_memory_gib}
    if args.full_graph or args.layers or args.grad_clip or args.corrupt or args.predictor_layers:
        options.update(full_graph=args.full_graph or None, num_layers=args.layers, grad_clip=args.grad_clip,
                       corrupt=args.corrupt, predictor_layers=args.predictor_layers)
    if args.model == "largegt":
        options.update(num_tokens=args.num_tokens, num_centroids=args.codebook, cache_dir=args.token_cache,
                       use_global=False if args.no_global else None, eval_rounds=args.eval_rounds)
    elif args.num_tokens or args.codebook or args.no_global or args.token_cache or args.eval_rounds:
        raise ValueError("--num-tokens, --codebook, --no-global, --token-cache and --eval-rounds apply to "
                         "--model largegt only")
    report = run_benchmark(dataset, args.model, runs=args.runs, epochs=args.epochs, device=args.device,
                           root=args.root, dataset_options=dataset_options, options=options,
                           progress=not args.quiet, tensorboard_dir=args.tensorboard_dir)
    if not data_parallel.is_main_rank():
        return 0
    print(report.table())
    paths = report.write(args.out, provenance(args, args.device))
    print(f"wrote {paths['json']} and {paths['csv']}")
    return 0


def _bench_partitions(args) -> int:
    """Training over the parts of a partitioned dataset, one rank per part (``--nproc P`` starts
    them here; on several machines torchrun starts them, one per machine)."""
    from .ogb_runner import run_benchmark
    from .torchrun import run_torchrun

    if args.dataset is not None:
        raise ValueError("--partitions DIR names the dataset; leave out --dataset")
    for flag, value in (("--host-cache-gib", args.host_cache_gib), ("--inference-memory-gib", args.inference_memory_gib),
                        ("--full-graph", args.full_graph or None), ("--threads", args.threads),
                        ("--precision", args.precision)):
        if value is not None:
            raise ValueError(f"{flag} does not apply to --partitions")
    if args.model not in ("sage", "gat"):
        raise ValueError(f"--partitions trains --model sage or gat, not {args.model}")
    if data_parallel.launches_ranks(args):
        return run_torchrun(args.nproc, ["-m", "gnnscale", *data_parallel.without_nproc(args.argv)])
    options = {"fanouts": args.fanouts, "batch_size": args.batch_size, "hidden": args.hidden, "lr": args.lr,
               "dropout": args.dropout, "eval_every": args.eval_every, "patience": args.patience,
               "dist_timeout": args.dist_timeout, "cache_gib": args.remote_cache_gib}
    report = run_benchmark(None, args.model, runs=args.runs, epochs=args.epochs, device=args.device, options=options,
                           progress=not args.quiet, tensorboard_dir=args.tensorboard_dir, partitions=args.partitions)
    if not data_parallel.is_main_rank():
        return 0
    print(report.table())
    paths = report.write(args.out, provenance(args, args.device))
    print(f"wrote {paths['json']} and {paths['csv']}")
    return 0


def register(commands) -> None:
    bench = commands.add_parser("bench", help="benchmark runners")
    runners = bench.add_subparsers(dest="runner", required=True)
    ogb = runners.add_parser("ogb", help="OGB-style benchmark: runs x epochs, mean ± std table, JSON and CSV",
                             description="Loads with ogb's dataset classes (offline, from --root), scores with "
                                         "ogb's Evaluator; also runs on Planetoid datasets and synthetic presets.")
    ogb.add_argument("--dataset", default=None,
                     help="ogbn-arxiv, ogbn-products, ogbn-papers100M, ogbl-ddi, ogbl-collab, cora, "
                          "synthetic-products..., or a folder written by `gnnscale prepare` / save_dataset")
    ogb.add_argument("--partitions", metavar="DIR", default=None,
                     help="train over the parts of a folder written by `gnnscale partition`, one rank per part "
                          "(torchrun on each machine, or --nproc P here); instead of --dataset")
    ogb.add_argument("--remote-cache-gib", type=gibibytes, default=None,
                     help="with --partitions: each rank's cache of other parts' feature rows (default 0)")
    ogb.add_argument("--model", default="sage", choices=("sage", "gcn", "gat", "largegt"), help="model trained")
    ogb.add_argument("--runs", type=int, default=1, help="runs, seeded 0, 1, ...")
    ogb.add_argument("--epochs", type=int, default=LoopConfig.epochs, help="training epochs per run")
    add_device_argument(ogb)
    ogb.add_argument("--root", default=None, help="data root (default: $GNNSCALE_DATA, else ./datasets)")
    ogb.add_argument("--out", default=default_out("bench-ogb"), help="folder for <dataset>_<model>.json and .csv")
    ogb.add_argument("--scale", type=float, default=0.05, help="size of a synthetic preset relative to OGB")
    ogb.add_argument("--fanouts", type=fanouts, default=None,
                     help="neighbours per layer (default 15,10,5 for nodes, 10,10 for links); for largegt, "
                          "the per-hop bound of the neighbourhood its tokens come from (default 20,10)")
    ogb.add_argument("--batch-size", type=int, default=None,
                     help=f"seeds per step, per rank (default {NodeConfig.batch_size} nodes, {LinkConfig.batch_size} "
                          f"edges, {LargeGTConfig.batch_size} for largegt)")
    ogb.add_argument("--hidden", type=int, default=None,
                     help=f"hidden width (default {NodeConfig.hidden}; {LargeGTConfig.hidden} for largegt)")
    ogb.add_argument("--lr", type=float, default=None,
                     help=f"learning rate (default {OptimizerConfig.lr}; 1e-3 for largegt)")
    ogb.add_argument("--dropout", type=float, default=None,
                     help=f"dropout (default {NodeConfig.dropout}; {LargeGTConfig.dropout} for largegt)")
    ogb.add_argument("--eval-every", type=int, default=None,
                     help=f"epochs between evaluations (default {LoopConfig.eval_every}; the last epoch always)")
    ogb.add_argument("--patience", type=int, default=None,
                     help="evaluations without gain before stopping (default: none, train every epoch)")
    ogb.add_argument("--threads", type=thread_count, default=None,
                     help="loader threads preparing batches ahead (0: none, batches prepared in turn; "
                          "default: 1, or 0 where a rank has a single core)")
    ogb.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                     help="bf16: training forward passes in bfloat16 autocast, evaluation in float32 "
                          "(default fp32)")
    ogb.add_argument("--host-cache-gib", type=gibibytes, default=None,
                     help="read the features of a saved dataset folder from disk through a host row cache of "
                          "this many GiB (default: the features in memory)")
    ogb.add_argument("--inference-memory-gib", type=gibibytes, default=None,
                     help=f"largest table of one layer's outputs evaluation keeps in memory; larger ones go to "
                          f"a temporary file (default {DEFAULT_INFERENCE_MEMORY_GIB:g})")
    ogb.add_argument("--full-graph", action="store_true",
                     help="link prediction: encode the whole graph with full neighbourhoods at every step "
                          "(OGB's full-batch examples; for small dense graphs such as ogbl-ddi)")
    ogb.add_argument("--layers", type=int, default=None, help="with --full-graph: encoder layers (default 2)")
    ogb.add_argument("--grad-clip", type=float, default=None, help="link prediction: cap on each module's "
                     "gradient norm per step (default: none; OGB's ogbl-ddi example: 1.0)")
    ogb.add_argument("--predictor-layers", type=int, default=None,
                     help="link prediction: layers of the MLP edge decoder (default 3)")
    ogb.add_argument("--corrupt", choices=("target", "both"), default=None,
                     help="link prediction negatives: 'target' keeps the positive's source (default), 'both' "
                          "draws random non-edges (OGB's examples)")
    ogb.add_argument("--num-tokens", type=int, default=None, help="largegt: token nodes per node (default 100)")
    ogb.add_argument("--codebook", type=int, default=None, help="largegt: global codebook centroids (default 4096)")
    ogb.add_argument("--no-global", action="store_true", help="largegt: local attention only")
    ogb.add_argument("--token-cache", default=None, help="largegt: folder caching the token table between runs (default: none, built per run)")
    ogb.add_argument("--eval-rounds", type=int, default=None,
                     help="largegt: token draws whose class probabilities evaluation averages (default 1)")
    ogb.add_argument("--quiet", action="store_true", help="no progress bars")
    data_parallel.add_tensorboard_argument(ogb, "folder for TensorBoard scalars per epoch (loss, metrics, times), "
                                                "run i's in DIR/run<i>")
    data_parallel.add_arguments(ogb)
    ogb.set_defaults(run=_bench_ogb)
