"""The ranks of a data-parallel job, as the work is shared between them: each takes a contiguous
span of every batch and of every evaluation, and the spans' results are gathered back in rank
order, so N ranks compute exactly what one process computes."""
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist


def check_rank(rank, world_size) -> None:
    for name, value in (("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size) and world_size >= 1, got rank {rank} of {world_size}")


def span(count: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Rank ``rank``'s share of ``count`` items: [start, stop), the shares as even as possible
    (sizes differ by at most one) and in rank order."""
    return rank * count // world_size, (rank + 1) * count // world_size


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``world_size`` data-parallel ranks. ``group`` is the process
    group for collectives on host tensors (a gloo group beside an NCCL one); one rank alone needs
    none."""

    rank: int = 0
    world_size: int = 1
    group: Any = None

    def __post_init__(self):
        check_rank(self.rank, self.world_size)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes logs, plots and checkpoints."""
        return self.rank == 0

    def span(self, count: int) -> Tuple[int, int]:
        return span(count, self.rank, self.world_size)

    def loader_share(self) -> dict:
        """The loader options that make a loader yield this rank's share of every batch."""
        return {"rank": self.rank, "world_size": self.world_size}

    def sharing(self, count: int) -> "Ranks":
        """The ranks to share ``count`` items between: these, or this process alone (every rank
        computing all of them) when there are fewer items than ranks."""
        return self if count >= self.world_size else SINGLE

    def share(self, items: torch.Tensor) -> torch.Tensor:
        """This rank's span of ``items`` (along the first dimension)."""
        start, stop = self.span(items.size(0))
        return items[start:stop]

    def gather(self, local: torch.Tensor, count: int) -> torch.Tensor:
        """Every rank's ``local`` rows (its span of ``count``) concatenated in rank order: the
        ``count`` rows one process would have computed. ``local`` must be a host tensor."""
        if self.world_size == 1:
            return local
        sizes = [span(count, r, self.world_size) for r in range(self.world_size)]
        sizes = [stop - start for start, stop in sizes]
        if local.size(0) != sizes[self.rank]:
            raise ValueError(f"rank {self.rank} holds {local.size(0)} rows, not its share {sizes[self.rank]} of {count}")
        # gloo gathers equal shapes only: pad each share to the largest
        padded = local.new_zeros((max(sizes),) + tuple(local.shape[1:]))
        padded[:local.size(0)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.contiguous(), group=self.group)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def sum(self, values: Sequence[float]) -> List[float]:
        """``values`` summed over the ranks (float64, so counts stay exact)."""
        if self.world_size == 1:
            return list(values)
        total = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(total, group=self.group)
        return total.tolist()

    def gather_objects(self, value: Any) -> List[Any]:
        """Every rank's ``value`` (plain Python values), in rank order."""
        if self.world_size == 1:
            return [value]
        values: List[Any] = [None] * self.world_size
        dist.all_gather_object(values, value, group=self.group)
        return values

    def agree_on_problems(self, problem: Optional[str]) -> None:
        """Raises the same ValueError on every rank if any rank found a problem (the lowest rank's),
        so that no rank goes on alone and waits for the others until it times out."""
        first = next((found for found in self.gather_objects(problem) if found is not None), None)
        if first is not None:
            raise ValueError(first)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier(group=self.group)


SINGLE = Ranks()


def current_ranks() -> Ranks:
    """The ranks of the default process group (one rank when none is initialised). With an NCCL
    default group a gloo group is made for host-tensor collectives."""
    if not dist.is_available() or not dist.is_initialized():
        return SINGLE
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), group)
