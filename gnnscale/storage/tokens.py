"""TokenTable: the precomputed inputs of a graph transformer (LargeGT), kept as UnifiedTensors so
training gathers them like any node features.

Each node ``v`` has ``num_tokens`` token nodes (itself, then nodes sampled from its 1- and 2-hop
neighbourhood by :class:`~gnnscale.sampling.TokenSampler`), and every token node contributes
``hops + 1`` tokens: its rows of ``X, ÂX, ..., Â^hops X`` (Â: GCN-normalised adjacency with
self-loops). Two-hop nodes carrying two-hop features give a four-hop receptive field from
two-hop operations only.

Building is chunked and, with ``cache_dir``, written to disk (``.npy``, memory-mapped back) and
reused by later runs with the same graph, features and settings (one sub-folder per settings).
"""
import hashlib
import json
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import ops
from ..atomic import directory_written_atomically
from ..graph import Graph
from ..sampling import TokenSampler
from .unified import UnifiedTensor

CACHE_FORMAT = 1
CHUNK_NODES = 1 << 18


def propagate_features(graph: Graph, features: torch.Tensor, hops: int, out: Optional[torch.Tensor] = None,
                       *, progress: bool = False) -> torch.Tensor:
    """``[num_nodes, (hops + 1) * width]`` float32 rows ``[x, Âx, ..., Â^hops x]``, written into
    ``out`` when given (e.g. a memory-mapped array), each power computed from the previous one
    in place by the C++ CSR product."""
    if features.dim() != 2 or features.size(0) != graph.num_nodes:
        raise ValueError(f"features must be [num_nodes={graph.num_nodes}, width], got {tuple(features.shape)}")
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ValueError(f"hops must be a non-negative int, got {hops!r}")
    width = features.size(1)
    shape = (graph.num_nodes, (hops + 1) * width)
    if out is None:
        out = torch.empty(shape, dtype=torch.float32)
    elif tuple(out.shape) != shape or out.dtype != torch.float32:
        raise ValueError(f"out must be float32 of shape {shape}, got {out.dtype} {tuple(out.shape)}")
    for start in range(0, graph.num_nodes, CHUNK_NODES):  # chunked: the input may be memory-mapped
        out[start:start + CHUNK_NODES, :width] = features[start:start + CHUNK_NODES].float()
    inv_sqrt_degree = (graph.degree().float() + 1.0).rsqrt()
    for hop in tqdm(range(1, hops + 1), desc="feature propagation", disable=not progress):
        ops.gcn_propagate(graph.indptr, graph.indices, inv_sqrt_degree, out[:, (hop - 1) * width:hop * width],
                          out[:, hop * width:(hop + 1) * width])
    return out


def _fingerprint(*tensors: torch.Tensor, samples: int = 1 << 16) -> str:
    """A cheap content hash: shapes, dtypes and an evenly strided subset of each tensor's values."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        flat = tensor.reshape(-1)
        step = max(1, flat.numel() // samples)
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(flat[::step].contiguous().numpy().tobytes())
    return digest.hexdigest()


class TokenTable:
    """Token inputs of every node: ``hop_features`` ``[N, (hops + 1) * width]`` and ``neighbours``
    ``[N, num_tokens - 1]`` (node ids, -1 for padding; int32 when the ids fit), both
    :class:`UnifiedTensor`. :meth:`gather` returns a batch's tokens and padding mask."""

    def __init__(self, hop_features: UnifiedTensor, neighbours: UnifiedTensor, hops: int, sampler: TokenSampler):
        if len(hop_features) != len(neighbours):
            raise ValueError("hop_features and neighbours must have one row per node")
        if hop_features.shape[1] % (hops + 1):
            raise ValueError(f"hop_features width {hop_features.shape[1]} is not a multiple of hops + 1 = {hops + 1}")
        self.hop_features = hop_features
        self.neighbours = neighbours
        self.hops = hops
        self.sampler = sampler

    @classmethod
    def build(cls, graph: Graph, features: Union[torch.Tensor, UnifiedTensor], *, num_tokens: int = 100,
              hops: int = 2, fanouts: Sequence[int] = (20, 10), seed: int = 0,
              cache_dir: Optional[Union[str, Path]] = None, progress: bool = False) -> "TokenTable":
        """Propagates the features and samples every node's token nodes, or opens the cached
        result in ``cache_dir`` when one was built with the same inputs and settings."""
        if isinstance(features, UnifiedTensor):
            features = features.data
        if features.dim() != 2 or features.size(0) != graph.num_nodes:
            raise ValueError(f"features must be [num_nodes={graph.num_nodes}, width], got {tuple(features.shape)}")
        sampler = TokenSampler(graph, num_tokens, fanouts, seed=seed)
        if cache_dir is None:
            hop_features, neighbours = _build_arrays(graph, features, hops, sampler, progress,
                                                     lambda name, shape, dtype: torch.empty(shape, dtype=dtype))
            return cls(UnifiedTensor(hop_features), _id_table(neighbours), hops, sampler)
        settings = {"format": CACHE_FORMAT, "num_tokens": num_tokens, "hops": hops, "fanouts": sampler.fanouts,
                    "seed": seed, "num_nodes": graph.num_nodes, "num_edges": graph.num_edges,
                    "fingerprint": _fingerprint(graph.indptr, graph.indices, features)}
        # One folder per settings, so tables of several seeds or token counts live side by side.
        key = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=8).hexdigest()
        cache_dir = Path(cache_dir) / f"tokens-{key}"
        if _read_settings(cache_dir) != settings:
            with directory_written_atomically(cache_dir) as staging:
                # The arrays are memory-mapped files; dropping them here unmaps them before the move.
                _build_arrays(graph, features, hops, sampler, progress,
                              lambda name, shape, dtype: _open_npy(staging / f"{name}.npy", shape, dtype))
                (staging / "settings.json").write_text(json.dumps(settings, indent=2))
        return cls(UnifiedTensor.from_npy(cache_dir / "hop_features.npy"),
                   _id_table(cache_dir / "neighbours.npy"), hops, sampler)

    @property
    def num_nodes(self) -> int:
        return len(self.neighbours)

    @property
    def num_tokens(self) -> int:
        return self.sampler.num_tokens

    @property
    def width(self) -> int:
        """Width of one token (the input feature width)."""
        return self.hop_features.shape[1] // (self.hops + 1)

    @property
    def tokens_per_node(self) -> int:
        return self.num_tokens * (self.hops + 1)

    def gather(self, nodes: torch.Tensor, *, device: Union[str, torch.device] = "cpu", round: int = 0
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, num_tokens * (hops + 1), width]`` of ``nodes`` on ``device``, ordered token
        node by token node (the node itself first), hop by hop within each; and the padding mask
        ``[B, num_tokens * (hops + 1)]``, True where a node had fewer neighbours than tokens.

        ``round`` 0 reads the stored token nodes; any other sampling round draws the batch's token
        nodes afresh, exactly as a table built for that round would hold them (a node's draw
        depends only on the seed, the round and its id), at the cost of the batch alone."""
        nodes = torch.as_tensor(nodes).to(torch.int64).cpu()
        sampled = self.neighbours.gather(nodes) if round == 0 else self.sampler.sample(nodes, round=round)
        token_nodes = torch.cat([nodes.unsqueeze(1), sampled.to(torch.int64)], dim=1)
        padding = token_nodes < 0
        token_nodes = torch.where(padding, nodes.unsqueeze(1), token_nodes)  # any valid row; masked out
        rows = self.hop_features.gather(token_nodes.reshape(-1), device=device)
        tokens = rows.view(nodes.numel(), self.tokens_per_node, self.width)
        mask = padding.repeat_interleave(self.hops + 1, dim=1).to(device)
        return tokens, mask


def _id_table(ids: Union[torch.Tensor, Path]) -> UnifiedTensor:
    """Token-node ids (a tensor or a .npy file) as a table; their short rows need no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return UnifiedTensor.from_npy(ids) if isinstance(ids, Path) else UnifiedTensor(ids)


def _id_dtype(num_nodes: int) -> torch.dtype:
    return torch.int32 if num_nodes < 2**31 else torch.int64  # half the memory when ids fit


def _build_arrays(graph: Graph, features: torch.Tensor, hops: int, sampler: TokenSampler, progress: bool,
                  allocate) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hop features and token-node ids, each written into ``allocate(name, shape, dtype)``."""
    hop_features = allocate("hop_features", (graph.num_nodes, (hops + 1) * features.size(1)), torch.float32)
    propagate_features(graph, features, hops, hop_features, progress=progress)
    neighbours = allocate("neighbours", (graph.num_nodes, sampler.num_samples), _id_dtype(graph.num_nodes))
    _sample_into(sampler, neighbours, progress)
    return hop_features, neighbours


def _sample_into(sampler: TokenSampler, neighbours: torch.Tensor, progress: bool) -> None:
    """The stored token nodes: sampling round 0 of every node."""
    num_nodes = neighbours.size(0)
    for start in tqdm(range(0, num_nodes, CHUNK_NODES), desc="token sampling", disable=not progress):
        nodes = torch.arange(start, min(start + CHUNK_NODES, num_nodes))
        neighbours[start:start + nodes.numel()] = sampler.sample(nodes).to(neighbours.dtype)


def _open_npy(path: Path, shape, dtype: torch.dtype) -> torch.Tensor:
    numpy_dtype = {torch.float32: np.float32, torch.int32: np.int32, torch.int64: np.int64}[dtype]
    return torch.from_numpy(np.lib.format.open_memmap(path, mode="w+", dtype=numpy_dtype, shape=shape))


def _read_settings(cache_dir: Path) -> Optional[dict]:
    """The settings a cached table was built with, or None (rebuild) when there is none readable."""
    try:
        return json.loads((cache_dir / "settings.json").read_bytes().decode("utf-8"))
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
