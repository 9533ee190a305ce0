"""Mini-batch loaders that sample and gather ahead of training."""
from .batches import LinkBatch, NodeBatch, TokenBatch
from .loaders import LinkLoader, NodeLoader, TokenLoader
from .prefetch import prefetch

__all__ = ["LinkBatch", "LinkLoader", "NodeBatch", "NodeLoader", "TokenBatch", "TokenLoader", "prefetch"]
