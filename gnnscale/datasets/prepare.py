"""Datasets prepared once into a saved folder (the graph and its transpose, row-aligned features,
labels, splits and a manifest of checksums) within a memory budget, then opened memory-mapped by
:func:`~gnnscale.datasets.load_dataset`:

    prepare_dataset("edges.tsv", "/data/big", memory_gib=4)         # an edge list of any size
    write_synthetic("papers100M", "/data/papers", memory_gib=4)     # generated chunk by chunk

The budget bounds what the external sort holds at once; beyond it, preparation holds arrays of
a few values per node (the row pointers, the ids of an edge list's nodes, the generator's sampling
tables), never an array per edge or the feature table.
"""
import math
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

from ..atomic import directory_written_atomically
from .base import LinkDataset, NodeDataset, PathLike
from .edge_list import COMMENT_MARKERS, EdgeChunk, NonIntegerIdError, read_edge_chunks
from .external_sort import write_graph
from ..npy import FEATURE_ALIGNMENT
from .saved import FileManifest, NpyWriter, node_header, save_array, save_dataset, write_header
from .synthetic import PRESETS, preset_spec

GIB = 1 << 30
# Text read from an edge list at once, per byte of budget: pandas holds each field as an object.
_TEXT_SHARE = 1 / 32
_MAX_TEXT_BYTES = 64 << 20


def prepare_dataset(source: str, out: PathLike, *, memory_gib: float = 4.0, root: Optional[PathLike] = None,
                    scale: float = 1.0, seed: int = 0, num_nodes: Optional[int] = None, directed: bool = False,
                    weighted: Optional[bool] = None, sep: Optional[str] = None) -> Path:
    """Writes ``source`` into the saved-dataset folder ``out`` (replaced as a whole once complete).

    ``source`` is ``synthetic-<preset>`` (generated in chunks at ``scale`` and ``seed``), a path to
    an edge list (streamed: see :func:`write_edge_list`), or anything else
    :func:`~gnnscale.datasets.load_dataset` opens (an OGB or Planetoid name, a ``.mat`` file, a
    saved folder...), which is loaded into memory and saved."""
    budget = memory_budget(memory_gib)
    out = _output_folder(out)
    preset = _preset_of(source)
    if preset is not None:
        return write_synthetic(preset, out, scale=scale, seed=seed, memory_gib=memory_gib)
    path = Path(source)
    if not path.exists() and ("/" in str(source) or path.suffix):  # a path, not a name
        raise FileNotFoundError(f"{source} does not exist")
    if path.is_file() and _is_edge_list(path):
        return write_edge_list(path, out, memory_bytes=budget, num_nodes=num_nodes, directed=directed,
                               weighted=weighted, sep=sep)
    from .registry import load_dataset

    dataset = load_dataset(source, root=root)
    if not isinstance(dataset, (NodeDataset, LinkDataset)):
        raise ValueError(f"{source} is a {type(dataset).__name__}; only node and link datasets are prepared")
    return save_dataset(dataset, out)


def write_synthetic(preset: str, out: PathLike, *, scale: float = 1.0, seed: int = 0, memory_gib: float = 4.0,
                    **overrides) -> Path:
    """Generates the synthetic ``preset`` (see :func:`~gnnscale.datasets.generate_preset`, the
    same dataset) straight into the saved-dataset folder ``out``: edges chunk by chunk through the
    external sort, features chunk by chunk into ``features.npy``."""
    budget = memory_budget(memory_gib)
    out = _output_folder(out)
    spec = preset_spec(preset, scale=scale, seed=seed, **overrides)
    with directory_written_atomically(out) as staging:
        labels = spec.labels()
        files = _in_folder("graph", write_graph(spec.edge_chunks(labels), spec.num_nodes, staging / "graph",
                                                memory_bytes=budget, keep_edge_ids=False, **spec.graph_options()))
        features = NpyWriter(staging / "features.npy", np.float32, (spec.num_nodes, spec.num_features),
                             alignment=FEATURE_ALIGNMENT)
        for rows in spec.feature_chunks(labels):
            features.write(rows.numpy())
        files["features.npy"] = features.close()
        arrays = {"features": {"dtype": "float32", "shape": [spec.num_nodes, spec.num_features]}}
        for name, values in [("labels", labels)] + [(f"split-{k}", v) for k, v in spec.splits().items()]:
            files[f"{name}.npy"] = save_array(staging, name, values.numpy())
            arrays[name] = {"dtype": str(values.numpy().dtype), "shape": list(values.shape)}
        write_header(staging, node_header(spec.dataset_name, arrays, num_classes=spec.num_classes), files)
    return out


def write_edge_list(path: PathLike, out: PathLike, *, memory_bytes: int, num_nodes: Optional[int] = None,
                    directed: bool = False, weighted: Optional[bool] = None, sep: Optional[str] = None,
                    comment: str = COMMENT_MARKERS) -> Path:
    """Streams an edge list into the saved-dataset folder ``out``, within ``memory_bytes``.

    Without ``num_nodes`` the result is the graph :func:`~gnnscale.datasets.load_file` builds in
    memory: nodes numbered in sorted id order (the ids kept as ``node_names``: int64 when every id
    is an integer, else every id as a string), each edge in both directions unless ``directed``,
    the weight column as edge weights, self-loops and repeated edges dropped. Integer ids are read
    once and spilled; string ids are read twice (their sorted set, then the edges renumbered).
    With ``num_nodes`` the ids are the node numbers themselves, and one outside ``[0, num_nodes)``
    is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"edge list {path} does not exist")
    out = _output_folder(out)
    text_bytes = max(1 << 12, min(_MAX_TEXT_BYTES, int(memory_bytes * _TEXT_SHARE)))

    def chunks(string_ids=False):
        return read_edge_chunks(path, sep=sep, weighted=weighted, comment=comment, chunk_bytes=text_bytes,
                                string_ids=string_ids)

    with directory_written_atomically(out) as staging:
        scratch = Path(tempfile.mkdtemp(prefix=".edges.", dir=staging))
        try:
            if num_nodes is None:
                try:
                    spilled = _SpilledEdges(scratch / "edges")
                    names = spilled.write(chunks())
                    source = spilled.renumbered(names, memory_bytes)
                except NonIntegerIdError:  # ids are names: every one read as a string, as in memory
                    (scratch / "edges").unlink(missing_ok=True)
                    names = _distinct(chunks(string_ids=True))
                    source = _renumbered_by_name(chunks(string_ids=True), names)
                count, node_names = len(names), names
            else:
                source, count, node_names = _numbered(chunks(), path, num_nodes), num_nodes, None
            source = _as_tuples(source)
            first = next(source, None)
            is_weighted = first is not None and len(first) == 3
            graph = write_graph(_prepend(first, source), count, staging / "graph", memory_bytes=memory_bytes,
                                symmetrize=not directed, drop_self_loops=True, drop_duplicates=True,
                                weighted=is_weighted, node_names=node_names, scratch=scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        write_header(staging, node_header(path.stem, {}, num_classes=0), _in_folder("graph", graph))
    return out


class _SpilledEdges:
    """An edge list's ids as written, spilled to a binary file while the sorted set of distinct
    ids (the nodes) is collected, then read back renumbered."""

    def __init__(self, path: Path):
        self.path = path
        self.dtype: Optional[np.dtype] = None
        self.count = 0

    def write(self, chunks) -> np.ndarray:
        with open(self.path, "wb") as file:
            return _distinct(self._spilled(chunks, file))

    def _spilled(self, chunks, file) -> Iterator[EdgeChunk]:
        """The chunks, each written to ``file`` as it passes."""
        for chunk in chunks:
            if self.dtype is None:
                fields = [("src", np.int64), ("dst", np.int64)] + ([("weight", np.float32)] if
                                                                   chunk.weight is not None else [])
                self.dtype = np.dtype(fields)
            records = np.empty(chunk.src.size, self.dtype)
            records["src"], records["dst"] = chunk.src, chunk.dst
            if chunk.weight is not None:
                records["weight"] = chunk.weight
            records.tofile(file)
            self.count += records.size
            yield chunk

    def renumbered(self, names: np.ndarray, memory_bytes: int) -> Iterator[EdgeChunk]:
        rows = max(1, int(memory_bytes * _TEXT_SHARE) // max(1, self.dtype.itemsize if self.dtype else 1))
        with open(self.path, "rb") as file:
            for start in range(0, self.count, rows):
                records = np.fromfile(file, dtype=self.dtype, count=min(rows, self.count - start))
                weight = records["weight"] if "weight" in self.dtype.names else None
                yield EdgeChunk(np.searchsorted(names, records["src"]), np.searchsorted(names, records["dst"]), weight)


def _distinct(chunks) -> np.ndarray:
    """The sorted set of the ids in ``chunks`` (numbers or strings), merged now and then so that
    the work stays linear in the number of ids."""
    names, pending, pending_size = None, [], 0
    for chunk in chunks:
        pending.append(np.unique(np.concatenate([chunk.src, chunk.dst])))
        pending_size += pending[-1].size
        if pending_size > max(0 if names is None else names.size, 1 << 20):
            names, pending, pending_size = np.unique(np.concatenate(([] if names is None else [names]) + pending)), [], 0
    parts = ([] if names is None else [names]) + pending
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)


def _renumbered_by_name(chunks, names: np.ndarray) -> Iterator[EdgeChunk]:
    for chunk in chunks:
        yield EdgeChunk(np.searchsorted(names, chunk.src), np.searchsorted(names, chunk.dst), chunk.weight)


def _numbered(chunks, path: Path, num_nodes) -> Iterator[EdgeChunk]:
    """The chunks of an edge list whose ids are node numbers, each checked to lie in [0, num_nodes)."""
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 0:
        raise ValueError(f"num_nodes must be a non-negative integer, got {num_nodes!r}")
    for chunk in chunks:
        for ids in (chunk.src, chunk.dst):
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
                bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
                raise ValueError(f"edge list {path} holds node id {bad}, outside [0, {num_nodes}) "
                                 f"(num_nodes={num_nodes})")
        yield chunk


def _as_tuples(chunks) -> Iterator[Tuple[np.ndarray, ...]]:
    for chunk in chunks:
        yield (chunk.src, chunk.dst) if chunk.weight is None else (chunk.src, chunk.dst, chunk.weight)


def _prepend(first, rest):
    if first is not None:
        yield first
        yield from rest


def _in_folder(folder: str, files: FileManifest) -> FileManifest:
    return {f"{folder}/{name}": entry for name, entry in files.items()}


def memory_budget(memory_gib) -> int:
    """The budget in bytes; ValueError unless ``memory_gib`` is a positive finite number."""
    if isinstance(memory_gib, bool) or not isinstance(memory_gib, (int, float)) or not math.isfinite(memory_gib) \
            or memory_gib <= 0:
        raise ValueError(f"memory_gib must be a positive number of GiB, got {memory_gib!r}")
    return max(1, int(memory_gib * GIB))


def _output_folder(out: PathLike) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output {out} exists and is not a folder")
    return out


def _preset_of(source: str) -> Optional[str]:
    key = str(source).lower()
    if not key.startswith("synthetic-"):
        return None
    preset = {name.lower(): name for name in PRESETS}.get(key[len("synthetic-"):])
    if preset is None:
        raise ValueError(f"unknown synthetic preset {source!r}; choose from {[f'synthetic-{p}' for p in PRESETS]}")
    return preset


def _is_edge_list(path: Path) -> bool:
    """What :func:`~gnnscale.datasets.load_file` reads as an edge list: not a .mat or JODIE file."""
    from .registry import is_edge_list_file

    return is_edge_list_file(path)
