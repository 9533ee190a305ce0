"""Argument checks shared by the operator wrappers, and the memo of CSRs found sound."""
import weakref
from typing import List, Optional

import torch
from torch.utils.weak import WeakIdKeyDictionary


INDEX_DTYPES = (torch.int32, torch.int64)


# The most entries one output of one kernel call may hold (kMaxOutputEntries in csrc/cpu/checks.h).
MAX_OUTPUT_ENTRIES = 2**31


# Square CSRs found sound (row pointers well formed, every id a node), by tensor identity and
# version: an entry goes with its tensors, and an in-place change through torch (a new version)
# voids it; a change made behind torch's back (through a numpy view of the same memory) is not seen.
_SOUND_CSRS = WeakIdKeyDictionary()


def remember_sound_csr(indptr: torch.Tensor, indices: torch.Tensor) -> None:
    """Notes that (indptr, indices) is a sound square CSR, as a full check or a kernel's pass over
    every row and id found it."""
    _SOUND_CSRS[indices] = (weakref.ref(indptr), indptr._version, indices._version)


def is_known_sound_csr(indptr: torch.Tensor, indices: torch.Tensor) -> bool:
    """Whether (indptr, indices), unchanged since, was found sound in this process."""
    entry = _SOUND_CSRS.get(indices)
    return entry is not None and entry[0]() is indptr and entry[1] == indptr._version \
        and entry[2] == indices._version


def check_index_tensor(name: str, index: torch.Tensor, num_nodes: Optional[int] = None) -> None:
    """Raises ValueError unless ``index`` is a 1-D int32/int64 tensor of ids in [0, num_nodes)."""
    if not isinstance(index, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype not in INDEX_DTYPES:
        raise ValueError(f"{name} must be int32 or int64, got {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(index.shape)}")
    if index.numel() == 0:
        return
    low, high = torch.aminmax(index)
    if int(low) < 0:
        raise ValueError(f"{name} holds a negative id ({int(low)})")
    if num_nodes is not None and int(high) >= num_nodes:
        raise ValueError(f"{name} holds id {int(high)}, out of range for {num_nodes} nodes")


def resolve_device(device) -> torch.device:
    """``device`` as a torch.device with its index: "cuda" is the current GPU ("cuda:0" mostly), so
    devices compare equal however they were named."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def check_device(device) -> torch.device:
    """``device`` as resolve_device gives it, refused now if this torch cannot use it, not
    at the first batch."""
    try:
        resolved = resolve_device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a device torch knows: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but torch has no CUDA device")
        if resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} requested but torch sees {torch.cuda.device_count()} "
                             f"CUDA device(s)")
    return resolved


def check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return seed & 0x7FFFFFFFFFFFFFFF


def check_csr(indptr: torch.Tensor, indices: torch.Tensor, num_cols: int, *, check_indices: bool = True) -> None:
    """Raises ValueError unless (indptr, indices) is a well-formed CSR over ``num_cols`` columns."""
    if not isinstance(indptr, torch.Tensor) or indptr.dtype != torch.int64 or indptr.dim() != 1:
        raise ValueError("indptr must be a 1-D int64 tensor")
    if indptr.numel() == 0:
        raise ValueError("indptr must hold at least one entry (num_nodes + 1 in all)")
    if int(indptr[0]) != 0:
        raise ValueError(f"indptr must start at 0, starts at {int(indptr[0])}")
    if indptr.numel() > 1 and bool((indptr[1:] < indptr[:-1]).any()):
        row = int(torch.nonzero(indptr[1:] < indptr[:-1])[0])
        raise ValueError(f"indptr is not monotone: indptr[{row + 1}] < indptr[{row}]")
    if not isinstance(indices, torch.Tensor) or indices.dtype not in INDEX_DTYPES or indices.dim() != 1:
        raise ValueError("indices must be a 1-D int32 or int64 tensor")
    if int(indptr[-1]) != indices.numel():
        raise ValueError(f"indptr ends at {int(indptr[-1])} but there are {indices.numel()} indices")
    if check_indices:
        check_index_tensor("indices", indices, num_cols)
        if num_cols == indptr.numel() - 1:
            remember_sound_csr(indptr, indices)


def check_topology(indptr: torch.Tensor, indices: torch.Tensor, name: str = "indices") -> None:
    """O(1) checks of a CSR's types; its contents are checked by the kernel that reads them."""
    if not isinstance(indptr, torch.Tensor) or indptr.dtype != torch.int64 or indptr.dim() != 1:
        raise ValueError("indptr must be a 1-D int64 tensor")
    if indptr.numel() == 0:
        raise ValueError("indptr must hold at least one entry (num_nodes + 1 in all)")
    if not isinstance(indices, torch.Tensor) or indices.dtype not in INDEX_DTYPES or indices.dim() != 1:
        raise ValueError(f"{name} must be a 1-D int32 or int64 tensor")


def check_fanouts(fanouts) -> List[int]:
    fanouts = list(fanouts)
    if not fanouts:
        raise ValueError("fanouts is empty: give one fanout per layer")
    for fanout in fanouts:
        if isinstance(fanout, bool) or not isinstance(fanout, int) or (fanout < 1 and fanout != -1):
            raise ValueError(f"fanouts must be positive ints or -1 (all neighbours), got {fanouts}")
    return fanouts


def check_edge_weights(weight: torch.Tensor, num_edges: int) -> torch.Tensor:
    """Sampling weights: one finite, non-negative value per edge, as float64."""
    if weight.dim() != 1 or weight.numel() != num_edges:
        raise ValueError(f"sampling weights must be 1-D with one value per edge ({num_edges})")
    weight = weight.to(torch.float64).contiguous()
    if not bool(torch.isfinite(weight).all()):
        raise ValueError("sampling weights hold NaN or infinite values")
    if bool((weight < 0).any()):
        raise ValueError("sampling weights hold negative values")
    return weight
