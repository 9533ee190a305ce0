"""The one training loop: a :class:`Trainer` runs any :class:`Task` (node classification, link
prediction, LargeGT, temporal link prediction, full-graph node classification).

The Trainer owns what every task shares: epochs, evaluation every N epochs, early stopping on the
validation metric, the best parameters, precision, progress, the metrics log and plot, atomic
checkpoints with exact resume, and the device. A task owns what differs: its modules, its batches,
the loss of a batch and its evaluation.

A checkpoint records the settings of the run that wrote it (task, model and parameter shapes,
optimiser, seed, batch size, fanouts, dataset name and sizes, ...). Resuming checks them against
the new run's and refuses any difference, except ``epochs``: a finished run may be continued for
more epochs, or an interrupted one ended sooner, as long as ``epochs`` is not below the epochs
already trained. A run that stopped early (``patience``) stays stopped. The device, the number
of loader threads and the number of ranks are not recorded: a run may resume on another machine
(loader threads never change the batches) or with another number of ranks.

Data-parallel: under ``torchrun --nproc-per-node N`` (or in a process group set up beforehand)
the Trainer joins the ranks: each trains on its share of every batch (the loaders split one global
order), gradients are averaged by ``DistributedDataParallel``, evaluation is shared out and
gathered, and rank 0 alone writes logs, plots and checkpoints. Per-rank ``batch_size`` B/N on N
ranks trains on the same items per step as B in one process. A wait on a rank that died or hangs
ends within ``LoopConfig.dist_timeout`` seconds with an error naming it.

Model-parallel: a task that spreads one model over the ranks itself (``model_parallel = True``:
the stages and partitions of :class:`~gnnscale.train.ParallelFullGraphTask`) runs its own step
across them; the Trainer neither wraps it in DistributedDataParallel nor splits its batches, and
each rank checkpoints its own share (:class:`~gnnscale.checkpoint.RankCheckpoints`).
"""
import atexit
import contextlib
import dataclasses
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import ops
from ..distributed.launch import init_from_environment, leave, naming_silent_ranks
from ..distributed.ranks import SINGLE, Ranks, current_ranks
from ..checkpoint import (RankCheckpoints, check_same_run, flatten, load_checkpoint, plain, restore_rng_state,
                          rng_state, save_checkpoint)
from .config import LoopConfig, OptimizerConfig
from .metrics import MetricsLog, PeakMemory, TensorBoardLog, check_tensorboard
from .plots import plot_history

CHECKPOINT_FILE = "last.pt"
CHECKPOINT_KEYS = ("state", "modules", "optimizer", "rng")
# Optimizer settings that change the updates (not how they are computed: foreach, fused).
OPTIMIZER_SETTINGS = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov", "amsgrad",
                      "maximize")
# Early stopping is reported here too, for runs without a progress bar.
logger = logging.getLogger("gnnscale.train")


class NonFiniteLossError(ValueError):
    """A training loss came out NaN or infinite: NaN or infinite inputs, or diverging updates."""


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX). On AVX2-only
    CPUs oneDNN emulates them, measured 30x slower than float32 for a [131072, 256] x [256, 256]
    product on 2 AMD EPYC cores."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def throughput_key(unit: str) -> str:
    """The metrics-log column of a throughput in ``unit`` per second: 'seed nodes' -> 'seed_nodes_per_second'."""
    return unit.replace(" ", "_") + "_per_second"


@dataclass
class TrainResult:
    """``metrics``: the task's metric per split (and any other scores its evaluation reports) at
    the best validation epoch; ``metric``: what those numbers are ('accuracy', 'hits@20', 'ap');
    ``throughput``: training items per second of training time, in ``throughput_unit``;
    ``feature_tiers``: what each tier of the features served (device cache, host cache, disk), for
    tasks that read features through them.

    Times, in seconds, over the epochs trained (those of a resumed run's checkpoint included):
    ``train_seconds`` the training steps alone, ``eval_seconds`` the ``evaluations`` alone;
    ``seconds_per_epoch`` is training time per epoch (evaluation excluded),
    ``eval_seconds_per_evaluation`` the mean evaluation, and ``seconds_per_epoch_with_eval`` both
    together per epoch. ``stopped_early``: patience ended training after ``epochs_trained`` epochs.
    ``peak_host_memory_bytes``: this fit's own peak resident host memory (None where it cannot be
    read); ``peak_device_memory_bytes``: its peak memory allocated by torch on a CUDA device
    (None on other devices)."""

    best_epoch: int
    metrics: Dict[str, float]
    metric: str
    history: List[Dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    throughput: float = 0.0
    throughput_unit: str = ""
    stopped_early: bool = False
    feature_tiers: Dict[str, Dict[str, float]] = field(default_factory=dict)
    epochs_trained: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    evaluations: int = 0
    eval_seconds_per_evaluation: float = 0.0
    seconds_per_epoch_with_eval: float = 0.0
    peak_host_memory_bytes: Optional[int] = None
    peak_device_memory_bytes: Optional[int] = None


class Task:
    """What one kind of training adds to the loop. A task sets ``name`` (shown in progress and
    plots), ``metric`` (what its evaluation reports per split; higher is better, and 'valid'
    selects the best epoch) and ``unit`` (what it trains on, counted for the throughput), and
    implements:

    - ``build(device, seed) -> nn.Module``: creates everything trained, on ``device`` (called once,
      after the Trainer seeded torch's generator with ``seed``, so initial parameters follow it), with
      the loaders it draws batches from, seeded with ``seed``;
    - ``settings() -> dict``: plain values that, with the loop and optimiser settings, determine the
      run (recorded in checkpoints);
    - ``batches(epoch)``: the training batches of ``epoch`` (from 1), a function of the seed and the
      epoch; ``num_batches()``;
    - ``loss(batch) -> (loss, items)``: the batch's loss and how many training items it holds;
    - ``evaluate() -> {split: value}``.

    Optional: ``start_epoch(epoch)`` and ``after_step(batch_output)`` for tasks with state across
    batches, ``parameter_groups()`` (each clipped on its own by ``grad_clip``), ``finish()`` after
    training, the defaults ``default_loop`` / ``default_optimizer``, ``fused_optimizer``, and
    ``state_dict()`` / ``load_state_dict(state)`` for state besides the modules' that a checkpoint
    must carry to resume exactly.

    Data-parallel: before ``build`` the Trainer sets ``ranks`` (:class:`~gnnscale.distributed.Ranks`);
    a task gives its loaders ``ranks.loader_share()`` and shares its evaluation out with
    ``ranks.span`` / ``ranks.gather``, so every rank returns the same metrics. A task that cannot
    train data-parallel sets ``data_parallel = False``.

    Model-parallel (``model_parallel = True``): the task implements ``optimise(batch, optimizer,
    grad_clip) -> (loss, items)`` instead of ``loss``, running forward, backward and the step of
    ``optimizer`` (over this rank's modules) across the ranks, and returns the same loss, items and
    metrics on every rank.
    """

    name: str = "task"
    metric: str = "accuracy"
    unit: str = "items"
    default_loop = LoopConfig()
    default_optimizer = OptimizerConfig()
    # One fused optimiser step over all parameters: for models of many small tensors, the
    # per-tensor loop of the default implementation costs more than the arithmetic.
    fused_optimizer = False
    data_parallel = True
    model_parallel = False
    # Ranks take equal shares of every global batch but the last; a task whose shares differ
    # batch by batch (the nodes each rank owns) sets False, and every loss is weighted by its share.
    even_shares = True
    ranks: Ranks = SINGLE

    def build(self, device: torch.device, seed: int) -> nn.Module:
        raise NotImplementedError

    def settings(self) -> Dict[str, Any]:
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable:
        raise NotImplementedError

    def num_batches(self) -> int:
        raise NotImplementedError

    def loss(self, batch) -> Tuple[torch.Tensor, int]:
        raise NotImplementedError

    def optimise(self, batch, optimizer: torch.optim.Optimizer, grad_clip: Optional[float]) -> Tuple[float, int]:
        raise NotImplementedError

    def evaluate(self) -> Dict[str, float]:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, batch) -> None:
        pass

    def parameter_groups(self, modules: nn.Module) -> List[Iterable[nn.Parameter]]:
        return [modules.parameters()]

    def finish(self) -> None:
        pass

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    def feature_tiers(self) -> Dict[str, Dict[str, float]]:
        return {}


class Trainer:
    """Trains ``task``:

        trainer = Trainer(NodeTask(dataset, "sage", fanouts=[15, 10, 5]), loop=LoopConfig(epochs=20))
        result = trainer.fit()          # result.metrics: train / valid / test at the best epoch

    ``loop`` and ``optimizer`` default to the task's own defaults; keyword ``options`` override
    single fields of either (``Trainer(task, epochs=5, lr=0.01)``).
    """

    def __init__(self, task: Task, *, loop: Optional[LoopConfig] = None, optimizer: Optional[OptimizerConfig] = None,
                 device: Union[str, torch.device] = "cpu", **options):
        if not isinstance(task, Task):
            raise ValueError(f"task must be a gnnscale.train Task (NodeTask, LinkTask, ...), got {type(task).__name__}")
        loop, optimizer = _with_options(loop or task.default_loop, optimizer or task.default_optimizer, options)
        self.task, self.loop, self.optimizer_config = task, loop, optimizer
        self.device = ops.check_device(device)
        self.ranks = _join_ranks(self.device, loop.dist_timeout)
        if self.ranks.world_size > 1:
            if not (task.data_parallel or task.model_parallel):
                raise ValueError(f"{type(task).__name__} trains in one process, but this is rank {self.ranks.rank} "
                                 f"of {self.ranks.world_size}: start it without torchrun (or with --nproc 1)")
            self.device = _local_device(self.device)
        if loop.precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16_matmul():
            warnings.warn(f"precision='bf16' on a CPU without native bfloat16 matrix products "
                          f"({torch.backends.cpu.get_cpu_capability()}, no AVX512-BF16 or AMX): they are "
                          f"emulated and many times slower than float32 here; use precision='fp32'",
                          stacklevel=2)
        if loop.tensorboard_dir is not None:
            check_tensorboard()  # on every rank, so that none is left waiting for one that failed
        torch.manual_seed(loop.seed)
        task.ranks = self.ranks
        self.modules = task.build(self.device, loop.seed)
        self.optimizer = _make_optimizer(optimizer, self.modules, task.fused_optimizer)
        self._step = (task.loss if self.ranks.world_size == 1 or task.model_parallel else
                      _data_parallel_step(task, self.modules, self.device))
        # fit() starts from here, whatever is drawn from torch's generator in between.
        self._start_rng = rng_state()
        self.checkpoint_path = self.checkpoints = None
        if loop.checkpoint_dir is not None and task.model_parallel:
            self.checkpoints = RankCheckpoints(loop.checkpoint_dir, self.ranks)
        elif loop.checkpoint_dir is not None:
            self.checkpoint_path = Path(loop.checkpoint_dir) / CHECKPOINT_FILE

    @property
    def model(self) -> nn.Module:
        return self.modules

    def autocast(self):
        """Context for the training forward pass: bfloat16 matrix products and activations under
        ``precision="bf16"`` (parameters, optimizer state and losses stay float32). Evaluation runs
        in float32 so that ranked scores do not tie at bfloat16's 8-bit mantissa."""
        if self.loop.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def fingerprint(self) -> Dict[str, Any]:
        """Everything that determines the run but ``epochs``, as a flat dict of plain values."""
        loop = self.loop
        optimizer = {name: self.optimizer.defaults[name] for name in OPTIMIZER_SETTINGS
                     if name in self.optimizer.defaults}
        settings = {"task": type(self.task).__name__, **self.task.settings(), "seed": loop.seed,
                    "eval_every": loop.eval_every, "patience": loop.patience, "precision": loop.precision,
                    "optimizer": {"class": type(self.optimizer).__name__, **optimizer,
                                  "grad_clip": self.optimizer_config.grad_clip},
                    "modules": type(self.modules).__name__,
                    "parameters": {name: list(t.shape) for name, t in self.modules.state_dict().items()}}
        return flatten(plain(settings))

    def evaluate(self) -> Dict[str, float]:
        self.modules.eval()
        with torch.no_grad():
            return self.task.evaluate()

    def train_epoch(self, epoch: int) -> Tuple[float, int]:
        """One epoch of steps; returns the mean loss per item and the number of items (over all
        ranks)."""
        task = self.task
        self.modules.train()
        task.start_epoch(epoch)
        total_loss, total_items = 0.0, 0
        num_batches = task.num_batches()
        for b, batch in enumerate(task.batches(epoch), start=1):
            if task.model_parallel:
                with self.autocast():
                    loss, items = task.optimise(batch, self.optimizer, self.optimizer_config.grad_clip)
            else:
                loss, items = self._optimise(batch, last=b == num_batches)
            task.after_step(batch)
            total_loss += self._finite(float(loss), epoch, b, num_batches) * items
            total_items += items
        if not task.model_parallel:  # a model-parallel task's figures are already the whole model's
            total_loss, total_items = self.ranks.sum([total_loss, total_items])
        return total_loss / max(total_items, 1), int(total_items)

    def _optimise(self, batch, last: bool) -> Tuple[torch.Tensor, int]:
        """One step on ``batch``: its loss and items (this rank's share)."""
        self.optimizer.zero_grad()
        with self.autocast():
            loss, items = self._step(batch)
        self._scaled_for_ranks(loss, items, last=last).backward()
        if self.optimizer_config.grad_clip is not None:
            for group in self.task.parameter_groups(self.modules):
                nn.utils.clip_grad_norm_(group, self.optimizer_config.grad_clip)
        self.optimizer.step()
        return loss.detach(), items

    def _scaled_for_ranks(self, loss: torch.Tensor, items: int, last: bool) -> torch.Tensor:
        """The loss whose gradient, averaged over the ranks, is that of the whole batch's mean:
        the loaders give every rank the same number of items but in an epoch's last batch, where
        each rank's loss is weighted by its share."""
        if self.ranks.world_size == 1 or (not last and self.task.even_shares):
            return loss
        (batch_items,) = self.ranks.sum([items])
        return loss * (items * self.ranks.world_size / batch_items)

    def _finite(self, value: float, epoch: int, batch: int, num_batches: int) -> float:
        """The batch's loss (its conversion to a float is the one host sync a step makes); raises
        :class:`NonFiniteLossError` naming the epoch and batch (both from 1) where it is NaN or
        infinite, before the bad updates reach a checkpoint."""
        if not math.isfinite(value):
            raise NonFiniteLossError(f"{self.task.name}: the training loss is {value} at epoch {epoch}, batch {batch} "
                                     f"of {num_batches}; look for NaN or infinite values in the inputs (features), "
                                     f"or lower the learning rate")
        return value

    def fit(self, on_epoch_end: Optional[Callable[[Dict[str, float]], None]] = None) -> TrainResult:
        """Trains ``loop.epochs`` epochs (from the checkpoint's with ``loop.resume``) and returns the
        metrics of the best validation epoch, whose parameters the modules hold afterwards.
        ``on_epoch_end(row)`` is called with each epoch's metrics-log row once its checkpoint is
        written."""
        loop, task = self.loop, self.task
        state = {"epoch": 0, "best": {"valid": -math.inf}, "best_epoch": 0, "best_model": None, "history": [],
                 "evaluations_since_best": 0, "train_seconds": 0.0, "items": 0}
        fingerprint = self.fingerprint()
        restore_rng_state(self._start_rng)
        if loop.resume:
            state = self._restore(state, fingerprint)
        elif self.checkpoints is not None:
            self.checkpoints.clear()  # starting over: no older run's epoch may be resumed later
        state.setdefault("eval_seconds", 0.0)  # absent from checkpoints of older versions
        state.setdefault("evaluations", sum(1 for row in state["history"] if "valid" in row))
        main = self.ranks.is_main
        logs = [MetricsLog(loop.log_path if main else None, append=loop.resume and state["epoch"] > 0)]
        if loop.tensorboard_dir is not None and main:
            logs.append(TensorBoardLog(loop.tensorboard_dir, resumed_after=state["epoch"]))
        speed = throughput_key(task.unit)
        bar = tqdm(range(state["epoch"] + 1, loop.epochs + 1), desc=task.name, disable=not (loop.progress and main),
                   initial=state["epoch"], total=loop.epochs, unit="epoch")
        try:
            with self._naming_silent_ranks(), PeakMemory(self.device) as peak:
                state, stopped_early = self._train(state, fingerprint, logs, speed, bar, on_epoch_end)
        finally:
            bar.close()
            for log in logs[1:]:
                log.close()
        if stopped_early and main:
            self._say_stopped_early(state)
        if loop.plot_path is not None and main:
            plot_history(state["history"], loop.plot_path, task.name, task.metric, best_epoch=state["best_epoch"])
        if state["best_model"] is not None:
            self.modules.load_state_dict(state["best_model"])
        task.finish()
        return self._result(state, stopped_early, peak)

    def _say_stopped_early(self, state) -> None:
        line = (f"{self.task.name}: stopped early after epoch {state['epoch']}: {self.loop.patience} evaluation(s) "
                f"without a better valid {self.task.metric} than epoch {state['best_epoch']}'s")
        logger.info(line)
        if self.loop.progress:
            tqdm.write(line)

    def _result(self, state, stopped_early: bool, peak: PeakMemory) -> TrainResult:
        task = self.task
        epochs = len(state["history"])
        train_seconds, eval_seconds, evaluations = state["train_seconds"], state["eval_seconds"], state["evaluations"]
        return TrainResult(state["best_epoch"], state["best"], task.metric, state["history"],
                           seconds_per_epoch=train_seconds / max(epochs, 1),
                           throughput=state["items"] / max(train_seconds, 1e-9), throughput_unit=task.unit + "/s",
                           stopped_early=stopped_early, feature_tiers=task.feature_tiers(), epochs_trained=epochs,
                           train_seconds=train_seconds, eval_seconds=eval_seconds, evaluations=evaluations,
                           eval_seconds_per_evaluation=eval_seconds / max(evaluations, 1),
                           seconds_per_epoch_with_eval=(train_seconds + eval_seconds) / max(epochs, 1),
                           peak_host_memory_bytes=peak.host_bytes, peak_device_memory_bytes=peak.device_bytes)

    def _naming_silent_ranks(self):
        return naming_silent_ranks() if self.ranks.world_size > 1 else contextlib.nullcontext()

    def _train(self, state, fingerprint, logs, speed, bar, on_epoch_end):
        """The epochs from ``state`` on; returns the state after them and whether patience ended them.
        Each epoch's row: ``loss``, ``train_seconds`` (``seconds``: the same, its older name), the
        training throughput, ``eval_seconds`` (None without an evaluation) and the metrics."""
        stopped_early = False
        for epoch in bar:
            if self._patience_spent(state):  # checked first, so a resumed run that stopped stays stopped
                stopped_early = True
                break
            start = time.perf_counter()
            loss, items = self.train_epoch(epoch)
            seconds = time.perf_counter() - start
            state["train_seconds"] += seconds
            state["items"] += items
            row = {"epoch": epoch, "loss": loss, "train_seconds": seconds, "seconds": seconds, speed: items / seconds,
                   "eval_seconds": None}
            if epoch % self.loop.eval_every == 0 or epoch == self.loop.epochs:
                row.update(self._evaluate_epoch(state, epoch))
            state["history"].append(row)
            for log in logs:
                log.log(row)
            bar.set_postfix(_progress_postfix(state["history"]))
            state["epoch"] = epoch
            self._save(state, fingerprint)
            if on_epoch_end is not None:
                on_epoch_end(row)
        return state, stopped_early

    def _evaluate_epoch(self, state, epoch: int) -> Dict[str, float]:
        """The epoch's metrics and evaluation time; keeps the best parameters in ``state``."""
        start = time.perf_counter()
        metrics = self.evaluate()
        seconds = time.perf_counter() - start
        state["eval_seconds"] += seconds
        state["evaluations"] += 1
        if metrics["valid"] > state["best"]["valid"]:
            state.update(best=metrics, best_epoch=epoch, evaluations_since_best=0,
                         best_model={k: v.detach().cpu().clone() for k, v in self.modules.state_dict().items()})
        else:
            state["evaluations_since_best"] += 1
        return {**metrics, "eval_seconds": seconds}

    def _patience_spent(self, state) -> bool:
        return self.loop.patience is not None and state["evaluations_since_best"] >= self.loop.patience

    def _save(self, state, fingerprint) -> None:
        if self.checkpoints is not None:  # every rank its own share
            self.checkpoints.save(state["epoch"], self._payload(state, fingerprint, rng_state()))
        elif self.checkpoint_path is not None:
            generators = self._rng_states()
            if self.ranks.is_main:
                save_checkpoint(self.checkpoint_path, {**self._payload(state, fingerprint, generators[0]),
                                                       "rank_rng": generators})

    def _payload(self, state, fingerprint, generators) -> Dict[str, Any]:
        return {"state": state, "modules": self.modules.state_dict(), "optimizer": self.optimizer.state_dict(),
                "task": self.task.state_dict(), "rng": generators, "fingerprint": fingerprint}

    def _rng_states(self) -> List[Dict[str, Any]]:
        """Every rank's random generators, in rank order: ranks draw different amounts (dropout on
        batches of other sizes), so each resumes from its own."""
        return self.ranks.gather_objects(rng_state())

    def _restore(self, state, fingerprint):
        if self.checkpoints is not None:
            restored = self.checkpoints.load(lambda path, checkpoint: self._resume_from(path, checkpoint, fingerprint))
        else:
            checkpoint = load_checkpoint(self.checkpoint_path)
            restored = None if checkpoint is None else self._resume_from(self.checkpoint_path, checkpoint, fingerprint)
        return state if restored is None else restored  # nothing to resume: start fresh

    def _resume_from(self, path: Path, checkpoint, fingerprint) -> Dict[str, Any]:
        """Loads ``checkpoint`` (read from ``path``) into the modules, optimiser, task and random
        generators once it proves to be one of this run's; returns its run state."""
        recorded = checkpoint.get("fingerprint") if isinstance(checkpoint, dict) else None
        check_same_run(path, recorded, fingerprint)
        missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
        if missing:
            raise ValueError(f"checkpoint {path} is damaged: it lacks {', '.join(missing)}")
        trained = checkpoint["state"]["epoch"]
        if trained > self.loop.epochs:
            raise ValueError(f"checkpoint {path} has trained {trained} epochs, more than "
                             f"epochs={self.loop.epochs}; resume with epochs >= {trained}")
        self.modules.load_state_dict(checkpoint["modules"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.task.load_state_dict(checkpoint.get("task", {}))
        # Every rank's generators (rank 0's checkpoint) or this rank's own (per-rank checkpoints).
        # With another number of ranks than the checkpoint's, the ranks it has no state for start
        # from rank 0's.
        generators = checkpoint.get("rank_rng") or [checkpoint["rng"]]
        rank = self.ranks.rank
        restore_rng_state(generators[rank] if rank < len(generators) else generators[0])
        return checkpoint["state"]


def _progress_postfix(history: List[Dict[str, Any]]) -> Dict[str, str]:
    """What the progress bar shows after an epoch: the loss and training time of the last epoch,
    and the validation metric and evaluation time of the last evaluation, once there is one."""
    last = history[-1]
    postfix = {"loss": f"{last['loss']:.3f}", "train": f"{last['train_seconds']:.2f}s"}
    evaluated = [row for row in history if row.get("eval_seconds") is not None]
    if evaluated:
        postfix.update(valid=f"{evaluated[-1]['valid']:.3f}", eval=f"{evaluated[-1]['eval_seconds']:.2f}s")
    return postfix


def _with_options(loop: LoopConfig, optimizer: OptimizerConfig, options: Dict[str, Any]):
    """The configs with single fields replaced by keyword options; an unknown option is refused."""
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)}
    optimizer_fields = {f.name for f in dataclasses.fields(OptimizerConfig)} - {"name"}
    unknown = sorted(set(options) - loop_fields - optimizer_fields)
    if unknown:
        raise ValueError(f"Trainer: unknown option(s) {', '.join(unknown)}; loop options are "
                         f"{', '.join(sorted(loop_fields))}, optimiser options {', '.join(sorted(optimizer_fields))}"
                         f" (task options go to the task)")
    return (dataclasses.replace(loop, **{k: v for k, v in options.items() if k in loop_fields}),
            dataclasses.replace(optimizer, **{k: v for k, v in options.items() if k in optimizer_fields}))


def _join_ranks(device: torch.device, timeout_s: Optional[float]) -> Ranks:
    """The data-parallel ranks this process is one of: those of a process group already set up,
    else those torchrun started (joined here, and left at exit), else this process alone."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        init_from_environment("nccl" if device.type == "cuda" else "gloo", timeout_s)
        atexit.register(leave)
    return current_ranks()


def _local_device(device: torch.device) -> torch.device:
    """One GPU per local rank (torchrun's LOCAL_RANK), unless the caller named one."""
    if device.type != "cuda" or device.index is not None:
        return device
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(local)
    return local


class _TaskLoss(nn.Module):
    """The task's loss as a module over its parameters, so that DistributedDataParallel's forward
    (which readies its gradient reduction) runs the task's own step."""

    def __init__(self, task: Task, modules: nn.Module):
        super().__init__()
        self.trained = modules
        self.task = task

    def forward(self, batch):
        return self.task.loss(batch)


def _data_parallel_step(task: Task, modules: nn.Module, device: torch.device):
    wrapped = DistributedDataParallel(_TaskLoss(task, modules), device_ids=[device] if device.type == "cuda" else None)
    return wrapped


def _make_optimizer(config: OptimizerConfig, modules: nn.Module, fused: bool) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.name]
    return kind(modules.parameters(), lr=config.lr, weight_decay=config.weight_decay, **({"fused": True} if fused else {}))


def dataset_summary(dataset) -> Dict[str, Any]:
    """Name and sizes of a graph dataset: enough to tell it (or a scale of a synthetic preset)
    from another in a checkpoint's record of its run."""
    summary = {"name": dataset.name, "nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges}
    features = getattr(dataset, "features", None)
    summary["features"] = None if features is None else list(features.shape)
    return summary


def model_summary(model: nn.Module) -> Dict[str, Any]:
    """What identifies a model in a run's record: its class, its kind (gnnscale's encoders) and
    its parameters' shapes are recorded by the Trainer."""
    return {"class": type(model).__name__, "kind": getattr(model, "kind", None)}
