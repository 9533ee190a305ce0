"""Models: GNN encoders (built on PyG's layers), the link-prediction decoder, the LargeGT graph
transformer and memory-based dynamic GNNs (TGN, JODIE, PRES)."""
from .encoders import ENCODERS, GNNEncoder
from .largegt import EMACodebook, GlobalCodebookAttention, LargeGT, LocalTokenEncoder
from .link import LinkPredictor
from .memory import NodeMemory, TimeEncoder
from .pres import PRES, MemoryTrend
from .temporal_model import TemporalLinkModel, TemporalModelConfig
from .tgn import LinkScorer, TemporalAttentionEmbedding, TimeProjectionEmbedding

__all__ = ["EMACodebook", "ENCODERS", "GNNEncoder", "GlobalCodebookAttention", "LargeGT", "LinkPredictor", "LinkScorer",
           "LocalTokenEncoder", "MemoryTrend", "NodeMemory", "PRES", "TemporalAttentionEmbedding", "TemporalLinkModel",
           "TemporalModelConfig", "TimeEncoder", "TimeProjectionEmbedding"]
