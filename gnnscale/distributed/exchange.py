"""Rows sent to every other rank at once: one ``all_to_all`` for the row counts, one for the rows.
What the distributed sampler and feature store use to ask owners for their nodes' samples and
rows and to answer them."""
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist


def exchange(rows: torch.Tensor, counts: torch.Tensor, group=None,
             incoming: Optional[List[int]] = None) -> Tuple[torch.Tensor, List[int]]:
    """Sends ``rows[sum(counts[:r]):sum(counts[:r+1])]`` to rank r (rows grouped by destination,
    ``counts`` one int per rank) and returns what every rank sent here, in rank order, with the
    number of rows from each. ``incoming``: those numbers when this rank knows them already (an
    answer to its own request), which saves the first ``all_to_all``."""
    world_size = group_size(group)
    counts = counts.to(torch.int64)
    if counts.numel() != world_size or int(counts.sum()) != rows.size(0):
        raise ValueError(f"counts must give the rows for each of the {world_size} ranks and sum to {rows.size(0)}")
    if world_size == 1:  # this process alone, in a job or not: nothing to send
        return rows, [rows.size(0)]
    if incoming is None:
        received = torch.empty(world_size, dtype=torch.int64)
        dist.all_to_all_single(received, counts, group=group)
        incoming = received.tolist()
    out = rows.new_empty((sum(incoming), *rows.shape[1:]))
    dist.all_to_all_single(out, rows.contiguous(), output_split_sizes=incoming, input_split_sizes=counts.tolist(),
                           group=group)
    return out, incoming


def grouped_by(owner: torch.Tensor, world_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The stable order that groups items by their owner rank, and the count per rank."""
    order = torch.argsort(owner, stable=True)
    return order, torch.bincount(owner, minlength=world_size)


def group_size(group=None) -> int:
    """Ranks in ``group``; 1 for a process that joined no job."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def group_rank(group=None) -> int:
    return dist.get_rank(group) if dist.is_available() and dist.is_initialized() else 0
