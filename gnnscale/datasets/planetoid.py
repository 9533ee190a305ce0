"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from their raw ``ind.<name>.*`` files.

The raw files are Python 2 pickles. They are read with an unpickler that builds only the types
these files hold (numpy arrays, scipy CSR matrices, a dict of lists), each from a state it checks
first (see ``safe_pickle``), so a crafted file can neither run code nor make numpy or scipy read
out of bounds: anything else it names is refused.
"""
from pathlib import Path

import numpy as np
import torch

from ..graph import Graph
from .base import NodeDataset
from .safe_pickle import RefusedPickle, restricted_load

PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_PICKLED_SUFFIXES = ("tx", "allx", "y", "ty", "ally", "graph")
_NUM_VALID = 500  # the public split validates on the 500 nodes after the labelled training nodes


def planetoid_raw_dir(root: Path, name: str) -> Path:
    return root / "planetoid" / PLANETOID_NAMES[name] / "raw"


def load_planetoid(name: str, root: Path) -> NodeDataset:
    """Reads the public split as PyG's ``Planetoid`` does (same edges, features, labels and splits)."""
    key = name.lower()
    raw_dir = planetoid_raw_dir(root, key)
    paths = {suffix: raw_dir / f"ind.{key}.{suffix}" for suffix in _PICKLED_SUFFIXES + ("test.index",)}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"Planetoid file {path} is missing (expected the ind.{key}.* files in {raw_dir})")
    raw = _read_raw(paths)
    features, labels = _ordered_nodes(raw, key, raw_dir)
    num_nodes, num_train = labels.numel(), raw["y"].size(0)
    if num_train + _NUM_VALID > num_nodes:
        raise ValueError(f"{raw_dir}: {num_train} training and {_NUM_VALID} validation nodes exceed "
                         f"the {num_nodes} nodes")
    return NodeDataset(
        name=PLANETOID_NAMES[key],
        graph=_graph(raw["graph"], num_nodes, paths["graph"]),
        features=features,
        labels=labels,
        splits={
            "train": torch.arange(num_train),
            "valid": torch.arange(num_train, num_train + _NUM_VALID),
            "test": torch.unique(raw["test.index"]),
        },
        num_classes=int(labels.max()) + 1,
    )


def _read_raw(paths) -> dict:
    """The matrices as float tensors, the graph as its dict of neighbour lists, the test ids."""
    raw = {suffix: _unpickle(paths[suffix]) for suffix in _PICKLED_SUFFIXES}
    for suffix in ("tx", "allx", "y", "ty", "ally"):
        raw[suffix] = _dense_rows(raw[suffix], paths[suffix])
    if not isinstance(raw["graph"], dict):
        raise ValueError(f"{paths['graph']} holds a {type(raw['graph']).__name__}, expected a dict of neighbour lists")
    raw["test.index"] = _test_index(paths["test.index"])
    return raw


def _graph(neighbours: dict, num_nodes: int, path: Path) -> Graph:
    from torch_geometric.io.planetoid import edge_index_from_dict  # imported late: it takes seconds

    try:
        return Graph.from_edge_index(edge_index_from_dict(neighbours, num_nodes=num_nodes), num_nodes)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is not a dict of neighbour lists of node numbers: {error}") from None


def _unpickle(path: Path):
    try:
        with open(path, "rb") as handle:
            return restricted_load(handle)
    except RefusedPickle as refused:
        raise ValueError(
            f"{path} is not a Planetoid file: its pickle asks for {refused}; these files hold only numpy arrays "
            "of numbers, scipy CSR matrices and a dict of lists, so refusing to load it"
        ) from None
    except Exception as error:  # a corrupt pickle fails in many ways
        raise ValueError(f"{path} is not a readable Planetoid file: {type(error).__name__}: {error}") from None


def _dense_rows(value, path: Path) -> torch.Tensor:
    import scipy.sparse as sp  # loaded with the files that hold its matrices

    if type(value) is sp.csr_matrix:  # the unpickler returns one only once scipy has checked it in full
        try:
            value = value.toarray()
        except MemoryError:
            raise ValueError(f"{path} holds a sparse matrix of shape {value.shape}, too large to make dense") from None
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.dtype.kind not in "biuf":
        what = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{path} holds a {what}, expected a 2-D numeric matrix")
    return torch.from_numpy(np.asarray(value)).to(torch.float)


def _test_index(path: Path) -> torch.Tensor:
    try:
        index = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as error:
        raise ValueError(f"{path} is not a list of node numbers, one a line: {error}") from None
    if index.size == 0:
        raise ValueError(f"{path} lists no test nodes")
    return torch.from_numpy(index)


def _ordered_nodes(raw: dict, key: str, raw_dir: Path):
    """Features and labels of all nodes: the labelled and unlabelled training nodes (allx), then
    the test nodes (tx), which the files store in sorted order while test.index lists them as
    numbered in the graph."""
    tx, ty, allx, ally, test_index = raw["tx"], raw["ty"], raw["allx"], raw["ally"], raw["test.index"]
    if allx.size(0) != ally.size(0) or tx.size(0) != ty.size(0) or tx.size(0) != test_index.numel():
        raise ValueError(f"{raw_dir}: ind.{key}.allx/ally/tx/ty/test.index have row counts that do not match")
    if tx.size(1) != allx.size(1) or ty.size(1) != ally.size(1):
        raise ValueError(f"{raw_dir}: ind.{key}.tx/ty and allx/ally have different column counts")
    sorted_test = test_index.sort().values
    if int(sorted_test[0]) < 0 or int(sorted_test[-1]) >= len(raw["graph"]):
        raise ValueError(f"{raw_dir}: ind.{key}.test.index names nodes outside the {len(raw['graph'])} "
                         f"of ind.{key}.graph")
    if key == "citeseer":
        # CiteSeer's test ids skip isolated nodes that have no row in tx; they get zero rows.
        first, span = int(sorted_test[0]), int(sorted_test[-1] - sorted_test[0]) + 1
        tx = _spread_rows(tx, sorted_test - first, span)
        ty = _spread_rows(ty, sorted_test - first, span)
    features = torch.cat([allx, tx])
    if int(sorted_test[-1]) >= features.size(0):
        raise ValueError(f"{raw_dir}: ind.{key}.test.index names nodes beyond the {features.size(0)} "
                         "rows of allx and tx")
    features[test_index] = features[sorted_test]
    labels = torch.cat([ally, ty]).argmax(dim=1)
    labels[test_index] = labels[sorted_test]
    return features, labels


def _spread_rows(rows: torch.Tensor, positions: torch.Tensor, count: int) -> torch.Tensor:
    spread = rows.new_zeros(count, rows.size(1))
    spread[positions] = rows
    return spread
