"""Link prediction: seed edges with sampled negatives, neighbourhoods of both endpoints (or the
whole graph at every step), an encoder and an edge decoder; evaluation ranks each split's positive
edges against its negative edges (Hits@K), with ogb's Evaluator for OGB datasets."""
from typing import Dict, List, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from ..datasets.base import LinkDataset
from ..datasets.ogb_package import import_ogb
from ..loader import EdgePairLoader, LinkLoader
from ..nn import GNNEncoder, LinkPredictor
from ..nn.pyg_models import full_neighbourhood_outputs, sampled_forward
from ..storage import UnifiedTensor
from .config import LinkConfig, OptimizerConfig, make_config
from .full_graph import full_graph_adjacency
from .node import check_depth, feature_tiers, inference_budget_bytes, open_features
from .trainer import Task, dataset_summary, model_summary


def hits_at_k(positive: torch.Tensor, negative: torch.Tensor, k: int) -> float:
    """Share of positive scores above the k-th highest negative score (OGB's Hits@K)."""
    if negative.numel() < k:
        return 1.0
    threshold = torch.topk(negative, k).values[-1]
    return float((positive > threshold).float().mean())


def check_link_dataset(dataset: LinkDataset) -> str:
    """The dataset's Hits@K metric ('hits@50' when it names none), after checking its splits."""
    if not isinstance(dataset, LinkDataset):
        raise ValueError(f"link prediction needs a LinkDataset, got {type(dataset).__name__}")
    for split in ("train", "valid", "test"):
        if split not in dataset.edge_split:
            raise ValueError(f"{dataset.name}: edge_split has no {split!r} part")
    for split in ("valid", "test"):
        if "edge_neg" not in dataset.edge_split[split]:
            raise ValueError(f"{dataset.name}: the {split!r} split has no negative edges to rank against")
    metric = dataset.metric or "hits@50"
    if not metric.startswith("hits@"):
        raise ValueError(f"{dataset.name}: metric {metric!r} is not a Hits@K metric")
    return metric


def out_channels_of(model: nn.Module) -> int:
    """The width of an encoder's output: PyG's BasicGNN and gnnscale's encoders both say it."""
    width = getattr(model, "out_channels", None)
    if width is None and hasattr(model, "convs"):
        width = model.convs[-1].out_channels
    if not isinstance(width, int):
        raise ValueError(f"cannot tell the output width of {type(model).__name__}: give it an out_channels attribute")
    return width


class LinkTask(Task):
    """Trains an encoder and a :class:`LinkPredictor` on a :class:`LinkDataset`:

        task = LinkTask(dataset, "sage", fanouts=[10, 10], batch_size=16384)
        result = Trainer(task, epochs=20).fit()   # result.metrics: train / valid / test Hits@K

    Nodes without features get a learned embedding of size ``hidden``, trained with the rest.
    The metric is the dataset's (``hits@K``; Hits@50 when it names none). ``model``: a name of
    gnnscale's encoders or any ``torch.nn.Module`` with PyG's ``forward(x, edge_index)``. With
    ``grad_clip`` (an optimiser option) each module (embedding, encoder, decoder) is clipped on its
    own, as OGB's examples clip. Options: :class:`LinkConfig` (``host_cache_gib``: as
    :class:`NodeTask`'s).
    """

    unit = "edges"
    default_optimizer = OptimizerConfig(lr=0.005)

    def __init__(self, dataset: LinkDataset, model: Union[str, nn.Module] = "sage", *,
                 config: Optional[LinkConfig] = None, **options):
        self.metric = check_link_dataset(dataset)
        self.k = int(self.metric.split("@")[1])
        self.config = make_config(LinkConfig, config, options, "LinkTask")
        self.dataset, self.model_spec = dataset, model
        self.name = f"{getattr(model, 'kind', None) or (model if isinstance(model, str) else type(model).__name__)} " \
                    f"link prediction on {dataset.name}"

    def build(self, device: torch.device, seed: int) -> nn.Module:
        config, dataset, graph = self.config, self.dataset, self.dataset.graph
        self.device = device
        num_layers = config.num_layers or len(config.fanouts)
        self.modules = nn.ModuleDict()
        if dataset.features is None:
            self.modules["embedding"] = nn.Embedding(graph.num_nodes, config.hidden)
            # Glorot-scaled, as OGB's reference examples start it: N(0, 1) rows are ~16x larger
            # at width 256 and saturate the decoder's first updates.
            nn.init.xavier_uniform_(self.modules["embedding"].weight)
            in_dim, self.features = config.hidden, None
        else:
            self.features = open_features(dataset, config.host_cache_gib)
            if device.type == "cuda" and isinstance(self.features, UnifiedTensor):  # read in place by the GPU
                self.features.pin_()
            in_dim = dataset.num_features
        model = self.model_spec
        if isinstance(model, str):
            # Learned embeddings are not dropped on the way in, as in OGB's examples.
            model = GNNEncoder(model, in_dim, config.hidden, config.hidden, num_layers, config.dropout,
                               input_dropout=dataset.features is not None)
        check_depth(model, num_layers)
        self.modules["encoder"] = model
        self.modules["predictor"] = LinkPredictor(out_channels_of(model), config.hidden, config.predictor_layers,
                                                  dropout=config.dropout)
        self.modules.to(device)
        train_edges = dataset.edge_split["train"]["edge"].to(torch.int64).t()
        # Train Hits@K as OGB's examples report it: as many train edges as validation edges,
        # ranked against the validation negatives.
        count = min(train_edges.size(1), dataset.edge_split["valid"]["edge"].size(0))
        chosen = torch.randperm(train_edges.size(1), generator=torch.Generator().manual_seed(seed))[:count]
        self.train_eval_edges = train_edges[:, chosen].t()
        sampling = dict(negative=config.negative, num_negatives=config.num_negatives, corrupt=config.corrupt,
                        seed=seed, num_threads=config.num_threads, device=device, **self.ranks.loader_share())
        if config.full_graph:
            # Every node's inputs at every step: features are moved to the device once.
            self.all_features = None if dataset.features is None else dataset.features.to(device).float()
            self.adjacency = full_graph_adjacency(graph, getattr(model, "kind", None), device)
            self.loader = EdgePairLoader(graph, train_edges, config.batch_size, **sampling)
        else:
            self.adjacency = None
            self.loader = LinkLoader(graph, self.features, train_edges, list(config.fanouts), config.batch_size,
                                     **sampling)
        return self.modules

    def settings(self) -> Dict:
        config = self.config
        return {"dataset": dataset_summary(self.dataset), "model": model_summary(self.modules["encoder"]),
                "full_graph": config.full_graph, "fanouts": None if config.full_graph else list(config.fanouts),
                "batch_size": config.batch_size, "dropout": config.dropout, "num_negatives": config.num_negatives,
                "negative": config.negative, "corrupt": config.corrupt}

    def parameter_groups(self, modules: nn.Module) -> List:
        return [module.parameters() for module in modules.values()]

    def batches(self, epoch: int):
        return self.loader.iterate(epoch)

    def num_batches(self) -> int:
        return len(self.loader)

    def _inputs(self, node: torch.Tensor, x: Optional[torch.Tensor]) -> torch.Tensor:
        if "embedding" in self.modules:
            return self.modules["embedding"](node.to(self.device))
        return x.float()

    def _encode_batch(self, batch) -> torch.Tensor:
        """Encoder output for the batch's nodes, rows indexed as ``batch.edge_label_index``."""
        encoder = self.modules["encoder"]
        if self.adjacency is not None:
            inputs = self.modules["embedding"].weight if "embedding" in self.modules else self.all_features
            return encoder(inputs, self.adjacency)
        return sampled_forward(encoder, self._inputs(batch.n_id, batch.x), batch.edge_index, batch.num_sampled_nodes,
                               batch.num_sampled_edges)

    def loss(self, batch):
        source, target = batch.edge_label_index
        h = self._encode_batch(batch)
        # index_select, not h[source]: the backward of advanced indexing accumulates in a
        # thread-dependent order on the CPU, which would make runs unrepeatable.
        scores = self.modules["predictor"](h.index_select(0, source), h.index_select(0, target))
        loss = F.binary_cross_entropy_with_logits(scores.float(), batch.edge_label)
        # Weighted by positives, the items trained on (each with its negatives).
        return loss, int(batch.edge_label.sum())

    def embeddings(self) -> torch.Tensor:
        """Encoder output of every node, from full neighbourhoods."""
        self.modules.eval()
        features = self.modules["embedding"].weight.detach() if "embedding" in self.modules else self.features
        return full_neighbourhood_outputs(self.modules["encoder"], self.dataset.graph, features,
                                          self.config.eval_batch_size, self.device, self.ranks,
                                          layer_memory_bytes=inference_budget_bytes(self.config))

    def feature_tiers(self) -> Dict[str, Dict[str, float]]:
        """What each tier of the features served so far (nothing for learned embeddings)."""
        return feature_tiers(getattr(self, "features", None))

    def _scores(self, h: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """Decoder scores of ``edges`` ``[M, 2]``; ranks score a span each and gather them all."""
        predictor = self.modules["predictor"].eval()
        ranks = self.ranks.sharing(edges.size(0))
        local = ranks.share(edges.to(torch.int64))
        out = [predictor(h[part[:, 0]].to(self.device), h[part[:, 1]].to(self.device)).cpu()
               for part in local.split(self.config.eval_batch_size)]
        return ranks.gather(torch.cat(out) if out else torch.empty(0), edges.size(0))

    def evaluate(self) -> Dict[str, float]:
        h = self.embeddings()
        split = self.dataset.edge_split
        negatives = {name: self._scores(h, split[name]["edge_neg"]) for name in ("valid", "test")}
        return {"train": self._hits(self._scores(h, self.train_eval_edges), negatives["valid"]),
                "valid": self._hits(self._scores(h, split["valid"]["edge"]), negatives["valid"]),
                "test": self._hits(self._scores(h, split["test"]["edge"]), negatives["test"])}

    def _hits(self, positive: torch.Tensor, negative: torch.Tensor) -> float:
        if self.dataset.name.startswith("ogbl-"):
            evaluator = import_ogb("linkproppred").Evaluator(self.dataset.name)
            return float(evaluator.eval({"y_pred_pos": positive, "y_pred_neg": negative})[self.metric])
        return hits_at_k(positive, negative, self.k)

