"""``gnnscale prepare``: a dataset written once into a saved folder (graph and transpose, row-aligned
features, labels, splits, a manifest of checksums) within a memory budget, or such a folder checked
against its checksums (``--verify``)."""
import time


def _prepare(args) -> int:
    from ..datasets.prepare import prepare_dataset
    from ..datasets.saved import verify_dataset

    if args.verify is not None:
        if args.dataset is not None or args.out is not None:
            raise ValueError("--verify DIR checks a folder; it takes no --dataset or --out")
        checked = verify_dataset(args.verify)
        print(f"{args.verify}: {checked} files match their size and sha256 checksum")
        return 0
    if args.dataset is None or args.out is None:
        raise ValueError("give --dataset NAME|FILE and --out DIR (or --verify DIR)")
    started = time.perf_counter()
    out = prepare_dataset(args.dataset, args.out, memory_gib=args.memory_gib, root=args.root, scale=args.scale,
                          seed=args.seed, num_nodes=args.num_nodes, directed=args.directed)
    print(f"{args.dataset}: written to {out} in {time.perf_counter() - started:.1f} s")
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "prepare", help="write a dataset into a saved folder within a memory budget, or verify one",
        description="Writes a dataset once into a folder that `load_dataset(DIR)` opens memory-mapped: the graph "
                    "and its transpose (built by an external sort), features aligned for direct I/O, labels, "
                    "splits and a manifest with each file's size and sha256 checksum.")
    parser.add_argument("--dataset", default=None,
                        help="synthetic-<preset> (generated in chunks), an edge-list file (streamed), or any name "
                             "`gnnscale info` knows (loaded, then saved)")
    parser.add_argument("--out", default=None, help="folder to write (replaced once complete)")
    parser.add_argument("--memory-gib", type=float, default=4.0, help="memory budget of the external sort, GiB")
    parser.add_argument("--scale", type=float, default=1.0, help="nodes and edges of a synthetic preset times this")
    parser.add_argument("--seed", type=int, default=0, help="seed of a synthetic preset")
    parser.add_argument("--num-nodes", type=int, default=None,
                        help="an edge list's ids are node numbers below this (unset: ids renumbered in sorted "
                             "order, as `load_dataset(FILE)` does)")
    parser.add_argument("--directed", action="store_true", help="keep an edge list's edges one way only")
    parser.add_argument("--root", default=None, help="data root (unset: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--verify", metavar="DIR", default=None,
                        help="check every file of a prepared folder against its checksum instead")
    parser.set_defaults(run=_prepare)
