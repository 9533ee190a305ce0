"""A node or link dataset saved as plain ``.npy`` files and opened memory-mapped: every process
that opens it (the ranks of a data-parallel job on one machine, say) reads the one copy in the
operating system's page cache, so host memory does not grow with the number of processes.

    save_dataset(load_dataset("ogbn-products"), "/data/products")   # once
    dataset = load_dataset("/data/products")                          # in every rank

The folder holds ``dataset.json`` (what it is, each array's dtype and shape, and a manifest of
every other file in the folder with its size and sha256 checksum), the graph (``graph/``,
:meth:`Graph.save`'s layout, with its transpose: the in-edges every sampler reads, mapped rather
than built in each process) and one ``.npy`` file per array. ``features.npy`` starts its rows at a
4096-byte boundary, so that a row read with direct I/O touches as few disk blocks as it can.
Nothing is unpickled; every file's size is checked against the manifest and its header before it is
mapped, split ids are checked against the number of nodes, and ``open_dataset(folder, verify=True)``
also checks every checksum. Folders of format version 1 (no manifest) still open.
"""
import hashlib
import json
import re
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple, Union

import numpy as np
import torch

from ..atomic import directory_written_atomically
from ..graph import Graph
from ..npy import FEATURE_ALIGNMENT, NPY_ALIGNMENT, check_npy_size, map_npy, npy_header, read_npy_header
from .base import LinkDataset, NodeDataset, PathLike

FORMAT_NAME = "gnnscale-dataset"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER_FILE = "dataset.json"
# Where the data of features.npy starts: a multiple of the largest block direct I/O reads in.

SavedDataset = Union[NodeDataset, LinkDataset]
FileManifest = Dict[str, Dict[str, object]]  # relative path -> {"bytes": size, "sha256": hex digest}
# names become file names: plain words, so a header cannot point outside its folder
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+){0,2}")
_MANIFEST_PATH = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_HASH_BLOCK = 16 << 20


def is_saved_dataset(path: PathLike) -> bool:
    return (Path(path) / HEADER_FILE).is_file()


# ---------------------------------------------------------------------------------------- .npy files
class NpyWriter:
    """Writes a C-order .npy file front to back from consecutive blocks of rows, hashing it as it
    goes. ``shape[0]`` may be None when the number of rows is known only at the end: the header is
    then rewritten on :meth:`close`, and the file hashed by reading it back."""

    def __init__(self, path: Path, dtype, shape: Tuple[Optional[int], ...], *, alignment: int = NPY_ALIGNMENT):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.rows = 0
        self._file = open(self.path, "xb")
        self._hash = hashlib.sha256() if shape[0] is not None else None
        self._alignment = alignment
        self._write(npy_header(self.dtype, (shape[0] or 0,) + self.shape[1:], alignment=alignment))

    def _write(self, data) -> None:
        self._file.write(data)
        if self._hash is not None:
            self._hash.update(data)

    def write(self, block) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: a block of shape {block.shape} does not fit rows of shape {self.shape[1:]}")
        self.rows += block.shape[0] if block.ndim else 1
        self._write(memoryview(block.reshape(-1)).cast("B"))

    def close(self) -> Dict[str, object]:
        """Finishes the file; returns its manifest entry (size and sha256)."""
        expected = self.shape[0]
        if expected is not None and self.rows != expected:
            self._file.close()
            raise ValueError(f"{self.path}: {self.rows} rows written, {expected} expected")
        if expected is None:
            self._file.seek(0)
            self._file.write(npy_header(self.dtype, (self.rows,) + self.shape[1:], alignment=self._alignment))
        self._file.close()
        if expected is None:
            return file_entry(self.path)
        return {"bytes": self.path.stat().st_size, "sha256": self._hash.hexdigest()}


def save_npy(path: Path, array: np.ndarray, *, alignment: int = NPY_ALIGNMENT,
             block_bytes: int = _HASH_BLOCK) -> Dict[str, object]:
    """Writes ``array`` (in memory or mapped) as a .npy file in blocks of rows; returns its manifest entry."""
    array = np.asarray(array)
    writer = NpyWriter(path, array.dtype, array.shape, alignment=alignment)
    try:
        if array.ndim == 0:
            writer.write(array)
        else:
            rows = max(1, block_bytes // max(1, array[:1].nbytes))
            for start in range(0, array.shape[0], rows):
                writer.write(array[start:start + rows])
    except BaseException:
        writer._file.close()
        raise
    return writer.close()


def text_entry(path: Path, text: str) -> Dict[str, object]:
    """Writes a small text file; returns its manifest entry."""
    data = text.encode("utf-8")
    path.write_bytes(data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_entry(path: Path) -> Dict[str, object]:
    """Size and sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_HASH_BLOCK), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


# ---------------------------------------------------------------------------------------- writing
def _arrays_of(dataset: SavedDataset) -> Dict[str, torch.Tensor]:
    arrays = {"features": dataset.features}
    if isinstance(dataset, NodeDataset):
        arrays["labels"] = dataset.labels
        arrays.update({f"split-{name}": index for name, index in dataset.splits.items()})
    else:
        for split, parts in dataset.edge_split.items():
            arrays.update({f"edges-{split}-{part}": values for part, values in parts.items()})
    return {name: tensor for name, tensor in arrays.items() if tensor is not None}


def check_array_names(names: Iterable[str]) -> None:
    bad_names = sorted(name for name in names if not _ARRAY_NAME.fullmatch(name))
    if bad_names:
        raise ValueError(f"split names must be plain words (letters, digits, '_'), got arrays {bad_names}")


def save_array(folder: Path, name: str, array: np.ndarray) -> Dict[str, object]:
    """Writes one array of a dataset folder (features row-aligned); returns its manifest entry."""
    alignment = FEATURE_ALIGNMENT if name == "features" else NPY_ALIGNMENT
    return save_npy(folder / f"{name}.npy", array, alignment=alignment)


def save_dataset(dataset: SavedDataset, folder: PathLike) -> Path:
    """Writes ``dataset`` (a NodeDataset or LinkDataset) into ``folder``, replacing it as a whole
    only once every file is written."""
    if not isinstance(dataset, (NodeDataset, LinkDataset)):
        raise ValueError(f"only node and link datasets can be saved, got {type(dataset).__name__}")
    arrays = _arrays_of(dataset)
    check_array_names(arrays)
    with directory_written_atomically(folder) as staging:
        dataset.graph.save(staging / "graph", with_transpose=True)
        # Graph.save writes through np.save: its files are hashed back from the page cache.
        files = {path.relative_to(staging).as_posix(): file_entry(path)
                 for path in sorted((staging / "graph").rglob("*")) if path.is_file()}
        specs = {}
        for name, tensor in arrays.items():
            array = tensor.detach().cpu().contiguous().numpy()
            files[f"{name}.npy"] = save_array(staging, name, array)
            specs[name] = {"dtype": str(array.dtype), "shape": list(array.shape)}
        write_header(staging, dataset_header(dataset, specs), files)
    return Path(folder)


def dataset_header(dataset: SavedDataset, specs: Dict[str, dict]) -> dict:
    """The fields of dataset.json that describe ``dataset`` (a NodeDataset or LinkDataset)."""
    if isinstance(dataset, NodeDataset):
        return node_header(dataset.name, specs, num_classes=dataset.num_classes, multilabel=dataset.multilabel)
    return {"name": dataset.name, "kind": "link", "arrays": specs, "metric": dataset.metric}


def node_header(name: str, specs: Dict[str, dict], *, num_classes: int, multilabel: bool = False) -> dict:
    return {"name": name, "kind": "node", "arrays": specs, "num_classes": num_classes, "multilabel": multilabel}


def write_header(staging: Path, fields: dict, files: FileManifest) -> None:
    """dataset.json: ``fields`` (name, kind, arrays...) and the manifest of every file beside it."""
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **fields, "files": dict(sorted(files.items()))}
    text_entry(staging / HEADER_FILE, json.dumps(header, indent=2))


# ---------------------------------------------------------------------------------------- reading
def open_dataset(folder: PathLike, *, verify: bool = False) -> SavedDataset:
    """Opens a dataset written by :func:`save_dataset`: features and the graph memory-mapped
    (copy-on-write: the files are never modified), labels and splits read. Every file's size is
    checked against the manifest; with ``verify`` its sha256 checksum too (reading every byte)."""
    folder = Path(folder)
    header = _read_header(folder / HEADER_FILE)
    if verify:  # before anything is mapped
        check_files(folder, header.get("files", {}), checksums=True)
    graph = Graph.load(folder / "graph")
    arrays = {name: _open_array(folder / f"{name}.npy", spec, mmap=name == "features")
              for name, spec in header["arrays"].items()}
    features = arrays.pop("features", None)
    if features is not None and (features.dim() != 2 or features.size(0) != graph.num_nodes):
        raise ValueError(f"{folder}: features have shape {tuple(features.shape)}, not [{graph.num_nodes}, F]")
    for name, values in arrays.items():
        _check_ids(folder, name, values, graph.num_nodes)
    # Each file was checked against its own header above (with the more telling message); the
    # manifest also catches a file replaced by another of a different size.
    check_files(folder, header.get("files", {}), checksums=False)
    feature_file = folder / "features.npy" if features is not None else None  # what the disk tier reads rows from
    if header["kind"] == "node":
        splits = {name[len("split-"):]: values for name, values in arrays.items() if name.startswith("split-")}
        labels = arrays.get("labels")
        if labels is not None and labels.size(0) != graph.num_nodes:
            raise ValueError(f"{folder}: {labels.size(0)} labels for {graph.num_nodes} nodes")
        return NodeDataset(header["name"], graph, features, labels, splits, int(header.get("num_classes", 0)),
                           bool(header.get("multilabel", False)), feature_file=feature_file)
    edge_split: Dict[str, Dict[str, torch.Tensor]] = {}
    for name, values in arrays.items():
        _, split, part = name.split("-", 2)
        edge_split.setdefault(split, {})[part] = values
    return LinkDataset(header["name"], graph, features, edge_split, str(header.get("metric", "")),
                       feature_file=feature_file)


def verify_dataset(folder: PathLike) -> int:
    """Checks every file of a saved dataset against its manifest size and sha256 checksum, reading
    every byte; returns how many files were checked. A folder without a manifest (format version 1)
    has nothing to check against and is refused."""
    folder = Path(folder)
    header = _read_header(folder / HEADER_FILE)
    if "files" not in header:
        raise ValueError(f"{folder / HEADER_FILE} has no manifest of checksums (format version "
                         f"{header['version']}); save the dataset again to get one")
    check_files(folder, header["files"], checksums=True)
    return len(header["files"])


def check_files(folder: Path, files: FileManifest, *, checksums: bool) -> None:
    """Raises ValueError naming the first file whose size (or, with ``checksums``, whose sha256)
    differs from the manifest, FileNotFoundError for a missing one."""
    for relative, entry in files.items():
        path = folder / relative
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {HEADER_FILE} but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ValueError(f"{path} is {size} bytes but {HEADER_FILE} says {entry['bytes']}")
    if checksums:
        for relative, entry in files.items():
            if file_entry(folder / relative)["sha256"] != entry["sha256"]:
                raise ValueError(f"{folder / relative}: its sha256 checksum differs from the one in {HEADER_FILE}: "
                                 f"the file is corrupt or was changed after it was written")


def _check_ids(folder: Path, name: str, values: torch.Tensor, num_nodes: int) -> None:
    """Split ids and edge endpoints must be nodes of the graph."""
    if not (name.startswith("split-") or name.startswith("edges-")) or values.numel() == 0:
        return
    if values.is_floating_point() or values.dtype == torch.bool:
        raise ValueError(f"{folder / (name + '.npy')} holds {values.dtype}, not integer node ids")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_nodes:
        raise ValueError(f"{folder / (name + '.npy')} holds node id {low if low < 0 else high}, outside the graph's "
                         f"{num_nodes} nodes")


def _open_array(path: Path, spec: dict, *, mmap: bool) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is listed in {HEADER_FILE} but missing")
    shape, dtype, offset = read_npy_header(path)
    if dtype.hasobject or str(dtype) != spec["dtype"] or list(shape) != spec["shape"]:
        raise ValueError(f"{path} holds {dtype} of shape {list(shape)}, but {HEADER_FILE} says {spec['dtype']} "
                         f"of shape {spec['shape']}")
    check_npy_size(path, shape, dtype, offset)
    return torch.from_numpy(map_npy(path) if mmap else np.load(path, allow_pickle=False))


def _read_header(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no saved dataset in {path.parent} ({HEADER_FILE} is missing)")
    try:
        header = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a {FORMAT_NAME} header")
    if header.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{path} has format version {header.get('version')}, expected one of {READABLE_VERSIONS}")
    if header.get("kind") not in ("node", "link") or not isinstance(header.get("name"), str):
        raise ValueError(f"{path}: 'kind' must be 'node' or 'link' and 'name' a string")
    arrays = header.get("arrays")
    if not isinstance(arrays, dict) or not all(
            isinstance(spec, dict) and isinstance(spec.get("dtype"), str) and isinstance(spec.get("shape"), list)
            for spec in arrays.values()):
        raise ValueError(f"{path} has no 'arrays' field mapping names to dtype and shape")
    bad_names = sorted(name for name in arrays if not _ARRAY_NAME.fullmatch(name))
    if bad_names:
        raise ValueError(f"{path} lists array names that are not plain words joined by '-': {bad_names}")
    known = ("features", "labels", "split-", "edges-")
    unknown = sorted(name for name in arrays if not any(name == k or (k.endswith("-") and name.startswith(k))
                                                         for k in known))
    if unknown or any(name.startswith("edges-") and name.count("-") < 2 for name in arrays):
        raise ValueError(f"{path} lists arrays a dataset does not hold: {unknown}")
    if header["version"] >= 2:
        _check_manifest(path, header.get("files"))
    return header


def _check_manifest(path: Path, files) -> None:
    """The manifest maps paths inside the folder to a size and a sha256 hex digest."""
    if not isinstance(files, dict):
        raise ValueError(f"{path} has no 'files' manifest")
    for relative, entry in files.items():
        if not _MANIFEST_PATH.fullmatch(relative) or ".." in relative.split("/"):
            raise ValueError(f"{path} lists a file outside its folder: {relative!r}")
        if (not isinstance(entry, dict) or isinstance(entry.get("bytes"), bool) or not isinstance(entry.get("bytes"), int)
                or not isinstance(entry.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise ValueError(f"{path}: the manifest entry of {relative!r} needs 'bytes' (an integer) and "
                             f"'sha256' (64 hex digits)")
