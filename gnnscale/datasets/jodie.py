"""JODIE-style temporal interaction streams: ``user,item,timestamp,state_label[,features...]``."""
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .base import TemporalDataset

# TGN / JODIE evaluation protocol: the first 70% of events (by time) train, then 15% / 15%.
CHRONOLOGICAL_SPLIT = (0.70, 0.15)


def chronological_splits(num_events: int) -> dict:
    """Event indices of the first 70% (train), the next 15% (valid) and the last 15% (test)."""
    train_end = int(CHRONOLOGICAL_SPLIT[0] * num_events)
    valid_end = int((CHRONOLOGICAL_SPLIT[0] + CHRONOLOGICAL_SPLIT[1]) * num_events)
    return {"train": torch.arange(0, train_end), "valid": torch.arange(train_end, valid_end),
            "test": torch.arange(valid_end, num_events)}


def load_jodie(path: Path, name: str = None) -> TemporalDataset:
    """Reads a JODIE csv. Item ids are taken as written when they already follow the user ids
    (as in the shared Wikipedia file), else they are offset by the number of users."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JODIE event file {path} does not exist")
    frame = pd.read_csv(path, header=0, skipinitialspace=True)
    if frame.shape[1] < 4:
        raise ValueError(f"{path}: expected at least 4 columns (user, item, timestamp, label), got {frame.shape[1]}")
    try:
        table = frame.to_numpy(dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: a non-numeric value in the event table: {error}") from error
    if not np.isfinite(table).all():
        row = int(np.nonzero(~np.isfinite(table).all(axis=1))[0][0])
        raise ValueError(f"{path}: missing or non-finite value on data line {row + 1}")
    users, items = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
    if (users < 0).any() or (items < 0).any():
        raise ValueError(f"{path}: negative node id")
    num_users = int(users.max()) + 1
    if int(items.min()) < num_users:
        items = items + num_users
    times = table[:, 2]
    # Integral timestamps (the common case) stay exact as int64; others stay float64.
    t = torch.from_numpy(times.astype(np.int64) if np.array_equal(times, np.round(times)) else times.copy())
    order = torch.argsort(t, stable=True)
    features = table[:, 4:]
    return TemporalDataset(
        name=name or path.stem,
        src=torch.from_numpy(users)[order],
        dst=torch.from_numpy(items)[order],
        t=t[order],
        edge_features=torch.from_numpy(features.astype(np.float32))[order] if features.shape[1] else None,
        labels=torch.from_numpy(table[:, 3].astype(np.int64))[order],
        num_nodes=int(items.max()) + 1,
        splits=chronological_splits(len(order)),
    )
