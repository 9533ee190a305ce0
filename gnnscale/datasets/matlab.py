"""MATLAB ``.mat`` node-embedding benchmarks (BlogCatalog, Flickr, PPI...): ``network`` and ``group``."""
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..graph import Graph
from .base import NodeDataset


def load_mat(path: Path, name: str = None) -> NodeDataset:
    """Reads a sparse ``network`` adjacency and a node x label ``group`` matrix (multi-label)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATLAB file {path} does not exist")
    try:
        import scipy.io  # a quarter second to import: loaded when a .mat file is read

        contents = scipy.io.loadmat(str(path))
    except Exception as error:  # scipy raises several types for corrupt files
        raise ValueError(f"{path} is not a readable MATLAB file: {error}") from error
    if "network" not in contents:
        raise ValueError(f"{path} has no 'network' matrix (keys: {sorted(k for k in contents if not k.startswith('__'))})")
    network = _numeric_matrix(contents, "network", path)
    if not sp.issparse(network):
        network = sp.csr_matrix(network)
    graph = Graph.from_scipy(network)
    labels = None
    if "group" in contents:
        group = _numeric_matrix(contents, "group", path)
        group = group.toarray() if sp.issparse(group) else group
        if group.shape[0] != graph.num_nodes:
            raise ValueError(f"{path}: 'group' has {group.shape[0]} rows for {graph.num_nodes} nodes")
        labels = torch.from_numpy((group != 0).astype(np.int64))
    return NodeDataset(
        name=name or path.stem,
        graph=graph,
        features=None,
        labels=labels,
        num_classes=0 if labels is None else labels.size(1),
        multilabel=True,
    )


def _numeric_matrix(contents: dict, key: str, path: Path):
    """``contents[key]`` when it is a sparse or numeric 2-D matrix. loadmat returns MATLAB cell
    arrays, structs, strings and objects as numpy arrays of other dtypes (it never unpickles)."""
    value = contents[key]
    if sp.issparse(value):
        return _checked_sparse(value, key, path)
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.dtype.kind not in "biuf":
        kind = getattr(value, "dtype", type(value).__name__)
        raise ValueError(f"{path}: '{key}' must be a numeric or sparse matrix, got {kind} values "
                         "(a MATLAB cell array, struct or text?)")
    return value


def _checked_sparse(value, key: str, path: Path):
    """A fresh copy of a sparse matrix, checked in full by its class: loadmat takes the file's index
    arrays as they are, and scipy's kernels (tocoo, toarray) trust them, writing out of bounds."""
    formats = {"csc": sp.csc_matrix, "csr": sp.csr_matrix}
    matrix_class = formats.get(getattr(value, "format", None))
    if matrix_class is None or value.dtype.kind not in "biuf":
        raise ValueError(f"{path}: '{key}' must be a real sparse matrix in CSC or CSR form, got "
                         f"{type(value).__name__} of {value.dtype}")
    try:
        matrix = matrix_class((value.data, value.indices, value.indptr), shape=value.shape)
        matrix_class.check_format(matrix, full_check=True)
    except ValueError as error:
        raise ValueError(f"{path}: '{key}' is a malformed sparse matrix: {error}") from None
    return matrix
