"""Mini-batch node classification: GraphSAGE on Cora's sampled neighbourhoods with Trainer + NodeTask.

Shows the fan-outs and batch size of sampled training, and a LoopConfig that checkpoints every
epoch, logs metrics as JSON lines and plots the curves into --out; run it again with --resume and
more --epochs to continue from the last checkpoint.

    python examples/node_classification.py --epochs 5
    python examples/node_classification.py --epochs 10 --resume   # continues from epoch 5

The datasets are read from --root, else $GNNSCALE_DATA, else ./datasets (Cora under planetoid/Cora/raw).
"""
import argparse
from pathlib import Path

from gnnscale import load_dataset
from gnnscale.programs.arguments import resolve_device
from gnnscale.train import LoopConfig, NodeTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset folder (default: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fanouts", type=lambda text: [int(f) for f in text.split(",")], default=[10, 10],
                        help="neighbours sampled per layer, comma separated (-1: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--out", default="runs/node_classification", help="checkpoints, metrics log and plot")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cora = load_dataset("cora", root=args.root)
    task = NodeTask(cora, "sage", fanouts=args.fanouts, batch_size=args.batch_size, hidden=args.hidden)
    out = Path(args.out)
    loop = LoopConfig(epochs=args.epochs, checkpoint_dir=out / "checkpoints", resume=args.resume,
                      log_path=out / "metrics.jsonl", plot_path=out / "curves.png", progress=False)
    result = Trainer(task, loop=loop, lr=args.lr, device=resolve_device(args.device)).fit()
    metrics = result.metrics
    print(f"best epoch {result.best_epoch}: accuracy train {metrics['train']:.3f} valid {metrics['valid']:.3f} "
          f"test {metrics['test']:.3f}")
    print(f"{result.throughput:.0f} {result.throughput_unit}; checkpoints, metrics.jsonl and curves.png in {out}")
    print(f"test accuracy {metrics['test']:.4f}")


if __name__ == "__main__":
    main()
