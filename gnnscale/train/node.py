"""Node classification: sampled neighbourhoods for training, full neighbourhoods of every node for
evaluation (layer-wise where the model allows it, as PyG's and DGL's examples evaluate)."""
from typing import Dict, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..datasets.ogb_package import import_ogb
from ..loader import NodeLoader
from ..nn import GNNEncoder
from ..nn.pyg_models import full_neighbourhood_outputs, num_layers_of, sampled_forward
from ..storage import DiskTensor, FeatureCache, UnifiedTensor
from .config import NodeConfig, OptimizerConfig, make_config
from .trainer import Task, dataset_summary, model_summary


GIB = 2 ** 30


def open_features(dataset, host_cache_gib: Optional[float]) -> Union[UnifiedTensor, DiskTensor]:
    """The table training and evaluation read a dataset's features from: the one in memory
    (``host_cache_gib`` None), or its feature file through the disk tier with a host row cache of
    ``host_cache_gib`` GiB."""
    if host_cache_gib is None:
        return UnifiedTensor(dataset.features)
    if dataset.feature_file is None:
        raise ValueError(f"{dataset.name}: host_cache_gib reads the features from their file on disk, but this dataset "
                         f"has no feature file; write it to a folder with `gnnscale prepare` or save_dataset(dataset, "
                         f"DIR) and open it with load_dataset(DIR)")
    table = DiskTensor(dataset.feature_file, cache_bytes=int(host_cache_gib * GIB))
    if table.shape != dataset.features.shape or table.dtype != dataset.features.dtype:
        raise ValueError(f"{dataset.name}: the feature file {dataset.feature_file} holds {table.dtype} of shape "
                         f"{tuple(table.shape)}, but the dataset's features are {dataset.features.dtype} of shape "
                         f"{tuple(dataset.features.shape)}")
    return table


def inference_budget_bytes(config) -> int:
    """The bytes of one layer's outputs layer-wise evaluation may keep in memory."""
    return max(1, int(config.inference_memory_gib * GIB))


def feature_tiers(features) -> Dict[str, Dict[str, float]]:
    """What each tier of a feature source has served since it was opened: the device cache
    (requests, hits, hit rate) when ``features`` is a :class:`FeatureCache`; the host cache (the
    same) and the disk (bytes and rows read, read requests) of a :class:`DiskTensor`; the rows
    of a table in memory are no tier's and are not counted."""
    tiers: Dict[str, Dict[str, float]] = {}
    if isinstance(features, FeatureCache):
        tiers["device_cache"] = {"requests": features.requests, "hits": features.hits, "hit_rate": features.hit_rate}
        features = features.source
    if isinstance(features, DiskTensor):
        stats = features.stats()
        tiers["host_cache"] = {"requests": stats["cache_hits"] + stats["cache_misses"], "hits": stats["cache_hits"],
                               "hit_rate": stats["hit_rate"]}
        tiers["disk"] = {"bytes_read": stats["bytes_read"], "rows_read": stats["rows_from_disk"],
                         "reads": stats["reads"]}
    return tiers


def check_node_dataset(dataset: NodeDataset) -> None:
    """Node classification needs features, single-label classes and three non-empty splits."""
    if not isinstance(dataset, NodeDataset):
        raise ValueError(f"node classification needs a NodeDataset, got {type(dataset).__name__}")
    if dataset.features is None or dataset.labels is None or dataset.multilabel:
        raise ValueError(f"{dataset.name}: node classification needs features and single-label classes")
    for split in ("train", "valid", "test"):
        if split not in dataset.splits or dataset.splits[split].numel() == 0:
            raise ValueError(f"{dataset.name}: the {split!r} split is empty")
        _check_split_labels(dataset, split)


def _check_split_labels(dataset: NodeDataset, split: str) -> None:
    """Every node a split scores has a class in [0, num_classes): a wrong count would otherwise
    surface as an index error deep inside the loss."""
    ids = dataset.splits[split]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= dataset.labels.size(0)):
        raise ValueError(f"{dataset.name}: the {split!r} split names nodes outside the {dataset.labels.size(0)} "
                         f"labelled ones")
    labels = dataset.labels[ids]
    if labels.is_floating_point():
        if torch.isnan(labels).any() or (labels != labels.round()).any():
            raise ValueError(f"{dataset.name}: nodes of the {split!r} split have no class label (NaN or fractional)")
        labels = labels.long()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= dataset.num_classes:
        raise ValueError(f"{dataset.name}: the {split!r} split has labels in [{low}, {high}], outside "
                         f"[0, num_classes={dataset.num_classes}); set num_classes to the number of classes")


@torch.no_grad()
def split_accuracy(logits: torch.Tensor, labels: torch.Tensor, splits: Dict[str, torch.Tensor],
                   dataset_name: str = "") -> Dict[str, float]:
    """Accuracy of the arg-max prediction on each split's nodes; OGB datasets are scored by ogb's
    own ``Evaluator`` so figures compare with the leaderboards."""
    predicted = logits.argmax(dim=-1)
    if dataset_name.startswith("ogbn-"):
        evaluator = import_ogb("nodeproppred").Evaluator(dataset_name)
        return {name: float(evaluator.eval({"y_true": labels[index].view(-1, 1).cpu(),
                                            "y_pred": predicted[index].view(-1, 1).cpu()})["acc"])
                for name, index in splits.items()}
    return {name: float((predicted[index] == labels[index]).double().mean()) for name, index in splits.items()}


class NodeTask(Task):
    """Node classification on sampled mini-batches:

        task = NodeTask(dataset, "sage", fanouts=[15, 10, 5], batch_size=1024)
        result = Trainer(task, epochs=20).fit()   # result.metrics: train / valid / test accuracy

    ``model`` is a name of gnnscale's encoders ('sage', 'gcn', 'gat'), built with the config's
    ``hidden`` and ``dropout``, or any ``torch.nn.Module`` with PyG's ``forward(x, edge_index)``
    (``torch_geometric.nn.GraphSAGE``, ``GAT``, ...; trimmed per layer when it takes
    ``num_sampled_nodes_per_hop``). Options: :class:`NodeConfig`; with ``host_cache_gib`` the
    features are read from ``dataset.feature_file`` through the disk tier, and
    :meth:`feature_tiers` tells what each tier served.

    On ``device="cuda"`` the features stay in host memory, pinned in place, and the GPU reads each
    batch's rows directly (zero-copy); ``sample_on_device=True`` samples on the GPU as well.
    """

    metric = "accuracy"
    unit = "seed nodes"
    default_optimizer = OptimizerConfig(lr=0.003)

    def __init__(self, dataset: NodeDataset, model: Union[str, nn.Module] = "sage", *,
                 config: Optional[NodeConfig] = None, **options):
        check_node_dataset(dataset)
        self.config = make_config(NodeConfig, config, options, "NodeTask")
        self.dataset = dataset
        self.model_spec = model
        self.name = f"{getattr(model, 'kind', None) or _model_name(model)} on {dataset.name}"

    def build(self, device: torch.device, seed: int) -> nn.Module:
        config, dataset = self.config, self.dataset
        self.seed = seed
        model = self.model_spec
        if isinstance(model, str):
            model = GNNEncoder(model, dataset.num_features, config.hidden, dataset.num_classes, len(config.fanouts),
                               config.dropout)
        check_depth(model, len(config.fanouts))
        self.device = device
        self.model = model.to(device)
        self.features = open_features(dataset, config.host_cache_gib)
        if device.type == "cuda" and isinstance(self.features, UnifiedTensor):
            self.features.pin_()
        self.loader = NodeLoader(dataset.graph, self.features, dataset.splits["train"], list(config.fanouts),
                                 config.batch_size, labels=dataset.labels, seed=seed,
                                 num_threads=config.num_threads, device=device,
                                 sample_on_device=config.sample_on_device, **self.ranks.loader_share())
        return self.model

    def settings(self) -> Dict:
        config = self.config
        return {"dataset": dataset_summary(self.dataset), "model": model_summary(self.model),
                "fanouts": list(config.fanouts), "batch_size": config.batch_size,
                "dropout": getattr(self.model, "dropout", config.dropout)}

    def batches(self, epoch: int):
        return self.loader.iterate(epoch)

    def num_batches(self) -> int:
        return len(self.loader)

    def loss(self, batch):
        out = sampled_forward(self.model, batch.x.float(), batch.edge_index, batch.num_sampled_nodes,
                              batch.num_sampled_edges)
        return F.cross_entropy(out[:batch.batch_size].float(), batch.y[:batch.batch_size]), batch.batch_size

    def inference(self) -> torch.Tensor:
        """Logits of every node, from its full neighbourhood."""
        return full_neighbourhood_outputs(self.model, self.dataset.graph, self.features, self.config.eval_batch_size,
                                          self.device, self.ranks,
                                          layer_memory_bytes=inference_budget_bytes(self.config))

    def feature_tiers(self) -> Dict[str, Dict[str, float]]:
        """What each tier of the features served so far, training and evaluation together."""
        return feature_tiers(getattr(self, "features", None))

    def evaluate(self) -> Dict[str, float]:
        return split_accuracy(self.inference(), self.dataset.labels, self.dataset.splits, self.dataset.name)


def check_depth(model: nn.Module, num_fanouts: int) -> None:
    depth = num_layers_of(model)
    if depth is not None and depth != num_fanouts:
        raise ValueError(f"the model has {depth} layers but fanouts has {num_fanouts} entries: give one fanout "
                         f"per layer")


def _model_name(model) -> str:
    return model if isinstance(model, str) else type(model).__name__

