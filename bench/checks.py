"""What the kernels' own checks of ids, row pointers and output sizes cost: the kernels that read
graph ids, called through ``gnnscale.ops``, in the current package and in a copy of the package
as it was before the checks (``--before``, a folder holding a ``gnnscale`` package with its built
``_C`` library). Both register the same operators, so each runs in processes of its own.

Two measures per case, written side by side to bench/results/checks.json:

- time: one resident process per package; the two take turns, one call of one case at a time,
  for ``--trials`` rounds, so that load from other work on a shared machine falls on both alike.
  Each figure is the fastest call, in process CPU seconds on ``--threads`` threads (1 by default).
  On a shared machine a run of the same code on both sides still scatters by several percent.
- instructions (``--instructions``): one process per package under valgrind's callgrind, on one
  thread and a graph a fifth the size (INSTRUCTION_SCALE), counting only the instructions executed
  inside the operator's C++ function (``gnnscale::<op>_cpu``, by ``--toggle-collect``) during one
  call of each case, after its warm-up. Counts are dumped between cases at a marker call
  (``os.getppid``), so graph building and the warm-ups fall in a dump of their own. Instruction
  counts do not depend on the machine's load: run to run they agree within 0.01% (neighbour
  sampling within 1%), so they resolve what time cannot. The two packages run side by side, in
  some ten minutes, mostly torch's start-up under valgrind.

    python bench/checks.py --before /tmp/gnnscale_before [--trials 15] [--threads 1] [--instructions]
                           [--cases CASE ...]

``--cases`` measures only the cases named (exactly); their rows replace those of the same case in
bench/results/checks.json, the other rows are kept.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import write_result

# Case -> the operator's C++ function whose instructions are counted.
KERNELS = {
    "csr_to_csc": "csr_to_csc_cpu",
    "csr_to_csc, CSR not known sound": "csr_to_csc_cpu",
    "scaled_spmm (width 64)": "scaled_spmm_cpu",
    "scaled_spmm (width 64, 20k nodes: tiled)": "scaled_spmm_cpu",
    "scaled_spmm, CSR not known sound (width 64)": "scaled_spmm_cpu",
    "random_walk (length 20)": "random_walk_cpu",
    "random_walk node2vec (length 20)": "random_walk_cpu",
    "neighbour sampling (10 batches of 1024, [15, 10])": "neighbor_sample_cpu",
    "negative_tails (5 per source)": "negative_tails_cpu",
    "hop_token_sample (15, [10, 5])": "hop_token_sample_cpu",
    "temporal_neighbor_sample (10 most recent)": "temporal_neighbor_sample_cpu",
    "gather_rows (128 float32)": "gather_rows_cpu",
}
CASES = list(KERNELS)
# The full workload: a graph of 500k nodes and 4M stored edges (2M symmetrized), 50k walks, 100k
# negative sources, 20k token nodes, 2M events among 100k nodes with 100k queries, 100k gathered rows.
NUM_NODES = 500_000
NUM_UNDIRECTED_EDGES = 2_000_000
INSTRUCTION_SCALE = 0.2
# A call valgrind sees as the Python function os_getppid, made only between cases.
MARKER = "os_getppid"


def workload(scale):
    return {"scale": scale, "num_nodes": int(NUM_NODES * scale), "num_edges": 2 * int(NUM_UNDIRECTED_EDGES * scale)}


def build_cases(threads, scale):
    """The calls, by case, for the gnnscale package on sys.path, each warmed up once; counts are
    those of the full workload times ``scale`` (the tiled product's graph excepted)."""
    torch.set_num_threads(threads)
    from gnnscale import Graph, TemporalGraph, ops
    from gnnscale.sampling import NeighborSampler
    from gnnscale.storage.unified import UnifiedTensor

    def scaled(count):
        return int(count * scale)

    gen = torch.Generator().manual_seed(0)

    def random_graph(num_nodes, num_undirected_edges):
        edges = torch.randint(0, num_nodes, (2, num_undirected_edges), generator=gen)
        return Graph.from_edge_index(edges, num_nodes, symmetrize=True)

    num_nodes = scaled(NUM_NODES)
    graph = random_graph(num_nodes, scaled(NUM_UNDIRECTED_EDGES))
    indptr, indices = graph.indptr, graph.indices
    x = torch.randn(num_nodes, 64, generator=gen)
    inverse_degree = 1.0 / graph.degree().float().clamp_min(1)
    small = random_graph(20_000, 80_000)  # a tile slice of 20k rows fits the cache budget
    small_x = torch.randn(20_000, 64, generator=gen)
    starts = torch.randint(0, num_nodes, (scaled(50_000),), generator=gen)
    sampler = NeighborSampler(graph, [15, 10])
    seed_batches = [torch.randperm(num_nodes, generator=gen)[:1024] for _ in range(10)]
    sources = torch.randint(0, num_nodes, (scaled(100_000),), generator=gen)
    token_nodes = torch.randint(0, num_nodes, (scaled(20_000),), generator=gen)
    num_events, event_nodes = scaled(2_000_000), scaled(100_000)
    events = torch.randint(0, event_nodes, (2, num_events), generator=gen)
    stream = TemporalGraph(events[0], events[1], torch.arange(num_events, dtype=torch.float64))
    csr = stream.csr()
    queries = torch.randint(0, event_nodes, (scaled(100_000),), generator=gen)
    query_times = torch.randint(0, num_events, (scaled(100_000),), generator=gen).double()
    table = UnifiedTensor(torch.randn(num_nodes, 128, generator=gen))
    rows = torch.randint(0, num_nodes, (scaled(100_000),), generator=gen)

    cases = {
        "csr_to_csc": lambda: ops.csr_to_csc(indptr, indices, num_nodes),
        "csr_to_csc, CSR not known sound": lambda: ops.csr_to_csc(indptr.view(-1), indices.view(-1), num_nodes),
        "scaled_spmm (width 64)": lambda: ops.scaled_spmm(indptr, indices, x, row_scale=inverse_degree),
        "scaled_spmm (width 64, 20k nodes: tiled)": lambda: ops.scaled_spmm(small.indptr, small.indices, small_x),
        # New views are tensors never seen before, so their CSR is not known sound.
        "scaled_spmm, CSR not known sound (width 64)": lambda: ops.scaled_spmm(
            indptr.view(-1), indices.view(-1), x, row_scale=inverse_degree),
        "random_walk (length 20)": lambda: ops.random_walk(indptr, indices, starts, 20, seed=1),
        "random_walk node2vec (length 20)": lambda: ops.random_walk(indptr, indices, starts, 20, p=0.5, q=2.0),
        "neighbour sampling (10 batches of 1024, [15, 10])": lambda: [sampler.sample(s, seed=i)
                                                                      for i, s in enumerate(seed_batches)],
        "negative_tails (5 per source)": lambda: ops.negative_tails(indptr, indices, sources, 5),
        "hop_token_sample (15, [10, 5])": lambda: ops.hop_token_sample(indptr, indices, token_nodes, 15, [10, 5]),
        "temporal_neighbor_sample (10 most recent)": lambda: ops.temporal_neighbor_sample(
            csr.indptr, csr.neighbors, csr.edge_ids, csr.edge_times, queries, query_times, 10),
        "gather_rows (128 float32)": lambda: table.gather(rows),
    }
    assert list(cases) == list(KERNELS)
    cases = {case: cases[case] for case in CASES}
    for fn in cases.values():
        fn()  # warm-up: thread pool, first-touch allocations, lazy symbol binding
    return cases


def serve(threads):
    """Timing worker: builds the cases, then runs the case named on each stdin line once and
    prints its CPU seconds."""
    cases = build_cases(threads, 1.0)
    print("ready", flush=True)
    for line in sys.stdin:
        name = line.strip()
        start = time.process_time()
        cases[name]()
        print(time.process_time() - start, flush=True)


def run_once_each(scale):
    """Counting worker: one call of each case, the marker before each and after the last."""
    cases = build_cases(1, scale)
    for fn in cases.values():
        os.getppid()
        fn()
    os.getppid()


def worker_environment(package_root):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(package_root), str(Path(__file__).resolve().parent)])
    return env


class Worker:
    def __init__(self, package_root, threads):
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", "--threads", str(threads),
                                         *case_arguments()],
                                        env=worker_environment(package_root), cwd=package_root,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the worker for {package_root} did not start")

    def time(self, case):
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def fastest_calls(package_roots, threads, trials):
    """{package name: {case: fastest CPU seconds}}, the packages taking turns call by call."""
    workers = {name: Worker(root, threads) for name, root in package_roots.items()}
    best = {name: {} for name in workers}
    for trial in range(trials):
        for case in CASES:
            order = list(workers) if trial % 2 == 0 else list(workers)[::-1]
            for name in order:
                best[name][case] = min(workers[name].time(case), best[name].get(case, float("inf")))
    for worker in workers.values():
        worker.close()
    return best


def callgrind_command(out_file):
    # "(*)" ends where the function's name ends: a lambda inside it (named after it, ending in
    # "const") would toggle collection back off.
    toggles = [f"--toggle-collect=gnnscale::{kernel}(*)" for kernel in sorted({KERNELS[case] for case in CASES})]
    return ["valgrind", "--tool=callgrind", "--collect-atstart=no", *toggles, f"--dump-before={MARKER}",
            f"--callgrind-out-file={out_file}", sys.executable, __file__, "--count-worker",
            "--scale", str(INSTRUCTION_SCALE), *case_arguments()]


def case_arguments():
    """The --cases arguments that hand a subset of the cases on to a worker."""
    return [] if CASES == list(KERNELS) else ["--cases", *CASES]


def previous_command():
    path = Path(__file__).resolve().parent / "results" / "checks.json"
    return json.loads(path.read_text())["command"] if path.exists() else None


def merged_rows(rows):
    """The rows of bench/results/checks.json, those of the cases measured now replaced (or added)."""
    path = Path(__file__).resolve().parent / "results" / "checks.json"
    kept = json.loads(path.read_text())["cases"] if path.exists() else []
    measured = {row["case"]: row for row in rows}
    merged = [measured.pop(row["case"], row) for row in kept]
    return merged + list(measured.values())


def dumped_instructions(path):
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path} holds no totals line")


def start_callgrind(package_root, folder):
    """The counting worker of one package, started under callgrind; it writes into ``folder``."""
    folder.mkdir()
    with open(folder / "valgrind.log", "w") as log:
        return subprocess.Popen(callgrind_command(folder / "callgrind.out"), env=worker_environment(package_root),
                                cwd=package_root, stdout=subprocess.DEVNULL, stderr=log)


def counts_per_case(process, folder, package_root):
    """{case: instructions counted in its kernel}, once the run in ``folder`` is done."""
    if process.wait() != 0:
        raise RuntimeError(f"callgrind on {package_root} failed:\n{(folder / 'valgrind.log').read_text()[-3000:]}")
    # Dump 1 holds graph building and the warm-ups; dump k + 2 the call of case k.
    counts = {case: dumped_instructions(folder / f"callgrind.out.{k + 2}") for k, case in enumerate(CASES)}
    for case, count in counts.items():
        if count == 0:
            raise RuntimeError(f"no instructions counted in gnnscale::{KERNELS[case]} for {case!r} ({package_root})")
    return counts


def kernel_instructions(package_roots):
    """{package name: {case: instructions executed inside its kernel during one call}}. The
    packages run under callgrind side by side: counts do not depend on the load."""
    with tempfile.TemporaryDirectory() as folder:
        runs = {name: (start_callgrind(root, Path(folder) / name), Path(folder) / name)
                for name, root in package_roots.items()}
        return {name: counts_per_case(process, run_folder, package_roots[name])
                for name, (process, run_folder) in runs.items()}


def overhead(before, after):
    return after / before - 1


def case_rows(seconds, instructions):
    rows = []
    for case in CASES:
        row = {"case": case, "kernel": f"gnnscale::{KERNELS[case]}",
               "before_seconds": seconds["before"][case], "after_seconds": seconds["after"][case],
               "time_overhead": overhead(seconds["before"][case], seconds["after"][case])}
        if instructions:
            row.update(before_instructions=instructions["before"][case], after_instructions=instructions["after"][case],
                       instruction_overhead=overhead(instructions["before"][case], instructions["after"][case]))
        rows.append(row)
    return rows


def print_table(rows):
    for row in rows:
        line = (f"{row['case']:<50} {row['before_seconds'] * 1e3:8.1f} ms {row['after_seconds'] * 1e3:8.1f} ms "
                f"{100 * row['time_overhead']:+6.1f}%")
        if "instruction_overhead" in row:
            line += (f"   {row['before_instructions'] / 1e6:9.2f} M {row['after_instructions'] / 1e6:9.2f} M "
                     f"{100 * row['instruction_overhead']:+6.2f}%")
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="folder holding the gnnscale package as it was before the checks")
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--instructions", action="store_true",
                        help="also count each kernel's instructions under valgrind (callgrind)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=INSTRUCTION_SCALE, help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="+", choices=list(KERNELS), metavar="CASE",
                        help="measure only these cases, keeping the other rows of the results file")
    args = parser.parse_args()
    global CASES
    partial = args.cases is not None and list(args.cases) != list(KERNELS)
    if args.cases is not None:
        CASES = [case for case in KERNELS if case in args.cases]
    if args.worker:
        return serve(args.threads)
    if args.count_worker:
        return run_once_each(args.scale)
    if args.before is None or not (args.before / "gnnscale").is_dir():
        parser.error("--before must name a folder holding the gnnscale package as it was before the checks")
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH")
    package_roots = {"before": args.before.resolve(), "after": Path(__file__).resolve().parents[1]}

    seconds = fastest_calls(package_roots, args.threads, args.trials)
    instructions = kernel_instructions(package_roots) if args.instructions else None
    rows = case_rows(seconds, instructions)
    if partial:  # the rows kept from earlier runs came from the command recorded at the top
        for row in rows:
            row["command"] = shlex.join(["python", "bench/checks.py", *sys.argv[1:]])
    full = workload(1.0)
    print(f"time: {args.threads} thread(s), CPU seconds, fastest of {args.trials} alternating calls; graph of "
          f"{full['num_nodes']} nodes, {full['num_edges']} edges")
    if instructions:
        small = workload(INSTRUCTION_SCALE)
        print(f"instructions: inside each kernel, one call on 1 thread under callgrind; graph of "
              f"{small['num_nodes']} nodes, {small['num_edges']} edges")
    print(f"{'case':<50} {'before':>11} {'after':>11} {'time':>7}   {'before':>11} {'after':>11} {'instr':>7}")
    print_table(rows)
    payload = {
        "command": previous_command() if partial else shlex.join(["python", "bench/checks.py", *sys.argv[1:]]),
        "timing": {"method": "process CPU seconds, fastest of alternating calls", "threads": args.threads,
                   "trials": args.trials, **full},
        "instructions": None if not instructions else {
            "method": "instructions executed inside the kernel function during one call after a warm-up, "
                      "1 thread, valgrind callgrind; the tiled product's graph has 20k nodes at any scale",
            "valgrind": shlex.join(callgrind_command("OUT")), **workload(INSTRUCTION_SCALE)},
        "cases": merged_rows(rows) if partial else rows,
    }
    print(f"wrote {write_result('checks', payload)}")


if __name__ == "__main__":
    main()
