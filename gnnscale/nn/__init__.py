"""Models: GNN encoders (built on PyG's layers), deep residual GNNs for parallel full-graph
training, the link-prediction decoder, the LargeGT graph transformer, memory-based dynamic GNNs
(TGN, JODIE, PRES) and a parallel CPU dropout."""
from .deep_gnn import DeepGNN, ResidualGraphLayer
from .dropout import Dropout
from .encoders import ENCODERS, GNNEncoder
from .largegt import EMACodebook, GlobalCodebookAttention, LargeGT, LocalTokenEncoder
from .link import LinkPredictor
from .memory import NodeMemory, TimeEncoder
from .pres import PRES, MemoryTrend
from .pyg_models import full_neighbourhood_outputs, num_layers_of, sampled_forward
from .temporal_model import TemporalLinkModel, TemporalModelConfig
from .tgn import LinkScorer, TemporalAttentionEmbedding, TimeProjectionEmbedding

__all__ = ["DeepGNN", "Dropout", "EMACodebook", "ENCODERS", "GNNEncoder", "GlobalCodebookAttention", "LargeGT",
           "LinkPredictor", "LinkScorer", "LocalTokenEncoder", "MemoryTrend", "NodeMemory", "PRES",
           "ResidualGraphLayer", "TemporalAttentionEmbedding", "TemporalLinkModel", "TemporalModelConfig",
           "TimeEncoder", "TimeProjectionEmbedding", "full_neighbourhood_outputs", "num_layers_of", "sampled_forward"]
