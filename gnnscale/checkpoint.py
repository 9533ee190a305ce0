"""Checkpoints written atomically: to a temporary file in the same folder, then renamed, so a
crash mid-write never replaces a good checkpoint with a broken one."""
import dataclasses
import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from .atomic import write_atomically


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


# Differences listed in a refused resume before the rest are only counted.
MAX_LISTED_DIFFERENCES = 12


def plain(value: Any) -> Any:
    """``value`` as values torch's weights-only unpickler reads back equal: tuples and shapes
    become lists, dataclasses dicts; an object of another kind is recorded by its type's name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    return type(value).__name__


def flatten(settings: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested dicts as one level of dotted keys, so that a difference names the one entry."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_same_run(path, recorded: Optional[Dict[str, Any]], current: Dict[str, Any]) -> None:
    """Raises ValueError unless the checkpoint at ``path`` was written by a run with the settings
    ``current`` (a flat dict of plain values), listing each setting that differs."""
    if recorded is None:
        raise ValueError(f"checkpoint {path} does not record the settings of the run that wrote it (an older "
                         f"format), so resuming from it cannot be checked; remove it or use another checkpoint_dir")
    missing = object()

    def shown(settings, key):
        return repr(settings[key]) if key in settings else "(not set)"

    keys = list(current) + [key for key in recorded if key not in current]
    differences = [f"{key}: {shown(recorded, key)} in the checkpoint, {shown(current, key)} now"
                   for key in keys if recorded.get(key, missing) != current.get(key, missing)]
    if differences:
        listed = differences[:MAX_LISTED_DIFFERENCES]
        if len(differences) > len(listed):
            listed.append(f"... and {len(differences) - len(listed)} more")
        raise ValueError(f"checkpoint {path} was written by a run with other settings; resume with the same "
                         f"settings (only epochs may change) or use another checkpoint_dir:\n  " + "\n  ".join(listed))
