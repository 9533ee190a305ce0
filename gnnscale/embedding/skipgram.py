"""Skip-gram node embedding (DeepWalk, node2vec, LINE) trained from pools of positive pairs.

A producer thread fills the next pool (C++ random walks, then every pair within ``window`` steps,
grouped by centre node and shuffled group-wise; or, for LINE, weighted edge draws) while the C++
trainer consumes the current one with lock-free multi-threaded SGD and negatives from a
degree^0.75 alias table, one draw per group. Two pools are alive at once (plus a shuffled copy
while one is built); ``memory_budget`` bounds them. Pools depend only on (seed, pool number), so a run can stop
after any pool and resume from a checkpoint.
"""
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import ops
from ..graph import Graph
from ..sampling.walks import EdgeDrawer, RandomWalker, walk_starts
from ..checkpoint import load_checkpoint, save_checkpoint
from .io import Embeddings

METHODS = ("deepwalk", "node2vec", "line")
PAIR_BYTES = 16  # an int64 (source, context) pair
POOL_COPIES = 3  # the pool in training, the next one, and its shuffled copy while it is built
MIN_LR_FRACTION = 1e-4


@dataclass
class SkipGramSettings:
    method: str = "deepwalk"
    dim: int = 128
    walk_length: int = 80
    num_walks: int = 10    # walks per node per epoch (DeepWalk, node2vec)
    window: int = 5        # pairs within this many steps of each other along a walk
    shrink_window: bool = True
    # word2vec's frequent-token threshold (0: keep every visit). None: 1 / num_nodes, the mean visit
    # frequency, so only nodes visited well above the average are thinned, on any size of graph
    # (a fixed threshold such as word2vec's 1e-3 thins nothing on a million nodes and most of every
    # walk on a few hundred). On BlogCatalog (10,312 nodes) it is about 1e-4.
    subsample: Optional[float] = None
    p: float = 1.0         # node2vec return parameter
    q: float = 1.0         # node2vec in-out parameter
    line_order: int = 2    # LINE: 1 (vertex-vertex) or 2 (vertex-context)
    negatives: int = 3
    share_negatives: int = 1  # consecutive groups (pairs around one centre) sharing one draw of negatives
    epochs: int = 1        # DeepWalk/node2vec: rounds of num_walks walks; LINE: num_edges samples each
    lr: float = 0.05       # falls linearly to lr * 1e-4 by the end
    weighted: bool = False
    memory_budget: int = 1 << 30  # bytes for the pools of pairs (see POOL_COPIES)
    seed: int = 0

    def check(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("dim", "walk_length", "num_walks", "window", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.walk_length < 2 and self.method != "line":
            raise ValueError("walk_length must be at least 2 to form pairs")
        if self.line_order not in (1, 2):
            raise ValueError(f"line_order must be 1 or 2, got {self.line_order!r}")
        if not (self.p > 0 and self.q > 0):
            raise ValueError(f"p and q must be positive, got p={self.p}, q={self.q}")
        if self.lr <= 0 or self.negatives < 0 or self.share_negatives < 1:
            raise ValueError("lr must be positive, negatives non-negative and share_negatives at least 1")
        if self.subsample is not None and (isinstance(self.subsample, bool) or not self.subsample >= 0):
            raise ValueError(f"subsample must be a non-negative number or None, got {self.subsample!r}")
        if self.memory_budget < POOL_COPIES * PAIR_BYTES * 1024:
            raise ValueError(f"memory_budget of {self.memory_budget} bytes is too small for the pools of pairs")


def _pool_seed(seed: int, pool: int, purpose: int) -> int:
    return (seed * 1_000_003 + pool * 7919 + purpose) & 0x7FFFFFFFFFFFFFFF


class SkipGram:
    """Trains vertex (and context) embeddings of ``graph``.

        model = SkipGram(graph, SkipGramSettings(method="deepwalk", dim=128))
        embeddings = model.fit()              # Embeddings(vertex, context, names)
    """

    def __init__(self, graph: Graph, settings: SkipGramSettings = SkipGramSettings(),
                 init: Optional[Embeddings] = None):
        settings.check()
        if graph.num_nodes == 0 or graph.num_edges == 0:
            raise ValueError("the graph is empty: node embedding needs edges")
        self.graph, self.settings = graph, settings
        gen = torch.Generator().manual_seed(settings.seed)
        self.vertex = (torch.rand(graph.num_nodes, settings.dim, generator=gen) - 0.5) / settings.dim
        first_order = settings.method == "line" and settings.line_order == 1
        self.context = self.vertex if first_order else torch.zeros(graph.num_nodes, settings.dim)
        if init is not None:
            self._warm_start(init)
        # Negatives in proportion to degree^0.75 (word2vec's unigram^0.75); isolated nodes never.
        self.negative_table = ops.alias_table(graph.degree().to(torch.float64).pow(0.75))
        self._plan_pools()

    def _warm_start(self, init: Embeddings) -> None:
        if init.vertex.size(1) != self.settings.dim:
            raise ValueError(f"--init embeddings have dimension {init.vertex.size(1)}, not {self.settings.dim}")
        names = self.graph.node_names if self.graph.node_names is not None else np.arange(self.graph.num_nodes)
        rows = torch.from_numpy(init.rows_for(np.asarray(names)))
        found = rows >= 0
        if not bool(found.any()):
            raise ValueError("--init embeddings share no node ids with the graph")
        self.vertex[found] = init.vertex[rows[found]].float()
        if init.context is not None and self.context is not self.vertex:
            self.context[found] = init.context[rows[found]].float()

    def _plan_pools(self) -> None:
        s = self.settings
        pool_pairs = max(1024, s.memory_budget // (POOL_COPIES * PAIR_BYTES))
        if s.method == "line":
            self.units = s.epochs * self.graph.num_edges  # edge samples
            self.unit_name = "edges"
            self.per_pool = min(self.units, pool_pairs)
        else:
            self.units = s.epochs * s.num_walks * self.graph.num_nodes  # walks
            self.unit_name = "walks"
            pairs_per_walk = 2 * s.window * s.walk_length
            self.per_pool = max(1, min(self.units, pool_pairs // pairs_per_walk))
        self.num_pools = -(-self.units // self.per_pool)

    def _pools(self, first: int) -> Iterator[Tuple[int, torch.Tensor]]:
        s = self.settings
        if s.method == "line":
            drawer = EdgeDrawer(self.graph)
            for pool in range(first, self.num_pools):
                count = min(self.per_pool, self.units - pool * self.per_pool)
                yield pool, drawer.draw(count, seed=_pool_seed(s.seed, pool, 1))
            return
        p, q = (s.p, s.q) if s.method == "node2vec" else (1.0, 1.0)
        walker = RandomWalker(self.graph, s.walk_length, p=p, q=q, weighted=s.weighted)
        keep = self.keep_probability() if s.subsample != 0 else None
        # Each round of walks starts once from every node, in an order of its own.
        starts = walk_starts(self.graph.num_nodes, s.epochs * s.num_walks, seed=s.seed)
        for pool in range(first, self.num_pools):
            begin = pool * self.per_pool
            walks = walker.walk(starts[begin:begin + self.per_pool], seed=_pool_seed(s.seed, pool, 3))
            yield pool, ops.walk_pairs(walks, s.window, shrink_window=s.shrink_window, keep_prob=keep,
                                       seed=_pool_seed(s.seed, pool, 4))

    def keep_probability(self) -> torch.Tensor:
        """word2vec's subsampling rule with a node's share of walk visits taken as its share of
        edge endpoints (the walk's stationary distribution on an undirected graph)."""
        frequency = self.graph.degree().to(torch.float64) / max(1, self.graph.num_edges)
        t = self.settings.subsample if self.settings.subsample is not None else 1.0 / self.graph.num_nodes
        return ((frequency / t).sqrt() + 1).mul(t / frequency.clamp_min(1e-300)).clamp(max=1.0)

    def _produce(self, first: int, out: "queue.Queue", stop: threading.Event) -> None:
        try:
            for item in self._pools(first):
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            out.put(error)
            return
        out.put(None)

    def _lr(self, position: int) -> float:
        return self.settings.lr * max(MIN_LR_FRACTION, 1.0 - position / self.units)

    def fit(self, *, progress: bool = True, checkpoint_dir: Optional[Union[str, Path]] = None,
            resume: bool = False, checkpoint_every: float = 60.0) -> Embeddings:
        """Trains over every pool; with ``checkpoint_dir`` the state is saved atomically at most every
        ``checkpoint_every`` seconds and at the end, and ``resume=True`` continues from it."""
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        checkpoint = Path(checkpoint_dir) / "embedding.pt" if checkpoint_dir else None
        first = self._restore(checkpoint) if resume else 0
        pools: "queue.Queue" = queue.Queue(maxsize=1)
        stop = threading.Event()
        producer = threading.Thread(target=self._produce, args=(first, pools, stop), daemon=True)
        producer.start()
        bar = tqdm(total=self.units, initial=min(self.units, first * self.per_pool), unit=self.unit_name,
                   desc=f"{self.settings.method} dim {self.settings.dim}", disable=not progress)
        self.pairs_trained, self.train_seconds, last_saved = 0, 0.0, time.monotonic()
        try:
            while True:
                item = pools.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                pool, pairs = item
                begin = pool * self.per_pool
                end = min(self.units, begin + self.per_pool)
                start = time.perf_counter()
                loss = ops.sgns_train(self.vertex, self.context, pairs, self.negative_table,
                                      negatives=self.settings.negatives, lr=(self._lr(begin), self._lr(end)),
                                      share_negatives=self.settings.share_negatives,
                                      seed=_pool_seed(self.settings.seed, pool, 5))
                self.train_seconds += time.perf_counter() - start
                self.pairs_trained += pairs.size(0)
                bar.update(end - begin)
                bar.set_postfix(loss=f"{loss:.3f}", pairs_per_s=f"{self.pairs_trained / self.train_seconds:.3g}")
                if checkpoint is not None and (pool + 1 == self.num_pools
                                               or time.monotonic() - last_saved >= checkpoint_every):
                    self._save(checkpoint, pool + 1)
                    last_saved = time.monotonic()
        finally:
            stop.set()
            bar.close()
        return self.embeddings()

    def embeddings(self) -> Embeddings:
        context = None if self.context is self.vertex else self.context
        return Embeddings(vertex=self.vertex, context=context, names=self.graph.node_names)

    def _save(self, path: Path, next_pool: int) -> None:
        save_checkpoint(path, {"vertex": self.vertex, "context": self.context, "next_pool": next_pool,
                               "settings": asdict(self.settings), "num_nodes": self.graph.num_nodes})

    def _restore(self, path: Path) -> int:
        if not path.is_file():
            return 0
        state = load_checkpoint(path)
        if state["settings"] != asdict(self.settings) or state["num_nodes"] != self.graph.num_nodes:
            raise ValueError(f"checkpoint {path} was written for other settings or another graph; "
                             "remove it or use the same settings")
        self.vertex.copy_(state["vertex"])
        if self.context is not self.vertex:
            self.context.copy_(state["context"])
        return int(state["next_pool"])
