"""``gnnscale demo``: the default training job, GraphSAGE on sampled mini-batches of a small
synthetic graph shaped like ogbn-products."""
import time

from ..train.config import DEMO_LOOP, DEMO_OPTIMIZER, DEMO_TASK
from . import data_parallel
from .arguments import add_device_argument, fanouts, resolve_device, thread_count

DEMO_DATASET = "synthetic-products"
DEMO_SCALE = 0.05


def _demo(args) -> int:
    from ..datasets import load_dataset
    from ..train import NodeTask, Trainer
    from .info import describe

    args.device = resolve_device(args.device)  # refused before any data is generated
    data_parallel.check_tensorboard_dir(args.tensorboard_dir)

    def generate():
        return load_dataset(DEMO_DATASET, scale=args.scale, seed=args.seed)

    if data_parallel.launches_ranks(args):
        return data_parallel.run_on_ranks(args, generate, args.argv)
    say = print if data_parallel.is_main_rank() else (lambda *_: None)
    start = time.perf_counter()
    dataset = load_dataset(args.shared_dataset) if args.shared_dataset else generate()
    say(f"{'opened' if args.shared_dataset else 'generated'} {dataset.name} (scale {args.scale}) in "
        f"{time.perf_counter() - start:.1f} s:")
    say("\n".join("  " + line for line in describe(dataset)))
    ranks = data_parallel.world_size()
    say(f"training a {len(args.fanouts)}-layer {args.model.upper()} (hidden {args.hidden}) on sampled "
        f"neighbourhoods (fanouts {args.fanouts}, batch {args.batch_size}"
        + (f" per rank on {ranks} ranks" if ranks > 1 else "") + f") for {args.epochs} epochs on {args.device}")
    task = NodeTask(dataset, args.model, fanouts=args.fanouts, batch_size=args.batch_size, hidden=args.hidden,
                    num_threads=args.threads)
    # Evaluated three times in all (DEMO_LOOP.eval_every at the default epochs).
    trainer = Trainer(task, epochs=args.epochs, eval_every=max(1, args.epochs // 3), seed=args.seed, lr=args.lr,
                      device=args.device, dist_timeout=args.dist_timeout, tensorboard_dir=args.tensorboard_dir)
    result = trainer.fit()
    accuracy = result.metrics
    say(f"best validation at epoch {result.best_epoch}; layer-wise full-neighbourhood evaluation")
    say(f"accuracy  train {accuracy['train']:.3f}  valid {accuracy['valid']:.3f}  test {accuracy['test']:.3f}")
    say(f"time      {time_line(result)}")
    say(f"speed     {result.throughput:.0f} {result.throughput_unit} of training (sampling, gathering, forward "
        f"and backward)")
    return 0


def time_line(result) -> str:
    """Training time per epoch and evaluation time per evaluation, apart: evaluation covers every
    node's full neighbourhood, training a sample of some."""
    return (f"training {result.seconds_per_epoch:.2f} s/epoch, evaluation {result.eval_seconds_per_evaluation:.2f} s "
            f"per evaluation ({result.evaluations} evaluation{'s' if result.evaluations != 1 else ''})")


def register(commands) -> None:
    demo = commands.add_parser("demo", help=f"train GraphSAGE on sampled mini-batches of a small {DEMO_DATASET} graph")
    demo.add_argument("--model", default="sage", choices=("sage", "gcn", "gat"), help="graph layer")
    demo.add_argument("--scale", type=float, default=DEMO_SCALE, help="size relative to ogbn-products")
    demo.add_argument("--fanouts", type=fanouts, default=list(DEMO_TASK.fanouts),
                      help="neighbours sampled per layer, comma separated")
    demo.add_argument("--batch-size", type=int, default=DEMO_TASK.batch_size, help="seed nodes per batch")
    demo.add_argument("--hidden", type=int, default=DEMO_TASK.hidden, help="hidden width")
    demo.add_argument("--lr", type=float, default=DEMO_OPTIMIZER.lr, help="learning rate")
    demo.add_argument("--epochs", type=int, default=DEMO_LOOP.epochs, help="training epochs")
    demo.add_argument("--threads", type=thread_count, default=DEMO_TASK.num_threads,
                      help="loader threads preparing batches ahead (0: none, batches prepared in turn; "
                          "default: 1, or 0 where a rank has a single core)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the graph and the training")
    add_device_argument(demo)
    data_parallel.add_tensorboard_argument(demo, "folder for TensorBoard scalars per epoch (loss, accuracy, times)")
    data_parallel.add_arguments(demo)
    demo.set_defaults(run=_demo)
