"""Training loops: node classification (full-graph and mini-batch), link prediction, checkpoints,
metrics."""
from .full_graph import FullGraphResult, train_full_graph
from .link_trainer import LinkTrainer, hits_at_k
from .loop import EpochTrainer, TrainResult
from .node_trainer import NodeTrainer

__all__ = ["EpochTrainer", "FullGraphResult", "LinkTrainer", "NodeTrainer", "TrainResult", "hits_at_k",
           "train_full_graph"]
