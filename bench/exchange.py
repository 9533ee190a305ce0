"""One hop of distributed sampling's traffic, two ways: ``all_to_all`` collectives on a gloo group
(what gnnscale's partitioned sampler and feature store use) against ``torch.distributed.rpc``
calls to the owner (TensorPipe), on 2 ranks over loopback. Each round sends the peer N node ids
and gets back N x 10 ids (a hop's draws), the sizes of a mini-batch hop.

    python bench/exchange.py [--ids 1000,10000,100000] [--rounds 20]

Writes bench/results/exchange.json: the median round time of each and their ratio.
"""
import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common import write_result

ANSWER_FACTOR = 10


def answer(ids: torch.Tensor) -> torch.Tensor:
    """What an owner returns for a request: ANSWER_FACTOR ids per node asked about."""
    return ids.repeat_interleave(ANSWER_FACTOR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, ports, sizes, rounds, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[0]}", rank=rank, world_size=2)
    from torch.distributed import rpc

    options = rpc.TensorPipeRpcBackendOptions(init_method=f"tcp://127.0.0.1:{ports[1]}", num_worker_threads=4)
    rpc.init_rpc(f"rank{rank}", rank=rank, world_size=2, rpc_backend_options=options)
    peer = 1 - rank
    timings = {}
    for size in sizes:
        ids = torch.arange(size, dtype=torch.int64)
        collective, remote = [], []
        for _ in range(rounds):
            dist.barrier()
            start = time.perf_counter()
            # the collective path: counts, requests, answer counts implied, answers
            counts = torch.tensor([0, size] if rank == 0 else [size, 0])
            received = torch.empty(2, dtype=torch.int64)
            dist.all_to_all_single(received, counts)
            asked = torch.empty(int(received.sum()), dtype=torch.int64)
            dist.all_to_all_single(asked, ids, output_split_sizes=received.tolist(), input_split_sizes=counts.tolist())
            reply = answer(asked)
            back = torch.empty(size * ANSWER_FACTOR, dtype=torch.int64)
            dist.all_to_all_single(back, reply, output_split_sizes=(counts * ANSWER_FACTOR).tolist(),
                                   input_split_sizes=(received * ANSWER_FACTOR).tolist())
            collective.append(time.perf_counter() - start)
            dist.barrier()
            start = time.perf_counter()
            rpc.rpc_sync(f"rank{peer}", answer, args=(ids,))
            remote.append(time.perf_counter() - start)
        timings[size] = {"all_to_all_seconds": statistics.median(collective),
                         "rpc_seconds": statistics.median(remote)}
    dist.barrier()
    rpc.shutdown()
    dist.destroy_process_group()
    if rank == 0:
        results.update(timings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(v) for v in args.ids.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank, args=((_free_port(), _free_port()), sizes, args.rounds, results), nprocs=2, join=True)
        rows = [{"ids": size, **results[size]} for size in sizes]
    for row in rows:
        row["rpc_over_all_to_all"] = row["rpc_seconds"] / row["all_to_all_seconds"]
        print(f"{row['ids']:>8} ids: all_to_all {row['all_to_all_seconds'] * 1e3:7.2f} ms, rpc "
              f"{row['rpc_seconds'] * 1e3:7.2f} ms ({row['rpc_over_all_to_all']:.2f}x)")
    path = write_result("exchange", {"ranks": 2, "transport": "loopback", "answer_ids_per_request": ANSWER_FACTOR,
                                     "rounds": args.rounds, "load_average_after": os.getloadavg()[0], "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
