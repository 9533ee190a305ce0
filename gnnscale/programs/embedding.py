"""``gnnscale embed`` and ``gnnscale embed-eval``: reading the input graph, merging a YAML config
with command-line flags, training or projecting, writing the embeddings, evaluating them."""
import argparse
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List

from .arguments import DEVICE_HELP, device_name, resolve_device
from .results import provenance, write_json

# The methods --method names: skip-gram's (gnnscale.embedding.skipgram.METHODS) and FastRP. Named
# here so that parsing the arguments loads neither torch nor the embedding library.
ALL_METHODS = ("deepwalk", "node2vec", "line", "fastrp")
POSITIVE_OPTIONS = ("threads",)  # 0, the default, leaves torch's thread count as it is


def embed_defaults() -> Dict[str, Any]:
    """Option -> default; a YAML config may set any of them, command-line flags win over the config.
    Skip-gram options take SkipGramSettings' defaults (the budget in MiB; weighting follows the input)."""
    from ..embedding.skipgram import SkipGramSettings

    skipgram = SkipGramSettings()
    return {
        **{f.name: getattr(skipgram, f.name) for f in fields(SkipGramSettings)
           if f.name not in ("memory_budget", "weighted")},
        "memory_budget_mb": skipgram.memory_budget >> 20, "threads": 0, "device": "auto",
        "directed": False, "fastrp_weights": "0,0,1,6", "fastrp_beta": -0.9, "fastrp_normalize": True,
        "checkpoint_dir": None, "resume": False, "init": None, "root": None, "quiet": False,
        "save_context": False,
    }


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="edge list file, .mat file, or a dataset name `gnnscale info` knows")
    parser.add_argument("--output", help="emb.txt (word2vec text), emb.npy (+ .ids.txt), emb.npz or emb.pt")
    parser.add_argument("--config", help="YAML file with any of these options; flags override it")
    parser.add_argument("--method", metavar="{" + ",".join(ALL_METHODS) + "}",
                        help="embedding method (default: deepwalk, or the config's)")
    for name, kind, text in (
            ("dim", int, "embedding width"), ("walk-length", int, "steps per random walk"),
            ("num-walks", int, "walks started from every node"),
            ("window", int, "pairs within this many steps of each other along a walk"),
            ("p", float, "node2vec return parameter"), ("q", float, "node2vec in-out parameter"),
            ("negatives", int, "negative samples per positive pair"), ("epochs", int, "passes over the walks"),
            ("lr", float, "initial learning rate (decays linearly)"), ("line-order", int, "LINE: 1 or 2"),
            ("share-negatives", int, "consecutive centres' pair groups sharing one draw of negatives"),
            ("subsample", float, "frequent-node subsampling threshold (default: 1 / number of nodes; 0: off)"),
            ("memory-budget-mb", int, "memory for pools of walks and pairs"), ("seed", int, "random seed"),
            ("fastrp-beta", float, "FastRP degree normalisation exponent")):
        parser.add_argument(f"--{name}", type=kind, help=text)
    parser.add_argument("--threads", type=_positive_int, help="CPU threads (default: torch's)")
    parser.add_argument("--fastrp-weights", help="weight of each transition-matrix power, comma separated")
    parser.add_argument("--device", type=device_name,
                        help=f"FastRP's sparse products: {DEVICE_HELP} (default: auto, or the config's)")
    parser.add_argument("--directed", action="store_true", default=None, help="edge lists: keep edges one-way")
    parser.add_argument("--checkpoint-dir", help="save progress here; with --resume, continue from it")
    parser.add_argument("--resume", action="store_true", default=None, help="continue from --checkpoint-dir")
    parser.add_argument("--init", help="warm start from saved embeddings (rows matched by node id)")
    parser.add_argument("--save-context", action="store_true", default=None,
                        help="also write the context embeddings (skip-gram's second table; not FastRP's or "
                             "first-order LINE's, which have none)")
    parser.add_argument("--root", help="data root for dataset names")
    parser.add_argument("--quiet", action="store_true", default=None, help="no progress bars")


def merged_options(args: argparse.Namespace) -> Dict[str, Any]:
    options = dict(embed_defaults(), input=None, output=None)
    if args.config:
        options.update(read_config(args.config, options))
    for key, value in vars(args).items():
        if key in options and value is not None:
            options[key] = value
    if not options["input"] or not options["output"]:
        raise ValueError("--input and --output are required (on the command line or in --config)")
    if options["method"] not in ALL_METHODS:
        raise ValueError(f"method must be one of {', '.join(ALL_METHODS)}, got {options['method']!r}")
    if options["save_context"] and not _has_context(options):
        raise ValueError(f"save_context: {_method_name(options)} trains no context embeddings")
    options["device"] = resolve_device(options["device"])
    return options


def read_config(path, defaults: Dict[str, Any]) -> Dict[str, Any]:
    """The options a YAML config sets, each checked against the kind of its default."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"config {path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise ValueError(f"config {path}: not valid YAML: {_yaml_problem(error)}") from None
    if loaded is None:  # an empty file
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"config {path}: the top level must be a mapping of option: value, "
                         f"got a {type(loaded).__name__}")
    options = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if not isinstance(key, str) or name not in defaults:
            raise ValueError(f"config {path}: unknown option {key!r}")
        options[name] = _config_value(path, name, value, defaults[name])
    return options


def _yaml_problem(error) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several)."""
    problem = getattr(error, "problem", None)
    if not problem:
        return " ".join(str(error).split())
    context = getattr(error, "context", None)
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{context + ': ' if context else ''}{problem}{where}"


def _config_value(path: Path, name: str, value, default):
    """``value`` if it has the kind of ``default`` (ints stand for floats; numbers for text)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        fits, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        fits, kind = number and isinstance(value, int), "an integer"
    elif isinstance(default, float):
        fits, kind = number, "a number"
    else:  # text, or None where an option is optional
        fits, kind = value is None or isinstance(value, str) or number, "text"
        value = value if value is None or isinstance(value, str) else str(value)
    if not fits:
        raise ValueError(f"config {path}: {name} must be {kind}, got {value!r}")
    if name in POSITIVE_OPTIONS and value < 1:
        raise ValueError(f"config {path}: {name} must be a positive integer, got {value!r}")
    return value


def _has_context(options: Dict[str, Any]) -> bool:
    """Whether the method trains a context table (refused before training, not after)."""
    return options["method"] != "fastrp" and not (options["method"] == "line" and options["line_order"] == 1)


def _method_name(options: Dict[str, Any]) -> str:
    return "first-order LINE" if options["method"] == "line" else options["method"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def read_graph(source: str, *, directed: bool, root=None):
    """An edge-list or .mat file, or a dataset name; edge lists lose self-loops and repeated edges
    (the graph ``gnnscale info`` describes, kept one-way when ``directed``)."""
    from ..datasets import load_dataset
    from ..datasets.registry import is_edge_list_file
    from ..graph import Graph

    path = Path(source)
    if is_edge_list_file(path):
        return Graph.from_edge_list(path, directed=directed, drop_self_loops=True, drop_duplicates=True)
    return load_dataset(source, root=root).graph


def _embed(args) -> int:
    import torch

    from ..embedding.io import Embeddings, check_output_path, load_embeddings, save_embeddings
    from ..embedding.skipgram import SkipGram, SkipGramSettings

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
        from ..embedding.fastrp import fastrp

        weights = _fastrp_weights(str(options["fastrp_weights"]))
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
    save_embeddings(embeddings, output, with_context=bool(options["save_context"]))
    if not quiet:
        rate = f", {pairs_per_second / 1e6:.2f}M pairs/s" if pairs_per_second else ""
        print(f"{options['method']}: {embeddings.vertex.size(0)} x {embeddings.vertex.size(1)} embeddings in "
              f"{time.perf_counter() - start:.1f} s{rate}; wrote {output}")
    return 0


def _fastrp_weights(text: str):
    try:
        return [float(weight) for weight in text.split(",")]
    except ValueError:
        raise ValueError(f"fastrp_weights must be comma-separated numbers, got {text!r}") from None


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True, help="a file `gnnscale embed` wrote")
    parser.add_argument("--labels", help="dataset (name or .mat file) whose node labels to predict")
    parser.add_argument("--ratios", default=None, type=_ratios,
                        help="shares of labelled nodes used for training, comma separated, each in (0, 1) "
                             "(default: 0.1,0.2,...,0.9)")
    parser.add_argument("--repeats", type=_positive_int, default=5, help="random splits per ratio")
    parser.add_argument("--normalize", action="store_true", help="scale embeddings to unit length first")
    parser.add_argument("--C", default="1", type=_regularisation, dest="C",
                        help="the classifier's inverse regularisation strength, or 'cv' to choose it per "
                             "split by cross-validation on the training nodes")
    parser.add_argument("--held-out", help="edge list of held-out edges for link-prediction AUC")
    parser.add_argument("--train-edges", help="edge list the embeddings were trained on (excluded negatives)")
    parser.add_argument("--root", help="data root for dataset names")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the splits and the negatives")
    parser.add_argument("--json", help="also write the results here as JSON")


def _regularisation(text: str):
    try:
        value = text if text == "cv" else float(text)
        if value != "cv" and not 0 < value < float("inf"):
            raise ValueError(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--C must be a positive number or 'cv', got {text!r}") from None
    return value


def _ratios(text: str) -> List[float]:
    try:
        ratios = [float(part) for part in text.split(",")]
        if not all(0 < ratio < 1 for ratio in ratios):
            raise ValueError(text)
        return ratios
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers strictly between 0 and 1, "
                                         f"got {text!r}") from None


def _ids_to_rows(embeddings, names, nodes: str):
    import numpy as np
    import torch

    rows = embeddings.rows_for(np.asarray(names))
    if (rows < 0).any():
        missing = [str(name) for name in np.asarray(names)[rows < 0][:5]]
        raise ValueError(f"{int((rows < 0).sum())} {nodes} have no embedding (for example {missing})")
    return torch.from_numpy(rows)


def _labelled_rows(embeddings, args, dataset):
    """The embedding row of each node of the labelled dataset, which must be the embedded graph."""
    import numpy as np

    num_nodes = dataset.graph.num_nodes
    if embeddings.vertex.size(0) != num_nodes:
        raise ValueError(f"embeddings {args.embeddings} have {embeddings.vertex.size(0)} rows but {args.labels} "
                         f"has {num_nodes} nodes: they are not embeddings of this graph")
    names = dataset.graph.node_names if dataset.graph.node_names is not None else np.arange(num_nodes)
    return _ids_to_rows(embeddings, names, f"nodes of {args.labels}")


def _embed_eval(args) -> int:
    import torch

    from ..embedding.evaluate import (DEFAULT_RATIOS, check_ratios, classifier_name, link_prediction_auc,
                                      node_classification)
    from ..embedding.io import load_embeddings

    if not args.labels and not args.held_out:
        raise ValueError("give --labels (node classification) and/or --held-out (link prediction)")
    args.ratios = check_ratios(args.ratios if args.ratios is not None else DEFAULT_RATIOS)
    embeddings = load_embeddings(args.embeddings)
    results: Dict[str, Any] = {"embeddings": str(args.embeddings), "classifier": classifier_name(args.C)}
    if args.labels:
        from ..datasets import load_dataset

        dataset = load_dataset(args.labels, root=args.root)
        if getattr(dataset, "labels", None) is None:
            raise ValueError(f"{args.labels} has no node labels")
        vertex = embeddings.vertex[_labelled_rows(embeddings, args, dataset)]
        scores = node_classification(vertex, dataset.labels, ratios=args.ratios, repeats=args.repeats, seed=args.seed,
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
        held_edges = _ids_to_rows(embeddings, held.node_names[held.edge_index.flatten().numpy()],
                                  f"nodes of {args.held_out}").view(2, -1).t()
        existing = torch.empty(0, 2, dtype=torch.int64)
        if args.train_edges:
            train = read_edge_list(args.train_edges)
            existing = _ids_to_rows(embeddings, train.node_names[train.edge_index.flatten().numpy()],
                                    f"nodes of {args.train_edges}").view(2, -1).t()
        auc = link_prediction_auc(embeddings.vertex, held_edges, existing, seed=args.seed)
        results["link_prediction_auc"] = auc
        print(f"link prediction: ROC-AUC {auc:.4f} on {held_edges.size(0)} held-out edges "
              "(dot product; as many non-edges drawn uniformly)")
    if args.json:
        write_json(args.json, results, provenance(args, "cpu"))
    return 0


# --help's defaults of the skip-gram and FastRP options (those of embed_defaults(), which come from
# SkipGramSettings), written out so that --help loads neither torch nor the trainer; a test checks them.
HELP_DEFAULTS = {"method": "deepwalk", "dim": 128, "walk_length": 80, "num_walks": 10, "window": 5, "p": 1.0,
                 "q": 1.0, "negatives": 3, "epochs": 1, "lr": 0.05, "line_order": 2, "share_negatives": 1,
                 "subsample": None, "memory_budget_mb": 1024, "seed": 0, "fastrp_beta": -0.9,
                 "fastrp_weights": "0,0,1,6"}


def register(commands) -> None:
    embed = commands.add_parser("embed", help="node embeddings: DeepWalk, node2vec, LINE or FastRP",
                                shown_defaults=lambda: HELP_DEFAULTS,
                                description="Trains node embeddings and writes them to --output. A --config file's values replace "
                                            "the defaults shown; flags replace both.")
    add_embed_arguments(embed)
    embed.set_defaults(run=_embed)
    evaluate = commands.add_parser("embed-eval", help="multi-label node classification and link-prediction AUC")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(run=_embed_eval)
