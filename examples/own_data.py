"""Bring your own data: a NodeDataset from your own tensors, and a graph from an edge list file.

1. Tensors as PyG users hold them (edge_index, features x, labels y, boolean train/val/test
   masks) become a NodeDataset: Graph.from_edge_index builds the graph, the masks become index
   splits, and num_classes is counted from the labels when left out. Trainer + NodeTask train it.
2. Labels outside [0, num_classes) are refused with an error naming the split and the range.
3. An edge list file (here written to a temporary folder; tab, space or comma separated, string
   or integer ids) opens with load_dataset(path); its graph keeps the file's ids in
   graph.node_names, which line your own per-node tables up with the graph's node numbers.

    python examples/own_data.py --epochs 5
"""
import argparse
import tempfile
from pathlib import Path

import torch

from gnnscale import Graph, load_dataset
from gnnscale.datasets import NodeDataset
from gnnscale.train import NodeTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=600)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def community_tensors(num_nodes: int, num_classes: int, seed: int):
    """Stand-in for your data: nodes of one class link mostly to each other; features are a noisy
    copy of the class; 60/20/20 random masks."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (num_nodes,), generator=gen)
    src = torch.randint(0, num_nodes, (num_nodes * 8,), generator=gen)
    dst = torch.randint(0, num_nodes, (num_nodes * 8,), generator=gen)
    keep = (y[src] == y[dst]) | (torch.rand(src.numel(), generator=gen) < 0.05)
    edge_index = torch.stack([src[keep], dst[keep]])
    x = torch.nn.functional.one_hot(y, num_classes).float() + torch.randn(num_nodes, num_classes, generator=gen)
    # and uninformative columns: 32 float32 columns in all, since rows under 128 bytes draw a warning about GPU reads
    x = torch.cat([x, torch.randn(num_nodes, 32 - num_classes, generator=gen)], dim=1)
    draw = torch.rand(num_nodes, generator=gen)
    masks = {"train": draw < 0.6, "val": (draw >= 0.6) & (draw < 0.8), "test": draw >= 0.8}
    return edge_index, x, y, masks


def dataset_from_tensors(edge_index, x, y, masks, num_classes: int = 0) -> NodeDataset:
    """num_classes=0: counted from the labels (largest label + 1)."""
    graph = Graph.from_edge_index(edge_index, x.size(0), symmetrize=True, drop_self_loops=True, drop_duplicates=True)
    splits = {"train": masks["train"].nonzero().flatten(), "valid": masks["val"].nonzero().flatten(),
              "test": masks["test"].nonzero().flatten()}
    return NodeDataset(name="my-graph", graph=graph, features=x, labels=y, splits=splits, num_classes=num_classes)


def train(dataset, args) -> float:
    task = NodeTask(dataset, "sage", fanouts=[10, 10], batch_size=64, hidden=32)
    result = Trainer(task, epochs=args.epochs, lr=0.01, seed=args.seed, progress=False).fit()
    return result.metrics["test"]


def show_label_check(edge_index, x, y, masks) -> None:
    too_few = dataset_from_tensors(edge_index, x, y, masks, num_classes=int(y.max()))  # one class short
    try:
        NodeTask(too_few, "sage")
    except ValueError as error:
        print(f"labels out of range are refused: {error}")
    else:
        raise AssertionError("labels outside [0, num_classes) were accepted")


def edge_list_dataset(edge_index, x, y, masks, folder: Path) -> NodeDataset:
    """The same graph as a file with string ids, read back; features, labels and masks follow the
    file's ids (graph.node_names) to the graph's node numbers."""
    path = folder / "edges.tsv"
    lines = [f"user{int(s)}\tuser{int(d)}" for s, d in edge_index.t() if s != d]
    path.write_text("# source\ttarget\n" + "\n".join(lines) + "\n")
    from_file = load_dataset(str(path))
    row = torch.tensor([int(name[len("user"):]) for name in from_file.graph.node_names])  # node number -> my row
    return dataset_from_tensors(from_file.graph.edge_index(), x[row], y[row],
                                {split: mask[row] for split, mask in masks.items()})


def main(argv=None):
    args = parse_args(argv)
    edge_index, x, y, masks = community_tensors(args.nodes, args.classes, args.seed)
    dataset = dataset_from_tensors(edge_index, x, y, masks)
    print(f"{dataset.graph.num_nodes} nodes, {dataset.graph.num_edges} stored edges, "
          f"num_classes counted from the labels: {dataset.num_classes}")
    print(f"own tensors test accuracy {train(dataset, args):.4f}")
    show_label_check(edge_index, x, y, masks)
    with tempfile.TemporaryDirectory() as folder:
        from_file = edge_list_dataset(edge_index, x, y, masks, Path(folder))
    print(f"edge list: {from_file.graph.num_nodes} nodes, {from_file.graph.num_edges} stored edges")
    print(f"edge list test accuracy {train(from_file, args):.4f}")


if __name__ == "__main__":
    main()
