"""Node memory of memory-based dynamic GNNs (TGN, JODIE): state, mailbox and updater.

The state is plain tensors, not parameters: ``memory [N, M]``, ``last_update [N]`` and a mailbox
holding each node's pending raw messages (``mail``: the latest one, or the running sum for the mean
aggregator; ``mail_count``, ``mail_time``). It lives on ``state_device`` (for graphs whose memory
does not fit the GPU: pinned host memory), and only the rows a batch touches travel to the
compute device.

TGN's order of operations: a batch first *reads* the memory of the nodes it needs with their
pending messages applied (differentiably, so the message and update functions learn from the
batch's loss), then, after the step, *commits* the updated memory of the batch's endpoints and
replaces their mail with the batch's own messages. Raw messages are stored detached, with the time
encoding computed when the event is stored, as in TGN's reference implementation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .. import ops

AGGREGATORS = ("last", "mean")
UPDATERS = ("gru", "rnn")


@dataclass
class MemoryRead:
    """Memory rows of some nodes: as stored (``previous``), with pending mail applied (``updated``,
    differentiable), the time of the last applied mail, and which rows had mail (``pending``)."""

    previous: torch.Tensor
    updated: torch.Tensor
    last_update: torch.Tensor
    pending: torch.Tensor


class TimeEncoder(nn.Module):
    """``cos(w * dt + b)`` with TGN's initialisation: frequencies ``10^-linspace(0, 9)``, zero phase.
    The parameters are those of ``nn.Linear(1, dim)``; the angle is formed in float64
    (:func:`gnnscale.ops.time_encode`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(1, dim)
        with torch.no_grad():
            self.linear.weight.copy_((1.0 / 10 ** torch.linspace(0, 9, dim)).reshape(dim, 1))
            self.linear.bias.zero_()

    def forward(self, dt: torch.Tensor) -> torch.Tensor:
        encoded = ops.time_encode(dt.reshape(-1), self.linear.weight.view(-1), self.linear.bias)
        return encoded.view(*dt.shape, self.dim)


class NodeMemory(nn.Module):
    """Memory of ``num_nodes`` nodes, ``memory_dim`` wide. A raw message of node i for an event
    (i, j, t, e) is ``[s_i, s_j, time_encoder(t - last_update_i), e]``; ``aggregator`` combines a
    node's pending messages ('last' or 'mean'), an optional MLP (``message='mlp'``) maps the
    aggregate, and a GRU (TGN) or RNN (JODIE) cell updates the memory with it."""

    def __init__(self, num_nodes: int, memory_dim: int = 100, time_dim: int = 100, edge_dim: int = 0, *,
                 aggregator: str = "last", updater: str = "gru", message: str = "identity",
                 state_device: Optional[torch.device] = None):
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
        if updater not in UPDATERS:
            raise ValueError(f"updater must be one of {UPDATERS}, got {updater!r}")
        if message not in ("identity", "mlp"):
            raise ValueError(f"message must be 'identity' or 'mlp', got {message!r}")
        self.memory_dim, self.edge_dim, self.aggregator = memory_dim, edge_dim, aggregator
        self.time_encoder = TimeEncoder(time_dim)
        self.raw_dim = 2 * memory_dim + time_dim + edge_dim
        self.message = (nn.Identity() if message == "identity" else
                        nn.Sequential(nn.Linear(self.raw_dim, self.raw_dim), nn.ReLU(),
                                      nn.Linear(self.raw_dim, self.raw_dim)))
        cell = nn.GRUCell if updater == "gru" else nn.RNNCell
        self.updater = cell(self.raw_dim, memory_dim)
        self.state_device = torch.device(state_device or "cpu")
        self.num_nodes = 0
        self.grow(num_nodes)

    def grow(self, num_nodes: int) -> None:
        """Makes room for nodes up to ``num_nodes`` (new nodes start with empty memory)."""
        if num_nodes <= self.num_nodes:
            return
        old = self.num_nodes
        fresh = self._empty_state(num_nodes)
        if old:
            for name, tensor in self.state().items():
                fresh[name][:old] = tensor
        self._set_state(fresh)
        self.num_nodes = num_nodes

    def reset_state(self) -> None:
        """Empties memory and mailbox (TGN resets them at the start of every training epoch)."""
        self._set_state(self._empty_state(self.num_nodes))

    def state(self) -> dict:
        return {"memory": self.memory, "last_update": self.last_update, "mail": self.mail,
                "mail_count": self.mail_count, "mail_time": self.mail_time}

    def load_state(self, state: dict) -> None:
        expected = self._empty_state(0)
        for name, tensor in state.items():
            if name not in expected or tensor.dtype != expected[name].dtype:
                raise ValueError(f"memory state entry {name!r} is not part of this memory's state")
        if state["memory"].shape[1:] != (self.memory_dim,) or state["mail"].shape[1:] != (self.raw_dim,):
            raise ValueError("memory state widths do not match this model")
        self.num_nodes = state["memory"].size(0)
        self._set_state({name: tensor.to(self.state_device) for name, tensor in state.items()})

    def read(self, nodes: torch.Tensor, device: torch.device) -> MemoryRead:
        """The memory of ``nodes`` on ``device``, before and after applying their pending mail."""
        rows = nodes.to(self.state_device)
        previous = self.memory[rows].to(device, non_blocking=True)
        last_update = self.last_update[rows].to(device, non_blocking=True)
        count = self.mail_count[rows].to(device, non_blocking=True)
        pending = torch.nonzero(count > 0).squeeze(1)
        if pending.numel() == 0:
            return MemoryRead(previous, previous, last_update, pending)
        raw = self.mail[rows[pending.to(self.state_device)]].to(device, non_blocking=True)
        if self.aggregator == "mean":
            raw = raw / count[pending].unsqueeze(1).to(raw.dtype)
        new = self.updater(self.message(raw), previous[pending])
        updated = previous.index_put((pending,), new)
        mail_time = self.mail_time[rows[pending.to(self.state_device)]].to(device)
        return MemoryRead(previous, updated, last_update.index_put((pending,), mail_time), pending)

    @torch.no_grad()
    def commit(self, nodes: torch.Tensor, memory: torch.Tensor, last_update: torch.Tensor) -> None:
        """Stores the updated memory of ``nodes`` (unique) and empties their mailboxes."""
        rows = nodes.to(self.state_device)
        self.memory[rows] = memory.detach().to(self.state_device)
        self.last_update[rows] = last_update.to(self.state_device, self.last_update.dtype)
        self.mail_count[rows] = 0
        self.mail[rows] = 0  # the mean aggregator adds new mail to what is there

    @torch.no_grad()
    def store_messages(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor,
                       edge_features: Optional[torch.Tensor], device: torch.device) -> None:
        """Puts the messages of events ``src -> dst`` at ``t`` (in event order) into both endpoints'
        mailboxes, built from the current (just committed) memory."""
        # Interleaved (src of event 0, dst of event 0, src of event 1, ...) so rows are in event order.
        owner = torch.stack([src, dst], 1).reshape(-1).to(self.state_device)
        other = torch.stack([dst, src], 1).reshape(-1).to(self.state_device)
        times = t.to(self.state_device, torch.float64).repeat_interleave(2)
        parts = [self.memory[owner].to(device), self.memory[other].to(device),
                 self.time_encoder((times - self.last_update[owner]).to(device))]
        if self.edge_dim:
            parts.append(edge_features.to(device).repeat_interleave(2, dim=0))
        raw = torch.cat(parts, 1).to(self.state_device)
        if self.aggregator == "last":
            chosen = _last_occurrence(owner)
            self.mail[owner[chosen]] = raw[chosen]
            self.mail_count[owner[chosen]] = 1
            self.mail_time[owner[chosen]] = times[chosen]
        else:
            self.mail.index_add_(0, owner, raw)
            self.mail_count.index_add_(0, owner, torch.ones_like(owner, dtype=self.mail_count.dtype))
            self.mail_time.scatter_reduce_(0, owner, times, "amax")

    def _empty_state(self, num_nodes: int) -> dict:
        # Host state is allocated pinned when a GPU computes, so row transfers can be asynchronous.
        where = {"device": self.state_device,
                 "pin_memory": self.state_device.type == "cpu" and torch.cuda.is_available()}
        return {"memory": torch.zeros(num_nodes, self.memory_dim, **where),
                "last_update": torch.zeros(num_nodes, dtype=torch.float64, **where),
                "mail": torch.zeros(num_nodes, self.raw_dim, **where),
                "mail_count": torch.zeros(num_nodes, dtype=torch.int32, **where),
                "mail_time": torch.zeros(num_nodes, dtype=torch.float64, **where)}

    def _set_state(self, state: dict) -> None:
        for name, tensor in state.items():
            setattr(self, name, tensor)


def _last_occurrence(values: torch.Tensor) -> torch.Tensor:
    """Positions of the last occurrence of each distinct value in ``values``."""
    _, inverse = torch.unique(values, return_inverse=True)
    positions = torch.arange(values.numel(), device=values.device)
    last = torch.full((int(inverse.max()) + 1,), -1, dtype=torch.int64, device=values.device)
    return last.scatter_reduce(0, inverse, positions, "amax")
