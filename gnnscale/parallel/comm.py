"""Communication of the parallel engine, each call counting the bytes it sends.

Activations between pipeline stages go point to point; halo rows between graph partitions go by
``all_to_all_single`` (forward: rows to the partitions that need them; backward: their gradients
back to the owners); replicated parameters' gradients are all-reduced. The counts are what this
rank puts on the wire, so they can be checked against the planner's prediction.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional

import torch
import torch.distributed as dist

from .plan import ChunkPlan

KINDS = ("activations", "halo", "gradients")


class ByteCounter:
    def __init__(self):
        self.phase = "train"
        self.bytes: Dict[str, Dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))

    def add(self, kind: str, count: int) -> None:
        self.bytes[self.phase][kind] += int(count)

    def totals(self, phase: str) -> Dict[str, int]:
        return dict(self.bytes[phase])


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class _HaloExchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows: torch.Tensor, plan: ChunkPlan, group, counter: ByteCounter) -> torch.Tensor:
        ctx.plan, ctx.group, ctx.counter, ctx.num_rows = plan, group, counter, rows.size(0)
        outgoing = rows.index_select(0, plan.send_index)
        incoming = rows.new_empty(sum(plan.recv_counts), rows.size(1))
        dist.all_to_all_single(incoming, outgoing, plan.recv_counts, plan.send_counts, group=group)
        counter.add("halo", _nbytes(outgoing))
        return incoming

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        plan = ctx.plan
        grad = grad.contiguous()
        returned = grad.new_empty(plan.send_index.numel(), grad.size(1))
        dist.all_to_all_single(returned, grad, plan.send_counts, plan.recv_counts, group=ctx.group)
        ctx.counter.add("halo", _nbytes(grad))
        grad_rows = grad.new_zeros(ctx.num_rows, grad.size(1)).index_add_(0, plan.send_index, returned)
        return grad_rows, None, None, None


def exchange_halo(rows: torch.Tensor, plan: ChunkPlan, group, counter: ByteCounter) -> torch.Tensor:
    """This chunk's halo rows from their owners, differentiable (gradients return to the owners)."""
    return _HaloExchange.apply(rows.contiguous(), plan, group, counter)


class PointToPoint:
    """Sends to / receives from neighbouring pipeline stages; sends are asynchronous and kept
    until :meth:`flush`, so a stage moves on to its next chunk while the data is in flight."""

    FORWARD, BACKWARD = 0, 1

    def __init__(self, counter: ByteCounter, device="cpu"):
        self.counter = counter
        self.device = device
        self.pending: List = []

    def send(self, tensor: torch.Tensor, to_rank: int, tag: int) -> None:
        tensor = tensor.detach().contiguous()
        self.pending.append((dist.isend(tensor, to_rank, tag=tag), tensor))
        self.counter.add("activations", _nbytes(tensor))

    def receive(self, shape, dtype: torch.dtype, from_rank: int, tag: int) -> torch.Tensor:
        buffer = torch.empty(shape, dtype=dtype, device=self.device)
        dist.recv(buffer, from_rank, tag=tag)
        return buffer

    def flush(self) -> None:
        for work, _ in self.pending:
            work.wait()
        self.pending.clear()


def all_reduce_gradients(parameters: List[torch.nn.Parameter], group, group_size: int,
                         counter: Optional[ByteCounter]) -> None:
    """Sums gradients over the ranks that replicate these parameters, as one flat buffer. Counted
    as a ring all-reduce sends it: 2 (n - 1) / n of the buffer per rank."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, group=group)
    if counter is not None:
        counter.add("gradients", 2 * (group_size - 1) * _nbytes(flat) // group_size)
    offset = 0
    for p, g in zip(parameters, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
        offset += g.numel()
