"""Graph: CSR topology on the host, the one graph type every part of gnnscale shares."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Union

import numpy as np
import torch

from . import ops
from .atomic import directory_written_atomically
from .npy import check_npy_size, map_npy, read_npy_header

if TYPE_CHECKING:  # imported lazily: scipy and PyG are only needed by their converters
    import scipy.sparse
    from torch_geometric.data import Data

FORMAT_NAME = "gnnscale.Graph"
FORMAT_VERSION = 1
HEADER_FILE = "graph.json"
TRANSPOSE_FOLDER = "transpose"
_EDGE_ATTRIBUTES = ("edge_ids", "edge_weight", "edge_time")
# The arrays a saved graph may hold, and the length each has.
_ARRAY_LENGTHS = {"indptr": lambda nodes, edges: nodes + 1, "indices": lambda nodes, edges: edges,
                  **{name: (lambda nodes, edges: edges) for name in _EDGE_ATTRIBUTES},
                  "node_names": lambda nodes, edges: nodes}
PathLike = Union[str, os.PathLike]


class Graph:
    """A directed graph in CSR form: ``indices[indptr[v]:indptr[v+1]]`` are the out-neighbours of v.

    ``indptr`` is int64; ``indices`` int32 or int64 (int32 halves the memory of large graphs).
    Optional per-edge tensors are aligned with ``indices``: ``edge_ids`` (the id of each edge in
    the input it was built from), ``edge_weight`` (floating, finite) and ``edge_time``.
    Undirected graphs store both directions (``symmetrize=True`` when building).
    """

    def __init__(
        self,
        indptr: torch.Tensor,
        indices: torch.Tensor,
        *,
        edge_ids: Optional[torch.Tensor] = None,
        edge_weight: Optional[torch.Tensor] = None,
        edge_time: Optional[torch.Tensor] = None,
        node_names: Optional[np.ndarray] = None,
        validate: bool = True,
    ):
        self.indptr = indptr
        self.indices = indices
        self.edge_ids = edge_ids
        self.edge_weight = edge_weight
        self.edge_time = edge_time
        # Original ids of the nodes (e.g. the strings of an edge-list file), when they are not 0..n-1.
        self.node_names = node_names
        self._csc: Optional[Graph] = None
        if validate:
            self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(
        cls,
        edge_index: torch.Tensor,
        num_nodes: Optional[int] = None,
        *,
        edge_weight: Optional[torch.Tensor] = None,
        edge_time: Optional[torch.Tensor] = None,
        symmetrize: bool = False,
        drop_self_loops: bool = False,
        drop_duplicates: bool = False,
        index_dtype: torch.dtype = torch.int64,
        node_names: Optional[np.ndarray] = None,
    ) -> "Graph":
        """Builds from a ``[2, E]`` tensor of (source, target) ids, as PyG's ``edge_index``.

        ``edge_ids`` of the result map each CSR slot back to its column in ``edge_index``.
        """
        if not isinstance(edge_index, torch.Tensor):
            edge_index = torch.as_tensor(np.asarray(edge_index))
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}")
        if edge_index.is_floating_point() or edge_index.dtype == torch.bool or edge_index.is_complex():
            raise ValueError(f"edge_index must hold integer ids, got {edge_index.dtype}")
        if index_dtype not in ops.INDEX_DTYPES:
            raise ValueError(f"index_dtype must be torch.int32 or torch.int64, got {index_dtype}")
        num_edges = edge_index.size(1)
        if edge_index.numel() and int(edge_index.min()) < 0:
            raise ValueError(f"edge_index holds a negative node id ({int(edge_index.min())})")
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if num_edges else 0
        elif num_edges and int(edge_index.max()) >= num_nodes:
            raise ValueError(f"edge_index holds node id {int(edge_index.max())}, out of range for {num_nodes} nodes")
        if index_dtype == torch.int32 and num_nodes > torch.iinfo(torch.int32).max:
            raise ValueError(f"{num_nodes} nodes do not fit int32 indices; use index_dtype=torch.int64")
        edge_weight = _check_edge_values("edge_weight", edge_weight, num_edges, finite=True)
        edge_time = _check_edge_values("edge_time", edge_time, num_edges, finite=True)
        edge_index = edge_index.to(index_dtype)
        indptr, indices, perm = ops.coo_to_csr(
            edge_index[0],
            edge_index[1],
            num_nodes,
            drop_self_loops=drop_self_loops,
            drop_duplicates=drop_duplicates,
            symmetrize=symmetrize,
        )
        return cls(
            indptr,
            indices,
            edge_ids=perm,
            edge_weight=None if edge_weight is None else edge_weight[perm],
            edge_time=None if edge_time is None else edge_time[perm],
            node_names=node_names,
            validate=False,
        )

    @classmethod
    def from_scipy(cls, matrix: "scipy.sparse.spmatrix", *, weighted: Optional[bool] = None, **kwargs) -> "Graph":
        """Builds from a square scipy sparse adjacency matrix (row = source, column = target).

        Stored values become ``edge_weight`` when ``weighted`` is True, or when it is None and
        some value differs from 1 (a plain 0/1 adjacency stays unweighted).
        """
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise ValueError(f"expected a scipy sparse matrix, got {type(matrix).__name__}")
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"adjacency matrix must be square, got shape {matrix.shape}")
        coo = matrix.tocoo()
        values = torch.from_numpy(np.asarray(coo.data, dtype=np.float32))
        if weighted is None:
            weighted = bool((values != 1).any())
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return cls.from_edge_index(
            edge_index, matrix.shape[0], edge_weight=values if weighted else None, **kwargs
        )

    @classmethod
    def from_pyg(cls, data: "Data", **kwargs) -> "Graph":
        """Builds from a torch_geometric ``Data`` (its ``edge_index``, ``edge_weight``, ``time``)."""
        edge_index = getattr(data, "edge_index", None)
        if edge_index is None:
            raise ValueError("the Data object has no edge_index")
        return cls.from_edge_index(
            edge_index,
            data.num_nodes,
            edge_weight=getattr(data, "edge_weight", None),
            edge_time=getattr(data, "time", None),
            **kwargs,
        )

    @classmethod
    def from_edge_list(cls, path: PathLike, *, directed: bool = True, **kwargs) -> "Graph":
        """Reads a text edge list (see :func:`gnnscale.datasets.edge_list.edge_list_graph`): node
        names kept, self-loops and repeated edges dropped unless ``drop_self_loops`` /
        ``drop_duplicates`` are False."""
        from .datasets.edge_list import edge_list_graph

        return edge_list_graph(path, directed=directed, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def num_nodes(self) -> int:
        return self.indptr.numel() - 1

    @property
    def num_edges(self) -> int:
        return self.indices.numel()

    def degree(self, direction: str = "out") -> torch.Tensor:
        """Out-degree (neighbours in CSR) or in-degree of every node, int64."""
        if direction == "out":
            return self.indptr[1:] - self.indptr[:-1]
        if direction == "in":
            return ops.degree(self.indices, self.num_nodes)
        raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")

    def row(self) -> torch.Tensor:
        """Source id of every edge, aligned with ``indices`` (int64)."""
        return torch.repeat_interleave(torch.arange(self.num_nodes), self.degree("out"), output_size=self.num_edges)

    def sparse_csr(self, values: Optional[torch.Tensor] = None, device="cpu") -> torch.Tensor:
        """This CSR as a torch sparse CSR matrix (``values`` per edge, ones by default), for
        sparse-dense products."""
        if values is None:
            values = torch.ones(self.num_edges, dtype=torch.float32)
        # torch's sparse kernels trust the CSR (and crash on bad ids): it is checked once, here or
        # earlier, and torch's own O(E) invariant check is then redundant.
        self.check_sound()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self.indptr.to(torch.int64), self.indices.to(torch.int64), values,
                                           size=(self.num_nodes, self.num_nodes), check_invariants=False).to(device)

    def edge_index(self) -> torch.Tensor:
        """``[2, E]`` int64 (source, target) pairs in CSR order."""
        return torch.stack([self.row(), self.indices.to(torch.int64)])

    def csc(self) -> "Graph":
        """The transpose: for each node its in-neighbours (sources), as a Graph (cached).

        Edge attributes follow their edges; ``edge_ids`` keep referring to the original input.
        """
        if self._csc is None:
            # The kernel checks every row and id of this CSR as it transposes it (ValueError).
            indptr, indices, perm = ops.csr_to_csc(self.indptr, self.indices, self.num_nodes)
            attributes = {name: getattr(self, name) for name in _EDGE_ATTRIBUTES}
            ids = attributes["edge_ids"]
            attributes["edge_ids"] = perm if ids is None else ids[perm]
            for name in ("edge_weight", "edge_time"):
                if attributes[name] is not None:
                    attributes[name] = attributes[name][perm]
            self._csc = Graph(indptr, indices, node_names=self.node_names, validate=False, **attributes)
        return self._csc

    def is_symmetric(self) -> bool:
        """True when every edge u->v has its reverse v->u (an undirected graph), counting multiplicity."""
        transpose = self.csc()
        return torch.equal(self.indptr, transpose.indptr) and torch.equal(self.indices, transpose.indices)

    def num_self_loops(self) -> int:
        return int((self.row() == self.indices.to(torch.int64)).sum())

    def to_pyg(self) -> "Data":
        """A torch_geometric ``Data`` with ``edge_index`` (and ``edge_weight``, ``time``, ``e_id``)."""
        from torch_geometric.data import Data

        data = Data(edge_index=self.edge_index(), num_nodes=self.num_nodes)
        if self.edge_weight is not None:
            data.edge_weight = self.edge_weight
        if self.edge_time is not None:
            data.time = self.edge_time
        if self.edge_ids is not None:
            data.e_id = self.edge_ids
        return data

    def validate(self, *, check_indices: bool = True) -> "Graph":
        """Raises ValueError naming the first problem found; returns self when the graph is sound.

        The CSR itself is checked once: a check (or a kernel's pass over every id) that found it
        sound is remembered until ``indptr`` or ``indices`` is replaced or modified in place."""
        if not ops.is_known_sound_csr(self.indptr, self.indices):
            ops.check_csr(self.indptr, self.indices, self.num_nodes, check_indices=check_indices)
        for name in _EDGE_ATTRIBUTES:
            value = getattr(self, name)
            if value is not None:
                _check_edge_values(name, value, self.num_edges, finite=name != "edge_ids")
        if self.node_names is not None and len(self.node_names) != self.num_nodes:
            raise ValueError(f"node_names has {len(self.node_names)} entries for {self.num_nodes} nodes")
        return self

    def check_sound(self) -> "Graph":
        """Raises ValueError unless the CSR is well formed with every id in range: O(E) the first
        time, free while the arrays are unchanged."""
        if not ops.is_known_sound_csr(self.indptr, self.indices):
            ops.check_csr(self.indptr, self.indices, self.num_nodes)  # remembers what it finds sound
        return self

    def __repr__(self) -> str:
        extras = [name for name in _EDGE_ATTRIBUTES if getattr(self, name) is not None]
        return (
            f"Graph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"index_dtype={self.indices.dtype}" + (f", with {', '.join(extras)}" if extras else "") + ")"
        )

    # ------------------------------------------------------------------ storage
    def save(self, directory: PathLike, *, with_transpose: bool = False) -> None:
        """Writes plain .npy files and ``graph.json`` into ``directory``.

        Everything is written into a temporary sibling folder first and renamed into place, so an
        interrupted save never leaves a half-written graph where a good one was. With
        ``with_transpose`` the :meth:`csc` is saved too (in ``transpose/``), so that every process
        that loads the graph maps one copy of it instead of each transposing the graph into memory
        of its own (the ranks of a data-parallel job, which all sample in-edges).
        """
        with directory_written_atomically(directory) as staging:
            if with_transpose:
                self.csc()._save_arrays(staging / TRANSPOSE_FOLDER, with_names=False, transpose=False)
            self._save_arrays(staging, with_names=True, transpose=with_transpose)

    def _save_arrays(self, staging: Path, *, with_names: bool, transpose: bool) -> None:
        staging.mkdir(exist_ok=True)
        arrays: Dict[str, np.ndarray] = {"indptr": self.indptr.numpy(), "indices": self.indices.numpy()}
        for name in _EDGE_ATTRIBUTES:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).numpy()
        if with_names and self.node_names is not None:
            arrays["node_names"] = _storable_names(self.node_names)
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "num_nodes": self.num_nodes,
            "num_edges": self.num_edges,
            "arrays": {name: str(array.dtype) for name, array in arrays.items()},
        }
        if transpose:
            header["transpose"] = TRANSPOSE_FOLDER
        (staging / HEADER_FILE).write_text(json.dumps(header, indent=2))

    @classmethod
    def load(cls, directory: PathLike, *, mmap: bool = True, check_indices: Optional[bool] = None) -> "Graph":
        """Opens a graph written by :meth:`save`.

        With ``mmap=True`` the arrays are memory-mapped (copy-on-write: the file is never modified),
        so a graph larger than RAM opens at once. The header, each file's size against its own
        ``.npy`` header and ``graph.json``, and ``indptr`` are always checked; the O(E) range check
        of ``indices`` runs by default only without mmap. A memory-mapped graph whose ids were not
        checked here is still safe to use: every kernel checks the ids it reads (raising
        ValueError), and :meth:`sparse_csr` checks them once before handing them to torch.

        A mapped file must not be truncated or rewritten while the graph is open: reading a page
        past the new end of a mapped file raises SIGBUS, which kills the process and which no
        check at open time can prevent. Copy a graph that others may rewrite (``mmap=False``).
        """
        directory = Path(directory)
        header_path = directory / HEADER_FILE
        if not header_path.is_file():
            raise FileNotFoundError(f"no saved graph in {directory} ({HEADER_FILE} is missing)")
        header = _read_header(header_path)
        num_nodes, num_edges = header["num_nodes"], header["num_edges"]
        arrays = {}
        for name, dtype in header["arrays"].items():
            path = directory / f"{name}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is listed in {HEADER_FILE} but missing")
            length = _ARRAY_LENGTHS[name](num_nodes, num_edges)
            _check_npy_file(path, dtype, length, f"the header says {num_nodes} nodes / {num_edges} edges")
            try:
                arrays[name] = map_npy(path) if mmap else np.load(path, allow_pickle=False)
            except ValueError as error:
                raise ValueError(f"{path} is not a readable .npy array: {error}") from error
        for required in ("indptr", "indices"):
            if required not in arrays:
                raise ValueError(f"{header_path} lists no {required} array")
        tensors = {name: torch.from_numpy(array) for name, array in arrays.items() if name != "node_names"}
        graph = cls(
            tensors.pop("indptr"),
            tensors.pop("indices"),
            node_names=arrays.get("node_names"),
            validate=False,
            **tensors,
        )
        check_indices = not mmap if check_indices is None else check_indices
        graph.validate(check_indices=check_indices)
        if "transpose" in header:
            graph._csc = _load_transpose(graph, directory / TRANSPOSE_FOLDER, mmap=mmap, check_indices=check_indices)
        return graph


def _read_header(path: Path) -> dict:
    """graph.json as a dict with the fields :meth:`Graph.load` needs, each checked."""
    try:
        header = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a {FORMAT_NAME} header")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {header.get('version')}, expected {FORMAT_VERSION}")
    for field in ("num_nodes", "num_edges"):
        if field not in header:
            raise ValueError(f"{path} has no '{field}' field")
        value = header[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{path}: '{field}' must be a non-negative integer, got {value!r}")
    arrays = header.get("arrays")
    if not isinstance(arrays, dict) or not all(isinstance(dtype, str) for dtype in arrays.values()):
        raise ValueError(f"{path} has no 'arrays' field mapping array names to dtypes")
    unknown = sorted(set(arrays) - set(_ARRAY_LENGTHS))
    if unknown:
        raise ValueError(f"{path} lists unknown arrays {unknown}; a graph holds {sorted(_ARRAY_LENGTHS)}")
    if "transpose" in header and header["transpose"] != TRANSPOSE_FOLDER:
        raise ValueError(f"{path}: 'transpose' must be {TRANSPOSE_FOLDER!r} (the folder beside it), "
                         f"got {header['transpose']!r}")
    return header


def _load_transpose(graph: Graph, directory: Path, *, mmap: bool, check_indices: bool) -> Graph:
    """The saved :meth:`Graph.csc` of ``graph``, checked to fit it: the same nodes, edges and edge
    attributes, and, when ids are checked (O(E)), each node's in-degree. Its ids, like those of any
    mapped graph, are also checked by every kernel that reads them."""
    incoming = Graph.load(directory, mmap=mmap, check_indices=check_indices)
    if incoming._csc is not None:
        raise ValueError(f"{directory} is a transpose that holds a transpose of its own")
    if (incoming.num_nodes, incoming.num_edges) != (graph.num_nodes, graph.num_edges):
        raise ValueError(f"{directory} has {incoming.num_nodes} nodes / {incoming.num_edges} edges, but its graph "
                         f"has {graph.num_nodes} / {graph.num_edges}: it is not that graph's transpose")
    if incoming.indices.dtype != graph.indices.dtype or incoming.edge_ids is None:
        raise ValueError(f"{directory} must hold {graph.indices.dtype} indices and edge_ids, as a transpose does")
    for name in ("edge_weight", "edge_time"):
        if (getattr(incoming, name) is None) != (getattr(graph, name) is None):
            raise ValueError(f"{directory}: {name} is in only one of the graph and its transpose")
    if check_indices:
        in_degree = torch.bincount(graph.indices, minlength=graph.num_nodes)
        if not torch.equal(in_degree, incoming.indptr.diff()):
            raise ValueError(f"{directory}: its in-degrees differ from the graph's: it is not that graph's transpose")
    incoming.node_names = graph.node_names
    return incoming


def _storable_names(node_names) -> np.ndarray:
    """Node names as an array .npy holds without pickling: numbers as they are, strings (often an
    object array, as pandas gives them) as fixed-width unicode."""
    names = np.asarray(node_names)
    if names.dtype.hasobject:
        if not all(isinstance(name, str) for name in names):
            raise ValueError("node_names must be numbers or strings to be saved")
        names = names.astype(str) if names.size else names.astype("<U1")
    return names


def _check_npy_file(path: Path, dtype: str, length: int, expected_because: str) -> None:
    """Raises ValueError unless ``path`` is a 1-D .npy array of ``length`` entries of ``dtype``
    (as graph.json says) whose file holds exactly the bytes its own header describes: a file cut
    short would otherwise be mapped and fault (SIGBUS) when its missing end is read."""
    shape, stored, data_offset = read_npy_header(path)
    if stored.hasobject:
        raise ValueError(f"{path} holds Python objects ({stored}); a graph holds plain numeric or string arrays")
    if str(stored) != dtype:
        raise ValueError(f"{path} holds {stored} but {HEADER_FILE} says {dtype}")
    if len(shape) != 1 or shape[0] != length:
        raise ValueError(f"{path} has shape {shape}, but {expected_because}, so ({length},)")
    check_npy_size(path, shape, stored, data_offset)


def _check_edge_values(name: str, values: Optional[torch.Tensor], num_edges: int, *, finite: bool):
    if values is None:
        return None
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(np.asarray(values))
    if values.dim() != 1 or values.numel() != num_edges:
        raise ValueError(f"{name} must be 1-D with one value per edge ({num_edges}), got shape {tuple(values.shape)}")
    if finite and values.is_floating_point() and not bool(torch.isfinite(values).all()):
        bad = int(torch.nonzero(~torch.isfinite(values))[0])
        raise ValueError(f"{name} holds a non-finite value ({float(values[bad])}) at edge {bad}")
    return values


# ---------------------------------------------------------------------- PyG datasets
_PYG_SPLITS = {"train": "train_mask", "valid": "val_mask", "test": "test_mask"}


def from_pyg(data, name: str = "pyg"):
    """A torch_geometric ``Data`` as a :class:`~gnnscale.datasets.NodeDataset` (``x``, ``edge_index``,
    ``y``, ``train/val/test_mask`` as index splits), or a ``TemporalData`` as a
    :class:`~gnnscale.temporal_graph.TemporalGraph` (``src``, ``dst``, ``t``, ``msg``)."""
    from torch_geometric.data import Data, TemporalData

    if isinstance(data, TemporalData):
        from .temporal_graph import TemporalGraph

        return TemporalGraph.from_pyg(data)
    if not isinstance(data, Data):
        raise ValueError(f"from_pyg takes a torch_geometric Data or TemporalData, got {type(data).__name__}")
    from .datasets.base import NodeDataset

    splits = {split: _mask_to_index(data, mask, data.num_nodes) for split, mask in _PYG_SPLITS.items()
              if getattr(data, mask, None) is not None}
    return NodeDataset(name=name, graph=Graph.from_pyg(data), features=getattr(data, "x", None),
                       labels=getattr(data, "y", None), splits=splits)


def to_pyg(dataset) -> "Data":
    """The reverse of :func:`from_pyg`: a NodeDataset as a ``Data`` with masks, a TemporalGraph as
    a ``TemporalData``, a Graph as a ``Data`` (:meth:`Graph.to_pyg`)."""
    if isinstance(dataset, Graph):
        return dataset.to_pyg()
    if hasattr(dataset, "csr") and hasattr(dataset, "num_events"):  # a TemporalGraph
        return dataset.to_pyg()
    data = dataset.graph.to_pyg()
    if dataset.features is not None:
        data.x = dataset.features
    if dataset.labels is not None:
        data.y = dataset.labels
    for split, mask_name in _PYG_SPLITS.items():
        if split in dataset.splits:
            mask = torch.zeros(data.num_nodes, dtype=torch.bool)
            mask[dataset.splits[split]] = True
            setattr(data, mask_name, mask)
    return data


def _mask_to_index(data, name: str, num_nodes: int) -> torch.Tensor:
    mask = getattr(data, name)
    if mask.dtype != torch.bool or mask.dim() != 1 or mask.numel() != num_nodes:
        raise ValueError(f"Data.{name} must be a 1-D bool mask over the {num_nodes} nodes, got {mask.dtype} "
                         f"of shape {tuple(mask.shape)} (pick one split of a multi-split mask first)")
    return mask.nonzero().reshape(-1)
