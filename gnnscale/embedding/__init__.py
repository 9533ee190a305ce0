"""Node embedding: skip-gram on random walks or edges (DeepWalk, node2vec, LINE), FastRP, and the
evaluations of the embedding literature."""
from .io import Embeddings, load_embeddings, save_embeddings
from .skipgram import SkipGram, SkipGramSettings

__all__ = ["Embeddings", "SkipGram", "SkipGramSettings", "load_embeddings", "save_embeddings"]
