"""Features larger than memory: GraphSAGE mini-batch training (fanouts [15, 10, 5], batch 1024,
hidden 256) on a papers100M-shaped graph generated to disk, for a fixed number of batches, with
the features read

  (a) memory-mapped, as ``load_dataset(DIR)`` opens a saved folder (page faults, readahead);
  (b) through the disk tier: a DiskTensor (direct I/O, coalesced block reads) with a host row
      cache of --host-cache-gib GiB (``NodeTask(..., host_cache_gib=G)``);
  (b0) through the disk tier without a host cache (every row from disk: the exact check of
      bytes read against the blocks the batches need);
  (c) from an in-memory table of the same row size, on a papers100M-shaped graph that fits.

Each configuration runs in its own process, so each one's peak resident memory (VmHWM) is its
own. Before each, the dataset's pages leave the page cache: /proc/sys/vm/drop_caches where this
process may write it and the features exceed memory, else posix_fadvise(DONTNEED) on the
dataset's files (what the JSON calls ``page_cache``). Per configuration: batches/s (all, and the
steady state after the first fifth), bytes the process read from storage per batch
(/proc/self/io), the disk tier's own bytes and rows per batch against the distinct 4096-byte
blocks holding the batch's rows, host cache hit rate, and peak memory; and the generator's time
and peak memory.

    python bench/disk.py [--scale 1.0] [--batches 200] [--mmap-batches N] [--host-cache-gib 4]
                         [--out DIR] [--keep]

Past memory the memory-mapped configuration serves most rows with one synchronous page fault
each, so it may run fewer batches (--mmap-batches) than the others in the same time.

Writes bench/results/disk.json. The dataset goes to --out (default: a temporary folder under
/work, never inside the project) and is removed afterwards unless --keep; a folder that already
holds the dataset is reused.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import write_result

PROJECT = Path(__file__).resolve().parents[1]
BLOCK = 4096
GIB = 2 ** 30
FANOUTS = [15, 10, 5]
BATCH_SIZE = 1024
HIDDEN = 256
REFERENCE_FEATURE_BYTES = 2 * GIB  # the in-memory reference graph's features at most
TARGETS = {"speedup_b_over_a": 3.0, "disk_bytes_over_uncached_blocks": 1.25, "rss_over_cache_gib": 3.0,
           "generation_peak_gib": 12.0}


# ---------------------------------------------------------------------------------------------
# Measurements inside a process

def memory_status() -> dict:
    """Peak and current resident memory of this process, in bytes (from /proc/self/status)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) * 1024
    return {"peak_rss_bytes": fields.get("VmHWM"), "rss_bytes": fields.get("VmRSS"),
            "rss_anon_bytes": fields.get("RssAnon"), "rss_file_bytes": fields.get("RssFile")}


def storage_bytes_read() -> int:
    """Bytes this process has caused to be read from storage (page faults, readahead, direct I/O)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("read_bytes:"))


def distinct_blocks(ids: torch.Tensor, row_bytes: int, data_offset: int) -> int:
    """How many distinct 4096-byte blocks of the file hold rows ``ids``."""
    first = (data_offset + ids * row_bytes) // BLOCK
    last = (data_offset + (ids + 1) * row_bytes - 1) // BLOCK
    spans = [first + step for step in range(int((last - first).max()) + 1)] if ids.numel() else []
    blocks = torch.cat([span[span <= last] for span in spans]) if spans else ids
    return int(blocks.unique().numel())


def drop_page_cache(folder: Path, features_exceed_memory: bool) -> str:
    """Evicts the dataset's pages from the page cache; says how."""
    if features_exceed_memory:
        try:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            return "dropped (/proc/sys/vm/drop_caches)"
        except OSError as error:
            reason = f"/proc/sys/vm/drop_caches not writable ({error.strerror}); "
    else:
        reason = ""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())  # dirty pages stay cached: write them first
                os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return reason + "the dataset's files evicted with posix_fadvise(DONTNEED)"


# ---------------------------------------------------------------------------------------------
# Workers (each run in its own process)

def generate(args) -> dict:
    from gnnscale.datasets import generate_preset, save_dataset

    start = time.perf_counter()
    try:
        from gnnscale.datasets.prepare import write_synthetic
    except ImportError:  # the streaming writer is not there: build in memory, then save
        save_dataset(generate_preset(args.preset, scale=args.scale, seed=0), args.data)
        method = "save_dataset(generate_preset(...)) (in memory)"
    else:
        write_synthetic(args.preset, args.data, scale=args.scale, seed=0, memory_gib=args.generator_memory_gib)
        method = "gnnscale.datasets.prepare.write_synthetic"
    return {"method": method, "seconds": time.perf_counter() - start, **memory_status()}


def train(args) -> dict:
    """``args.batches`` training steps of GraphSAGE with the configuration's feature source."""
    from gnnscale.datasets import generate_preset, load_dataset
    from gnnscale.npy import read_npy_header
    from gnnscale.storage import DiskTensor
    from gnnscale.train import NodeTask

    if args.worker == "in_memory":
        dataset = generate_preset(args.preset, scale=args.reference_scale, seed=0)
        host_cache_gib = None
    else:
        dataset = load_dataset(str(args.data))
        dataset.feature_file = args.data / "features.npy"
        host_cache_gib = {"mmap": None, "disk_tier": args.host_cache_gib, "disk_tier_no_cache": 0.0}[args.worker]
    row_bytes = dataset.features.size(1) * dataset.features.element_size()
    data_offset = read_npy_header(args.data / "features.npy")[2] if args.worker != "in_memory" else 0
    torch.manual_seed(0)
    task = NodeTask(dataset, "sage", fanouts=FANOUTS, batch_size=BATCH_SIZE, hidden=HIDDEN,
                    num_threads=args.threads, host_cache_gib=host_cache_gib)
    model = task.build(torch.device("cpu"), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    disk = task.features if isinstance(task.features, DiskTensor) else None

    counters = lambda: (time.perf_counter(), storage_bytes_read(), disk.stats() if disk else None)  # noqa: E731
    steps, epoch, before = [], 0, counters()
    while len(steps) < args.batches:
        epoch += 1
        for batch in task.batches(epoch):
            loss, _ = task.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps.append(step_record(before, disk, batch.subgraph.node, row_bytes, data_offset))
            before = counters()
            if len(steps) == args.batches:
                break
    return summarise(args, steps, task, dataset, row_bytes)


def step_record(before, disk, ids, row_bytes, data_offset) -> dict:
    """One step, from the end of the previous one: waiting for the batch (sampling, gathering),
    forward, backward and update. Its reads include those of the batches the loader prepared
    meanwhile."""
    start, io_before, stats_before = before
    record = {"seconds": time.perf_counter() - start, "storage_bytes": storage_bytes_read() - io_before,
              "rows": ids.numel(), "blocks": distinct_blocks(ids.cpu(), row_bytes, data_offset)}
    if disk is not None:
        stats = disk.stats()
        for name in ("bytes_read", "rows_from_disk", "cache_hits", "cache_misses"):
            record[name] = stats[name] - stats_before[name]
    return record


def summarise(args, steps, task, dataset, row_bytes) -> dict:
    steady = steps[len(steps) // 5:]
    total = lambda name, part=steps: sum(step.get(name, 0) for step in part)  # noqa: E731
    result = {"nodes": dataset.graph.num_nodes, "edges": dataset.graph.num_edges, "row_bytes": row_bytes,
              "feature_bytes": dataset.graph.num_nodes * row_bytes, "batches": len(steps),
              "batches_per_second": len(steps) / total("seconds"),
              "steady_batches_per_second": len(steady) / total("seconds", steady),
              "storage_bytes_per_batch": total("storage_bytes") / len(steps),
              "steady_storage_bytes_per_batch": total("storage_bytes", steady) / len(steady),
              "rows_per_batch": total("rows") / len(steps), "blocks_per_batch": total("blocks") / len(steps),
              "feature_tiers": task.feature_tiers(), **memory_status()}
    if "bytes_read" in steps[0]:
        lookups = total("cache_hits", steady) + total("cache_misses", steady)
        result.update(disk_bytes_per_batch=total("bytes_read") / len(steps),
                      steady_disk_bytes_per_batch=total("bytes_read", steady) / len(steady),
                      rows_from_disk_per_batch=total("rows_from_disk") / len(steps),
                      steady_host_cache_hit_rate=total("cache_hits", steady) / lookups if lookups else 0.0,
                      engine=task.features.engine, direct=task.features.direct)
        # The reader does not say which rows missed: the blocks the misses need, estimated as the
        # batch's blocks in the share of its rows that came from disk (exact without a cache).
        share = total("rows_from_disk") / max(total("rows"), 1)
        result["uncached_blocks_per_batch"] = share * result["blocks_per_batch"]
        result["disk_bytes_over_uncached_block_bytes"] = \
            total("bytes_read") / max(share * total("blocks") * BLOCK, 1)
    return result


# ---------------------------------------------------------------------------------------------
# The driver

CONFIGURATIONS = {
    "mmap": "(a) features memory-mapped (load_dataset(DIR))",
    "disk_tier": "(b) disk tier, DiskTensor with a host cache of --host-cache-gib GiB",
    "disk_tier_no_cache": "(b0) disk tier without a host cache",
    "in_memory": "(c) in-memory table of the same row size on a graph that fits",
}


def run_worker(args, worker: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--data", str(args.data),
               "--scale", str(args.scale), "--reference-scale", str(args.reference_scale),
               "--batches", str(args.mmap_batches if worker == "mmap" else args.batches),
               "--host-cache-gib", str(args.host_cache_gib),
               "--threads", str(args.threads), "--preset", args.preset,
               "--generator-memory-gib", str(args.generator_memory_gib)]
    limit = args.mmap_time_limit if worker == "mmap" else None
    worker_process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = worker_process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        # Past memory the memory-mapped table may take far longer than the others: bounded here,
        # its rate is known to be below mmap_batches / limit, and its bytes read are what it read.
        read = _bytes_read_by(worker_process.pid)
        worker_process.kill()
        worker_process.communicate()
        return {"timed_out_after_seconds": limit, "batches_asked": args.mmap_batches,
                "steady_batches_per_second": None, "batches_per_second_below": args.mmap_batches / limit,
                "storage_bytes_read_before_stopped": read}
    if worker_process.returncode != 0:
        raise subprocess.CalledProcessError(worker_process.returncode, command)
    return json.loads(out.strip().splitlines()[-1])


def _bytes_read_by(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("read_bytes:"))
    except (OSError, StopIteration):
        return -1


def total_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def checks(results: dict, generation: dict, host_cache_gib: float) -> dict:
    """Each target beside its figure."""
    a, b, b0 = results["mmap"], results["disk_tier"], results["disk_tier_no_cache"]
    if a.get("steady_batches_per_second") is None:  # stopped at its time limit: a lower bound
        speedup = b["steady_batches_per_second"] / a["batches_per_second_below"]
        speedup_check = {"value_at_least": speedup, "target": f">= {TARGETS['speedup_b_over_a']}",
                         "met": speedup >= TARGETS["speedup_b_over_a"]}
    else:
        speedup = b["steady_batches_per_second"] / a["steady_batches_per_second"]
        speedup_check = {"value": speedup, "target": f">= {TARGETS['speedup_b_over_a']}",
                         "met": speedup >= TARGETS["speedup_b_over_a"]}
    generation_peak = generation.get("peak_rss_bytes") or 0
    return {
        "speedup_b_over_a": speedup_check,
        "disk_bytes_over_uncached_blocks": {
            "value": b0["disk_bytes_over_uncached_block_bytes"],
            "with_host_cache_estimate": b["disk_bytes_over_uncached_block_bytes"],
            "target": f"<= {TARGETS['disk_bytes_over_uncached_blocks']}",
            "met": b0["disk_bytes_over_uncached_block_bytes"] <= TARGETS["disk_bytes_over_uncached_blocks"]},
        "peak_rss_b_gib": {"value": b["peak_rss_bytes"] / GIB,
                           "target": f"<= cache + {TARGETS['rss_over_cache_gib']} = "
                                     f"{host_cache_gib + TARGETS['rss_over_cache_gib']} GiB",
                           "met": b["peak_rss_bytes"] / GIB <= host_cache_gib + TARGETS["rss_over_cache_gib"]},
        "generation_peak_gib": {"value": generation_peak / GIB, "target": f"<= {TARGETS['generation_peak_gib']}",
                                "met": generation_peak / GIB <= TARGETS["generation_peak_gib"]}
        if generation.get("method") != "reused" else {"value": None, "note": "dataset reused, not generated"},
    }


def print_row(name: str, r: dict) -> None:
    if r.get("timed_out_after_seconds") is not None:
        print(f"{name:<19}stopped after {r['timed_out_after_seconds']:.0f} s before {r['batches_asked']} batches "
              f"(below {r['batches_per_second_below']:.4f} batch/s), "
              f"{r['storage_bytes_read_before_stopped'] / GIB:.1f} GiB read from storage", flush=True)
        return
    line = (f"{name:<19}{r['steady_batches_per_second']:8.2f} batch/s (all {r['batches_per_second']:.2f})  "
            f"storage {r['steady_storage_bytes_per_batch'] / 2**20:8.2f} MiB/batch  "
            f"peak RSS {r['peak_rss_bytes'] / GIB:6.2f} GiB")
    if "disk_bytes_per_batch" in r:
        line += (f"  disk tier {r['disk_bytes_per_batch'] / 2**20:.2f} MiB/batch for "
                 f"{r['uncached_blocks_per_batch']:.0f} uncached blocks "
                 f"({r['disk_bytes_over_uncached_block_bytes']:.2f}x), "
                 f"host cache hit rate {r['steady_host_cache_hit_rate']:.1%}")
    print(line, flush=True)


def drive(args) -> None:
    created = not (args.data / "dataset.json").is_file()
    args.data.parent.mkdir(parents=True, exist_ok=True)
    try:
        if created:
            print(f"generating {args.preset} at scale {args.scale} into {args.data} ...", flush=True)
            generation = run_worker(args, "generate")
        else:
            generation = {"method": "reused"}
        feature_bytes = (args.data / "features.npy").stat().st_size
        exceeds = feature_bytes > total_memory_bytes()
        print(f"features {feature_bytes / GIB:.2f} GiB, memory {total_memory_bytes() / GIB:.1f} GiB; "
              f"generation: {generation}", flush=True)
        results, page_cache = {}, {}
        for worker, title in CONFIGURATIONS.items():
            page_cache[worker] = drop_page_cache(args.data, exceeds)
            results[worker] = run_worker(args, worker)
            results[worker]["configuration"] = title
            print_row(worker, results[worker])
        verdict = checks(results, generation, args.host_cache_gib)
        for name, check in verdict.items():
            print(f"  {name}: {check}")
        payload = {"preset": args.preset, "scale": args.scale, "reference_scale": args.reference_scale,
                   "batches": args.batches, "mmap_batches": args.mmap_batches,
                   "mmap_time_limit": args.mmap_time_limit,
                   "fanouts": FANOUTS, "batch_size": BATCH_SIZE, "hidden": HIDDEN,
                   "host_cache_gib": args.host_cache_gib, "loader_threads": args.threads,
                   "feature_file_bytes": feature_bytes, "memory_bytes": total_memory_bytes(),
                   "features_exceed_memory": exceeds, "page_cache": page_cache, "generation": generation,
                   "configurations": results, "targets": verdict}
        print(f"wrote {write_result('disk', payload)}")
    finally:
        if created and not args.keep:
            shutil.rmtree(args.data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="papers100M")
    parser.add_argument("--scale", type=float, default=1.0, help="nodes and edges relative to papers100M")
    parser.add_argument("--batches", type=int, default=200, help="training steps per configuration")
    parser.add_argument("--mmap-batches", type=int, default=None,
                        help="training steps of the memory-mapped configuration (default: --batches)")
    parser.add_argument("--mmap-time-limit", type=float, default=None,
                        help="stop the memory-mapped configuration after this many seconds (its rate is then "
                             "reported as a bound)")
    parser.add_argument("--host-cache-gib", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1, help="loader threads preparing batches ahead")
    parser.add_argument("--generator-memory-gib", type=float, default=8.0, help="the generator's memory budget")
    parser.add_argument("--reference-scale", type=float, default=None,
                        help="scale of the in-memory reference graph (default: features of at most 2 GiB)")
    parser.add_argument("--out", type=Path, default=None, help="dataset folder (default: a temporary one under /work)")
    parser.add_argument("--keep", action="store_true", help="keep the generated dataset")
    parser.add_argument("--worker", choices=["generate", *CONFIGURATIONS], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mmap_batches is None:
        args.mmap_batches = args.batches
    if args.scale <= 0 or min(args.batches, args.mmap_batches) < 1 or args.host_cache_gib < 0:
        parser.error("--scale must be positive, --batches and --mmap-batches at least 1 and --host-cache-gib at least 0")
    if args.worker:
        outcome = generate(args) if args.worker == "generate" else train(args)
        print(json.dumps(outcome))
        return
    if args.reference_scale is None:
        from gnnscale.datasets.synthetic import PRESETS

        shape = PRESETS[args.preset]
        args.reference_scale = min(args.scale, REFERENCE_FEATURE_BYTES / (shape.num_nodes * shape.num_features * 4))
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="gnnscale-disk-bench-", dir="/work"))
    args.out = args.out.resolve()
    if args.out == PROJECT or PROJECT in args.out.parents:
        parser.error(f"--out {args.out} is inside the project; give a folder outside it")
    args.data = args.out / f"{args.preset}-{args.scale:g}"
    try:
        drive(args)
    finally:
        if not args.keep and args.out.name.startswith("gnnscale-disk-bench-") and not any(args.out.iterdir()):
            args.out.rmdir()


if __name__ == "__main__":
    main()
