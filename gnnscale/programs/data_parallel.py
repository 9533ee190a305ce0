"""``--nproc N`` for the training programs (``demo``, ``bench ogb``): the command loads its
dataset once, saves it memory-mappable to a temporary folder, and starts N ranks with torchrun
that each open that one copy (``--shared-dataset``) and train data-parallel; the folder goes when
they end. Inside a rank (torchrun's RANK is set) the program trains, and rank 0 alone prints and
writes files (TensorBoard scalars of ``--tensorboard-dir`` included)."""
import argparse
import gc
import os
import shutil
import tempfile
from typing import Callable, List

from .torchrun import run_torchrun


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nproc", type=int, default=1,
                        help="data-parallel ranks on this machine, started with torchrun (each trains on its "
                             "share of every batch: give the per-rank --batch-size)")
    parser.add_argument("--dist-timeout", type=float, default=None,
                        help="seconds a rank waits for another before failing with its name "
                             "(default: $GNNSCALE_DIST_TIMEOUT, else 60)")
    parser.add_argument("--shared-dataset", default=None, help=argparse.SUPPRESS)  # set for the ranks


def add_tensorboard_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--tensorboard-dir", default=None, metavar="DIR",
                        help=help + " (needs the tensorboard package)")


def check_tensorboard_dir(directory) -> None:
    """Refuses ``--tensorboard-dir`` where the tensorboard package is missing, as a ValueError the
    command prints in one line, before any data is loaded or any rank started."""
    if directory is None:
        return
    from ..train.metrics import check_tensorboard

    try:
        check_tensorboard()
    except ImportError as error:
        raise ValueError(f"--tensorboard-dir: {error}") from None


def in_rank() -> bool:
    """Whether this process is one of torchrun's ranks."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def launches_ranks(args) -> bool:
    """Whether this invocation starts ranks rather than training itself."""
    if args.nproc < 1:
        raise ValueError(f"--nproc must be positive, got {args.nproc}")
    return args.nproc > 1 and not in_rank()


def run_on_ranks(args, load: Callable[[], object], argv: List[str]) -> int:
    """Saves ``load()`` to a temporary folder, then runs this command (``argv``) on ``args.nproc``
    ranks, each opening the folder memory-mapped."""
    from ..datasets import save_dataset

    folder = tempfile.mkdtemp(prefix="gnnscale-shared-")
    try:
        dataset = load()
        save_dataset(dataset, os.path.join(folder, "dataset"))
        del dataset
        gc.collect()  # this process only waits from here on: its copy must not stay resident
        return run_torchrun(args.nproc, ["-m", "gnnscale", *without_nproc(argv), "--shared-dataset",
                                         os.path.join(folder, "dataset")])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def without_nproc(argv: List[str]) -> List[str]:
    """``argv`` less ``--nproc N``: the ranks know their number from torchrun (and torchrun's own
    parser would take ``--nproc`` for an abbreviation of its ``--nproc-per-node``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept
