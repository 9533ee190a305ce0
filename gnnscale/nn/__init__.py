"""Models: GNN encoders (built on PyG's layers)."""
from .encoders import ENCODERS, GNNEncoder

__all__ = ["ENCODERS", "GNNEncoder"]
