"""Embedding files: word2vec text (.txt, or .emb as node2vec and PecanPy name it), .npy (with an
ids file), .npz and .pt, never pickles.

Context embeddings (skip-gram's second table) are written only when asked (``with_context``),
beside the vertex embeddings: ``<stem>.context<suffix>`` for .txt/.emb/.npy, a ``context`` entry
in .npz/.pt; a reader loads them when they are there. The files of one
output are written together: a reader sees the old set or the new one, and an .npy always has
its ``<stem>.ids.txt``.

In word2vec text and in ids files a node id is escaped so that it stays one field on one line:
``\\`` as ``\\\\``, space as ``\\s``, tab as ``\\t``, newline as ``\\n``, carriage return as ``\\r``.
"""
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..atomic import write_atomically, write_files_together

TEXT_FORMATS = (".txt", ".emb")  # word2vec text
FORMATS = (*TEXT_FORMATS, ".npy", ".npz", ".pt")
_ESCAPES = {"\\": "\\\\", " ": "\\s", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {code[1]: char for char, code in _ESCAPES.items()}
_ESCAPED = re.compile(r"\\(.)")


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


def escape_ids(ids: Sequence[str]) -> List[str]:
    ids = [str(name) for name in ids]
    everything = "\0".join(ids)
    if not any(char in everything for char in _ESCAPES):  # the usual case: nothing to escape
        return ids
    return ["".join(_ESCAPES.get(char, char) for char in name) for name in ids]


def unescape_id(field: str) -> str:
    # Unknown sequences (a lone backslash in another tool's file) are kept as they are.
    return _ESCAPED.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), field) if "\\" in field else field


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


def _utf8(write_text: Callable) -> Callable:
    """A binary-stream writer from a text one, so files are UTF-8 whatever the locale."""
    def write(stream):
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        write_text(text)
        text.flush()
        text.detach()
    return write


def _text_table(ids: List[str], table: torch.Tensor) -> Callable:
    def write(handle):
        handle.write(f"{table.size(0)} {table.size(1)}\n")
        for name, row in zip(ids, table.numpy()):
            handle.write(f"{name} " + " ".join(f"{v:.6g}" for v in row) + "\n")
    return _utf8(write)


def _ids_file(ids: List[str]) -> Callable:
    return _utf8(lambda handle: handle.write("".join(f"{name}\n" for name in ids)))


def _npy(table: torch.Tensor) -> Callable:
    return lambda stream: np.save(stream, table.numpy())


def save_embeddings(embeddings: Embeddings, path, *, with_context: bool = False) -> Path:
    """Writes ``embeddings`` in the format named by the suffix of ``path``; the context table too
    when ``with_context`` (most users need only the vertex embeddings, and it doubles the output)."""
    path = check_output_path(path)
    if with_context and embeddings.context is None:
        raise ValueError(f"output {path}: context embeddings asked for, but these embeddings have none")
    vertex = embeddings.vertex.detach().float().cpu().contiguous()
    context = embeddings.context.detach().float().cpu().contiguous() if with_context else None
    text_ids = embeddings.ids.astype(str)
    if len(text_ids) != vertex.size(0):
        raise ValueError(f"embeddings to write have {len(text_ids)} ids for {vertex.size(0)} rows")
    if path.suffix in (*TEXT_FORMATS, ".npy"):
        _save_table_files(path, escape_ids(text_ids), vertex, context)
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


def _save_table_files(path: Path, ids: List[str], vertex: torch.Tensor, context: Optional[torch.Tensor]) -> None:
    """.txt and .npy: the vertex file goes into place last, since readers open it first; a context
    file left by an earlier output is removed when this one has none."""
    def table(values: torch.Tensor) -> Callable:
        return _text_table(ids, values) if path.suffix in TEXT_FORMATS else _npy(values)

    files: List[Tuple[Path, Callable, str]] = []
    if path.suffix == ".npy":
        files.append((_ids_path(path), _ids_file(ids), "wb"))
    if context is not None:
        files.append((_context_path(path), table(context), "wb"))
    files.append((path, table(vertex), "wb"))
    write_files_together(files, remove=[] if context is not None else [_context_path(path)])


def load_embeddings(path) -> Embeddings:
    """Reads any format :func:`save_embeddings` writes (context included when present)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings {path} do not exist")
    if path.suffix in TEXT_FORMATS:
        names, vertex = _read_text(path)
        context = _read_text(_context_path(path))[1] if _context_path(path).is_file() else None
    elif path.suffix == ".npy":
        names, vertex, context = _read_npy(path)
    elif path.suffix == ".npz":
        names, vertex, context = _read_npz(path)
    elif path.suffix == ".pt":
        names, vertex, context = _read_pt(path)
    else:
        raise ValueError(f"embeddings {path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    _check_table(path, "vertex", vertex, names)
    if context is not None:
        if context.shape != vertex.shape:
            raise ValueError(f"embeddings {path}: context table is {tuple(context.shape)}, vertex table "
                             f"{tuple(vertex.shape)}")
        _check_table(path, "context", context, names)
    return Embeddings(vertex=vertex, context=context, names=names)


def _check_table(path: Path, which: str, table: torch.Tensor, names: Optional[np.ndarray]) -> None:
    if table.dim() != 2:
        raise ValueError(f"embeddings {path}: the {which} table must be 2-D (nodes x dimension), "
                         f"got shape {tuple(table.shape)}")
    if names is not None and len(names) != table.size(0):
        raise ValueError(f"embeddings {path}: {len(names)} ids for {table.size(0)} rows")
    finite = torch.isfinite(table).all(dim=1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0])
        node = "" if names is None else f" (node {str(names[row])!r})"
        raise ValueError(f"embeddings {path}: the {which} table has NaN or infinite values in row {row}{node}")


def _load_npy(path: Path) -> torch.Tensor:
    array = np.load(path, allow_pickle=False)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"embeddings {path}: expected numbers, got an array of {array.dtype}")
    return torch.from_numpy(array).float()


def _read_npy(path: Path):
    ids = _ids_path(path)
    if not ids.is_file():
        raise FileNotFoundError(f"embeddings {path}: its ids file {ids} is missing (an .npy holds no node "
                                "ids; without them rows cannot be matched to nodes)")
    lines = ids.read_bytes().decode("utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    names = np.array([unescape_id(line) for line in lines], dtype=str)
    context = _load_npy(_context_path(path)) if _context_path(path).is_file() else None
    return names, _load_npy(path), context


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as data:
        if "vertex" not in data:
            raise ValueError(f"embeddings {path}: no 'vertex' array (found {', '.join(data.files) or 'none'})")
        vertex = torch.from_numpy(data["vertex"]).float()
        context = torch.from_numpy(data["context"]).float() if "context" in data else None
        names = data["ids"] if "ids" in data else None
    return names, vertex, context


def _read_pt(path: Path):
    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict) or not isinstance(data.get("vertex"), torch.Tensor):
        raise ValueError(f"embeddings {path}: expected a dict with a 'vertex' tensor")
    names = None if data.get("ids") is None else np.array(data["ids"])
    context = None if data.get("context") is None else data["context"].float()
    return names, data["vertex"].float(), context


def _read_text(path: Path):
    """word2vec text: a '<count> <dimension>' line, then one '<id> <value> ...' line per node."""
    with open(path, encoding="utf-8") as handle:
        count, dim = _read_header(path, handle.readline())
        names, values = [], []
        for number, line in enumerate(handle, start=2):
            parts = line.rstrip("\n").rstrip(" ").split(" ")  # word2vec's own writer ends rows with a space
            if len(parts) != dim + 1:
                raise ValueError(f"embeddings {path}: line {number} has {len(parts) - 1} values, expected {dim}")
            if len(names) == count:
                raise ValueError(f"embeddings {path}: line {number}: more rows than the {count} line 1 announces")
            names.append(unescape_id(parts[0]))
            values.append(parts[1:])
    if len(names) != count:
        raise ValueError(f"embeddings {path}: line 1 announces {count} rows, the file has {len(names)}")
    table = _parse_values(path, values, dim)
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"embeddings {path}: line {row + 2} (node {names[row]!r}) has NaN or infinite values")
    return np.array(names, dtype=str), torch.from_numpy(table)


def _read_header(path: Path, line: str) -> Tuple[int, int]:
    header = line.split()
    if len(header) != 2 or not all(field.isascii() and field.isdigit() for field in header) or int(header[1]) < 1:
        raise ValueError(f"embeddings {path}: line 1 must be '<count> <dimension>' (a positive dimension), "
                         f"got {line.rstrip()!r}")
    return int(header[0]), int(header[1])


def _parse_values(path: Path, values: List[List[str]], dim: int) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float32).reshape(len(values), dim)
    except ValueError:
        pass
    for row, fields in enumerate(values):  # only to name the line at fault
        for field in fields:
            try:
                float(field)
            except ValueError:
                raise ValueError(f"embeddings {path}: line {row + 2} has a value that is not a number: "
                                 f"{field!r}") from None
    raise ValueError(f"embeddings {path}: values are not numbers")
