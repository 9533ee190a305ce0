"""The epoch loop every trainer shares: evaluation every N epochs, early stopping on the validation
metric, the best parameters kept, atomic checkpoints with exact resume, metrics and plots."""
import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from .metrics import MetricsLog, plot_history

CHECKPOINT_FILE = "last.pt"
PRECISIONS = ("fp32", "bf16")


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX). On AVX2-only
    CPUs oneDNN emulates them, measured 30x slower than float32 for a [131072, 256] x [256, 256]
    product on 2 AMD EPYC cores."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class TrainResult:
    best_epoch: int
    accuracy: Dict[str, float]  # the metric per split at the best validation epoch
    history: List[Dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    seeds_per_second: float = 0.0  # training items (seed nodes or seed edges) per second


class EpochTrainer:
    """Subclasses set ``self.modules`` (everything trained, an ``nn.Module``), ``self.optimizer``
    and ``self.name``, and implement ``_train_epoch(epoch) -> (loss, seconds, items)`` and
    ``evaluate() -> {split: metric}`` (higher is better; ``'valid'`` drives model selection)."""

    modules: nn.Module
    optimizer: torch.optim.Optimizer
    name: str

    def __init__(self, *, epochs: int, eval_every: int, patience: Optional[int], seed: int, device: str,
                 checkpoint_dir: Optional[Union[str, Path]], resume: bool, log_path, plot_path, progress: bool,
                 precision: str = "fp32"):
        if epochs < 1 or eval_every < 1:
            raise ValueError("epochs and eval_every must be at least 1")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        self.epochs, self.eval_every, self.patience = epochs, eval_every, patience
        self.seed = seed
        self.device = torch.device(device)
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None
        self.resume = resume
        self.log_path, self.plot_path = log_path, plot_path
        self.progress = progress
        self.precision = precision
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16_matmul():
            warnings.warn(f"precision='bf16' on a CPU without native bfloat16 matrix products "
                          f"({torch.backends.cpu.get_cpu_capability()}, no AVX512-BF16 or AMX): they are "
                          f"emulated and many times slower than float32 here; use precision='fp32'",
                          stacklevel=3)
        torch.manual_seed(seed)

    def autocast(self):
        """Context for the training forward pass: bfloat16 matrix products and activations under
        ``precision="bf16"`` (parameters, optimizer state and losses stay float32). Evaluation runs
        in float32 so that ranked scores do not tie at bfloat16's 8-bit mantissa."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _train_epoch(self, epoch: int) -> Tuple[float, float, int]:
        raise NotImplementedError

    def evaluate(self) -> Dict[str, float]:
        raise NotImplementedError

    def fit(self) -> TrainResult:
        state = {"epoch": 0, "best": {"valid": -1.0}, "best_epoch": 0, "best_model": None, "history": [],
                 "evaluations_since_best": 0, "train_seconds": 0.0, "items": 0}
        if self.resume:
            state = self._restore(state)
        log = MetricsLog(self.log_path, append=self.resume and state["epoch"] > 0)
        bar = tqdm(range(state["epoch"] + 1, self.epochs + 1), desc=self.name, disable=not self.progress,
                   initial=state["epoch"], total=self.epochs)
        for epoch in bar:
            start = time.perf_counter()
            loss, items = self._train_epoch(epoch)
            seconds = time.perf_counter() - start
            state["train_seconds"] += seconds
            state["items"] += items
            row = {"epoch": epoch, "loss": loss, "seconds": seconds, "seeds_per_second": items / seconds}
            if epoch % self.eval_every == 0 or epoch == self.epochs:
                metrics = self.evaluate()
                row.update(metrics)
                if metrics["valid"] > state["best"]["valid"]:
                    state.update(best=metrics, best_epoch=epoch, evaluations_since_best=0,
                                 best_model={k: v.detach().cpu().clone() for k, v in self.modules.state_dict().items()})
                else:
                    state["evaluations_since_best"] += 1
            state["history"].append(row)
            log.log(row)
            bar.set_postfix(loss=f"{loss:.3f}", valid=f"{row.get('valid', float('nan')):.3f}",
                            seeds_per_s=f"{row['seeds_per_second']:.0f}")
            state["epoch"] = epoch
            self._save(state)
            if self.patience is not None and state["evaluations_since_best"] >= self.patience:
                break
        if self.plot_path is not None:
            plot_history(state["history"], self.plot_path, self.name)
        if state["best_model"] is not None:
            self.modules.load_state_dict(state["best_model"])
        epochs_run = max(len(state["history"]), 1)
        return TrainResult(state["best_epoch"], state["best"], state["history"], state["train_seconds"] / epochs_run,
                           state["items"] / max(state["train_seconds"], 1e-9))

    def _save(self, state) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(self.checkpoint_path, {"state": state, "modules": self.modules.state_dict(),
                                               "optimizer": self.optimizer.state_dict(), "rng": rng_state()})

    def _restore(self, state):
        checkpoint = load_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            return state  # nothing to resume: start fresh
        self.modules.load_state_dict(checkpoint["modules"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng_state(checkpoint["rng"])
        return checkpoint["state"]
