"""Node classification on a dataset split over machines: rank r of the job (one per machine, as
many as parts) opens part r, samples over all parts and reads remote feature rows from their
owners; gradients go through DDP as in any data-parallel run.

    task = PartitionedNodeTask("/data/products-4", "sage", fanouts=[15, 10, 5], batch_size=256)
    result = Trainer(task, epochs=10).fit()         # under torchrun, one rank per part

Every epoch walks one order of all the training nodes (in the dataset's id order, shuffled by the
seed), ``batch_size * world_size`` at a time, as one process with that batch would; each rank
trains on the nodes of the global batch that it owns, its loss weighted by its share. Sampling
and feature requests run on a process group of their own, from one loader thread per rank that
prepares the next batches while the current one trains. Evaluation runs layer by layer over full
neighbourhoods: each rank computes its own nodes' rows of a layer and reads the other rows it
needs from their owners.
"""
import math
from typing import Dict, Iterator, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..distributed.features import DistributedFeatures, presampled_hot_ids
from ..distributed.launch import group_timeout
from ..distributed.partition import open_partition
from ..distributed.sampler import DistributedNeighborSampler
from ..loader.batches import NodeBatch
from ..loader.prefetch import prefetch
from ..nn import GNNEncoder
from ..nn.pyg_models import sampled_forward
from ..sampling.neighbor import mix_seed
from .config import OptimizerConfig, PartitionedNodeConfig, make_config
from .trainer import Task, model_summary

MODELS = ("sage", "gat")


class PartitionedNodeTask(Task):
    """Node classification over the parts in ``folder`` (written by
    :func:`~gnnscale.distributed.partition.partition_dataset` or ``gnnscale partition``), one
    rank per part; ``model``: 'sage' or 'gat'. See the module."""

    metric = "accuracy"
    unit = "seed nodes"
    default_optimizer = OptimizerConfig(lr=0.003)
    even_shares = False  # a rank's share of a global batch is the nodes it owns

    def __init__(self, folder, model: str = "sage", *, config: Optional[PartitionedNodeConfig] = None, **options):
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS} (their layers run layer-wise over the parts), got {model!r}")
        self.config = make_config(PartitionedNodeConfig, config, options, "PartitionedNodeTask")
        self.folder, self.kind = folder, model
        self.name = f"{model} on the parts of {folder}"

    def build(self, device: torch.device, seed: int) -> nn.Module:
        import torch.distributed as dist

        if device.type != "cpu":
            raise ValueError("partitioned training runs on the CPU for now: start it with --device cpu")
        config, ranks = self.config, self.ranks
        self.part = part = open_partition(self.folder, ranks.rank, verify=config.verify)
        if part.num_parts != ranks.world_size:
            raise ValueError(f"{self.folder} holds {part.num_parts} parts but the job has {ranks.world_size} ranks: "
                             f"start one rank per part")
        manifests = ranks.gather_objects(part.manifest_sha256)
        if len(set(manifests)) > 1:
            differing = [r for r, digest in enumerate(manifests) if digest != manifests[0]]
            raise ValueError(f"ranks {differing} opened a different partitions.json than rank 0: every machine "
                             f"needs the same partition")
        # Sampling and feature traffic from the loader thread, apart from the main thread's collectives.
        self.traffic = dist.new_group(backend="gloo", timeout=group_timeout()) if ranks.world_size > 1 else None
        self.seed, self.device = seed, device
        self.sampler = DistributedNeighborSampler(part, config.fanouts, group=self.traffic, seed=seed)
        cache_bytes = int(config.cache_gib * (1 << 30))
        hot = None
        if cache_bytes and config.cache_policy == "presampling":
            hot = presampled_hot_ids(self.sampler, part.splits["train"].to(torch.int64), batch_size=config.batch_size,
                                     seed=mix_seed(seed, 0xCAC4E))
            self.sampler.requests = self.sampler.served = 0  # count training's requests only
        self.features = DistributedFeatures(part, group=self.traffic, cache_bytes=cache_bytes, hot_ids=hot)
        train = torch.cat([torch.as_tensor(ids) for ids in ranks.gather_objects(part.splits["train"].numpy())])
        self.train = train[torch.argsort(part.node_ids[train])]  # the dataset's id order, whatever the parts
        self.num_classes = part.num_classes
        torch.manual_seed(seed)
        self.model = GNNEncoder(self.kind, part.features.size(1), config.hidden, part.num_classes,
                                len(config.fanouts), config.dropout).to(device)
        return self.model

    def settings(self) -> Dict:
        config = self.config
        return {"partition": str(self.folder), "parts": self.part.num_parts, "model": model_summary(self.model),
                "fanouts": list(config.fanouts), "batch_size": config.batch_size, "dropout": config.dropout,
                "cache_gib": config.cache_gib, "cache_policy": config.cache_policy}

    def num_batches(self) -> int:
        return math.ceil(self.train.numel() / (self.config.batch_size * self.ranks.world_size))

    def batches(self, epoch: int) -> Iterator[NodeBatch]:
        gen = torch.Generator().manual_seed(mix_seed(self.seed, 0x5EED, epoch))
        order = self.train[torch.randperm(self.train.numel(), generator=gen)]
        step = self.config.batch_size * self.ranks.world_size
        work = ((epoch, b, order[b * step:(b + 1) * step]) for b in range(self.num_batches()))
        return prefetch(work, self._prepare, num_threads=1, depth=2)  # one thread: collectives in batch order

    def _prepare(self, work) -> NodeBatch:
        epoch, b, batch = work
        mine = batch[(batch >= self.part.first) & (batch < self.part.stop)]
        subgraph = self.sampler.sample(mine, seed=mix_seed(self.seed, epoch, b))
        x = self.features.gather(subgraph.node)
        y = self.part.labels[mine - self.part.first].to(torch.int64)
        return NodeBatch(subgraph, x, y)

    def loss(self, batch: NodeBatch):
        if batch.batch_size == 0:  # a global batch with none of this rank's nodes: a zero gradient for DDP
            return sum(p.sum() for p in self.model.parameters()) * 0.0, 0
        out = sampled_forward(self.model, batch.x.float(), batch.edge_index, batch.num_sampled_nodes,
                              batch.num_sampled_edges)
        return F.cross_entropy(out[:batch.batch_size].float(), batch.y[:batch.batch_size]), batch.batch_size

    def feature_tiers(self) -> Dict[str, Dict[str, float]]:
        """What the remote-row cache served and what was fetched from other machines."""
        stats = self.features.stats() if hasattr(self, "features") else None
        if stats is None:
            return {}
        remote = stats["requests"] - stats["local"]
        return {"remote_cache": {"requests": remote, "hits": stats["cache_hits"], "hit_rate": stats["cache_hit_rate"]},
                "remote_fetch": {"rows": stats["fetched"], "bytes": stats["fetched_bytes"]}}

    def evaluate(self) -> Dict[str, float]:
        logits = self.inference()
        predicted = logits.argmax(dim=-1)
        labels = self.part.labels.to(torch.int64)
        counts = []
        for split in ("train", "valid", "test"):
            local = self.part.splits[split] - self.part.first
            counts += [float((predicted[local] == labels[local]).sum()), float(local.numel())]
        totals = self.ranks.sum(counts)
        return {split: totals[2 * i] / max(totals[2 * i + 1], 1.0) for i, split in enumerate(("train", "valid", "test"))}

    @torch.no_grad()
    def inference(self) -> torch.Tensor:
        """Logits of this rank's nodes from their full neighbourhoods, layer by layer."""
        part, model = self.part, self.model
        full = DistributedNeighborSampler(part, [-1], group=self.traffic)
        size = self.config.eval_batch_size
        steps = max(self.ranks.gather_objects(math.ceil(part.num_owned / size)))  # the most any rank needs
        table = self.features
        was_training = model.training
        model.eval()
        try:
            for i in range(model.num_layers):
                blocks = []
                for step in range(steps):  # every rank takes as many steps: each is a collective
                    start = min(part.first + step * size, part.stop)  # past this rank's nodes: an empty step
                    targets = torch.arange(start, min(start + size, part.stop))
                    sample = full.sample(targets, seed=0)
                    x = table.gather(sample.node).float()
                    if targets.numel():
                        blocks.append(model.layer(i, x, sample.edge_index)[:targets.numel()])
                rows = torch.cat(blocks)  # every part owns nodes
                if i < model.num_layers - 1:
                    table = DistributedFeatures(part, local=rows.contiguous(), group=self.traffic)
        finally:
            model.train(was_training)
        return rows
