"""Link prediction with LinkTask: a link dataset built from a graph by holding out edges.

A synthetic graph with communities loses 10% of its edges to validation and 10% to test; each of
those splits gets random node pairs as negatives, and LinkDataset holds it all in OGB's layout
(edge_split[split]['edge'] / ['edge_neg']). LinkTask trains GraphSAGE on the sampled
neighbourhoods of each batch's endpoints with an MLP edge decoder and reports Hits@K: the share
of held-out edges scored above the K-th best negative.

    python examples/link_prediction.py --epochs 3

For a small dense graph such as ogbl-ddi, LinkTask(load_dataset("ogbl-ddi"), "sage", full_graph=True) encodes
the whole graph at every step instead (about 25 s an epoch on 2 CPU cores, and many epochs to learn).
"""
import argparse

import torch

from gnnscale import Graph
from gnnscale.datasets import LinkDataset, generate_synthetic
from gnnscale.programs.arguments import resolve_device
from gnnscale.train import LinkTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--edges", type=int, default=16000)
    parser.add_argument("--hits-k", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return parser.parse_args(argv)


def held_out_link_dataset(num_nodes: int, num_edges: int, hits_k: int, seed: int) -> LinkDataset:
    """Every undirected edge once, shuffled; the first 10% validate, the next 10% test, the rest
    train and alone form the graph the model sees."""
    data = generate_synthetic(num_nodes, num_edges, 32, 8, homophily=0.95, feature_signal=1.0, seed=seed)
    row, col = data.graph.edge_index()
    undirected = torch.stack([row[row < col], col[row < col]], dim=1)
    gen = torch.Generator().manual_seed(seed)
    undirected = undirected[torch.randperm(undirected.size(0), generator=gen)]
    tenth = undirected.size(0) // 10
    valid, test, train = undirected[:tenth], undirected[tenth:2 * tenth], undirected[2 * tenth:]
    graph = Graph.from_edge_index(train.t().contiguous(), num_nodes, symmetrize=True)
    split = {"train": {"edge": train},
             "valid": {"edge": valid, "edge_neg": torch.randint(0, num_nodes, (num_nodes, 2), generator=gen)},
             "test": {"edge": test, "edge_neg": torch.randint(0, num_nodes, (num_nodes, 2), generator=gen)}}
    return LinkDataset(name="communities", graph=graph, features=data.features, edge_split=split,
                       metric=f"hits@{hits_k}")


def make_task(args) -> LinkTask:
    dataset = held_out_link_dataset(args.nodes, args.edges, args.hits_k, args.seed)
    return LinkTask(dataset, "sage", fanouts=[10, 10], batch_size=1024, hidden=64)


def main(argv=None):
    args = parse_args(argv)
    task = make_task(args)
    result = Trainer(task, epochs=args.epochs, lr=0.01, grad_clip=1.0, seed=args.seed,
                     device=resolve_device(args.device), progress=False).fit()
    metrics = result.metrics
    print(f"{result.metric}: train {metrics['train']:.3f} valid {metrics['valid']:.3f} test {metrics['test']:.3f}")
    print(f"test {result.metric} {metrics['test']:.4f}")


if __name__ == "__main__":
    main()
