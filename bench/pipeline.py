"""Graph-parallel vs pipelined (GNNPipe) vs hybrid full-graph training of an 8-layer residual GCN
on 4 ranks, against one process, on one synthetic graph, in one run: time per epoch, bytes sent per
epoch (measured by the engines and predicted by the planner) and test accuracy.

    python bench/pipeline.py [--nodes 200000] [--edges 2000000] [--epochs 30] [--quick] [--cora-only]

Layouts on 4 ranks: graph (1 stage x 4 METIS partitions), pipeline (4 stages x 1 partition, 4
chunks), hybrid (2 stages x 2 partitions, 4 chunks). The ranks are local gloo processes; on a
machine with fewer cores than ranks they share the cores, so times compare the layouts' work and
communication on this machine, not the speed of 4 devices.

Also Cora's public split (when the dataset is found): the same 8-layer residual GCN pipelined over
4 stages and 4 chunks against one process, 3 seeds, test accuracy at the best validation epoch.
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from common import write_result

from gnnscale.datasets import generate_synthetic, load_dataset
from gnnscale.parallel import plan_layouts
from gnnscale.distributed.launch import spawn
from gnnscale.train import ParallelFullGraphTask, Trainer

LAYOUTS = {"graph": (1, 4, 1), "pipeline": (4, 1, 4), "hybrid": (2, 2, 4)}


def dataset(args):
    return generate_synthetic(args.nodes, args.edges, num_features=64, num_classes=10, seed=args.seed,
                              name=f"synthetic-{args.nodes}")


def model_config(args, stages=1, partitions=1, chunks=1):
    """(task options, Trainer options) of one layout."""
    return (dict(stages=stages, partitions=partitions, chunks=chunks, num_layers=8, hidden=64, dropout=0.2),
            dict(lr=0.005, weight_decay=0.0, epochs=args.epochs, eval_every=args.eval_every, seed=args.seed))


def train_rank(args, config):
    task_options, loop_options = config
    started = time.perf_counter()
    task = ParallelFullGraphTask(dataset(args), **task_options)
    trainer = Trainer(task, progress=False, **loop_options)
    setup = time.perf_counter() - started
    result = trainer.fit()
    return {"result": result, "traffic": task.traffic(), "setup_seconds": setup}


CORA_MODEL = dict(num_layers=8, hidden=64, dropout=0.6)
CORA_LOOP = dict(lr=0.005, epochs=100, eval_every=2)
CORA_SEEDS = (0, 1, 2)


def cora_root():
    for root in (os.environ.get("GNNSCALE_DATA"), Path(__file__).resolve().parents[2] / "shared" / "datasets"):
        if root and (Path(root) / "planetoid" / "Cora").is_dir():
            return str(root)
    return None


def train_cora(root, grid, seeds):
    cora = load_dataset("cora", root=root)
    return [Trainer(ParallelFullGraphTask(cora, **grid, **CORA_MODEL), progress=False, seed=seed,
                    **CORA_LOOP).fit().metrics["test"] for seed in seeds]


def cora_comparison(root):
    single = train_cora(root, {}, CORA_SEEDS)
    pipelined = spawn(4, train_cora, root, dict(stages=4, chunks=4), CORA_SEEDS)[0]
    summary = {"model": "8-layer residual GCN, hidden 64, dropout 0.6, lr 0.005, 100 epochs", "seeds": list(CORA_SEEDS),
               "single_test": single, "pipelined_test": pipelined,
               "single_mean": statistics.mean(single), "pipelined_mean": statistics.mean(pipelined)}
    print(f"Cora test accuracy, mean of {len(CORA_SEEDS)} seeds: one process {summary['single_mean']:.4f}, "
          f"4 stages x 4 chunks {summary['pipelined_mean']:.4f}")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200_000)
    parser.add_argument("--edges", type=int, default=2_000_000, help="undirected edges before de-duplication")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20k nodes, 5 epochs (a smoke run)")
    parser.add_argument("--cora-only", action="store_true", help="only the Cora comparison, merged into the JSON")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.edges, args.epochs = 20_000, 200_000, 5
    root = cora_root()
    cora = cora_comparison(root) if root else None
    if args.cora_only:
        import json

        from common import RESULTS
        path = RESULTS / "pipeline.json"
        payload = json.loads(path.read_text())
        payload["cora"] = cora
        path.write_text(json.dumps(payload, indent=2))
        print(f"updated {path}")
        return

    data = dataset(args)
    started = time.perf_counter()
    predictions = {p.kind: p for p in plan_layouts(data.graph, 4, num_features=64, num_classes=10, num_layers=8,
                                                   hidden=64)}
    plan_seconds = time.perf_counter() - started
    print(f"{data.name}: {data.graph.num_nodes} nodes, {data.graph.num_edges} directed edges; "
          f"planned 3 layouts in {plan_seconds:.1f} s")

    rows = []
    single = train_rank(args, model_config(args))
    rows.append(("single", 1, 1, 1, single, None))
    for kind, (stages, partitions, chunks) in LAYOUTS.items():
        ranks = spawn(4, train_rank, args, model_config(args, stages, partitions, chunks))
        rows.append((kind, stages, partitions, chunks, ranks[0], predictions[kind]))

    table = []
    print(f"{'layout':<9}{'grid':>7}{'chunks':>7}{'s/epoch':>9}{'MiB sent/epoch':>16}{'predicted':>11}"
          f"{'test acc':>10}")
    for kind, stages, partitions, chunks, run, predicted in rows:
        result, traffic = run["result"], run["traffic"]["train"]
        sent = sum(traffic.values())
        entry = {"layout": kind, "stages": stages, "partitions": partitions, "chunks": chunks,
                 "seconds_per_epoch": result.seconds_per_epoch, "setup_seconds": run["setup_seconds"],
                 "bytes_per_epoch": traffic, "bytes_sent_per_epoch": sent,
                 "predicted_bytes_per_epoch": None if predicted is None else predicted.bytes_per_epoch,
                 "predicted_total": None if predicted is None else predicted.total_bytes,
                 "halo_rows": None if predicted is None else predicted.halo_rows,
                 "accuracy": result.metrics, "best_epoch": result.best_epoch,
                 "loss": [row["loss"] for row in result.history]}
        table.append(entry)
        print(f"{kind:<9}{f'{stages}x{partitions}':>7}{chunks:>7}{result.seconds_per_epoch:>9.2f}"
              f"{sent / 2**20:>16.1f}{'' if predicted is None else f'{predicted.total_bytes / 2**20:.1f}':>11}"
              f"{result.metrics['test']:>10.4f}")
    by_kind = {entry["layout"]: entry for entry in table}
    ratio = by_kind["pipeline"]["bytes_sent_per_epoch"] / by_kind["graph"]["bytes_sent_per_epoch"]
    print(f"pipeline / graph-parallel bytes: {ratio:.3f}")
    path = write_result("pipeline", {
        "graph": {"name": data.name, "nodes": data.graph.num_nodes, "directed_edges": data.graph.num_edges,
                  "features": 64, "classes": 10},
        "model": "8-layer residual GCN, hidden 64, dropout 0.2, Adam lr 0.005",
        "epochs": args.epochs, "ranks": 4, "threads": torch.get_num_threads(),
        "layouts": table, "planner": {k: p.as_dict() for k, p in predictions.items()},
        "pipeline_over_graph_bytes": ratio, "cora": cora,
        "note": "4 local gloo ranks sharing the machine's cores; one thread per rank",
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
