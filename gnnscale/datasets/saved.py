"""A node or link dataset saved as plain ``.npy`` files and opened memory-mapped: every process
that opens it (the ranks of a data-parallel job on one machine, say) reads the one copy in the
operating system's page cache, so host memory does not grow with the number of processes.

    save_dataset(load_dataset("ogbn-products"), "/data/products")   # once
    dataset = load_dataset("/data/products")                          # in every rank

The folder holds ``dataset.json`` (what it is, each array's dtype and shape), the graph
(``graph/``, :meth:`Graph.save`'s layout, with its transpose: the in-edges every sampler reads,
mapped rather than built in each process) and one ``.npy`` file per array. Nothing is unpickled;
every file's size is checked against its header before it is mapped, and split ids are checked
against the number of nodes.
"""
import json
import re
from pathlib import Path
from typing import Dict, Union

import numpy as np
import torch

from ..atomic import directory_written_atomically
from ..graph import Graph, check_npy_size, read_npy_header
from .base import LinkDataset, NodeDataset, PathLike

FORMAT_NAME = "gnnscale-dataset"
FORMAT_VERSION = 1
HEADER_FILE = "dataset.json"

SavedDataset = Union[NodeDataset, LinkDataset]
# names become file names: plain words, so a header cannot point outside its folder
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+){0,2}")


def is_saved_dataset(path: PathLike) -> bool:
    return (Path(path) / HEADER_FILE).is_file()


def _arrays_of(dataset: SavedDataset) -> Dict[str, torch.Tensor]:
    arrays = {"features": dataset.features}
    if isinstance(dataset, NodeDataset):
        arrays["labels"] = dataset.labels
        arrays.update({f"split-{name}": index for name, index in dataset.splits.items()})
    else:
        for split, parts in dataset.edge_split.items():
            arrays.update({f"edges-{split}-{part}": values for part, values in parts.items()})
    return {name: tensor for name, tensor in arrays.items() if tensor is not None}


def save_dataset(dataset: SavedDataset, folder: PathLike) -> Path:
    """Writes ``dataset`` (a NodeDataset or LinkDataset) into ``folder``, replacing it as a whole
    only once every file is written."""
    if not isinstance(dataset, (NodeDataset, LinkDataset)):
        raise ValueError(f"only node and link datasets can be saved, got {type(dataset).__name__}")
    arrays = _arrays_of(dataset)
    bad_names = sorted(name for name in arrays if not _ARRAY_NAME.fullmatch(name))
    if bad_names:
        raise ValueError(f"split names must be plain words (letters, digits, '_'), got arrays {bad_names}")
    with directory_written_atomically(folder) as staging:
        dataset.graph.save(staging / "graph", with_transpose=True)
        for name, tensor in arrays.items():
            np.save(staging / f"{name}.npy", tensor.detach().cpu().contiguous().numpy(), allow_pickle=False)
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "name": dataset.name,
                  "kind": "node" if isinstance(dataset, NodeDataset) else "link",
                  "arrays": {name: {"dtype": str(tensor.numpy().dtype), "shape": list(tensor.shape)}
                             for name, tensor in arrays.items()}}
        if isinstance(dataset, NodeDataset):
            header.update(num_classes=dataset.num_classes, multilabel=dataset.multilabel)
        else:
            header.update(metric=dataset.metric)
        (staging / HEADER_FILE).write_text(json.dumps(header, indent=2))
    return Path(folder)


def open_dataset(folder: PathLike) -> SavedDataset:
    """Opens a dataset written by :func:`save_dataset`: features and the graph memory-mapped
    (copy-on-write: the files are never modified), labels and splits read."""
    folder = Path(folder)
    header = _read_header(folder / HEADER_FILE)
    graph = Graph.load(folder / "graph")
    arrays = {name: _open_array(folder / f"{name}.npy", spec, mmap=name == "features")
              for name, spec in header["arrays"].items()}
    features = arrays.pop("features", None)
    if features is not None and (features.dim() != 2 or features.size(0) != graph.num_nodes):
        raise ValueError(f"{folder}: features have shape {tuple(features.shape)}, not [{graph.num_nodes}, F]")
    for name, values in arrays.items():
        _check_ids(folder, name, values, graph.num_nodes)
    if header["kind"] == "node":
        splits = {name[len("split-"):]: values for name, values in arrays.items() if name.startswith("split-")}
        labels = arrays.get("labels")
        if labels is not None and labels.size(0) != graph.num_nodes:
            raise ValueError(f"{folder}: {labels.size(0)} labels for {graph.num_nodes} nodes")
        return NodeDataset(header["name"], graph, features, labels, splits, int(header.get("num_classes", 0)),
                           bool(header.get("multilabel", False)))
    edge_split: Dict[str, Dict[str, torch.Tensor]] = {}
    for name, values in arrays.items():
        _, split, part = name.split("-", 2)
        edge_split.setdefault(split, {})[part] = values
    return LinkDataset(header["name"], graph, features, edge_split, str(header.get("metric", "")))


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
    return torch.from_numpy(np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False))


def _read_header(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no saved dataset in {path.parent} ({HEADER_FILE} is missing)")
    try:
        header = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a {FORMAT_NAME} header")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {header.get('version')}, expected {FORMAT_VERSION}")
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
    return header
