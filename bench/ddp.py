"""Data-parallel training on one machine: GraphSAGE (fanouts [15, 10, 5], global batch 1024,
hidden 256) on a products-shaped synthetic graph with wide features, trained by gnnscale's Trainer
on 1 and 2 local gloo ranks, against PyG's multi-process DDP example pattern at the same ranks,
in one run on the same data. Reports seed nodes per second and each rank's peak memory.

    python bench/ddp.py [--scale 0.45] [--features 256] [--ranks 1,2] [--warmup 1] [--steps 3]
                        [--loader-threads 0] [--quick]

The dataset is generated once, in a process of its own, and written twice: as a gnnscale dataset
folder (``save_dataset``), which every gnnscale rank opens memory-mapped (``load_dataset(folder)``:
one copy of the features and the topology in the page cache, whatever the number of ranks), and
as a ``torch.save`` file of the tensors PyG's ``Data`` holds, which every PyG rank reads into its
own memory, as an ``InMemoryDataset`` does.

- gnnscale: ``spawn(N, ...)`` starts N ranks of one torch thread each; each builds
  ``Trainer(NodeTask(dataset, "sage", batch_size=1024 // N, num_threads=0))``, which shards every
  global batch over the ranks and averages gradients with DistributedDataParallel. With
  ``num_threads=0`` the batches are prepared in the training thread, so a rank is one thread, as a
  PyG rank is (``--loader-threads 1`` gives each rank a thread that prepares batches ahead:
  NodeTask's default, which oversubscribes two cores at two ranks).
- PyG, as its examples/multi_gpu/distributed_sampling.py: ``torch.multiprocessing.spawn``,
  ``init_process_group("gloo")``, a ``NeighborLoader`` per rank over its part of the training seeds
  (``train_idx.split(len // N)[rank]``, batch 1024 // N, shuffled, no loader workers: one thread per
  rank), ``torch_geometric.nn.GraphSAGE`` in DistributedDataParallel, Adam, cross-entropy on the
  seeds. PyG's NeighborLoader needs torch-sparse or pyg-lib (peers, not dependencies: see
  ../shared/wheels); without either the PyG rows are skipped.

An epoch of the full training split (86 global batches) takes 8 to 35 minutes on two cores, so
each configuration trains a fixed number of global batches: ``--warmup`` untimed steps, then
``--steps`` timed ones (the same global batch size, hence the same seed nodes, in every
configuration).

Memory: a thread in every rank keeps the peak proportional set size (PSS: a page shared by k
processes counts 1/k in each, so the sum over the ranks counts a shared page once), from before
the dataset is opened to the end of training: its private part (RssAnon, /proc/self/status) every
20 ms, its shared part (/proc/self/smaps_rollup, whose every read costs 10-15 ms of kernel time
here) every second; see :class:`PeakMemory`. The sum of the ranks' peaks is reported (an upper
bound of the peak of the sum). Each rank's ``ru_maxrss`` (shared pages counted in full in every
rank) is reported beside it.
"""
import argparse
import os
import resource
import sys
import tempfile
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common`, and this module in the ranks

from common import write_result  # noqa: E402
from gnnscale.distributed.launch import spawn  # noqa: E402

RANK_TIMEOUT_S = 900.0
PYG_FILE = "pyg-data.pt"


def pyg_sampler():
    """What samples for PyG's NeighborLoader here, or None when it cannot run."""
    import importlib.util

    if importlib.util.find_spec("pyg_lib") is not None:
        return "pyg-lib"
    if importlib.util.find_spec("torch_sparse") is not None:
        return "torch-sparse"
    return None


# ---------------------------------------------------------------------------------- memory
class PeakMemory:
    """This process's peak proportional set size (PSS), sampled on a daemon thread.

    /proc/self/smaps_rollup walks the page tables: with torch loaded one read takes 10-15 ms of
    kernel time here, so reading it every 20 ms would cost a rank half a core. PSS is split into
    its anonymous part, which a process started by spawn (fork + exec) shares with no one, so that
    its PSS equals its RssAnon, and the file and shmem parts (the memory-mapped dataset, libraries),
    which other processes share and which change slowly. Every ``interval_s`` the thread reads
    RssAnon from /proc/self/status (a counter: microseconds); every ``full_interval_s`` it reads
    smaps_rollup for the shared parts. The peak is the highest RssAnon + the latest Pss_File +
    Pss_Shmem; the highest PSS read directly and the largest gap between Pss_Anon and RssAnon seen
    in the full reads (those during which RssAnon held still) are kept as checks."""

    def __init__(self, interval_s: float = 0.02, full_interval_s: float = 1.0):
        self.interval_s, self.full_interval_s = interval_s, full_interval_s
        self.shared_kib = 0
        self.peak = {"pss_kib": 0, "anon_kib": 0, "shared_kib": 0}
        self.peak_read_pss_kib = 0
        self.peak_rss_kib = 0
        self.anon_gap_kib = 0
        self.samples = self.full_reads = 0
        self.marks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-pss", daemon=True)

    @staticmethod
    def _fields(path: str, names) -> dict:
        values = {}
        with open(path) as file:
            for line in file:
                name, _, rest = line.partition(":")
                if name in names:
                    values[name] = int(rest.split()[0])  # kB
        return values

    def _full_read(self) -> int:
        before = self._fields("/proc/self/status", ("RssAnon",))["RssAnon"]
        rollup = self._fields("/proc/self/smaps_rollup", ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"))
        anon = self._fields("/proc/self/status", ("RssAnon",))["RssAnon"]
        self.full_reads += 1
        self.shared_kib = rollup["Pss_File"] + rollup["Pss_Shmem"]
        self.peak_read_pss_kib = max(self.peak_read_pss_kib, rollup["Pss"])
        self.peak_rss_kib = max(self.peak_rss_kib, rollup["Rss"])
        if abs(anon - before) < 4096:  # memory held still during the read: the parts compare
            self.anon_gap_kib = max(self.anon_gap_kib, abs(rollup["Pss_Anon"] - anon))
        return max(before, anon)

    def _sample(self, anon=None) -> None:
        if anon is None:
            anon = self._fields("/proc/self/status", ("RssAnon",))["RssAnon"]
        self.samples += 1
        if anon + self.shared_kib > self.peak["pss_kib"]:
            self.peak = {"pss_kib": anon + self.shared_kib, "anon_kib": anon, "shared_kib": self.shared_kib}

    def _run(self) -> None:
        last_full = time.perf_counter()
        while not self._stop.wait(self.interval_s):
            now = time.perf_counter()
            if now - last_full >= self.full_interval_s:
                self._sample(self._full_read())
                last_full = now
            else:
                self._sample()

    def mark(self, name: str) -> None:
        """Records the private (RssAnon) and shared PSS now, as ``name``."""
        anon = self._full_read()
        self.marks[name] = {"anon_mib": anon / 1024, "shared_mib": self.shared_kib / 1024}

    def start(self) -> "PeakMemory":
        self._sample(self._full_read())
        self._thread.start()
        return self

    def stop(self) -> dict:
        """Stops sampling; returns the peak and its parts in MiB, the checks, and ru_maxrss."""
        self._stop.set()
        self._thread.join()
        self._sample(self._full_read())
        mib = 1024
        return {"peak_pss_mib": self.peak["pss_kib"] / mib, "peak_pss_anon_mib": self.peak["anon_kib"] / mib,
                "peak_pss_shared_mib": self.peak["shared_kib"] / mib,
                "peak_pss_read_directly_mib": self.peak_read_pss_kib / mib,
                "peak_rss_read_mib": self.peak_rss_kib / mib,
                "max_pss_anon_vs_rss_anon_gap_mib": self.anon_gap_kib / mib,
                "samples": self.samples, "full_reads": self.full_reads, "at": self.marks,
                "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mib}


class Clock:
    """Wall time and this process's CPU time (all its threads, user and system) from creation."""

    def __init__(self):
        self.wall = time.perf_counter()
        self.usage = resource.getrusage(resource.RUSAGE_SELF)

    def stop(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"seconds": time.perf_counter() - self.wall,
                "cpu_user_seconds": usage.ru_utime - self.usage.ru_utime,
                "cpu_system_seconds": usage.ru_stime - self.usage.ru_stime}


# ---------------------------------------------------------------------------------- the data
def generate(folder: str, scale: float, num_features: int) -> dict:
    """Generates the graph and writes both copies; runs in a process of its own, so that the
    ranks' parent (whose peak memory a spawned rank inherits as its ru_maxrss) stays small."""
    from gnnscale.datasets import generate_preset, save_dataset

    start = time.perf_counter()
    dataset = generate_preset("products", scale=scale, seed=0, num_features=num_features)
    generated = time.perf_counter() - start
    save_dataset(dataset, Path(folder) / "gnnscale")
    graph = dataset.graph
    torch.save({"x": dataset.features, "edge_index": graph.edge_index(), "y": dataset.labels,
                "train_idx": dataset.splits["train"], "num_classes": dataset.num_classes},
               Path(folder) / PYG_FILE)
    return {"preset": "products", "scale": scale, "nodes": graph.num_nodes, "edges": graph.num_edges,
            "features": dataset.num_features, "feature_table_gib": dataset.features.nbytes / 2 ** 30,
            "classes": dataset.num_classes, "train_nodes": int(dataset.splits["train"].numel()),
            "generate_seconds": generated, "write_seconds": time.perf_counter() - start - generated}


def _generate_entry(queue, folder, scale, num_features):
    torch.set_num_threads(2)
    queue.put(generate(folder, scale, num_features))


def generate_in_subprocess(folder: str, scale: float, num_features: int) -> dict:
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    process = context.Process(target=_generate_entry, args=(queue, folder, scale, num_features))
    process.start()
    info = queue.get()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"dataset generation failed with exit code {process.exitcode}")
    return info


# ---------------------------------------------------------------------------------- gnnscale
def _make_step_capped_task():
    from gnnscale.train import NodeTask

    class StepCappedNodeTask(NodeTask):
        """A NodeTask whose epochs stop after ``cap`` steps (None: the whole epoch)."""

        cap = None

        def num_batches(self) -> int:
            full = super().num_batches()
            return full if self.cap is None else min(full, self.cap)

        def batches(self, epoch: int):
            iterator = super().batches(epoch)
            # zip asks the range first: no batch past the cap is waited for
            for _, batch in zip(range(self.num_batches()), iterator):
                yield batch
            iterator.close()  # stops the loader's prefetching

    return StepCappedNodeTask


def gnnscale_rank(folder: str, config: dict) -> dict:
    """One gnnscale rank: spawn() has joined the gloo group; the Trainer finds it."""
    memory = PeakMemory().start()
    from gnnscale import load_dataset
    from gnnscale.train import Trainer

    world_size = dist.get_world_size()
    memory.mark("imported")
    dataset = load_dataset(str(Path(folder) / "gnnscale"))
    memory.mark("dataset opened")
    task = _make_step_capped_task()(dataset, "sage", fanouts=config["fanouts"],
                                    batch_size=config["batch_size"] // world_size, hidden=config["hidden"],
                                    num_threads=config["loader_threads"])
    trainer = Trainer(task, lr=config["lr"], epochs=2, seed=0, progress=False)
    memory.mark("trainer built")
    task.cap = config["warmup"]
    trainer.train_epoch(1)
    task.cap = config["steps"]
    dist.barrier()
    clock = Clock()
    loss, items = trainer.train_epoch(2)
    return {"rank": dist.get_rank(), **clock.stop(), "loss": loss, "items": items,
            "threads": torch.get_num_threads(), **memory.stop()}


def run_gnnscale(folder: str, world_size: int, config: dict) -> dict:
    ranks = spawn(world_size, gnnscale_rank, folder, config, threads_per_rank=1, timeout_s=RANK_TIMEOUT_S)
    threads = config["loader_threads"]
    return summarise("gnnscale", f"gnnscale Trainer + NodeTask('sage'), features memory-mapped from one saved "
                                 f"dataset ({threads} loader thread{'s' if threads != 1 else ''} per rank)",
                     world_size, ranks, config)


# ---------------------------------------------------------------------------------- PyG
def pyg_rank(rank: int, world_size: int, folder: str, config: dict, results) -> None:
    """One rank of PyG's distributed_sampling.py pattern, on the CPU with gloo."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*without a 'pyg-lib' installation is deprecated")
    memory = PeakMemory().start()
    dist.init_process_group("gloo", init_method=f"file://{folder}/pyg-store-{world_size}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=RANK_TIMEOUT_S))
    try:
        from torch.nn.parallel import DistributedDataParallel
        from torch_geometric.data import Data
        from torch_geometric.loader import NeighborLoader
        from torch_geometric.nn import GraphSAGE

        memory.mark("imported")
        saved = torch.load(Path(folder) / PYG_FILE)
        data = Data(x=saved["x"], edge_index=saved["edge_index"], y=saved["y"])
        train_idx = saved["train_idx"]
        train_idx = train_idx.split(train_idx.size(0) // world_size)[rank]
        del saved
        memory.mark("dataset opened")
        loader = NeighborLoader(data, input_nodes=train_idx, num_neighbors=config["fanouts"],
                                batch_size=config["batch_size"] // world_size, shuffle=True, drop_last=True)
        torch.manual_seed(0)
        model = GraphSAGE(data.num_features, config["hidden"], len(config["fanouts"]), config["num_classes"],
                          dropout=0.5)
        model = DistributedDataParallel(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
        memory.mark("trainer built")
        model.train()

        def epochs():  # as many epochs of the rank's seeds as the steps need
            while True:
                yield from loader

        batches = epochs()

        def step():
            batch = next(batches)
            optimizer.zero_grad()
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
            loss = F.cross_entropy(out, batch.y[:batch.batch_size])
            loss.backward()
            optimizer.step()
            return loss.item(), batch.batch_size

        for _ in range(config["warmup"]):
            step()
        dist.barrier()
        clock = Clock()
        losses = [step() for _ in range(config["steps"])]
        dist.barrier()
        timing = clock.stop()
        total_loss, items = torch.tensor([sum(l * n for l, n in losses), sum(n for _, n in losses)],
                                         dtype=torch.float64)
        summed = torch.stack([total_loss, items])
        dist.all_reduce(summed)
        results.put({"rank": rank, **timing, "loss": float(summed[0] / summed[1]),
                     "items": int(summed[1]), "threads": torch.get_num_threads(), **memory.stop()})
    finally:
        dist.destroy_process_group()


def run_pyg(folder: str, world_size: int, config: dict) -> dict:
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(pyg_rank, args=(world_size, folder, config, queue), nprocs=world_size, join=True)
    ranks = sorted((queue.get() for _ in range(world_size)), key=lambda row: row["rank"])
    return summarise("pyg", f"PyG NeighborLoader ({config['pyg_sampler']}, 0 workers) + torch_geometric.nn.GraphSAGE "
                            f"in DDP, in-memory Data per rank (examples/multi_gpu/distributed_sampling.py)",
                     world_size, ranks, config)


# ---------------------------------------------------------------------------------- report
def summarise(system: str, method: str, world_size: int, ranks: list, config: dict) -> dict:
    seconds = max(rank["seconds"] for rank in ranks)
    seeds = config["steps"] * config["batch_size"]
    return {"system": system, "method": method, "world_size": world_size,
            "per_rank_batch": config["batch_size"] // world_size, "timed_steps": config["steps"],
            "seconds": seconds, "seconds_per_step": seconds / config["steps"],
            "seed_nodes_per_second": seeds / seconds, "loss": ranks[0]["loss"],
            # CPU time of the timed steps over all ranks: what the work costs whatever else runs
            "cpu_seconds_per_step": sum(r["cpu_user_seconds"] + r["cpu_system_seconds"] for r in ranks)
            / config["steps"],
            "cpu_system_share": sum(r["cpu_system_seconds"] for r in ranks)
            / max(sum(r["cpu_user_seconds"] + r["cpu_system_seconds"] for r in ranks), 1e-9),
            "pss_peak_mib_per_rank": [rank["peak_pss_mib"] for rank in ranks],
            "pss_peak_mib_sum": sum(rank["peak_pss_mib"] for rank in ranks),
            # private memory before the first step: the process, its copy of the data, its sampler's
            # structures; the peak adds the steps' batches and activations
            "private_mib_before_training_per_rank": [rank["at"]["trainer built"]["anon_mib"] for rank in ranks],
            "private_mib_at_peak_per_rank": [rank["peak_pss_anon_mib"] for rank in ranks],
            "ru_maxrss_mib_per_rank": [rank["ru_maxrss_mib"] for rank in ranks],
            "ru_maxrss_mib_sum": sum(rank["ru_maxrss_mib"] for rank in ranks),
            "ranks": ranks}


def ratios(rows: list) -> dict:
    by = {(row["system"], row["world_size"]): row for row in rows}
    out = {}
    sizes = sorted({row["world_size"] for row in rows})
    for system in ("gnnscale", "pyg"):
        for n in sizes[1:]:
            if (system, 1) in by and (system, n) in by:
                one, many = by[(system, 1)], by[(system, n)]
                out[f"{system}_{n}_vs_1_rank_throughput"] = (many["seed_nodes_per_second"]
                                                             / one["seed_nodes_per_second"])
                out[f"{system}_{n}_vs_1_rank_pss_sum"] = many["pss_peak_mib_sum"] / one["pss_peak_mib_sum"]
    for n in sizes:
        if ("gnnscale", n) in by and ("pyg", n) in by:
            ours, theirs = by[("gnnscale", n)], by[("pyg", n)]
            out[f"gnnscale_vs_pyg_{n}_rank_throughput"] = (ours["seed_nodes_per_second"]
                                                          / theirs["seed_nodes_per_second"])
            out[f"gnnscale_vs_pyg_{n}_rank_pss_sum"] = ours["pss_peak_mib_sum"] / theirs["pss_peak_mib_sum"]
    return out


# what each ratio should reach: (at least, at most)
TARGETS = {"gnnscale_2_vs_1_rank_throughput": (0.9, None), "gnnscale_vs_pyg_1_rank_throughput": (2.0, None),
           "gnnscale_vs_pyg_2_rank_throughput": (2.0, None), "gnnscale_2_vs_1_rank_pss_sum": (None, 1.3)}


def verdicts(summary: dict) -> dict:
    out = {}
    for name, (low, high) in TARGETS.items():
        if name in summary:
            value = summary[name]
            met = (low is None or value >= low) and (high is None or value <= high)
            out[name] = {"target": f">= {low}" if low is not None else f"<= {high}", "value": value, "met": met}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.45, help="graph size relative to ogbn-products")
    parser.add_argument("--features", type=int, default=256, help="feature width (ogbn-products: 100)")
    parser.add_argument("--ranks", default="1,2", help="world sizes to run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed global batches before the timed ones")
    parser.add_argument("--steps", type=int, default=3, help="timed global batches")
    parser.add_argument("--batch-size", type=int, default=1024, help="global batch (per rank: this / ranks)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--fanouts", default="15,10,5")
    parser.add_argument("--systems", default="gnnscale,pyg")
    parser.add_argument("--loader-threads", type=int, default=0,
                        help="gnnscale loader threads per rank (0: batches prepared in the training thread, one "
                             "thread per rank as PyG's loader without workers)")
    parser.add_argument("--quick", action="store_true", help="a tiny graph and few steps, to check the script")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.features, args.warmup, args.steps = 0.01, 64, 1, 2
    world_sizes = [int(n) for n in args.ranks.split(",")]
    systems = args.systems.split(",")
    sampler = pyg_sampler()
    if "pyg" in systems and sampler is None:
        print("PyG's NeighborLoader needs torch-sparse or pyg-lib, neither is installed: the PyG rows are skipped")
        systems.remove("pyg")
    config = {"fanouts": [int(f) for f in args.fanouts.split(",")], "batch_size": args.batch_size,
              "hidden": args.hidden, "lr": args.lr, "warmup": args.warmup, "steps": args.steps,
              "loader_threads": args.loader_threads, "pyg_sampler": sampler}
    for n in world_sizes:
        if args.batch_size % n:
            raise SystemExit(f"--batch-size {args.batch_size} is not a multiple of {n} ranks")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gnnscale-ddp-bench-") as folder:
        graph = generate_in_subprocess(folder, args.scale, args.features)
        config["num_classes"] = graph["classes"]
        print(f"synthetic-products scale {args.scale}: {graph['nodes']} nodes, {graph['edges']} edges, "
              f"{graph['features']} features ({graph['feature_table_gib']:.2f} GiB), {graph['train_nodes']} "
              f"training nodes ({graph['generate_seconds']:.0f} s to generate, "
              f"{graph['write_seconds']:.0f} s to write)")
        rows = []
        for n in world_sizes:
            for system in systems:
                run = run_gnnscale if system == "gnnscale" else run_pyg
                load_before = os.getloadavg()[0]
                row = run(folder, n, config)
                row["load_average_1min"] = [load_before, os.getloadavg()[0]]  # other work on the machine
                rows.append(row)
                print(f"  {system} {n} rank(s): {row['seconds_per_step']:.2f} s/step, "
                      f"{row['seed_nodes_per_second']:.0f} seed nodes/s, PSS sum {row['pss_peak_mib_sum']:.0f} MiB",
                      flush=True)
    total = time.perf_counter() - started
    summary = ratios(rows)

    print(f"\n{'system':<9} {'ranks':>5} {'s/step':>7} {'seeds/s':>8} {'CPU s/step':>10} {'PSS/rank MiB':>18} "
          f"{'PSS sum':>8} {'maxRSS/rank MiB':>18}")
    for row in rows:
        per_rank = "/".join(f"{v:.0f}" for v in row["pss_peak_mib_per_rank"])
        rss = "/".join(f"{v:.0f}" for v in row["ru_maxrss_mib_per_rank"])
        print(f"{row['system']:<9} {row['world_size']:>5} {row['seconds_per_step']:>7.2f} "
              f"{row['seed_nodes_per_second']:>8.0f} {row['cpu_seconds_per_step']:>10.1f} {per_rank:>18} "
              f"{row['pss_peak_mib_sum']:>8.0f} {rss:>18}")
    checked = verdicts(summary)
    for name, value in summary.items():
        verdict = checked.get(name)
        note = f"  (target {verdict['target']}: {'met' if verdict['met'] else 'missed'})" if verdict else ""
        print(f"  {name}: {value:.2f}x{note}")
    print(f"total {total:.0f} s")
    if not args.quick:
        path = write_result("ddp", {
            "command": (f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else "")
            + "python bench/ddp.py " + " ".join(sys.argv[1:]),
            "graph": graph,
            "config": {**config, "timing": f"{args.warmup} untimed then {args.steps} timed global batches of "
                                           f"{args.batch_size} seeds per configuration (not full epochs)",
                       "threads_per_rank": 1, "backend": "gloo", "device": "cpu"},
            "memory": "peak PSS per rank from rank start (before the data is opened) to the end of training: "
                      "RssAnon (/proc/self/status, = Pss_Anon in a spawned process) sampled every 20 ms plus "
                      "Pss_File + Pss_Shmem from /proc/self/smaps_rollup read every second (one read costs 10-15 ms "
                      "of kernel time here: at 20 ms it took half a core per rank); the sum of the ranks' peaks; "
                      "ru_maxrss per rank for reference",
            "pyg_peer": None if sampler is None else f"{sampler} (PYTHONPATH={os.environ.get('PYTHONPATH')})",
            "notes": [
                "PyG's distributed_sampling.py loads the dataset in the parent and passes it through mp.spawn's "
                "arguments, which moves its tensors into shared memory that the ranks then share; here every PyG "
                "rank reads its own in-memory copy, as a rank that loads its data itself does",
                "the machine's cores are shared with other work: load_average_1min per row (before, after), and "
                "cpu_seconds_per_step (all ranks' CPU time per timed step) for the cost whatever else runs",
                f"gnnscale ranks: 1 torch thread, {args.loader_threads} loader thread(s) (0: sampling and "
                "gathering in the training thread); PyG ranks: 1 torch thread, sampling in the training thread "
                "(no loader workers)"],
            "rows": rows, "ratios": summary, "targets": checked, "total_seconds": total})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
