"""The ``gnnscale`` command: ``info`` describes a dataset, ``demo`` runs the default training job,
``bench ogb`` runs the OGB benchmark runner, ``embed`` and ``embed-eval`` train and evaluate node
embeddings, ``temporal`` trains dynamic-graph models (TGN, JODIE, PRES) on event streams, ``pipe``
trains deep GNNs on the full graph over several ranks (graph-parallel, pipelined, hybrid), ``prepare``
writes a dataset into a folder within a memory budget (or verifies one)."""
import argparse
import sys
from typing import List, Optional

import torch

from .. import __version__
from . import bench, demo, embedding, info, pipe, prepare, temporal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnnscale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gnnscale {__version__} (torch {torch.__version__})")
    commands = parser.add_subparsers(dest="command", required=True)
    for program in (info, demo, embedding, temporal, pipe, prepare, bench):
        program.register(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what data-parallel ranks rerun
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # OSError: a missing file, a full disk, no permission
        command = " ".join(filter(None, (args.command, getattr(args, "runner", None))))
        print(f"gnnscale {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
