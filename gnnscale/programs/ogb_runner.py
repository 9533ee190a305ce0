"""The OGB benchmark runner behind ``gnnscale bench ogb``: several seeded runs of one model on one
dataset, summarised the way the OGB leaderboards are (mean ± std of each split's metric at the
best validation epoch, parameter count), plus training time per epoch, time per evaluation, epoch
time with evaluation, each run's own peak host and GPU memory and what each tier of the features
served (device cache, host cache, disk), as a printed table, JSON and CSV."""
import csv
import dataclasses
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..atomic import write_atomically
from ..datasets import LinkDataset, NodeDataset, load_dataset
from ..train import LargeGTTask, LinkTask, NodeTask, PartitionedNodeTask, Trainer
from ..train.config import (LargeGTConfig, LinkConfig, LoopConfig, NodeConfig, PartitionedNodeConfig, defaults_of,
                            split_options)
from .results import result_path, write_json

SPLITS = ("train", "valid", "test")


@dataclass
class RunRecord:
    run: int
    seed: int
    best_epoch: int
    train: float
    valid: float
    test: float
    epochs_trained: int
    # seconds: the training steps of an epoch (evaluation excluded), one evaluation, and an epoch
    # with its share of the evaluations
    train_seconds_per_epoch: float
    eval_seconds_per_evaluation: float
    evaluations: int
    seconds_per_epoch_with_eval: float
    # this run's own peaks (rank 0's with several ranks): resident host memory (None where it
    # cannot be read) and memory torch allocated on the GPU (None off CUDA)
    peak_host_memory_bytes: Optional[int]
    peak_device_memory_bytes: Optional[int]
    # per tier (device_cache, host_cache, disk) what it served, training and evaluation together;
    # empty when the features are read from memory
    feature_tiers: Dict[str, Dict[str, float]] = field(default_factory=dict)


# The columns of the CSV: one value each per run.
CSV_COLUMNS = [name for name in RunRecord.__dataclass_fields__ if name != "feature_tiers"]
# The columns the summary gives the mean and standard deviation of.
SUMMARY_COLUMNS = list(SPLITS) + ["train_seconds_per_epoch", "eval_seconds_per_evaluation",
                                  "seconds_per_epoch_with_eval", "peak_host_memory_bytes",
                                  "peak_device_memory_bytes"]
TABLE_WIDTH = 18


def record_of(run: int, seed: int, result) -> RunRecord:
    """The report's record of one run, from the :class:`~gnnscale.train.TrainResult` of its fit."""
    return RunRecord(run=run, seed=seed, best_epoch=result.best_epoch,
                     **{split: result.metrics[split] for split in SPLITS},
                     epochs_trained=result.epochs_trained, train_seconds_per_epoch=result.seconds_per_epoch,
                     eval_seconds_per_evaluation=result.eval_seconds_per_evaluation,
                     evaluations=result.evaluations, seconds_per_epoch_with_eval=result.seconds_per_epoch_with_eval,
                     peak_host_memory_bytes=result.peak_host_memory_bytes,
                     peak_device_memory_bytes=result.peak_device_memory_bytes,
                     feature_tiers=result.feature_tiers)


def mean_and_std(values: List[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def count_range(counts: List[int]) -> str:
    """'3' when every run has the same count, else '2-3'."""
    low, high = min(counts), max(counts)
    return f"{low}" if low == high else f"{low}-{high}"


def tier_lines(tiers: Dict[str, Dict[str, float]], width: int) -> List[str]:
    """The table's lines on what the feature tiers served in one run."""
    lines = []
    for key, title in (("device_cache", "device cache"), ("host_cache", "host cache"), ("remote_cache", "remote cache")):
        if key in tiers:
            lines.append(f"{title:<{width}}{tiers[key]['hit_rate']:.1%} of {tiers[key]['requests']:,} rows")
    if "remote_fetch" in tiers:
        lines.append(f"{'remote fetch':<{width}}{tiers['remote_fetch']['bytes'] / 2**20:,.1f} MiB, "
                     f"{tiers['remote_fetch']['rows']:,} rows (rank 0)")
    if "disk" in tiers:
        lines.append(f"{'disk':<{width}}{tiers['disk']['bytes_read'] / 2**20:,.1f} MiB read, "
                     f"{tiers['disk']['rows_read']:,} rows")
    return lines


@dataclass
class BenchmarkReport:
    dataset: str
    model: str
    metric: str
    device: str
    epochs: int
    parameters: int
    options: Dict[str, Any]
    runs: List[RunRecord] = field(default_factory=list)
    world_size: int = 1  # data-parallel ranks; peak memory is rank 0's

    def summary(self) -> Dict[str, Dict[str, float]]:
        """Mean and (sample) standard deviation over runs of every measured column; a memory
        column no run measured (GPU memory off CUDA) is left out."""
        columns = {column: [getattr(record, column) for record in self.runs] for column in SUMMARY_COLUMNS}
        return {column: mean_and_std(values) for column, values in columns.items()
                if values and None not in values}

    def table(self) -> str:
        summary = self.summary()
        width = TABLE_WIDTH
        ranks = f" · {self.world_size} ranks" if self.world_size > 1 else ""
        lines = [f"{self.dataset} · {self.model} · {len(self.runs)} run(s) × {self.epochs} epochs · {self.device}{ranks}",
                 f"{'':<{width}}" + "".join(f"{split:>20}" for split in SPLITS)]
        lines.append(f"{self.metric:<{width}}" + "".join(
            f"{summary[split]['mean']:>11.4f} ± {summary[split]['std']:.4f}" for split in SPLITS))
        lines.append(f"{'parameters':<{width}}{self.parameters:,}")
        lines += self.time_lines(summary, width) + self.memory_lines(summary, width)
        if self.runs:  # the first run's tiers: the others read the same rows in the same order
            lines += tier_lines(self.runs[0].feature_tiers, width)
        return "\n".join(lines)

    def time_lines(self, summary: Dict[str, Dict[str, float]], width: int) -> List[str]:
        """Training time per epoch, evaluation time per evaluation and epoch time with evaluation,
        each labelled: the first excludes evaluation, the last includes its share."""
        def seconds(column: str) -> str:
            return f"{summary[column]['mean']:.2f} ± {summary[column]['std']:.2f} s"

        evaluations = count_range([record.evaluations for record in self.runs])
        return [f"{'training time':<{width}}{seconds('train_seconds_per_epoch')} per epoch (evaluation excluded)",
                f"{'evaluation time':<{width}}{seconds('eval_seconds_per_evaluation')} per evaluation "
                f"({evaluations} per run)",
                f"{'epoch time':<{width}}{seconds('seconds_per_epoch_with_eval')} per epoch with evaluation"]

    def memory_lines(self, summary: Dict[str, Dict[str, float]], width: int) -> List[str]:
        """Each run's own peak host memory and, on CUDA, GPU memory (means over the runs)."""
        rank = ", rank 0" if self.world_size > 1 else ""
        lines = []
        if "peak_host_memory_bytes" in summary:
            lines.append(f"{'peak host memory':<{width}}{summary['peak_host_memory_bytes']['mean'] / 2**30:.2f} GiB "
                         f"(resident set{rank})")
        if "peak_device_memory_bytes" in summary:
            lines.append(f"{'peak GPU memory':<{width}}{summary['peak_device_memory_bytes']['mean'] / 2**30:.2f} GiB "
                         f"(allocated by torch{rank})")
        return lines

    def write(self, directory: Path, run: Optional[Dict[str, Any]] = None) -> Dict[str, Path]:
        """``<dataset>_<model>.json`` (options, runs, summary and ``run``, the provenance of
        :func:`gnnscale.programs.results.provenance`) and ``.csv`` (one row per run, then mean and
        std rows), each written atomically."""
        payload = {**asdict(self), "summary": self.summary()}
        json_path = write_json(result_path(directory, self.dataset, self.model, suffix=".json"), payload, run)
        rows = [{name: getattr(record, name) for name in CSV_COLUMNS} for record in self.runs]
        summary = self.summary()
        for statistic in ("mean", "std"):
            rows.append({"run": statistic, **{k: v[statistic] for k, v in summary.items()}})

        def write_csv(stream):
            writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

        csv_path = write_atomically(result_path(directory, self.dataset, self.model, suffix=".csv"), write_csv,
                                    mode="w")
        return {"json": json_path, "csv": csv_path}


@dataclass
class Partitions:
    """A partitioned dataset (``gnnscale partition``'s folder) as the runner's dataset."""

    folder: str
    name: str

    @classmethod
    def open(cls, folder: str) -> "Partitions":
        import json

        from ..distributed.partition import MANIFEST

        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"no partitioned dataset in {folder} ({MANIFEST} is missing)")
        return cls(str(folder), str(json.loads(path.read_text()).get("dataset", Path(folder).name)))


def task_type(dataset, model: str):
    """The task the runner trains ``model`` with on ``dataset``: :class:`NodeTask`,
    :class:`LargeGTTask` (``model='largegt'``), :class:`LinkTask`, or on :class:`Partitions`
    :class:`PartitionedNodeTask`."""
    if isinstance(dataset, Partitions):
        if model not in ("sage", "gat"):
            raise ValueError(f"--partitions trains sage or gat, not {model}")
        return PartitionedNodeTask
    if model == "largegt":
        if not isinstance(dataset, NodeDataset):
            raise ValueError(f"{dataset.name}: largegt classifies nodes; it does not run on {type(dataset).__name__}")
        return LargeGTTask
    if isinstance(dataset, NodeDataset):
        return NodeTask
    if isinstance(dataset, LinkDataset):
        return LinkTask
    raise ValueError(f"{dataset.name}: the benchmark runner handles node classification and link prediction "
                     f"datasets, not {type(dataset).__name__}")


_CONFIGS = {NodeTask: NodeConfig, LinkTask: LinkConfig, LargeGTTask: LargeGTConfig,
            PartitionedNodeTask: PartitionedNodeConfig}


def task_defaults(task: type) -> Dict[str, Any]:
    """Every option of the runner for ``task`` with its default: the task's config, the task's
    optimiser and the loop (epochs excepted: the runner's own)."""
    optimizer = task.default_optimizer
    loop = {k: v for k, v in defaults_of(LoopConfig).items()
            if k in ("eval_every", "patience", "precision")}
    return {**defaults_of(_CONFIGS[task]), "optimizer": optimizer.name, "lr": optimizer.lr,
            "weight_decay": optimizer.weight_decay, "grad_clip": optimizer.grad_clip, **loop}


def make_trainer(dataset, model: str, *, epochs: int, seed: int, device: str, options: Dict[str, Any],
                 progress: bool = True, tensorboard_dir: Optional[Union[str, Path]] = None) -> Trainer:
    """The Trainer the runner uses: ``options`` are flat (task, optimiser and loop options
    together, as the command line gives them); an option of another task is refused."""
    task = task_type(dataset, model)
    loop, optimizer, task_options = split_options(options, _CONFIGS[task])
    if task is PartitionedNodeTask:
        trainer_task = task(dataset.folder, model, **task_options)
    else:
        trainer_task = task(dataset, **task_options) if task is LargeGTTask else task(dataset, model, **task_options)
    return Trainer(trainer_task, loop=LoopConfig(epochs=epochs, seed=seed, progress=progress,
                                                 tensorboard_dir=tensorboard_dir, **loop),
                   optimizer=dataclasses.replace(task.default_optimizer, **optimizer), device=device)


def run_benchmark(dataset_name: str, model: str = "sage", *, runs: int = 1, epochs: int = LoopConfig.epochs,
                  device: str = "cpu", root: Optional[str] = None, dataset_options: Optional[Dict[str, Any]] = None,
                  options: Optional[Dict[str, Any]] = None, progress: bool = True,
                  seeds: Optional[Sequence[int]] = None,
                  tensorboard_dir: Optional[Union[str, Path]] = None,
                  partitions: Optional[str] = None) -> BenchmarkReport:
    """Train ``runs`` times (seed = run index unless ``seeds`` is given) and collect the report.
    With ``tensorboard_dir``, run ``i`` writes its TensorBoard scalars to ``tensorboard_dir/run<i>``.

    ``options`` override the defaults of :func:`task_defaults` (``fanouts``, ``batch_size``,
    ``hidden``, ``lr``, ``dropout``, ``eval_every``, ``patience``, ``num_threads``,
    ``host_cache_gib``...). ``dataset_name`` may be a folder written by ``save_dataset`` or
    ``gnnscale prepare``, whose feature file ``host_cache_gib`` reads through the disk tier.
    With ``partitions`` (a folder of ``gnnscale partition``) each rank trains on its part
    (:class:`PartitionedNodeTask`) and ``dataset_name`` is not read.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    seeds = list(seeds) if seeds is not None else list(range(runs))
    if len(seeds) != runs:
        raise ValueError(f"{runs} runs need {runs} seeds, got {len(seeds)}")
    dataset = Partitions.open(partitions) if partitions else load_dataset(dataset_name, root=root,
                                                                           **(dataset_options or {}))
    merged = {**task_defaults(task_type(dataset, model)),
              **{k: v for k, v in (options or {}).items() if v is not None}}
    metric = dataset.metric if isinstance(dataset, LinkDataset) and dataset.metric else "accuracy"
    report = BenchmarkReport(dataset=dataset.name, model=model, metric=metric, device=device, epochs=epochs,
                             parameters=0, options={k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in merged.items()})
    for run, seed in enumerate(seeds):
        trainer = make_trainer(dataset, model, epochs=epochs, seed=seed, device=device, options=merged,
                               progress=progress, tensorboard_dir=run_tensorboard_dir(tensorboard_dir, run))
        report.parameters = sum(p.numel() for p in trainer.modules.parameters())
        report.world_size = trainer.ranks.world_size
        start = time.perf_counter()
        result = trainer.fit()
        if progress and trainer.ranks.is_main:
            print(f"run {run}: best epoch {result.best_epoch}, "
                  + ", ".join(f"{s} {result.metrics[s]:.4f}" for s in SPLITS)
                  + f" ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        report.runs.append(record_of(run, seed, result))
    return report


def run_tensorboard_dir(tensorboard_dir: Optional[Union[str, Path]], run: int) -> Optional[Path]:
    """Each run its own folder, which TensorBoard shows as a run of its own."""
    return None if tensorboard_dir is None else Path(tensorboard_dir) / f"run{run}"
