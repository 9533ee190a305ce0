"""Profiles a few node-classification training steps: where a step's time goes between the loader
(waiting for the next batch) and the model step (forward, backward, optimizer), and the operators
that take the most time under torch.profiler.

Usage: python tools/profile_training.py [--dataset cora|synthetic-products|DIR] [--model sage]
           [--fanouts 10,10] [--batch-size 1024] [--steps 20] [--warmup 3] [--threads N]
           [--scale 0.01] [--device auto] [--top 25] [--trace out.json]

The steps run twice: first timed with time.perf_counter alone (the loader / model split, free of
the profiler's overhead), then under torch.profiler (CPU activities, and CUDA ones on a GPU) for
the operator table. The task, its loader, model and optimizer are those the Trainer builds.
"""
import argparse
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator, List

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from gnnscale.datasets import load_dataset
from gnnscale.programs.arguments import device_name, fanouts, resolve_device, thread_count
from gnnscale.train import NodeConfig, NodeTask, Trainer

DEFAULT_SCALE = 0.01  # of a synthetic preset: a graph that generates in seconds


@dataclass
class StepTimes:
    """Seconds spent waiting for each batch, and in each model step, over a run of steps."""

    loader: List[float] = field(default_factory=list)
    model: List[float] = field(default_factory=list)
    total: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.model)


def build_trainer(args) -> Trainer:
    """The Trainer of a NodeTask on the dataset, as ``gnnscale demo`` builds it."""
    options = {"scale": args.scale} if args.dataset.lower().startswith("synthetic-") else {}
    dataset = load_dataset(args.dataset, **options)
    task = NodeTask(dataset, args.model, fanouts=args.fanouts, batch_size=args.batch_size, hidden=args.hidden,
                    num_threads=args.threads)
    return Trainer(task, epochs=1, progress=False, device=resolve_device(args.device))


def endless_batches(task) -> Iterator:
    """The task's batches epoch after epoch, so that any number of steps can be drawn."""
    epoch = 1
    while True:
        batches = task.batches(epoch)
        try:
            yield from batches
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops the loader's prefetch threads when the steps end mid-epoch
        epoch += 1


def model_step(trainer: Trainer) -> Callable:
    """One optimizer step on a batch; the loss read back as a float waits for the device."""
    task, optimizer = trainer.task, trainer.optimizer

    def step(batch) -> float:
        optimizer.zero_grad()
        loss, _ = task.loss(batch)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def run_steps(trainer: Trainer, steps: int, labelled: bool = False) -> StepTimes:
    """``steps`` steps from epoch 1, each batch's wait and step timed apart; ``labelled`` names
    both phases in the profiler's trace."""
    label = record_function if labelled else (lambda name: nullcontext())
    step, times = model_step(trainer), StepTimes()
    trainer.modules.train()
    batches = endless_batches(trainer.task)
    started = time.perf_counter()
    try:
        for _ in range(steps):
            mark = time.perf_counter()
            with label("loader: next batch"):
                batch = next(batches)
            times.loader.append(time.perf_counter() - mark)
            mark = time.perf_counter()
            with label("model: forward, backward, optimizer"):
                step(batch)
            times.model.append(time.perf_counter() - mark)
    finally:
        batches.close()
    times.total = time.perf_counter() - started
    return times


def split_lines(times: StepTimes, batches_per_epoch: int) -> List[str]:
    """The loader / model split of the timed steps, and what it means for one epoch."""
    loader, model = sum(times.loader), sum(times.model)
    other = times.total - loader - model
    per_step = times.total / max(times.steps, 1)
    lines = [f"time split over {times.steps} steps ({times.total:.3f} s measured):"]
    for name, seconds in (("loader (waiting for the next batch)", loader),
                          ("model step (forward, backward, optimizer)", model), ("other (loop)", other)):
        lines.append(f"  {name:<42} {seconds:9.3f} s  {100 * seconds / max(times.total, 1e-12):5.1f} %  "
                     f"{1000 * seconds / max(times.steps, 1):8.2f} ms/step")
    lines.append(f"  epoch of {batches_per_epoch} batches: about {per_step * batches_per_epoch:.3f} s")
    return lines


def profiler_activities(device: torch.device) -> List[ProfilerActivity]:
    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])


def profile_steps(trainer: Trainer, steps: int, top: int, trace_path) -> str:
    """The operator table of ``steps`` profiled steps, by self time (the device's on a GPU)."""
    device = trainer.device
    with profile(activities=profiler_activities(device)) as profiler:
        run_steps(trainer, steps, labelled=True)
    if trace_path:
        profiler.export_chrome_trace(str(trace_path))
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=top)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def parse_arguments(argv=None) -> argparse.Namespace:
    defaults = NodeConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cora", help="cora, synthetic-products, a saved folder... (default: cora)")
    parser.add_argument("--model", default="sage", choices=("sage", "gcn", "gat"), help="encoder (default: sage)")
    parser.add_argument("--fanouts", type=fanouts, default=[10, 10], help="neighbours per layer (default: 10,10)")
    parser.add_argument("--batch-size", type=positive, default=defaults.batch_size, help="seed nodes per batch")
    parser.add_argument("--hidden", type=positive, default=defaults.hidden, help="hidden width")
    parser.add_argument("--threads", type=thread_count, default=None, help="loader threads (default: the task's)")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="size of a synthetic preset")
    parser.add_argument("--steps", type=positive, default=20, help="steps timed, then profiled (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="steps run first, untimed (default: 3)")
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--top", type=positive, default=25, help="operators listed (default: 25)")
    parser.add_argument("--trace", default=None, help="write a Chrome trace of the profiled steps here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_arguments(argv)
    trainer = build_trainer(args)
    task = trainer.task
    print(f"{task.name}: fanouts {args.fanouts}, batch {args.batch_size}, {task.num_batches()} batches per epoch, "
          f"on {trainer.device}")
    if args.warmup > 0:
        run_steps(trainer, args.warmup)
    print("\n".join(split_lines(run_steps(trainer, args.steps), task.num_batches())))
    print(f"\ntop {args.top} operators by self time over {args.steps} profiled steps:")
    print(profile_steps(trainer, args.steps, args.top, args.trace))
    if args.trace:
        print(f"Chrome trace written to {args.trace} (open in chrome://tracing or ui.perfetto.dev)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as error:
        print(f"profile_training: error: {error}", file=sys.stderr)
        sys.exit(2)
