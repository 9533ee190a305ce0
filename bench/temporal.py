"""Memory-based dynamic GNNs on the JODIE Wikipedia stream (no edge features): gnnscale's TGN at
temporal batch sizes 200..1600 with and without PRES, against PyG's TGN (TGNMemory +
LastNeighborLoader + TransformerConv, the structure of PyG's TGN example) at batch 200, in one run.

    python bench/temporal.py [--epochs 5] [--batch-sizes 200,400,800,1600] [--parts gnnscale,pyg]

Both sides: memory, time and embedding width 100, 10 most recent neighbours, Adam (lr 1e-3 for
gnnscale, PyG's example's 1e-4 and 1e-3 for PyG; the better is reported), one uniform random
negative destination per positive, chronological 70/15/15 split. gnnscale's queries see the
earlier events of their own batch as neighbours (TGN's reference implementation); one more run at
batch 200 takes neighbours from earlier batches only, as PyG's LastNeighborLoader does. Throughput counts training events
per second of training (evaluation excluded); AP is transductive test average precision at the
epoch with the best validation AP.
"""
import argparse
import json
import sys
import time

import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.nn import functional as F

from common import RESULTS, write_result
from gnnscale.datasets import load_dataset
from gnnscale.train import TemporalTask, Trainer


def gnnscale_run(dataset, batch_size, epochs, pres, in_batch_visible=True, seed=0):
    task = TemporalTask(dataset, "tgn", batch_size=batch_size, pres=pres, in_batch_visible=in_batch_visible,
                        new_node_fraction=0.0)
    result = Trainer(task, epochs=epochs, seed=seed, progress=False).fit()
    row = {"system": "gnnscale", "batch_size": batch_size, "pres": pres, "in_batch_visible": in_batch_visible,
           "epochs": epochs, "events_per_second": result.throughput,
           "seconds_per_epoch": result.seconds_per_epoch, "best_epoch": result.best_epoch,
           **{k: v for k, v in result.metrics.items()}}
    print(f"gnnscale tgn{'+pres' if pres else '     '}{'' if in_batch_visible else ' (earlier batches only)'} "
          f"batch {batch_size:>5}: {result.throughput:8.0f} events/s  "
          f"test AP {result.metrics['test']:.4f}  (valid {result.metrics['valid']:.4f})", flush=True)
    return row


def pyg_run(dataset, batch_size, epochs, lr, seed=0):
    """PyG's TGN building blocks, assembled as in PyG's TGN example."""
    from torch_geometric.nn import TransformerConv
    from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator, LastNeighborLoader, TGNMemory

    torch.manual_seed(seed)
    dim = 100
    src, dst, t = dataset.src, dataset.dst, dataset.t.to(torch.int64)
    # One constant message feature: PyG's message store cannot hold zero-width messages.
    msg = torch.zeros(src.numel(), 1)
    num_nodes = dataset.num_nodes
    memory = TGNMemory(num_nodes, 1, dim, dim, message_module=IdentityMessage(1, dim, dim),
                       aggregator_module=LastAggregator())

    class Embedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.time_enc = memory.time_enc
            self.conv = TransformerConv(dim, dim // 2, heads=2, dropout=0.1, edge_dim=dim + 1)

        def forward(self, x, last_update, edge_index, times, messages):
            rel_t = self.time_enc((last_update[edge_index[0]] - times).to(x.dtype))
            return self.conv(x, edge_index, torch.cat([rel_t, messages], -1))

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.src, self.dst, self.out = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim), torch.nn.Linear(dim, 1)

        def forward(self, z_src, z_dst):
            return self.out((self.src(z_src) + self.dst(z_dst)).relu()).squeeze(-1)

    gnn, decoder = Embedding(), Decoder()
    loader = LastNeighborLoader(num_nodes, size=10)
    params = set(memory.parameters()) | set(gnn.parameters()) | set(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    assoc = torch.empty(num_nodes, dtype=torch.long)
    splits = dataset.splits
    destinations = torch.unique(dst)
    generator = torch.Generator().manual_seed(seed)

    def step(events, train):
        s, d, tt, m = src[events], dst[events], t[events], msg[events]
        neg = destinations[torch.randint(destinations.numel(), (s.numel(),), generator=generator)]
        n_id = torch.cat([s, d, neg]).unique()
        n_id, edge_index, e_id = loader(n_id)
        assoc[n_id] = torch.arange(n_id.size(0))
        z, last_update = memory(n_id)
        z = gnn(z, last_update, edge_index, t[e_id], msg[e_id])
        pos = decoder(z[assoc[s]], z[assoc[d]])
        negative = decoder(z[assoc[s]], z[assoc[neg]])
        memory.update_state(s, d, tt, m)
        loader.insert(s, d)
        return pos, negative

    best = {"valid": -1.0}
    train_seconds = 0.0
    for epoch in range(1, epochs + 1):
        memory.train(), gnn.train(), decoder.train()
        memory.reset_state(), loader.reset_state()
        start = time.perf_counter()
        for begin in range(0, splits["train"].numel(), batch_size):
            optimizer.zero_grad()
            pos, neg = step(splits["train"][begin:begin + batch_size], True)
            loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + \
                F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
            loss.backward()
            optimizer.step()
            memory.detach()
        train_seconds += time.perf_counter() - start
        memory.eval(), gnn.eval(), decoder.eval()
        metrics = {}
        with torch.no_grad():
            for split in ("valid", "test"):
                scores, labels = [], []
                for begin in range(0, splits[split].numel(), batch_size):
                    pos, neg = step(splits[split][begin:begin + batch_size], False)
                    scores += [pos.sigmoid(), neg.sigmoid()]
                    labels += [torch.ones_like(pos), torch.zeros_like(neg)]
                y, p = torch.cat(labels).numpy(), torch.cat(scores).numpy()
                metrics[split], metrics[f"{split}_auc"] = average_precision_score(y, p), roc_auc_score(y, p)
        if metrics["valid"] > best["valid"]:
            best = {**metrics, "best_epoch": epoch}
    events_per_second = splits["train"].numel() * epochs / train_seconds
    print(f"pyg tgn (lr {lr:g})  batch {batch_size:>5}: {events_per_second:8.0f} events/s  test AP {best['test']:.4f}  "
          f"(valid {best['valid']:.4f})", flush=True)
    return {"system": "pyg", "batch_size": batch_size, "lr": lr, "epochs": epochs,
            "events_per_second": events_per_second, "seconds_per_epoch": train_seconds / epochs,
            **{k: float(v) for k, v in best.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-sizes", default="200,400,800,1600")
    parser.add_argument("--parts", default="gnnscale,pyg")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset("wikipedia", root=args.root)
    print(f"{dataset.name}: {dataset.num_events:,} events, {dataset.num_nodes:,} nodes, {args.epochs} epochs",
          flush=True)
    path = RESULTS / "temporal.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    parts = set(args.parts.split(","))
    rows = [row for row in previous.get("runs", []) if row["system"] not in parts]
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    if "pyg" in parts:
        rows += [pyg_run(dataset, 200, args.epochs, lr) for lr in (1e-4, 1e-3)]
    if "gnnscale" in parts:
        rows += [gnnscale_run(dataset, size, args.epochs, pres) for pres in (False, True) for size in sizes]
        # PyG's neighbour semantics (LastNeighborLoader, updated after each batch): like for like.
        rows.append(gnnscale_run(dataset, 200, args.epochs, False, in_batch_visible=False))
    written = write_result("temporal", {"dataset": dataset.name, "events": dataset.num_events,
                                        "epochs": args.epochs, "runs": rows})
    print(f"wrote {written}")


if __name__ == "__main__":
    sys.exit(main())
