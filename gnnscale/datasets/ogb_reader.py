"""OGB datasets through ogb's own dataset classes, from files already under the data root.

ogb writes processed files beside the raw ones. To keep the data root read-only (it is often a
shared copy), ogb is pointed at a mirror of the dataset folder, made of symbolic links, in the cache.
The mirror never links the dataset's own ``processed/`` folder: ogb processes the raw files again
into the cache, because only a processed file gnnscale saw ogb write may be unpickled. Every other
pickle ogb reads (the split files) goes through torch's safe loader, numpy arrays in them through
the checks of ``safe_pickle``.
"""
import contextlib
import hashlib
import io
import json
import os
import pickle
import stat
import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomically
from ..graph import Graph
from .base import LinkDataset, NodeDataset, cache_root
from .ogb_package import import_ogb
from .safe_pickle import torch_safe_globals

# Beside (not inside) the mirrored dataset folder, so that no file of the data root can stand in for it.
WRITTEN_BY_OGB = "written-by-ogb-sha256.json"


def ogb_folder_name(name: str) -> str:
    return name.replace("-", "_")


def is_ogb_name(name: str) -> bool:
    return name.startswith(("ogbn-", "ogbl-"))


def _sha256(contents: bytes) -> str:
    return hashlib.sha256(contents).hexdigest()


def _read_regular_file(path, follow_links: bool) -> bytes:
    # O_NONBLOCK: opening a FIFO the data folder links to would wait for a writer.
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    with open(os.open(path, flags), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"{path} is not a regular file (a device or a FIFO can block or never end)")
        return handle.read()


def _ogb_description(name: str):
    """ogb's spelling of the dataset's name and its row of ogb's master.csv (the files ogb reads)."""
    import pandas as pd

    ogb = import_ogb()

    task = "nodeproppred" if name.startswith("ogbn-") else "linkproppred"
    master = pd.read_csv(Path(ogb.__file__).parent / task / "master.csv", index_col=0, keep_default_na=False)
    spelling = {known.lower(): known for known in master}.get(name.lower())
    if spelling is None:
        raise ValueError(f"unknown OGB dataset {name!r}; ogb {ogb.__version__} knows {sorted(master)}")
    return spelling, master[spelling]


# ogbn-proteins' download names its species file species.csv.gz; ogb renames it on first read.
_ALSO_SHIPPED_AS = {"node_species.csv.gz": "species.csv.gz"}


def _required_raw_files(description, node_task: bool) -> list:
    """The raw files ogb reads to process the dataset. ogb downloads the dataset when the first is
    missing, and fails with less clear errors on the others."""
    binary, hetero = description["binary"] == "True", description["is hetero"] == "True"
    if hetero:
        return (["edge_index_dict.npz", "num_nodes_dict.npz", "num_edges_dict.npz"] if binary
                else ["triplet-type-list.csv.gz", "num-node-dict.csv.gz"])
    if binary:
        files = ["data.npz"]
    else:
        extra = [f"{file}.csv.gz" for key in ("additional node files", "additional edge files")
                 for file in description[key].split(",") if file != "None"]
        files = ["edge.csv.gz", "num-node-list.csv.gz", "num-edge-list.csv.gz"] + extra
    if node_task:
        files.append("node-label.npz" if binary else "node-label.csv.gz")
    return files


class _WrittenByOgb:
    """Checksums of the processed files ogb saved into one mirror, taken of the bytes gnnscale wrote.

    ogb pickles its processed files with protocol 4, which torch's safe loader cannot read; these
    records are what lets a later run unpickle exactly those files, and nothing else. A file is
    trusted only where ogb keeps it, directly in the mirror's own processed/ folder, reached through
    no link, and the bytes hashed are the very bytes unpickled."""

    def __init__(self, ogb_root: Path, folder_name: str):
        self.record = ogb_root / WRITTEN_BY_OGB
        self.processed = ogb_root / folder_name / "processed"

    def sums(self) -> dict:
        return json.loads(self.record.read_text()) if self.record.is_file() else {}

    def name_of(self, path) -> str:
        """The file's name when ``path`` is a processed file's place in the mirror, else ''."""
        if not isinstance(path, (str, os.PathLike)) or Path(path).parent != self.processed:
            return ""
        return Path(path).name

    def read(self, path) -> bytes:
        """The file's bytes, read once; a processed file never through a link."""
        if not isinstance(path, (str, os.PathLike)):
            return path.read()
        return _read_regular_file(path, follow_links=not self.name_of(path))

    def holds(self, path, contents: bytes) -> bool:
        name = self.name_of(path)
        return bool(name) and self.sums().get(name) == _sha256(contents)

    def keep(self, name: str, contents: bytes) -> None:
        """Writes a processed file ogb saved, then records its checksum."""
        write_atomically(self.processed / name, lambda stream: stream.write(contents))
        sums = self.sums()
        sums[name] = _sha256(contents)
        write_atomically(self.record, lambda stream: json.dump(sums, stream, indent=1), mode="w")

    def drop_unrecorded(self) -> None:
        """Removes processed files with no record (e.g. a save cut short), so that ogb writes them again."""
        recorded = self.sums()
        for entry in self.processed.iterdir():
            if entry.name not in recorded and (entry.is_symlink() or not entry.is_dir()):
                entry.unlink()


def _refusal(error: Exception) -> str:
    # torch re-raises what its safe loader refused with a long explanation; the error it
    # replaced says what the file asked for.
    reason = str(error.__context__ or error).strip().splitlines()[0]
    return reason.split(" Please use ")[0]


@contextlib.contextmanager
def _ogb_file_policy(written: _WrittenByOgb):
    """While ogb runs, its ``torch.load`` calls read with torch's safe loader (numpy arrays checked
    by ``safe_pickle``); only a file ogb itself saved into the mirror, unchanged since, is unpickled
    fully. Its ``torch.save`` calls into the mirror are recorded so that later runs can tell those
    files apart."""
    original_load, original_save = torch.load, torch.save

    def load(f, *args, **kwargs):
        kwargs.pop("weights_only", None)  # gnnscale, not the caller, decides how much to trust the file
        contents = written.read(f)
        if written.holds(f, contents):
            return original_load(io.BytesIO(contents), *args, weights_only=False, **kwargs)
        try:
            with torch.serialization.safe_globals(torch_safe_globals()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                return original_load(io.BytesIO(contents), *args, weights_only=True, **kwargs)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{f} holds objects torch's safe loader refuses ({_refusal(error)}), and its checksum is not "
                "one gnnscale recorded when ogb wrote the file into its cache; refusing to unpickle it (a "
                "pickle can run code). Split files must hold tensors, or numpy arrays of numbers, saved with "
                f"torch.save; a processed file in {written.processed} is made again from the raw files once "
                "deleted"
            ) from None
        except Exception as error:  # a corrupt file fails in many ways
            raise ValueError(f"{f} is not a readable torch file: {type(error).__name__}: {error}") from None

    def save(obj, f, *args, **kwargs):
        name = written.name_of(f)
        if not name:
            return original_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        original_save(obj, buffer, *args, **kwargs)
        written.keep(name, buffer.getvalue())

    torch.load, torch.save = load, save
    try:
        yield
    finally:
        torch.load, torch.save = original_load, original_save


def _mirrored_root(root: Path, name: str, description) -> Path:
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
    (mirror / "processed").mkdir(parents=True, exist_ok=True)
    _check_processed_folder(mirror / "processed", ogb_root)
    _mirror_folder(source, mirror)
    _check_files_ogb_reads(mirror, folder, name, description)
    return ogb_root


def _check_processed_folder(processed: Path, ogb_root: Path) -> None:
    """Refuses a processed/ folder that is a link or leads outside the cache entry: files in it are
    deleted and unpickled."""
    resolved = processed.resolve()
    if processed.parent.is_symlink() or processed.is_symlink() or not resolved.is_relative_to(ogb_root.resolve()):
        raise ValueError(
            f"{processed} must be a folder of gnnscale's cache entry {ogb_root}, but it is a link or leads "
            f"outside it (to {resolved}), perhaps made by a data folder entry named like processed/ on a "
            f"case-insensitive file system; refusing to use it. Delete {ogb_root} to start afresh"
        )


def _mirror_folder(source: Path, mirror: Path, *, top: bool = True) -> None:
    """Links each entry of the data folder into the mirror and removes links whose entry is gone.
    Left out: the folder's processed/, spelt in any case (on a case-insensitive file system PROCESSED
    would become the mirror's own processed/), and links that lead nowhere (dangling, or a loop).
    raw/ becomes a folder of links, not one link: ogb renames a raw file of ogbn-proteins, and the
    rename must happen in the mirror, never in the data folder."""
    linked = set()
    for entry in source.iterdir():
        if entry.name.casefold() == "processed":
            continue
        try:
            target = entry.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop, in Python before 3.13
            continue
        link = mirror / entry.name
        if top and entry.name == "raw" and target.is_dir():
            if link.is_symlink():
                link.unlink()  # made by an earlier gnnscale, which linked raw/ whole
            link.mkdir(exist_ok=True)
            _mirror_folder(target, link, top=False)
        else:
            if link.is_symlink() and os.readlink(link) != str(target):
                link.unlink()  # the entry in the data folder was replaced since the mirror was made
            if not link.is_symlink():
                link.symlink_to(target)
        linked.add(entry.name)
    for entry in mirror.iterdir():
        if entry.is_symlink() and entry.name not in linked:
            entry.unlink()  # the entry left the data folder, or leads nowhere now


def _check_files_ogb_reads(mirror: Path, folder: Path, name: str, description) -> None:
    """ogb asks on stdin whether to download the dataset again when its release file is missing, and
    downloads it when a raw file is; gnnscale never downloads, so it says what is missing instead."""
    release = f"RELEASE_v{description['version']}.txt"
    if not (mirror / release).is_file():
        raise FileNotFoundError(
            f"OGB dataset {name}: {folder} has no {release}, the mark of the dataset's release that ogb "
            "expects (without it ogb would offer to download the dataset again)"
        )
    for file in _required_raw_files(description, name.startswith("ogbn-")):
        shipped_as = _ALSO_SHIPPED_AS.get(file, file)
        if not (mirror / "raw" / file).is_file() and not (mirror / "raw" / shipped_as).is_file():
            raise FileNotFoundError(
                f"OGB dataset {name}: {folder / 'raw' / file} is missing (ogb would download the dataset; "
                "gnnscale does not download)"
            )


def load_ogb(name: str, root: Path):
    name, description = _ogb_description(name)
    ogb_root = _mirrored_root(root, name, description)
    written = _WrittenByOgb(ogb_root, ogb_folder_name(name))
    written.drop_unrecorded()
    with _ogb_file_policy(written):
        return _load_link(name, ogb_root) if name.startswith("ogbl-") else _load_node(name, ogb_root)


def _tensor(value, dtype=None):
    if not isinstance(value, torch.Tensor):
        array = np.asarray(value)
        # A read-only view (pandas' .values) would give a tensor that must not be written to.
        value = torch.from_numpy(array if array.flags.writeable else array.copy())
    return value if dtype is None else value.to(dtype)


def _features(graph_dict):
    feat = graph_dict.get("node_feat")
    return None if feat is None else _tensor(feat, torch.float32)


def _load_node(name: str, root: Path) -> NodeDataset:
    NodePropPredDataset = import_ogb("nodeproppred").NodePropPredDataset

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
    LinkPropPredDataset = import_ogb("linkproppred").LinkPropPredDataset

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
