"""Preparing a graph from a text edge list: time and peak memory of `gnnscale prepare` (streamed
within a memory budget into a saved folder: CSR, its transpose, checksums) against what a PyG user
writes to get the same undirected graph in memory (pandas' C reader, `to_undirected`, self-loops
removed, CSR row pointers), on the same file of random integer ids.

    python bench/edge_list.py [--edges 10000000] [--nodes 1000000] [--memory-gib 0.25]

Rows, each in a fresh process (peak memory is per process): gnnscale prepare; the same with the
reader that parses every id as a string first (what the streamed reader did before it parsed
numbers directly: the speed-up of that change); gnnscale's in-memory `load_file`; pandas + PyG.
Writes bench/results/edge_list.json.
"""
import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_result

GIB = 1 << 30


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _write_edge_list(path: Path, edges: int, nodes: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    with open(path, "w") as file:
        file.write("# source\ttarget\n")
        for start in range(0, edges, 1 << 21):
            size = min(1 << 21, edges - start)
            pd.DataFrame({"s": rng.integers(0, nodes, size), "t": rng.integers(0, nodes, size)}).to_csv(
                file, sep="\t", header=False, index=False)


def _pyg_in_memory(path: Path):
    import pandas as pd
    import torch
    from torch_geometric.utils import remove_self_loops, to_undirected

    frame = pd.read_csv(path, sep="\t", header=None, comment="#", dtype="int64", engine="c")
    edge_index = torch.from_numpy(frame.to_numpy().T.copy())
    num_nodes = int(edge_index.max()) + 1
    edge_index, _ = remove_self_loops(to_undirected(edge_index, num_nodes=num_nodes))  # sorted, duplicates merged
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.bincount(edge_index[0], minlength=num_nodes).cumsum(0)
    return num_nodes, edge_index.size(1)


def _worker(job: dict) -> dict:
    import torch

    from gnnscale.datasets import edge_list, load_file
    from gnnscale.datasets.prepare import prepare_dataset

    path, out = Path(job["path"]), Path(job["out"])
    if job["kind"] == "pyg":
        import pandas  # noqa: F401  (imports are not timed: the other rows import before the clock too)
        import torch_geometric.utils  # noqa: F401
    baseline = _resident_bytes()
    start = time.perf_counter()
    if job["kind"] == "pyg":
        nodes, edges = _pyg_in_memory(path)
    elif job["kind"] == "load_file":
        graph = load_file(path).graph
        nodes, edges = graph.num_nodes, graph.num_edges
    else:
        if job["kind"] == "prepare_strings_first":
            edge_list._parse_numbers = lambda data, layout: None  # every chunk through the strict reader
        prepare_dataset(str(path), out, memory_gib=job["memory_gib"])
        header = json.loads((out / "graph" / "graph.json").read_text())
        nodes, edges = header["num_nodes"], header["num_edges"]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": round(seconds, 2), "nodes": nodes, "edges": edges, "baseline_rss_bytes": baseline,
            "peak_rss_bytes": peak, "peak_growth_bytes": peak - baseline, "torch_threads": torch.get_num_threads()}


ROWS = {"prepare": "gnnscale prepare (streamed, --memory-gib)",
        "prepare_strings_first": "gnnscale prepare, ids parsed as strings first",
        "load_file": "gnnscale load_file (in memory)",
        "pyg": "pandas read_csv + PyG to_undirected (in memory)"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=10_000_000)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--memory-gib", type=float, default=0.25)
    parser.add_argument("--folder", default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    import os

    folder = Path(tempfile.mkdtemp(dir=args.folder))
    try:
        path = folder / "edges.tsv"
        _write_edge_list(path, args.edges, args.nodes)
        rows = []
        for kind, title in ROWS.items():
            job = {"kind": kind, "path": str(path), "out": str(folder / "out"), "memory_gib": args.memory_gib}
            load = os.getloadavg()[0]
            done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], check=True,
                                  capture_output=True, text=True)
            shutil.rmtree(folder / "out", ignore_errors=True)
            rows.append({"method": title, "load_before": load, **json.loads(done.stdout.strip().splitlines()[-1])})
            row = rows[-1]
            print(f"{title:<50} {row['seconds']:>7.1f} s  {args.edges / row['seconds'] / 1e6:5.2f}M lines/s  "
                  f"peak growth {row['peak_growth_bytes'] / GIB:5.2f} GiB  ({row['nodes']:,} nodes, {row['edges']:,} edges)",
                  flush=True)
        by_kind = dict(zip(ROWS, rows))
        ratios = {"prepare_speedup_vs_strings_first": by_kind["prepare_strings_first"]["seconds"] / by_kind["prepare"]["seconds"],
                  "prepare_time_over_pyg_in_memory": by_kind["prepare"]["seconds"] / by_kind["pyg"]["seconds"],
                  "prepare_peak_growth_over_pyg": by_kind["prepare"]["peak_growth_bytes"] / by_kind["pyg"]["peak_growth_bytes"]}
        print(json.dumps(ratios, indent=1))
        write_result("edge_list", {"edges_in_file": args.edges, "nodes_drawn_from": args.nodes,
                                   "file_bytes": path.stat().st_size, "memory_gib": args.memory_gib,
                                   "rows": rows, "ratios": ratios})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
