"""Parallel full-graph training of deep GNNs on torch.distributed: graph partitions with halo
exchange, layer pipelining over chunks with historical embeddings (GNNPipe), and their hybrid."""
from .engine import ParallelConfig, PipelineEngine, StageModules
from .layout import GraphLayout, NormalizedAdjacency, normalized_adjacency, partition_graph
from .plan import PartitionPlan, build_partition_plan, partition_halos
from .planner import LayoutPrediction, choose_layout, plan_layouts, predict_bytes
from .propagation import Propagation

__all__ = ["GraphLayout", "LayoutPrediction", "NormalizedAdjacency", "ParallelConfig", "PipelineEngine",
           "StageModules", "PartitionPlan", "Propagation", "build_partition_plan", "choose_layout",
           "normalized_adjacency", "partition_graph", "partition_halos", "plan_layouts", "predict_bytes"]
