"""Features read from disk: train NodeTask with its feature rows served by the DiskTensor tier.

save_dataset writes the dataset as plain .npy files; opened again, its features.npy is read by
row on demand (io_uring, else pread threads) behind a host cache of --host-cache-gib, as for a
feature table larger than memory. result.feature_tiers says what the host cache and the disk
served. Training reads the same rows as from memory, so the metrics are those of an in-memory run.

    python examples/disk_tier.py --epochs 3
"""
import argparse
import json
import tempfile
from pathlib import Path

from gnnscale import load_dataset
from gnnscale.datasets import generate_synthetic, save_dataset
from gnnscale.train import NodeTask, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4000)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--host-cache-gib", type=float, default=0.001,
                        help="host row cache (a small one here, so that the disk serves most rows)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dataset = generate_synthetic(args.nodes, 8 * args.nodes, args.features, 4, homophily=0.8, feature_signal=0.3,
                                 seed=0)
    with tempfile.TemporaryDirectory() as folder:
        save_dataset(dataset, Path(folder) / "data")
        opened = load_dataset(str(Path(folder) / "data"))   # graph and features memory-mapped
        print(f"features in {opened.feature_file.name}: {opened.features.shape[0]} rows of "
              f"{opened.features.shape[1] * opened.features.element_size()} bytes")
        task = NodeTask(opened, "sage", fanouts=[10, 5], batch_size=128, hidden=64, host_cache_gib=args.host_cache_gib)
        result = Trainer(task, epochs=args.epochs, lr=0.01, progress=False).fit()
    print(f"feature tiers {json.dumps(result.feature_tiers)}")
    print(f"test accuracy {result.metrics['test']:.4f}")


if __name__ == "__main__":
    main()
