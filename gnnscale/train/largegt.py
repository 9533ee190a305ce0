"""Node classification with the LargeGT graph transformer on mini-batches of nodes and their tokens."""
from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..loader import TokenLoader
from ..nn import LargeGT
from ..storage import TokenTable
from .config import LargeGTConfig, OptimizerConfig, make_config
from .node import check_node_dataset, split_accuracy
from .trainer import Task, dataset_summary


class LargeGTTask(Task):
    """Trains :class:`~gnnscale.nn.LargeGT`:

        task = LargeGTTask(dataset, num_tokens=100)
        result = Trainer(task, epochs=50).fit()   # result.metrics: train / valid / test accuracy

    The token table (``num_tokens`` token nodes per node, sampled within ``fanouts`` hops, each
    carrying ``hops + 1`` propagated features) is built once, or opened from ``cache_dir``, and
    evaluation reads it. Training draws fresh token nodes for its batches every ``resample_every``
    epochs (default: every epoch, as a neighbour sampler draws afresh for every batch; on the
    products-shaped benchmark graph fixed token nodes let the transformer memorise its training
    nodes). ``eval_rounds=K`` scores every node with K draws of its token nodes (the stored one and
    K-1 fresh ones) and averages the class probabilities: one draw of 100 is a noisy estimate of a
    node's neighbourhood, where GraphSAGE's layer-wise inference reads every neighbour.
    ``positional`` (``[num_nodes, P]``) feeds the codebook module a positional encoding.
    Options: :class:`LargeGTConfig`.
    """

    metric = "accuracy"
    unit = "seed nodes"
    default_optimizer = OptimizerConfig(name="adamw", lr=1e-3)

    def __init__(self, dataset: NodeDataset, *, config: Optional[LargeGTConfig] = None,
                 positional: Optional[torch.Tensor] = None, **options):
        check_node_dataset(dataset)
        if positional is not None and (positional.dim() != 2 or positional.size(0) != dataset.graph.num_nodes):
            raise ValueError(f"positional must be [num_nodes={dataset.graph.num_nodes}, P], got {tuple(positional.shape)}")
        self.config = make_config(LargeGTConfig, config, options, "LargeGTTask")
        self.dataset, self.positional_input = dataset, positional
        self.name = f"largegt on {dataset.name}"

    def build(self, device: torch.device, seed: int) -> nn.Module:
        config, dataset = self.config, self.dataset
        self.device = device
        # Ranks sharing a cache folder: rank 0 writes the table, the others then open it.
        writes_first = config.cache_dir is not None and self.ranks.world_size > 1
        if writes_first and not self.ranks.is_main:
            self.ranks.barrier()
        self.table = TokenTable.build(dataset.graph, dataset.features, num_tokens=config.num_tokens, hops=config.hops,
                                      fanouts=config.fanouts, seed=seed, cache_dir=config.cache_dir)
        if writes_first and self.ranks.is_main:
            self.ranks.barrier()
        positional = self.positional_input
        self.positional = None if positional is None else positional.float().to(device)
        self.model = LargeGT(
            dataset.num_features, config.hidden, dataset.num_classes, hops=config.hops, heads=config.heads,
            layers=config.layers, dropout=config.dropout, attention_dropout=config.attention_dropout,
            use_global=config.use_global, num_centroids=config.num_centroids,
            positional_dim=0 if positional is None else positional.size(1)).to(device)
        self.loader = TokenLoader(self.table, dataset.splits["train"], config.batch_size, labels=dataset.labels,
                                  seed=seed, num_threads=config.num_threads, device=device,
                                  **self.ranks.loader_share())
        return self.model

    def settings(self) -> Dict:
        config = self.config
        return {"dataset": dataset_summary(self.dataset), "num_tokens": config.num_tokens, "hops": config.hops,
                "fanouts": list(config.fanouts), "heads": config.heads, "dropout": config.dropout,
                "attention_dropout": config.attention_dropout, "batch_size": config.batch_size,
                "resample_every": config.resample_every, "eval_rounds": config.eval_rounds}

    def _sampling_round(self, epoch: int) -> int:
        every = self.config.resample_every
        return 0 if every is None else (epoch - 1) // every

    def batches(self, epoch: int):
        return self.loader.iterate(epoch, round=self._sampling_round(epoch))

    def num_batches(self) -> int:
        return len(self.loader)

    def _forward(self, batch) -> torch.Tensor:
        positional = None if self.positional is None else self.positional[batch.nodes]
        return self.model(batch.tokens.float(), batch.mask, positional)

    def loss(self, batch):
        return F.cross_entropy(self._forward(batch).float(), batch.y), batch.batch_size

    @torch.no_grad()
    def inference(self) -> torch.Tensor:
        """Log class probabilities of every node, averaged over ``eval_rounds`` token draws; ranks
        compute a span of the nodes each and gather them all."""
        self.model.eval()
        num_nodes = self.dataset.graph.num_nodes
        ranks = self.ranks.sharing(num_nodes)
        loader = TokenLoader(self.table, torch.arange(*ranks.span(num_nodes)), self.config.eval_batch_size,
                             shuffle=False, device=self.device)
        probabilities = 0.0
        for draw in range(self.config.eval_rounds):
            batches = loader.iterate(1, round=draw)
            probabilities = probabilities + torch.cat([self._forward(batch).float().softmax(1).cpu() for batch in batches])
        return ranks.gather((probabilities / self.config.eval_rounds).log(), num_nodes)

    def evaluate(self) -> Dict[str, float]:
        return split_accuracy(self.inference(), self.dataset.labels, self.dataset.splits, self.dataset.name)
