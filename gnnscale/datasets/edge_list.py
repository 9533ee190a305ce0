"""Plain-text edge lists: one ``source target [weight]`` per line, any separator, any id type.

Lines whose first non-blank character is ``#`` (SNAP) or ``%`` (KONECT) are comments. A first line
with no number in it is a header and is skipped when the line below tells it apart: integer ids
there (``src dst`` above ``1 2``), or a number where it names the weight column (``src,dst,weight``
above ``a,b,0.5``). Two words above two words (``src dst`` above ``bob carol``) stay an edge.

Read as a graph (:func:`edge_list_graph`, what ``gnnscale info`` and ``gnnscale embed`` count),
self-loops and repeated edges are dropped: an undirected list holds each edge once each way.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional, TextIO, Tuple

import numpy as np
import torch

if TYPE_CHECKING:  # pandas (half a second to import) is loaded when a list is read
    import pandas as pd

COMMENT_MARKERS = "#%"
_INTEGER = r"[+-]?[0-9]+"


@dataclass
class EdgeList:
    edge_index: torch.Tensor  # [2, E] int64 node numbers 0..n-1
    weight: Optional[torch.Tensor]  # [E] float32, or None
    node_names: np.ndarray  # node number -> id as written in the file (sorted)


def read_edge_list(
    path, *, sep: Optional[str] = None, weighted: Optional[bool] = None, comment: str = COMMENT_MARKERS
) -> EdgeList:
    """Reads an edge list with tab, space or comma separators (``sep=None`` detects which).

    A line is a comment when its first non-blank character is one of ``comment``. Ids may be
    integers or arbitrary strings; nodes are numbered in sorted id order and the original ids are
    returned as ``node_names``: int64 (uint64 for ids of 2^63 and more) when every id is an
    integer, kept exactly, else the strings. A third column is read as the edge weight when
    ``weighted`` is True, or when it is None and the column exists. A malformed line raises
    ValueError with its line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"edge list {path} does not exist")
    numbers = _read_numbers(path, sep, weighted, comment)
    if numbers is not None:
        return _numbered_edge_list(numbers)
    frame, skipped = _read_frame(path, sep, comment)
    if frame.shape[1] < 2 or frame.shape[1] > 3:
        raise ValueError(f"edge list {path}: expected 2 or 3 columns (source, target[, weight]), got {frame.shape[1]}")
    for column in range(frame.shape[1]):
        empty = (frame[column] == "").to_numpy()
        if empty.any():
            line = _line_number(path, comment, skipped + int(np.argmax(empty)))
            raise ValueError(f"edge list {path}: line {line} has a missing field")
    weight = None
    if frame.shape[1] == 3 and weighted is not False:
        weight = _weights(frame[2], path, comment, skipped)
    elif weighted:
        raise ValueError(f"edge list {path} has no weight column")
    ids = _integer_ids(frame, path)
    if ids is None:
        ids = np.concatenate([frame[0].to_numpy(), frame[1].to_numpy()])
    import pandas as pd

    codes, names = pd.factorize(ids, sort=True)
    codes = torch.from_numpy(codes.astype(np.int64))
    num_edges = len(frame)
    names = np.asarray(names) if ids.dtype.kind in "iu" else np.asarray(names, dtype=str)  # .npy holds it unpickled
    return EdgeList(edge_index=torch.stack([codes[:num_edges], codes[num_edges:]]), weight=weight, node_names=names)


def _read_numbers(path: Path, sep: Optional[str], weighted: Optional[bool], comment: str) -> Optional["EdgeChunk"]:
    """The whole list parsed straight into numbers when its ids are int64 integers and its weights
    finite (see :func:`_parse_numbers`); None otherwise, for the reader of strings to handle."""
    data = _data_lines(path, comment)
    if not data:
        return None
    layout, skipped = _layout(path, data, sep, weighted)
    body = data.partition("\n")[2] if skipped else data
    return _parse_numbers(body, layout) if body else None


def _numbered_edge_list(numbers: "EdgeChunk") -> EdgeList:
    import pandas as pd

    codes, names = pd.factorize(np.concatenate([numbers.src, numbers.dst]), sort=True)
    codes = torch.from_numpy(codes.astype(np.int64))
    weight = None if numbers.weight is None else torch.from_numpy(numbers.weight)
    return EdgeList(edge_index=torch.stack([codes[:numbers.src.size], codes[numbers.src.size:]]), weight=weight,
                    node_names=np.asarray(names))


def edge_list_graph(path, *, directed: bool = False, drop_self_loops: bool = True, drop_duplicates: bool = True,
                    **options) -> "Graph":
    """An edge list as a :class:`~gnnscale.graph.Graph`, node names kept: each edge both ways unless
    ``directed``; self-loops and repeated edges dropped (walks and degree counts then see each
    neighbour once). ``options``: those of :func:`read_edge_list` and of ``Graph.from_edge_index``."""
    from ..graph import Graph

    reader_keys = ("sep", "weighted", "comment")
    edges = read_edge_list(path, **{key: options.pop(key) for key in reader_keys if key in options})
    return Graph.from_edge_index(edges.edge_index, len(edges.node_names), edge_weight=edges.weight,
                                 symmetrize=not directed, drop_self_loops=drop_self_loops,
                                 drop_duplicates=drop_duplicates, node_names=edges.node_names, **options)


@dataclass
class EdgeChunk:
    src: np.ndarray  # ids as written in the file: int64, or unicode strings
    dst: np.ndarray
    weight: Optional[np.ndarray]  # float32, or None


class NonIntegerIdError(ValueError):
    """An edge list read for integer ids holds an id that is not an integer."""


def read_edge_chunks(
    path, *, sep: Optional[str] = None, weighted: Optional[bool] = None, comment: str = COMMENT_MARKERS,
    chunk_bytes: int = 64 << 20, string_ids: bool = False,
) -> Iterator[EdgeChunk]:
    """Reads an edge list in chunks of about ``chunk_bytes`` of text, never holding the whole file:
    the format of :func:`read_edge_list` (separators, comments, a header line, an optional weight
    column), but the ids come as written, not renumbered: int64, or with ``string_ids`` every id
    as a string (unicode arrays). A malformed line raises ValueError with its line number, and so,
    without ``string_ids``, does an id that is not an integer of 64 bits
    (:class:`NonIntegerIdError` when it is not an integer at all)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"edge list {path} does not exist")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    layout = None  # (separator, number of columns, whether the third is read as weights)
    rows_before = 0  # data lines (and a header line) in the blocks already read
    with open(path, "r", encoding="utf-8") as handle:
        for data in _data_blocks(handle, path, comment, chunk_bytes):
            if layout is None:
                layout, skipped = _layout(path, data, sep, weighted)
                data = data.partition("\n")[2] if skipped else data
                rows_before += skipped
                if not data:
                    continue
            yield _parse_chunk(path, data, layout, comment, rows_before, string_ids)
            rows_before += data.count("\n") + 1
    if layout is None:
        raise ValueError(f"edge list {path} holds no edges")


def _data_blocks(handle: TextIO, path: Path, comment: str, chunk_bytes: int) -> Iterator[str]:
    """The file's data lines (no comments, no blank lines) in blocks of whole lines; the first
    block holds at least two data lines (when there are), for the header check."""
    ignored = _ignored_lines(comment)
    pending = ""
    while True:
        try:
            lines = handle.readlines(chunk_bytes)
        except UnicodeDecodeError as error:
            raise ValueError(f"edge list {path} is not UTF-8 text: {error}") from None
        if lines:
            text = "".join(lines)
            data = ignored.sub("", text if text.endswith("\n") else text + "\n").rstrip("\n")
            pending = f"{pending}\n{data}" if pending and data else pending or data
        if pending and (not lines or "\n" in pending):
            yield pending
            pending = ""
        if not lines:
            return


def _layout(path: Path, data: str, sep: Optional[str], weighted: Optional[bool]) -> Tuple[tuple, int]:
    """(separator, columns, read weights) from the first data lines, and whether the first is a header."""
    first_line, _, rest = data.partition("\n")
    if sep is None:
        sep = _detect_separator(first_line)
    skipped = int(_is_header(_fields(first_line, sep), _fields(rest.partition("\n")[0], sep)))
    columns = len(_fields(rest.partition("\n")[0] if skipped else first_line, sep))
    if columns < 2 or columns > 3:
        raise ValueError(f"edge list {path}: expected 2 or 3 columns (source, target[, weight]), got {columns}")
    if weighted and columns < 3:
        raise ValueError(f"edge list {path} has no weight column")
    return (sep, columns, columns == 3 and weighted is not False), skipped


def _parse_chunk(path: Path, data: str, layout: tuple, comment: str, rows_before: int,
                 string_ids: bool = False) -> EdgeChunk:
    fast = None if string_ids else _parse_numbers(data, layout)
    return fast if fast is not None else _parse_chunk_strictly(path, data, layout, comment, rows_before, string_ids)


def _parse_numbers(data: str, layout: tuple) -> Optional[EdgeChunk]:
    """The common case, integer ids and finite weights, parsed by pandas' C reader straight into
    numbers (several times faster than reading strings and checking each); None when a line is
    anything else, which the strict reader then names."""
    import pandas as pd

    sep, columns, read_weights = layout
    kinds = {0: np.int64, 1: np.int64, **({2: np.float64 if read_weights else str} if columns == 3 else {})}
    try:
        frame = pd.read_csv(io.StringIO(data), sep=sep, header=None, dtype=kinds, skipinitialspace=True,
                            on_bad_lines="error", keep_default_na=False, engine="c")
    except (ValueError, OverflowError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if frame.shape[1] != columns:
        return None
    weight = None
    if read_weights:
        weight = frame[2].to_numpy(dtype=np.float64)
        if not np.isfinite(weight).all():
            return None
        weight = weight.astype(np.float32)
    return EdgeChunk(frame[0].to_numpy(dtype=np.int64), frame[1].to_numpy(dtype=np.int64), weight)


def _parse_chunk_strictly(path: Path, data: str, layout: tuple, comment: str, rows_before: int,
                          string_ids: bool = False) -> EdgeChunk:
    sep, columns, read_weights = layout
    frame = _parse(path, data, sep, comment, rows_before)
    if frame.shape[1] != columns:
        line = _line_number(path, comment, rows_before)
        raise ValueError(f"edge list {path}: line {line} has {frame.shape[1]} fields, the lines above {columns}")
    for column in range(columns):
        empty = (frame[column] == "").to_numpy()
        if empty.any():
            line = _line_number(path, comment, rows_before + int(np.argmax(empty)))
            raise ValueError(f"edge list {path}: line {line} has a missing field")
    if string_ids:
        ids = [frame[column].to_numpy().astype(str) for column in (0, 1)]
    else:
        ids = [_chunk_ids(frame[column], path, comment, rows_before) for column in (0, 1)]
    weight = _weights(frame[2], path, comment, rows_before).numpy() if read_weights else None
    return EdgeChunk(ids[0], ids[1], weight)


def _chunk_ids(column: "pd.Series", path: Path, comment: str, rows_before: int) -> np.ndarray:
    integer = column.str.fullmatch(_INTEGER).to_numpy()
    if not integer.all():
        row = int(np.argmax(~integer))
        raise NonIntegerIdError(f"edge list {path}: line {_line_number(path, comment, rows_before + row)} has node "
                                f"id {column.iloc[row]!r}; ids streamed in chunks must be integers")
    try:
        return column.to_numpy().astype(np.int64)
    except OverflowError:
        widest = max(column.to_numpy(), key=lambda value: abs(int(value)))
        raise ValueError(f"edge list {path}: node id {widest} does not fit int64 (ids streamed in chunks must "
                         f"lie in [-2^63, 2^63))") from None


def _read_frame(path: Path, sep: Optional[str], comment: str):
    """The data lines as a frame of strings, and the number of header lines left out (0 or 1)."""
    data = _data_lines(path, comment)
    if not data:
        raise ValueError(f"edge list {path} holds no edges")
    first_line, _, rest = data.partition("\n")
    if sep is None:
        sep = _detect_separator(first_line)
    skipped = int(_is_header(_fields(first_line, sep), _fields(rest.partition("\n")[0], sep)))
    return _parse(path, rest if skipped else data, sep, comment, skipped), skipped


def _data_lines(path: Path, comment: str) -> str:
    """The file's text without comment lines and blank lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"edge list {path} is not UTF-8 text: {error}") from None
    return _ignored_lines(comment).sub("", text if text.endswith("\n") else text + "\n").rstrip("\n")


def _ignored_lines(comment: str) -> "re.Pattern":
    marker = f"(?:[{re.escape(comment)}][^\n]*)?" if comment else ""
    return re.compile(rf"^[ \t\r]*{marker}\n", re.MULTILINE)


def _detect_separator(line: str) -> str:
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    return r"\s+"


def _fields(line: str, sep: str) -> List[str]:
    pattern = sep if len(sep) > 1 else re.escape(sep)  # pandas reads a longer sep as a regular expression
    return [field.strip() for field in re.split(pattern, line.strip())] if line.strip() else []


def _is_header(first: List[str], second: List[str]) -> bool:
    """Words (no field a number) above integer ids (``src dst`` over ``1 2``) or above a weight
    (``src,dst,weight`` over ``a,b,0.5``)."""
    if len(second) < 2 or any(_is_number(field) for field in first):
        return False
    integer_ids = all(re.fullmatch(_INTEGER, field) for field in second[:2])
    weight_named = len(first) >= 3 and len(second) >= 3 and _is_number(second[2])
    return integer_ids or weight_named


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _parse(path: Path, data: str, sep: str, comment: str, skipped: int) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(
            io.StringIO(data), sep=sep, header=None, dtype=str, skipinitialspace=True,
            on_bad_lines="error", keep_default_na=False,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"edge list {path} holds no edges") from None
    except pd.errors.ParserError as error:
        raise ValueError(f"edge list {path} is malformed: {_with_file_line(error, path, comment, skipped)}") from None


def _with_file_line(error: Exception, path: Path, comment: str, skipped: int) -> str:
    """pandas counts lines of the text it was given; name the line of the file instead."""
    def file_line(match):
        return f"line {_line_number(path, comment, skipped + int(match.group(1)) - 1)}"

    return re.sub(r"line (\d+)", file_line, str(error))


def _weights(column: pd.Series, path: Path, comment: str, skipped: int) -> torch.Tensor:
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        line = _line_number(path, comment, skipped + row)
        raise ValueError(f"edge list {path}: line {line} has a weight that is not a finite number ({column.iloc[row]!r})")
    return torch.from_numpy(values.astype(np.float32))


def _integer_ids(frame: pd.DataFrame, path: Path) -> Optional[np.ndarray]:
    """Sources then targets as exact integers (int64, else uint64), or None when an id is not an
    integer. Integers are never routed through float64, which would merge ids above 2^53."""
    import pandas as pd

    ids = pd.concat([frame[0], frame[1]], ignore_index=True)
    if not ids.str.fullmatch(_INTEGER).all():
        return None
    text = ids.to_numpy()
    for dtype in (np.int64, np.uint64):
        try:
            return text.astype(dtype)
        except OverflowError:
            continue
    widest = max(text, key=lambda value: abs(int(value)))
    raise ValueError(
        f"edge list {path}: node id {widest} does not fit in 64 bits (ids must all lie in "
        f"[-2^63, 2^63) or all in [0, 2^64))"
    )


def _line_number(path: Path, comment: str, data_row: int) -> int:
    """1-based line number of the data_row-th data line (skipping blanks and comments)."""
    ignored = _ignored_lines(comment)
    seen = -1
    with open(path, "r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not ignored.fullmatch(line if line.endswith("\n") else line + "\n"):
                seen += 1
                if seen == data_row:
                    return number
    return seen + 1
