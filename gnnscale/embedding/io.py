"""Embedding files: word2vec text, .npy (with an ids file), .npz and .pt, never pickles.

Context embeddings (skip-gram's second table) are written beside the vertex embeddings:
``<stem>.context<suffix>`` for .txt/.npy, a ``context`` entry in .npz/.pt.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..atomic import write_atomically

FORMATS = (".txt", ".npy", ".npz", ".pt")


@dataclass
class Embeddings:
    vertex: torch.Tensor  # [num_nodes, dim] float32
    context: Optional[torch.Tensor] = None
    names: Optional[np.ndarray] = None  # node id as in the input, per row; None: row numbers

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.vertex.size(0)) if self.names is None else np.asarray(self.names)

    def rows_for(self, names: np.ndarray) -> np.ndarray:
        """Row of each id in ``names`` (-1 where absent)."""
        index = {str(name): row for row, name in enumerate(self.ids)}
        return np.array([index.get(str(name), -1) for name in names], dtype=np.int64)


def check_output_path(path) -> Path:
    """Fails early, before any training, when ``path`` cannot be written."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"output {path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"output {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"output {path}: not writable")
    return path


def _context_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.context{path.suffix}")


def _ids_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.ids.txt")


def _write_text(path: Path, ids: np.ndarray, table: torch.Tensor) -> None:
    def write(handle):
        handle.write(f"{table.size(0)} {table.size(1)}\n")
        for name, row in zip(ids, table.numpy()):
            handle.write(f"{name} " + " ".join(f"{v:.6g}" for v in row) + "\n")
    write_atomically(path, write, mode="w")


def save_embeddings(embeddings: Embeddings, path) -> Path:
    """Writes ``embeddings`` in the format named by the suffix of ``path``."""
    path = check_output_path(path)
    vertex = embeddings.vertex.detach().float().cpu().contiguous()
    context = None if embeddings.context is None else embeddings.context.detach().float().cpu().contiguous()
    ids = embeddings.ids
    text_ids = ids.astype(str)
    if path.suffix == ".txt":
        _write_text(path, text_ids, vertex)
        if context is not None:
            _write_text(_context_path(path), text_ids, context)
    elif path.suffix == ".npy":
        write_atomically(path, lambda stream: np.save(stream, vertex.numpy()))
        if context is not None:
            write_atomically(_context_path(path), lambda stream: np.save(stream, context.numpy()))
        write_atomically(_ids_path(path), lambda stream: stream.write("\n".join(text_ids) + "\n"), mode="w")
    elif path.suffix == ".npz":
        arrays = {"vertex": vertex.numpy(), "ids": text_ids}
        if context is not None:
            arrays["context"] = context.numpy()
        write_atomically(path, lambda stream: np.savez(stream, **arrays))
    else:
        payload = {"vertex": vertex, "ids": [str(i) for i in text_ids]}
        if context is not None:
            payload["context"] = context
        write_atomically(path, lambda stream: torch.save(payload, stream))
    return path


def load_embeddings(path) -> Embeddings:
    """Reads any format :func:`save_embeddings` writes (context included when present)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings {path} do not exist")
    if path.suffix == ".txt":
        names, vertex = _read_text(path)
        context = _read_text(_context_path(path))[1] if _context_path(path).is_file() else None
    elif path.suffix == ".npy":
        vertex = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        context = (torch.from_numpy(np.load(_context_path(path), allow_pickle=False)).float()
                   if _context_path(path).is_file() else None)
        names = (np.array(_ids_path(path).read_text().split("\n")[:-1])
                 if _ids_path(path).is_file() else None)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            vertex = torch.from_numpy(data["vertex"]).float()
            context = torch.from_numpy(data["context"]).float() if "context" in data else None
            names = data["ids"] if "ids" in data else None
    elif path.suffix == ".pt":
        data = torch.load(path, weights_only=True)
        ids = data.get("ids")
        vertex, context, names = data["vertex"], data.get("context"), None if ids is None else np.array(ids)
    else:
        raise ValueError(f"embeddings {path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if names is not None and len(names) != vertex.size(0):
        raise ValueError(f"embeddings {path}: {len(names)} ids for {vertex.size(0)} rows")
    return Embeddings(vertex=vertex, context=context, names=names)


def _read_text(path: Path):
    with open(path) as handle:
        header = handle.readline().split()
        if len(header) != 2:
            raise ValueError(f"embeddings {path}: line 1 must be '<count> <dimension>'")
        count, dim = int(header[0]), int(header[1])
        names, rows = [], []
        for number, line in enumerate(handle, start=2):
            parts = line.rstrip("\n").split(" ")
            if len(parts) != dim + 1:
                raise ValueError(f"embeddings {path}: line {number} has {len(parts) - 1} values, expected {dim}")
            names.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    if len(rows) != count:
        raise ValueError(f"embeddings {path}: header says {count} rows, found {len(rows)}")
    return np.array(names), torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, dim)
