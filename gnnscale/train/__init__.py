"""Training: one :class:`Trainer` for every task (node classification on sampled or full graphs,
link prediction, LargeGT, temporal link prediction), typed configs with their defaults, metrics."""
from .config import (FullGraphConfig, LargeGTConfig, LinkConfig, LoopConfig, NodeConfig, OptimizerConfig,
                     TemporalConfig)
from .full_graph import FullGraphNodeTask
from .largegt import LargeGTTask
from .link import LinkTask, hits_at_k
from .node import NodeTask
from .temporal import TemporalTask
from .trainer import NonFiniteLossError, Task, Trainer, TrainResult

__all__ = ["FullGraphConfig", "FullGraphNodeTask", "LargeGTConfig", "LargeGTTask", "LinkConfig", "LinkTask",
           "LoopConfig", "NodeConfig", "NodeTask", "NonFiniteLossError", "OptimizerConfig", "Task", "TemporalConfig",
           "TemporalTask", "Trainer", "TrainResult", "hits_at_k"]
