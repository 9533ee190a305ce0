"""Training: one :class:`Trainer` for every task (node classification on sampled or full graphs,
link prediction, LargeGT, temporal link prediction, full-graph training over many ranks, training over
the parts of a partitioned dataset), typed
configs with their defaults, metrics.

The configs are plain dataclasses, imported at once; the tasks and the Trainer load on first use
(PEP 562), since they pull in torch_geometric, sklearn and ogb, which a program only parsing its
arguments does not need."""
from importlib import import_module

from .config import (FullGraphConfig, LargeGTConfig, LinkConfig, LoopConfig, NodeConfig, OptimizerConfig,
                     PartitionedNodeConfig, TemporalConfig)

# public name -> the submodule defining it
_LAZY = {"FullGraphNodeTask": "full_graph", "LargeGTTask": "largegt", "LinkTask": "link", "hits_at_k": "link",
         "NodeTask": "node", "ParallelFullGraphTask": "parallel_full_graph", "PartitionedNodeTask": "partitioned", "TemporalTask": "temporal",
         "NonFiniteLossError": "trainer", "Task": "trainer", "Trainer": "trainer", "TrainResult": "trainer"}

__all__ = ["FullGraphConfig", "FullGraphNodeTask", "LargeGTConfig", "LargeGTTask", "LinkConfig", "LinkTask",
           "LoopConfig", "NodeConfig", "NodeTask", "NonFiniteLossError", "OptimizerConfig", "ParallelFullGraphTask",
           "PartitionedNodeConfig", "PartitionedNodeTask",
           "Task", "TemporalConfig", "TemporalTask", "Trainer", "TrainResult", "hits_at_k"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
