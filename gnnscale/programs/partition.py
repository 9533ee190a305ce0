"""``gnnscale partition``: a node dataset split into METIS parts for training over several
machines (one folder per part, a manifest of sizes, balance and checksums), or such a folder
checked against its checksums (``--verify``)."""
import time


def _partition(args) -> int:
    from ..distributed.partition import MANIFEST, open_partition, partition_dataset

    if args.verify is not None:
        if args.dataset is not None or args.out is not None:
            raise ValueError("--verify DIR checks a folder; it takes no --dataset or --out")
        import json
        from pathlib import Path

        parts = json.loads((Path(args.verify) / MANIFEST).read_text())["num_parts"] \
            if (Path(args.verify) / MANIFEST).is_file() else 1
        for part in range(parts):
            open_partition(args.verify, part, verify=True)
        print(f"{args.verify}: the {parts} parts match their sizes and sha256 checksums")
        return 0
    if args.dataset is None or args.out is None or args.parts is None:
        raise ValueError("give --dataset NAME|DIR, --parts P and --out DIR (or --verify DIR)")
    from ..datasets import load_dataset

    started = time.perf_counter()
    dataset = load_dataset(args.dataset, root=args.root, **({"scale": args.scale} if args.scale is not None else {}))
    out = partition_dataset(dataset, args.parts, args.out, seed=args.seed)
    print(summary(out, time.perf_counter() - started))
    return 0


def summary(folder, seconds: float) -> str:
    """The manifest's figures: edge cut, halo sizes, balance."""
    import json
    from pathlib import Path

    from ..distributed.partition import MANIFEST

    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    lines = [f"{manifest['dataset']}: {manifest['num_parts']} parts written to {folder} in {seconds:.1f} s",
             f"  edge cut {manifest['edge_cut']:.1%} of {manifest['num_edges']:,} edges; balance (largest part / mean): "
             + ", ".join(f"{key} {value:.3f}" for key, value in manifest["balance"].items())]
    for index, part in enumerate(manifest["parts"]):
        lines.append(f"  part {index}: {part['nodes']:,} nodes, {part['edges']:,} in-edges ({part['remote_edges']:,} "
                     f"from other parts), halo {part['halo']:,}, train/valid/test {part['train']:,}/{part['valid']:,}/"
                     f"{part['test']:,}")
    return "\n".join(lines)


def register(commands) -> None:
    parser = commands.add_parser(
        "partition", help="split a node dataset into METIS parts for training over several machines",
        description="Splits a node dataset into parts with METIS (balancing nodes, training nodes and in-edges per "
                    "part), one folder per part (in-edges of its nodes, features, labels, splits, halo) and a "
                    "manifest with the edge cut, balance and each file's sha256 checksum. The same dataset and "
                    "seed give the same parts on every machine.")
    parser.add_argument("--dataset", default=None, help="a dataset name `gnnscale info` knows, or a saved folder")
    parser.add_argument("--parts", type=int, default=None, help="number of parts (machines)")
    parser.add_argument("--out", default=None, help="folder to write (replaced once complete)")
    parser.add_argument("--seed", type=int, default=0, help="METIS seed")
    parser.add_argument("--scale", type=float, default=None, help="scale of a synthetic dataset (unset: its default)")
    parser.add_argument("--root", default=None, help="data root (unset: $GNNSCALE_DATA, else ./datasets)")
    parser.add_argument("--verify", metavar="DIR", default=None,
                        help="check every part of a partitioned folder against its checksums instead")
    parser.set_defaults(run=_partition)
