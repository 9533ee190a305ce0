"""A node dataset split over machines: METIS parts written once, one folder per part, each opened
memory-mapped by the machine that trains on it.

    partition_dataset(dataset, 4, "/data/products-4")        # once, or on every machine alike
    part = open_partition("/data/products-4", rank)           # on each machine

Nodes are renumbered so that part p owns the contiguous range ``[node_offsets[p],
node_offsets[p+1])`` of new ids, in the order of their old ids: whose a node is, and where its row
lies, are then a binary search and a subtraction. A part holds the in-edges of the nodes it owns
(CSC, sources as new ids: what a sampler of those nodes reads), the global id of each edge, the
owned nodes' features and labels, the training, validation and test nodes it owns, and its halo
(the other parts' nodes its edges reach, the most referenced first). ``partitions.json`` records
the layout, the edge cut, halo sizes and balance, and every file's size and sha256 checksum; the
folder ``node_ids.npy`` maps new ids back to the dataset's. METIS runs with a seed and balances
the nodes, the training nodes and the in-edges of every part (the constraints DistDGL uses), so
every machine partitioning the same dataset with the same seed writes the same parts.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..atomic import directory_written_atomically
from ..datasets.base import NodeDataset, PathLike
from ..datasets.saved import FileManifest, check_files, save_npy
from ..npy import FEATURE_ALIGNMENT, check_npy_size, map_npy, read_npy_header

FORMAT_NAME = "gnnscale-partitions"
FORMAT_VERSION = 1
MANIFEST = "partitions.json"
SPLITS = ("train", "valid", "test")
_PART_FOLDER = re.compile(r"part-[0-9]+")


# ------------------------------------------------------------------------------------- writing
def metis_parts(dataset: NodeDataset, num_parts: int, *, seed: int = 0) -> torch.Tensor:
    """The part of every node: METIS on the undirected graph, balancing nodes, training nodes and
    in-edges per part."""
    if num_parts == 1:
        return torch.zeros(dataset.graph.num_nodes, dtype=torch.int64)
    import pymetis

    from ..parallel.layout import _undirected

    graph = dataset.graph
    undirected = _undirected(graph)
    train = torch.zeros(graph.num_nodes, dtype=torch.int64)
    train[dataset.splits["train"]] = 1
    # Three constraints per node; METIS needs every weight of a constraint > 0 somewhere.
    weights = torch.stack([torch.ones_like(train), train, graph.degree("in").to(torch.int64)], dim=1)
    weights[:, 1:] += (weights[:, 1:].sum(0) == 0).to(torch.int64)
    options = pymetis.Options()
    options.seed = seed
    adjacency = pymetis.CSRAdjacency(undirected.indptr.astype(np.int64), undirected.indices.astype(np.int64))
    _, membership = pymetis.part_graph(num_parts, adjacency=adjacency, vweights=weights.flatten().tolist(),
                                       options=options)
    return torch.as_tensor(np.asarray(membership, dtype=np.int64))


def partition_dataset(dataset: NodeDataset, num_parts: int, out: PathLike, *, seed: int = 0,
                      parts: Optional[torch.Tensor] = None) -> Path:
    """Writes ``dataset`` split into ``num_parts`` parts to the folder ``out`` (replaced as a whole
    once complete); see the module. ``parts``: each node's part, instead of METIS's."""
    _check_dataset(dataset)
    if isinstance(num_parts, bool) or not isinstance(num_parts, int) or not 1 <= num_parts <= dataset.graph.num_nodes:
        raise ValueError(f"num_parts must be an int in [1, {dataset.graph.num_nodes}], got {num_parts!r}")
    graph = dataset.graph
    n = graph.num_nodes
    part_of = metis_parts(dataset, num_parts, seed=seed) if parts is None else torch.as_tensor(parts, dtype=torch.int64)
    if part_of.shape != (n,) or int(part_of.min()) < 0 or int(part_of.max()) >= num_parts:
        raise ValueError(f"parts must give each of the {n} nodes a part in [0, {num_parts})")
    counts = torch.bincount(part_of, minlength=num_parts)
    if int(counts.min()) == 0:
        raise ValueError(f"part {int(torch.argmin(counts))} of {num_parts} would own no node; use fewer parts")
    order = torch.argsort(part_of * n + torch.arange(n))  # new id -> old id
    new_of = torch.empty(n, dtype=torch.int64)
    new_of[order] = torch.arange(n)
    offsets = torch.zeros(num_parts + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(counts, 0)
    incoming = graph.csc()
    index_dtype = torch.int32 if n <= torch.iinfo(torch.int32).max else torch.int64
    in_degree = incoming.indptr[1:] - incoming.indptr[:-1]
    labels = dataset.labels
    manifest_parts, cut_edges = [], 0
    with directory_written_atomically(Path(out)) as staging:
        files: FileManifest = {"node_ids.npy": save_npy(staging / "node_ids.npy", order.numpy())}
        for p in range(num_parts):
            folder = staging / f"part-{p}"
            folder.mkdir()
            owned = order[offsets[p]:offsets[p + 1]]  # old ids, ascending
            degree = in_degree[owned]
            indptr = torch.zeros(owned.numel() + 1, dtype=torch.int64)
            indptr[1:] = torch.cumsum(degree, 0)
            starts = torch.repeat_interleave(incoming.indptr[owned] - indptr[:-1], degree)
            slots = starts + torch.arange(int(indptr[-1]))
            sources = new_of[incoming.indices[slots].to(torch.int64)]
            remote = (sources < offsets[p]) | (sources >= offsets[p + 1])
            cut_edges += int(remote.sum())
            halo, references = torch.unique(sources[remote], return_counts=True)
            by_use = torch.argsort(references * n + (n - 1 - halo), descending=True)  # most used first, then lower id
            arrays = {"indptr": indptr, "indices": sources.to(index_dtype), "edge_ids": incoming.edge_ids[slots],
                      "labels": labels[owned], "halo": halo[by_use], "halo_references": references[by_use]}
            for split in SPLITS:
                ids = new_of[dataset.splits[split]]
                arrays[split] = torch.sort(ids[(ids >= offsets[p]) & (ids < offsets[p + 1])]).values
            part_files = {f"{name}.npy": save_npy(folder / f"{name}.npy", value.numpy()) for name, value in arrays.items()}
            part_files["features.npy"] = save_npy(folder / "features.npy", dataset.features[owned].numpy(),
                                                  alignment=FEATURE_ALIGNMENT)
            files.update({f"part-{p}/{name}": entry for name, entry in part_files.items()})
            manifest_parts.append({"folder": f"part-{p}", "nodes": owned.numel(), "edges": int(indptr[-1]),
                                   "halo": halo.numel(), "remote_edges": int(remote.sum()),
                                   **{split: arrays[split].numel() for split in SPLITS}})
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": dataset.name,
                    "num_parts": num_parts, "num_nodes": n, "num_edges": graph.num_edges,
                    "num_classes": dataset.num_classes, "num_features": dataset.features.size(1),
                    "feature_dtype": str(dataset.features.numpy().dtype), "label_dtype": str(labels.numpy().dtype),
                    "index_dtype": str(index_dtype).replace("torch.", ""), "seed": seed,
                    "partitioner": "metis" if parts is None else "given",
                    "node_offsets": offsets.tolist(), "edge_cut": cut_edges / max(1, graph.num_edges),
                    "balance": _balance(manifest_parts), "parts": manifest_parts, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return Path(out)


def _check_dataset(dataset: NodeDataset) -> None:
    if not isinstance(dataset, NodeDataset):
        raise ValueError(f"only node datasets are partitioned, got {type(dataset).__name__}")
    if dataset.features is None or dataset.labels is None:
        raise ValueError(f"{dataset.name}: partitioning needs features and labels")
    missing = [split for split in SPLITS if split not in dataset.splits]
    if missing:
        raise ValueError(f"{dataset.name}: partitioning needs train, valid and test splits; missing {missing}")


def _balance(parts) -> Dict[str, float]:
    """Largest part over the mean, per quantity (1.0: perfectly balanced)."""
    balance = {}
    for key in ("nodes", "train", "edges"):
        values = [part[key] for part in parts]
        mean = sum(values) / len(values)
        balance[key] = max(values) / mean if mean else 1.0
    return balance


# ------------------------------------------------------------------------------------- reading
@dataclass
class GraphPart:
    """One machine's part (see the module); tensors are memory-mapped. Ids are new ids unless
    named otherwise; ``indptr`` runs over the owned nodes in id order."""

    folder: Path
    part: int
    num_parts: int
    num_nodes: int
    num_classes: int
    node_offsets: torch.Tensor  # [num_parts + 1]
    indptr: torch.Tensor
    indices: torch.Tensor  # source (new id) of each in-edge of the owned nodes
    edge_ids: torch.Tensor  # the dataset's id of each of those edges
    features: torch.Tensor
    labels: torch.Tensor
    splits: Dict[str, torch.Tensor]
    halo: torch.Tensor  # other parts' nodes the edges reach, most referenced first
    halo_references: torch.Tensor
    node_ids: torch.Tensor  # new id -> the dataset's id, for every node
    manifest_sha256: str

    @property
    def first(self) -> int:
        return int(self.node_offsets[self.part])

    @property
    def stop(self) -> int:
        return int(self.node_offsets[self.part + 1])

    @property
    def num_owned(self) -> int:
        return self.stop - self.first

    def owner_of(self, nodes: torch.Tensor) -> torch.Tensor:
        """The part owning each (new) node id."""
        return torch.searchsorted(self.node_offsets, nodes, right=True) - 1

    def new_ids(self, dataset_ids: torch.Tensor) -> torch.Tensor:
        """New ids of nodes given by the dataset's ids."""
        new_of = torch.empty(self.num_nodes, dtype=torch.int64)
        new_of[self.node_ids] = torch.arange(self.num_nodes)
        return new_of[torch.as_tensor(dataset_ids, dtype=torch.int64)]


def open_partition(folder: PathLike, part: int, *, verify: bool = True) -> GraphPart:
    """Opens part ``part`` of the partitioned dataset in ``folder``, memory-mapped. Every file's
    size and header are checked against ``partitions.json``, and with ``verify`` (the default:
    parts are copied between machines) their sha256 checksums too; a mismatch is refused."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no partitioned dataset in {folder} ({MANIFEST} is missing)")
    raw = manifest_path.read_bytes()
    manifest = _parse_manifest(manifest_path, raw)
    if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < manifest["num_parts"]:
        raise ValueError(f"part must be an int in [0, {manifest['num_parts']}), got {part!r}")
    prefix = f"part-{part}/"
    mine = {name: entry for name, entry in manifest["files"].items() if name.startswith(prefix) or name == "node_ids.npy"}
    expected = {prefix + f"{name}.npy" for name in _PART_ARRAYS} | {"node_ids.npy"}
    if set(mine) != expected:
        raise ValueError(f"{manifest_path} lists {sorted(mine)} for part {part}, expected {sorted(expected)}")
    check_files(folder, mine, checksums=verify)
    arrays = {name: _mapped(folder / f"{prefix}{name}.npy") for name in _PART_ARRAYS}
    node_ids = _mapped(folder / "node_ids.npy")
    offsets = torch.tensor(manifest["node_offsets"], dtype=torch.int64)
    owned = int(offsets[part + 1] - offsets[part])
    n = manifest["num_nodes"]
    _check_part_shapes(folder / prefix, arrays, (int(offsets[part]), int(offsets[part + 1])), n, manifest)
    if node_ids.shape != (n,):
        raise ValueError(f"{folder / 'node_ids.npy'} holds {tuple(node_ids.shape)}, expected ({n},)")
    return GraphPart(folder, part, manifest["num_parts"], n, manifest["num_classes"], offsets, arrays["indptr"],
                     arrays["indices"], arrays["edge_ids"], arrays["features"], arrays["labels"],
                     {split: arrays[split] for split in SPLITS}, arrays["halo"], arrays["halo_references"], node_ids,
                     hashlib.sha256(raw).hexdigest())


_PART_ARRAYS = ("indptr", "indices", "edge_ids", "features", "labels", "halo", "halo_references", *SPLITS)


def _mapped(path: Path) -> torch.Tensor:
    shape, dtype, offset = read_npy_header(path)
    if dtype.hasobject:
        raise ValueError(f"{path} holds Python objects; a partition holds numbers only")
    check_npy_size(path, shape, dtype, offset)
    return torch.from_numpy(map_npy(path))


def _parse_manifest(path: Path, raw: bytes) -> dict:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a {FORMAT_NAME} manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {manifest.get('version')}, expected {FORMAT_VERSION}")
    for key in ("num_parts", "num_nodes", "num_classes"):
        if isinstance(manifest.get(key), bool) or not isinstance(manifest.get(key), int) or manifest[key] < 0:
            raise ValueError(f"{path}: {key!r} must be a non-negative integer")
    offsets = manifest.get("node_offsets")
    if (not isinstance(offsets, list) or len(offsets) != manifest["num_parts"] + 1 or offsets[0] != 0
            or offsets[-1] != manifest["num_nodes"] or any(not isinstance(v, int) for v in offsets)
            or any(b <= a for a, b in zip(offsets, offsets[1:]))):
        raise ValueError(f"{path}: 'node_offsets' must rise from 0 to num_nodes, one range per part")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ValueError(f"{path} has no 'files' manifest")
    for relative, entry in files.items():
        top = relative.split("/")[0]
        if not (relative == "node_ids.npy" or (_PART_FOLDER.fullmatch(top) and relative.count("/") == 1)):
            raise ValueError(f"{path} lists a file outside its parts: {relative!r}")
        if (not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) or isinstance(entry.get("bytes"), bool)
                or not isinstance(entry.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise ValueError(f"{path}: the entry of {relative!r} needs 'bytes' (an integer) and 'sha256' (64 hex digits)")
    return manifest


def _check_part_shapes(folder: Path, arrays: Dict[str, torch.Tensor], span, num_nodes: int, manifest) -> None:
    def refuse(name, why):
        raise ValueError(f"{folder / (name + '.npy')}: {why}")

    owned = span[1] - span[0]
    indptr = arrays["indptr"]
    if indptr.shape != (owned + 1,) or int(indptr[0]) != 0 or int(indptr[-1]) != arrays["indices"].numel():
        refuse("indptr", f"expected {owned + 1} row pointers from 0 to the {arrays['indices'].numel()} edges")
    if arrays["edge_ids"].shape != arrays["indices"].shape:
        refuse("edge_ids", "needs one id per edge")
    if arrays["features"].dim() != 2 or arrays["features"].size(0) != owned or \
            arrays["features"].size(1) != manifest.get("num_features"):
        refuse("features", f"expected {owned} rows of {manifest.get('num_features')} features")
    if arrays["labels"].size(0) != owned:
        refuse("labels", f"expected one label per owned node ({owned})")
    for name, (low, high) in (("indices", (0, num_nodes)), ("halo", (0, num_nodes)),
                              *((split, span) for split in SPLITS)):
        values = arrays[name]
        if values.numel() and (int(values.min()) < low or int(values.max()) >= high):
            refuse(name, f"holds node ids outside [{low}, {high})")
