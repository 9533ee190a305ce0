"""Checkpoints written atomically: to a temporary file in the same folder, then renamed, so a
crash mid-write never replaces a good checkpoint with a broken one."""
import dataclasses
import random
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

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


RANK_CHECKPOINT = re.compile(r"rank(\d+)-epoch(\d+)\.pt")


class RankCheckpoints:
    """One checkpoint per rank and epoch in ``folder``, ``rank{r}-epoch{n}.pt``, for runs whose ranks
    each hold their own share of the state (the stages of a pipeline), so no rank can write the
    whole of it.

    After every epoch each rank writes its own file atomically; after a barrier, when every rank's
    file of epoch n is on disk, each rank deletes its older ones. A rank killed at any moment
    therefore leaves the newest epoch every rank completed on disk, and :meth:`load` agrees on that
    epoch over all ranks: a resume never combines one rank's epoch n with another's n - 1.
    ``ranks`` is a :class:`gnnscale.distributed.Ranks`.
    """

    def __init__(self, folder, ranks):
        self.folder, self.ranks = Path(folder), ranks

    def path(self, epoch: int) -> Path:
        return self.folder / f"rank{self.ranks.rank}-epoch{epoch}.pt"

    def own_epochs(self) -> List[int]:
        """The epochs of this rank's checkpoints, ascending."""
        if not self.folder.is_dir():
            return []
        found = (RANK_CHECKPOINT.fullmatch(path.name) for path in self.folder.glob(f"rank{self.ranks.rank}-epoch*.pt"))
        return sorted(int(match.group(2)) for match in found if match and int(match.group(1)) == self.ranks.rank)

    def save(self, epoch: int, payload: Dict[str, Any]) -> None:
        save_checkpoint(self.path(epoch), payload)
        self.ranks.barrier()  # every rank's file of this epoch is on disk before any rank deletes an older one
        self._remove(keep=epoch)

    def clear(self) -> None:
        """Removes this rank's checkpoints: a run that starts over leaves no older epoch to resume."""
        self._remove(keep=None)

    def _remove(self, keep: Optional[int], newer_than: int = -1) -> None:
        """Deletes this rank's checkpoints of epochs above ``newer_than`` but ``keep``, and the
        temporary files a killed write left behind."""
        for epoch in self.own_epochs():
            if epoch != keep and epoch > newer_than:
                self.path(epoch).unlink(missing_ok=True)
        if self.folder.is_dir():
            for leftover in self.folder.glob(f".rank{self.ranks.rank}-epoch*.pt.*.tmp"):
                leftover.unlink(missing_ok=True)

    def load(self, apply: Callable[[Path, Dict[str, Any]], Any]) -> Any:
        """Reads this rank's checkpoint of the newest epoch every rank holds and returns
        ``apply(path, checkpoint)``; None when no rank has a checkpoint (a fresh start). A problem on
        any rank (no common epoch, an unreadable file, ``apply`` raising ValueError) is raised on
        every rank, so none goes on alone."""
        everyone = self.ranks.gather_objects(self.own_epochs())
        if not any(everyone):
            return None
        common = set(everyone[0]).intersection(*everyone[1:])
        chosen = max(common) if common else None
        own = everyone[self.ranks.rank]
        readable = chosen if chosen is not None else (own[-1] if own else None)
        result, problem = None, None
        try:
            if readable is not None:  # read even without a common epoch, so its own problems are named too
                result = apply(self.path(readable), load_checkpoint(self.path(readable)))
            if chosen is None:
                problem = (f"the checkpoints in {self.folder} share no epoch that every rank completed "
                           f"({_describe_epochs(everyone)}); remove them or use another checkpoint_dir")
        except (ValueError, RuntimeError, KeyError, TypeError, OSError) as error:
            problem = str(error)
        self.ranks.agree_on_problems(problem)
        # A newer file here is a write the other ranks did not finish: that epoch is trained again.
        self._remove(keep=chosen, newer_than=chosen)
        return result


def _describe_epochs(everyone: List[List[int]]) -> str:
    return "; ".join(f"rank {rank}: {', '.join(map(str, epochs)) if epochs else 'none'}"
                     for rank, epochs in enumerate(everyone))
