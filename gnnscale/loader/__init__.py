"""Mini-batch loaders that sample and gather ahead of training."""
from .batches import LinkBatch, NodeBatch
from .loaders import LinkLoader, NodeLoader
from .prefetch import prefetch

__all__ = ["LinkBatch", "LinkLoader", "NodeBatch", "NodeLoader", "prefetch"]
