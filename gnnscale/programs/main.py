"""The ``gnnscale`` command: ``info`` describes a dataset, ``demo`` runs the default training job,
``bench ogb`` runs the OGB benchmark runner, ``embed`` and ``embed-eval`` train and evaluate node
embeddings, ``temporal`` trains dynamic-graph models (TGN, JODIE, PRES) on event streams, ``pipe``
trains deep GNNs on the full graph over several ranks (graph-parallel, pipelined, hybrid), ``prepare``
writes a dataset into a folder within a memory budget (or verifies one), ``partition`` splits one
into METIS parts for training over several machines, ``env`` describes this
machine and installation. Every --device defaults to auto (cuda when a GPU is visible, else cpu);
results go to results/<command> unless --out says otherwise."""
import argparse
import sys
from typing import List, Optional

from .. import __version__
from . import bench, demo, embedding, env, info, partition, pipe, prepare, temporal
from .arguments import Parser
from .results import utc_now


class _Version(argparse.Action):
    """--version: gnnscale's and torch's versions (torch imported only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import torch

        print(f"gnnscale {__version__} (torch {torch.__version__})")
        parser.exit()


def build_parser() -> Parser:
    parser = Parser(prog="gnnscale", description=__doc__)
    parser.add_argument("--version", action=_Version, help="print gnnscale's and torch's versions and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    for program in (info, demo, embedding, temporal, pipe, prepare, partition, bench, env):
        program.register(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what data-parallel ranks rerun
    args.started_utc = utc_now()
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # OSError: a missing file, a full disk, no permission
        command = " ".join(filter(None, (args.command, getattr(args, "runner", None))))
        print(f"gnnscale {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
