"""A PyG model on gnnscale's batches: torch_geometric.nn.GraphSAGE trained on Cora twice.

First by a plain PyG-style loop over gnnscale's NodeLoader (batch.x, batch.edge_index,
batch.y[:batch.batch_size], as in PyG's NeighborLoader examples), scored on full neighbourhoods;
then the same kind of model handed to Trainer(NodeTask(dataset, model)), which adds per-layer
trimming, layer-wise evaluation and the rest of the loop.

    python examples/pyg_training_loop.py --epochs 5
"""
import argparse

import torch
from torch.nn import functional as F
from torch_geometric.nn import GraphSAGE

from gnnscale import load_dataset
from gnnscale.loader import NodeLoader
from gnnscale.programs.arguments import resolve_device
from gnnscale.train import NodeTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset folder (default: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fanouts", type=lambda text: [int(f) for f in text.split(",")], default=[10, 10])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return parser.parse_args(argv)


def new_model(dataset, hidden: int, num_layers: int) -> GraphSAGE:
    return GraphSAGE(dataset.num_features, hidden, num_layers=num_layers, out_channels=dataset.num_classes,
                     dropout=0.5)


def train_plain_loop(dataset, args, device) -> float:
    """PyG's usual mini-batch loop; the loader samples and gathers on background threads."""
    torch.manual_seed(args.seed)
    model = new_model(dataset, args.hidden, len(args.fanouts)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = NodeLoader(dataset.graph, dataset.features, dataset.splits["train"], args.fanouts, args.batch_size,
                        labels=dataset.labels, seed=args.seed, device=device)
    for epoch in range(args.epochs):
        model.train()
        for batch in loader:
            optimizer.zero_grad()
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
            loss = F.cross_entropy(out, batch.y[:batch.batch_size])
            loss.backward()
            optimizer.step()
    return accuracy(model, dataset, "test", device)


@torch.no_grad()
def accuracy(model, dataset, split: str, device) -> float:
    """Scored on every neighbour (fanout -1 per layer), in seed order."""
    model.eval()
    loader = NodeLoader(dataset.graph, dataset.features, dataset.splits[split], [-1] * model.num_layers, 1024,
                        labels=dataset.labels, shuffle=False, device=device)
    correct = total = 0
    for batch in loader:
        predicted = model(batch.x, batch.edge_index)[:batch.batch_size].argmax(dim=1)
        correct += int((predicted == batch.y[:batch.batch_size]).sum())
        total += batch.batch_size
    return correct / total


def train_with_trainer(dataset, args, device) -> float:
    model = new_model(dataset, args.hidden, len(args.fanouts))
    task = NodeTask(dataset, model, fanouts=args.fanouts, batch_size=args.batch_size)
    result = Trainer(task, epochs=args.epochs, lr=args.lr, seed=args.seed, device=device, progress=False).fit()
    return result.metrics["test"]


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(resolve_device(args.device))
    cora = load_dataset("cora", root=args.root)
    print(f"plain PyG loop test accuracy {train_plain_loop(cora, args, device):.4f}")
    print(f"Trainer(NodeTask) test accuracy {train_with_trainer(cora, args, device):.4f}")


if __name__ == "__main__":
    main()
