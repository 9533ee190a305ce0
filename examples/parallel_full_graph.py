"""Parallel full-graph training: a deep residual GCN on Cora, its layers pipelined over 2 ranks (GNNPipe).

    torchrun --nproc-per-node 2 examples/parallel_full_graph.py --epochs 30

Each rank is one pipeline stage holding half of the layers and the whole graph; the graph flows
through the stages in --chunks chunks, and a chunk reads its neighbours in other chunks from
history buffers, so only chunk activations cross between ranks. --partitions 2 --stages 1 splits
the graph instead (graph parallelism, halo rows exchanged at every layer). The Trainer joins the
ranks; every rank gets the same metrics, and rank 0 prints them with the bytes sent per epoch.
"""
import argparse

import torch

from gnnscale import load_dataset
from gnnscale.train import ParallelFullGraphTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset folder (default: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for another rank")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)  # ranks on one machine share its cores
    cora = load_dataset("cora", root=args.root)
    task = ParallelFullGraphTask(cora, stages=args.stages, partitions=args.partitions, chunks=args.chunks,
                                 num_layers=args.layers, hidden=args.hidden, conv="gcn", dropout=0.5)
    trainer = Trainer(task, epochs=args.epochs, lr=0.005, eval_every=5, progress=False, dist_timeout=args.timeout)
    result = trainer.fit()
    traffic = {kind: int(count) for kind, count in task.traffic()["train"].items()}  # every rank's part, summed
    if trainer.ranks.is_main:
        metrics = result.metrics
        print(f"{args.stages} stages x {args.partitions} partitions, {args.chunks} chunks: accuracy train "
              f"{metrics['train']:.3f} valid {metrics['valid']:.3f} test {metrics['test']:.3f}; bytes sent per epoch "
              f"{traffic}")
        print(f"test accuracy {metrics['test']:.4f}")


if __name__ == "__main__":
    main()
