"""Feature storage: tables on disk read with direct I/O, host tables gathered by CPU threads or read in place by GPUs, caches, and
PyG's FeatureStore interface, and the token tables of graph transformers."""
from .cache import FeatureCache
from .disk import DiskTensor
from .feature_store import FeatureStore
from .tokens import TokenTable, propagate_features
from .unified import UnifiedTensor

__all__ = ["DiskTensor", "FeatureCache", "FeatureStore", "TokenTable", "UnifiedTensor", "propagate_features"]
