"""OGB datasets through ogb's own dataset classes, from files already under the data root.

ogb writes processed files beside the raw ones. To keep the data root read-only (it is often a
shared copy), ogb is pointed at a mirror of the dataset folder, made of symbolic links, in the cache.
The mirror never links the dataset's own ``processed/`` folder: ogb processes the raw files again
into the cache, because only a processed file gnnscale saw ogb write may be unpickled.
"""
import contextlib
import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomically
from ..graph import Graph
from .base import LinkDataset, NodeDataset, cache_root

# Beside (not inside) the mirrored dataset folder, so that no file of the data root can stand in for it.
WRITTEN_BY_OGB = "written-by-ogb-sha256.json"


def ogb_folder_name(name: str) -> str:
    return name.replace("-", "_")


def is_ogb_name(name: str) -> bool:
    return name.startswith(("ogbn-", "ogbl-"))


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _numpy_globals():
    """What a torch.save of numpy arrays (ogb's split files) needs to load with weights_only."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed the module the pickles name
    allowed = [np.ndarray, np.dtype, (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    return allowed + [type(np.dtype(kind)) for kind in ("int64", "int32", "float32", "float64", "bool")]


class _WrittenByOgb:
    """Checksums of the processed files ogb saved into one mirror, taken right after each save.

    ogb pickles its processed files with protocol 4, which torch's safe loader cannot read; these
    records are what lets a later run unpickle exactly those files, and nothing else."""

    def __init__(self, ogb_root: Path, folder_name: str):
        self.record = ogb_root / WRITTEN_BY_OGB
        self.processed = (ogb_root / folder_name / "processed").resolve()

    def sums(self) -> dict:
        return json.loads(self.record.read_text()) if self.record.is_file() else {}

    def _key(self, path) -> str:
        """The file's name when it lies directly in the mirror's processed folder, else ''."""
        if not isinstance(path, (str, os.PathLike)):
            return ""
        resolved = Path(path).resolve()
        return resolved.name if resolved.parent == self.processed and resolved.is_file() else ""

    def note(self, path) -> None:
        key = self._key(path)
        if key:
            sums = self.sums()
            sums[key] = _sha256(self.processed / key)
            write_atomically(self.record, lambda stream: json.dump(sums, stream, indent=1), mode="w")

    def holds(self, path) -> bool:
        key = self._key(path)
        return bool(key) and self.sums().get(key) == _sha256(self.processed / key)

    def drop_unrecorded(self) -> None:
        """Removes processed files with no record (e.g. a save cut short), so that ogb writes them again."""
        recorded = self.sums()
        for entry in self.processed.iterdir():
            if entry.name not in recorded and not entry.is_dir():
                entry.unlink()


@contextlib.contextmanager
def _ogb_file_policy(written: _WrittenByOgb):
    """While ogb runs, its ``torch.load`` calls read with torch's safe loader (numpy arrays allowed);
    only a file ogb itself saved into the mirror, unchanged since, is unpickled fully. Its
    ``torch.save`` calls are recorded so that later runs can tell those files apart."""
    original_load, original_save = torch.load, torch.save

    def load(f, *args, **kwargs):
        kwargs.pop("weights_only", None)  # gnnscale, not the caller, decides how much to trust the file
        try:
            with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                return original_load(f, *args, weights_only=True, **kwargs)
        except pickle.UnpicklingError:
            if not written.holds(f):
                raise ValueError(
                    f"{f} holds objects torch's safe loader refuses (a pickle can run code), and its checksum "
                    "is not one gnnscale recorded when ogb wrote the file into its cache; refusing to unpickle "
                    f"it. Split files must hold tensors or numpy arrays saved with torch.save; a processed "
                    f"file in {written.processed} is made again from the raw files once deleted"
                ) from None
        return original_load(f, *args, weights_only=False, **kwargs)

    def save(obj, f, *args, **kwargs):
        original_save(obj, f, *args, **kwargs)
        written.note(f)

    torch.load, torch.save = load, save
    try:
        yield
    finally:
        torch.load, torch.save = original_load, original_save


def _mirrored_root(root: Path, name: str) -> Path:
    """A cache folder holding links to the dataset's files, where ogb may write its processed files;
    the data root itself is never written to. Each data folder gets its own mirror, so processed
    files made from one copy of a dataset are never read for another."""
    folder = root / ogb_folder_name(name)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"OGB dataset {name} not found: expected ogb's folder {folder} (gnnscale does not download)"
        )
    if not (folder / "raw").is_dir():
        raise FileNotFoundError(
            f"OGB dataset {name}: {folder} has no raw/ folder; gnnscale processes ogb's raw files itself "
            "(it never reads a dataset's own processed/ files) and does not download"
        )
    source = folder.resolve()
    ogb_root = cache_root() / "ogb" / f"{folder.name}-{hashlib.sha256(str(source).encode()).hexdigest()[:16]}"
    mirror = ogb_root / folder.name
    mirror.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name == "processed":
            continue
        link, target = mirror / entry.name, entry.resolve()
        if link.is_symlink() and link.resolve() != target:
            link.unlink()  # the entry in the data folder was replaced since the mirror was made
        if not link.exists():
            link.symlink_to(target)
    (mirror / "processed").mkdir(exist_ok=True)
    return ogb_root


def load_ogb(name: str, root: Path):
    ogb_root = _mirrored_root(root, name)
    written = _WrittenByOgb(ogb_root, ogb_folder_name(name))
    written.drop_unrecorded()
    with _ogb_file_policy(written):
        return _load_link(name, ogb_root) if name.startswith("ogbl-") else _load_node(name, ogb_root)


def _tensor(value, dtype=None):
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    return tensor if dtype is None else tensor.to(dtype)


def _features(graph_dict):
    feat = graph_dict.get("node_feat")
    return None if feat is None else _tensor(feat, torch.float32)


def _load_node(name: str, root: Path) -> NodeDataset:
    from ogb.nodeproppred import NodePropPredDataset

    dataset = NodePropPredDataset(name=name, root=str(root))
    graph_dict, labels = dataset[0]
    num_nodes = int(graph_dict["num_nodes"])
    # OGB node datasets are evaluated as undirected graphs (as in its reference examples).
    graph = Graph.from_edge_index(_tensor(graph_dict["edge_index"], torch.int64), num_nodes, symmetrize=True,
                                  drop_duplicates=True)
    labels = _tensor(labels, torch.int64).view(num_nodes, -1)
    splits = {key: _tensor(value, torch.int64) for key, value in dataset.get_idx_split().items()}
    multilabel = labels.size(1) > 1
    return NodeDataset(
        name=name,
        graph=graph,
        features=_features(graph_dict),
        labels=labels if multilabel else labels.view(-1),
        splits=splits,
        num_classes=int(dataset.num_tasks if multilabel else dataset.num_classes),
        multilabel=multilabel,
    )


def _load_link(name: str, root: Path) -> LinkDataset:
    from ogb.linkproppred import LinkPropPredDataset

    dataset = LinkPropPredDataset(name=name, root=str(root))
    graph_dict = dataset[0]
    num_nodes = int(graph_dict["num_nodes"])
    split = {
        part: {key: _tensor(value) for key, value in contents.items()}
        for part, contents in dataset.get_edge_split().items()
    }
    train = split["train"]["edge"].to(torch.int64)
    graph = Graph.from_edge_index(train.t().contiguous(), num_nodes, symmetrize=True)
    return LinkDataset(name=name, graph=graph, features=_features(graph_dict), edge_split=split,
                       metric=dataset.eval_metric)
