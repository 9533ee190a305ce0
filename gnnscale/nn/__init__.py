"""Models: GNN encoders (built on PyG's layers), the link-prediction decoder and the LargeGT graph
transformer."""
from .encoders import ENCODERS, GNNEncoder
from .largegt import EMACodebook, GlobalCodebookAttention, LargeGT, LocalTokenEncoder
from .link import LinkPredictor

__all__ = ["EMACodebook", "ENCODERS", "GNNEncoder", "GlobalCodebookAttention", "LargeGT", "LinkPredictor",
           "LocalTokenEncoder"]
