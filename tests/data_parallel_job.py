"""A data-parallel training job the tests start under torchrun (or as one rank, with torchrun's
environment set by hand): node classification on a small synthetic graph, with checkpoints, and
on request a kill -9 of the whole job when an epoch begins."""
import argparse
import json
import os
import signal
from pathlib import Path

import torch

from gnnscale.datasets import generate_synthetic
from gnnscale.train import NodeTask, Trainer


class ObservedTask(NodeTask):
    """Notes each epoch it starts in ``started`` and, at epoch ``kill_at``, rank 0 SIGKILLs its
    launcher (torchrun, whose ranks then die with it) and itself."""

    def __init__(self, *args, started=None, kill_at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.started, self.kill_at = started, kill_at

    def start_epoch(self, epoch):
        if self.kill_at == epoch and self.ranks.is_main:
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        if self.started:
            Path(f"{self.started}.rank{self.ranks.rank}").write_text(str(epoch))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--started")
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = generate_synthetic(1500, 12000, 16, 4, homophily=0.8, feature_signal=0.3, seed=4)
    task = ObservedTask(dataset, "sage", fanouts=[5, 5], batch_size=args.batch_size, hidden=16, dropout=0.5,
                        started=args.started, kill_at=args.kill_at)
    trainer = Trainer(task, epochs=args.epochs, checkpoint_dir=args.checkpoint_dir, resume=args.resume, seed=1,
                      lr=0.01, progress=False, dist_timeout=args.timeout)
    result = trainer.fit()
    if trainer.ranks.is_main and args.out:
        Path(args.out).write_text(json.dumps(outcome(trainer, result)))


def outcome(trainer, result):
    """What must match between runs: per-epoch losses and metrics, and the final parameters."""
    return {"world_size": trainer.ranks.world_size, "epochs": [row["epoch"] for row in result.history],
            "losses": [row["loss"] for row in result.history], "metrics": result.metrics,
            "parameters": {name: value.flatten().tolist() for name, value in trainer.model.state_dict().items()}}


if __name__ == "__main__":
    main()
