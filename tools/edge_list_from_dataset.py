"""Exports the graph of any dataset load_dataset opens (a name, a saved folder, a file) as a text
edge list, one 'source target [weight]' per line, for peers that read one (pecanpy, node2vec, ...).

Usage: python tools/edge_list_from_dataset.py DATASET OUT [--once] [--names] [--weights]
           [--sep tab|space|comma] [--scale 0.01]

Every stored (directed) edge is written, so that Graph.from_edge_list(OUT) reads the same edges
back; --once writes each edge of an undirected graph once (source <= target), as undirected
readers expect, for Graph.from_edge_list(OUT, directed=False). Ids are node numbers, or with
--names the graph's node names (the ids of the file it was read from).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gnnscale.datasets import load_dataset

SEPARATORS = {"tab": "\t", "space": " ", "comma": ","}
CHUNK_EDGES = 1 << 20  # lines formatted at a time: memory stays bounded on large graphs


def edge_columns(graph, *, once: bool, names: bool, weights: bool):
    """Source and target ids (and weights) of the edges to write, as numpy arrays."""
    source, target = graph.edge_index()
    weight = graph.edge_weight
    if weights and weight is None:
        raise ValueError("--weights: the graph has no edge weights")
    if once:
        if not graph.is_symmetric():
            raise ValueError("--once writes each undirected edge once, but this graph is directed; leave it out")
        keep = source <= target
        source, target = source[keep], target[keep]
        weight = None if weight is None else weight[keep]
    columns = [source.numpy(), target.numpy()]
    if names:
        if graph.node_names is None:
            raise ValueError("--names: the graph has no node names; its ids are the node numbers")
        columns = [np.asarray(graph.node_names)[column] for column in columns]
    if weights:
        columns.append(weight.to(torch.float64).numpy())
    return columns


def write_edge_list(graph, path, *, once: bool = False, names: bool = False, weights: bool = False,
                    sep: str = "\t") -> int:
    """Writes ``graph``'s edges to ``path``; returns how many lines were written."""
    columns = edge_columns(graph, once=once, names=names, weights=weights)
    if names and graph.node_names.dtype.kind in "US" and (np.char.find(graph.node_names, sep) >= 0).any():
        raise ValueError(f"node names hold the separator {sep!r}; choose another --sep")
    count = len(columns[0])
    with open(path, "w") as stream:
        for start in range(0, count, CHUNK_EDGES):
            parts = [column[start:start + CHUNK_EDGES].astype(str) for column in columns[:2]]
            if weights:
                parts.append(np.char.mod("%.9g", columns[2][start:start + CHUNK_EDGES]))
            lines = parts[0]
            for part in parts[1:]:
                lines = np.char.add(np.char.add(lines, sep), part)
            if len(lines):
                stream.write("\n".join(lines.tolist()) + "\n")
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="a dataset name (cora, blogcatalog, synthetic-products...), a folder or a file")
    parser.add_argument("out", type=Path, help="edge-list file to write")
    parser.add_argument("--once", action="store_true", help="each edge of an undirected graph once (source <= target)")
    parser.add_argument("--names", action="store_true", help="write node names instead of node numbers")
    parser.add_argument("--weights", action="store_true", help="write edge weights as a third column")
    parser.add_argument("--sep", choices=sorted(SEPARATORS), default="tab", help="column separator (default: tab)")
    parser.add_argument("--scale", type=float, default=0.01, help="size of a synthetic preset (default: 0.01)")
    args = parser.parse_args(argv)
    options = {"scale": args.scale} if args.dataset.lower().startswith("synthetic-") else {}
    graph = load_dataset(args.dataset, **options).graph
    lines = write_edge_list(graph, args.out, once=args.once, names=args.names, weights=args.weights,
                            sep=SEPARATORS[args.sep])
    print(f"{args.dataset}: {graph.num_nodes} nodes, {graph.num_edges} stored edges -> {lines} lines in {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as error:
        print(f"edge_list_from_dataset: error: {error}", file=sys.stderr)
        sys.exit(2)
