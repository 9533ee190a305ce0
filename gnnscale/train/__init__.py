"""Training loops: node classification (full-graph, mini-batch, graph transformer), link prediction,
dynamic-graph link prediction, checkpoints, metrics."""
from .full_graph import FullGraphResult, train_full_graph
from .largegt_trainer import LargeGTTrainer
from .link_trainer import LinkTrainer, hits_at_k
from .loop import EpochTrainer, TrainResult
from .node_trainer import NodeTrainer
from .temporal_trainer import TemporalTrainer

__all__ = ["EpochTrainer", "FullGraphResult", "LargeGTTrainer", "LinkTrainer", "NodeTrainer", "TemporalTrainer", "TrainResult", "hits_at_k",
           "train_full_graph"]
