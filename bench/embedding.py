"""Node embedding on BlogCatalog: wall time and micro-/macro-F1 (10% labels, 3 splits) of
gnnscale's DeepWalk and FastRP against pecanpy (node2vec, p = q = 1) and the PyPI `fastrp`
package, in one run on the same graph and machine; plus skip-gram pairs/s on a synthetic graph of
1M nodes / 10M edges.

    python bench/embedding.py [--peer-python .peers/bin/python] [--skip-scaling]

Every row is scored twice by the `embed-eval` classifier: with C chosen by cross-validation on
the training nodes (`embed-eval --C cv`: micro_f1, macro_f1) and with the DeepWalk protocol's
fixed C = 1 (`embed-eval --C 1`: micro_f1_C1, macro_f1_C1).

pecanpy pins numpy < 2, so it lives in its own environment (`python3 -m venv .peers &&
.peers/bin/pip install pecanpy "numpy<2"`) and runs as its command-line program; its time is
the program's wall time (start-up, reading the graph, walks, word2vec, writing the embeddings).
gnnscale DeepWalk is timed both ways: `fit()` in this process, and the `gnnscale embed` command
as a subprocess with the same settings and pecanpy's thread count, whose wall time (start-up,
reading the graph, training, writing the .npy) is the one to set against pecanpy's: the headline
ratio is that of the two commands at pecanpy's settings (window 10, 10 walks of 80, dim 128).
`fastrp` is imported in-process; the FastRP rows, well under a second each, report the fastest
of three calls.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import write_result
from gnnscale import load_dataset
from gnnscale.datasets import generate_synthetic
from gnnscale.embedding import SkipGram, SkipGramSettings
from gnnscale.embedding.evaluate import classifier_name, node_classification
from gnnscale.embedding.fastrp import fastrp
from gnnscale.embedding.io import load_embeddings

REPO = Path(__file__).resolve().parent.parent
DEEPWALK = dict(num_walks=10, walk_length=80, window=10)  # the walks pecanpy is given
FASTRP = dict(weights=(0.0, 0.0, 1.0, 6.0), beta=-0.9)   # gnnscale's defaults
SETTING_NAMES = ("dim", "num_walks", "walk_length", "window", "negatives", "epochs", "lr", "subsample",
                 "share_negatives", "seed")


def score(vertex, labels):
    """Micro-/macro-F1 with C cross-validated and with C = 1, the DeepWalk protocol's."""
    cv = node_classification(vertex, labels, ratios=[0.1], repeats=3, C="cv", progress=False)[0.1]
    fixed = node_classification(vertex, labels, ratios=[0.1], repeats=3, C=1.0, progress=False)[0.1]
    return {"micro_f1": cv["micro_f1"], "macro_f1": cv["macro_f1"], "C": cv["C"],
            "micro_f1_C1": fixed["micro_f1"], "macro_f1_C1": fixed["macro_f1"]}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def best_of(fn, repeats=3):
    """Sub-second runs: the fastest of a few, so that one-off stalls do not decide the ratio."""
    runs = [timed(fn) for _ in range(repeats)]
    return runs[0][0], min(seconds for _, seconds in runs)


def deepwalk_row(name, graph, labels, settings):
    model = SkipGram(graph, settings)
    embeddings, seconds = timed(lambda: model.fit(progress=False))
    return {"method": name, "timed": "fit() in-process", "seconds": seconds, **score(embeddings.vertex, labels),
            "pairs": model.pairs_trained, "pairs_per_second": model.pairs_trained / model.train_seconds,
            "settings": {k: getattr(settings, k) for k in SETTING_NAMES}}


def embed_command(settings, output, threads):
    """`gnnscale embed` on BlogCatalog with every skip-gram setting spelled out."""
    flags = [f"--{name.replace('_', '-')}={getattr(settings, name)}" for name in SETTING_NAMES
             if getattr(settings, name) is not None]  # None: the command's own default
    return [sys.executable, "-m", "gnnscale", "embed", "--input", "blogcatalog", "--output", str(output),
            "--method", settings.method, *flags, "--threads", str(threads), "--quiet"]


def command_row(name, graph, labels, settings, threads):
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "emb.npy"
        command = embed_command(settings, output, threads)
        load = os.getloadavg()[0]  # other work on the machine slows either command
        _, seconds = timed(lambda: subprocess.run(command, check=True, capture_output=True, cwd=REPO))
        embeddings = load_embeddings(output)
    names = graph.node_names if graph.node_names is not None else np.arange(graph.num_nodes)
    rows = torch.from_numpy(embeddings.rows_for(np.asarray(names)))
    if bool((rows < 0).any()):
        raise RuntimeError(f"{' '.join(command)} left {int((rows < 0).sum())} nodes without an embedding")
    shown = " ".join([os.path.relpath(command[0], REPO), *command[1:]]).replace(str(output), "X.npy")
    return {"method": name, "timed": "gnnscale embed command", "seconds": seconds, "load_before": load,
            **score(embeddings.vertex[rows], labels), "settings": {k: getattr(settings, k) for k in SETTING_NAMES},
            "threads": threads, "command": shown}


def pecanpy_row(peer_python, graph, labels, threads):
    row, col = graph.edge_index()
    keep = row < col
    with tempfile.TemporaryDirectory() as directory:
        edges, output = Path(directory) / "graph.edg", Path(directory) / "emb.txt"
        edges.write_text("".join(f"{a}\t{b}\n" for a, b in zip(row[keep].tolist(), col[keep].tolist())))
        command = [str(Path(peer_python).parent / "pecanpy"), "--input", str(edges), "--output", str(output),
                   "--mode", "SparseOTF", "--workers", str(threads), "--p", "1", "--q", "1", "--dimensions", "128",
                   "--num-walks", str(DEEPWALK["num_walks"]), "--walk-length", str(DEEPWALK["walk_length"]),
                   "--window-size", str(DEEPWALK["window"])]
        load = os.getloadavg()[0]
        _, seconds = timed(lambda: subprocess.run(command, check=True, capture_output=True))
        lines = output.read_text().splitlines()[1:]
    vertex = torch.zeros(graph.num_nodes, 128)
    for line in lines:
        parts = line.split()
        vertex[int(parts[0])] = torch.tensor([float(v) for v in parts[1:]])
    return {"method": "pecanpy node2vec p=q=1 (SparseOTF, gensim word2vec)", "timed": "pecanpy command",
            "seconds": seconds, "load_before": load, **score(vertex, labels),
            "settings": {"dim": 128, **DEEPWALK, "negatives": 5, "epochs": 1, "lr": 0.025, "subsample": 1e-3},
            "threads": threads}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", default=".peers/bin/python")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    blog = load_dataset("blogcatalog")
    graph, labels = blog.graph, blog.labels
    rows = []

    defaults = SkipGramSettings()
    variants = ((f"gnnscale DeepWalk, defaults (window {defaults.window})", defaults),
                ("gnnscale DeepWalk, pecanpy's walks (window 10)", SkipGramSettings(**DEEPWALK)))
    for name, settings in variants:
        rows.append(deepwalk_row(name, graph, labels, settings))
    for name, settings in variants:
        rows.append(command_row(name, graph, labels, settings, args.threads))
    deepwalk_rows = rows[:]
    headline = None
    if os.path.exists(args.peer_python):
        rows.append(pecanpy_row(args.peer_python, graph, labels, args.threads))
        for row in deepwalk_rows:
            row["speedup_vs_pecanpy"] = rows[-1]["seconds"] / row["seconds"]
        equal = deepwalk_rows[-1]  # the command at pecanpy's walks, window and dimension
        headline = {"speedup_vs_pecanpy": equal["speedup_vs_pecanpy"], "compares": "command wall time with "
                    "command wall time, window 10, 10 walks of 80 per node, dim 128, "
                    f"{args.threads} thread(s) each", "gnnscale_seconds": equal["seconds"],
                    "pecanpy_seconds": rows[-1]["seconds"],
                    **{f"{who}_{metric}": row[metric] for who, row in (("gnnscale", equal), ("pecanpy", rows[-1]))
                       for metric in ("micro_f1", "micro_f1_C1", "macro_f1", "macro_f1_C1")}}
    else:
        print(f"{args.peer_python} not found: pecanpy row skipped")

    vertex, seconds = best_of(lambda: fastrp(graph, 512, **FASTRP))
    rows.append({"method": "gnnscale FastRP dim 512, weights 0,0,1,6", "timed": "fastrp() in-process",
                 "seconds": seconds, **score(vertex, labels)})
    ours = rows[-1]
    if importlib.util.find_spec("fastrp") is not None:
        import fastrp as peer

        values = np.ones(graph.num_edges, dtype=np.float32)
        for name, extra in (("fastrp package dim 512, weights 0,0,1,6", {"weights": list(FASTRP["weights"])}),
                            ("fastrp package dim 512, its defaults (weights 0,1,1)", {})):
            result, seconds = best_of(lambda: peer.fit_csr(graph.indptr.numpy(), graph.indices.numpy(), values,
                                                         graph.num_nodes, 512, seed=0, undirected=False, **extra))
            rows.append({"method": name, "timed": "fit_csr() in-process", "seconds": seconds,
                         **score(torch.from_numpy(np.asarray(result)).float(), labels)})
        ours["speedup_vs_fastrp_package_same_weights"] = rows[-2]["seconds"] / ours["seconds"]

    print(f"{'method':<56} {'timed':<24} {'seconds':>8} {'micro CV':>9} {'micro C=1':>9} {'macro CV':>9} "
          f"{'macro C=1':>9}")
    for row in rows:
        print(f"{row['method']:<56} {row['timed']:<24} {row['seconds']:>8.2f} {row['micro_f1']:>9.4f} "
              f"{row['micro_f1_C1']:>9.4f} {row['macro_f1']:>9.4f} {row['macro_f1_C1']:>9.4f}")
    if headline:
        print(f"gnnscale embed vs pecanpy, equal settings, command wall times: "
              f"{headline['speedup_vs_pecanpy']:.1f}x")

    scaling = []
    if not args.skip_scaling:
        data = generate_synthetic(1_000_000, 10_000_000, 1, 2, seed=0)
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            model = SkipGram(data.graph, SkipGramSettings(num_walks=1, walk_length=40))
            model.fit(progress=False)
            scaling.append({"threads": threads, "pairs": model.pairs_trained,
                            "pairs_per_second": model.pairs_trained / model.train_seconds})
            print(f"1M nodes / 10M edges, {threads} thread(s): {scaling[-1]['pairs_per_second'] / 1e6:.2f}M pairs/s")
    path = write_result("embedding", {"dataset": "blogcatalog", "ratio": 0.1, "classifier": classifier_name("cv"),
                                      "classifier_C1": classifier_name(1.0), "pecanpy_walks": DEEPWALK,
                                      "headline": headline, "rows": rows,
                                      "synthetic_scaling": scaling})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
