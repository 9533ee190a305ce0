"""A graph larger than memory, written into a folder in :meth:`Graph.save`'s layout (with its
transpose) by a bucketed external sort within a memory budget.

Edges arrive in chunks. Each chunk is spilled, in arrival order, into one file per bucket: a
contiguous range of source ids. Each bucket is then loaded, sorted in memory and appended to the
CSR files, and its sorted edges are spilled again by target, from which the transpose is built the
same way. A bucket holds at most as many edges as the budget sorts at once; one that turns out
larger (a range of hubs) is split again by the exact degrees of its nodes. Beyond the budget, only
the rows of one bucket (its degrees) are held in memory.

The result is the graph ``Graph.from_edge_index`` builds with the same options, file for file:
rows ascending, and within a row the order of the in-memory kernel (see :func:`_row_order`).
"""
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..graph import FORMAT_NAME, FORMAT_VERSION, HEADER_FILE, TRANSPOSE_FOLDER
from .saved import FileManifest, NpyWriter, save_npy, text_entry

# Buckets the edges are first spilled into: equal ranges of node ids, merged or split later to fit.
SPILL_BUCKETS = 256
# Bytes of memory one edge of a bucket takes while it is sorted, beyond its record: the sort key,
# the order, the sorted copy and the records spilled for the transpose (measured: bench/prepare.py).
_SORT_BYTES_PER_EDGE = 40
_NUMPY_INDEX = {torch.int32: np.int32, torch.int64: np.int64}


@dataclass(frozen=True)
class BuildOptions:
    """What ``Graph.from_edge_index`` is asked to do, and what the folder keeps."""
    symmetrize: bool = False
    drop_self_loops: bool = False
    drop_duplicates: bool = False
    index_dtype: torch.dtype = torch.int64
    keep_edge_ids: bool = True  # write the CSR's edge_ids (each edge's position in the stream)
    weighted: bool = False  # chunks carry a weight per edge (stored float32)

    @property
    def needs_edge_ids(self) -> bool:
        """Edge ids decide what is written when they are, or when they pick which weight a kept
        duplicate carries; otherwise equal edges are interchangeable."""
        return self.keep_edge_ids or self.weighted


def write_graph(
    chunks: Iterable[Sequence],
    num_nodes: int,
    folder,
    *,
    memory_bytes: int,
    symmetrize: bool = False,
    drop_self_loops: bool = False,
    drop_duplicates: bool = False,
    index_dtype: torch.dtype = torch.int64,
    keep_edge_ids: bool = True,
    weighted: bool = False,
    node_names: Optional[np.ndarray] = None,
    scratch=None,
) -> FileManifest:
    """Writes the graph of the edges in ``chunks`` into the new folder ``folder``, as
    ``Graph.from_edge_index(edge_index, num_nodes, ...).save(folder, with_transpose=True)`` would,
    using about ``memory_bytes`` of memory for the sort whatever the number of edges.

    Each chunk is ``(src, dst)`` or, with ``weighted``, ``(src, dst, weight)`` (1-D arrays or
    tensors); an edge's id is its position in the stream of chunks. ``keep_edge_ids=False`` leaves
    out the CSR's edge ids (the transpose's then refer to CSR slots, as when a graph's ``edge_ids``
    are None). Spill files go to a temporary folder in ``scratch`` (default: beside ``folder``) and
    are removed as they are consumed. Returns the manifest of the files written (paths relative to
    ``folder``)."""
    options = BuildOptions(bool(symmetrize), bool(drop_self_loops), bool(drop_duplicates), index_dtype,
                           bool(keep_edge_ids), bool(weighted))
    num_nodes = _check_arguments(num_nodes, memory_bytes, options, node_names)
    folder = Path(folder)
    if folder.exists():
        raise ValueError(f"{folder} already exists; the graph is written into a new folder")
    folder.mkdir(parents=True)
    scratch_dir = Path(tempfile.mkdtemp(prefix=".spill.", dir=scratch or folder.parent))
    try:
        sort = _ExternalSort(num_nodes, memory_bytes, options, scratch_dir)
        sort.spill(chunks)
        files = sort.write_csr(folder)
        files.update({f"{TRANSPOSE_FOLDER}/{name}": entry
                      for name, entry in sort.write_csc(folder / TRANSPOSE_FOLDER).items()})
        if node_names is not None:
            files["node_names.npy"] = save_npy(folder / "node_names.npy", np.asarray(node_names))
            sort.csr_arrays["node_names"] = str(np.asarray(node_names).dtype)
        files[HEADER_FILE] = _write_graph_header(folder, num_nodes, sort.num_edges, sort.csr_arrays, transpose=True)
        files[f"{TRANSPOSE_FOLDER}/{HEADER_FILE}"] = _write_graph_header(
            folder / TRANSPOSE_FOLDER, num_nodes, sort.num_edges, sort.csc_arrays, transpose=False)
        return files
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


def sort_capacity(memory_bytes: int, options: BuildOptions) -> int:
    """How many edges a bucket may hold for its sort to fit ``memory_bytes``."""
    return max(1, int(memory_bytes) // (2 * _csr_record(options).itemsize + _SORT_BYTES_PER_EDGE))


def _check_arguments(num_nodes, memory_bytes, options: BuildOptions, node_names) -> int:
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, (int, np.integer)) or memory_bytes <= 0:
        raise ValueError(f"the memory budget must be a positive number of bytes, got {memory_bytes!r}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 0:
        raise ValueError(f"num_nodes must be a non-negative integer, got {num_nodes!r}")
    if options.index_dtype not in _NUMPY_INDEX:
        raise ValueError(f"index_dtype must be torch.int32 or torch.int64, got {options.index_dtype}")
    if options.index_dtype == torch.int32 and num_nodes > np.iinfo(np.int32).max:
        raise ValueError(f"{num_nodes} nodes do not fit int32 indices; use index_dtype=torch.int64")
    if node_names is not None and len(node_names) != num_nodes:
        raise ValueError(f"node_names has {len(node_names)} entries for {num_nodes} nodes")
    return int(num_nodes)


# ---------------------------------------------------------------------------------------- records
def _csr_record(options: BuildOptions) -> np.dtype:
    """A spilled edge, keyed by its source."""
    index = _NUMPY_INDEX[options.index_dtype]
    fields = [("key", index), ("other", index)]
    if options.needs_edge_ids:
        fields.append(("id", np.int64))
    if options.weighted:
        fields.append(("weight", np.float32))
    return np.dtype(fields)


def _csc_record(options: BuildOptions) -> np.dtype:
    """A CSR slot spilled for the transpose, keyed by its target; ``id`` is what the transpose's
    edge_ids hold: the CSR's edge id, or the CSR slot."""
    index = _NUMPY_INDEX[options.index_dtype]
    fields = [("key", index), ("other", index), ("id", np.int64)]
    if options.weighted:
        fields.append(("weight", np.float32))
    return np.dtype(fields)


class _Buckets:
    """Records spilled into one file per (part, bucket), each in arrival order; bucket ``b`` holds
    the keys in ``[bounds[b], bounds[b + 1])``. Part 0 holds input edges, part 1 the reverse edges
    that ``symmetrize`` adds: the kernel orders every edge before every reverse one."""

    def __init__(self, folder: Path, name: str, bounds: np.ndarray, dtype: np.dtype, parts: int = 1):
        self.folder, self.name, self.bounds, self.dtype = folder, name, np.asarray(bounds, np.int64), dtype
        self.counts = np.zeros((parts, len(self.bounds) - 1), dtype=np.int64)

    def __len__(self) -> int:
        return self.counts.shape[1]

    def path(self, part: int, bucket: int) -> Path:
        return self.folder / f"{self.name}.{part}.{bucket}"

    def sizes(self) -> np.ndarray:
        return self.counts.sum(axis=0)

    def add(self, records: np.ndarray, part: int = 0) -> None:
        if records.size == 0:
            return
        bucket = np.searchsorted(self.bounds, records["key"], side="right") - 1
        if len(self) <= np.iinfo(np.int16).max:  # numpy sorts 16-bit keys by radix, stably
            bucket = bucket.astype(np.int16)
        order = np.argsort(bucket, kind="stable")
        counts = np.bincount(bucket, minlength=len(self))
        grouped = records[order]
        del order, bucket
        ends = np.cumsum(counts)
        for index in np.flatnonzero(counts):
            with open(self.path(part, index), "ab") as file:
                grouped[ends[index] - counts[index]:ends[index]].tofile(file)
        self.counts[part] += counts

    def load(self, buckets: range) -> np.ndarray:
        """The records of consecutive ``buckets``, each part's in arrival order (parts one after
        the other), read into one array; their files are removed."""
        records = np.empty(int(self.counts[:, buckets.start:buckets.stop].sum()), dtype=self.dtype)
        filled = 0
        for part in range(self.counts.shape[0]):
            for index in buckets:
                count = int(self.counts[part, index])
                if count:
                    _read_into(self.path(part, index), records[filled:filled + count])
                    self.path(part, index).unlink()
                filled += count
        return records

    def stream(self, part: int, bucket: int, rows: int) -> Iterator[np.ndarray]:
        """The records of one file in pieces of at most ``rows``."""
        count = int(self.counts[part, bucket])
        if not count:
            return
        with open(self.path(part, bucket), "rb") as file:
            for start in range(0, count, rows):
                yield np.fromfile(file, dtype=self.dtype, count=min(rows, count - start))

    def remove(self, bucket: int) -> None:
        for part in range(self.counts.shape[0]):
            self.path(part, bucket).unlink(missing_ok=True)


def _read_into(path: Path, out: np.ndarray) -> None:
    view = memoryview(out.view(np.uint8).reshape(-1))
    with open(path, "rb", buffering=0) as file:
        done = 0
        while done < len(view):
            read = file.readinto(view[done:])
            if not read:
                raise ValueError(f"spill file {path} ended early")
            done += read


def _even_bounds(num_keys: int, buckets: int) -> np.ndarray:
    buckets = max(1, min(buckets, num_keys))
    return np.linspace(0, num_keys, buckets + 1).round().astype(np.int64)


# ---------------------------------------------------------------------------------------- the sort
class _ExternalSort:
    def __init__(self, num_nodes: int, memory_bytes: int, options: BuildOptions, scratch: Path):
        self.num_nodes, self.memory_bytes, self.options, self.scratch = num_nodes, memory_bytes, options, scratch
        self.capacity = sort_capacity(memory_bytes, options)
        parts = 2 if options.symmetrize else 1
        self.by_source = _Buckets(scratch, "csr", _even_bounds(num_nodes, SPILL_BUCKETS), _csr_record(options), parts)
        self.by_target = _Buckets(scratch, "csc", _even_bounds(num_nodes, SPILL_BUCKETS), _csc_record(options))
        self.num_input_edges = 0
        self.num_edges = 0
        self.csr_arrays: Dict[str, str] = {}
        self.csc_arrays: Dict[str, str] = {}

    # -- spilling the input
    def spill(self, chunks: Iterable[Sequence]) -> None:
        # Two records per edge with symmetrize: pieces of half a bucket keep the spill in the budget.
        piece = max(1, self.capacity // (2 if self.options.symmetrize else 1))
        for number, chunk in enumerate(chunks):
            src, dst, weight = self._checked_chunk(number, chunk)
            for start in range(0, src.size, piece):
                end = min(src.size, start + piece)
                self._spill_piece(src[start:end], dst[start:end], None if weight is None else weight[start:end],
                                  self.num_input_edges + start)
            self.num_input_edges += src.size

    def _checked_chunk(self, number: int, chunk) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        expected = 3 if self.options.weighted else 2
        if not isinstance(chunk, (tuple, list)) or len(chunk) != expected:
            what = "(src, dst, weight)" if self.options.weighted else "(src, dst)"
            raise ValueError(f"edge chunk {number} must be a pair {what}, got {type(chunk).__name__}"
                             + (f" of {len(chunk)}" if isinstance(chunk, (tuple, list)) else ""))
        src, dst = (_as_ids(f"edge chunk {number}", part, values) for part, values in zip(("src", "dst"), chunk))
        if src.shape != dst.shape:
            raise ValueError(f"edge chunk {number}: src and dst differ in length ({src.size} vs {dst.size})")
        for part, ids in (("src", src), ("dst", dst)):
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.num_nodes):
                bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
                raise ValueError(f"edge chunk {number}: {part} holds node id {bad}, out of range for "
                                 f"{self.num_nodes} nodes")
        weight = None
        if self.options.weighted:
            weight = np.asarray(chunk[2].numpy() if isinstance(chunk[2], torch.Tensor) else chunk[2])
            if weight.shape != src.shape or not np.issubdtype(weight.dtype, np.number):
                raise ValueError(f"edge chunk {number}: weight must be numbers, one per edge ({src.size}), "
                                 f"got {weight.dtype} of shape {weight.shape}")
            weight = weight.astype(np.float32)
            if not np.isfinite(weight).all():
                at = int(np.flatnonzero(~np.isfinite(weight))[0])
                raise ValueError(f"edge chunk {number}: weight holds a non-finite value ({weight[at]}) at edge {at}")
        index = _NUMPY_INDEX[self.options.index_dtype]
        return src.astype(index, copy=False), dst.astype(index, copy=False), weight

    def _spill_piece(self, src, dst, weight, first_id: int) -> None:
        options = self.options
        ids = np.arange(first_id, first_id + src.size, dtype=np.int64)
        loops = src == dst
        kept = ~loops if options.drop_self_loops else slice(None)
        self.by_source.add(self._records(src[kept], dst[kept], ids[kept], None if weight is None else weight[kept]))
        if options.symmetrize:  # a self-loop has no separate reverse
            forward = ~loops
            self.by_source.add(self._records(dst[forward], src[forward], ids[forward],
                                             None if weight is None else weight[forward]), part=1)

    def _records(self, key, other, ids, weight) -> np.ndarray:
        records = np.empty(key.size, dtype=self.by_source.dtype)
        records["key"], records["other"] = key, other
        if self.options.needs_edge_ids:
            records["id"] = ids
        if weight is not None:
            records["weight"] = weight
        return records

    # -- the CSR
    def write_csr(self, folder: Path) -> FileManifest:
        options = self.options
        # Without dropping duplicates, every spilled edge stays: the length is known, so the files
        # are hashed as they are written.
        total = None if options.drop_duplicates else int(self.by_source.sizes().sum())
        outputs = self._writers(folder, total, edge_ids=options.keep_edge_ids)
        self.csr_arrays = {name: str(writer.dtype) for name, writer in outputs.items()}
        offset = 0
        for lo, hi, records in self._sorted_ranges(self.by_source, self._sort_rows):
            offset = self._append(outputs, lo, hi, records, offset)
            slots = records["id"] if options.keep_edge_ids else np.arange(offset - records.size, offset)
            self.by_target.add(self._transposed(records, slots))
        outputs["indptr"].write(np.array([offset], dtype=np.int64))
        self.num_edges = offset
        return {f"{name}.npy": writer.close() for name, writer in outputs.items()}

    def _sort_rows(self, records: np.ndarray, lo: int, hi: int) -> np.ndarray:
        order = _row_order(records, lo, hi, self.num_nodes, self.options)
        records = records[order]
        del order
        if self.options.drop_duplicates and records.size > 1:
            repeated = (records["key"][1:] == records["key"][:-1]) & (records["other"][1:] == records["other"][:-1])
            if repeated.any():  # the first of each run of equal neighbours stays
                records = records[np.concatenate([[True], ~repeated])]
        return records

    def _transposed(self, records: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = np.empty(records.size, dtype=self.by_target.dtype)
        out["key"], out["other"], out["id"] = records["other"], records["key"], ids
        if self.options.weighted:
            out["weight"] = records["weight"]
        return out

    # -- the transpose
    def write_csc(self, folder: Path) -> FileManifest:
        folder.mkdir()
        outputs = self._writers(folder, self.num_edges, edge_ids=True)
        self.csc_arrays = {name: str(writer.dtype) for name, writer in outputs.items()}
        offset = 0
        for lo, hi, records in self._sorted_ranges(self.by_target, _sort_columns):
            offset = self._append(outputs, lo, hi, records, offset)
        outputs["indptr"].write(np.array([offset], dtype=np.int64))
        return {f"{name}.npy": writer.close() for name, writer in outputs.items()}

    # -- shared by both passes
    def _writers(self, folder: Path, total: Optional[int], *, edge_ids: bool) -> Dict[str, NpyWriter]:
        writers = {"indptr": NpyWriter(folder / "indptr.npy", np.int64, (self.num_nodes + 1,)),
                   "indices": NpyWriter(folder / "indices.npy", _NUMPY_INDEX[self.options.index_dtype], (total,))}
        if edge_ids:
            writers["edge_ids"] = NpyWriter(folder / "edge_ids.npy", np.int64, (total,))
        if self.options.weighted:
            writers["edge_weight"] = NpyWriter(folder / "edge_weight.npy", np.float32, (total,))
        return writers

    def _append(self, outputs: Dict[str, NpyWriter], lo: int, hi: int, records: np.ndarray, offset: int) -> int:
        """Appends the sorted rows [lo, hi) to the output files; returns the slots written so far."""
        degree = np.bincount(records["key"].astype(np.int64) - lo, minlength=hi - lo)
        outputs["indptr"].write(offset + np.cumsum(degree) - degree)
        outputs["indices"].write(records["other"])
        if "edge_ids" in outputs:
            outputs["edge_ids"].write(records["id"])
        if "edge_weight" in outputs:
            outputs["edge_weight"].write(records["weight"])
        return offset + records.size

    def _sorted_ranges(self, buckets: _Buckets, sort) -> Iterator[Tuple[int, int, np.ndarray]]:
        """(lo, hi, records of rows lo..hi-1 sorted by ``sort``) covering every node in order,
        each holding at most ``capacity`` records."""
        for group in _groups(buckets.sizes(), self.capacity):
            if len(group) == 1 and buckets.sizes()[group.start] > self.capacity:
                split = self._split(buckets, group.start)
                yield from self._sorted_ranges(split, sort)
                continue
            lo, hi = int(buckets.bounds[group.start]), int(buckets.bounds[group.stop])
            yield lo, hi, sort(buckets.load(group), lo, hi)  # no other reference: freed once sorted

    def _split(self, buckets: _Buckets, bucket: int) -> _Buckets:
        """Re-spills one bucket too large to sort at once into buckets cut by its nodes' degrees."""
        lo, hi = int(buckets.bounds[bucket]), int(buckets.bounds[bucket + 1])
        parts = range(buckets.counts.shape[0])
        degree = np.zeros(hi - lo, dtype=np.int64)
        for part in parts:
            for piece in buckets.stream(part, bucket, self.capacity):
                degree += np.bincount(piece["key"].astype(np.int64) - lo, minlength=hi - lo)
        if int(degree.max()) > self.capacity:
            node = lo + int(degree.argmax())
            raise ValueError(f"node {node} has {int(degree.max())} edges, more than a memory budget of "
                             f"{self.memory_bytes} bytes sorts at once ({self.capacity}); raise the budget")
        split = _Buckets(self.scratch, f"{buckets.name}.{bucket}", lo + _cuts(degree, self.capacity),
                         buckets.dtype, len(parts))
        for part in parts:
            for piece in buckets.stream(part, bucket, self.capacity):
                split.add(piece, part)
        buckets.remove(bucket)
        return split


def _groups(sizes: np.ndarray, capacity: int) -> Iterator[range]:
    """Runs of consecutive buckets holding at most ``capacity`` records together; a bucket larger
    than that comes alone."""
    start, held = 0, 0
    for index, size in enumerate(sizes.tolist()):
        if index > start and held + size > capacity:
            yield range(start, index)
            start, held = index, 0
        held += size
    if len(sizes):
        yield range(start, len(sizes))


def _cuts(degree: np.ndarray, capacity: int) -> np.ndarray:
    """Bounds (relative to the first node) of consecutive node ranges of at most ``capacity`` edges
    each, given each node's degree (none above ``capacity``)."""
    cumulative = np.cumsum(degree)
    bounds = [0]
    while bounds[-1] < degree.size:
        held_before = cumulative[bounds[-1] - 1] if bounds[-1] else 0
        bounds.append(int(np.searchsorted(cumulative, held_before + capacity, side="right")))
    return np.asarray(bounds, dtype=np.int64)


def _row_order(records: np.ndarray, lo: int, hi: int, num_nodes: int, options: BuildOptions) -> np.ndarray:
    """The order of ``records`` (rows lo..hi-1, each part in arrival order) in the CSR.

    The in-memory kernel groups edges by source with a stable counting sort (every input edge
    before every reverse edge of a row, each in id order) and then sorts each row by (target, edge
    id), unless the row already came out ordered by target: such a row keeps its arrival order
    among equal targets. Only symmetrize mixes the two orders (an input edge u->v after the reverse
    of an earlier v->u), and only edge ids and weights tell equal edges apart."""
    keys = _row_keys(records, lo, hi, num_nodes)
    if options.symmetrize and options.needs_edge_ids:
        keys.insert(0, _arrival_tiebreak(records, lo, hi))
    return np.argsort(keys[0], kind="stable") if len(keys) == 1 else np.lexsort(keys)


def _row_keys(records: np.ndarray, lo: int, hi: int, num_nodes: int) -> List[np.ndarray]:
    """Sort keys, most significant last, for (source, target): one int64 when it can hold both."""
    source = records["key"].astype(np.int64)
    source -= lo
    if (hi - lo) * max(num_nodes, 1) >= np.iinfo(np.int64).max:
        return [records["other"].astype(np.int64), source]
    source *= num_nodes
    source += records["other"]
    return [source]


def _arrival_tiebreak(records: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Among equal (source, target): arrival order in rows the kernel found ordered by target,
    edge id order in the others."""
    source = records["key"].astype(np.int64) - lo
    arrival = np.argsort(source, kind="stable")
    rows, targets = source[arrival], records["other"][arrival]
    del arrival
    descending = (rows[1:] == rows[:-1]) & (targets[1:] < targets[:-1])
    unordered = np.zeros(hi - lo, dtype=bool)
    unordered[rows[1:][descending]] = True
    del rows, targets, descending
    return np.where(unordered[source], records["id"], np.arange(records.size, dtype=np.int64))


def _sort_columns(records: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The transpose keeps, within a column, the CSR order of its slots (rows ascending), which is
    the order in which they were spilled."""
    key = records["key"].astype(np.int64) - lo
    if hi - lo <= np.iinfo(np.int16).max:
        key = key.astype(np.int16)  # sorted by radix
    return records[np.argsort(key, kind="stable")]


def _as_ids(where: str, part: str, values) -> np.ndarray:
    array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise ValueError(f"{where}: {part} must be a 1-D array of integer node ids, got {array.dtype} "
                         f"of shape {array.shape}")
    return array


def _write_graph_header(folder: Path, num_nodes: int, num_edges: int, arrays: Dict[str, str], *,
                        transpose: bool) -> Dict[str, object]:
    """graph.json, as :meth:`Graph.save` writes it."""
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "num_nodes": num_nodes, "num_edges": num_edges,
              "arrays": arrays}
    if transpose:
        header["transpose"] = TRANSPOSE_FOLDER
    return text_entry(folder / HEADER_FILE, json.dumps(header, indent=2))
