"""Models: GNN encoders (built on PyG's layers) and the link-prediction decoder."""
from .encoders import ENCODERS, GNNEncoder
from .link import LinkPredictor

__all__ = ["ENCODERS", "GNNEncoder", "LinkPredictor"]
