"""``gnnscale info``: sizes, features, classes, splits and degree statistics of a dataset."""
from typing import List


def _degree_line(graph) -> str:
    import torch

    degree = graph.degree("out").to(torch.float64)
    if degree.numel() == 0:
        return "no nodes"
    return (f"min {int(degree.min())}, median {int(degree.median())}, mean {float(degree.mean()):.2f}, "
            f"max {int(degree.max())}, isolated {int((degree == 0).sum())}")


def _edge_line(graph) -> str:
    if graph.is_symmetric():
        loops = graph.num_self_loops()
        undirected = (graph.num_edges - loops) // 2 + loops
        return f"{graph.num_edges} directed ({undirected} undirected)"
    return f"{graph.num_edges} directed"


def describe(dataset) -> List[str]:
    """Lines of ``gnnscale info``: sizes, features, classes, splits and degree statistics."""
    from ..datasets import LinkDataset, NodeDataset, TemporalDataset

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
    from ..datasets import load_dataset

    dataset = load_dataset(args.name, root=args.root)
    print("\n".join(describe(dataset)))
    return 0


def register(commands) -> None:
    info = commands.add_parser("info", help="describe a dataset: sizes, features, classes, splits, degrees")
    info.add_argument("name", help="dataset name (cora, blogcatalog, ogbl-ddi, synthetic-products...) or a file")
    info.add_argument("--root", default=None, help="data root (default: $GNNSCALE_DATA, else ./datasets)")
    info.set_defaults(run=_info)
