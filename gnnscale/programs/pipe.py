"""``torchrun --nproc-per-node N -m gnnscale.programs.pipe ...`` and ``gnnscale pipe --nproc N ...``:
full-graph training of a deep residual GNN as graph-parallel, pipelined (GNNPipe) or hybrid ranks,
or the layout the planner predicts to send the fewest bytes. Rank 0 prints the result and writes
it, with the predicted traffic of every layout, as JSON (and, with ``--tensorboard-dir``, each
epoch's scalars for TensorBoard).

A rank that waits on another for longer than ``--timeout`` seconds (default $GNNSCALE_DIST_TIMEOUT,
else 60) fails with the name of the rank that stopped answering. ``gnnscale pipe`` passes SIGINT and
SIGTERM on to torchrun, which ends the ranks; a rank also dies with its torchrun agent.

With ``--checkpoint-dir`` every rank writes a checkpoint after each epoch; ``--resume`` continues
from the newest epoch all ranks completed there (after a crash, or a kill -9 of any rank or of the
whole launch), refusing a resume with other settings or another number of ranks."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from typing import List, Optional

from ..train.config import LoopConfig, OptimizerConfig
from .arguments import DEVICE_HELP, Parser, device_name, resolve_device
from .data_parallel import check_tensorboard_dir
from .results import default_out, provenance, result_path, utc_now, write_json
from .torchrun import run_torchrun


def _parallel_config():
    """gnnscale.parallel.config, a module of plain dataclasses and constants, read from its file:
    importing it through its package would load the parallel engine, and with it torch and
    torch_geometric, for ``--help``."""
    if "gnnscale.parallel.config" in sys.modules:
        return sys.modules["gnnscale.parallel.config"]
    name = "gnnscale.programs._parallel_defaults"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "parallel" / "config.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while they are made
        spec.loader.exec_module(module)
    return sys.modules[name]


parallel = _parallel_config()

MODES = ("auto", "graph", "pipeline", "hybrid")
# The Python API's defaults (ParallelFullGraphTask's), from the one place both read them.
MODEL = parallel.ParallelConfig()
LOOP = LoopConfig(epochs=parallel.EPOCHS)
OPTIMIZER = OptimizerConfig(lr=parallel.LEARNING_RATE, weight_decay=parallel.WEIGHT_DECAY)

# (flag, type, default, help) of the options both entry points share
OPTIONS = [
    ("--dataset", str, "cora", "dataset name (`gnnscale info` lists them)"),
    ("--root", str, None, "dataset folder (default: $GNNSCALE_DATA or datasets/)"),
    ("--mode", str, "auto", f"layout: {', '.join(MODES)} (auto: fewest predicted bytes)"),
    ("--stages", int, None, "pipeline stages (hybrid; default: the mode's)"),
    ("--chunks", int, MODEL.chunks, f"chunks flowing through the pipeline per epoch (default: {parallel.PIPELINED_CHUNKS} "
                                    f"with pipeline stages, else 1)"),
    ("--layers", int, MODEL.num_layers, "graph layers"),
    ("--hidden", int, MODEL.hidden, "hidden width"),
    ("--conv", str, MODEL.conv, "gcn or sage"),
    ("--epochs", int, LOOP.epochs, "training epochs"),
    ("--lr", float, OPTIMIZER.lr, "learning rate"),
    ("--weight-decay", float, OPTIMIZER.weight_decay, "weight decay"),
    ("--dropout", float, MODEL.dropout, "dropout"),
    ("--warmup-epochs", int, MODEL.warmup_epochs, "epochs run as one chunk first, filling the history buffers"),
    ("--grad-clip", float, OPTIMIZER.grad_clip, "clip the gradient norm of the whole model to this"),
    ("--eval-every", int, LOOP.eval_every, "evaluate every N epochs"),
    ("--partitioner", str, MODEL.partitioner, "metis or contiguous"),
    ("--memory-budget-gib", float, None, "auto mode: per-rank memory a layout may use"),
    ("--seed", int, LOOP.seed, "random seed"),
    ("--device", device_name, "auto", DEVICE_HELP + " (cuda: GPU LOCAL_RANK per rank)"),
    ("--backend", str, "auto", "torch.distributed backend: auto (nccl on cuda, else gloo), gloo, nccl"),
    ("--timeout", float, None, "seconds a rank waits for another before failing with the silent rank's name "
                               "(default: $GNNSCALE_DIST_TIMEOUT, else 60)"),
    ("--out", str, default_out("pipe"), "folder for the result JSON"),
    ("--checkpoint-dir", str, None, "folder for each rank's checkpoint after every epoch"),
    ("--tensorboard-dir", str, None, "folder for TensorBoard scalars per epoch (loss, accuracy, times), written by "
                                     "rank 0 (needs the tensorboard package)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--norm", action="store_true", help="layer normalisation in each graph layer")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest epoch all ranks completed in --checkpoint-dir "
                             "(same settings; --epochs may grow)")
    # set for the ranks: when the command began, which their results record
    parser.add_argument("--started-utc", default=None, help=argparse.SUPPRESS)


def to_argv(args: argparse.Namespace) -> List[str]:
    argv = []
    for flag, _, _, _ in OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag in ("--norm", "--quiet", "--resume") if getattr(args, flag[2:])]
    return argv + (["--started-utc", args.started_utc] if getattr(args, "started_utc", None) else [])


def check_checkpoint_options(args: argparse.Namespace) -> None:
    if args.resume and args.checkpoint_dir is None:
        raise ValueError("--resume needs --checkpoint-dir, the folder the run to continue wrote its checkpoints to")


def grid(mode: str, world_size: int, stages: Optional[int]):
    """(stages, partitions) of a mode; None for auto."""
    if mode not in MODES:
        raise ValueError(f"unknown --mode {mode!r}; choose from {MODES}")
    if mode == "graph":
        return 1, world_size
    if mode == "pipeline":
        return world_size, 1
    if mode == "hybrid":
        if not stages or stages < 2 or world_size % stages or world_size // stages < 2:
            raise ValueError(f"--mode hybrid needs --stages dividing the {world_size} ranks into at least 2 stages "
                             f"of at least 2 partitions")
        return stages, world_size // stages
    return None


def run(args: argparse.Namespace) -> int:
    """The body of one rank (torch.distributed already initialised)."""
    import torch.distributed as dist

    from ..datasets import NodeDataset, load_dataset
    from ..parallel import choose_layout, plan_layouts
    from ..train import ParallelFullGraphTask, Trainer

    rank, world_size = dist.get_rank(), dist.get_world_size()
    dataset = load_dataset(args.dataset, root=args.root)
    if not isinstance(dataset, NodeDataset):
        raise ValueError(f"{args.dataset} is not a node-classification dataset")
    layouts = [None]
    if rank == 0:
        budget = None if args.memory_budget_gib is None else int(args.memory_budget_gib * 2**30)
        layouts[0] = plan_layouts(dataset.graph, world_size, num_features=dataset.num_features,
                                  num_classes=dataset.num_classes, num_layers=args.layers, hidden=args.hidden,
                                  conv=args.conv, norm=args.norm, memory_budget=budget, partitioner=args.partitioner)
    dist.broadcast_object_list(layouts, src=0)
    predictions = layouts[0]
    chosen = grid(args.mode, world_size, args.stages)
    if chosen is None:
        best = choose_layout(predictions)
        chosen = best.stages, best.partitions
    stages, partitions = chosen
    task = ParallelFullGraphTask(dataset, stages=stages, partitions=partitions,
                                 chunks=args.chunks if stages > 1 else 1, num_layers=args.layers, hidden=args.hidden,
                                 conv=args.conv, dropout=args.dropout, norm=args.norm,
                                 warmup_epochs=args.warmup_epochs, partitioner=args.partitioner)
    trainer = Trainer(task, device=args.device, epochs=args.epochs, eval_every=args.eval_every, seed=args.seed,
                      checkpoint_dir=args.checkpoint_dir, resume=args.resume, progress=not args.quiet,
                      tensorboard_dir=args.tensorboard_dir, lr=args.lr, weight_decay=args.weight_decay,
                      grad_clip=args.grad_clip)
    result = trainer.fit()
    traffic = task.traffic()  # every rank takes part in the sum
    if rank == 0:
        predicted = next(p for p in predictions if (p.stages, p.partitions) == (stages, partitions))
        config = {**dataclasses.asdict(task.config), **dataclasses.asdict(trainer.loop),
                  **dataclasses.asdict(trainer.optimizer_config)}
        report = {"dataset": dataset.name, "world_size": world_size, "mode": predicted.kind,
                  "stages": stages, "partitions": partitions, "chunks": task.config.num_chunks,
                  "metric": result.metric, "metrics": result.metrics, "best_epoch": result.best_epoch,
                  "seconds_per_epoch": result.seconds_per_epoch,
                  "eval_seconds_per_evaluation": result.eval_seconds_per_evaluation, "evaluations": result.evaluations,
                  "bytes_per_epoch": traffic["train"],
                  "eval_bytes": traffic["eval"], "predicted_bytes_per_epoch": predicted.bytes_per_epoch,
                  "layouts": [p.as_dict() for p in predictions], "config": json.loads(json.dumps(config, default=str)),
                  "history": result.history}
        path = write_json(result_path(args.out, "parallel", dataset.name, predicted.kind, world_size, suffix=".json"),
                          report, provenance(args, args.device))
        print(f"{predicted.kind}: {stages} stages x {partitions} partitions, {task.config.num_chunks} chunks, "
              f"{world_size} ranks on {dataset.name}")
        print(f"test accuracy {result.metrics['test']:.4f} (valid {result.metrics['valid']:.4f}, "
              f"epoch {result.best_epoch})")
        print(f"time: training {result.seconds_per_epoch * 1e3:.1f} ms/epoch, evaluation "
              f"{result.eval_seconds_per_evaluation * 1e3:.1f} ms per evaluation ({result.evaluations} evaluations)")
        sent = sum(traffic["train"].values())
        print(f"sent per epoch: {sent / 2**20:.2f} MiB measured, {predicted.total_bytes / 2**20:.2f} MiB predicted "
              f"({', '.join(f'{k} {v / 2**20:.2f}' for k, v in sorted(traffic['train'].items()))})")
        print(f"wrote {path}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from ..distributed.launch import init_from_environment, leave, naming_silent_ranks
    from ..distributed.liveness import RankTimeoutError

    parser = Parser(prog="python -m gnnscale.programs.pipe", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.started_utc = args.started_utc or utc_now()
    try:
        check_checkpoint_options(args)
        args.device = resolve_device(args.device)
        check_tensorboard_dir(args.tensorboard_dir)
        init_from_environment(args.backend if args.backend != "auto" else
                              "nccl" if args.device == "cuda" else "gloo", timeout_s=args.timeout)
        with naming_silent_ranks():
            return run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"gnnscale pipe: error: {error}", file=sys.stderr)
        return 2
    except RankTimeoutError as error:
        print(f"gnnscale pipe: error: rank {os.environ.get('RANK')}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        leave()


def _pipe(args: argparse.Namespace) -> int:
    from ..distributed.launch import resolve_timeout

    if args.nproc < 1:
        raise ValueError(f"--nproc must be positive, got {args.nproc}")
    grid(args.mode, args.nproc, args.stages)  # reject a bad layout, device or timeout before starting any rank
    args.device = resolve_device(args.device)
    resolve_timeout(args.timeout)
    check_checkpoint_options(args)
    check_tensorboard_dir(args.tensorboard_dir)
    return run_torchrun(args.nproc, ["-m", "gnnscale.programs.pipe", *to_argv(args)])


def register(commands) -> None:
    pipe = commands.add_parser("pipe", help="parallel full-graph training: graph-parallel, pipelined (GNNPipe) or "
                                            "hybrid ranks started with torchrun")
    pipe.add_argument("--nproc", type=int, default=2, help="ranks (processes) on this machine")
    add_arguments(pipe)
    pipe.set_defaults(run=_pipe)


if __name__ == "__main__":
    sys.exit(main())
