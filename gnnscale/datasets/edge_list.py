"""Plain-text edge lists: one ``source target [weight]`` per line, any separator, any id type."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch


@dataclass
class EdgeList:
    edge_index: torch.Tensor  # [2, E] int64 node numbers 0..n-1
    weight: Optional[torch.Tensor]  # [E] float32, or None
    node_names: np.ndarray  # node number -> id as written in the file (sorted)


def read_edge_list(
    path, *, sep: Optional[str] = None, weighted: Optional[bool] = None, comment: str = "#"
) -> EdgeList:
    """Reads an edge list with tab, space or comma separators (``sep=None`` detects which).

    Ids may be integers or arbitrary strings; nodes are numbered in sorted id order and the
    original ids are returned as ``node_names``. A third column is read as the edge weight when
    ``weighted`` is True, or when it is None and the column exists. A malformed line raises
    ValueError with its line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"edge list {path} does not exist")
    if sep is None:
        sep = _detect_separator(path, comment)
    try:
        frame = pd.read_csv(
            path, sep=sep, header=None, comment=comment, dtype=str, skipinitialspace=True,
            on_bad_lines="error", keep_default_na=False,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"edge list {path} holds no edges") from None
    except pd.errors.ParserError as error:
        raise ValueError(f"edge list {path} is malformed: {error}") from error
    if frame.shape[1] < 2 or frame.shape[1] > 3:
        raise ValueError(f"edge list {path}: expected 2 or 3 columns (source, target[, weight]), got {frame.shape[1]}")
    for column in range(frame.shape[1]):
        empty = (frame[column] == "").to_numpy()
        if empty.any():
            raise ValueError(f"edge list {path}: line {_line_number(path, comment, int(np.argmax(empty)))} has a missing field")
    weight = None
    if frame.shape[1] == 3 and weighted is not False:
        values = pd.to_numeric(frame[2], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            line = _line_number(path, comment, int(np.argmax(bad)))
            raise ValueError(f"edge list {path}: line {line} has a weight that is not a finite number ({frame[2].iloc[int(np.argmax(bad))]!r})")
        weight = torch.from_numpy(values.astype(np.float32))
    elif weighted:
        raise ValueError(f"edge list {path} has no weight column")
    ids = np.concatenate([frame[0].to_numpy(), frame[1].to_numpy()])
    as_int = pd.to_numeric(pd.Series(ids), errors="coerce")
    if not as_int.isna().any() and (as_int == as_int.round()).all():
        ids = as_int.to_numpy(dtype=np.int64)  # integer ids sort numerically, not as text
    codes, names = pd.factorize(ids, sort=True)
    codes = torch.from_numpy(codes.astype(np.int64))
    num_edges = len(frame)
    return EdgeList(edge_index=torch.stack([codes[:num_edges], codes[num_edges:]]), weight=weight, node_names=np.asarray(names))


def _detect_separator(path: Path, comment: str) -> str:
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith(comment):
                continue
            if "\t" in line:
                return "\t"
            if "," in line:
                return ","
            return r"\s+"
    raise ValueError(f"edge list {path} holds no edges")


def _line_number(path: Path, comment: str, data_row: int) -> int:
    """1-based line number of the data_row-th data line (skipping blanks and comments)."""
    seen = -1
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith(comment):
                seen += 1
                if seen == data_row:
                    return number
    return seen + 1
