"""Training loops: full-graph and mini-batch node classification, checkpoints, metrics."""
from .full_graph import FullGraphResult, train_full_graph
from .loop import EpochTrainer, TrainResult
from .node_trainer import NodeTrainer

__all__ = ["EpochTrainer", "FullGraphResult", "NodeTrainer", "TrainResult", "train_full_graph"]
