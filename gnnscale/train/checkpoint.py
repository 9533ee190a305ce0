"""Checkpoints written atomically: to a temporary file in the same folder, then renamed, so a
crash mid-write never replaces a good checkpoint with a broken one."""
import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..atomic import write_atomically


def rng_state() -> Dict[str, Any]:
    # numpy's state goes in as a tensor and plain values, so checkpoints load with weights_only.
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, payload: Dict[str, Any]) -> None:
    write_atomically(path, lambda stream: torch.save(payload, stream))


def load_checkpoint(path) -> Optional[Dict[str, Any]]:
    """The checkpoint at ``path``, or None if there is none. Checkpoints hold tensors and plain
    Python values only, so they load with torch's safe (weights-only) unpickler."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a checkpoint from elsewhere, or a damaged file
        raise ValueError(f"checkpoint {path} cannot be read: {error}") from error
