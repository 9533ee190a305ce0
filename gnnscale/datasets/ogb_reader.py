"""OGB datasets through ogb's own dataset classes, from files already under the data root.

ogb writes processed files beside the raw ones. To keep the data root read-only (it is often a
shared copy), ogb is pointed at a mirror of the dataset folder, made of symbolic links, in the cache.
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


def ogb_folder_name(name: str) -> str:
    return name.replace("-", "_")


def is_ogb_name(name: str) -> bool:
    return name.startswith(("ogbn-", "ogbl-"))


# Old-style OGB split files that hold pickled numpy arrays, which torch>=2.6 refuses to load with
# weights_only=True. Only these exact files (by SHA-256, as OGB published them) are unpickled fully.
TRUSTED_PICKLES = {
    "4a48348f01fad0980a5be269fff7ace300e963144eef22d5ec4fc9830df872ac": "ogbl-ddi split/target/valid.pt",
    "b45cfcf1695babf5a13e90bdf08988be23570ca76af0737f9d517e005ea7e297": "ogbl-ddi split/target/test.pt",
}


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _numpy_globals():
    """What a torch.save of numpy arrays (ogb's processed files) needs to load with weights_only."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed the module the pickles name
    allowed = [np.ndarray, np.dtype, (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    return allowed + [type(np.dtype(kind)) for kind in ("int64", "int32", "float32", "float64", "bool")]


PROCESSED_SUMS = "gnnscale-sha256.json"


def _trusted(path: Path) -> bool:
    """A published OGB split file, or a file ogb processed into our cache (recorded by _record_processed)."""
    digest = _sha256(path)
    if digest in TRUSTED_PICKLES:
        return True
    sums = path.parent / PROCESSED_SUMS
    return sums.is_file() and json.loads(sums.read_text()).get(path.name) == digest


def _record_processed(mirror_root: Path, name: str) -> None:
    """ogb pickles its processed files with a protocol torch's safe loader rejects; note the
    checksums of the ones it just wrote so that later runs may load exactly those."""
    processed = mirror_root / ogb_folder_name(name) / "processed"
    sums_path = processed / PROCESSED_SUMS
    sums = json.loads(sums_path.read_text()) if sums_path.is_file() else {}
    for entry in processed.iterdir():
        if entry.is_file() and entry.name != PROCESSED_SUMS and entry.name not in sums:
            sums[entry.name] = _sha256(entry)
    write_atomically(sums_path, lambda stream: json.dump(sums, stream, indent=1), mode="w")


@contextlib.contextmanager
def _ogb_pickles_allowed():
    """Lets ogb's own ``torch.load`` calls read its files: safe loading (numpy arrays allowed) first,
    full unpickling only for files whose checksum is in TRUSTED_PICKLES; anything else is refused."""
    original_load = torch.load

    def load(path, *args, **kwargs):
        if kwargs.get("weights_only") is False:
            return original_load(path, *args, **kwargs)
        try:
            with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                return original_load(path, *args, **kwargs)
        except pickle.UnpicklingError:
            if not isinstance(path, (str, os.PathLike)) or not _trusted(Path(path)):
                raise ValueError(
                    f"{path} is an old-style pickle that torch refuses to load safely, and its checksum is "
                    "not one of the OGB files gnnscale trusts; re-create it with torch.save of tensors"
                ) from None
            kwargs["weights_only"] = False
            return original_load(path, *args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original_load


def _mirrored_root(root: Path, name: str) -> Path:
    """A cache folder holding links to the dataset's files, where ogb may write its processed files;
    the data root itself is never written to."""
    folder = root / ogb_folder_name(name)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"OGB dataset {name} not found: expected ogb's folder {folder} (gnnscale does not download)"
        )
    mirror_root = cache_root() / "ogb"
    mirror = mirror_root / folder.name
    mirror.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        link = mirror / entry.name
        if link.is_symlink() and link.resolve() != entry.resolve():
            link.unlink()  # the mirror was made from another data root
        if not link.exists():
            link.symlink_to(entry.resolve())
    (mirror / "processed").mkdir(exist_ok=True)
    return mirror_root


def load_ogb(name: str, root: Path):
    mirror_root = _mirrored_root(root, name)
    with _ogb_pickles_allowed():
        dataset = _load_link(name, mirror_root) if name.startswith("ogbl-") else _load_node(name, mirror_root)
    _record_processed(mirror_root, name)
    return dataset


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
