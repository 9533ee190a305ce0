"""Training loops: full-graph and mini-batch node classification, checkpoints, metrics."""
from .full_graph import FullGraphResult, train_full_graph
from .node_trainer import NodeTrainer, TrainResult

__all__ = ["FullGraphResult", "NodeTrainer", "TrainResult", "train_full_graph"]
