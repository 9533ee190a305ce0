"""``gnnscale embed`` and ``gnnscale embed-eval``: reading the input graph, merging a YAML config
with command-line flags, training or projecting, writing the embeddings, evaluating them."""
import argparse
import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..datasets import load_dataset
from ..graph import Graph
from .evaluate import (DEFAULT_RATIOS, check_regularisation, classifier_name, link_prediction_auc,
                       node_classification)
from .fastrp import fastrp
from .io import Embeddings, check_output_path, load_embeddings, save_embeddings
from .skipgram import METHODS, SkipGram, SkipGramSettings

ALL_METHODS = METHODS + ("fastrp",)
_SKIPGRAM_DEFAULTS = SkipGramSettings()
# Option -> default; a YAML config may set any of them, command-line flags win over the config.
# Skip-gram options take SkipGramSettings' defaults (the budget in MiB; weighting follows the input).
EMBED_DEFAULTS: Dict[str, Any] = {
    **{f.name: getattr(_SKIPGRAM_DEFAULTS, f.name) for f in fields(SkipGramSettings)
       if f.name not in ("memory_budget", "weighted")},
    "memory_budget_mb": _SKIPGRAM_DEFAULTS.memory_budget >> 20, "threads": 0, "device": "cpu",
    "directed": False, "fastrp_weights": "0,0,1,6", "fastrp_beta": -0.9, "fastrp_normalize": True,
    "checkpoint_dir": None, "resume": False, "init": None, "root": None, "quiet": False,
}


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="edge list file, .mat file, or a dataset name `gnnscale info` knows")
    parser.add_argument("--output", help="emb.txt (word2vec text), emb.npy (+ .ids.txt), emb.npz or emb.pt")
    parser.add_argument("--config", help="YAML file with any of these options; flags override it")
    parser.add_argument("--method", choices=ALL_METHODS)
    for name, kind in (("dim", int), ("walk-length", int), ("num-walks", int), ("window", int), ("p", float),
                       ("q", float), ("negatives", int), ("epochs", int), ("lr", float), ("line-order", int),
                       ("share-negatives", int), ("subsample", float), ("memory-budget-mb", int),
                       ("threads", int), ("seed", int), ("fastrp-beta", float)):
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--fastrp-weights", help="weight of each transition-matrix power, comma separated")
    parser.add_argument("--device", help="cpu or cuda (FastRP's sparse products)")
    parser.add_argument("--directed", action="store_true", default=None, help="edge lists: keep edges one-way")
    parser.add_argument("--checkpoint-dir", help="save progress here; with --resume, continue from it")
    parser.add_argument("--resume", action="store_true", default=None)
    parser.add_argument("--init", help="warm start from saved embeddings (rows matched by node id)")
    parser.add_argument("--root", help="data root for dataset names")
    parser.add_argument("--quiet", action="store_true", default=None)


def merged_options(args: argparse.Namespace) -> Dict[str, Any]:
    options = dict(EMBED_DEFAULTS, input=None, output=None)
    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config {path} must be a mapping of option: value")
        for key, value in loaded.items():
            key = key.replace("-", "_")
            if key not in options:
                raise ValueError(f"config {path}: unknown option {key!r}")
            options[key] = value
    for key, value in vars(args).items():
        if key in options and value is not None:
            options[key] = value
    if not options["input"] or not options["output"]:
        raise ValueError("--input and --output are required (on the command line or in --config)")
    return options


def read_graph(source: str, *, directed: bool, root=None) -> Graph:
    """An edge-list or .mat file, or a dataset name; edge lists lose self-loops and repeated edges."""
    path = Path(source)
    if path.is_file() and path.suffix not in (".mat", ".csv"):
        return Graph.from_edge_list(path, directed=directed, drop_self_loops=True, drop_duplicates=True)
    return load_dataset(source, root=root).graph


def _embed(args) -> int:
    options = merged_options(args)
    output = check_output_path(options["output"])
    if options["threads"]:
        torch.set_num_threads(int(options["threads"]))
    start = time.perf_counter()
    graph = read_graph(options["input"], directed=bool(options["directed"]), root=options["root"])
    if graph.num_edges == 0:
        raise ValueError(f"{options['input']}: the graph has no edges")
    isolated = int((graph.degree() == 0).sum())
    quiet = bool(options["quiet"])
    if not quiet:
        print(f"{options['input']}: {graph.num_nodes} nodes, {graph.num_edges} directed edges"
              + (f", {isolated} isolated nodes (no walks start or pass there)" if isolated else ""))
    if options["method"] == "fastrp":
        weights = [float(w) for w in str(options["fastrp_weights"]).split(",")]
        vertex = fastrp(graph, int(options["dim"]), weights=weights, beta=float(options["fastrp_beta"]),
                        normalize=bool(options["fastrp_normalize"]), seed=int(options["seed"]),
                        device=options["device"])
        embeddings, pairs_per_second = Embeddings(vertex=vertex, names=graph.node_names), None
    else:
        settings = SkipGramSettings(**{f.name: options[f.name] for f in fields(SkipGramSettings)
                                       if f.name in options},
                                    weighted=graph.edge_weight is not None,
                                    memory_budget=int(options["memory_budget_mb"]) << 20)
        init = load_embeddings(options["init"]) if options["init"] else None
        model = SkipGram(graph, settings, init=init)
        embeddings = model.fit(progress=not quiet, checkpoint_dir=options["checkpoint_dir"],
                               resume=bool(options["resume"]))
        pairs_per_second = model.pairs_trained / max(model.train_seconds, 1e-9)
    save_embeddings(embeddings, output)
    if not quiet:
        rate = f", {pairs_per_second / 1e6:.2f}M pairs/s" if pairs_per_second else ""
        print(f"{options['method']}: {embeddings.vertex.size(0)} x {embeddings.vertex.size(1)} embeddings in "
              f"{time.perf_counter() - start:.1f} s{rate}; wrote {output}")
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True, help="a file `gnnscale embed` wrote")
    parser.add_argument("--labels", help="dataset (name or .mat file) whose node labels to predict")
    parser.add_argument("--ratios", default=",".join(str(r) for r in DEFAULT_RATIOS),
                        help="shares of labelled nodes used for training")
    parser.add_argument("--repeats", type=int, default=5, help="random splits per ratio")
    parser.add_argument("--normalize", action="store_true", help="scale embeddings to unit length first")
    parser.add_argument("--C", default="1", type=_regularisation, dest="C",
                        help="the classifier's inverse regularisation strength, or 'cv' to choose it per "
                             "split by cross-validation on the training nodes")
    parser.add_argument("--held-out", help="edge list of held-out edges for link-prediction AUC")
    parser.add_argument("--train-edges", help="edge list the embeddings were trained on (excluded negatives)")
    parser.add_argument("--root", help="data root for dataset names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here as JSON")


def _regularisation(text: str):
    try:
        value = text if text == "cv" else float(text)
        check_regularisation(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--C must be a positive number or 'cv', got {text!r}") from None
    return value


def _ids_to_rows(embeddings: Embeddings, names) -> torch.Tensor:
    rows = embeddings.rows_for(np.asarray(names))
    if (rows < 0).any():
        missing = np.asarray(names)[rows < 0][:5]
        raise ValueError(f"{int((rows < 0).sum())} nodes have no embedding (for example {list(missing)})")
    return torch.from_numpy(rows)


def _embed_eval(args) -> int:
    if not args.labels and not args.held_out:
        raise ValueError("give --labels (node classification) and/or --held-out (link prediction)")
    embeddings = load_embeddings(args.embeddings)
    results: Dict[str, Any] = {"embeddings": str(args.embeddings), "classifier": classifier_name(args.C)}
    if args.labels:
        dataset = load_dataset(args.labels, root=args.root)
        if getattr(dataset, "labels", None) is None:
            raise ValueError(f"{args.labels} has no node labels")
        names = dataset.graph.node_names if dataset.graph.node_names is not None else np.arange(dataset.graph.num_nodes)
        vertex = embeddings.vertex[_ids_to_rows(embeddings, names)]
        ratios = [float(r) for r in args.ratios.split(",")]
        scores = node_classification(vertex, dataset.labels, ratios=ratios, repeats=args.repeats, seed=args.seed,
                                     normalize=args.normalize, C=args.C)
        results["node_classification"] = {str(k): v for k, v in scores.items()}
        print(f"node classification on {args.labels}: {classifier_name(args.C)}, {args.repeats} splits per ratio")
        print(f"{'ratio':>6} {'micro-F1':>16} {'macro-F1':>16}")
        for ratio, s in scores.items():
            print(f"{ratio:>6.0%} {s['micro_f1']:>9.4f} ± {s['micro_f1_std']:.4f} "
                  f"{s['macro_f1']:>9.4f} ± {s['macro_f1_std']:.4f}")
    if args.held_out:
        from ..datasets import read_edge_list

        held = read_edge_list(args.held_out)
        held_edges = _ids_to_rows(embeddings, held.node_names[held.edge_index.flatten().numpy()]).view(2, -1).t()
        existing = torch.empty(0, 2, dtype=torch.int64)
        if args.train_edges:
            train = read_edge_list(args.train_edges)
            existing = _ids_to_rows(embeddings, train.node_names[train.edge_index.flatten().numpy()]).view(2, -1).t()
        auc = link_prediction_auc(embeddings.vertex, held_edges, existing, seed=args.seed)
        results["link_prediction_auc"] = auc
        print(f"link prediction: ROC-AUC {auc:.4f} on {held_edges.size(0)} held-out edges "
              "(dot product; as many non-edges drawn uniformly)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def register(commands) -> None:
    embed = commands.add_parser("embed", help="node embeddings: DeepWalk, node2vec, LINE or FastRP",
                                description="Trains node embeddings and writes them to --output.")
    add_embed_arguments(embed)
    embed.set_defaults(run=_embed)
    evaluate = commands.add_parser("embed-eval", help="multi-label node classification and link-prediction AUC")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(run=_embed_eval)
