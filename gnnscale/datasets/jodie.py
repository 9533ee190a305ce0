"""Temporal edge lists: ``src dst timestamp [extra...]`` streams (SNAP and most public temporal
datasets) and JODIE csv files (``user,item,timestamp,state_label[,features...]``).

Separators are tabs, commas or runs of spaces; lines whose first non-blank character is ``#`` or
``%`` are comments; a first line whose id and time fields are not all numbers is a header.
A plain stream is unipartite (node 5 as a source and as a destination is one node); a file with a
JODIE header (``u,i,ts,...`` or ``user_id,item_id,timestamp,...``) is bipartite as JODIE defines it:
item ids follow the user ids (they are offset by the number of users unless they already do).
"""
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
import torch

from .base import TemporalDataset
from .edge_list import COMMENT_MARKERS, _data_lines, _detect_separator, _fields, _is_number, _line_number, _parse

# TGN / JODIE evaluation protocol: the first 70% of events (by time) train, then 15% / 15%.
CHRONOLOGICAL_SPLIT = (0.70, 0.15)
JODIE_HEADERS = (["u", "i", "ts"], ["user_id", "item_id", "timestamp"])
_NODE_ID = r"\+?[0-9]+"


def chronological_splits(num_events: int) -> dict:
    """Event indices of the first 70% (train), the next 15% (valid) and the last 15% (test)."""
    train_end = int(CHRONOLOGICAL_SPLIT[0] * num_events)
    valid_end = int((CHRONOLOGICAL_SPLIT[0] + CHRONOLOGICAL_SPLIT[1]) * num_events)
    return {"train": torch.arange(0, train_end), "valid": torch.arange(train_end, valid_end),
            "test": torch.arange(valid_end, num_events)}


def load_jodie(path: Path, name: str = None, bipartite: Optional[bool] = None) -> TemporalDataset:
    """Reads a JODIE csv (see :func:`read_temporal_edge_list`)."""
    return read_temporal_edge_list(path, name=name, bipartite=bipartite)


def read_temporal_edge_list(path, *, bipartite: Optional[bool] = None, sep: Optional[str] = None,
                            comment: str = COMMENT_MARKERS, name: Optional[str] = None) -> TemporalDataset:
    """Reads a stream of events ``src dst timestamp`` into a :class:`TemporalDataset`, sorted by
    time (stably: events at one time keep their file order), split 70/15/15 chronologically.

    ``bipartite=None`` detects: a JODIE header means bipartite, anything else unipartite; True or
    False forces. Unipartite ids are kept as written (``num_nodes`` = largest id + 1). Columns
    after the timestamp are edge features (numbers); in a JODIE file the fourth column is the
    state label and the rest are features. A malformed line raises ValueError naming its line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"temporal edge list {path} does not exist")
    if bipartite not in (None, True, False):
        raise ValueError(f"bipartite must be None (detect), True or False, got {bipartite!r}")
    data = _data_lines(path, comment)
    if not data:
        raise ValueError(f"temporal edge list {path} holds no events")
    first_line, _, rest = data.partition("\n")
    sep = _detect_separator(first_line) if sep is None else sep
    first = _fields(first_line, sep)
    has_header = not all(_is_number(field) for field in first[:3])
    jodie = has_header and len(first) >= 4 and [field.lower() for field in first[:3]] in JODIE_HEADERS
    if has_header and not rest:
        raise ValueError(f"temporal edge list {path} holds no events below its header")
    frame = _parse(path, rest if has_header else data, sep, comment, int(has_header))
    columns = _columns(frame, path, comment, int(has_header), minimum=4 if jodie else 3)
    src, dst = (_node_ids(columns[c], path, comment, int(has_header)) for c in (0, 1))
    t = _times(columns[2], path, comment, int(has_header))
    extra = [_numbers(column, path, comment, int(has_header), "value") for column in columns[3:]]
    labels = torch.from_numpy(extra.pop(0).astype(np.int64)) if jodie else None
    if jodie if bipartite is None else bipartite:
        dst = _items_after_users(src, dst)
    order = torch.argsort(t, stable=True)
    features = torch.from_numpy(np.stack(extra, 1).astype(np.float32)) if extra else None
    return TemporalDataset(
        name=name or path.stem, src=torch.from_numpy(src)[order], dst=torch.from_numpy(dst)[order], t=t[order],
        edge_features=None if features is None else features[order],
        labels=None if labels is None else labels[order],
        num_nodes=int(max(src.max(), dst.max())) + 1, splits=chronological_splits(len(order)),
    )


def _items_after_users(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """JODIE's two id spaces as one: items keep their ids when these already follow the users'."""
    num_users = int(users.max()) + 1
    return items + num_users if int(items.min()) < num_users else items


def _columns(frame: pd.DataFrame, path: Path, comment: str, skipped: int, minimum: int) -> List[pd.Series]:
    if frame.shape[1] < minimum:
        names = "source, target, timestamp" + (", state_label" if minimum == 4 else "")
        raise ValueError(f"temporal edge list {path}: expected at least {minimum} columns ({names}), "
                         f"got {frame.shape[1]}")
    columns = [frame[column] for column in range(frame.shape[1])]
    for column in columns:
        empty = (column.isna() | (column == "")).to_numpy()
        if empty.any():
            line = _line_number(path, comment, skipped + int(np.argmax(empty)))
            raise ValueError(f"temporal edge list {path}: line {line} has a missing field")
    return columns


def _node_ids(column: pd.Series, path: Path, comment: str, skipped: int) -> np.ndarray:
    valid = column.str.fullmatch(_NODE_ID).to_numpy()
    if not valid.all():
        row = int(np.argmax(~valid))
        line = _line_number(path, comment, skipped + row)
        raise ValueError(f"temporal edge list {path}: line {line} has a non-numeric or negative node id "
                         f"{column.iloc[row]!r} (ids are integers from 0)")
    try:
        return column.to_numpy().astype(np.int64)
    except OverflowError:
        raise ValueError(f"temporal edge list {path}: a node id does not fit int64") from None


def _times(column: pd.Series, path: Path, comment: str, skipped: int) -> torch.Tensor:
    """Integral timestamps (the common case) stay exact as int64; others are float64."""
    if column.str.fullmatch(r"[+-]?[0-9]{1,18}").all():
        return torch.from_numpy(column.to_numpy().astype(np.int64))
    return torch.from_numpy(_numbers(column, path, comment, skipped, "timestamp"))


def _numbers(column: pd.Series, path: Path, comment: str, skipped: int, what: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        line = _line_number(path, comment, skipped + row)
        raise ValueError(f"temporal edge list {path}: line {line} has a {what} that is not a finite number "
                         f"({column.iloc[row]!r}; non-numeric or non-finite)")
    return values
