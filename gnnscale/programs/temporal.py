"""``gnnscale temporal``: trains TGN or JODIE (optionally with PRES) on an event stream at one or
more temporal batch sizes; prints and writes the metrics (JSON), the per-epoch log, a plot of
average precision against batch size, and optionally the trained model for serving."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

from ..train.config import TemporalConfig
from . import data_parallel
from .arguments import add_device_argument, resolve_device
from .results import default_out, provenance, result_path, write_json

# The command's defaults are the task's and the model's. The model's options and the task's epochs
# and learning rate are None here, left to TemporalTask, so that parsing the arguments imports
# neither gnnscale.nn (which loads torch_geometric) nor the trainer.
TASK = TemporalConfig()

# --bipartite: what read_temporal_edge_list is told (None: a JODIE header means bipartite).
BIPARTITE = {"auto": None, "yes": True, "no": False}


def load_events(source: str, root=None, bipartite: str = "auto"):
    """The event stream ``source`` names: a file of ``src dst timestamp`` lines (JODIE csv files
    among them), or a dataset name (wikipedia, a saved folder) whose data is an event stream."""
    from ..datasets import TemporalDataset, known_datasets, load_dataset

    path = Path(source)
    if path.is_file() and source.lower() not in known_datasets():  # names first, as load_dataset
        from ..datasets.jodie import read_temporal_edge_list

        return read_temporal_edge_list(path, bipartite=BIPARTITE[bipartite])
    if bipartite != "auto":
        raise ValueError(f"--bipartite {bipartite}: applies to an event file, and {source} is not a file")
    dataset = load_dataset(source, root=root)
    if not isinstance(dataset, TemporalDataset):
        raise ValueError(f"{source} is not an event stream (wikipedia, or a file of src dst timestamp lines "
                         f"such as a JODIE csv)")
    return dataset


def _batch_sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--batch-size must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batch-size values must be positive, got {text!r}")
    return sizes


def _model_options(args) -> Dict:
    """The model options given on the command line (one width for memory, time encoding and
    embedding); those not given keep the model's defaults."""
    options = {"num_neighbors": args.neighbors, "strategy": args.strategy, "aggregator": args.aggregator,
               "in_batch_visible": args.in_batch_visible, "pres_trend": args.pres_trend}
    if args.memory_dim is not None:
        options.update(memory_dim=args.memory_dim, time_dim=args.memory_dim, embedding_dim=args.memory_dim)
    return {name: value for name, value in options.items() if value is not None}


def _temporal(args) -> int:
    from ..train import TemporalTask, Trainer
    from ..train.plots import plot_precision_by_batch

    args.device = resolve_device(args.device)  # refused before any data is loaded
    data_parallel.check_tensorboard_dir(args.tensorboard_dir)
    sizes = _batch_sizes(args.batch_size)
    if args.save and len(sizes) * (2 if args.compare_pres else 1) > 1:
        raise ValueError("--save needs a single run: one --batch-size and no --compare-pres")
    if args.max_events and args.max_events < 10:  # refused before the data is read
        raise ValueError(f"--max-events must be at least 10, got {args.max_events}")
    dataset = load_events(args.dataset, root=args.root, bipartite=args.bipartite)
    if args.max_events:
        dataset = dataset.first(args.max_events)  # named <name>-first<N> when it is shorter
    label = dataset.name
    out = args.out
    options = _model_options(args)
    args.epochs = epochs = args.epochs if args.epochs is not None else TemporalTask.default_loop.epochs
    args.lr = lr = args.lr if args.lr is not None else TemporalTask.default_optimizer.lr
    run_info = provenance(args, args.device)
    rows = []
    for pres in ((False, True) if args.compare_pres else (args.pres,)):
        for size in sizes:
            tag = f"{size}{'_pres' if pres else ''}"
            task = TemporalTask(dataset, args.model, batch_size=size, mrr_negatives=args.mrr_negatives, pres=pres,
                                **options)
            trainer = Trainer(task, epochs=epochs, lr=lr, seed=args.seed, device=args.device,
                              log_path=result_path(out, "temporal", label, args.model, tag, suffix=".jsonl"),
                              progress=not args.quiet,
                              tensorboard_dir=None if args.tensorboard_dir is None else Path(args.tensorboard_dir) / tag)
            result = trainer.fit()
            row = {"batch_size": size, "pres": pres, "best_epoch": result.best_epoch,
                   "events_per_second": result.throughput, "seconds_per_epoch": result.seconds_per_epoch,
                   "eval_seconds_per_evaluation": result.eval_seconds_per_evaluation,
                   "peak_host_memory_bytes": result.peak_host_memory_bytes,
                   "peak_device_memory_bytes": result.peak_device_memory_bytes,
                   **result.metrics}
            rows.append(row)
            metrics = "  ".join(f"{name} {value:.4f}" for name, value in result.metrics.items())
            print(f"{args.model}{' + PRES' if pres else ''}  batch {size}: {result.throughput:.0f} training "
                  f"events/s; best epoch {result.best_epoch}: {metrics}", flush=True)
            if args.save:
                trainer.model.save(args.save)
                print(f"saved the model and its state to {args.save}")
    report = write_json(result_path(out, "temporal", label, args.model, suffix=".json"),
                        {"dataset": dataset.name, "num_nodes": dataset.num_nodes, "num_events": dataset.num_events,
                         "model": args.model, "epochs": epochs, "runs": rows}, run_info)
    plot = result_path(out, "temporal", label, args.model, "ap", suffix=".png")
    plot_precision_by_batch(rows, plot, f"{args.model} on {dataset.name}")
    print(f"wrote {report} and {plot}")
    return 0


# --help's defaults of the options the task and model decide (TemporalTask's loop and optimiser,
# TemporalModelConfig's fields), written out so that --help loads neither; a test checks them.
HELP_DEFAULTS = {"epochs": 5, "lr": 1e-3, "memory_dim": 100, "neighbors": 10, "strategy": "recent",
                 "aggregator": "last", "pres_trend": "gmm", "in_batch_visible": True}


def register(commands) -> None:
    parser = commands.add_parser("temporal", help="dynamic-graph link prediction: TGN / JODIE, optionally with PRES",
                                 shown_defaults=lambda: HELP_DEFAULTS,
                                 description="Chronological 70/15/15 split; transductive and inductive average "
                                             "precision and AUC against one random negative per event.")
    parser.add_argument("--dataset", default="wikipedia",
                        help="wikipedia, or an event file: one 'src dst timestamp' per line (tabs, commas or "
                             "spaces; a header line and extra columns allowed), a JODIE csv among them")
    parser.add_argument("--bipartite", default="auto", choices=tuple(BIPARTITE),
                        help="an event file's sources and destinations: two sets of nodes (yes: destination ids "
                             "follow the sources'), one set (no), or auto: bipartite when the file has a JODIE "
                             "header")
    parser.add_argument("--root", default=None, help="data root (default: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--model", default="tgn", choices=("tgn", "jodie"), help="dynamic-graph model")
    parser.add_argument("--batch-size", default=str(TASK.batch_size), help="temporal batch size(s), comma separated")
    parser.add_argument("--pres", action="store_true", help="PRES prediction-correction and coherence loss")
    parser.add_argument("--compare-pres", action="store_true", help="run every batch size with and without PRES")
    parser.add_argument("--pres-trend", default=None, choices=("gmm", "ema"),
                        help="PRES model of memory change")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--lr", type=float, default=None, help="learning rate")
    parser.add_argument("--memory-dim", type=int, default=None,
                        help="memory, time-encoding and embedding width")
    parser.add_argument("--neighbors", type=int, default=None, help="sampled earlier interactions per query")
    parser.add_argument("--strategy", default=None, choices=("recent", "uniform"),
                        help="which earlier interactions are sampled: the most recent, or uniformly")
    parser.add_argument("--aggregator", default=None, choices=("last", "mean"),
                        help="how a node's pending messages are combined")
    parser.add_argument("--in-batch-visible", action=argparse.BooleanOptionalAction, default=None,
                        help="queries see earlier events of their own batch as neighbours (TGN's reference; "
                             "--no-in-batch-visible: earlier batches only, as PyG's LastNeighborLoader)")
    parser.add_argument("--mrr-negatives", type=int, default=TASK.mrr_negatives,
                        help="also rank each test event among N negatives")
    parser.add_argument("--max-events", type=int, default=0,
                        help="use only the first N events, split again 70/15/15 (quick runs; 0: all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    add_device_argument(parser)
    parser.add_argument("--out", default=default_out("temporal"), help="folder for the JSON, logs and the plot")
    data_parallel.add_tensorboard_argument(parser, "folder for TensorBoard scalars per epoch, each run's in "
                                                   "DIR/<batch size>[_pres]")
    parser.add_argument("--save", default=None, help="write the trained model and its state here (.pt)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=_temporal)
