"""gnnscale: GPU-centric data loading and training for graph neural networks on large graphs."""
import os

# Large CPU tensors on 2 MiB pages (PyTorch's opt-in): first-touch page faults otherwise dominate
# element-wise ops on [batch, hidden] activations (a 128 MiB multiply: ~45 ms -> ~13 ms here).
# PyTorch reads this once, at its first large allocation; set it to 0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from . import ops  # noqa: E402,F401  (loads the compiled operators, or says how to build them)
from .graph import Graph  # noqa: E402
from .temporal_graph import TemporalGraph  # noqa: E402
from .datasets import load_dataset  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Graph", "TemporalGraph", "load_dataset", "ops"]
