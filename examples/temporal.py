"""Dynamic graphs: TGN on the first --events interactions of the JODIE Wikipedia stream.

TemporalTask follows TGN's protocol: events in time order, a chronological 70/15/15 split (made
again on the shortened stream by TemporalDataset.first), 10% of the later nodes held out of
training (the inductive scores), and average precision against one random negative per event.
The model keeps a memory per node, updated batch by batch; queries attend over each node's 10
most recent earlier interactions.

    python examples/temporal.py --events 5000 --epochs 1

The datasets are read from --root, else $GNNSCALE_DATA, else ./datasets (jodie_wikipedia/wikipedia.csv).
"""
import argparse

from gnnscale import load_dataset
from gnnscale.programs.arguments import resolve_device
from gnnscale.train import TemporalTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset folder (default: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--events", type=int, default=5000, help="the first events of the stream (all: 0)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--memory-dim", type=int, default=100)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    wiki = load_dataset("wikipedia", root=args.root)
    events = wiki.first(args.events) if args.events else wiki
    print(f"{events.num_events} of {wiki.num_events} events, {events.num_nodes} nodes")
    task = TemporalTask(events, "tgn", batch_size=args.batch_size, memory_dim=args.memory_dim, num_neighbors=10)
    result = Trainer(task, epochs=args.epochs, lr=1e-3, device=resolve_device(args.device), progress=False).fit()
    metrics = result.metrics
    print(f"AP valid {metrics['valid']:.3f} test {metrics['test']:.3f} (inductive {metrics['test_inductive']:.3f}), "
          f"{result.throughput:.0f} {result.throughput_unit}")
    print(f"test AP {metrics['test']:.4f}")


if __name__ == "__main__":
    main()
