"""Training loops."""
from .full_graph import FullGraphResult, train_full_graph

__all__ = ["FullGraphResult", "train_full_graph"]
