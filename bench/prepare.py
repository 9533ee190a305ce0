"""Peak memory and time of preparing datasets on disk within a memory budget.

- ``write_synthetic`` of the papers100M-shaped preset at small scales (default 0.01 and 0.05) with
  ``memory_gib=1``, and the peak extrapolated to scale 1.0 (111M nodes, 1.6B edges) from what grows
  with the nodes;
- the external sort of a random edge list several times larger than its budget: peak growth of
  the resident set against the budget.

Each run is a fresh process (peak RSS is per process); growth is counted from the resident set
after imports. Usage: python bench/prepare.py [--scales 0.01,0.05] [--sort-edges 20000000]
[--sort-mib 64] [--folder DIR]
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
# Bytes held per node while the preset is generated and sorted: labels, the sampling tables
# (position order, cumulative weights), the degrees of a bucket and the splits' permutation.
_PER_NODE_BYTES = 8 * 4


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _worker(job: dict) -> dict:
    import numpy as np

    from gnnscale.datasets.external_sort import write_graph
    from gnnscale.datasets.prepare import write_synthetic

    out = Path(job["out"])
    baseline = _resident_bytes()
    start = time.perf_counter()
    if job["kind"] == "synthetic":
        write_synthetic("papers100M", out, scale=job["scale"], seed=0, memory_gib=job["memory_gib"])
    else:
        def chunks():  # drawn chunk by chunk: the edge list itself is never held
            rng = np.random.default_rng(0)
            for start_edge in range(0, job["edges"], 1 << 20):
                size = min(1 << 20, job["edges"] - start_edge)
                yield rng.integers(0, job["nodes"], size), rng.integers(0, job["nodes"], size)

        write_graph(chunks(), job["nodes"], out, memory_bytes=job["memory_bytes"])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    written = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    return {"seconds": round(seconds, 2), "baseline_rss_bytes": baseline, "peak_rss_bytes": peak,
            "peak_growth_bytes": peak - baseline, "bytes_written": written}


def _run(job: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], check=True,
                          capture_output=True, text=True)
    shutil.rmtree(job["out"], ignore_errors=True)
    settings = {key: value for key, value in job.items() if key != "out"}  # a temporary folder
    return {**settings, **json.loads(done.stdout.strip().splitlines()[-1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="0.01,0.05")
    parser.add_argument("--memory-gib", type=float, default=1.0)
    parser.add_argument("--sort-edges", type=int, default=20_000_000)
    parser.add_argument("--sort-nodes", type=int, default=2_000_000)
    parser.add_argument("--sort-mib", type=int, default=64)
    parser.add_argument("--folder", default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    folder = Path(tempfile.mkdtemp(dir=args.folder))
    try:
        synthetic = []
        for scale in (float(s) for s in args.scales.split(",")):
            result = _run({"kind": "synthetic", "scale": scale, "memory_gib": args.memory_gib,
                           "out": str(folder / f"papers-{scale}")})
            nodes = int(round(111_059_956 * scale))
            result["nodes"], result["edges_drawn"] = nodes, int(round(1_615_685_872 * scale))
            # At scale 1 the budget stays; what grows is held per node.
            result["extrapolated_peak_growth_gib_at_scale_1"] = round(
                (result["peak_growth_bytes"] + (111_059_956 - nodes) * _PER_NODE_BYTES) / GIB, 2)
            synthetic.append(result)
            print(f"write_synthetic papers100M scale {scale}: {result['seconds']:.1f} s, peak RSS "
                  f"{result['peak_rss_bytes'] / GIB:.2f} GiB (growth {result['peak_growth_bytes'] / GIB:.2f} GiB), "
                  f"extrapolated growth at scale 1: {result['extrapolated_peak_growth_gib_at_scale_1']} GiB")
        budget = args.sort_mib << 20
        sort = _run({"kind": "sort", "edges": args.sort_edges, "nodes": args.sort_nodes, "memory_bytes": budget,
                     "out": str(folder / "sorted")})
        sort["edge_list_bytes"] = args.sort_edges * 16
        print(f"external sort of {args.sort_edges} edges ({sort['edge_list_bytes'] >> 20} MiB as int64 pairs) "
              f"with a {args.sort_mib} MiB budget: {sort['seconds']:.1f} s, peak growth "
              f"{sort['peak_growth_bytes'] >> 20} MiB")
        write_result("prepare", {"write_synthetic": synthetic, "external_sort": sort})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
