"""Feature storage: host tables gathered by CPU threads or read in place by GPUs, caches, and
PyG's FeatureStore interface."""
from .cache import FeatureCache
from .feature_store import FeatureStore
from .unified import UnifiedTensor

__all__ = ["FeatureCache", "FeatureStore", "UnifiedTensor"]
