"""The epoch loop every trainer shares: evaluation every N epochs, early stopping on the validation
metric, the best parameters kept, atomic checkpoints with exact resume, metrics and plots.

A checkpoint records the settings of the run that wrote it (trainer, model and parameter shapes,
optimizer and learning rate, seed, batch size, fanouts, dataset name and sizes, ...). Resuming
checks them against the new run's and refuses any difference, except ``epochs``: a finished run
may be continued for more epochs, or an interrupted one ended sooner, as long as ``epochs`` is
not below the epochs already trained. A run that stopped early (``patience``) stays stopped.
The device and the number of loader threads are not recorded: a run may resume on another
machine (loader threads never change the batches).
"""
import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from ..loader.loaders import check_device
from .checkpoint import check_same_run, flatten, load_checkpoint, plain, restore_rng_state, rng_state, save_checkpoint
from .metrics import MetricsLog, plot_history

CHECKPOINT_FILE = "last.pt"
PRECISIONS = ("fp32", "bf16")
# Optimizer settings that change the updates (not how they are computed: foreach, fused).
OPTIMIZER_SETTINGS = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov", "amsgrad",
                      "maximize")


class NonFiniteLossError(ValueError):
    """A training loss came out NaN or infinite: NaN or infinite inputs, or diverging updates."""


def dataset_summary(dataset) -> Dict[str, Any]:
    """Name and sizes of a graph dataset: enough to tell it (or a scale of a synthetic preset)
    from another in a checkpoint's record of its run."""
    summary = {"name": dataset.name, "nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges}
    features = getattr(dataset, "features", None)
    summary["features"] = None if features is None else list(features.shape)
    return summary


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
    """Subclasses set ``self.modules`` (everything trained, an ``nn.Module``), ``self.optimizer``,
    ``self.name`` and ``self.run_settings`` (what else determines the run: dataset, batch size,
    fanouts, model options; plain values), and implement ``_train_epoch(epoch) -> (loss, items)``
    (taking each batch's loss through :meth:`loss_value`) and ``evaluate() -> {split: metric}``
    (higher is better; ``'valid'`` drives model selection)."""

    modules: nn.Module
    optimizer: torch.optim.Optimizer
    name: str
    run_settings: Dict[str, Any]

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
        self.device = check_device(device)
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

    def loss_value(self, loss: torch.Tensor, epoch: int, batch: int, num_batches: int) -> float:
        """The batch's loss as a float (the one host sync a step makes); raises
        :class:`NonFiniteLossError` naming the epoch and batch (both from 1) where it is NaN or
        infinite, before the bad updates reach a checkpoint."""
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"{self.name}: the training loss is {value} at epoch {epoch}, batch {batch} of "
                                     f"{num_batches}; look for NaN or infinite values in the inputs (features), "
                                     f"or lower the learning rate")
        return value

    def fingerprint(self) -> Dict[str, Any]:
        """Everything that determines the run but ``epochs``, as a flat dict of plain values."""
        optimizer = {name: self.optimizer.defaults[name] for name in OPTIMIZER_SETTINGS
                     if name in self.optimizer.defaults}
        settings = {"trainer": type(self).__name__, **self.run_settings, "seed": self.seed,
                    "eval_every": self.eval_every, "patience": self.patience, "precision": self.precision,
                    "optimizer": {"class": type(self.optimizer).__name__, **optimizer},
                    "model": type(self.modules).__name__,
                    "parameters": {name: list(t.shape) for name, t in self.modules.state_dict().items()}}
        return flatten(plain(settings))

    def _train_epoch(self, epoch: int) -> Tuple[float, int]:
        raise NotImplementedError

    def evaluate(self) -> Dict[str, float]:
        raise NotImplementedError

    def fit(self) -> TrainResult:
        state = {"epoch": 0, "best": {"valid": -1.0}, "best_epoch": 0, "best_model": None, "history": [],
                 "evaluations_since_best": 0, "train_seconds": 0.0, "items": 0}
        fingerprint = self.fingerprint()
        if self.resume:
            state = self._restore(state, fingerprint)
        log = MetricsLog(self.log_path, append=self.resume and state["epoch"] > 0)
        bar = tqdm(range(state["epoch"] + 1, self.epochs + 1), desc=self.name, disable=not self.progress,
                   initial=state["epoch"], total=self.epochs)
        for epoch in bar:
            if self._patience_spent(state):  # checked first, so a resumed run that stopped stays stopped
                break
            start = time.perf_counter()
            loss, items = self._train_epoch(epoch)
            seconds = time.perf_counter() - start
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"{self.name}: the training loss of epoch {epoch} is {loss}")
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
            self._save(state, fingerprint)
        if self.plot_path is not None:
            plot_history(state["history"], self.plot_path, self.name)
        if state["best_model"] is not None:
            self.modules.load_state_dict(state["best_model"])
        epochs_run = max(len(state["history"]), 1)
        return TrainResult(state["best_epoch"], state["best"], state["history"], state["train_seconds"] / epochs_run,
                           state["items"] / max(state["train_seconds"], 1e-9))

    def _patience_spent(self, state) -> bool:
        return self.patience is not None and state["evaluations_since_best"] >= self.patience

    def _save(self, state, fingerprint) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(self.checkpoint_path, {"state": state, "modules": self.modules.state_dict(),
                                               "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
                                               "fingerprint": fingerprint})

    def _restore(self, state, fingerprint):
        checkpoint = load_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            return state  # nothing to resume: start fresh
        recorded = checkpoint.get("fingerprint") if isinstance(checkpoint, dict) else None
        check_same_run(self.checkpoint_path, recorded, fingerprint)
        trained = checkpoint["state"]["epoch"]
        if trained > self.epochs:
            raise ValueError(f"checkpoint {self.checkpoint_path} has trained {trained} epochs, more than "
                             f"epochs={self.epochs}; resume with epochs >= {trained}")
        self.modules.load_state_dict(checkpoint["modules"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng_state(checkpoint["rng"])
        return checkpoint["state"]
