"""Mini-batch loaders that sample and gather ahead of training."""
from .batches import EdgePairBatch, LinkBatch, NodeBatch, TokenBatch
from .loaders import EdgePairLoader, LinkLoader, NodeLoader, TokenLoader
from .prefetch import prefetch
from .temporal import TemporalBatch, TemporalLoader

__all__ = ["EdgePairBatch", "EdgePairLoader", "LinkBatch", "LinkLoader", "NodeBatch", "NodeLoader", "TemporalBatch",
           "TemporalLoader", "TokenBatch", "TokenLoader", "prefetch"]
