"""gnnscale: GPU-centric data loading and training for graph neural networks on large graphs."""
from . import ops  # noqa: F401  (loads the compiled operators, or says how to build them)
from .graph import Graph
from .temporal_graph import TemporalGraph
from .datasets import load_dataset

__version__ = "0.1.0"
__all__ = ["Graph", "TemporalGraph", "load_dataset", "ops"]
