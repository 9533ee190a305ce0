"""Data-parallel mini-batch training: one script, run on one process or on several under torchrun.

    torchrun --nproc-per-node 2 examples/data_parallel.py --epochs 2
    python examples/data_parallel.py --epochs 2          # the same training in one process

A synthetic graph with communities is saved once with save_dataset (by rank 0; the other ranks
wait for the folder, which appears only once complete) and every rank opens it memory-mapped, so
all ranks share one copy in the page cache. Under torchrun the Trainer joins the ranks (gloo on
the CPU, NCCL with one GPU per LOCAL_RANK): each step takes batch_size x world_size seeds and
each rank trains on its share. Every rank gets the same metrics; rank 0 prints them.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from gnnscale import load_dataset
from gnnscale.datasets import generate_synthetic, save_dataset
from gnnscale.programs.arguments import resolve_device
from gnnscale.train import NodeTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "gnnscale-example-communities"),
                        help="folder the synthetic dataset is saved to (reused when already there)")
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="seed nodes per rank and step")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for another rank")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return parser.parse_args(argv)


def saved_once(folder: Path, num_nodes: int, timeout_s: float) -> Path:
    """Rank 0 saves the dataset unless it is there; the other ranks wait for it to appear."""
    if int(os.environ.get("RANK", "0")) == 0:
        if not (folder / "dataset.json").is_file():
            dataset = generate_synthetic(num_nodes, 8 * num_nodes, 32, 4, homophily=0.8, feature_signal=0.3, seed=0)
            save_dataset(dataset, folder)
        return folder
    deadline = time.monotonic() + timeout_s
    while not (folder / "dataset.json").is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: rank 0 did not save the dataset within {timeout_s:.0f} s")
        time.sleep(0.2)
    return folder


def main(argv=None):
    args = parse_args(argv)
    if "RANK" in os.environ:
        torch.set_num_threads(1)  # ranks on one machine share its cores
    dataset = load_dataset(str(saved_once(Path(args.data), args.nodes, args.timeout)))  # memory-mapped
    task = NodeTask(dataset, "sage", fanouts=[10, 5], batch_size=args.batch_size, hidden=64)
    trainer = Trainer(task, epochs=args.epochs, lr=0.01, device=resolve_device(args.device), progress=False,
                      dist_timeout=args.timeout)
    result = trainer.fit()
    if trainer.ranks.is_main:
        metrics = result.metrics
        print(f"world size {trainer.ranks.world_size}: accuracy train {metrics['train']:.3f} "
              f"valid {metrics['valid']:.3f} test {metrics['test']:.3f}, {result.throughput:.0f} "
              f"{result.throughput_unit}")
        print(f"test accuracy {metrics['test']:.4f}")


if __name__ == "__main__":
    main()
